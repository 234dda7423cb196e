// Weight gradient on the workgroup-memory GEMM core (shared/block_gemm.wgsl, appended), split-K:
// rows m are the group's weight columns (c, r, s), columns are its output channels k, the
// reduction runs over (n, p, q); split `t` of the grid sums [t·split_len, (t+1)·split_len) into
// its own slice of `partial`, added in a fixed order by reduce_splits (bit-for-bit repeatable).
// Rows are the weight columns so the stores run along contiguous dW rows.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

// Both operands are contiguous along the reduction's q.
const A_K_FASTEST = true;
const B_K_FASTEST = true;

struct Slice { group: u32, split: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest % cv.groups, rest / cv.groups);
}

// The host never makes an empty split, so t0 < red_len and the end cannot wrap.
fn red_range(sl: Slice) -> vec2<u32> {
    let t0 = sl.split * cv.split_len;
    return vec2(t0, t0 + min(cv.split_len, cv.red_len - t0));
}

struct ARow { x_c: u32, off_h: i32, off_w: i32 }

fn a_row(sl: Slice, m: u32) -> ARow {
    let rs = cv.r * cv.s;
    let tap = m % rs;
    return ARow((sl.group * cv.cg + m / rs) * cv.h * cv.w,
                i32(tap / cv.s * cv.dil_h) - i32(cv.pad_top),
                i32(tap % cv.s * cv.dil_w) - i32(cv.pad_left));
}

// X under weight column `row` at reduction index t = (n, p, q).
fn a_load(row: ARow, t: u32) -> f32 {
    let pq = cv.p * cv.q;
    let n = div_small(t, pq, 1.0 / f32(pq));
    let pix = t - n * pq;
    let p = div_small(pix, cv.q, 1.0 / f32(cv.q));
    let ih = i32(p * cv.stride_h) + row.off_h;
    let iw = i32((pix - p * cv.q) * cv.stride_w) + row.off_w;
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;
    let ok = ih >= 0 && ih <= h_max && iw >= 0 && iw <= w_max;
    let v = x[n * cv.c * cv.h * cv.w + row.x_c + u32(clamp(ih, 0, h_max)) * cv.w + u32(clamp(iw, 0, w_max))];
    return select(0.0, v, ok);
}

struct BCol { dy_k: u32 }

fn b_col(sl: Slice, n: u32) -> BCol {
    return BCol((sl.group * cv.kg + n) * cv.p * cv.q);
}

fn b_load(col: BCol, t: u32) -> f32 {
    let pq = cv.p * cv.q;
    let n = div_small(t, pq, 1.0 / f32(pq));
    return dy[n * cv.k * pq + col.dy_k + (t - n * pq)];
}

fn store_c(sl: Slice, m: u32, n: u32, v: f32) {
    let crs = cv.cg * cv.r * cv.s;
    partial[sl.split * cv.out_len + (sl.group * cv.kg + n) * crs + m] = v;
}
