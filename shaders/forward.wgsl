// Forward convolution Y = conv(X, W) (+ b) as an implicit GEMM: GEMM rows are output pixels
// (n, p, q), columns are output channels of one group, the reduction runs over that group's
// (c, r, s). Each invocation holds a TM×TN register tile; the group is part of the grid.
// TM and TN are generated constants, WG_X/WG_Y pipeline overrides (see gpu/kernels.rs).

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = linear_workgroup(wid, nwg);
    if tile >= cv.tiles_total { return; }
    let tile_m = tile % cv.tiles_m;
    let tile_n = (tile / cv.tiles_m) % cv.tiles_n;
    let g = tile / (cv.tiles_m * cv.tiles_n);

    let hw = cv.h * cv.w;
    let rs = cv.r * cv.s;
    let pq = cv.p * cv.q;

    // Rows j of this invocation are WG_X apart so neighbouring lanes read neighbouring pixels.
    var x_base: array<u32, TM>;
    var ih0: array<i32, TM>;
    var iw0: array<i32, TM>;
    var row_ok: array<bool, TM>;
    for (var j = 0u; j < TM; j++) {
        let m = (tile_m * TM + j) * WG_X + lid.x;
        row_ok[j] = m < cv.rows;
        let mm = min(m, cv.rows - 1u);
        let n = mm / pq;
        let pix = mm % pq;
        x_base[j] = (n * cv.c + g * cv.cg) * hw;
        ih0[j] = i32((pix / cv.q) * cv.stride_h) - i32(cv.pad_top);
        iw0[j] = i32((pix % cv.q) * cv.stride_w) - i32(cv.pad_left);
    }
    var w_base: array<u32, TN>;
    var col_ok: array<bool, TN>;
    for (var i = 0u; i < TN; i++) {
        let kk = (tile_n * TN + i) * WG_Y + lid.y;
        col_ok[i] = kk < cv.kg;
        w_base[i] = (g * cv.kg + min(kk, cv.kg - 1u)) * cv.cg * rs;
    }

    var acc: array<f32, TM * TN>;
    for (var c = 0u; c < cv.cg; c++) {
        for (var r = 0u; r < cv.r; r++) {
            for (var s = 0u; s < cv.s; s++) {
                var a: array<f32, TM>;
                for (var j = 0u; j < TM; j++) {
                    let ih = ih0[j] + i32(r * cv.dil_h);
                    let iw = iw0[j] + i32(s * cv.dil_w);
                    a[j] = 0.0;
                    if row_ok[j] && ih >= 0 && ih < i32(cv.h) && iw >= 0 && iw < i32(cv.w) {
                        a[j] = x[x_base[j] + c * hw + u32(ih) * cv.w + u32(iw)];
                    }
                }
                let w_off = c * rs + r * cv.s + s;
                for (var i = 0u; i < TN; i++) {
                    let b = wt[w_base[i] + w_off];
                    for (var j = 0u; j < TM; j++) {
                        acc[j * TN + i] = fma(a[j], b, acc[j * TN + i]);
                    }
                }
            }
        }
    }

    for (var j = 0u; j < TM; j++) {
        if !row_ok[j] { continue; }
        let m = (tile_m * TM + j) * WG_X + lid.x;
        let n = m / pq;
        let pix = m % pq;
        for (var i = 0u; i < TN; i++) {
            if !col_ok[i] { continue; }
            let kk = g * cv.kg + (tile_n * TN + i) * WG_Y + lid.y;
            var v = acc[j * TN + i];
            if cv.has_bias != 0u { v += bias[kk]; }
            y[(n * cv.k + kk) * pq + pix] = v;
        }
    }
}
