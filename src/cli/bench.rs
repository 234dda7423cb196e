//! `gpuconv bench`: CPU (fast path) vs GPU on a shape suite, side by side, with every result
//! checked against the f64 reference in the same run.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use gpuconv::cpu::fast::{self, CpuChoice};
use gpuconv::cpu::reference;
use gpuconv::cpu::tune::CpuTuner;
use gpuconv::epilogue::Addends;
use gpuconv::gpu::plan::{FusedForward, Operand};
use gpuconv::gpu::{TuneBudget, Tuning};
use gpuconv::metrics::{compare, ErrorStats};
use gpuconv::rng::SplitMix64;
use gpuconv::suite::{self, Shape};
use gpuconv::transposed::{self, Backend, TransposedProblem};
use gpuconv::{
    Activation, ConvProblem, Epilogue, Error, GpuContext, GpuTensor, Op, Recorder, Result,
};

use super::{gpu_context_with, output, usage, CliError, CliResult};

/// A column of the benchmark.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BenchDevice {
    /// The fast CPU path (im2col + GEMM, rayon).
    Cpu,
    /// The WGSL kernels: inputs resident, and end-to-end (upload + run + read-back).
    Gpu,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Shape suite (JSON, same format as benches/shapes.json); default: the embedded suite.
    #[arg(long)]
    shapes: Option<PathBuf>,
    /// Only shapes whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Override every shape's batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Ops to time.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "forward,input-grad,weight-grad"
    )]
    ops: Vec<Op>,
    /// Devices to time.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,gpu")]
    devices: Vec<BenchDevice>,
    /// Timed runs per measurement (after one warm-up run): at least this many.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Keep timing each measurement until its runs add up to at least this long: a sub-ms op
    /// then gets hundreds of runs, so one scheduler hiccup cannot move its median.
    #[arg(long, default_value_t = 300)]
    min_time_ms: u64,
    /// Before timing a GPU op, run it for at least this long, so a GPU that idled while the
    /// reference ran is back at full clocks.
    #[arg(long, default_value_t = 200)]
    gpu_warmup_ms: u64,
    /// Write one JSON record per line here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw GFLOP/s per shape and op for CPU and GPU as an SVG bar chart.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also time each shape's forward with this epilogue fused (bias and a residual added; e.g.
    /// relu, gelu, leaky-relu:0.1) against the same forward followed by the epilogue as its own
    /// pass over Y.
    #[arg(long, value_name = "NAME")]
    epilogue: Option<String>,
    /// Also time each shape's transposed forward: the dual of its convolution (X of the
    /// convolution's output shape, Y of its input shape, the same weights), with a bias.
    #[arg(long)]
    transposed: bool,
    /// Time only the --epilogue and --transposed layers, not the ops.
    #[arg(long)]
    layers_only: bool,
    /// Tune each (shape, op) on each benched device first: time every candidate (GPU plans;
    /// CPU kernel families and how they spread images), print the candidates, their times and
    /// the pick, then time the pick.
    #[arg(long)]
    tune: bool,
    /// Tuning cache file: this adapter's and this CPU's choices in it are used (without --tune:
    /// no timing of candidates), and --tune writes its choices there. Human-readable, one line
    /// per choice.
    #[arg(long, value_name = "FILE")]
    tune_cache: Option<PathBuf>,
    /// Most time tuning one (shape, op) spends timing candidates.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    tune_budget_ms: u64,
}

/// One measurement, as written to --json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    shape: String,
    /// The op's name: forward, input-grad, weight-grad, bias-grad, and the extra layers'
    /// fused-forward, unfused-forward, transposed-forward.
    op: &'static str,
    device: &'static str,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    /// Timed runs behind the median.
    runs: usize,
    gflops: f64,
    rel_err: f64,
    max_err: f64,
    flops: f64,
    plan: String,
}

pub(crate) struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
}

/// Median, min and max of `ms`; `None` when empty.
fn timing_of(mut ms: Vec<f64>) -> Option<Timing> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    Some(Timing {
        median_ms: ms[ms.len() / 2],
        min_ms: ms[0],
        max_ms: ms[ms.len() - 1],
        runs: ms.len(),
    })
}

