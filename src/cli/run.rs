//! `gpuconv run`: one op on .npy files, result written safely (see `output`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gpuconv::cpu::reference;
use gpuconv::epilogue::Addends;
use gpuconv::npy::read;
use gpuconv::problem::check_output_grad_shape;
use gpuconv::transposed::{self, Backend, TransposedProblem};
use gpuconv::{Activation, ConvProblem, Epilogue, TensorRole};

use super::{gpu_context_with, output, parse_list, parse_shape, usage, CliResult, ConvFlags};

/// Where to compute.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Device {
    /// The CPU reference (f64 accumulation).
    Cpu,
    /// The WGSL kernels on the adapter gpuconv picks.
    Gpu,
}

/// The ops `run` computes: the convolution's four and the transposed convolution's three.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum RunOp {
    /// Y = conv(X, W) (+ b).
    Forward,
    /// dX from dY and W.
    InputGrad,
    /// dW from dY and X.
    WeightGrad,
    /// db from dY.
    BiasGrad,
    /// Y = conv_transpose2d(X, W) (+ b), W laid out C_in × C_out/groups × R × S.
    TransposedForward,
    /// dX of the transposed convolution from dY and W.
    TransposedInputGrad,
    /// dW of the transposed convolution from dY and X.
    TransposedWeightGrad,
}

impl RunOp {
    fn name(self) -> &'static str {
        match self {
            RunOp::Forward => "forward",
            RunOp::InputGrad => "input-grad",
            RunOp::WeightGrad => "weight-grad",
            RunOp::BiasGrad => "bias-grad",
            RunOp::TransposedForward => "transposed-forward",
            RunOp::TransposedInputGrad => "transposed-input-grad",
            RunOp::TransposedWeightGrad => "transposed-weight-grad",
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Which op.
    #[arg(long, value_enum)]
    op: RunOp,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "gpu")]
    device: Device,
    /// Input X (N, C, H, W) .npy (forward, weight-grad).
    #[arg(long)]
    x: Option<PathBuf>,
    /// Weights W (K, C/groups, R, S) .npy (forward, input-grad).
    #[arg(long)]
    w: Option<PathBuf>,
    /// Bias b (K,) .npy (forward, optional).
    #[arg(long)]
    b: Option<PathBuf>,
    /// Output gradient dY (N, K, P, Q) .npy (input-grad, weight-grad, bias-grad).
    #[arg(long)]
    dy: Option<PathBuf>,
    /// Shape of X for input-grad: N,C,H,W.
    #[arg(long, value_name = "N,C,H,W")]
    x_shape: Option<String>,
    /// Shape of W for weight-grad: K,CperG,R,S.
    #[arg(long, value_name = "K,CperG,R,S")]
    w_shape: Option<String>,
    #[command(flatten)]
    conv: ConvFlags,
    /// Output padding OH,OW of the transposed ops (or one value for both), each smaller than
    /// the stride or the dilation.
    #[arg(long, value_name = "OH,OW")]
    output_padding: Option<String>,
    /// Fused epilogue y = act(α·conv + b + β·z) of forward and transposed-forward: the
    /// activation, one of identity | relu | leaky-relu:SLOPE | relu6 | clamp:LO,HI | gelu |
    /// gelu-tanh | silu | sigmoid | tanh.
    #[arg(long, value_name = "NAME")]
    activation: Option<String>,
    /// Residual z (Y's shape) .npy added after the convolution, scaled by --beta.
    #[arg(long, value_name = "Z.npy")]
    residual: Option<PathBuf>,
    /// α, the convolution's scale in the epilogue (default 1).
    #[arg(long, value_name = "A", allow_hyphen_values = true)]
    alpha: Option<String>,
    /// β, the residual's scale in the epilogue (default 1).
    #[arg(long, value_name = "B", allow_hyphen_values = true)]
    beta: Option<String>,
    /// Tuning cache file (`gpuconv bench --tune --tune-cache FILE` writes one): the GPU runs
    /// this adapter's tuned plan for the problem where the file has one.
    #[arg(long, value_name = "FILE")]
    tune_cache: Option<PathBuf>,
    /// Where to write the result (.npy); written only on success.
    #[arg(long)]
    out: PathBuf,
}

fn required<'a, T>(value: &'a Option<T>, flag: &str, op: RunOp) -> CliResult<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| usage(format!("--op {} needs --{flag}", op.name())))
}

