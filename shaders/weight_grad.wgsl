// Weight gradient dW as a GEMM: rows are output channels k of one group, columns are that
// group's (c, r, s), the reduction runs over (n, p, q). Split-K: split `t` of the grid sums
// reduction indices [t·split_len, (t+1)·split_len) into its own slice of `partial`; the
// reduce_splits kernel then adds the slices in a fixed order, so results repeat bit for bit.
// With one split `partial` is dW itself.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

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
    let rest = tile / (cv.tiles_m * cv.tiles_n);
    let g = rest % cv.groups;
    let split = rest / cv.groups;

    let pq = cv.p * cv.q;
    let hw = cv.h * cv.w;
    let rs = cv.r * cv.s;
    let crs = cv.cg * rs;

    // Rows: output channels (dY planes). Columns: one (c, r, s) each, decoded once.
    var dy_k: array<u32, TM>;
    var row_ok: array<bool, TM>;
    for (var j = 0u; j < TM; j++) {
        let kk = (tile_m * TM + j) * WG_X + lid.x;
        row_ok[j] = kk < cv.kg;
        dy_k[j] = (g * cv.kg + min(kk, cv.kg - 1u)) * pq;
    }
    var x_c: array<u32, TN>;
    var off_h: array<i32, TN>;
    var off_w: array<i32, TN>;
    var col_ok: array<bool, TN>;
    for (var i = 0u; i < TN; i++) {
        let col = (tile_n * TN + i) * WG_Y + lid.y;
        col_ok[i] = col < crs;
        let cl = min(col, crs - 1u);
        let c = cl / rs;
        let r = (cl % rs) / cv.s;
        let s = cl % cv.s;
        x_c[i] = (g * cv.cg + c) * hw;
        off_h[i] = i32(r * cv.dil_h) - i32(cv.pad_top);
        off_w[i] = i32(s * cv.dil_w) - i32(cv.pad_left);
    }

    var acc: array<f32, TM * TN>;
    let t0 = split * cv.split_len;
    let t1 = min(t0 + cv.split_len, cv.red_len);
    // Walk (n, p, q) incrementally from t0.
    var n = t0 / pq;
    var p = (t0 % pq) / cv.q;
    var q = t0 % cv.q;
    for (var t = t0; t < t1; t++) {
        let pix = p * cv.q + q;
        var a: array<f32, TM>;
        for (var j = 0u; j < TM; j++) {
            a[j] = dy[n * cv.k * pq + dy_k[j] + pix];
        }
        let ih0 = i32(p * cv.stride_h);
        let iw0 = i32(q * cv.stride_w);
        let x_n = n * cv.c * hw;
        for (var i = 0u; i < TN; i++) {
            let ih = ih0 + off_h[i];
            let iw = iw0 + off_w[i];
            var b = 0.0;
            if ih >= 0 && ih < i32(cv.h) && iw >= 0 && iw < i32(cv.w) {
                b = x[x_n + x_c[i] + u32(ih) * cv.w + u32(iw)];
            }
            for (var j = 0u; j < TM; j++) {
                acc[j * TN + i] = fma(a[j], b, acc[j * TN + i]);
            }
        }
        q++;
        if q == cv.q {
            q = 0u;
            p++;
            if p == cv.p {
                p = 0u;
                n++;
            }
        }
    }

    for (var j = 0u; j < TM; j++) {
        if !row_ok[j] { continue; }
        let kk = g * cv.kg + (tile_m * TM + j) * WG_X + lid.x;
        for (var i = 0u; i < TN; i++) {
            if !col_ok[i] { continue; }
            let col = (tile_n * TN + i) * WG_Y + lid.y;
            partial[split * cv.out_len + kk * crs + col] = acc[j * TN + i];
        }
    }
}