/// How long and how often one measurement runs.
#[derive(Clone, Copy)]
pub(crate) struct Runs {
    /// Timed runs, at least.
    pub repeats: usize,
    /// Timed runs continue until they add up to this (more runs for short ops).
    pub min_time: Duration,
    /// Untimed runs first, for at least this long (at least one run).
    pub warmup: Duration,
}

/// Most timed runs of one measurement, whatever `min_time` asks.
const MAX_RUNS: usize = 10_000;

/// Runs `f` to warm up, then timed per [`Runs`], and returns its last result and the timing.
/// The warm-up matters for GPUs: one that idled (here: while the CPU computed the reference)
/// runs at low clocks until it has been busy for a while, and a single millisecond-long warm-up
/// run would time the ramp, not the kernel (PERFORMANCE.md, [#gpu-warm-up]).
pub(crate) fn time_runs<T>(runs: Runs, mut f: impl FnMut() -> Result<T>) -> Result<(T, Timing)> {
    let start = Instant::now();
    let mut out = f()?;
    while start.elapsed() < runs.warmup {
        out = f()?;
    }
    let mut ms = Vec::with_capacity(runs.repeats);
    let mut measured = Duration::ZERO;
    while ms.len() < runs.repeats.max(1) || (measured < runs.min_time && ms.len() < MAX_RUNS) {
        let t = Instant::now();
        out = f()?;
        let took = t.elapsed();
        measured += took;
        ms.push(took.as_secs_f64() * 1e3);
    }
    let timing = timing_of(ms).ok_or_else(|| Error::Internal("no timed run".into()))?;
    Ok((out, timing))
}

struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
}

fn reference_result(op: Op, pb: &ConvProblem, i: &Inputs) -> Result<Vec<f32>> {
    match op {
        Op::Forward => reference::forward(pb, &i.x, &i.w, None),
        Op::InputGrad => reference::input_grad(pb, &i.dy, &i.w),
        Op::WeightGrad => reference::weight_grad(pb, &i.dy, &i.x),
        Op::BiasGrad => reference::bias_grad(&pb.y_shape(), &i.dy),
    }
}

fn cpu_result(cpu: &CpuTuner, op: Op, pb: &ConvProblem, i: &Inputs) -> Result<Vec<f32>> {
    match op {
        Op::Forward => cpu.forward(pb, &i.x, &i.w, None),
        Op::InputGrad => cpu.input_grad(pb, &i.dy, &i.w),
        Op::WeightGrad => cpu.weight_grad(pb, &i.dy, &i.x),
        Op::BiasGrad => fast::bias_grad(&pb.y_shape(), &i.dy),
    }
}

struct Resident {
    x: GpuTensor,
    w: GpuTensor,
    dy: GpuTensor,
}

/// Records `op` on resident inputs.
fn gpu_resident(rec: &mut Recorder, op: Op, pb: &ConvProblem, t: &Resident) -> Result<GpuTensor> {
    let params = pb.params;
    match op {
        Op::Forward => rec.forward(&t.x, &t.w, None, params),
        Op::InputGrad => rec.input_grad(&t.dy, &t.w, &pb.x_shape(), params),
        Op::WeightGrad => rec.weight_grad(&t.dy, &t.x, &pb.w_shape(), params),
        Op::BiasGrad => rec.bias_grad(&t.dy),
    }
}

fn gpu_end_to_end(ctx: &GpuContext, op: Op, pb: &ConvProblem, i: &Inputs) -> Result<Vec<f32>> {
    let (xs, ws, ys, params) = (pb.x_shape(), pb.w_shape(), pb.y_shape(), pb.params);
    match op {
        Op::Forward => ctx.conv2d_forward(&i.x, &xs, &i.w, &ws, None, params),
        Op::InputGrad => ctx.conv2d_input_grad(&i.dy, &ys, &i.w, &ws, &xs, params),
        Op::WeightGrad => ctx.conv2d_weight_grad(&i.dy, &ys, &i.x, &xs, &ws, params),
        Op::BiasGrad => ctx.conv2d_bias_grad(&i.dy, &ys),
    }
}

/// Largest shapes file read (a suite is a few kilobytes).
const MAX_SUITE_BYTES: u64 = 1 << 20;

