// Direct depthwise convolution, used for the forward pass and the input gradient (the same
// correlation with the taps flipped and src/dst swapped; see `struct Depthwise`). For a strided
// input gradient src is read as if upsampled by (UH, UW) with zeros between its values (the
// stride holes): window positions off that grid read zero.
//
// Each invocation computes a TP×TQ block of one output plane. It loads the WH×WW input window
// the block's taps cover once per term and reuses every value for all the outputs and taps that
// meet it, so a 3×3 stride-1 kernel with a 4×4 block does 144 FMAs per 36 gathered loads
// instead of one per load. The workgroup's invocations share one plane, so weight loads are
// uniform. Taps, stride and dilation are generated constants; `//#for` blocks are unrolled by
// the host (gpu/kernels.rs), `{a*SH+r*DH}` being evaluated there.

@group(0) @binding(0) var<uniform> dw: Depthwise;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> pre: array<f32>;

alias Act = f32;
alias ActBits = u32;

// The fused epilogue's run-time values (shared/epilogue.wgsl).
fn epi_params() -> vec4<f32> {
    return vec4(dw.alpha, dw.beta, dw.act_a, dw.act_b);
}

override WG: u32 = 8u;

// One tap: acc + x·w. On the stride-upsampled grid (UH·UW > 1, generated) a stride hole or
// padding position adds nothing, not 0·w, so a NaN or ±∞ weight reaches only the dX elements
// PyTorch's input gradient has a term for; elsewhere (UH = UW = 1) a plain FMA, the padding's
// 0·w being corrected by the input gradient's border pass.
fn tap(acc: f32, x: f32, w: f32, ok: bool) -> f32 {
    if UH * UW == 1u {
        return fma(x, w, acc);
    }
    return select(acc, fma(x, w, acc), ok);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = linear_workgroup(wid, nwg);
    if tile >= dw.tiles_total { return; }
    let plane = tile / dw.chunks;
    let n = plane / dw.out_c;
    let oc = plane % dw.out_c;
    let blocks = dw.blocks_h * dw.blocks_w;
    let block = (tile % dw.chunks) * WG + lid.x;
    let blk = min(block, blocks - 1u);
    let p0 = (blk / dw.blocks_w) * TP;
    let q0 = (blk % dw.blocks_w) * TQ;
    let ih0 = i32(p0 * SH) + dw.off_h;
    let iw0 = i32(q0 * SW) + dw.off_w;
    // Window coordinates are on src's grid upsampled by (UH, UW) (generated: 1, 1 except for a
    // strided input gradient, so the divisions fold away elsewhere); the last one on it:
    let up_h = i32(UH);
    let up_w = i32(UW);
    let h_max = (i32(dw.in_h) - 1) * up_h;
    let w_max = (i32(dw.in_w) - 1) * up_w;

    // The window's rows and columns: clamped offsets and validity, shared by every term.
//#for u in WH
    let row{u} = u32(clamp(ih0 + {u}, 0, h_max) / up_h) * dw.in_w;
    let row_ok{u} = ih0 + {u} >= 0 && ih0 + {u} <= h_max && (ih0 + {u}) % up_h == 0;
//#end
//#for v in WW
    let col{v} = u32(clamp(iw0 + {v}, 0, w_max) / up_w);
    let col_ok{v} = iw0 + {v} >= 0 && iw0 + {v} <= w_max && (iw0 + {v}) % up_w == 0;
//#end
//#for a in TP
//#for b in TQ
    var acc{a}_{b} = 0.0;
//#end
//#end

    let flip = dw.flip != 0u;
    let first_in = (oc / dw.chan_div) * dw.chan_mult;
    for (var j = 0u; j < dw.terms; j++) {
        let ic = first_in + j;
        let base = (n * dw.in_c + ic) * dw.in_h * dw.in_w;
        let w_base = select(oc, ic, flip) * R * S;
//#for r in R
//#for s in S
        let w{r}_{s} = wt[w_base + select({r}u, {R-1-r}u, flip) * S + select({s}u, {S-1-s}u, flip)];
//#end
//#end
//#for u in WH
//#for v in WW
        let x{u}_{v} = select(0.0, src[base + row{u} + col{v}], row_ok{u} && col_ok{v});
//#end
//#end
//#for a in TP
//#for b in TQ
//#for r in R
//#for s in S
        acc{a}_{b} = tap(acc{a}_{b}, x{a*SH+r*DH}_{b*SW+s*DW}, w{r}_{s}, row_ok{a*SH+r*DH} && col_ok{b*SW+s*DW});
//#end
//#end
//#end
//#end
    }

    if block < blocks {
        var bias_v = 0.0;
        if dw.has_bias != 0u { bias_v = bias[oc]; }
        let out_base = plane * dw.out_h * dw.out_w;
//#for a in TP
//#for b in TQ
        if p0 + {a}u < dw.out_h && q0 + {b}u < dw.out_w {
            let i{a}_{b} = out_base + (p0 + {a}u) * dw.out_w + q0 + {b}u;
            dst[i{a}_{b}] = finish(acc{a}_{b}, bias_v, i{a}_{b});
        }
//#end
//#end
    }
}