pub fn run(args: &RunArgs) -> CliResult<()> {
    let params = args.conv.params()?;
    let op = args.op;
    // Everything is read and validated, and --out checked, before a device is touched.
    output::check_writable(&args.out)?;
    let transposed = matches!(
        op,
        RunOp::TransposedForward | RunOp::TransposedInputGrad | RunOp::TransposedWeightGrad
    );
    let output_padding = match &args.output_padding {
        Some(_) if !transposed => {
            return Err(usage(format!(
                "--output-padding applies to the transposed ops, not --op {}",
                op.name()
            )))
        }
        Some(text) => match parse_list("output-padding", text)?.as_slice() {
            &[v] => [v, v],
            &[h, w] => [h, w],
            other => {
                return Err(usage(format!(
                    "--output-padding {text:?}: expected OH,OW or one value, got {} values",
                    other.len()
                )))
            }
        },
        None => [0, 0],
    };
    let epi = epilogue(args)?;
    if transposed {
        let (shape, result) = run_transposed(args, params, output_padding, epi)?;
        return output::write_npy(&args.out, &shape, &result);
    }
    let (shape, result) = match op {
        RunOp::Forward => {
            let x = read(required(&args.x, "x", op)?)?;
            let w = read(required(&args.w, "w", op)?)?;
            let pb = ConvProblem::new(&x.shape, &w.shape, params)?;
            pb.check_len(TensorRole::Input, x.data.len())?;
            pb.check_len(TensorRole::Weight, w.data.len())?;
            let b = match &args.b {
                Some(path) => {
                    let b = read(path)?;
                    pb.check_shape(TensorRole::Bias, &b.shape)?;
                    Some(b.data)
                }
                None => None,
            };
            let z = read_residual(args, &pb.y_shape())?;
            let y = match (&epi, args.device) {
                (None, Device::Cpu) => reference::forward(&pb, &x.data, &w.data, b.as_deref())?,
                (None, Device::Gpu) => gpu_context_with(args.tune_cache.clone())?.conv2d_forward(
                    &x.data,
                    &x.shape,
                    &w.data,
                    &w.shape,
                    b.as_deref(),
                    params,
                )?,
                (Some(epi), device) => {
                    let addends = Addends {
                        bias: b.as_deref(),
                        residual: z.as_deref(),
                    };
                    match device {
                        Device::Cpu => {
                            reference::forward_fused(&pb, &x.data, &w.data, addends, epi)?.0
                        }
                        Device::Gpu => {
                            gpu_context_with(args.tune_cache.clone())?
                                .conv2d_forward_fused(
                                    &x.data, &x.shape, &w.data, &w.shape, addends, epi, params,
                                    false,
                                )?
                                .0
                        }
                    }
                }
            };
            (pb.y_shape().to_vec(), y)
        }
        RunOp::InputGrad => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let w = read(required(&args.w, "w", op)?)?;
            let x_shape = parse_shape(
                "x-shape",
                required(&args.x_shape, "x-shape", op)?,
                4,
                "N,C,H,W",
            )?;
            let pb = ConvProblem::with_output_grad(&x_shape, &w.shape, &dy.shape, params)?;
            let dx = match args.device {
                Device::Cpu => reference::input_grad(&pb, &dy.data, &w.data)?,
                Device::Gpu => gpu_context_with(args.tune_cache.clone())?
                    .conv2d_input_grad(&dy.data, &dy.shape, &w.data, &w.shape, &x_shape, params)?,
            };
            (x_shape, dx)
        }
        RunOp::WeightGrad => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let x = read(required(&args.x, "x", op)?)?;
            let w_shape = parse_shape(
                "w-shape",
                required(&args.w_shape, "w-shape", op)?,
                4,
                "K,CperG,R,S",
            )?;
            let pb = ConvProblem::with_output_grad(&x.shape, &w_shape, &dy.shape, params)?;
            let dw = match args.device {
                Device::Cpu => reference::weight_grad(&pb, &dy.data, &x.data)?,
                Device::Gpu => gpu_context_with(args.tune_cache.clone())?
                    .conv2d_weight_grad(&dy.data, &dy.shape, &x.data, &x.shape, &w_shape, params)?,
            };
            (w_shape, dw)
        }
        RunOp::BiasGrad => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let [_, k, _, _] = check_output_grad_shape(&dy.shape)?;
            let db = match args.device {
                Device::Cpu => reference::bias_grad(&dy.shape, &dy.data)?,
                Device::Gpu => gpu_context_with(args.tune_cache.clone())?
                    .conv2d_bias_grad(&dy.data, &dy.shape)?,
            };
            (vec![k], db)
        }
        RunOp::TransposedForward | RunOp::TransposedInputGrad | RunOp::TransposedWeightGrad => {
            unreachable!("handled above")
        }
    };
    output::write_npy(&args.out, &shape, &result)
}

