// col2im for the column form of the input gradient: with col[n, g·crs + (c·R + r)·S + s, p, q]
// = Σ_k W[g·kg + k, c, r, s] · dY[n, g·kg + k, p, q] (computed by pointwise.wgsl), each dX
// element sums the column entries of the taps whose output position covers it:
//   dX[n, g·cg + c, h, w] = Σ_{r,s} col[n, g·crs + (c·R + r)·S + s, p, q],
//   p = (h + top − r·dh) / sh, q = (w + left − s·dw) / sw, only where both divide exactly and
//   land inside Y (integer tests, no fract()). One invocation per dX element.

@group(0) @binding(0) var<uniform> cv: Conv;
@group(0) @binding(1) var<storage, read> col: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_workgroup(wid, nwg) * WG + lid.x;
    if i >= cv.out_len { return; }
    let w = i % cv.w;
    let h = (i / cv.w) % cv.h;
    let ch = (i / (cv.w * cv.h)) % cv.c;
    let n = i / (cv.w * cv.h * cv.c);
    let g = ch / cv.cg;
    let c = ch % cv.cg;
    let rs = cv.r * cv.s;
    let pq = cv.p * cv.q;
    let crs = cv.cg * rs;
    let base = (n * cv.groups * crs + g * crs + c * rs) * pq;
    // (p, remainder) of (h + top − r·dh) / sh, stepped from r = 0 without dividing per tap
    // (lavapipe has no vector integer division): subtracting dh = dq·sh + dr lowers p by dq and
    // the remainder by dr, borrowing one stride when it goes negative.
    let sh = i32(cv.stride_h);
    let sw = i32(cv.stride_w);
    let dq_h = i32(cv.dil_h / cv.stride_h);
    let dr_h = i32(cv.dil_h % cv.stride_h);
    let dq_w = i32(cv.dil_w / cv.stride_w);
    let dr_w = i32(cv.dil_w % cv.stride_w);
    let th = i32(h + cv.pad_top);
    let tw = i32(w + cv.pad_left);
    let p_max = i32(cv.p) - 1;
    let q_max = i32(cv.q) - 1;
    let q_start = tw / sw;
    let rem_w_start = tw % sw;
    var p = th / sh;
    var rem_h = th % sh;
    var sum = 0.0;
    for (var r = 0u; r < cv.r; r++) {
        if rem_h == 0 && p >= 0 && p <= p_max {
            var q = q_start;
            var rem_w = rem_w_start;
            for (var s = 0u; s < cv.s; s++) {
                if rem_w == 0 && q >= 0 && q <= q_max {
                    sum += col[base + (r * cv.s + s) * pq + u32(p) * cv.q + u32(q)];
                }
                q -= dq_w;
                rem_w -= dr_w;
                if rem_w < 0 {
                    rem_w += sw;
                    q -= 1;
                }
            }
        }
        p -= dq_h;
        rem_h -= dr_h;
        if rem_h < 0 {
            rem_h += sh;
            p -= 1;
        }
    }
    dx[i] = sum;
}
