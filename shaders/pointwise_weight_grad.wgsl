// Weight gradient of a 1×1, stride-1, unpadded convolution as a plain GEMM on vec4 pixel quads,
// on the register core (shared/register_gemm.wgsl, appended):
//   dW[g·kg + k, c] = Σ_{n, quad} dY[n, g·kg + k, quad] · X[n, g·cg + c, quad], summed over lanes.
// The reduction runs along contiguous pixels, so both operands load as vec4 (4 reduction steps
// per load); lane items are the group's input channels (gathered X quads), uniform items its
// output channels (uniform dY quads). Split-K as in weight_grad.wgsl: split t sums quads
// [t·split_len, (t+1)·split_len) of the N·H·W/4 into its own slice of `partial`, which
// reduce_splits adds in a fixed order. Requires H·W a multiple of 4.

@group(0) @binding(0) var<uniform> pg: PointwiseWeightGrad;
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

alias Acc = vec4<f32>;

fn grid() -> Grid {
    return Grid(pg.tiles_m, pg.tiles_n, pg.tiles_total, pg.cg, pg.kg);
}

struct Slice { group: u32, split: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest % pg.groups, rest / pg.groups);
}

struct Lane { c: u32, x_c: u32 }

fn lane(sl: Slice, m: u32) -> Lane {
    return Lane(m, (sl.group * pg.cg + m) * pg.quads);
}

struct Uni { k: u32, dy_k: u32 }

fn uni(sl: Slice, n: u32) -> Uni {
    let k = sl.group * pg.kg + n;
    return Uni(k, k * pg.quads);
}

fn segments(sl: Slice) -> u32 {
    return 1u;
}

// The split's quads; the host never makes an empty split, so the end cannot wrap.
struct Seg { t0: u32, t1: u32 }

fn segment(sl: Slice, i: u32) -> Seg {
    let t0 = sl.split * pg.split_len;
    return Seg(t0, t0 + min(pg.split_len, pg.red_len - t0));
}

fn lane_seg(l: Lane, sg: Seg) -> Lane {
    return l;
}

fn seg_range(sl: Slice, sg: Seg) -> vec2<u32> {
    return vec2(sg.t0, sg.t1);
}

// Reduction quad (n, quad) with X's and dY's offsets at it.
struct Step { n: u32, quad: u32, x_n: u32, dy_n: u32 }

fn step_of(n: u32, quad: u32) -> Step {
    return Step(n, quad, n * pg.c * pg.quads + quad, n * pg.k * pg.quads + quad);
}

fn step_at(sl: Slice, sg: Seg, t: u32) -> Step {
    return step_of(t / pg.quads, t % pg.quads);
}

fn step_next(st: Step) -> Step {
    var n = st.n;
    var quad = st.quad + 1u;
    if quad == pg.quads {
        quad = 0u;
        n++;
    }
    return step_of(n, quad);
}

fn lane_load(l: Lane, st: Step) -> vec4<f32> {
    return x[st.x_n + l.x_c];
}

fn uni_load(u: Uni, sg: Seg, st: Step) -> vec4<f32> {
    return dy[st.dy_n + u.dy_k];
}

fn store(sl: Slice, l: Lane, u: Uni, acc: vec4<f32>) {
    partial[sl.split * pg.out_len + u.k * pg.cg + l.c] = acc.x + acc.y + acc.z + acc.w;
}
