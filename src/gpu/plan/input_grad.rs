//! The input gradient: dX from dY and W, a "full" convolution of dY with the flipped kernel.
//!
//! In order of preference: the direct depthwise kernel (stride 1), the column GEMM + col2im for
//! few-channel groups, the workgroup-memory core, the vec4 pointwise GEMM, and the implicit GEMM
//! on the register core. Both implicit GEMMs run one dispatch per stride phase (h mod sh,
//! w mod sw): within a phase every pixel meets whole output positions through the same kernel
//! taps, which the host lists, so no multiply lands in a stride hole.

use crate::error::Result;
use crate::gpu::kernels::{BlockSpec, Kernel, Spec};
use crate::gpu::plan::profile::{block_passes, block_tile, gemm_tile};
use crate::gpu::plan::{
    depthwise, dispatch, mul, pointwise, single, u32_of, BufferRef, BufferSlice, OpPlan, Operand,
    Path, Planner, ScratchBuffer, Step,
};
use crate::gpu::uniform::{BorderUniform, ConvUniform, ScanUniform, UniformValue};
use crate::problem::{ConvProblem, Op};

/// The kernel rows (or columns) that meet whole output positions for input pixels of stride
/// phase `phase`: (first, step, count) of the arithmetic progression of taps t in 0..taps with
/// (phase + pad − t·dil) ≡ 0 (mod stride); count 0 when none does.
pub fn phase_taps(
    phase: usize,
    pad: usize,
    taps: usize,
    dil: usize,
    stride: usize,
) -> (usize, usize, usize) {
    let in_phase = |t: usize| {
        (phase + pad + stride * (t * dil).div_ceil(stride) - t * dil).is_multiple_of(stride)
    };
    // The hits repeat with a period of at most `stride` taps: the first two lie within the
    // first 2·stride taps if they exist at all.
    let mut hits = (0..taps)
        .take(stride.saturating_mul(2))
        .filter(|&t| in_phase(t));
    let Some(first) = hits.next() else {
        return (0, 1, 0);
    };
    // Solutions of a linear congruence are evenly spaced: the second hit gives the step.
    match hits.next() {
        Some(second) => {
            let step = second - first;
            (first, step, (taps - first).div_ceil(step))
        }
        None => (first, 1, 1),
    }
}

/// The stride phases below `phases` that some kernel tap meets, ascending, each with its taps as
/// [`phase_taps`] gives them. O(taps): tap t meets phase (t·dil − pad) mod stride only.
pub fn phases_with_taps(
    phases: usize,
    pad: usize,
    taps: usize,
    dil: usize,
    stride: usize,
) -> Vec<(usize, (usize, usize, usize))> {
    let mut found: std::collections::BTreeMap<usize, (usize, usize, usize)> = Default::default();
    for t in 0..taps {
        let phase = (t as i128 * dil as i128 - pad as i128).rem_euclid(stride as i128);
        let Ok(phase) = usize::try_from(phase) else {
            continue;
        };
        if phase >= phases {
            continue;
        }
        let entry = found.entry(phase).or_insert((t, 1, 0));
        if entry.2 == 1 {
            entry.1 = t - entry.0;
        }
        entry.2 += 1;
    }
    found.into_iter().collect()
}

/// Input pixels of the largest stride phase (the one starting at 0).
fn phase_pixels(problem: &ConvProblem) -> usize {
    let [sh, sw] = problem.params.stride;
    problem.n * problem.h.div_ceil(sh) * problem.w.div_ceil(sw)
}

/// The input gradient's block tile (sized by the largest phase), or `None`.
pub(crate) fn block(planner: &Planner, problem: &ConvProblem) -> Option<BlockSpec> {
    block_tile(
        planner,
        block_passes(&planner.profile, &planner.overrides).input_grad,
        phase_pixels(problem),
        problem.c_per_group(),
        problem.k_per_group() * problem.r * problem.s,
        problem.params.groups,
        true,
    )
}

/// The plan of the input gradient.
pub(crate) fn plan(planner: &Planner, problem: &ConvProblem) -> Result<OpPlan> {
    if let Some(plan) = depthwise::input_grad(planner, problem)? {
        return with_border_pass(planner, problem, plan);
    }
    if let Some(plan) = pointwise::column_input_grad(planner, problem)? {
        return Ok(plan);
    }
    let block = block(planner, problem);
    if block.is_none() {
        if let Some(plan) = pointwise::input_grad(planner, problem)? {
            return Ok(plan);
        }
    }
    let plan = phase_gemm(planner, problem, block)?;
    with_border_pass(planner, problem, plan)
}

