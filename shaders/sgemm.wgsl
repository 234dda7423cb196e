// Plain SGEMM C = A·B (A: M×K, B: K×N, C: M×N, row-major, N a multiple of 4): the ceiling
// micro-benchmark (`gpuconv sgemm`). It is the conv kernels' tile without any index mapping:
// each invocation holds LANE_TILE vec4 column quads × UNIFORM_TILE rows; the rows are shared by
// the workgroup, so A loads are uniform. Uniform fields used: rows = M, cols = N, red_len = K,
// tiles_m (lane tiles over N/4 quads), tiles_n (uniform tiles over M), tiles_total.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

override WG: u32 = 32u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = linear_workgroup(wid, nwg);
    if tile >= cv.tiles_total { return; }
    let tile_m = tile % cv.tiles_m;
    let tile_n = tile / cv.tiles_m;
    let quads = cv.cols / 4u;

//#for i in LANE_TILE
    let col{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let cl{i} = min(col{i}, quads - 1u);
//#end
    let m0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let a_row{j} = min(m0 + {j}u, cv.rows - 1u) * cv.red_len;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = vec4<f32>();
//#end
//#end

    for (var t = 0u; t < cv.red_len; t++) {
//#for i in LANE_TILE
        let b{i} = b[t * quads + cl{i}];
//#end
//#for j in UNIFORM_TILE
        let a{j} = vec4(a[a_row{j} + t]);
//#for i in LANE_TILE
        acc{j}_{i} = fma(a{j}, b{i}, acc{j}_{i});
//#end
//#end
    }

//#for j in UNIFORM_TILE
    if m0 + {j}u < cv.rows {
//#for i in LANE_TILE
        if col{i} < quads {
            c[(m0 + {j}u) * quads + col{i}] = acc{j}_{i};
        }
//#end
    }
//#end
}
