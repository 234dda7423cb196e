// Bias gradient db[k] = Σ_{n,i} dY[n,k,i] over the plane's `plane` elements: one workgroup per
// channel k, each invocation sums a fixed strided share in runs of RUN terms (a share runs to
// tens of thousands of terms on large planes; summing run totals keeps the rounding error near
// that of a tree), then a tree in workgroup memory; the order never changes, so results repeat
// bit for bit.

@group(0) @binding(0) var<uniform> bg: BiasGrad;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const WG: u32 = 256u;
const RUN: u32 = 64u;
var<workgroup> partial_sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    // Every invocation of the workgroup reaches the barriers: no early return before them.
    let k = linear_workgroup(wid, nwg);
    let k_in_range = k < bg.k;
    var sum = 0.0;
    if k_in_range {
        // A count of steps rather than `i < plane; i += WG`, which could wrap near 2^32.
        let steps = select(0u, (bg.plane - lid.x - 1u) / WG + 1u, lid.x < bg.plane);
        for (var n = 0u; n < bg.n; n++) {
            let base = (n * bg.k + k) * bg.plane + lid.x;
            for (var j0 = 0u; j0 < steps; j0 += RUN) {
                var run = 0.0;
                for (var j = j0; j < min(j0 + RUN, steps); j++) {
                    run += dy[base + j * WG];
                }
                sum += run;
            }
        }
    }
    partial_sums[lid.x] = sum;
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if lid.x < stride {
            partial_sums[lid.x] += partial_sums[lid.x + stride];
        }
    }
    if k_in_range && lid.x == 0u {
        db[k] = partial_sums[0];
    }
}
