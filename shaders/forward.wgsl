// Forward convolution Y = conv(X, W) (+ b) as an implicit GEMM: GEMM rows are output pixels
// (n, p, q), columns are output channels of one group, the reduction runs over that group's
// (c, r, s); the group is part of the grid.
//
// Tile (see gpu/kernels.rs): each invocation holds LANE_TILE pixels × UNIFORM_TILE channels.
// The pixels differ per invocation (gathered X loads); the channels are the same for the whole
// workgroup, so their weight loads are uniform (one scalar load broadcast on SIMD back ends).
// `//#for` blocks are unrolled by the host so the tile lives in registers.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WG: u32 = 32u;

@compute @workgroup_size(WG)
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
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;

    // Lane items: pixels WG apart so neighbouring invocations read neighbouring pixels.
//#for i in LANE_TILE
    let m{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let mm{i} = min(m{i}, cv.rows - 1u);
    let x_base{i} = ((mm{i} / pq) * cv.c + g * cv.cg) * hw;
    let ih0_{i} = i32((mm{i} % pq) / cv.q * cv.stride_h) - i32(cv.pad_top);
    let iw0_{i} = i32((mm{i} % cv.q) * cv.stride_w) - i32(cv.pad_left);
//#end
    // Uniform items: output channels (clamped; the store skips the excess).
    let k0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let w_base{j} = (g * cv.kg + min(k0 + {j}u, cv.kg - 1u)) * cv.cg * rs;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = 0.0;
//#end
//#end

    // Taps outermost: each pixel's input offset and padding test are worked out once per tap,
    // and the innermost loop over channels is one load per pixel and one per channel.
    for (var r = 0u; r < cv.r; r++) {
        let dh = i32(r * cv.dil_h);
        for (var s = 0u; s < cv.s; s++) {
            let dw = i32(s * cv.dil_w);
            // Padding reads a clamped in-bounds element and selects zero: no branch.
//#for i in LANE_TILE
            let ih{i} = ih0_{i} + dh;
            let iw{i} = iw0_{i} + dw;
            let ok{i} = ih{i} >= 0 && ih{i} <= h_max && iw{i} >= 0 && iw{i} <= w_max;
            let off{i} = x_base{i} + u32(clamp(ih{i}, 0, h_max)) * cv.w + u32(clamp(iw{i}, 0, w_max));
//#end
            let tap = r * cv.s + s;
            for (var c = 0u; c < cv.cg; c++) {
//#for i in LANE_TILE
                let a{i} = select(0.0, x[off{i} + c * hw], ok{i});
//#end
                let w_off = c * rs + tap;
//#for j in UNIFORM_TILE
                let b{j} = wt[w_base{j} + w_off];
//#for i in LANE_TILE
                acc{j}_{i} = fma(a{i}, b{j}, acc{j}_{i});
//#end
//#end
            }
        }
    }

//#for j in UNIFORM_TILE
    if k0 + {j}u < cv.kg {
        let kk = g * cv.kg + k0 + {j}u;
        var b = 0.0;
        if cv.has_bias != 0u { b = bias[kk]; }
//#for i in LANE_TILE
        if m{i} < cv.rows {
            y[((m{i} / pq) * cv.k + kk) * pq + m{i} % pq] = acc{j}_{i} + b;
        }
//#end
    }
//#end
}
