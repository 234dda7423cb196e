// Shared by every conv kernel: the problem uniform (mirrored by `gpu::uniform::ConvUniform`)
// and the linear workgroup grid that lets one dispatch exceed 65535 workgroups per dimension.

struct Conv {
    n: u32, c: u32, h: u32, w: u32,
    k: u32, r: u32, s: u32, groups: u32,
    p: u32, q: u32, cg: u32, kg: u32,
    stride_h: u32, stride_w: u32, pad_top: u32, pad_left: u32,
    dil_h: u32, dil_w: u32, has_bias: u32, rows: u32,
    tiles_m: u32, tiles_n: u32, tiles_total: u32, cols: u32,
    phase_h: u32, phase_w: u32, phase_rows_h: u32, phase_rows_w: u32,
    splits: u32, split_len: u32, red_len: u32, out_len: u32,
    a_stride_out: u32, a_stride_red: u32, tap_r0: u32, tap_r_step: u32,
    tap_rn: u32, tap_s0: u32, tap_s_step: u32, tap_sn: u32,
}

// Workgroups are numbered x fastest; the host folds a long 1D grid into (x, y, z).
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}

// Uniform of the direct depthwise kernels (mirrored by `gpu::uniform::DepthwiseUniform`):
// dst[n, oc, p, q] = Σ_{j<terms} Σ_{r,s} src[n, ic, p·SH + off_h + r·DH, q·SW + off_w + s·DW]
//                    · wt[wc, tap(r, s)], ic = (oc / chan_div)·chan_mult + j,
// wc = ic and taps flipped when `flip` (input gradient), else wc = oc (forward).
struct Depthwise {
    n: u32, in_c: u32, out_c: u32, terms: u32,
    in_h: u32, in_w: u32, out_h: u32, out_w: u32,
    off_h: i32, off_w: i32, flip: u32, chan_div: u32,
    chan_mult: u32, blocks_h: u32, blocks_w: u32, chunks: u32,
    tiles_total: u32, splits: u32, out_len: u32, has_bias: u32,
}