/// The transposed ops: read and validate everything, then compute on the chosen device.
fn run_transposed(
    args: &RunArgs,
    params: gpuconv::ConvParams,
    output_padding: [usize; 2],
    epi: Option<Epilogue>,
) -> CliResult<(Vec<usize>, Vec<f32>)> {
    let op = args.op;
    // Opened only after everything is validated.
    let device = || -> CliResult<Option<gpuconv::GpuContext>> {
        match args.device {
            Device::Gpu => Ok(Some(gpu_context_with(args.tune_cache.clone())?)),
            Device::Cpu => Ok(None),
        }
    };
    match op {
        RunOp::TransposedForward => {
            let x = read(required(&args.x, "x", op)?)?;
            let w = read(required(&args.w, "w", op)?)?;
            let pb = TransposedProblem::new(&x.shape, &w.shape, params, output_padding)?;
            let [_, cout, _, _] = pb.y_shape();
            let b = match &args.b {
                Some(path) => {
                    let b = read(path)?;
                    if b.shape != [cout] {
                        return Err(gpuconv::Error::ShapeMismatch {
                            role: TensorRole::Bias,
                            got: b.shape,
                            expected: vec![cout],
                        }
                        .into());
                    }
                    Some(b.data)
                }
                None => None,
            };
            let z = read_residual(args, &pb.y_shape())?;
            let addends = Addends {
                bias: b.as_deref(),
                residual: z.as_deref(),
            };
            let ctx = device()?;
            let y = transposed::forward_fused(
                pick(&ctx),
                &pb,
                &x.data,
                &w.data,
                addends,
                &epi.unwrap_or_default(),
            )?;
            Ok((pb.y_shape().to_vec(), y))
        }
        RunOp::TransposedInputGrad => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let w = read(required(&args.w, "w", op)?)?;
            let x_shape = parse_shape(
                "x-shape",
                required(&args.x_shape, "x-shape", op)?,
                4,
                "N,Cin,H,W",
            )?;
            let pb = TransposedProblem::new(&x_shape, &w.shape, params, output_padding)?;
            check_dy(&pb, &dy.shape)?;
            let ctx = device()?;
            let dx = transposed::input_grad(pick(&ctx), &pb, &dy.data, &w.data)?;
            Ok((x_shape, dx))
        }
        _ => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let x = read(required(&args.x, "x", op)?)?;
            let w_shape = parse_shape(
                "w-shape",
                required(&args.w_shape, "w-shape", op)?,
                4,
                "Cin,CoutPerG,R,S",
            )?;
            let pb = TransposedProblem::new(&x.shape, &w_shape, params, output_padding)?;
            check_dy(&pb, &dy.shape)?;
            let ctx = device()?;
            let dw = transposed::weight_grad(pick(&ctx), &pb, &dy.data, &x.data)?;
            Ok((w_shape, dw))
        }
    }
}

/// The epilogue the flags ask for: `None` without any of --activation, --residual, --alpha and
/// --beta; those apply to forward and transposed-forward only.
fn epilogue(args: &RunArgs) -> CliResult<Option<Epilogue>> {
    let given = [
        ("activation", args.activation.is_some()),
        ("residual", args.residual.is_some()),
        ("alpha", args.alpha.is_some()),
        ("beta", args.beta.is_some()),
    ];
    let Some((flag, _)) = given.iter().find(|(_, on)| *on) else {
        return Ok(None);
    };
    if !matches!(args.op, RunOp::Forward | RunOp::TransposedForward) {
        return Err(usage(format!(
            "--{flag} applies to --op forward and transposed-forward, not --op {}",
            args.op.name()
        )));
    }
    let scale = |flag: &str, text: &Option<String>| -> CliResult<f32> {
        match text {
            None => Ok(1.0),
            Some(t) => match t.trim().parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(usage(format!("--{flag} {t:?} is not a finite number"))),
            },
        }
    };
    let activation = match &args.activation {
        Some(text) => text.parse::<Activation>()?,
        None => Activation::Identity,
    };
    let epi = Epilogue {
        activation,
        alpha: scale("alpha", &args.alpha)?,
        beta: scale("beta", &args.beta)?,
    };
    epi.validate()?;
    Ok(Some(epi))
}

/// The --residual tensor, checked against Y's shape.
fn read_residual(args: &RunArgs, y_shape: &[usize]) -> CliResult<Option<Vec<f32>>> {
    let Some(path) = &args.residual else {
        return Ok(None);
    };
    let z = read(path)?;
    if z.shape != y_shape {
        return Err(gpuconv::Error::ShapeMismatch {
            role: TensorRole::Residual,
            got: z.shape,
            expected: y_shape.to_vec(),
        }
        .into());
    }
    Ok(Some(z.data))
}

/// The reference on the CPU device, the GPU kernels otherwise.
fn pick(ctx: &Option<gpuconv::GpuContext>) -> Backend<'_> {
    match ctx {
        Some(ctx) => Backend::Gpu(ctx),
        None => Backend::Reference,
    }
}

fn check_dy(pb: &TransposedProblem, shape: &[usize]) -> CliResult<()> {
    if shape != pb.y_shape() {
        return Err(gpuconv::Error::ShapeMismatch {
            role: TensorRole::OutputGrad,
            got: shape.to_vec(),
            expected: pb.y_shape().to_vec(),
        }
        .into());
    }
    Ok(())
}
