//! Helpers shared by the integration tests: a seeded RNG, the GPU context, error metrics.
#![allow(dead_code)]

use std::sync::OnceLock;

use gpuconv::gpu::ContextOptions;
use gpuconv::GpuContext;

pub use gpuconv::rng::SplitMix64;

/// The one GPU context of a test binary, with poisoned outputs. Fails (never skips) without an
/// adapter, unless GPUCONV_SKIP_GPU_TESTS=1 is set explicitly.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        match GpuContext::with_options(ContextOptions { poison_outputs: true }) {
            Ok(ctx) => {
                eprintln!("GPU tests run on {}", ctx.adapter());
                Some(ctx)
            }
            Err(e) if std::env::var("GPUCONV_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
                eprintln!("GPUCONV_SKIP_GPU_TESTS=1: skipping GPU checks ({e})");
                None
            }
            Err(e) => panic!("{e}\n(set GPUCONV_SKIP_GPU_TESTS=1 to run only the CPU tests)"),
        }
    })
    .as_ref()
}

/// Relative L2 error and max error scaled by max(1, max|ref|), with the worst index.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    pub rel_l2: f64,
    pub scaled_max: f64,
    pub worst: usize,
    pub bad: usize,
}

pub const REL_L2_TOL: f64 = 1e-5;
pub const MAX_TOL: f64 = 1e-4;

pub fn compare(got: &[f32], want: &[f32]) -> Comparison {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(1f64, |m, &v| m.max((v as f64).abs()));
    let (mut num, mut den, mut worst_err, mut worst, mut bad) = (0f64, 0f64, 0f64, 0usize, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = if g.is_finite() { (g as f64 - w as f64).abs() } else { f64::INFINITY };
        num += err * err;
        den += (w as f64) * (w as f64);
        if err > MAX_TOL * scale {
            bad += 1;
        }
        if err > worst_err {
            worst_err = err;
            worst = i;
        }
    }
    Comparison {
        rel_l2: num.sqrt() / den.sqrt().max(f64::MIN_POSITIVE),
        scaled_max: worst_err / scale,
        worst,
        bad,
    }
}

/// Panics with the worst index and values unless `got` matches `want` within the tolerances.
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let c = compare(got, want);
    let ok = c.rel_l2 <= REL_L2_TOL && c.scaled_max <= MAX_TOL && c.bad == 0;
    assert!(
        ok,
        "{what}: rel L2 {:.3e} (tol {REL_L2_TOL:e}), scaled max {:.3e} (tol {MAX_TOL:e}), {} elements off; \
         worst at {}: got {} want {}",
        c.rel_l2, c.scaled_max, c.bad, c.worst, got[c.worst], want[c.worst]
    );
}
