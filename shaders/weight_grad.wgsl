// Weight gradient dW as a GEMM: rows are output channels k of one group, columns are that
// group's (c, r, s), the reduction runs over (n, p, q). Split-K: split `t` of the grid sums
// reduction indices [t·split_len, (t+1)·split_len) into its own slice of `partial`; the
// reduce_splits kernel then adds the slices in a fixed order, so results repeat bit for bit.
// With one split `partial` is dW itself.
//
// Tile (see gpu/kernels.rs): each invocation holds LANE_TILE columns (c, r, s) × UNIFORM_TILE
// output channels; the channels are shared by the workgroup, so dY loads are uniform and only
// the X loads are gathered. `//#for` blocks are unrolled by the host.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

override WG: u32 = 32u;

@compute @workgroup_size(WG)
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
    let h_max = i32(cv.h) - 1;
    let w_max = i32(cv.w) - 1;

    // Lane items: one weight column (c, r, s) each, decoded once.
//#for i in LANE_TILE
    let col{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let cl{i} = min(col{i}, crs - 1u);
    let x_c{i} = (g * cv.cg + cl{i} / rs) * hw;
    let off_h{i} = i32((cl{i} % rs) / cv.s * cv.dil_h) - i32(cv.pad_top);
    let off_w{i} = i32((cl{i} % cv.s) * cv.dil_w) - i32(cv.pad_left);
//#end
    // Uniform items: output channels (clamped; the store skips the excess).
    let k0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let dy_k{j} = (g * cv.kg + min(k0 + {j}u, cv.kg - 1u)) * pq;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = 0.0;
//#end
//#end

    let t0 = split * cv.split_len;
    let t1 = min(t0 + cv.split_len, cv.red_len);
    // Walk (n, p, q) incrementally from t0.
    var n = t0 / pq;
    var p = (t0 % pq) / cv.q;
    var q = t0 % cv.q;
    for (var t = t0; t < t1; t++) {
        let dy_n = n * cv.k * pq + p * cv.q + q;
        let ih_base = i32(p * cv.stride_h);
        let iw_base = i32(q * cv.stride_w);
        let x_n = n * cv.c * hw;
        // Padding reads a clamped in-bounds element and selects zero: no branch.
//#for i in LANE_TILE
        let ih{i} = ih_base + off_h{i};
        let iw{i} = iw_base + off_w{i};
        let ok{i} = ih{i} >= 0 && ih{i} <= h_max && iw{i} >= 0 && iw{i} <= w_max;
        let b{i} = select(0.0, x[x_n + x_c{i} + u32(clamp(ih{i}, 0, h_max)) * cv.w + u32(clamp(iw{i}, 0, w_max))], ok{i});
//#end
//#for j in UNIFORM_TILE
        let a{j} = dy[dy_n + dy_k{j}];
//#for i in LANE_TILE
        acc{j}_{i} = fma(a{j}, b{i}, acc{j}_{i});
//#end
//#end
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

//#for j in UNIFORM_TILE
    if k0 + {j}u < cv.kg {
        let out = split * cv.out_len + (g * cv.kg + k0 + {j}u) * crs;
//#for i in LANE_TILE
        if col{i} < crs {
            partial[out + col{i}] = acc{j}_{i};
        }
//#end
    }
//#end
}
