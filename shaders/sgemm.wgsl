// Plain SGEMM C = A·B (A: M×K, B: K×N, C: M×N, row-major, N a multiple of 4) on the register
// core (shared/register_gemm.wgsl, appended): the ceiling micro-benchmark (`gpuconv sgemm`),
// the conv kernels' tile without any index mapping. Lane items are vec4 column quads of B and C,
// uniform items rows of A (their loads are uniform).

@group(0) @binding(0) var<uniform> sg: Sgemm;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

alias Acc = vec4<f32>;

fn grid() -> Grid {
    return Grid(sg.tiles_m, sg.tiles_n, sg.tiles_total, sg.n / 4u, sg.m);
}

struct Slice { unused: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

struct Lane { quad: u32 }

fn lane(sl: Slice, m: u32) -> Lane {
    return Lane(m);
}

struct Uni { row: u32, a_row: u32 }

fn uni(sl: Slice, n: u32) -> Uni {
    return Uni(n, n * sg.k);
}

fn segments(sl: Slice) -> u32 {
    return 1u;
}

struct Seg { unused: u32 }

fn segment(sl: Slice, i: u32) -> Seg {
    return Seg(i);
}

fn lane_seg(l: Lane, s: Seg) -> Lane {
    return l;
}

fn seg_range(sl: Slice, s: Seg) -> vec2<u32> {
    return vec2(0u, sg.k);
}

struct Step { t: u32 }

fn step_at(sl: Slice, s: Seg, t: u32) -> Step {
    return Step(t);
}

fn step_next(st: Step) -> Step {
    return Step(st.t + 1u);
}

fn lane_load(l: Lane, st: Step) -> vec4<f32> {
    return b[st.t * (sg.n / 4u) + l.quad];
}

fn uni_load(u: Uni, s: Seg, st: Step) -> vec4<f32> {
    return vec4(a[u.a_row + st.t]);
}

fn store(sl: Slice, l: Lane, u: Uni, acc: vec4<f32>) {
    c[u.row * (sg.n / 4u) + l.quad] = acc;
}
