// 1×1, stride-1, unpadded convolution as a plain batched GEMM on vec4 pixel quads:
//   dst[n, g·out_g + u, pix] = Σ_t A(g, u, t) · src[n, g·red_g + t, pix] (+ bias[g·out_g + u])
// with A(g, u, t) = wt[g·kg·cg + u·a_stride_out + t·a_stride_red]. The forward pass uses it with
// src = X, dst = Y, u over K/g, t over C/g; the input gradient with src = dY, dst = dX, u over
// C/g, t over K/g (the weight read transposed). Here `c`/`k` are the src/dst channel counts and
// `cg`/`kg` the reduced/output channels per group; the host requires H·W to be a multiple of 4.
//
// Tile (see gpu/kernels.rs): each invocation holds LANE_TILE pixel quads × UNIFORM_TILE output
// channels; the channels are shared by the workgroup, so weight loads are uniform.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<vec4<f32>>;

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
    let quads = cv.h * cv.w / 4u;

//#for i in LANE_TILE
    let m{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let mm{i} = min(m{i}, cv.rows - 1u);
    let src_base{i} = ((mm{i} / quads) * cv.c + g * cv.cg) * quads + mm{i} % quads;
//#end
    let u0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let a_base{j} = g * cv.kg * cv.cg + min(u0 + {j}u, cv.kg - 1u) * cv.a_stride_out;
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = vec4<f32>();
//#end
//#end

    for (var t = 0u; t < cv.cg; t++) {
//#for i in LANE_TILE
        let b{i} = src[src_base{i} + t * quads];
//#end
        let a_off = t * cv.a_stride_red;
//#for j in UNIFORM_TILE
        let a{j} = vec4(wt[a_base{j} + a_off]);
//#for i in LANE_TILE
        acc{j}_{i} = fma(a{j}, b{i}, acc{j}_{i});
//#end
//#end
    }

//#for j in UNIFORM_TILE
    if u0 + {j}u < cv.kg {
        let ch = g * cv.kg + u0 + {j}u;
        var b = 0.0;
        if cv.has_bias != 0u { b = bias[ch]; }
//#for i in LANE_TILE
        if m{i} < cv.rows {
            dst[((m{i} / quads) * cv.k + ch) * quads + m{i} % quads] = acc{j}_{i} + vec4(b);
        }
//#end
    }
//#end
}
