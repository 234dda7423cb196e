// Weight gradient dW as a GEMM on the register core (shared/register_gemm.wgsl, appended):
// lane items are the group's weight columns (c, r, s) (gathered X loads), uniform items its
// output channels k (uniform dY loads), and the reduction runs over (n, p, q), walked
// incrementally. Split-K: split `t` of the grid sums reduction indices
// [t·split_len, (t+1)·split_len) into its own slice of `partial`; reduce_splits then adds the
// slices in a fixed order, so results repeat bit for bit. With one split `partial` is dW.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

alias Acc = f32;

fn grid() -> Grid {
    return Grid(cv.tiles_m, cv.tiles_n, cv.tiles_total, cv.rows, cv.cols);
}

struct Slice { group: u32, split: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest % cv.groups, rest / cv.groups);
}

// Weight column m = (c, r, s): X's channel plane and the tap's offset from the output position.
struct Lane { col: u32, x_c: u32, off_h: i32, off_w: i32 }

fn lane(sl: Slice, m: u32) -> Lane {
    let rs = cv.r * cv.s;
    return Lane(m, (sl.group * cv.cg + m / rs) * cv.h * cv.w,
                i32((m % rs) / cv.s * cv.dil_h) - i32(cv.pad_top),
                i32((m % cv.s) * cv.dil_w) - i32(cv.pad_left));
}

struct Uni { k: u32, dy_k: u32 }

fn uni(sl: Slice, n: u32) -> Uni {
    let k = sl.group * cv.kg + n;
    return Uni(k, k * cv.p * cv.q);
}

fn segments(sl: Slice) -> u32 {
    return 1u;
}

// The split's reduction range; the host never makes an empty split, so t0 < red_len and the
// end cannot wrap.
struct Seg { t0: u32, t1: u32 }

fn segment(sl: Slice, i: u32) -> Seg {
    let t0 = sl.split * cv.split_len;
    return Seg(t0, t0 + min(cv.split_len, cv.red_len - t0));
}

fn lane_seg(l: Lane, sg: Seg) -> Lane {
    return l;
}

fn seg_range(sl: Slice, sg: Seg) -> vec2<u32> {
    return vec2(sg.t0, sg.t1);
}

// Reduction index (n, p, q) with the offsets every column shares.
struct Step { n: u32, p: u32, q: u32, dy_n: u32, x_n: u32, ih: i32, iw: i32 }

fn step_of(n: u32, p: u32, q: u32) -> Step {
    return Step(n, p, q, n * cv.k * cv.p * cv.q + p * cv.q + q, n * cv.c * cv.h * cv.w,
                i32(p * cv.stride_h), i32(q * cv.stride_w));
}

fn step_at(sl: Slice, sg: Seg, t: u32) -> Step {
    let pq = cv.p * cv.q;
    return step_of(t / pq, (t % pq) / cv.q, t % cv.q);
}

fn step_next(st: Step) -> Step {
    var n = st.n;
    var p = st.p;
    var q = st.q + 1u;
    if q == cv.q {
        q = 0u;
        p++;
        if p == cv.p {
            p = 0u;
            n++;
        }
    }
    return step_of(n, p, q);
}

// Padding reads a clamped in-bounds element and selects zero, which dY then multiplies.
fn lane_load(l: Lane, st: Step) -> f32 {
    let ih = st.ih + l.off_h;
    let iw = st.iw + l.off_w;
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;
    let ok = ih >= 0 && ih <= h_max && iw >= 0 && iw <= w_max;
    return select(0.0, x[st.x_n + l.x_c + u32(clamp(ih, 0, h_max)) * cv.w + u32(clamp(iw, 0, w_max))], ok);
}

fn uni_load(u: Uni, sg: Seg, st: Step) -> f32 {
    return dy[st.dy_n + u.dy_k];
}

fn store(sl: Slice, l: Lane, u: Uni, acc: f32) {
    partial[sl.split * cv.out_len + u.k * cv.cg * cv.r * cv.s + l.col] = acc;
}