/// Rows (or columns) of one axis with a tap that misses dY: the first `lo` (a tap above the
/// first output row) and the last `hi` (a tap below the last); `lo + hi ≤ size`.
fn border_bands(
    size: usize,
    taps: usize,
    dil: usize,
    pad: usize,
    out: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = ((taps - 1) * dil).saturating_sub(pad).min(size);
    // Row h has a tap past the last output row when h + pad > (out − 1)·stride (tap 0).
    let first_high = ((out - 1) * stride + 1).saturating_sub(pad).min(size);
    let hi = (size - first_high).min(size - lo);
    (lo, hi)
}

/// Adds the exact border pass to an input-gradient plan whose kernels read dY as zero outside
/// its extent and multiply that by the tap's weight: PyTorch's input gradient has no such term,
/// so a NaN or ±∞ weight must not turn those pixels NaN. A scan of W sets a flag first; the
/// border pass ([`Kernel::InputGradBorder`]) recomputes the border pixels exactly when it is
/// set and returns at once otherwise.
fn with_border_pass(planner: &Planner, problem: &ConvProblem, mut plan: OpPlan) -> Result<OpPlan> {
    let [sh, sw] = problem.params.stride;
    let [dh, dw] = problem.params.dilation;
    let [top, left, _, _] = problem.params.padding;
    let (bt, bb) = border_bands(problem.h, problem.r, dh, top, problem.p, sh);
    let (bl, br) = border_bands(problem.w, problem.s, dw, left, problem.q, sw);
    let per_plane = (bt + bb) * problem.w + (problem.h - bt - bb) * (bl + br);
    let pixels = mul("border pixels", problem.n * problem.c, per_plane)?;
    if pixels == 0 {
        return Ok(plan);
    }
    let flag = BufferRef::Scratch(plan.scratch.len());
    plan.scratch.push(ScratchBuffer {
        what: "non-finite weight flag",
        bytes: 4,
    });
    let spec = super::profile::reduce_spec();
    let scan = dispatch(
        planner,
        Kernel::Nonfinite,
        spec,
        UniformValue::Scan(ScanUniform {
            len: u32_of("weights", problem.w_len())?,
        }),
        &[("values", BufferRef::Operand(Operand::W)), ("flag", flag)],
        problem.w_len().div_ceil(spec.lanes as usize),
    )?;
    let u = |what: &str, v: usize| u32_of(what, v);
    let border = dispatch(
        planner,
        Kernel::InputGradBorder,
        spec,
        UniformValue::Border(BorderUniform {
            n: u("batch", problem.n)?,
            c: u("channels", problem.c)?,
            h: u("height", problem.h)?,
            w: u("width", problem.w)?,
            k: u("channels", problem.k)?,
            r: u("kernel", problem.r)?,
            s: u("kernel", problem.s)?,
            p: u("height", problem.p)?,
            q: u("width", problem.q)?,
            cg: u("channels", problem.c_per_group())?,
            kg: u("channels", problem.k_per_group())?,
            stride_h: u("stride", sh)?,
            stride_w: u("stride", sw)?,
            pad_top: u("padding", top)?,
            pad_left: u("padding", left)?,
            dil_h: u("dilation", dh)?,
            dil_w: u("dilation", dw)?,
            border_top: u("border", bt)?,
            border_bottom: u("border", bb)?,
            border_left: u("border", bl)?,
            border_right: u("border", br)?,
            pixels: u("border pixels", pixels)?,
        }),
        &[
            ("dy", BufferRef::Operand(Operand::Dy)),
            ("wt", BufferRef::Operand(Operand::W)),
            ("flag", flag),
            ("dx", BufferRef::Output),
        ],
        pixels.div_ceil(spec.lanes as usize),
    )?;
    let mut steps = vec![Step::Clear(BufferSlice::whole(flag)), scan];
    steps.append(&mut plan.steps);
    steps.push(border);
    plan.steps = steps;
    Ok(plan)
}

