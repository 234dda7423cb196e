// Forward convolution on the workgroup-memory GEMM core (shared/block_gemm.wgsl, appended):
// rows m are output pixels (n, p, q), columns are the group's output channels k, the reduction
// runs over the group's (c, r, s) in weight order, so B is a contiguous weight row.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> pre: array<f32>;

alias Act = f32;
alias ActBits = u32;

// The fused epilogue's run-time values (shared/epilogue.wgsl).
fn epi_params() -> vec4<f32> {
    return vec4(cv.alpha, cv.beta, cv.act_a, cv.act_b);
}

// A is gathered along output pixels (neighbouring invocations, neighbouring pixels); B is read
// along the weight row.
const A_K_FASTEST = false;
const B_K_FASTEST = true;

struct Slice { group: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

fn red_range(sl: Slice) -> vec2<u32> {
    return vec2(0u, cv.cg * cv.r * cv.s);
}

struct ARow { x_base: u32, ih0: i32, iw0: i32 }

fn a_row(sl: Slice, m: u32) -> ARow {
    let pq = cv.p * cv.q;
    let pix = m % pq;
    return ARow(((m / pq) * cv.c + sl.group * cv.cg) * cv.h * cv.w,
                i32(pix / cv.q * cv.stride_h) - i32(cv.pad_top),
                i32(pix % cv.q * cv.stride_w) - i32(cv.pad_left));
}

// X at reduction index t = (c, r, s); padding reads a clamped element and selects zero.
fn a_load(row: ARow, t: u32) -> f32 {
    let rs = cv.r * cv.s;
    let c = div_small(t, rs, 1.0 / f32(rs));
    let tap = t - c * rs;
    let r = div_small(tap, cv.s, 1.0 / f32(cv.s));
    let ih = row.ih0 + i32(r * cv.dil_h);
    let iw = row.iw0 + i32((tap - r * cv.s) * cv.dil_w);
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;
    let ok = ih >= 0 && ih <= h_max && iw >= 0 && iw <= w_max;
    let v = x[row.x_base + c * cv.h * cv.w + u32(clamp(ih, 0, h_max)) * cv.w + u32(clamp(iw, 0, w_max))];
    return select(0.0, v, ok);
}

struct BCol { w_base: u32 }

fn b_col(sl: Slice, n: u32) -> BCol {
    return BCol((sl.group * cv.kg + n) * cv.cg * cv.r * cv.s);
}

fn b_load(col: BCol, t: u32) -> f32 {
    return wt[col.w_base + t];
}

fn store_c(sl: Slice, m: u32, n: u32, v: f32) {
    let pq = cv.p * cv.q;
    let k = sl.group * cv.kg + n;
    var b = 0.0;
    if cv.has_bias != 0u { b = bias[k]; }
    let i = ((m / pq) * cv.k + k) * pq + m % pq;
    y[i] = finish(v, b, i);
}
