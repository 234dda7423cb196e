// Weight gradient of a 1×1, stride-1, unpadded convolution as a plain GEMM on vec4 pixel
// quads: dW[g·kg + k, c] = Σ_{n, pix} dY[n, g·kg + k, pix] · X[n, g·cg + c, pix].
// The reduction runs along contiguous pixels, so both operands load as vec4 (4 reduction steps
// per load); each invocation keeps LANE_TILE input channels (gathered X quads) × UNIFORM_TILE
// output channels (uniform dY quads) of vec4 partial sums. Split-K as in weight_grad.wgsl:
// split t sums quads [t·split_len, (t+1)·split_len) of the N·H·W/4 into its own slice of
// `partial`, which reduce_splits adds in a fixed order. Requires H·W a multiple of 4.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
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
    let quads = cv.h * cv.w / 4u;

    // Lane items: input channels of the group (clamped; the store skips the excess).
//#for i in LANE_TILE
    let c{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let x_c{i} = (g * cv.cg + min(c{i}, cv.cg - 1u)) * quads;
//#end
    let k0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let dy_k{j} = (g * cv.kg + min(k0 + {j}u, cv.kg - 1u)) * quads;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = vec4<f32>();
//#end
//#end

    let t0 = split * cv.split_len;
    let t1 = min(t0 + cv.split_len, cv.red_len);
    var n = t0 / quads;
    var quad = t0 % quads;
    for (var t = t0; t < t1; t++) {
        let x_n = n * cv.c * quads + quad;
        let dy_n = n * cv.k * quads + quad;
//#for i in LANE_TILE
        let b{i} = x[x_n + x_c{i}];
//#end
//#for j in UNIFORM_TILE
        let a{j} = dy[dy_n + dy_k{j}];
//#for i in LANE_TILE
        acc{j}_{i} = fma(a{j}, b{i}, acc{j}_{i});
//#end
//#end
        quad++;
        if quad == quads {
            quad = 0u;
            n++;
        }
    }

//#for j in UNIFORM_TILE
    if k0 + {j}u < cv.kg {
        let out = split * cv.out_len + (g * cv.kg + k0 + {j}u) * cv.cg;
//#for i in LANE_TILE
        if c{i} < cv.cg {
            partial[out + c{i}] = acc{j}_{i}.x + acc{j}_{i}.y + acc{j}_{i}.z + acc{j}_{i}.w;
        }
//#end
    }
//#end
}
