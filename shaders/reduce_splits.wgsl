// Second pass of split-K: out[i] = Σ_t partial[t·out_len + i] over the splits in index order,
// so the sum is the same on every run.

@group(0) @binding(0) var<uniform> rd: Reduce;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= rd.out_len { return; }
    var sum = 0.0;
    for (var t = 0u; t < rd.splits; t++) {
        sum += partial[t * rd.out_len + i];
    }
    out[i] = sum;
}
