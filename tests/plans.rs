//! Plans are values: these tests check what the planner decides for hundreds of problems under
//! every profile and override, with no adapter at all — which kernel path each op takes, that
//! its dispatches cover every output element exactly once, that splits are never empty, that
//! grids and scratch buffers fit the limits, and that overrides are obeyed.

use gpuconv::gpu::kernels::{BlockSpec, Kernel, TileSpec};
use gpuconv::gpu::plan::{BufferRef, Path, Planner, Step};
use gpuconv::gpu::uniform::UniformValue;
use gpuconv::gpu::{BlockOverride, BlockPasses, Overrides, TileProfile};
use gpuconv::rng::SplitMix64;
use gpuconv::{ConvParams, ConvProblem, Op};

fn planners() -> Vec<(&'static str, Planner)> {
    let all_block = TileProfile {
        block_passes: BlockPasses::ALL,
        ..TileProfile::GPU
    };
    vec![
        (
            "lavapipe",
            Planner::new(TileProfile::SIMD_CPU, wgpu::Limits::default()),
        ),
        (
            "gpu",
            Planner::new(TileProfile::GPU, wgpu::Limits::default()),
        ),
        (
            "all-block",
            Planner::new(all_block, wgpu::Limits::default()),
        ),
    ]
}

/// Random valid problems of every class, a few hundred.
fn problems(count: usize, seed: u64) -> Vec<ConvProblem> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    while out.len() < count {
        let groups = rng.pick(&[1, 1, 2, 3, 4]);
        let depthwise = rng.range(0, 5) == 0;
        let (c, k, groups) = if depthwise {
            let c = rng.pick(&[1, 3, 8, 16]);
            (c, c * rng.pick(&[1, 2]), c)
        } else {
            let cg = rng.pick(&[1, 2, 3, 4, 8, 16]);
            (cg * groups, rng.pick(&[1, 3, 4, 8, 9]) * groups, groups)
        };
        let x = [rng.range(1, 5), c, rng.range(1, 40), rng.range(1, 40)];
        let w = [
            k,
            c / groups,
            rng.pick(&[1, 1, 2, 3, 5, 7]),
            rng.pick(&[1, 1, 2, 3, 5, 7]),
        ];
        let pointwise = rng.range(0, 4) == 0;
        let params = if pointwise {
            ConvParams::default().groups(groups)
        } else {
            ConvParams {
                stride: [rng.range(1, 5), rng.range(1, 5)],
                padding: [
                    rng.range(0, 4),
                    rng.range(0, 4),
                    rng.range(0, 4),
                    rng.range(0, 4),
                ],
                dilation: [rng.pick(&[1, 1, 2, 3]), rng.pick(&[1, 1, 2, 3])],
                groups,
            }
        };
        let w = if pointwise { [w[0], w[1], 1, 1] } else { w };
        if let Ok(pb) = ConvProblem::new(&x, &w, params) {
            out.push(pb);
        }
    }
    out
}

fn conv_uniform(u: &UniformValue) -> Option<&gpuconv::gpu::uniform::ConvUniform> {
    match u {
        UniformValue::Conv(c) => Some(c),
        _ => None,
    }
}

