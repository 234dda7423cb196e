//! `gpuconv explain`: the forward sums and both gradients of a small problem, written out.

use std::path::PathBuf;

use clap::Args;
use gpuconv::cpu::reference;
use gpuconv::explain::{Explanation, Format, SvgPart};
use gpuconv::metrics::compare_nan_aware;
use gpuconv::rng::SplitMix64;
use gpuconv::{npy, ConvProblem, TensorRole};

use super::{gpu_context, output, parse_shape, CliError, CliResult, ConvFlags};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Input shape N,C,H,W.
    #[arg(long, default_value = "1,1,3,3", value_name = "N,C,H,W")]
    x_shape: String,
    /// Weight shape K,CperG,R,S.
    #[arg(long, default_value = "1,1,2,2", value_name = "K,CperG,R,S")]
    w_shape: String,
    #[command(flatten)]
    conv: ConvFlags,
    /// Show the bias term in the forward sums.
    #[arg(long)]
    bias: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also evaluate every sum on numbers and check them against the CPU reference and the GPU.
    #[arg(long)]
    numbers: bool,
    /// Seed for --numbers values not given as .npy.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Values of X for --numbers (.npy).
    #[arg(long)]
    x: Option<PathBuf>,
    /// Values of W for --numbers (.npy).
    #[arg(long)]
    w: Option<PathBuf>,
    /// Values of ∂E/∂G for --numbers (.npy).
    #[arg(long)]
    dy: Option<PathBuf>,
    /// Draw the picture to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Which drawing --svg writes: the weight panels, the input panels, the full-convolution
    /// view, or all three.
    #[arg(long, value_enum, default_value = "all")]
    svg_part: SvgPart,
    /// Inputs of the first image that get panels (and the first, the full-convolution view),
    /// named as the sums print them: V1,V7 or V[1,1,2,3]. Default: all up to 36, else the
    /// first 8.
    #[arg(long, value_name = "V1,V7,...")]
    inputs: Option<String>,
}

fn values(
    path: &Option<PathBuf>,
    pb: &ConvProblem,
    role: TensorRole,
    rng: &mut SplitMix64,
) -> CliResult<Vec<f32>> {
    match path {
        Some(p) => {
            let a = npy::read(p)?;
            pb.check_shape(role, &a.shape)?;
            Ok(a.data)
        }
        None => {
            let len = pb.shape_of(role).iter().product();
            // Small round numbers read better in a derivation than full-precision noise.
            Ok(rng
                .tensor(len)
                .into_iter()
                .map(|v| (v * 10.0).round() / 10.0 + if v > 0.0 { 0.1 } else { -0.1 })
                .collect())
        }
    }
}

