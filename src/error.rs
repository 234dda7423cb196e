//! The one error type of the crate.

use std::fmt;

/// Which tensor an error is about, for messages that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorRole {
    /// The input X (N, C, H, W).
    Input,
    /// The weights W (K, C/groups, R, S).
    Weight,
    /// The bias b (K,).
    Bias,
    /// The output Y (N, K, P, Q).
    Output,
    /// The output gradient dY (N, K, P, Q).
    OutputGrad,
    /// The input gradient dX (N, C, H, W).
    InputGrad,
    /// The weight gradient dW (K, C/groups, R, S).
    WeightGrad,
    /// The bias gradient db (K,).
    BiasGrad,
    /// The residual z of a fused epilogue (the output's shape).
    Residual,
    /// The pre-activation α·conv + b + β·z of a fused epilogue (the output's shape).
    PreActivation,
}

impl fmt::Display for TensorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TensorRole::Input => "input x",
            TensorRole::Weight => "weight w",
            TensorRole::Bias => "bias b",
            TensorRole::Output => "output y",
            TensorRole::OutputGrad => "output gradient dy",
            TensorRole::InputGrad => "input gradient dx",
            TensorRole::WeightGrad => "weight gradient dw",
            TensorRole::BiasGrad => "bias gradient db",
            TensorRole::Residual => "residual z",
            TensorRole::PreActivation => "pre-activation",
        })
    }
}

