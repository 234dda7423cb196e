//! The one error type of the crate.

use std::fmt;

/// Which tensor an error is about, for messages that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// The input X (N, C, H, W).
    Input,
    /// The weights W (K, C/groups, R, S).
    Weight,
    /// The bias b (K,).
    Bias,
    /// The output Y or its gradient dY (N, K, P, Q).
    Output,
    /// The output gradient dY (N, K, P, Q).
    OutputGrad,
}

impl fmt::Display for TensorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TensorRole::Input => "input x",
            TensorRole::Weight => "weight w",
            TensorRole::Bias => "bias b",
            TensorRole::Output => "output y",
            TensorRole::OutputGrad => "output gradient dy",
        })
    }
}

/// Everything that can go wrong in gpuconv. Every message names the offending values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor has a zero-sized dimension.
    #[error("{role} has a zero-sized dimension: shape {shape:?}")]
    ZeroSize {
        /// Which tensor.
        role: TensorRole,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor has the wrong number of dimensions.
    #[error("{role} must have {expected} dimensions, got shape {shape:?}")]
    Rank {
        /// Which tensor.
        role: TensorRole,
        /// The rank required.
        expected: usize,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// A stride or dilation is zero.
    #[error("{what} must be at least 1 on both axes, got {value:?}")]
    ZeroParam {
        /// "stride" or "dilation".
        what: &'static str,
        /// The value given (height, width).
        value: [usize; 2],
    },
    /// groups is zero.
    #[error("groups must be at least 1, got 0")]
    ZeroGroups,
    /// groups does not divide the channel count.
    #[error("groups={groups} does not divide {what}={value}")]
    GroupsDoNotDivide {
        /// The group count.
        groups: usize,
        /// "C" (input channels) or "K" (output channels).
        what: &'static str,
        /// The channel count.
        value: usize,
    },
    /// The weight's channel dimension is not C/groups.
    #[error("weight has {got} input channels per group but C/groups = {c}/{groups} = {expected}")]
    WeightChannels {
        /// Weight dimension 1.
        got: usize,
        /// C / groups.
        expected: usize,
        /// Input channels.
        c: usize,
        /// Groups.
        groups: usize,
    },
    /// The kernel does not fit inside the padded input.
    #[error(
        "empty output along {axis}: padded input {padded} (= {size} + {pad_lo} + {pad_hi}) is smaller than the dilated kernel {dilated} (= {dilation}·({kernel}−1)+1)"
    )]
    EmptyOutput {
        /// "height" or "width".
        axis: &'static str,
        /// Input size on that axis.
        size: usize,
        /// Leading padding.
        pad_lo: usize,
        /// Trailing padding.
        pad_hi: usize,
        /// size + pad_lo + pad_hi.
        padded: usize,
        /// Kernel size on that axis.
        kernel: usize,
        /// Dilation on that axis.
        dilation: usize,
        /// dilation·(kernel−1)+1.
        dilated: usize,
    },
    /// A tensor's shape does not match the one the problem requires.
    #[error("{role} has shape {got:?} but the problem requires {expected:?}")]
    ShapeMismatch {
        /// Which tensor.
        role: TensorRole,
        /// Shape given.
        got: Vec<usize>,
        /// Shape required.
        expected: Vec<usize>,
    },
    /// A data slice's length does not match its shape.
    #[error("{role} has {got} elements but its shape {shape:?} needs {expected}")]
    LengthMismatch {
        /// Which tensor.
        role: TensorRole,
        /// Elements given.
        got: usize,
        /// Elements the shape needs.
        expected: usize,
        /// The shape.
        shape: Vec<usize>,
    },
    /// A size overflows the index arithmetic.
    #[error("{what} = {value} is too large (limit {limit})")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its value.
        value: u128,
        /// The limit.
        limit: u128,
    },
    /// No GPU adapter could be found.
    #[error(
        "no GPU adapter found{detail}. On a machine without a GPU install a software Vulkan driver: \
         `apt-get install mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu; it provides lavapipe), \
         or set WGPU_BACKEND to a backend your system has"
    )]
    NoAdapter {
        /// Extra context (e.g. the WGPU_ADAPTER_NAME that matched nothing).
        detail: String,
    },
    /// The device could not be created.
    #[error("could not create a wgpu device on adapter {adapter}: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A buffer would exceed the device's limits.
    #[error(
        "{what} needs {bytes} bytes but the device allows at most {limit} bytes per {limit_name} (adapter {adapter})"
    )]
    BufferTooLarge {
        /// Which buffer.
        what: String,
        /// Its size.
        bytes: u64,
        /// The device's limit.
        limit: u64,
        /// Which limit.
        limit_name: &'static str,
        /// Adapter name.
        adapter: String,
    },
    /// wgpu reported an error (validation, out of memory, device lost, mapping).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A tensor belongs to another context.
    #[error("tensor was created on a different GpuContext")]
    ForeignTensor,
    /// A .npy file could not be read or written.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Invalid command-line or configuration value.
    #[error("{0}")]
    Invalid(String),
    /// An I/O error with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Shorthand for `Result<T, gpuconv::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
