// The register-tile GEMM core shared by the implicit-GEMM, pointwise and sgemm kernels: each
// invocation accumulates LANE_TILE × UNIFORM_TILE outputs in registers (`//#for` blocks are
// unrolled by the host, gpu/kernels.rs). Lane items differ per invocation (WG apart, so
// neighbouring invocations read neighbouring addresses: gathered loads); uniform items are
// shared by the whole workgroup (their loads are one broadcast on SIMD back ends).
//
// The pass file in front of this core supplies the index maps, so every register kernel is the
// same GEMM:
//   alias Acc = f32 or vec4<f32>                      one accumulator: an output or a quad
//   fn grid() -> Grid                                 tiles and item counts of this dispatch
//   struct Slice; fn slice_of(rest) -> Slice          the grid's third coordinate (group, split)
//   struct Lane; fn lane(sl, m) -> Lane               lane item m (< lane_items)
//   struct Uni; fn uni(sl, n) -> Uni                  uniform item n (< uniform_items)
//   fn segments(sl) -> u32; struct Seg;               the reduction's outer segments (e.g. taps)
//   fn segment(sl, i) -> Seg
//   struct LaneSeg; fn lane_seg(l, sg) -> LaneSeg     what a lane item needs in one segment
//   fn seg_range(sl, sg) -> vec2<u32>                 the segment's reduction range [t0, t1)
//   struct Step; fn step_at(sl, sg, t) -> Step;       the reduction walker, at t and one on
//   fn step_next(st) -> Step
//   fn lane_load(ls, st) -> Acc; fn uni_load(u, sg, st) -> Acc   the two operands at a step
//   fn store(sl, l, u, acc)                           the result of lane item l, uniform item u
// Items past the counts are computed on clamped indices and never stored. Per-item work belongs
// in lane/uni/lane_seg, not in store: the store is unrolled LANE_TILE × UNIFORM_TILE times, and a
// branch there multiplies the pipeline's compile time (PERFORMANCE.md, [#register-core]).

struct Grid { tiles_m: u32, tiles_n: u32, tiles_total: u32, lane_items: u32, uniform_items: u32 }

override WG: u32 = 32u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let gr = grid();
    let tile = linear_workgroup(wid, nwg);
    if tile >= gr.tiles_total { return; }
    let tile_m = tile % gr.tiles_m;
    let tile_n = (tile / gr.tiles_m) % gr.tiles_n;
    let sl = slice_of(tile / (gr.tiles_m * gr.tiles_n));

//#for i in LANE_TILE
    let m{i} = (tile_m * LANE_TILE + {i}u) * WG + lid.x;
    let l{i} = lane(sl, min(m{i}, gr.lane_items - 1u));
//#end
    let n0 = tile_n * UNIFORM_TILE;
//#for j in UNIFORM_TILE
    let u{j} = uni(sl, min(n0 + {j}u, gr.uniform_items - 1u));
//#end
//#for j in UNIFORM_TILE
//#for i in LANE_TILE
    var acc{j}_{i} = Acc();
//#end
//#end

    let seg_count = segments(sl);
    for (var seg_i = 0u; seg_i < seg_count; seg_i++) {
        let sg = segment(sl, seg_i);
//#for i in LANE_TILE
        let ls{i} = lane_seg(l{i}, sg);
//#end
        let range = seg_range(sl, sg);
        var st = step_at(sl, sg, range.x);
        for (var t = range.x; t < range.y; t++) {
//#for i in LANE_TILE
            let a{i} = lane_load(ls{i}, st);
//#end
//#for j in UNIFORM_TILE
            let b{j} = uni_load(u{j}, sg, st);
//#for i in LANE_TILE
            acc{j}_{i} = fma(a{i}, b{j}, acc{j}_{i});
//#end
//#end
            st = step_next(st);
        }
    }

//#for j in UNIFORM_TILE
    if n0 + {j}u < gr.uniform_items {
//#for i in LANE_TILE
        if m{i} < gr.lane_items { store(sl, l{i}, u{j}, acc{j}_{i}); }
//#end
    }
//#end
}
