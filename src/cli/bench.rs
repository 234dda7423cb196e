//! `gpuconv bench`: CPU (fast path) vs GPU on a shape suite, side by side, with every result
//! checked against the f64 reference in the same run.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use gpuconv::cpu::{fast, reference};
use gpuconv::metrics::{compare, ErrorStats};
use gpuconv::rng::SplitMix64;
use gpuconv::suite::{self, Shape};
use gpuconv::{ConvProblem, Error, GpuContext, GpuTensor, Op, Recorder, Result};

use super::{gpu_context, output, usage, CliError, CliResult};

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
}

/// One measurement, as written to --json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    shape: String,
    op: Op,
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

fn cpu_result(op: Op, pb: &ConvProblem, i: &Inputs) -> Result<Vec<f32>> {
    match op {
        Op::Forward => fast::forward(pb, &i.x, &i.w, None),
        Op::InputGrad => fast::input_grad(pb, &i.dy, &i.w),
        Op::WeightGrad => fast::weight_grad(pb, &i.dy, &i.x),
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
    let want_cpu = args.devices.contains(&BenchDevice::Cpu);
    let ctx: Option<GpuContext> = if args.devices.contains(&BenchDevice::Gpu) {
        Some(gpu_context()?)
    } else {
        None
    };
    println!(
        "gpuconv bench: {} shapes x {} ops, median of at least {} timed runs and {} ms each",
        shapes.len(),
        args.ops.len(),
        args.repeats,
        args.min_time_ms
    );
    match &ctx {
        Some(ctx) => println!("GPU: {}", ctx.adapter()),
        None => println!("GPU: not measured"),
    }
    println!(
        "CPU: fast path (direct AVX-512 / im2col + gemm / depthwise planes), {} rayon threads",
        rayon::current_num_threads()
    );
    println!("error: relative L2 against the f64 reference, computed this run (FAIL beyond 1e-5 / scaled max 1e-4)");
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

    let runs = Runs {
        repeats: args.repeats,
        min_time: Duration::from_millis(args.min_time_ms),
        warmup: Duration::ZERO,
    };
    let mut records: Vec<Record> = Vec::new();
    let mut failures = 0usize;
    let total = shapes.len() * args.ops.len();
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
        for &op in &args.ops {
            done += 1;
            eprintln!("[{done}/{total}] {} {} ...", shape.name, op.name());
            let want = reference_result(op, &pb, &inputs)?;
            let flops = pb.flops();
            let gflops = |ms: f64| flops / ms / 1e6;
            let mut push = |device: &'static str, t: &Timing, err: &ErrorStats, plan: String| {
                records.push(Record {
                    shape: shape.name.clone(),
                    op,
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
                let (got, t) = time_runs(runs, || cpu_result(op, &pb, &inputs))?;
                let err = compare(&got, &want);
                failures += !err.within_tolerance() as usize;
                push("cpu", &t, &err, fast::describe(&pb, op).into());
                cpu = Some((t, err));
            }
            let mut gpu = None;
            if let (Some(ctx), Some(res)) = (&ctx, &resident) {
                let plan = ctx.planner().plan(op, &pb, false)?.to_string();
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
                    want_cpu.then(|| format!("cpu: {}", fast::describe(&pb, op))),
                    gpu.as_ref().map(|(.., p)| format!("gpu: {p}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            );
        }
    }
    print_geomeans(&records, &args.ops);
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

fn print_geomeans(records: &[Record], ops: &[Op]) {
    println!();
    for device in ["cpu", "gpu", "gpu-device", "gpu-e2e"] {
        let parts: Vec<String> = ops
            .iter()
            .filter_map(|&op| {
                let g: Vec<f64> = records
                    .iter()
                    .filter(|r| r.device == device && r.op == op)
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
    let mut groups: Vec<(String, Op)> = Vec::new();
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
                    op.name(),
                    r.gflops
                );
            }
        }
        let lx = x0 + bar_w * 1.5;
        let ly = top + height + 8.0;
        let shape = escape(shape);
        svg += &format!(
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" transform=\"rotate(60 {lx:.1} {ly:.1})\">{shape} {}</text>\n",
            op.name()
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
