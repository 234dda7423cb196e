// Input gradient dX as an implicit GEMM over one stride phase: GEMM rows are the input pixels
// (n, h, w) with h ≡ phase_h (mod sh) and w ≡ phase_w (mod sw), columns are input channels of
// one group, the reduction runs over that group's output channels k and the kernel taps (r, s)
// that land on a whole output position for this phase. Because every row of a dispatch shares
// its phase, a tap is either valid for all rows or for none: no multiply lands in a stride hole,
// and the test is integer arithmetic on the phase, uniform across the workgroup.
//
// Tile (see gpu/kernels.rs): each invocation holds LANE_TILE pixels × UNIFORM_TILE channels;
// the channels are shared by the workgroup, so weight loads are uniform. `//#for` blocks are
// unrolled by the host.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override WG: u32 = 32u;

// True when kernel offset `off` (= r·dh) maps pixels of phase `phase` onto whole output positions.
fn tap_in_phase(phase: u32, pad: u32, off: u32, stride: u32) -> bool {
    // (phase + pad − off) mod stride == 0, kept non-negative by adding a multiple of stride.
    return (phase + pad + stride * (off / stride + 1u) - off) % stride == 0u;
}

@compute @workgroup_size(WG)
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
    let p_max = i32(cv.p) - 1;
    let q_max = i32(cv.q) - 1;

    // Lane items: input pixels of this phase; th/tw are the padded coordinates h + top, w + left.
//#for i in LANE_TILE
    let m{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let mm{i} = min(m{i}, cv.rows - 1u);
    let n{i} = mm{i} / phase_pix;
    let h{i} = cv.phase_h + ((mm{i} % phase_pix) / cv.phase_rows_w) * cv.stride_h;
    let w{i} = cv.phase_w + ((mm{i} % phase_pix) % cv.phase_rows_w) * cv.stride_w;
    let dy_base{i} = (n{i} * cv.k + g * cv.kg) * pq;
    let th{i} = i32(h{i} + cv.pad_top);
    let tw{i} = i32(w{i} + cv.pad_left);
//#end
    // Uniform items: input channels of the group (clamped; the store skips the excess).
    let c0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let w_col{j} = min(c0 + {j}u, cv.cg - 1u) * rs;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = 0.0;
//#end
//#end

    for (var r = 0u; r < cv.r; r++) {
        if !tap_in_phase(cv.phase_h, cv.pad_top, r * cv.dil_h, cv.stride_h) { continue; }
        for (var s = 0u; s < cv.s; s++) {
            if !tap_in_phase(cv.phase_w, cv.pad_left, s * cv.dil_w, cv.stride_w) { continue; }
            // Output position each pixel meets through this tap; outside Y reads a clamped
            // element and selects zero (exact division: the phase test made it whole).
//#for i in LANE_TILE
            let ph{i} = th{i} - i32(r * cv.dil_h);
            let pw{i} = tw{i} - i32(s * cv.dil_w);
            let p{i} = select(-1, ph{i} / i32(cv.stride_h), ph{i} >= 0);
            let q{i} = select(-1, pw{i} / i32(cv.stride_w), pw{i} >= 0);
            let ok{i} = p{i} >= 0 && p{i} <= p_max && q{i} >= 0 && q{i} <= q_max;
            let y_off{i} = dy_base{i} + u32(clamp(p{i}, 0, p_max)) * cv.q + u32(clamp(q{i}, 0, q_max));
//#end
            let rs_off = r * cv.s + s;
            for (var kk = 0u; kk < cv.kg; kk++) {
//#for i in LANE_TILE
                let a{i} = select(0.0, dy[y_off{i} + kk * pq], ok{i});
//#end
                let w_k = (g * cv.kg + kk) * cv.cg * rs + rs_off;
//#for j in UNIFORM_TILE
                let b{j} = wt[w_k + w_col{j}];
//#for i in LANE_TILE
                acc{j}_{i} = fma(a{i}, b{j}, acc{j}_{i});
//#end
//#end
            }
        }
    }

    let hw = cv.h * cv.w;
//#for i in LANE_TILE
    if m{i} < cv.rows {
        let dx_base = ((n{i} * cv.c + g * cv.cg + c0) * cv.h + h{i}) * cv.w + w{i};
//#for j in UNIFORM_TILE
        if c0 + {j}u < cv.cg {
            dx[dx_base + {j}u * hw] = acc{j}_{i};
        }
//#end
    }
//#end
}
