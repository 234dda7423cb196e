// The input gradient's border pixels, exactly, when the weights hold a NaN or ±∞ (flag set by
// nonfinite.wgsl; otherwise every invocation returns at once). The GEMM and direct kernels read
// dY as zero outside its extent and still multiply by the tap's weight; with a finite weight that
// adds nothing, but 0·∞ is NaN, where PyTorch's sum has no such term. Only pixels near the edges
// have taps that miss dY: rows [0, border_top) and [h − border_bottom, h), and in the rows
// between, columns [0, border_left) and [w − border_right, w). One invocation per such pixel
// recomputes Σ_k Σ_{taps meeting a whole output position inside dY} dY·W, and overwrites dX.

@group(0) @binding(0) var<uniform> bd: Border;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> flag: array<u32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= bd.pixels || flag[0] == 0u { return; }
    // The pixel: plane (n, channel), then top rows, bottom rows, then the side columns.
    let band_rows = bd.border_top + bd.border_bottom;
    let sides = bd.border_left + bd.border_right;
    let per_plane = band_rows * bd.w + (bd.h - band_rows) * sides;
    let plane = i / per_plane;
    let j = i % per_plane;
    var h = 0u;
    var w = 0u;
    if j < band_rows * bd.w {
        let row = j / bd.w;
        h = select(bd.h - bd.border_bottom + (row - bd.border_top), row, row < bd.border_top);
        w = j % bd.w;
    } else {
        let k = j - band_rows * bd.w;
        h = bd.border_top + k / sides;
        let col = k % sides;
        w = select(bd.w - bd.border_right + (col - bd.border_left), col, col < bd.border_left);
    }
    let n = plane / bd.c;
    let ch = plane % bd.c;
    let g = ch / bd.cg;
    let c = ch % bd.cg;
    var sum = 0.0;
    for (var k = 0u; k < bd.kg; k++) {
        let kk = g * bd.kg + k;
        let dy_base = (n * bd.k + kk) * bd.p * bd.q;
        let w_base = (kk * bd.cg + c) * bd.r * bd.s;
        for (var r = 0u; r < bd.r; r++) {
            let ph = i32(h + bd.pad_top) - i32(r * bd.dil_h);
            if ph < 0 || ph % i32(bd.stride_h) != 0 { continue; }
            let p = u32(ph) / bd.stride_h;
            if p >= bd.p { continue; }
            for (var s = 0u; s < bd.s; s++) {
                let pw = i32(w + bd.pad_left) - i32(s * bd.dil_w);
                if pw < 0 || pw % i32(bd.stride_w) != 0 { continue; }
                let q = u32(pw) / bd.stride_w;
                if q >= bd.q { continue; }
                sum += dy[dy_base + p * bd.q + q] * wt[w_base + r * bd.s + s];
            }
        }
    }
    dx[((n * bd.c + ch) * bd.h + h) * bd.w + w] = sum;
}
