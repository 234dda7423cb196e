//! The GPU sweep under only the limits WebGPU guarantees on every device (wgpu's defaults:
//! 16 KiB workgroup storage, 256 invocations per workgroup, 128 MiB storage bindings, 8 storage
//! buffers per stage, 65535 workgroups per dimension), with the adapter's tile profile and with
//! the hardware-GPU profile (the workgroup-memory core); and the planner keeping every kernel
//! within a device's workgroup limits. Backend shader translation is checked in
//! `tests/shaders.rs`; `.ci/run` runs the whole suite again on GL.

mod common;

use common::*;
use gpuconv::gpu::{BlockOverride, ContextOptions, LimitsChoice, Overrides, Planner, TileProfile};
use gpuconv::{ConvParams, ConvProblem, Error, GpuContext, Op};

fn minimum_context(tile_profile: Option<TileProfile>) -> GpuContext {
    gpu().expect("GPU context");
    GpuContext::with_options(ContextOptions {
        poison_outputs: true,
        tile_profile,
        limits: LimitsChoice::WebGpuMinimum,
        ..Default::default()
    })
    .expect("a device with WebGPU's minimum limits")
}

#[test]
fn sweep_passes_under_webgpu_minimum_limits() {
    for profile in [None, Some(TileProfile::GPU)] {
        let ctx = minimum_context(profile);
        let defaults = gpuconv::wgpu::Limits::default();
        assert_eq!(
            ctx.limits().max_compute_workgroup_storage_size,
            defaults.max_compute_workgroup_storage_size
        );
        assert_eq!(
            ctx.limits().max_compute_invocations_per_workgroup,
            defaults.max_compute_invocations_per_workgroup
        );
        let mut rng = SplitMix64::new(0x3eb6);
        for case in named_cases() {
            check_all_ops_on(&ctx, &case, &mut rng);
        }
        for i in 0..60 {
            let case = random_case(&mut rng, i);
            check_all_ops_on(&ctx, &case, &mut rng);
        }
    }
}

#[test]
fn planner_keeps_kernels_within_the_workgroup_limits() {
    let pb = ConvProblem::new(
        &[2, 64, 28, 28],
        &[64, 64, 3, 3],
        ConvParams::default().padding(1, 1),
    )
    .unwrap();
    // The hardware profile's block tile (256 threads, 8 KiB) on a device allowing 128
    // invocations or 4 KiB of workgroup memory: the register kernels run instead.
    for limits in [
        gpuconv::wgpu::Limits {
            max_compute_invocations_per_workgroup: 128,
            max_compute_workgroup_size_x: 128,
            ..Default::default()
        },
        gpuconv::wgpu::Limits {
            max_compute_workgroup_storage_size: 4096,
            ..Default::default()
        },
    ] {
        let planner = Planner::new(TileProfile::GPU, limits.clone());
        for op in [Op::Forward, Op::InputGrad, Op::WeightGrad] {
            let plan = planner.plan(op, &pb, false).unwrap();
            for d in plan.dispatches() {
                assert!(planner.workgroup_fits(d.spec), "{op:?}: {plan}");
            }
        }
        // A forced tile that does not fit is refused, naming the limit.
        let forced = Planner {
            overrides: Overrides {
                block: Some(BlockOverride::Tile(gpuconv::gpu::kernels::BlockSpec {
                    bm: 128,
                    bn: 128,
                    bk: 8,
                    tm: 8,
                    tn: 8,
                })),
                ..Default::default()
            },
            ..Planner::new(TileProfile::GPU, limits)
        };
        let e = forced.plan(Op::Forward, &pb, false).unwrap_err();
        assert!(
            matches!(&e, Error::LimitTooSmall { limit_name, .. } if limit_name.starts_with("max_compute")),
            "{e}"
        );
    }
}
