// Input gradient of one stride phase on the workgroup-memory GEMM core (shared/block_gemm.wgsl,
// appended): rows m are the input pixels (n, h, w) with h ≡ phase_h (mod sh), w ≡ phase_w
// (mod sw); columns are the group's input channels c; the reduction runs over the group's output
// channels k and only the taps that land on whole output positions for this phase (the host
// lists them as r = tap_r0 + i·tap_r_step, i < tap_rn, and likewise s), so no multiply lands
// in a stride hole.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// A gathers dY along this phase's pixels; B walks the weights along the taps of one k.
const A_K_FASTEST = false;
const B_K_FASTEST = true;

struct Slice { group: u32 }

fn slice_of(rest: u32) -> Slice {
    return Slice(rest);
}

fn red_range(sl: Slice) -> vec2<u32> {
    return vec2(0u, cv.kg * cv.tap_rn * cv.tap_sn);
}

// th, tw: the pixel's padded coordinates h + pad_top, w + pad_left.
struct ARow { dy_base: u32, th: i32, tw: i32, dx_off: u32 }

fn a_row(sl: Slice, m: u32) -> ARow {
    let phase_pix = cv.phase_rows_h * cv.phase_rows_w;
    let n = m / phase_pix;
    let h = cv.phase_h + ((m % phase_pix) / cv.phase_rows_w) * cv.stride_h;
    let w = cv.phase_w + ((m % phase_pix) % cv.phase_rows_w) * cv.stride_w;
    return ARow((n * cv.k + sl.group * cv.kg) * cv.p * cv.q,
                i32(h + cv.pad_top), i32(w + cv.pad_left),
                (n * cv.c + sl.group * cv.cg) * cv.h * cv.w + h * cv.w + w);
}

// t = (k, i, j) → tap (r, s) = (tap_r0 + i·tap_r_step, tap_s0 + j·tap_s_step).
struct Tap { k: u32, r: u32, s: u32 }

fn tap_of(t: u32) -> Tap {
    let taps = cv.tap_rn * cv.tap_sn;
    let k = div_small(t, taps, 1.0 / f32(taps));
    let rest = t - k * taps;
    let i = div_small(rest, cv.tap_sn, 1.0 / f32(cv.tap_sn));
    return Tap(k, cv.tap_r0 + i * cv.tap_r_step, cv.tap_s0 + (rest - i * cv.tap_sn) * cv.tap_s_step);
}

// dY at the output position the pixel meets through tap t (exact division: the tap is in phase);
// outside Y reads a clamped element and selects zero.
fn a_load(row: ARow, t: u32) -> f32 {
    let tap = tap_of(t);
    let ph = row.th - i32(tap.r * cv.dil_h);
    let pw = row.tw - i32(tap.s * cv.dil_w);
    let p = select(-1, ph / i32(cv.stride_h), ph >= 0);
    let q = select(-1, pw / i32(cv.stride_w), pw >= 0);
    let p_max = i32(cv.p) - 1;
    let q_max = i32(cv.q) - 1;
    let ok = p >= 0 && p <= p_max && q >= 0 && q <= q_max;
    let v = dy[row.dy_base + tap.k * cv.p * cv.q + u32(clamp(p, 0, p_max)) * cv.q + u32(clamp(q, 0, q_max))];
    return select(0.0, v, ok);
}

// Input channel n of the group: its weight column (c, 0, 0) within output channel 0 of the group.
struct BCol { w_col: u32 }

fn b_col(sl: Slice, n: u32) -> BCol {
    return BCol((sl.group * cv.kg * cv.cg + n) * cv.r * cv.s);
}

fn b_load(col: BCol, t: u32) -> f32 {
    let tap = tap_of(t);
    return wt[col.w_col + tap.k * cv.cg * cv.r * cv.s + tap.r * cv.s + tap.s];
}

fn store_c(sl: Slice, m: u32, n: u32, v: f32) {
    dx[a_row(sl, m).dx_off + n * cv.h * cv.w] = v;
}
