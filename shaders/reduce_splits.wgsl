// Adds partial sums in a fixed order, so the result is the same on every run:
//   out[o + i] = (accumulate ? out[o + i] : 0) + Σ_t partial[t·out_len + i] over the splits in
//   index order, o = out_offset.
// Split-K's second pass (accumulate 0), and adding one tile's partial gradient into the output
// when a problem runs in tiles (accumulate 1, splits 1, out_offset where the tile lands).

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
    let o = rd.out_offset + i;
    var sum = 0.0;
    if rd.accumulate != 0u { sum = out[o]; }
    for (var t = 0u; t < rd.splits; t++) {
        sum += partial[t * rd.out_len + i];
    }
    out[o] = sum;
}