/// The implicit GEMM (register or block core), one dispatch per stride phase.
fn phase_gemm(
    planner: &Planner,
    problem: &ConvProblem,
    block: Option<BlockSpec>,
) -> Result<OpPlan> {
    let [sh, sw] = problem.params.stride;
    let [pad_top, pad_left, _, _] = problem.params.padding;
    let [dh, dw] = problem.params.dilation;
    // One GEMM per stride phase that some tap meets. A phase no tap meets (stride past the
    // dilated kernel) is all zeros: then dX is cleared first and those phases are skipped.
    let taps_h = phases_with_taps(sh.min(problem.h), pad_top, problem.r, dh, sh);
    let taps_w = phases_with_taps(sw.min(problem.w), pad_left, problem.s, dw, sw);
    let phases = taps_h.len() * taps_w.len();
    let (kernel, spec, path, [row_tile, col_tile]) = match block {
        Some(b) => (
            Kernel::BlockInputGrad,
            Spec::from(b),
            Path::Block { block: b, phases },
            b.workgroup_items(),
        ),
        None => {
            let profile = &planner.profile;
            let tile = gemm_tile(
                &planner.overrides,
                profile.gemm,
                profile.min_lanes,
                phase_pixels(problem),
                problem.c_per_group(),
                problem.params.groups,
            );
            (
                Kernel::InputGrad,
                Spec::from(tile),
                Path::ImplicitGemm { tile, phases },
                tile.workgroup_items(),
            )
        }
    };
    let mut steps = Vec::new();
    if phases < sh.min(problem.h) * sw.min(problem.w) {
        steps.push(Step::Clear(BufferSlice::whole(BufferRef::Output)));
    }
    for &(phase_h, (r0, r_step, rn)) in &taps_h {
        for &(phase_w, (s0, s_step, sn)) in &taps_w {
            let rows_h = (problem.h - phase_h).div_ceil(sh);
            let rows_w = (problem.w - phase_w).div_ceil(sw);
            let rows = mul("input-gradient rows", problem.n, rows_h * rows_w)?;
            let tiles_m = rows.div_ceil(row_tile);
            let tiles_n = problem.c_per_group().div_ceil(col_tile);
            let workgroups = mul(
                "input-gradient workgroups",
                mul("input-gradient workgroups", tiles_m, tiles_n)?,
                problem.params.groups,
            )?;
            let uniform = ConvUniform {
                rows: u32_of("input-gradient rows", rows)?,
                cols: u32_of("input-gradient columns", problem.c_per_group())?,
                tiles_m: u32_of("input-gradient tiles", tiles_m)?,
                tiles_n: u32_of("input-gradient tiles", tiles_n)?,
                tiles_total: u32_of("input-gradient workgroups", workgroups)?,
                phase_h: u32_of("stride phase", phase_h)?,
                phase_w: u32_of("stride phase", phase_w)?,
                phase_rows_h: u32_of("phase rows", rows_h)?,
                phase_rows_w: u32_of("phase columns", rows_w)?,
                tap_r0: u32_of("kernel tap", r0)?,
                tap_r_step: u32_of("kernel tap", r_step)?,
                tap_rn: u32_of("kernel tap", rn)?,
                tap_s0: u32_of("kernel tap", s0)?,
                tap_s_step: u32_of("kernel tap", s_step)?,
                tap_sn: u32_of("kernel tap", sn)?,
                ..ConvUniform::from_problem(problem)
            };
            steps.push(dispatch(
                planner,
                kernel,
                spec,
                UniformValue::Conv(uniform),
                &[
                    ("dy", BufferRef::Operand(Operand::Dy)),
                    ("wt", BufferRef::Operand(Operand::W)),
                    ("dx", BufferRef::Output),
                ],
                workgroups,
            )?);
        }
    }
    Ok(single(
        path,
        super::inputs(Op::InputGrad, problem, false),
        problem.x_shape().to_vec(),
        "input gradient dx",
        steps,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tap progression lists exactly the taps whose (phase + pad − t·dil) is a multiple of
    /// the stride, for every small stride, dilation, padding and kernel size.
    #[test]
    fn phase_taps_match_brute_force() {
        for stride in 1..=5 {
            for dil in 1..=4 {
                for taps in 1..=7 {
                    for pad in 0..=6 {
                        for phase in 0..stride {
                            let want: Vec<usize> = (0..taps)
                                .filter(|&t| {
                                    ((phase + pad) as i64 - (t * dil) as i64)
                                        .rem_euclid(stride as i64)
                                        == 0
                                })
                                .collect();
                            let (first, step, count) = phase_taps(phase, pad, taps, dil, stride);
                            let got: Vec<usize> = (0..count).map(|i| first + i * step).collect();
                            assert_eq!(
                                got, want,
                                "phase {phase} pad {pad} taps {taps} dil {dil} stride {stride}"
                            );
                            let listed = phases_with_taps(stride, pad, taps, dil, stride)
                                .into_iter()
                                .find(|&(p, _)| p == phase)
                                .map(|(_, t)| t);
                            assert_eq!(
                                listed,
                                (count > 0).then_some((first, step, count)),
                                "phase {phase} pad {pad} taps {taps} dil {dil} stride {stride}"
                            );
                        }
                    }
                }
            }
        }
    }
}
