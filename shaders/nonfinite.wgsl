// Sets flag[0] to 1 when any of the first `len` values is NaN or ±∞ (all exponent bits set):
// the input gradient's border pass (input_grad_border.wgsl) only has work when the weights hold
// such a value, and reads this flag to skip it otherwise.

@group(0) @binding(0) var<uniform> sc: Scan;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> flag: array<atomic<u32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= sc.len { return; }
    if (bitcast<u32>(values[i]) & 0x7f800000u) == 0x7f800000u {
        atomicOr(&flag[0], 1u);
    }
}