pub fn explain(args: &ExplainArgs) -> CliResult<()> {
    let params = args.conv.params()?;
    let x_shape = parse_shape("x-shape", &args.x_shape, 4, "N,C,H,W")?;
    let w_shape = parse_shape("w-shape", &args.w_shape, 4, "K,CperG,R,S")?;
    let pb = ConvProblem::new(&x_shape, &w_shape, params)?;
    let ex = Explanation::new(&pb, args.bias)?;
    print!("{}", ex.render(args.format));
    let inputs = match &args.inputs {
        Some(list) => split_names(list)
            .iter()
            .map(|n| ex.input_index(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => ex.default_inputs(),
    };
    if let Some(path) = &args.svg {
        let svg = ex.svg_part(args.svg_part, &inputs);
        output::write_file(path, |w| w.write_all(svg.as_bytes()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.numbers {
        numbers(args, &pb, &ex)?;
    }
    Ok(())
}

/// Splits `V1,V7` or `V[1,1,2,3],V[1,2,1,1]` at the commas outside brackets.
fn split_names(list: &str) -> Vec<String> {
    let mut names = vec![String::new()];
    let mut depth = 0usize;
    for ch in list.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                names.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = names.last_mut() {
            last.push(ch);
        }
    }
    names.retain(|n| !n.trim().is_empty());
    names
}

fn numbers(args: &ExplainArgs, pb: &ConvProblem, ex: &Explanation) -> CliResult<()> {
    let mut rng = SplitMix64::new(args.seed);
    let x = values(&args.x, pb, TensorRole::Input, &mut rng)?;
    let w = values(&args.w, pb, TensorRole::Weight, &mut rng)?;
    let dy = values(&args.dy, pb, TensorRole::OutputGrad, &mut rng)?;
    let b: Option<Vec<f32>> = args
        .bias
        .then(|| (0..pb.k).map(|k| 0.5 - 0.25 * k as f32).collect());
    let wide = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let narrow = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
    println!("\nNumbers (seed {}):", args.seed);
    println!("  X = {x:?}\n  W = {w:?}\n  ∂E/∂G = {dy:?}");
    if let Some(b) = &b {
        println!("  b = {b:?}");
    }
    let sums = [
        (
            "G",
            narrow(ex.eval_forward(&wide(&x), &wide(&w), b.as_ref().map(|b| wide(b)).as_deref())),
        ),
        ("∂E/∂W", narrow(ex.eval_weight_grad(&wide(&dy), &wide(&x)))),
        ("∂E/∂V", narrow(ex.eval_input_grad(&wide(&dy), &wide(&w)))),
    ];
    let cpu = [
        reference::forward(pb, &x, &w, b.as_deref())?,
        reference::weight_grad(pb, &dy, &x)?,
        reference::input_grad(pb, &dy, &w)?,
    ];
    let gpu = gpu_context().and_then(|ctx| {
        let (xs, ws, ys) = (pb.x_shape(), pb.w_shape(), pb.y_shape());
        Ok([
            ctx.conv2d_forward(&x, &xs, &w, &ws, b.as_deref(), pb.params)?,
            ctx.conv2d_weight_grad(&dy, &ys, &x, &xs, &ws, pb.params)?,
            ctx.conv2d_input_grad(&dy, &ys, &w, &ws, &xs, pb.params)?,
        ])
    });
    let mut ok = true;
    for (i, (label, evaluated)) in sums.iter().enumerate() {
        println!("\n{label} evaluated from the printed sums:\n  {evaluated:?}");
        let specials = |same: bool| {
            if same {
                ""
            } else {
                "; NaN or ±∞ at different places"
            }
        };
        let (d_cpu, same_cpu) = max_diff(evaluated, &cpu[i]);
        println!(
            "  CPU reference: {:?}\n    max |sums − CPU| = {d_cpu:e} over the finite values{}",
            cpu[i],
            specials(same_cpu)
        );
        ok &= d_cpu == 0.0 && same_cpu;
        match &gpu {
            Ok(g) => {
                let (d, same) = max_diff(evaluated, &g[i]);
                let within = compare_nan_aware(&g[i], evaluated).within_tolerance();
                println!(
                    "  GPU: {:?}\n    max |sums − GPU| = {d:e} over the finite values{} ({})",
                    g[i],
                    specials(same),
                    if within {
                        "within f32 tolerance"
                    } else {
                        "OUT OF TOLERANCE"
                    }
                );
                ok &= within;
            }
            Err(e) => println!("  GPU: not available ({e})"),
        }
    }
    if !ok {
        return Err(CliError::Failed(
            "the evaluated sums disagree with the computed results".into(),
        ));
    }
    Ok(())
}

/// The largest |a − b| over elements where both are finite, and whether the two agree on every
/// NaN and infinity (same positions, same infinities).
fn max_diff(a: &[f32], b: &[f32]) -> (f64, bool) {
    let mut worst = 0.0f64;
    let mut specials_agree = a.len() == b.len();
    for (x, y) in a.iter().zip(b) {
        if x.is_finite() && y.is_finite() {
            worst = worst.max((*x as f64 - *y as f64).abs());
        } else if !(x.is_nan() && y.is_nan() || x == y) {
            specials_agree = false;
        }
    }
    (worst, specials_agree)
}
