// Input gradient dX of one stride phase as an implicit GEMM on the register core
// (shared/register_gemm.wgsl, appended): lane items are the input pixels (n, h, w) with
// h ≡ phase_h (mod sh) and w ≡ phase_w (mod sw), uniform items the group's input channels c;
// the reduction runs over the kernel taps that land on whole output positions for this phase
// (listed by the host: r = tap_r0 + i·tap_r_step for i < tap_rn, s likewise) as segments, and
// the group's output channels k within. Every pixel of a dispatch shares its phase, so no
// multiply lands in a stride hole.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

alias Acc = f32;

fn grid() -> Grid {
    return Grid(cv.tiles_m, cv.tiles_n, cv.tiles_total, cv.rows, cv.cols);
}

struct Slice { group: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

// Phase pixel m: dY of its image at the group's first output channel, its padded coordinates
// th = h + pad_top, tw = w + pad_left, and its place in dX at the group's first channel.
struct Lane { dy_base: u32, th: i32, tw: i32, dx_off: u32 }

fn lane(sl: Slice, m: u32) -> Lane {
    let phase_pix = cv.phase_rows_h * cv.phase_rows_w;
    let n = m / phase_pix;
    let h = cv.phase_h + ((m % phase_pix) / cv.phase_rows_w) * cv.stride_h;
    let w = cv.phase_w + ((m % phase_pix) % cv.phase_rows_w) * cv.stride_w;
    return Lane((n * cv.k + sl.group * cv.kg) * cv.p * cv.q,
                i32(h + cv.pad_top), i32(w + cv.pad_left),
                ((n * cv.c + sl.group * cv.cg) * cv.h + h) * cv.w + w);
}

// Input channel c of the group: its weight column (c, 0, 0) within output channel 0 of the group.
struct Uni { c: u32, w_col: u32 }

fn uni(sl: Slice, n: u32) -> Uni {
    return Uni(n, (sl.group * cv.kg * cv.cg + n) * cv.r * cv.s);
}

fn segments(sl: Slice) -> u32 {
    return cv.tap_rn * cv.tap_sn;
}

struct Seg { rs: u32, dh: i32, dw: i32 }

fn segment(sl: Slice, i: u32) -> Seg {
    let ri = i / cv.tap_sn;
    let r = cv.tap_r0 + ri * cv.tap_r_step;
    let s = cv.tap_s0 + (i - ri * cv.tap_sn) * cv.tap_s_step;
    return Seg(r * cv.s + s, i32(r * cv.dil_h), i32(s * cv.dil_w));
}

// The output position the pixel meets through this tap (exact division: the tap is in phase),
// clamped, and whether it lies inside dY.
struct LaneSeg { off: u32, ok: bool }

fn lane_seg(l: Lane, sg: Seg) -> LaneSeg {
    let ph = l.th - sg.dh;
    let pw = l.tw - sg.dw;
    let p = select(-1, ph / i32(cv.stride_h), ph >= 0);
    let q = select(-1, pw / i32(cv.stride_w), pw >= 0);
    let p_max = i32(cv.p) - 1;
    let q_max = i32(cv.q) - 1;
    let ok = p >= 0 && p <= p_max && q >= 0 && q <= q_max;
    return LaneSeg(l.dy_base + u32(clamp(p, 0, p_max)) * cv.q + u32(clamp(q, 0, q_max)), ok);
}

fn seg_range(sl: Slice, sg: Seg) -> vec2<u32> {
    return vec2(0u, cv.kg);
}

struct Step { k: u32 }

fn step_at(sl: Slice, sg: Seg, t: u32) -> Step {
    return Step(t);
}

fn step_next(st: Step) -> Step {
    return Step(st.k + 1u);
}

fn lane_load(ls: LaneSeg, st: Step) -> f32 {
    return select(0.0, dy[ls.off + st.k * cv.p * cv.q], ls.ok);
}

fn uni_load(u: Uni, sg: Seg, st: Step) -> f32 {
    return wt[u.w_col + st.k * cv.cg * cv.r * cv.s + sg.rs];
}

fn store(sl: Slice, l: Lane, u: Uni, acc: f32) {
    dx[l.dx_off + u.c * cv.h * cv.w] = acc;
}
