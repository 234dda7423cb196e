//! Command-line parsing and dispatch. Every subcommand returns `gpuconv::Result`; `main` turns an
//! error into one line on stderr and a non-zero exit.

mod bench;
mod explain;
mod info;
mod run;
mod sgemm;

use clap::{Args, Parser, Subcommand};
use gpuconv::{ConvParams, Error, Result};

#[derive(Parser)]
#[command(
    name = "gpuconv",
    version,
    about = "2D convolution and its gradients on the GPU (WGSL/wgpu) and CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one op on .npy inputs and write the result as .npy.
    Run(run::RunArgs),
    /// List the adapters wgpu sees and the one gpuconv would pick.
    Info,
    /// Time CPU (fast path) and GPU on a shape suite, checking every result against the reference.
    Bench(bench::BenchArgs),
    /// Write out the forward sums and both gradients of a small problem, term by term.
    Explain(explain::ExplainArgs),
    /// Time a plain WGSL SGEMM at several tiles: the ceiling the conv kernels are measured against.
    Sgemm(sgemm::SgemmArgs),
}

/// Convolution flags shared by `run`, `bench` and `explain`.
#[derive(Args, Debug, Clone)]
pub struct ConvFlags {
    /// Stride SH,SW (or one value for both).
    #[arg(long, default_value = "1,1", value_name = "SH,SW")]
    pub stride: String,
    /// Zero padding: P | PH,PW | TOP,LEFT,BOTTOM,RIGHT.
    #[arg(long, default_value = "0", value_name = "P|PH,PW|T,L,B,R")]
    pub padding: String,
    /// Dilation DH,DW (or one value for both).
    #[arg(long, default_value = "1,1", value_name = "DH,DW")]
    pub dilation: String,
    /// Number of groups (divides C and K).
    #[arg(long, default_value = "1", value_name = "G")]
    pub groups: String,
}

/// Parses a comma-separated list of non-negative integers.
pub fn parse_list(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            part.trim().parse::<usize>().map_err(|_| {
                Error::Invalid(format!(
                    "--{flag} {text:?}: {:?} is not a non-negative integer",
                    part.trim()
                ))
            })
        })
        .collect()
}

fn pair(flag: &str, text: &str) -> Result<[usize; 2]> {
    match parse_list(flag, text)?.as_slice() {
        [v] => Ok([*v, *v]),
        [a, b] => Ok([*a, *b]),
        other => Err(Error::Invalid(format!(
            "--{flag} {text:?}: expected 1 or 2 comma-separated values, got {}",
            other.len()
        ))),
    }
}

/// Parses a shape flag such as `--x-shape N,C,H,W`.
pub fn parse_shape(flag: &str, text: &str, rank: usize, names: &str) -> Result<Vec<usize>> {
    let dims = parse_list(flag, text)?;
    if dims.len() != rank {
        return Err(Error::Invalid(format!(
            "--{flag} {text:?}: expected {rank} comma-separated values {names}, got {}",
            dims.len()
        )));
    }
    Ok(dims)
}

impl ConvFlags {
    /// The parameters these flags describe (checked further by `ConvProblem::new`).
    pub fn params(&self) -> Result<ConvParams> {
        let padding = match parse_list("padding", &self.padding)?.as_slice() {
            [p] => [*p; 4],
            [ph, pw] => [*ph, *pw, *ph, *pw],
            [t, l, b, r] => [*t, *l, *b, *r],
            other => {
                return Err(Error::Invalid(format!(
                    "--padding {:?}: expected P, PH,PW or TOP,LEFT,BOTTOM,RIGHT, got {} values",
                    self.padding,
                    other.len()
                )))
            }
        };
        let groups = match parse_list("groups", &self.groups)?.as_slice() {
            [g] => *g,
            _ => {
                return Err(Error::Invalid(format!(
                    "--groups {:?}: expected one integer",
                    self.groups
                )))
            }
        };
        Ok(ConvParams {
            stride: pair("stride", &self.stride)?,
            padding,
            dilation: pair("dilation", &self.dilation)?,
            groups,
        })
    }
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                };
            }
            // One line: clap's first line, which names the problem.
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!(
                "gpuconv: {} (see gpuconv --help)",
                first.trim_start_matches("error: ")
            );
            return 2;
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Info => info::info(),
        Command::Bench(args) => bench::bench(&args),
        Command::Explain(args) => explain::explain(&args),
        Command::Sgemm(args) => sgemm::sgemm(&args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gpuconv: {}", crate::one_line(&e.to_string()));
            1
        }
    }
}
