//! The WGSL kernels, their specialisations and how their source is assembled.
//!
//! Each kernel lives in its own file under `shaders/`; `shaders/shared/conv.wgsl` is prepended to
//! all of them. Register-tile sizes size function-scope arrays, which WGSL only allows for
//! constant expressions, so they are generated as `const TM`/`const TN` lines; workgroup sizes
//! are pipeline-overridable `override` constants.

/// Source shared by every kernel.
pub const SHARED_WGSL: &str = include_str!("../../shaders/shared/conv.wgsl");

/// One compute kernel (one .wgsl file, entry point `main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// `shaders/forward.wgsl`.
    Forward,
    /// `shaders/input_grad.wgsl`.
    InputGrad,
    /// `shaders/weight_grad.wgsl`.
    WeightGrad,
    /// `shaders/reduce_splits.wgsl`.
    ReduceSplits,
    /// `shaders/bias_grad.wgsl`.
    BiasGrad,
}

impl Kernel {
    /// Every kernel, for validation tests.
    pub const ALL: [Kernel; 5] = [
        Kernel::Forward,
        Kernel::InputGrad,
        Kernel::WeightGrad,
        Kernel::ReduceSplits,
        Kernel::BiasGrad,
    ];

    /// The kernel's file name under `shaders/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Kernel::Forward => "forward.wgsl",
            Kernel::InputGrad => "input_grad.wgsl",
            Kernel::WeightGrad => "weight_grad.wgsl",
            Kernel::ReduceSplits => "reduce_splits.wgsl",
            Kernel::BiasGrad => "bias_grad.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Kernel::Forward => include_str!("../../shaders/forward.wgsl"),
            Kernel::InputGrad => include_str!("../../shaders/input_grad.wgsl"),
            Kernel::WeightGrad => include_str!("../../shaders/weight_grad.wgsl"),
            Kernel::ReduceSplits => include_str!("../../shaders/reduce_splits.wgsl"),
            Kernel::BiasGrad => include_str!("../../shaders/bias_grad.wgsl"),
        }
    }

    /// Whether the kernel takes the 2D workgroup overrides `WG_X`, `WG_Y` (else only `WG_X` or none).
    fn overrides(self) -> &'static [&'static str] {
        match self {
            Kernel::Forward | Kernel::InputGrad | Kernel::WeightGrad => &["WG_X", "WG_Y"],
            Kernel::ReduceSplits => &["WG_X"],
            Kernel::BiasGrad => &[],
        }
    }

    /// Full WGSL source of this kernel at `spec`.
    pub fn source(self, spec: TileSpec) -> String {
        format!(
            "// generated specialisation: {} TM={} TN={}\nconst TM: u32 = {}u;\nconst TN: u32 = {}u;\n{}\n{}",
            self.file_name(),
            spec.tm,
            spec.tn,
            spec.tm,
            spec.tn,
            SHARED_WGSL,
            self.body()
        )
    }

    /// Pipeline-overridable constants for `spec`.
    pub fn constants(self, spec: TileSpec) -> Vec<(&'static str, f64)> {
        self.overrides()
            .iter()
            .map(|&name| {
                let v = if name == "WG_X" { spec.wg_x } else { spec.wg_y };
                (name, v as f64)
            })
            .collect()
    }
}

/// A tile shape: each invocation computes `tm`×`tn` outputs, a workgroup is `wg_x`×`wg_y`
/// invocations, so a workgroup covers (tm·wg_x) GEMM rows × (tn·wg_y) GEMM columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileSpec {
    /// Register-tile rows per invocation.
    pub tm: u32,
    /// Register-tile columns per invocation.
    pub tn: u32,
    /// Workgroup size along GEMM rows.
    pub wg_x: u32,
    /// Workgroup size along GEMM columns.
    pub wg_y: u32,
}

impl TileSpec {
    /// GEMM rows one workgroup covers.
    pub fn rows_per_workgroup(self) -> u32 {
        self.tm * self.wg_x
    }
    /// GEMM columns one workgroup covers.
    pub fn cols_per_workgroup(self) -> u32 {
        self.tn * self.wg_y
    }
}

impl std::fmt::Display for TileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} regs, {}x{} wg",
            self.tm, self.tn, self.wg_x, self.wg_y
        )
    }
}
