//! `gpuconv sgemm`: the plain WGSL SGEMM ceiling on the picked adapter, at several tiles.

use super::bench::{time_runs, Runs};
use super::{gpu_context, usage, CliError, CliResult};
use clap::Args;
use gpuconv::gpu::sgemm::SGEMM_TILES;
use gpuconv::rng::SplitMix64;

/// Each tile runs for at least this long before it is timed (GPU clocks ramp up; see bench).
const WARMUP: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Args, Debug)]
pub struct SgemmArgs {
    /// Matrix size: M = N = K (N is rounded up to a multiple of 4).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Timed runs per tile after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
}

/// Entries of C checked against an f64 dot product per tile.
const CHECKED_ENTRIES: usize = 256;
/// Relative error allowed on a checked entry (scaled by Σ|a·b|).
const ENTRY_TOL: f64 = 1e-5;

pub fn sgemm(args: &SgemmArgs) -> CliResult<()> {
    if args.size == 0 || args.size > 8192 {
        return Err(usage(format!("--size {}: expected 1..=8192", args.size)));
    }
    let (m, k) = (args.size, args.size);
    let n = args.size.div_ceil(4) * 4;
    let ctx = gpu_context()?;
    let mut rng = SplitMix64::new(0x5_9e33);
    let a = rng.tensor(m * k);
    let b = rng.tensor(k * n);
    let at = ctx.upload(&a, &[m, k])?;
    let bt = ctx.upload(&b, &[k, n])?;
    let flops = 2.0 * (m * n * k) as f64;
    println!("adapter: {}", ctx.adapter());
    println!("SGEMM {m}x{n}x{k}, median of {} runs", args.repeats);
    let mut best = 0.0f64;
    let runs = Runs {
        repeats: args.repeats,
        min_time: std::time::Duration::ZERO,
        warmup: WARMUP,
    };
    for spec in SGEMM_TILES {
        let (c, t) = time_runs(runs, || {
            let c = ctx.sgemm(&at, &bt, spec)?;
            ctx.wait()?;
            Ok(c)
        })?;
        let c = ctx.read(&c)?;
        let mut worst = 0.0f64;
        for _ in 0..CHECKED_ENTRIES {
            let (i, j) = (rng.range(0, m), rng.range(0, n));
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for t in 0..k {
                let term = a[i * k + t] as f64 * b[t * n + j] as f64;
                dot += term;
                mag += term.abs();
            }
            worst = worst.max((c[i * n + j] as f64 - dot).abs() / mag.max(f64::MIN_POSITIVE));
        }
        let gflops = flops / (t.median_ms * 1e6);
        best = best.max(gflops);
        let verdict = if worst <= ENTRY_TOL { "ok" } else { "FAIL" };
        println!(
            "  {spec:<40} {:>9.2} ms {gflops:>8.2} GFLOP/s  max entry error {worst:.1e} {verdict}",
            t.median_ms
        );
        if worst > ENTRY_TOL {
            return Err(CliError::Failed(format!(
                "sgemm at {spec}: entry error {worst:.1e} beyond {ENTRY_TOL:e}"
            )));
        }
    }
    println!("ceiling (best tile): {best:.2} GFLOP/s");
    Ok(())
}
