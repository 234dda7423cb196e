// Bias gradient db[k] = Σ_{n,p,q} dY[n,k,p,q]: one workgroup per channel k, each invocation
// sums a fixed strided share, then a tree in workgroup memory; the order never changes, so
// results repeat bit for bit.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial_sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    // Every invocation of the workgroup reaches the barriers: no early return before them.
    let k = linear_workgroup(wid, nwg);
    let k_in_range = k < cv.k;
    let pq = cv.p * cv.q;
    var sum = 0.0;
    if k_in_range {
        for (var n = 0u; n < cv.n; n++) {
            let base = (n * cv.k + k) * pq;
            for (var i = lid.x; i < pq; i += WG) {
                sum += dy[base + i];
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
