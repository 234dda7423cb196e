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
}

// Workgroups are numbered x fastest; the host folds a long 1D grid into (x, y, z).
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
