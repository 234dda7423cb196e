// Input gradient dX as an implicit GEMM over one stride phase: GEMM rows are the input pixels
// (n, h, w) with h ≡ phase_h (mod sh) and w ≡ phase_w (mod sw), columns are input channels of
// one group, the reduction runs over that group's output channels k and the kernel taps (r, s)
// that land on a whole output position for this phase. Because every row of a dispatch shares
// its phase, a tap is either valid for all rows or for none: no multiply lands in a stride hole,
// and the test is integer arithmetic on the phase, uniform across the workgroup.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override WG_X: u32 = 16u;
override WG_Y: u32 = 4u;

// True when kernel offset `off` (= r·dh) maps pixels of phase `phase` onto whole output positions.
fn tap_in_phase(phase: u32, pad: u32, off: u32, stride: u32) -> bool {
    // (phase + pad − off) mod stride == 0, kept non-negative by adding a multiple of stride.
    return (phase + pad + stride * (off / stride + 1u) - off) % stride == 0u;
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = linear_workgroup(wid, nwg);
    if tile >= cv.tiles_total { return; }
    let tile_m = tile % cv.tiles_m;
    let tile_n = (tile / cv.tiles_m) % cv.tiles_n;
    let g = tile / (cv.tiles_m * cv.tiles_n);

    let pq = cv.p * cv.q;
    let rs = cv.r * cv.s;
    let phase_pix = cv.phase_rows_h * cv.phase_rows_w;

    // Per row: where its dY plane starts, and the padded coordinates h + top, w + left.
    var dy_base: array<u32, TM>;
    var th: array<i32, TM>;
    var tw: array<i32, TM>;
    var row_ok: array<bool, TM>;
    var dx_index: array<u32, TM>;
    for (var j = 0u; j < TM; j++) {
        let m = (tile_m * TM + j) * WG_X + lid.x;
        row_ok[j] = m < cv.rows;
        let mm = min(m, cv.rows - 1u);
        let n = mm / phase_pix;
        let pix = mm % phase_pix;
        let h = cv.phase_h + (pix / cv.phase_rows_w) * cv.stride_h;
        let w = cv.phase_w + (pix % cv.phase_rows_w) * cv.stride_w;
        dy_base[j] = (n * cv.k + g * cv.kg) * pq;
        th[j] = i32(h + cv.pad_top);
        tw[j] = i32(w + cv.pad_left);
        dx_index[j] = ((n * cv.c + g * cv.cg) * cv.h + h) * cv.w + w;
    }
    var col_ok: array<bool, TN>;
    var w_col: array<u32, TN>;
    for (var i = 0u; i < TN; i++) {
        let cc = (tile_n * TN + i) * WG_Y + lid.y;
        col_ok[i] = cc < cv.cg;
        w_col[i] = min(cc, cv.cg - 1u) * rs;
    }

    var acc: array<f32, TM * TN>;
    for (var r = 0u; r < cv.r; r++) {
        if !tap_in_phase(cv.phase_h, cv.pad_top, r * cv.dil_h, cv.stride_h) { continue; }
        for (var s = 0u; s < cv.s; s++) {
            if !tap_in_phase(cv.phase_w, cv.pad_left, s * cv.dil_w, cv.stride_w) { continue; }
            // Output position of each row for this tap, or -1 where it falls outside Y.
            var y_off: array<i32, TM>;
            for (var j = 0u; j < TM; j++) {
                let ph = th[j] - i32(r * cv.dil_h);
                let pw = tw[j] - i32(s * cv.dil_w);
                let p = ph / i32(cv.stride_h);
                let q = pw / i32(cv.stride_w);
                y_off[j] = -1;
                if row_ok[j] && ph >= 0 && pw >= 0 && p < i32(cv.p) && q < i32(cv.q) {
                    y_off[j] = p * i32(cv.q) + q;
                }
            }
            let rs_off = r * cv.s + s;
            for (var kk = 0u; kk < cv.kg; kk++) {
                var a: array<f32, TM>;
                for (var j = 0u; j < TM; j++) {
                    a[j] = 0.0;
                    if y_off[j] >= 0 {
                        a[j] = dy[dy_base[j] + kk * pq + u32(y_off[j])];
                    }
                }
                let w_k = (g * cv.kg + kk) * cv.cg * rs + rs_off;
                for (var i = 0u; i < TN; i++) {
                    let b = wt[w_k + w_col[i]];
                    for (var j = 0u; j < TM; j++) {
                        acc[j * TN + i] = fma(a[j], b, acc[j * TN + i]);
                    }
                }
            }
        }
    }

    let hw = cv.h * cv.w;
    for (var j = 0u; j < TM; j++) {
        if !row_ok[j] { continue; }
        for (var i = 0u; i < TN; i++) {
            if !col_ok[i] { continue; }
            let cc = (tile_n * TN + i) * WG_Y + lid.y;
            dx[dx_index[j] + cc * hw] = acc[j * TN + i];
        }
    }
}
