// Forward convolution Y = conv(X, W) (+ b, or a fused epilogue: shared/epilogue.wgsl) as an implicit GEMM on the register core
// (shared/register_gemm.wgsl, appended): lane items are output pixels (n, p, q), uniform items
// the group's output channels k, and the reduction runs over the group's (c, r, s) with the
// taps (r, s) as segments, so each pixel's input offset and padding test are worked out once
// per tap and the inner loop over channels is one load per pixel and one per channel.

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

alias Acc = f32;

fn grid() -> Grid {
    return Grid(cv.tiles_m, cv.tiles_n, cv.tiles_total, cv.rows, cv.cols);
}

struct Slice { group: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

// Output pixel m: X of its image at the group's first channel, its top-left padded input
// coordinate, and its place in Y at channel 0.
struct Lane { x_base: u32, ih0: i32, iw0: i32, y_off: u32 }

fn lane(sl: Slice, m: u32) -> Lane {
    let pq = cv.p * cv.q;
    let n = m / pq;
    let pix = m % pq;
    return Lane((n * cv.c + sl.group * cv.cg) * cv.h * cv.w,
                i32(pix / cv.q * cv.stride_h) - i32(cv.pad_top),
                i32(pix % cv.q * cv.stride_w) - i32(cv.pad_left),
                n * cv.k * pq + pix);
}

// Output channel n of the group: its weight row and its bias (loaded once per channel, not
// per stored element: 1024 branches in the store made the pipeline slow to compile).
struct Uni { k: u32, w_base: u32, b: f32 }

fn uni(sl: Slice, n: u32) -> Uni {
    let k = sl.group * cv.kg + n;
    var b = 0.0;
    if cv.has_bias != 0u { b = bias[k]; }
    return Uni(k, k * cv.cg * cv.r * cv.s, b);
}

fn segments(sl: Slice) -> u32 {
    return cv.r * cv.s;
}

struct Seg { tap: u32, dh: i32, dw: i32 }

fn segment(sl: Slice, i: u32) -> Seg {
    let r = i / cv.s;
    return Seg(i, i32(r * cv.dil_h), i32((i - r * cv.s) * cv.dil_w));
}

// The pixel's X offset under this tap (clamped) and whether it is inside X.
struct LaneSeg { off: u32, ok: bool }

fn lane_seg(l: Lane, sg: Seg) -> LaneSeg {
    let ih = l.ih0 + sg.dh;
    let iw = l.iw0 + sg.dw;
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;
    let ok = ih >= 0 && ih <= h_max && iw >= 0 && iw <= w_max;
    return LaneSeg(l.x_base + u32(clamp(ih, 0, h_max)) * cv.w + u32(clamp(iw, 0, w_max)), ok);
}

fn seg_range(sl: Slice, sg: Seg) -> vec2<u32> {
    return vec2(0u, cv.cg);
}

struct Step { c: u32 }

fn step_at(sl: Slice, sg: Seg, t: u32) -> Step {
    return Step(t);
}

fn step_next(st: Step) -> Step {
    return Step(st.c + 1u);
}

// Padding reads a clamped in-bounds element and selects zero, which the weight then multiplies
// (0·NaN = NaN, as PyTorch): no branch.
fn lane_load(ls: LaneSeg, st: Step) -> f32 {
    return select(0.0, x[ls.off + st.c * cv.h * cv.w], ls.ok);
}

fn uni_load(u: Uni, sg: Seg, st: Step) -> f32 {
    return wt[u.w_base + st.c * cv.r * cv.s + sg.tap];
}

fn store(sl: Slice, l: Lane, u: Uni, acc: f32) {
    let i = l.y_off + u.k * cv.p * cv.q;
    y[i] = finish(acc, u.b, i);
}
