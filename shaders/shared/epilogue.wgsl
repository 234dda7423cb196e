// The forward kernels' store (forward, block_forward, pointwise, depthwise), appended with
// shared/activation.wgsl. Specialised with a fused epilogue (generated EPI = true):
// y = act(α·acc + b + β·z), z read from `residual` when HAS_RESIDUAL, the pre-activation written
// to `pre` when SAVE_PRE, so Y is written once and never read; otherwise acc + b, as before. The
// kernel declares `residual` and `pre` (arrays of Act) and epi_params() = (α, β, act_a, act_b).

fn finish(acc: Act, b: f32, i: u32) -> Act {
    if !EPI {
        return acc + b;
    }
    let e = epi_params();
    var v = e.x * acc + b;
    if HAS_RESIDUAL {
        v = v + e.y * residual[i];
    }
    if SAVE_PRE {
        pre[i] = v;
    }
    return activate(v, e.z, e.w);
}
