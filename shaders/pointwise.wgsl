// 1×1, stride-1, unpadded convolution as a plain batched GEMM on vec4 pixel quads, on the
// register core (shared/register_gemm.wgsl, appended):
//   dst[n, g·out_g + u, quad] = Σ_t A(g, u, t) · src[n, g·red_g + t, quad] (+ bias[g·out_g + u])
// with A(g, u, t) = wt[g·out_g·red_g + u·a_stride_out + t·a_stride_red]. The forward pass uses it
// with src = X, dst = Y, u over K/g, t over C/g; the input gradient with src = dY, dst = dX, u
// over C/g, t over K/g (the weight read transposed). Lane items are pixel quads (the host
// requires H·W to be a multiple of 4), uniform items output channels, so weight loads are uniform.

@group(0) @binding(0) var<uniform> pw: Pointwise;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> pre: array<vec4<f32>>;

alias Act = vec4<f32>;
alias ActBits = vec4<u32>;

// The fused epilogue's run-time values (shared/epilogue.wgsl).
fn epi_params() -> vec4<f32> {
    return vec4(pw.alpha, pw.beta, pw.act_a, pw.act_b);
}

alias Acc = vec4<f32>;

fn grid() -> Grid {
    return Grid(pw.tiles_m, pw.tiles_n, pw.tiles_total, pw.rows, pw.out_g);
}

struct Slice { group: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

// Quad m: src at the group's first reduced channel, dst at channel 0.
struct Lane { src_base: u32, dst_base: u32 }

fn lane(sl: Slice, m: u32) -> Lane {
    let n = m / pw.quads;
    let quad = m % pw.quads;
    return Lane((n * pw.src_c + sl.group * pw.red_g) * pw.quads + quad, n * pw.dst_c * pw.quads + quad);
}

// Output channel n of the group: its weight base and its bias (loaded once per channel).
struct Uni { ch: u32, a_base: u32, b: f32 }

fn uni(sl: Slice, n: u32) -> Uni {
    let ch = sl.group * pw.out_g + n;
    var b = 0.0;
    if pw.has_bias != 0u { b = bias[ch]; }
    return Uni(ch, sl.group * pw.out_g * pw.red_g + n * pw.a_stride_out, b);
}

fn segments(sl: Slice) -> u32 {
    return 1u;
}

struct Seg { unused: u32 }

fn segment(sl: Slice, i: u32) -> Seg {
    return Seg(i);
}

fn lane_seg(l: Lane, sg: Seg) -> Lane {
    return l;
}

fn seg_range(sl: Slice, sg: Seg) -> vec2<u32> {
    return vec2(0u, pw.red_g);
}

struct Step { t: u32 }

fn step_at(sl: Slice, sg: Seg, t: u32) -> Step {
    return Step(t);
}

fn step_next(st: Step) -> Step {
    return Step(st.t + 1u);
}

fn lane_load(l: Lane, st: Step) -> vec4<f32> {
    return src[l.src_base + st.t * pw.quads];
}

fn uni_load(u: Uni, sg: Seg, st: Step) -> vec4<f32> {
    return vec4(wt[u.a_base + st.t * pw.a_stride_red]);
}

fn store(sl: Slice, l: Lane, u: Uni, acc: vec4<f32>) {
    let i = l.dst_base + u.ch * pw.quads;
    dst[i] = finish(acc, u.b, i);
}