/// What a tensor that is not ready to use is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Its recorder has not been submitted yet.
    Unsubmitted,
    /// Its recorder was dropped without being submitted: the tensor was never written.
    Abandoned,
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
    /// A stride, dilation, padding or group count beyond what any problem needs.
    #[error("{what} = {value} is too large (at most {limit})")]
    ParamTooLarge {
        /// Which parameter, e.g. "padding (top)".
        what: &'static str,
        /// The value given.
        value: usize,
        /// The largest value accepted.
        limit: usize,
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
        padded: u128,
        /// Kernel size on that axis.
        kernel: usize,
        /// Dilation on that axis.
        dilation: usize,
        /// dilation·(kernel−1)+1.
        dilated: u128,
    },
    /// A transposed convolution's weight does not start with X's channel count.
    #[error("transposed convolution: input x has C_in={x_channels} channels but weight w has {w_channels} (its first dimension must be C_in)")]
    TransposedChannels {
        /// X's channels.
        x_channels: usize,
        /// The weight's first dimension.
        w_channels: usize,
    },
    /// Output padding not smaller than the stride or the dilation.
    #[error("output padding along {axis} is {output_padding} but must be smaller than the stride ({stride}) or the dilation ({dilation})")]
    OutputPadding {
        /// "height" or "width".
        axis: &'static str,
        /// The output padding.
        output_padding: usize,
        /// The stride on that axis.
        stride: usize,
        /// The dilation on that axis.
        dilation: usize,
    },
    /// A transposed convolution whose output would be empty.
    #[error("empty transposed output along {axis}: ({size}−1)·{stride} + {dilation}·({kernel}−1) + {output_padding} + 1 − {pad_lo} − {pad_hi} = {len}")]
    TransposedEmpty {
        /// "height" or "width".
        axis: &'static str,
        /// The output length it would have.
        len: i128,
        /// Input size on that axis.
        size: usize,
        /// Stride.
        stride: usize,
        /// Dilation.
        dilation: usize,
        /// Kernel size.
        kernel: usize,
        /// Output padding.
        output_padding: usize,
        /// Leading padding.
        pad_lo: usize,
        /// Trailing padding.
        pad_hi: usize,
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
        expected: u128,
        /// The shape.
        shape: Vec<usize>,
    },
    /// Data given for an upload does not match the shape it is uploaded as.
    #[error("upload: {got} elements given for shape {shape:?}, which needs {expected}")]
    UploadLength {
        /// Elements given.
        got: usize,
        /// Elements the shape needs.
        expected: u128,
        /// The shape.
        shape: Vec<usize>,
    },
    /// A size overflows the index arithmetic or the address space.
    #[error("{what} = {value} is too large (limit {limit})")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its value.
        value: u128,
        /// The limit.
        limit: u128,
    },
    /// Host memory for a buffer could not be allocated.
    #[error("{what} needs {bytes} bytes of host memory, which could not be allocated")]
    OutOfHostMemory {
        /// Which buffer.
        what: String,
        /// Its size.
        bytes: u128,
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
        /// wgpu's reason, when it gave one.
        #[source]
        source: Option<wgpu::RequestAdapterError>,
    },
    /// The device could not be created.
    #[error("could not create a wgpu device on adapter {adapter}: {source}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's error.
        #[source]
        source: wgpu::RequestDeviceError,
    },
    /// A buffer would exceed the device's limits.
    #[error(
        "{what} needs {bytes} bytes but the device allows at most {limit} bytes per {limit_name} (adapter {adapter})"
    )]
    BufferTooLarge {
        /// Which buffer.
        what: String,
        /// Its size.
        bytes: u128,
        /// The device's limit.
        limit: u64,
        /// Which limit.
        limit_name: &'static str,
        /// Adapter name.
        adapter: String,
    },
    /// No kernel fits the device's limits.
    #[error("no kernel for {what} fits the device: {limit_name} is {limit}, it needs {needed}")]
    LimitTooSmall {
        /// The op or kernel.
        what: String,
        /// Which limit.
        limit_name: &'static str,
        /// The device's value.
        limit: u64,
        /// What the smallest kernel needs.
        needed: u64,
    },
    /// The device lacks a feature a kernel or option needs.
    #[error("the device lacks {feature}, which {needed_by} needs (adapter {adapter})")]
    MissingFeature {
        /// The wgpu feature.
        feature: &'static str,
        /// What needs it.
        needed_by: &'static str,
        /// Adapter name.
        adapter: String,
    },
    /// wgpu reported an error (validation, out of memory, internal) while gpuconv did `during`.
    #[error("GPU error while {during}: {source}")]
    Wgpu {
        /// What gpuconv was doing.
        during: &'static str,
        /// wgpu's error.
        #[source]
        source: wgpu::Error,
    },
    /// Waiting for the GPU failed (device lost, timeout).
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[from] wgpu::PollError),
    /// Mapping a read-back buffer failed.
    #[error("mapping a read-back buffer failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),
    /// A read-back was cancelled before it completed (the device was dropped).
    #[error("a read-back was cancelled before the GPU finished it")]
    ReadCancelled,
    /// A tensor belongs to another context.
    #[error("tensor was created on a different GpuContext")]
    ForeignTensor,
    /// A tensor was used before the work that writes it was submitted.
    #[error("{role} is the output of a recording that {}", match .pending {
        Pending::Unsubmitted => "has not been submitted yet: submit it first",
        Pending::Abandoned => "was dropped without being submitted: it was never computed",
    })]
    TensorNotReady {
        /// Which tensor.
        role: TensorRole,
        /// Why it is not ready.
        pending: Pending,
    },
    /// A caller's buffer cannot be used as a tensor.
    #[error("buffer for {role}: {reason}")]
    BadBuffer {
        /// Which tensor.
        role: TensorRole,
        /// What is wrong with it.
        reason: String,
    },
    /// A matrix shape sgemm cannot take.
    #[error("sgemm needs A (M, K) and B (K, N) with N a multiple of 4, got {a:?} and {b:?}")]
    SgemmShape {
        /// A's shape.
        a: Vec<usize>,
        /// B's shape.
        b: Vec<usize>,
    },
    /// A problem too large to write out term by term.
    #[error(
        "explain writes out every term and is limited to {limit}; x {x:?} with w {w:?} gives {terms} terms per set of equations over {inputs} inputs: try a smaller problem"
    )]
    ExplainTooLarge {
        /// Input shape.
        x: [usize; 4],
        /// Weight shape.
        w: [usize; 4],
        /// Terms counted (or bounded).
        terms: u128,
        /// Input elements.
        inputs: usize,
        /// The limit.
        limit: usize,
    },
    /// A fused epilogue's parameters that cannot be used.
    #[error("epilogue: {reason}")]
    Epilogue {
        /// What is wrong, naming the values.
        reason: String,
    },
    /// A configuration value that does not parse.
    #[error("{name}={value:?} is not valid: expected {expected}")]
    InvalidSetting {
        /// The setting (e.g. the environment variable).
        name: &'static str,
        /// The value given.
        value: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// A benchmark shape suite that cannot be used.
    #[error("{origin}: {message}")]
    Suite {
        /// The file (or "embedded suite").
        origin: String,
        /// What is wrong, naming the shape or key.
        message: String,
    },
    /// A .npy file could not be read or written.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O error with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A broken invariant inside gpuconv (a bug, never the caller's input).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for `Result<T, gpuconv::Error>`.
pub type Result<T> = std::result::Result<T, Error>;
