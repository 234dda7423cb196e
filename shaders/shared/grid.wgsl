// Prepended to every kernel: the linear workgroup grid that lets one dispatch exceed 65535
// workgroups per dimension. The host folds a long 1D grid into (x, y, z); kernels recover the
// linear index and skip the excess.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}