fn load_suite(args: &BenchArgs) -> CliResult<Vec<Shape>> {
    let mut shapes = match &args.shapes {
        Some(path) => {
            let io = |source| Error::Io {
                path: path.display().to_string(),
                source,
            };
            let file = std::fs::File::open(path).map_err(io)?;
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_SUITE_BYTES + 1),
                &mut text,
            )
            .map_err(io)?;
            if text.len() as u64 > MAX_SUITE_BYTES {
                return Err(usage(format!(
                    "{}: a shapes file is at most {MAX_SUITE_BYTES} bytes",
                    path.display()
                )));
            }
            suite::parse(&text, &path.display().to_string())?
        }
        None => suite::default_suite(),
    };
    if let Some(only) = &args.only {
        shapes.retain(|s| s.name.contains(only.as_str()));
    }
    if let Some(n) = args.batch {
        shapes.iter_mut().for_each(|s| s.n = n);
    }
    if shapes.is_empty() {
        return Err(usage("no shapes selected"));
    }
    Ok(shapes)
}

fn fmt_err(e: &ErrorStats) -> String {
    let flag = if e.within_tolerance() { "" } else { " FAIL" };
    format!("{:.1e}{flag}", e.rel_l2)
}

pub fn bench(args: &BenchArgs) -> CliResult<()> {
    let shapes = load_suite(args)?;
    // Output paths are checked before the run, not after it.
    for path in [&args.json, &args.plot].into_iter().flatten() {
        output::check_writable(path)?;
    }
    let epilogue = args
        .epilogue
        .as_deref()
        .map(str::parse::<Activation>)
        .transpose()?
        .map(|activation| Epilogue {
            activation,
            ..Default::default()
        });
    if args.layers_only && epilogue.is_none() && !args.transposed {
        return Err(usage("--layers-only needs --epilogue NAME or --transposed"));
    }
    let ops: &[Op] = if args.layers_only { &[] } else { &args.ops };
    let want_cpu = args.devices.contains(&BenchDevice::Cpu);
    let cpu_tuner = CpuTuner::new(args.tune_cache.as_deref())?;
    let ctx: Option<GpuContext> = if args.devices.contains(&BenchDevice::Gpu) {
        Some(gpu_context_with(args.tune_cache.clone())?)
    } else {
        None
    };
    println!(
        "gpuconv bench: {} shapes x {} ops, median of at least {} timed runs and {} ms each",
        shapes.len(),
        ops.len(),
        args.repeats,
        args.min_time_ms
    );
    match &ctx {
        Some(ctx) => println!("GPU: {}", ctx.adapter()),
        None => println!("GPU: not measured"),
    }
    println!(
        "CPU: fast path (direct kernels: {} / im2col + gemm / depthwise planes), {} rayon threads",
        gpuconv::cpu::fast::direct_isa(),
        rayon::current_num_threads()
    );
    println!("error: relative L2 against the f64 reference, computed this run (FAIL beyond 1e-5 / scaled max 1e-4)");
    if !args.layers_only {
        println!();
        println!(
        "{:<20} {:<11} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>10} {:>10}  kernels",
        "shape",
        "op",
        "cpu ms",
        "GF/s",
        "gpu ms",
        "GF/s",
        "dev ms",
        "GF/s",
        "e2e ms",
        "GF/s",
        "gpu/cpu",
        "err cpu",
        "err gpu"
    );
    }

    let runs = Runs {
        repeats: args.repeats,
        min_time: Duration::from_millis(args.min_time_ms),
        warmup: Duration::ZERO,
    };
    let mut records: Vec<Record> = Vec::new();
    let mut tuned: Vec<(Op, Tuning)> = Vec::new();
    let mut cpu_tuned: Vec<(Op, Tuning<CpuChoice>)> = Vec::new();
    let budget = TuneBudget {
        total: Duration::from_millis(args.tune_budget_ms),
        ..Default::default()
    };
    let mut failures = 0usize;
    let total = shapes.len() * ops.len();
    let mut done = 0usize;
    for (si, shape) in shapes.iter().enumerate() {
        let pb = shape.problem()?;
        let mut rng = SplitMix64::new(0xbe4c_0000 + si as u64);
        let inputs = Inputs {
            x: rng.tensor(pb.x_len()),
            w: rng.tensor(pb.w_len()),
            dy: rng.tensor(pb.y_len()),
        };
        let resident = match &ctx {
            Some(ctx) => Some(Resident {
                x: ctx.upload(&inputs.x, &pb.x_shape())?,
                w: ctx.upload(&inputs.w, &pb.w_shape())?,
                dy: ctx.upload(&inputs.dy, &pb.y_shape())?,
            }),
            None => None,
        };
        for &op in ops {
            done += 1;
            eprintln!("[{done}/{total}] {} {} ...", shape.name, op.name());
            let want = reference_result(op, &pb, &inputs)?;
            let flops = pb.flops();
            let gflops = |ms: f64| flops / ms / 1e6;
            let mut push = |device: &'static str, t: &Timing, err: &ErrorStats, plan: String| {
                records.push(Record {
                    shape: shape.name.clone(),
                    op: op.name(),
                    device,
                    median_ms: t.median_ms,
                    min_ms: t.min_ms,
                    max_ms: t.max_ms,
                    runs: t.runs,
                    gflops: gflops(t.median_ms),
                    rel_err: err.rel_l2,
                    max_err: err.scaled_max,
                    flops,
                    plan,
                });
            };
            let mut cpu = None;
            if want_cpu {
                if args.tune && op != Op::BiasGrad {
                    let tuning = cpu_tuner.tune(op, &pb, budget)?;
                    print_tuning(&shape.name, "cpu", op, &tuning);
                    cpu_tuned.push((op, tuning));
                }
                let (got, t) = time_runs(runs, || cpu_result(&cpu_tuner, op, &pb, &inputs))?;
                let err = compare(&got, &want);
                failures += !err.within_tolerance() as usize;
                let choice = cpu_tuner.choice(op, &pb);
                push("cpu", &t, &err, choice.describe(op, &pb));
                cpu = Some((t, err));
            }
            let mut gpu = None;
            if let (Some(ctx), Some(res)) = (&ctx, &resident) {
                if args.tune {
                    let tuning = ctx.tune(op, &pb, budget)?;
                    print_tuning(&shape.name, "gpu", op, &tuning);
                    tuned.push((op, tuning));
                }
                let plan = ctx.plan(op, &pb, false)?.to_string();
                let warm = Runs {
                    warmup: Duration::from_millis(args.gpu_warmup_ms),
                    ..runs
                };
                let (out, t) = time_runs(warm, || {
                    let mut rec = ctx.recorder();
                    let out = gpu_resident(&mut rec, op, &pb, res)?;
                    rec.submit()?.wait()?;
                    Ok(out)
                })?;
                let err = compare(&ctx.read(&out)?, &want);
                failures += !err.within_tolerance() as usize;
                push("gpu", &t, &err, plan.clone());
                // Device time of the same resident op from timestamp queries, where offered,
                // right after the resident runs, while the clocks are still up.
                let mut device_ms = Vec::new();
                for _ in 0..args.repeats.max(1) {
                    let mut rec = ctx.timed_recorder();
                    gpu_resident(&mut rec, op, &pb, res)?;
                    match rec.submit()?.device_time_ms()? {
                        Some(ms) => device_ms.push(ms),
                        None => break,
                    }
                }
                let td = timing_of(device_ms);
                if let Some(td) = &td {
                    push("gpu-device", td, &err, plan.clone());
                }
                let (got, te) = time_runs(runs, || gpu_end_to_end(ctx, op, &pb, &inputs))?;
                let err_e = compare(&got, &want);
                failures += !err_e.within_tolerance() as usize;
                push("gpu-e2e", &te, &err_e, plan.clone());
                gpu = Some((t, err, te, td, plan));
            }
            let dash = || format!("{:>9} {:>8}", "-", "-");
            let cell = |t: &Timing| format!("{:>9.2} {:>8.1}", t.median_ms, gflops(t.median_ms));
            println!(
                "{:<20} {:<11} {} {} {} {} {:>8} {:>10} {:>10}  {}",
                shape.name,
                op.name(),
                cpu.as_ref().map(|(t, _)| cell(t)).unwrap_or_else(dash),
                gpu.as_ref().map(|(t, ..)| cell(t)).unwrap_or_else(dash),
                gpu.as_ref()
                    .and_then(|(_, _, _, td, _)| td.as_ref().map(cell))
                    .unwrap_or_else(dash),
                gpu.as_ref()
                    .map(|(_, _, te, _, _)| cell(te))
                    .unwrap_or_else(dash),
                match (&cpu, &gpu) {
                    (Some((c, _)), Some((g, ..))) => format!("{:.2}x", c.median_ms / g.median_ms),
                    _ => "-".into(),
                },
                cpu.as_ref().map(|(_, e)| fmt_err(e)).unwrap_or("-".into()),
                gpu.as_ref()
                    .map(|(_, e, ..)| fmt_err(e))
                    .unwrap_or("-".into()),
                [
                    want_cpu.then(|| {
                        format!("cpu: {}", cpu_tuner.choice(op, &pb).describe(op, &pb))
                    }),
                    gpu.as_ref().map(|(.., p)| format!("gpu: {p}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            );
        }
    }
    if epilogue.is_some() || args.transposed {
        let layers = Layers {
            epilogue,
            transposed: args.transposed,
            cpu: want_cpu,
            runs,
            gpu_warmup: Duration::from_millis(args.gpu_warmup_ms),
        };
        failures += layers.bench(&shapes, ctx.as_ref(), &mut records)?;
    }
    print_geomeans(&records, ops);
    if !cpu_tuned.is_empty() {
        print_tuning_summary("cpu", &cpu_tuned, ops);
    }
    if !tuned.is_empty() {
        print_tuning_summary("gpu", &tuned, ops);
    }
    if let Some(path) = &args.json {
        output::write_file(path, |w| {
            for r in &records {
                serde_json::to_writer(&mut *w, r).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
    }
    if let Some(path) = &args.plot {
        let svg = plot_svg(&records);
        output::write_file(path, |w| w.write_all(svg.as_bytes()))?;
    }
    std::io::stdout().flush().ok();
    if failures > 0 {
        return Err(CliError::Failed(format!(
            "{failures} result(s) exceeded the error tolerance against the reference (marked FAIL above)"
        )));
    }
    Ok(())
}

/// The layers timed besides the ops: the fused forward against forward + epilogue pass, and
/// the transposed forward.
struct Layers {
    epilogue: Option<Epilogue>,
    transposed: bool,
    cpu: bool,
    runs: Runs,
    gpu_warmup: Duration,
}

impl Layers {
    /// Times every layer on every shape, prints a table each, adds their records; returns the
    /// number of results outside the tolerance.
    fn bench(
        &self,
        shapes: &[Shape],
        ctx: Option<&GpuContext>,
        records: &mut Vec<Record>,
    ) -> CliResult<usize> {
        let mut failures = 0;
        let warm = Runs {
            warmup: self.gpu_warmup,
            ..self.runs
        };
        let mut push = |records: &mut Vec<Record>,
                        shape: &Shape,
                        op: &'static str,
                        device: &'static str,
                        flops: f64,
                        t: &Timing,
                        err: &ErrorStats,
                        plan: String| {
            failures += usize::from(!err.within_tolerance());
            records.push(Record {
                shape: shape.name.clone(),
                op,
                device,
                median_ms: t.median_ms,
                min_ms: t.min_ms,
                max_ms: t.max_ms,
                runs: t.runs,
                gflops: flops / t.median_ms / 1e6,
                rel_err: err.rel_l2,
                max_err: err.scaled_max,
                flops,
                plan,
            });
        };
        let ms = |t: &Option<Timing>| {
            t.as_ref()
                .map_or("-".into(), |t| format!("{:.2}", t.median_ms))
        };
        if let Some(epi) = &self.epilogue {
            println!();
            println!(
                "forward with a fused epilogue y = {}(conv + b + z) against the forward and the epilogue as its own pass",
                epi.activation
            );
            println!(
                "{:<20} {:>9} {:>10} {:>12} {:>9} {:>10} {:>10}  gpu plan",
                "shape", "cpu ms", "gpu fused", "gpu unfused", "unf/fus", "err cpu", "err gpu"
            );
            for (si, shape) in shapes.iter().enumerate() {
                let pb = shape.problem()?;
                let mut rng = SplitMix64::new(0xe9_0000 + si as u64);
                let (x, w) = (rng.tensor(pb.x_len()), rng.tensor(pb.w_len()));
                let (b, z) = (rng.tensor(pb.k), rng.tensor(pb.y_len()));
                let addends = Addends {
                    bias: Some(&b),
                    residual: Some(&z),
                };
                let want = reference::forward_fused(&pb, &x, &w, addends, epi)?.0;
                let flops = pb.flops();
                let mut cpu = None;
                let mut err_cpu = None;
                if self.cpu {
                    let (got, t) = time_runs(self.runs, || {
                        fast::forward_fused(&pb, &x, &w, addends, epi, false)
                    })?;
                    let err = compare(&got.0, &want);
                    push(
                        records,
                        shape,
                        "fused-forward",
                        "cpu",
                        flops,
                        &t,
                        &err,
                        fast::describe(&pb, Op::Forward),
                    );
                    err_cpu = Some(fmt_err(&err));
                    cpu = Some(t);
                }
                let (mut fused_t, mut unfused_t, mut err_gpu, mut plan_text) =
                    (None, None, None, String::new());
                if let Some(ctx) = ctx {
                    let up = |v: &[f32], s: &[usize]| ctx.upload(v, s);
                    let (xt, wt) = (up(&x, &pb.x_shape())?, up(&w, &pb.w_shape())?);
                    let (bt, zt) = (up(&b, &[pb.k])?, up(&z, &pb.y_shape())?);
                    let operands = [
                        (Operand::X, &xt),
                        (Operand::W, &wt),
                        (Operand::Bias, &bt),
                        (Operand::Residual, &zt),
                    ];
                    let fused = FusedForward {
                        epilogue: *epi,
                        bias: true,
                        residual: true,
                        save_pre: false,
                    };
                    let plans = [
                        (
                            "fused-forward",
                            ctx.planner_for(Op::Forward, &pb)
                                .plan_fused_forward(&pb, &fused)?,
                        ),
                        (
                            "unfused-forward",
                            ctx.planner_for(Op::Forward, &pb)
                                .plan_unfused_forward(&pb, &fused)?,
                        ),
                    ];
                    let mut errs = Vec::new();
                    for (i, (op, plan)) in plans.iter().enumerate() {
                        let (out, t) = time_runs(warm, || {
                            let mut rec = ctx.recorder();
                            let out = rec.record(plan, &operands)?;
                            rec.submit()?.wait()?;
                            Ok(out)
                        })?;
                        let err = compare(&ctx.read(&out)?, &want);
                        errs.push(fmt_err(&err));
                        push(records, shape, op, "gpu", flops, &t, &err, plan.to_string());
                        if i == 0 {
                            plan_text = plan.to_string();
                            fused_t = Some(t);
                        } else {
                            unfused_t = Some(t);
                        }
                    }
                    err_gpu = Some(errs.join("/"));
                }
                let ratio = match (&fused_t, &unfused_t) {
                    (Some(f), Some(u)) => format!("{:.2}x", u.median_ms / f.median_ms),
                    _ => "-".into(),
                };
                println!(
                    "{:<20} {:>9} {:>10} {:>12} {:>9} {:>10} {:>10}  {plan_text}",
                    shape.name,
                    ms(&cpu),
                    ms(&fused_t),
                    ms(&unfused_t),
                    ratio,
                    err_cpu.unwrap_or("-".into()),
                    err_gpu.unwrap_or("-".into()),
                );
            }
        }
        if self.transposed {
            println!();
            println!("transposed forward (each shape's dual: X of the convolution's output shape, Y of its input shape) + bias");
            println!(
                "{:<20} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10}",
                "shape", "cpu ms", "GF/s", "gpu ms", "GF/s", "e2e ms", "GF/s", "err cpu", "err gpu"
            );
            for (si, shape) in shapes.iter().enumerate() {
                let pb = shape.problem()?;
                let tpb = dual(&pb)?;
                let mut rng = SplitMix64::new(0x7a_0000 + si as u64);
                let (x, w, b) = (
                    rng.tensor(pb.y_len()),
                    rng.tensor(pb.w_len()),
                    rng.tensor(pb.c),
                );
                let want = transposed::forward(Backend::Reference, &tpb, &x, &w, Some(&b))?;
                let flops = pb.flops();
                let gf = |t: &Option<Timing>| {
                    t.as_ref()
                        .map_or("-".into(), |t| format!("{:.1}", flops / t.median_ms / 1e6))
                };
                let mut cpu = None;
                let mut err_cpu = None;
                if self.cpu {
                    let (got, t) = time_runs(self.runs, || {
                        transposed::forward(Backend::Fast, &tpb, &x, &w, Some(&b))
                    })?;
                    let err = compare(&got, &want);
                    push(
                        records,
                        shape,
                        "transposed-forward",
                        "cpu",
                        flops,
                        &t,
                        &err,
                        fast::describe(&pb, Op::InputGrad),
                    );
                    err_cpu = Some(fmt_err(&err));
                    cpu = Some(t);
                }
                let (mut gpu, mut e2e, mut err_gpu) = (None, None, None);
                if let Some(ctx) = ctx {
                    // Resident: the convolution's input gradient and the bias pass, recorded
                    // together (the dual needs no padding of X).
                    let xt = ctx.upload(&x, &pb.y_shape())?;
                    let wt = ctx.upload(&w, &pb.w_shape())?;
                    let bt = ctx.upload(&b, &[pb.c])?;
                    let plan = ctx.plan(Op::InputGrad, &pb, false)?.to_string();
                    let (out, t) = time_runs(warm, || {
                        let mut rec = ctx.recorder();
                        let y = rec.input_grad(&xt, &wt, &pb.x_shape(), pb.params)?;
                        let y = rec.epilogue(&y, Some(&bt), None, &Epilogue::default())?;
                        rec.submit()?.wait()?;
                        Ok(y)
                    })?;
                    let err = compare(&ctx.read(&out)?, &want);
                    push(
                        records,
                        shape,
                        "transposed-forward",
                        "gpu",
                        flops,
                        &t,
                        &err,
                        plan.clone(),
                    );
                    let (got, te) = time_runs(self.runs, || {
                        transposed::forward(Backend::Gpu(ctx), &tpb, &x, &w, Some(&b))
                    })?;
                    let err_e = compare(&got, &want);
                    push(
                        records,
                        shape,
                        "transposed-forward",
                        "gpu-e2e",
                        flops,
                        &te,
                        &err_e,
                        plan,
                    );
                    err_gpu = Some(format!("{}/{}", fmt_err(&err), fmt_err(&err_e)));
                    gpu = Some(t);
                    e2e = Some(te);
                }
                println!(
                    "{:<20} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10}",
                    shape.name,
                    ms(&cpu),
                    gf(&cpu),
                    ms(&gpu),
                    gf(&gpu),
                    ms(&e2e),
                    gf(&e2e),
                    err_cpu.unwrap_or("-".into()),
                    err_gpu.unwrap_or("-".into()),
                );
            }
        }
        Ok(failures)
    }
}

/// The transposed convolution whose forward is `pb`'s input gradient: X of `pb`'s output shape,
/// the same weights, Y of `pb`'s input shape (the output padding recovers rows the stride
/// dropped).
fn dual(pb: &ConvProblem) -> Result<TransposedProblem> {
    let p = pb.params;
    let extent = |out: usize, stride: usize, pad: usize, dil: usize, taps: usize| {
        ((out - 1) * stride + dil * (taps - 1) + 1).saturating_sub(pad)
    };
    let h = extent(
        pb.p,
        p.stride[0],
        p.padding[0] + p.padding[2],
        p.dilation[0],
        pb.r,
    );
    let w = extent(
        pb.q,
        p.stride[1],
        p.padding[1] + p.padding[3],
        p.dilation[1],
        pb.s,
    );
    TransposedProblem::new(
        &pb.y_shape(),
        &pb.w_shape(),
        p,
        [pb.h.saturating_sub(h), pb.w.saturating_sub(w)],
    )
}

/// One (shape, op)'s tuning on `device`: each candidate's time and plan, and the pick.
fn print_tuning<C: PartialEq + std::fmt::Display>(
    shape: &str,
    device: &str,
    op: Op,
    t: &Tuning<C>,
) {
    let clock = if t.device_time { "device" } else { "wall" };
    println!(
        "tune {device} {shape} {}: {} candidates in {:.1} s ({clock} ms)",
        op.name(),
        t.candidates.len(),
        t.took.as_secs_f64()
    );
    for c in &t.candidates {
        let ms =
            c.ms.map_or("not timed (budget)".into(), |ms| format!("{ms:9.3}"));
        let mark = if c.choice == t.pick { "*" } else { " " };
        println!("  {mark} {ms}  {:<28} {}", c.choice.to_string(), c.plan);
    }
    if let Some(s) = t.speedup() {
        println!("  pick: {} ({s:.2}x the heuristic)", t.pick);
    }
}

/// Tuning time and the geomean speed-up of the picks over the heuristic, per op.
fn print_tuning_summary<C: PartialEq>(device: &str, tuned: &[(Op, Tuning<C>)], ops: &[Op]) {
    let total: f64 = tuned.iter().map(|(_, t)| t.took.as_secs_f64()).sum();
    let parts: Vec<String> = ops
        .iter()
        .filter_map(|&op| {
            let s: Vec<f64> = tuned
                .iter()
                .filter(|(o, _)| *o == op)
                .filter_map(|(_, t)| t.speedup())
                .map(f64::ln)
                .collect();
            (!s.is_empty()).then(|| {
                format!(
                    "{} {:.2}x",
                    op.name(),
                    (s.iter().sum::<f64>() / s.len() as f64).exp()
                )
            })
        })
        .collect();
    println!(
        "tuning {device}: {total:.1} s in all; geomean speed-up of the picks over the heuristic (tuning's own timing) {}",
        parts.join(", ")
    );
}

fn print_geomeans(records: &[Record], ops: &[Op]) {
    println!();
    for device in ["cpu", "gpu", "gpu-device", "gpu-e2e"] {
        let parts: Vec<String> = ops
            .iter()
            .filter_map(|&op| {
                let g: Vec<f64> = records
                    .iter()
                    .filter(|r| r.device == device && r.op == op.name())
                    .map(|r| r.gflops.ln())
                    .collect();
                (!g.is_empty()).then(|| {
                    format!(
                        "{} {:.2}",
                        op.name(),
                        (g.iter().sum::<f64>() / g.len() as f64).exp()
                    )
                })
            })
            .collect();
        if !parts.is_empty() {
            println!("geomean GFLOP/s {device:<10} {}", parts.join(", "));
        }
    }
}

/// `s` with the XML specials escaped, for SVG text and attributes.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A grouped bar chart: one group per (shape, op), one bar per device, log-free linear GFLOP/s.
fn plot_svg(records: &[Record]) -> String {
    let devices = ["cpu", "gpu", "gpu-e2e"];
    let colours = ["#4e79a7", "#f28e2b", "#b07aa1"];
    let mut groups: Vec<(String, &str)> = Vec::new();
    for r in records {
        if !groups.iter().any(|(s, o)| *s == r.shape && *o == r.op) {
            groups.push((r.shape.clone(), r.op));
        }
    }
    let max = records.iter().map(|r| r.gflops).fold(1e-9, f64::max);
    let (bar_w, gap, top, height, left) = (10.0, 14.0, 40.0, 300.0, 60.0);
    let group_w = bar_w * devices.len() as f64 + gap;
    let width = left + group_w * groups.len() as f64 + 20.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{:.0}\" font-family=\"sans-serif\" font-size=\"10\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">gpuconv bench: GFLOP/s per shape and op</text>\n",
        top + height + 170.0
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let y = top + height - height * i as f64 / 4.0;
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{width:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>\n",
            left - 4.0,
            y + 3.0
        );
    }
    for (gi, (shape, op)) in groups.iter().enumerate() {
        let x0 = left + gi as f64 * group_w;
        for (di, device) in devices.iter().enumerate() {
            if let Some(r) = records
                .iter()
                .find(|r| r.shape == *shape && r.op == *op && r.device == *device)
            {
                let h = height * r.gflops / max;
                let shape = escape(shape);
                svg += &format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w}\" height=\"{h:.1}\" fill=\"{}\"><title>{shape} {} {device}: {:.2} GFLOP/s</title></rect>\n",
                    x0 + di as f64 * bar_w,
                    top + height - h,
                    colours[di],
                    op,
                    r.gflops
                );
            }
        }
        let lx = x0 + bar_w * 1.5;
        let ly = top + height + 8.0;
        let shape = escape(shape);
        svg += &format!(
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" transform=\"rotate(60 {lx:.1} {ly:.1})\">{shape} {op}</text>\n",
        );
    }
    for (di, device) in devices.iter().enumerate() {
        let x = left + di as f64 * 90.0;
        svg += &format!(
            "<rect x=\"{x:.0}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"35\">{device}</text>\n",
            colours[di],
            x + 14.0
        );
    }
    svg += "</svg>\n";
    svg
}
