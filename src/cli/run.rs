//! `gpuconv run`: one op on .npy files, result written safely (see `output`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gpuconv::cpu::reference;
use gpuconv::npy::read;
use gpuconv::problem::check_output_grad_shape;
use gpuconv::{ConvProblem, Op, TensorRole};

use super::{gpu_context, output, parse_shape, usage, CliResult, ConvFlags};

/// Where to compute.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Device {
    /// The CPU reference (f64 accumulation).
    Cpu,
    /// The WGSL kernels on the adapter gpuconv picks.
    Gpu,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Which op.
    #[arg(long, value_enum)]
    op: Op,
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
    /// Where to write the result (.npy); written only on success.
    #[arg(long)]
    out: PathBuf,
}

fn required<'a, T>(value: &'a Option<T>, flag: &str, op: Op) -> CliResult<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| usage(format!("--op {} needs --{flag}", op.name())))
}

pub fn run(args: &RunArgs) -> CliResult<()> {
    let params = args.conv.params()?;
    let op = args.op;
    // Everything is read and validated, and --out checked, before a device is touched.
    output::check_writable(&args.out)?;
    let (shape, result) = match op {
        Op::Forward => {
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
            let y = match args.device {
                Device::Cpu => reference::forward(&pb, &x.data, &w.data, b.as_deref())?,
                Device::Gpu => gpu_context()?.conv2d_forward(
                    &x.data,
                    &x.shape,
                    &w.data,
                    &w.shape,
                    b.as_deref(),
                    params,
                )?,
            };
            (pb.y_shape().to_vec(), y)
        }
        Op::InputGrad => {
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
                Device::Gpu => gpu_context()?
                    .conv2d_input_grad(&dy.data, &dy.shape, &w.data, &w.shape, &x_shape, params)?,
            };
            (x_shape, dx)
        }
        Op::WeightGrad => {
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
                Device::Gpu => gpu_context()?
                    .conv2d_weight_grad(&dy.data, &dy.shape, &x.data, &x.shape, &w_shape, params)?,
            };
            (w_shape, dw)
        }
        Op::BiasGrad => {
            let dy = read(required(&args.dy, "dy", op)?)?;
            let [_, k, _, _] = check_output_grad_shape(&dy.shape)?;
            let db = match args.device {
                Device::Cpu => reference::bias_grad(&dy.shape, &dy.data)?,
                Device::Gpu => gpu_context()?.conv2d_bias_grad(&dy.data, &dy.shape)?,
            };
            (vec![k], db)
        }
    };
    output::write_npy(&args.out, &shape, &result)
}