#[test]
fn every_plan_is_consistent_for_hundreds_of_problems() {
    for (name, planner) in planners() {
        for pb in problems(300, 0x91a_0001) {
            for op in [Op::Forward, Op::InputGrad, Op::WeightGrad, Op::BiasGrad] {
                let what = format!("{name} {op:?} {pb:?}");
                let plan = planner.plan(op, &pb, op == Op::Forward).unwrap();
                // The output is the op's tensor.
                let want_shape = match op {
                    Op::Forward => pb.y_shape().to_vec(),
                    Op::InputGrad => pb.x_shape().to_vec(),
                    Op::WeightGrad => pb.w_shape().to_vec(),
                    Op::BiasGrad => vec![pb.k],
                };
                assert_eq!(plan.output_shape, want_shape, "{what}");
                // Planning is a pure function of its inputs.
                assert_eq!(
                    plan,
                    planner.plan(op, &pb, op == Op::Forward).unwrap(),
                    "{what}"
                );
                // `{:#}` lists the summary, every scratch buffer and every step.
                assert!(!plan.to_string().is_empty(), "{what}");
                assert_eq!(
                    format!("{plan:#}").lines().count(),
                    1 + plan.scratch.len() + plan.steps.len(),
                    "{what}"
                );
                // Every dispatch's uniform says how many workgroups do work, and the grid
                // covers them within the per-dimension limit.
                for d in plan.dispatches() {
                    let covered: u64 = d.grid.iter().map(|&g| u64::from(g)).product();
                    assert!(covered >= d.workgroups as u64, "{what}");
                    let max = planner.limits.max_compute_workgroups_per_dimension;
                    assert!(d.grid.iter().all(|&g| (1..=max).contains(&g)), "{what}");
                    if let Some(u) = conv_uniform(&d.uniform) {
                        if d.kernel != Kernel::Col2im {
                            assert_eq!(u.tiles_total as usize, d.workgroups, "{what}");
                        }
                    }
                }
                // Nothing writes the output twice, and it is written whole.
                let writes_output = plan
                    .steps
                    .iter()
                    .filter(|s| match s {
                        Step::Dispatch(d) => d.binds.iter().any(|b| {
                            b.slice.buffer == BufferRef::Output
                                && d.kernel.interface().binding(b.name).is_some_and(|s| {
                                    s.access == gpuconv::gpu::interface::Access::ReadWrite
                                })
                        }),
                        Step::Clear(b) => b.buffer == BufferRef::Output,
                        Step::Copy { dst, .. } => dst.buffer == BufferRef::Output,
                    })
                    .count();
                assert!(writes_output >= 1, "{what}: nothing writes the output");
                match plan.path {
                    Path::ImplicitGemm { phases, .. } | Path::Block { phases, .. }
                        if op == Op::InputGrad =>
                    {
                        check_phase_cover(&pb, &plan, phases, &what)
                    }
                    Path::WeightGradGemm { split, .. } | Path::WeightGradBlock { split, .. } => {
                        let d = plan.dispatches().next().unwrap();
                        let red_len = match d.uniform {
                            UniformValue::Conv(u) => u.red_len as usize,
                            UniformValue::PointwiseWeightGrad(u) => u.red_len as usize,
                            _ => panic!("{what}"),
                        };
                        // No split is empty, together they cover the reduction.
                        assert!(split.splits >= 1 && split.split_len >= 1, "{what}");
                        assert!(split.splits * split.split_len >= red_len, "{what}");
                        assert!((split.splits - 1) * split.split_len < red_len, "{what}");
                        let scratch_len = if split.splits > 1 {
                            split.splits * pb.w_len() * 4
                        } else {
                            0
                        };
                        let scratch: u64 = plan.scratch.iter().map(|s| s.bytes).sum();
                        assert_eq!(scratch, scratch_len as u64, "{what}");
                        assert_eq!(plan.dispatches().count(), 1 + (split.splits > 1) as usize);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The phase dispatches of an input gradient cover every dX pixel once; phases no tap meets are
/// covered by a clear of the whole output.
fn check_phase_cover(pb: &ConvProblem, plan: &gpuconv::gpu::OpPlan, phases: usize, what: &str) {
    let dispatches: Vec<_> = plan
        .dispatches()
        .filter(|d| matches!(d.kernel, Kernel::InputGrad | Kernel::BlockInputGrad))
        .collect();
    assert_eq!(dispatches.len(), phases, "{what}");
    let rows: usize = dispatches
        .iter()
        .map(|d| conv_uniform(&d.uniform).unwrap().rows as usize)
        .sum();
    let cleared = plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::Clear(c) if c.buffer == BufferRef::Output));
    let all = pb.n * pb.h * pb.w;
    if cleared {
        assert!(
            rows < all,
            "{what}: cleared although every phase is dispatched"
        );
    } else {
        assert_eq!(rows, all, "{what}");
    }
    let mut seen = std::collections::HashSet::new();
    for d in &dispatches {
        let u = conv_uniform(&d.uniform).unwrap();
        assert!(seen.insert((u.phase_h, u.phase_w)), "{what}: a phase twice");
        assert!(
            u.tap_rn >= 1 && u.tap_sn >= 1,
            "{what}: a dispatch with no tap"
        );
    }
}

#[test]
fn each_problem_class_takes_its_path() {
    let lavapipe = Planner::new(TileProfile::SIMD_CPU, wgpu::Limits::default());
    let gpu = Planner::new(TileProfile::GPU, wgpu::Limits::default());
    let p = ConvParams::default;
    let path = |planner: &Planner, op, x: [usize; 4], w: [usize; 4], params| {
        planner
            .plan(op, &ConvProblem::new(&x, &w, params).unwrap(), false)
            .unwrap()
            .path
    };
    // Depthwise: the direct kernels, strided input gradient included.
    let dw = ([2, 8, 12, 12], [8, 1, 3, 3], p().groups(8).padding(1, 1));
    assert!(matches!(
        path(&lavapipe, Op::Forward, dw.0, dw.1, dw.2),
        Path::Depthwise(_)
    ));
    assert!(matches!(
        path(&lavapipe, Op::InputGrad, dw.0, dw.1, dw.2),
        Path::Depthwise(_)
    ));
    assert!(matches!(
        path(&lavapipe, Op::WeightGrad, dw.0, dw.1, dw.2),
        Path::DepthwiseWeightGrad { splits: 18, .. }
    ));
    assert!(matches!(
        path(&lavapipe, Op::InputGrad, dw.0, dw.1, dw.2.stride(2, 2)),
        Path::Depthwise(_)
    ));
    // 1×1 stride 1 with whole quads: the vec4 GEMM in every pass.
    let pw = ([2, 16, 4, 6], [8, 16, 1, 1], p());
    assert!(matches!(
        path(&lavapipe, Op::Forward, pw.0, pw.1, pw.2),
        Path::Pointwise(_)
    ));
    assert!(matches!(
        path(&lavapipe, Op::InputGrad, pw.0, pw.1, pw.2),
        Path::Pointwise(_)
    ));
    assert!(matches!(
        path(&lavapipe, Op::WeightGrad, pw.0, pw.1, pw.2),
        Path::WeightGradGemm { vec4: true, .. }
    ));
    // Few channels per group: the column input gradient.
    assert!(matches!(
        path(
            &lavapipe,
            Op::InputGrad,
            [2, 3, 20, 20],
            [16, 3, 3, 3],
            p().padding(1, 1)
        ),
        Path::Column(_)
    ));
    // Dense on lavapipe: the full 32×32 register tile on a big layer.
    let dense = ([4, 64, 56, 56], [64, 64, 3, 3], p().padding(1, 1));
    match path(&lavapipe, Op::Forward, dense.0, dense.1, dense.2) {
        Path::ImplicitGemm { tile, phases: 1 } => {
            assert_eq!((tile.uniform_tile, tile.lanes), (32, 8));
            assert!(tile.lane_tile > 16 && tile.lane_tile <= 32);
        }
        other => panic!("{other:?}"),
    }
    // Hardware profile: block core for forward and weight gradient, registers for the input
    // gradient.
    assert!(matches!(
        path(&gpu, Op::Forward, dense.0, dense.1, dense.2),
        Path::Block { .. }
    ));
    assert!(matches!(
        path(&gpu, Op::WeightGrad, dense.0, dense.1, dense.2),
        Path::WeightGradBlock { .. }
    ));
    assert!(matches!(
        path(&gpu, Op::InputGrad, dense.0, dense.1, dense.2),
        Path::ImplicitGemm { .. }
    ));
    // A stride past the dilated kernel leaves phases no tap meets: they are cleared, not run.
    let sparse = ConvProblem::new(&[1, 8, 9, 9], &[8, 8, 1, 1], p().stride(3, 3)).unwrap();
    let plan = lavapipe.plan(Op::InputGrad, &sparse, false).unwrap();
    assert!(matches!(plan.path, Path::ImplicitGemm { phases: 1, .. }));
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::Clear(c) if c.buffer == BufferRef::Output)));
}

#[test]
fn overrides_are_obeyed() {
    let forced = TileSpec {
        lane_tile: 3,
        uniform_tile: 5,
        lanes: 16,
    };
    let block = BlockSpec {
        bm: 32,
        bn: 32,
        bk: 16,
        tm: 8,
        tn: 4,
    };
    let pb = ConvProblem::new(&[2, 16, 20, 20], &[16, 16, 3, 3], ConvParams::default()).unwrap();
    let with = |profile: TileProfile, overrides: Overrides| Planner {
        overrides,
        ..Planner::new(profile, wgpu::Limits::default())
    };
    let tile_forced = with(
        TileProfile::SIMD_CPU,
        Overrides {
            tile: Some(forced),
            ..Default::default()
        },
    );
    for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
        let plan = tile_forced.plan(op, &pb, false).unwrap();
        // The GEMM pass (the input gradient first scans W for non-finite values).
        let d = plan
            .dispatches()
            .find(|d| d.kernel.core() == gpuconv::gpu::kernels::Core::Register)
            .unwrap();
        assert_eq!(d.spec, forced.into(), "{op:?}");
    }
    let block_off = with(
        TileProfile::GPU,
        Overrides {
            block: Some(BlockOverride::Off),
            ..Default::default()
        },
    );
    let block_forced = with(
        TileProfile::SIMD_CPU,
        Overrides {
            block: Some(BlockOverride::Tile(block)),
            ..Default::default()
        },
    );
    let passes_none = with(
        TileProfile::GPU,
        Overrides {
            block_passes: Some(BlockPasses::NONE),
            ..Default::default()
        },
    );
    for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
        for planner in [&block_off, &passes_none] {
            let path = planner.plan(op, &pb, false).unwrap().path;
            assert!(
                !matches!(path, Path::Block { .. } | Path::WeightGradBlock { .. }),
                "{op:?}: {path:?}"
            );
        }
        let plan = block_forced.plan(op, &pb, false).unwrap();
        let d = plan
            .dispatches()
            .find(|d| d.kernel.core() == gpuconv::gpu::kernels::Core::Block)
            .unwrap_or_else(|| panic!("{op:?}: no block pass in {plan}"));
        assert_eq!(d.spec, block.into(), "{op:?}");
    }
    // The column input gradient forced on for a 16-channel problem, off for a 2-channel one.
    let columns = |on: bool| {
        with(
            TileProfile::SIMD_CPU,
            Overrides {
                column_input_grad: Some(on),
                ..Default::default()
            },
        )
    };
    let few = ConvProblem::new(&[2, 2, 20, 20], &[16, 2, 3, 3], ConvParams::default()).unwrap();
    let is_column = |planner: &Planner, pb: &ConvProblem| {
        matches!(
            planner.plan(Op::InputGrad, pb, false).unwrap().path,
            Path::Column(_)
        )
    };
    let default = with(TileProfile::SIMD_CPU, Overrides::default());
    assert!(!is_column(&default, &pb) && is_column(&default, &few));
    assert!(is_column(&columns(true), &pb) && !is_column(&columns(false), &few));
    // Malformed values are refused naming the variable.
    for (name, value) in [
        ("GPUCONV_TILE", "8,8"),
        ("GPUCONV_TILE", "0,8,8"),
        ("GPUCONV_BLOCK", "128,128,8,6,8"),
        ("GPUCONV_BLOCK_PASSES", "forward,sideways"),
        ("GPUCONV_SHADER_CHECKS", "trustme"),
    ] {
        let e = Overrides::from_vars(|k| (k == name).then(|| value.to_string())).unwrap_err();
        assert!(
            e.to_string().contains(name) && e.to_string().contains(value),
            "{e}"
        );
    }
    let parsed = Overrides::from_vars(|k| match k {
        "GPUCONV_TILE" => Some("4,8,64".into()),
        "GPUCONV_BLOCK" => Some("off".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        parsed.tile,
        Some(TileSpec {
            lane_tile: 4,
            uniform_tile: 8,
            lanes: 64
        })
    );
    assert_eq!(parsed.block, Some(BlockOverride::Off));
}

#[test]
fn forced_split_counts_are_clamped_to_non_empty_splits() {
    let planner = Planner::new(TileProfile::SIMD_CPU, wgpu::Limits::default());
    let pb = ConvProblem::new(
        &[3, 4, 13, 17],
        &[6, 4, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap();
    let red_len = pb.n * pb.p * pb.q;
    for splits in [0, 1, 2, 7, red_len - 1, red_len, red_len + 5, usize::MAX] {
        let plan = planner.plan_weight_grad_with_splits(&pb, splits).unwrap();
        let Path::WeightGradGemm { split, .. } = plan.path else {
            panic!("{:?}", plan.path)
        };
        assert!(
            split.splits >= 1 && split.splits <= red_len,
            "{splits}: {split:?}"
        );
        assert!(
            (split.splits - 1) * split.split_len < red_len,
            "{splits}: {split:?}"
        );
    }
}
