// Direct depthwise weight gradient, all channels in one dispatch:
//   dW[k, 0, r, s] = Σ_{n,p,q} dY[n, k, p, q] · X[n, k / chan_div, p·SH + off_h + r·DH, q·SW + off_w + s·DW].
// Each invocation is one of `splits` partial sums of its channel k: it walks TP×TQ output blocks
// (n, block) = split, split + splits, ..., loads the block of dY and the X window the block's
// taps cover once, and keeps all R×S tap sums in registers. It writes them to its slice of
// `partial`; reduce_splits adds the slices in a fixed order, so results repeat bit for bit.
// Here `src` = X (in_*), the blocks tile dY (out_*), `out_len` = K·R·S.

@group(0) @binding(0) var<uniform> dw: Depthwise;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

override WG: u32 = 8u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = linear_workgroup(wid, nwg);
    if tile >= dw.tiles_total { return; }
    let k = tile / dw.chunks;
    let split = (tile % dw.chunks) * WG + lid.x;
    let c = k / dw.chan_div;
    let blocks = dw.blocks_h * dw.blocks_w;
    let h_max = i32(dw.in_h) - 1;
    let w_max = i32(dw.in_w) - 1;

//#for r in R
//#for s in S
    var acc{r}_{s} = 0.0;
//#end
//#end

    for (var t = split; t < dw.n * blocks; t += dw.splits) {
        let n = t / blocks;
        let blk = t % blocks;
        let p0 = (blk / dw.blocks_w) * TP;
        let q0 = (blk % dw.blocks_w) * TQ;
        let dy_base = (n * dw.out_c + k) * dw.out_h * dw.out_w;
        let x_base = (n * dw.in_c + c) * dw.in_h * dw.in_w;
        let ih0 = i32(p0 * SH) + dw.off_h;
        let iw0 = i32(q0 * SW) + dw.off_w;
//#for a in TP
//#for b in TQ
        let g{a}_{b} = select(0.0, dy[dy_base + min(p0 + {a}u, dw.out_h - 1u) * dw.out_w + min(q0 + {b}u, dw.out_w - 1u)], p0 + {a}u < dw.out_h && q0 + {b}u < dw.out_w);
//#end
//#end
//#for u in WH
        let row{u} = u32(clamp(ih0 + {u}, 0, h_max)) * dw.in_w;
        let row_ok{u} = ih0 + {u} >= 0 && ih0 + {u} <= h_max;
//#end
//#for u in WH
//#for v in WW
        let x{u}_{v} = select(0.0, x[x_base + row{u} + u32(clamp(iw0 + {v}, 0, w_max))], row_ok{u} && iw0 + {v} >= 0 && iw0 + {v} <= w_max);
//#end
//#end
        // A block past the plane's edge must not multiply its zero dY by window values that no
        // output of the plane reads (0·∞ would be NaN where PyTorch has no such term).
        if p0 + TP <= dw.out_h && q0 + TQ <= dw.out_w {
//#for a in TP
//#for b in TQ
//#for r in R
//#for s in S
            acc{r}_{s} = fma(g{a}_{b}, x{a*SH+r*DH}_{b*SW+s*DW}, acc{r}_{s});
//#end
//#end
//#end
//#end
        } else {
//#for a in TP
//#for b in TQ
            if p0 + {a}u < dw.out_h && q0 + {b}u < dw.out_w {
//#for r in R
//#for s in S
                acc{r}_{s} = fma(g{a}_{b}, x{a*SH+r*DH}_{b*SW+s*DW}, acc{r}_{s});
//#end
//#end
            }
//#end
//#end
        }
    }

    if split < dw.splits {
        let out = split * dw.out_len + k * R * S;
//#for r in R
//#for s in S
        partial[out + {r*S+s}u] = acc{r}_{s};
//#end
//#end
    }
}
