//! Command-line parsing and dispatch. Every subcommand returns [`CliResult`]; `main` turns an
//! error into one line on stderr and a non-zero exit.

mod bench;
mod explain;
mod info;
pub mod output;
mod run;
mod sgemm;

use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};
use gpuconv::gpu::{ContextOptions, Overrides};
use gpuconv::{ConvParams, GpuContext};

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

/// What a command can fail with: the library's errors, or a usage error of the command line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error from gpuconv.
    #[error(transparent)]
    Gpuconv(#[from] gpuconv::Error),
    /// A flag that is missing, malformed or inconsistent.
    #[error("{0}")]
    Usage(String),
    /// A result that failed its check against the reference.
    #[error("{0}")]
    Failed(String),
    /// A file the command writes or checks.
    #[error("{path}: {reason}")]
    Output {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand for command results.
pub type CliResult<T> = std::result::Result<T, CliError>;

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// The `GPUCONV_*` overrides, read once at start-up.
static OVERRIDES: OnceLock<Overrides> = OnceLock::new();

/// A GPU context with the overrides the environment asked for.
pub fn gpu_context() -> CliResult<GpuContext> {
    gpu_context_with(None)
}

/// [`gpu_context`] with a tuning cache file (`--tune-cache`): its choices for this adapter are
/// used, and tuning writes there.
pub fn gpu_context_with(tune_cache: Option<std::path::PathBuf>) -> CliResult<GpuContext> {
    let options = ContextOptions {
        overrides: OVERRIDES.get().copied().unwrap_or_default(),
        tune_cache,
        ..Default::default()
    };
    Ok(GpuContext::with_options(options)?)
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
pub fn parse_list(flag: &str, text: &str) -> CliResult<Vec<usize>> {
    text.split(',')
        .map(|part| {
            part.trim().parse::<usize>().map_err(|_| {
                usage(format!(
                    "--{flag} {text:?}: {:?} is not a non-negative integer",
                    part.trim()
                ))
            })
        })
        .collect()
}

fn pair(flag: &str, text: &str) -> CliResult<[usize; 2]> {
    match parse_list(flag, text)?.as_slice() {
        [v] => Ok([*v, *v]),
        [a, b] => Ok([*a, *b]),
        other => Err(usage(format!(
            "--{flag} {text:?}: expected 1 or 2 comma-separated values, got {}",
            other.len()
        ))),
    }
}

/// Parses a shape flag such as `--x-shape N,C,H,W`.
pub fn parse_shape(flag: &str, text: &str, rank: usize, names: &str) -> CliResult<Vec<usize>> {
    let dims = parse_list(flag, text)?;
    if dims.len() != rank {
        return Err(usage(format!(
            "--{flag} {text:?}: expected {rank} comma-separated values {names}, got {}",
            dims.len()
        )));
    }
    Ok(dims)
}

impl ConvFlags {
    /// The parameters these flags describe (checked further by `ConvProblem::new`).
    pub fn params(&self) -> CliResult<ConvParams> {
        let padding = match parse_list("padding", &self.padding)?.as_slice() {
            [p] => [*p; 4],
            [ph, pw] => [*ph, *pw, *ph, *pw],
            [t, l, b, r] => [*t, *l, *b, *r],
            other => {
                return Err(usage(format!(
                    "--padding {:?}: expected P, PH,PW or TOP,LEFT,BOTTOM,RIGHT, got {} values",
                    self.padding,
                    other.len()
                )))
            }
        };
        let groups = match parse_list("groups", &self.groups)?.as_slice() {
            [g] => *g,
            _ => {
                return Err(usage(format!(
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

/// clap's error as one line: the lines before its usage block, joined (so a missing argument's
/// name, on the line after the message, stays in it).
fn clap_one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let joined = lines.join(" ");
    let joined = joined.trim_start_matches("error: ").trim();
    if joined.is_empty() {
        "invalid arguments".to_string()
    } else {
        joined.to_string()
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
            eprintln!(
                "gpuconv: {} (see gpuconv --help)",
                clap_one_line(&e.to_string())
            );
            return 2;
        }
    };
    let overrides = Overrides::from_vars(|name| std::env::var(name).ok());
    let result = overrides.map_err(CliError::from).and_then(|o| {
        let _ = OVERRIDES.set(o);
        match cli.command {
            Command::Run(args) => run::run(&args),
            Command::Info => info::info(),
            Command::Bench(args) => bench::bench(&args),
            Command::Explain(args) => explain::explain(&args),
            Command::Sgemm(args) => sgemm::sgemm(&args),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gpuconv: {}", crate::one_line(&e.to_string()));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clap_one_line;

    #[test]
    fn a_missing_argument_is_named_in_the_one_line() {
        let text = "error: the following required arguments were not provided:\n  --op <OP>\n\nUsage: gpuconv run --op <OP>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(text),
            "the following required arguments were not provided: --op <OP>"
        );
    }
}
