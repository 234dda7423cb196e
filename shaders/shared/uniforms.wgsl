// Prepended to every kernel: the uniform of each kernel family. Each struct is mirrored field for
// field by a Rust struct in `src/gpu/uniform.rs`, and the reflection test (tests/interfaces.rs)
// checks names, offsets and types against that one description.

// The implicit-GEMM passes (register and block cores, every stride phase, split-K) and col2im.
struct Conv {
    n: u32, c: u32, h: u32, w: u32,
    k: u32, r: u32, s: u32, groups: u32,
    p: u32, q: u32, cg: u32, kg: u32,
    stride_h: u32, stride_w: u32, pad_top: u32, pad_left: u32,
    dil_h: u32, dil_w: u32, has_bias: u32, rows: u32,
    cols: u32, tiles_m: u32, tiles_n: u32, tiles_total: u32,
    phase_h: u32, phase_w: u32, phase_rows_h: u32, phase_rows_w: u32,
    tap_r0: u32, tap_r_step: u32, tap_rn: u32, tap_s0: u32,
    tap_s_step: u32, tap_sn: u32, splits: u32, split_len: u32,
    red_len: u32, out_len: u32, alpha: f32, beta: f32,
    act_a: f32, act_b: f32,
}

// The plain GEMM of 1×1 stride-1 passes on vec4 pixel quads (pointwise.wgsl):
// dst[n, g·out_g + u, quad] = Σ_t A(g, u, t)·src[n, g·red_g + t, quad] (+ bias),
// A(g, u, t) = wt[g·out_g·red_g + u·a_stride_out + t·a_stride_red].
struct Pointwise {
    quads: u32, src_c: u32, dst_c: u32, red_g: u32,
    out_g: u32, a_stride_out: u32, a_stride_red: u32, has_bias: u32,
    rows: u32, tiles_m: u32, tiles_n: u32, tiles_total: u32,
    alpha: f32, beta: f32, act_a: f32, act_b: f32,
}

// The 1×1 stride-1 weight gradient on vec4 pixel quads, split-K (pointwise_weight_grad.wgsl).
struct PointwiseWeightGrad {
    quads: u32, c: u32, k: u32, cg: u32,
    kg: u32, groups: u32, tiles_m: u32, tiles_n: u32,
    tiles_total: u32, splits: u32, split_len: u32, red_len: u32,
    out_len: u32,
}

// The direct depthwise kernels:
// dst[n, oc, p, q] = Σ_{j<terms} Σ_{r,s} src[n, ic, p·SH + off_h + r·DH, q·SW + off_w + s·DW]
//                    · wt[wc, tap(r, s)], ic = (oc / chan_div)·chan_mult + j,
// wc = ic and taps flipped when `flip` (input gradient), else wc = oc (forward); src is read on
// its grid upsampled by the generated UH, UW (a strided input gradient's stride holes).
struct Depthwise {
    n: u32, in_c: u32, out_c: u32, terms: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    off_h: i32, off_w: i32, flip: u32, chan_div: u32,
    chan_mult: u32, blocks_h: u32, blocks_w: u32, chunks: u32,
    tiles_total: u32, splits: u32, out_len: u32, has_bias: u32,
    alpha: f32, beta: f32, act_a: f32, act_b: f32,
}

// Adding `splits` slices of `out_len` partial sums in index order, onto the output's own values
// when `accumulate` (reduce_splits.wgsl).
struct Reduce {
    splits: u32, out_len: u32, accumulate: u32, out_offset: u32,
}

// The epilogue's elementwise passes (epilogue.wgsl, activation_grad.wgsl): `len` elements from
// output element `first`, planes of `plane` elements in `channels` channels (the bias index);
// alpha is the gradient's scale in activation_grad.wgsl.
struct Elementwise {
    len: u32, first: u32, plane: u32, channels: u32,
    has_bias: u32, from_output: u32, alpha: f32, beta: f32,
    act_a: f32, act_b: f32,
}

// Scanning `len` values (nonfinite.wgsl).
struct Scan {
    len: u32,
}

// The input gradient's border pixels (input_grad_border.wgsl): the problem's geometry, the widths
// of the border bands and the number of border pixels over all planes.
struct Border {
    n: u32, c: u32, h: u32, w: u32,
    k: u32, r: u32, s: u32, p: u32,
    q: u32, cg: u32, kg: u32, stride_h: u32,
    stride_w: u32, pad_top: u32, pad_left: u32, dil_h: u32,
    dil_w: u32, border_top: u32, border_bottom: u32, border_left: u32,
    border_right: u32, pixels: u32,
}

// db[k] = Σ_{n, i < plane} dY[n, k, i] (bias_grad.wgsl).
struct BiasGrad {
    n: u32, k: u32, plane: u32,
}

// C (M×N) = A (M×K) · B (K×N), row-major, N a multiple of 4 (sgemm.wgsl).
struct Sgemm {
    m: u32, n: u32, k: u32, tiles_m: u32,
    tiles_n: u32, tiles_total: u32,
}
