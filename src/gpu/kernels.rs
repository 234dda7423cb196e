//! The WGSL kernels, their specialisations and how their source is assembled.
//!
//! Each kernel lives in its own file under `shaders/`; `shaders/shared/grid.wgsl` and
//! `shaders/shared/uniforms.wgsl` are prepended to all of them, and the GEMM kernels are index
//! maps with a shared core appended (`shared/register_gemm.wgsl` or `shared/block_gemm.wgsl`).
//! A kernel's tile is unrolled at pipeline-build time: the kernel's specialisation ([`Spec`])
//! becomes `const` lines, and `//#for` blocks in the source are repeated by [`unroll`]. The
//! workgroup size is the pipeline-overridable constant `WG` (generated for the block core, whose
//! workgroup arrays need it at compile time).

/// The linear workgroup grid, prepended to every kernel.
pub const GRID_WGSL: &str = include_str!("../../shaders/shared/grid.wgsl");
/// Every family's uniform struct, prepended to every kernel.
pub const UNIFORMS_WGSL: &str = include_str!("../../shaders/shared/uniforms.wgsl");
/// The register-tile GEMM core appended to the register kernels (their index maps).
pub const REGISTER_GEMM_WGSL: &str = include_str!("../../shaders/shared/register_gemm.wgsl");
/// The workgroup-memory GEMM core appended to the `block_*` kernels (their index maps).
pub const BLOCK_GEMM_WGSL: &str = include_str!("../../shaders/shared/block_gemm.wgsl");
/// The epilogue's activations, appended to the kernels that apply or differentiate them.
pub const ACTIVATION_WGSL: &str = include_str!("../../shaders/shared/activation.wgsl");
/// The forward kernels' store with the fused epilogue, appended after [`ACTIVATION_WGSL`].
pub const EPILOGUE_WGSL: &str = include_str!("../../shaders/shared/epilogue.wgsl");

use crate::gpu::interface::{Access, Elem, KernelInterface, StorageBinding};
use crate::gpu::uniform::{
    BiasGradUniform, BorderUniform, ConvUniform, DepthwiseUniform, ElementwiseUniform,
    PointwiseUniform, PointwiseWeightGradUniform, ReduceUniform, ScanUniform, SgemmUniform,
    Uniform,
};

/// Which shared core a kernel's index maps are appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// A standalone kernel.
    None,
    /// `shared/register_gemm.wgsl`: takes a [`TileSpec`].
    Register,
    /// `shared/block_gemm.wgsl`: takes a [`BlockSpec`].
    Block,
}

/// Declares the kernel registry: for each kernel its WGSL file, core, specialisation kind,
/// workgroup-size constant, uniform and bindings — everything the host needs to build, bind
/// and check it, in one entry.
macro_rules! kernels {
    ($(
        $(#[$doc:meta])*
        $name:ident => $file:literal, core $core:ident, $spec:ident, wg $wg:ident,
            uniform $uniform:ty as $uname:literal,
            [$($bname:ident : $access:ident $elem:ident),* $(,)?];
    )*) => {
        /// One compute kernel (one .wgsl file, entry point `main`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kernel {
            $($(#[$doc])* $name,)*
        }

        impl Kernel {
            /// Every kernel, for validation tests.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$name,)*];

            /// The kernel's file name under `shaders/`.
            pub fn file_name(self) -> &'static str {
                match self {
                    $(Kernel::$name => $file,)*
                }
            }

            fn body(self) -> &'static str {
                match self {
                    $(Kernel::$name => include_str!(concat!("../../shaders/", $file)),)*
                }
            }

            /// The shared core this kernel's index maps are appended to.
            pub fn core(self) -> Core {
                match self {
                    $(Kernel::$name => Core::$core,)*
                }
            }

            /// The kind of specialisation it takes.
            pub fn spec_kind(self) -> SpecKind {
                match self {
                    $(Kernel::$name => SpecKind::$spec,)*
                }
            }

            /// Whether its workgroup size is the pipeline-overridable constant `WG` (else it
            /// is generated or fixed in the source).
            fn overridable_wg(self) -> bool {
                match self {
                    $(Kernel::$name => kernels!(@wg $wg),)*
                }
            }

            /// This kernel's bindings: its uniform at binding 0, then its storage buffers at
            /// 1, 2, … in the order listed.
            pub const fn interface(self) -> KernelInterface {
                match self {
                    $(Kernel::$name => {
                        const STORAGE: &[StorageBinding] = &kernels!(@bind 1u32; $($bname $access $elem,)*);
                        KernelInterface {
                            uniform_name: $uname,
                            uniform: &<$uniform as Uniform>::LAYOUT,
                            storage: STORAGE,
                        }
                    })*
                }
            }
        }
    };
    (@wg override) => { true };
    (@wg fixed) => { false };
    (@bind $i:expr; $($bname:ident $access:ident $elem:ident,)*) => {
        kernels!(@acc $i; []; $($bname $access $elem,)*)
    };
    (@acc $i:expr; [$($done:expr,)*]; $bname:ident $access:ident $elem:ident, $($rest:tt)*) => {
        kernels!(@acc $i + 1u32; [$($done,)* StorageBinding {
            index: $i,
            name: stringify!($bname),
            access: Access::$access,
            elem: Elem::$elem,
        },]; $($rest)*)
    };
    (@acc $i:expr; [$($done:expr,)*];) => { [$($done,)*] };
}

kernels! {
    /// Forward as an implicit GEMM on the register core.
    Forward => "forward.wgsl", core Register, Tile, wg override,
        uniform ConvUniform as "cv",
        [x: Read F32, wt: Read F32, bias: Read F32, y: ReadWrite F32, residual: Read F32, pre: ReadWrite F32];
    /// The 1×1 stride-1 forward and input gradient as a plain GEMM on vec4 pixel quads, on the
    /// register core; also the column GEMM of the few-channel input gradient.
    Pointwise => "pointwise.wgsl", core Register, Tile, wg override,
        uniform PointwiseUniform as "pw",
        [src: Read Vec4F32, wt: Read F32, bias: Read F32, dst: ReadWrite Vec4F32,
         residual: Read Vec4F32, pre: ReadWrite Vec4F32];
    /// Depthwise forward and input gradient (strided: dY on its stride-upsampled grid), direct.
    Depthwise => "depthwise.wgsl", core None, Window, wg override,
        uniform DepthwiseUniform as "dw",
        [src: Read F32, wt: Read F32, bias: Read F32, dst: ReadWrite F32, residual: Read F32, pre: ReadWrite F32];
    /// Depthwise weight gradient, direct, partial sums per channel.
    DepthwiseWeightGrad => "depthwise_weight_grad.wgsl", core None, Window, wg override,
        uniform DepthwiseUniform as "dw", [dy: Read F32, x: Read F32, partial: ReadWrite F32];
    /// Input gradient of one stride phase as an implicit GEMM on the register core.
    InputGrad => "input_grad.wgsl", core Register, Tile, wg override,
        uniform ConvUniform as "cv", [dy: Read F32, wt: Read F32, dx: ReadWrite F32];
    /// Weight gradient (split-K) on the register core.
    WeightGrad => "weight_grad.wgsl", core Register, Tile, wg override,
        uniform ConvUniform as "cv", [dy: Read F32, x: Read F32, partial: ReadWrite F32];
    /// 1×1 stride-1 weight gradient on vec4 quads (split-K) on the register core.
    PointwiseWeightGrad => "pointwise_weight_grad.wgsl", core Register, Tile, wg override,
        uniform PointwiseWeightGradUniform as "pg",
        [dy: Read Vec4F32, x: Read Vec4F32, partial: ReadWrite F32];
    /// Sums the column matrix of the few-channel input gradient into dX.
    Col2im => "col2im.wgsl", core None, Tile, wg override,
        uniform ConvUniform as "cv", [col: Read F32, dx: ReadWrite F32];
    /// Adds split-K slices in index order.
    ReduceSplits => "reduce_splits.wgsl", core None, Tile, wg override,
        uniform ReduceUniform as "rd", [partial: Read F32, out: ReadWrite F32];
    /// Flags NaN and ±∞ among values (the weights, for the input gradient's border pass).
    Nonfinite => "nonfinite.wgsl", core None, Tile, wg override,
        uniform ScanUniform as "sc", [values: Read F32, flag: ReadWrite AtomicU32];
    /// The input gradient's border pixels, exactly, when the weights hold NaN or ±∞.
    InputGradBorder => "input_grad_border.wgsl", core None, Tile, wg override,
        uniform BorderUniform as "bd",
        [dy: Read F32, wt: Read F32, flag: Read U32, dx: ReadWrite F32];
    /// The forward epilogue as a pass of its own over Y, in place (where it cannot be fused).
    Epilogue => "epilogue.wgsl", core None, Tile, wg override,
        uniform ElementwiseUniform as "ep",
        [bias: Read F32, residual: Read F32, y: ReadWrite F32, pre: ReadWrite F32];
    /// The epilogue's backward: scale·dy·act′, elementwise.
    ActivationGrad => "activation_grad.wgsl", core None, Tile, wg override,
        uniform ElementwiseUniform as "ep", [dy: Read F32, saved: Read F32, out: ReadWrite F32];
    /// Bias gradient: one workgroup tree per channel (256 invocations, fixed).
    BiasGrad => "bias_grad.wgsl", core None, Tile, wg fixed,
        uniform BiasGradUniform as "bg", [dy: Read F32, db: ReadWrite F32];
    /// The plain SGEMM ceiling micro-benchmark on the register core.
    Sgemm => "sgemm.wgsl", core Register, Tile, wg override,
        uniform SgemmUniform as "sg", [a: Read F32, b: Read Vec4F32, c: ReadWrite Vec4F32];
    /// Forward on the workgroup-memory core (hardware GPUs).
    BlockForward => "block_forward.wgsl", core Block, Block, wg fixed,
        uniform ConvUniform as "cv",
        [x: Read F32, wt: Read F32, bias: Read F32, y: ReadWrite F32, residual: Read F32, pre: ReadWrite F32];
    /// Input gradient of one stride phase on the workgroup-memory core.
    BlockInputGrad => "block_input_grad.wgsl", core Block, Block, wg fixed,
        uniform ConvUniform as "cv", [dy: Read F32, wt: Read F32, dx: ReadWrite F32];
    /// Weight gradient (split-K) on the workgroup-memory core.
    BlockWeightGrad => "block_weight_grad.wgsl", core Block, Block, wg fixed,
        uniform ConvUniform as "cv", [dy: Read F32, x: Read F32, partial: ReadWrite F32];
}

/// The kind of specialisation a kernel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// A [`TileSpec`] (register tile or 1D workgroup).
    Tile,
    /// A [`WindowSpec`] (direct depthwise).
    Window,
    /// A [`BlockSpec`] (workgroup-memory core).
    Block,
}

impl Kernel {
    /// Whether this kernel is index maps on the register-tile core (takes a [`TileSpec`]).
    pub fn takes_register_core(self) -> bool {
        self.core() == Core::Register
    }

    /// Whether this kernel is index maps on the workgroup-memory core (takes a [`BlockSpec`]).
    pub fn takes_block(self) -> bool {
        self.spec_kind() == SpecKind::Block
    }

    /// Whether this kernel takes a [`WindowSpec`] (direct depthwise) rather than a [`TileSpec`].
    pub fn takes_window(self) -> bool {
        self.spec_kind() == SpecKind::Window
    }

    /// Which of the epilogue's shared sources this kernel takes: (activations, fused store).
    pub fn epilogue_parts(self) -> (bool, bool) {
        match self {
            Kernel::Forward
            | Kernel::BlockForward
            | Kernel::Pointwise
            | Kernel::Depthwise
            | Kernel::Epilogue => (true, true),
            Kernel::ActivationGrad => (true, false),
            _ => (false, false),
        }
    }

    /// Full WGSL source of this kernel at `spec` with epilogue `epi`: the specialisation as
    /// constants, the shared sources, and the kernel body (then its GEMM core, for the GEMM
    /// kernels, and the epilogue's sources, for the kernels that take them) with its `//#for`
    /// blocks unrolled. `epi` matters only to the kernels [`Kernel::epilogue_parts`] names.
    pub fn source(self, spec: Spec, epi: EpilogueSpec) -> String {
        let counts = spec.counts();
        let mut out = format!(
            "// generated specialisation: {} at {spec}{}\n",
            self.file_name(),
            if epi.fused { ", fused epilogue" } else { "" }
        );
        for (name, v) in &counts {
            out.push_str(&format!("const {name}: u32 = {v}u;\n"));
        }
        let (activations, store) = self.epilogue_parts();
        if activations {
            out.push_str(&format!("const ACT: u32 = {}u;\n", epi.activation));
        }
        if store {
            out.push_str(&format!(
                "const EPI: bool = {};\nconst HAS_RESIDUAL: bool = {};\nconst SAVE_PRE: bool = {};\n",
                epi.fused, epi.residual, epi.save_pre
            ));
        }
        out.push_str(GRID_WGSL);
        out.push('\n');
        out.push_str(UNIFORMS_WGSL);
        out.push('\n');
        out.push_str(&unroll(self.body(), &counts));
        let core = match self.core() {
            Core::Block => Some(BLOCK_GEMM_WGSL),
            Core::Register => Some(REGISTER_GEMM_WGSL),
            Core::None => None,
        };
        if let Some(core) = core {
            out.push('\n');
            out.push_str(&unroll(core, &counts));
        }
        if activations {
            out.push('\n');
            out.push_str(ACTIVATION_WGSL);
        }
        if store {
            out.push('\n');
            out.push_str(EPILOGUE_WGSL);
        }
        out
    }

    /// Pipeline-overridable constants for `spec` (the workgroup size `WG`; block kernels size
    /// their workgroup from generated constants, as their workgroup arrays need).
    pub fn constants(self, spec: Spec) -> Vec<(&'static str, f64)> {
        if self.overridable_wg() {
            vec![("WG", f64::from(spec.lanes()))]
        } else {
            vec![]
        }
    }
}

/// The compile-time part of an epilogue: what [`Kernel::source`] generates into the kernels that
/// take one. The default is no fused epilogue (the forward kernels store acc + b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EpilogueSpec {
    /// Whether a forward kernel applies the epilogue in its store (always true for the
    /// epilogue's own pass).
    pub fused: bool,
    /// The activation's code ([`crate::epilogue::Activation::code`]).
    pub activation: u32,
    /// Whether the residual z is read.
    pub residual: bool,
    /// Whether the pre-activation is written.
    pub save_pre: bool,
}

/// A tile shape for the implicit-GEMM kernels. One GEMM dimension runs across the invocations
/// of a workgroup (the *lane* dimension: pixels or weight columns, whose operand is gathered per
/// invocation); the other is shared by the whole workgroup (the *uniform* dimension: channels,
/// whose operand loads are identical across the workgroup, one broadcast load on SIMD back
/// ends). Each invocation computes `lane_tile` × `uniform_tile` outputs; a workgroup covers
/// `lane_tile`·`lanes` lane items × `uniform_tile` uniform items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileSpec {
    /// Lane-dimension items per invocation (WGSL `LANE_TILE`).
    pub lane_tile: u32,
    /// Uniform-dimension items per workgroup (WGSL `UNIFORM_TILE`).
    pub uniform_tile: u32,
    /// Invocations per workgroup (WGSL override `WG`).
    pub lanes: u32,
}

impl TileSpec {
    /// Lane-dimension items one workgroup covers.
    pub fn lane_items_per_workgroup(self) -> u32 {
        self.lane_tile * self.lanes
    }

    /// GEMM items one workgroup covers: [lane items, uniform items] (along `tiles_m`, `tiles_n`).
    pub fn workgroup_items(self) -> [usize; 2] {
        [
            self.lane_items_per_workgroup() as usize,
            self.uniform_tile as usize,
        ]
    }
}

impl std::fmt::Display for TileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tile {}x{} per invocation, {} lanes",
            self.lane_tile, self.uniform_tile, self.lanes
        )
    }
}

/// The specialisation of the direct depthwise kernels: each invocation computes a
/// `rows`×`cols` block of one output plane, loading once the input window that block's
/// `r`×`s` taps (at the given stride and dilation) cover, so neighbouring outputs share loads.
/// The taps are unrolled, so kernel size, stride and dilation are compile-time here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowSpec {
    /// Output rows per invocation (WGSL `TP`).
    pub rows: u32,
    /// Output columns per invocation (WGSL `TQ`).
    pub cols: u32,
    /// Kernel height and width (WGSL `R`, `S`).
    pub kernel: [u32; 2],
    /// Stride (WGSL `SH`, `SW`).
    pub stride: [u32; 2],
    /// Dilation (WGSL `DH`, `DW`).
    pub dilation: [u32; 2],
    /// The grid src is read on: src upsampled by this with zeros between its values (the
    /// strided input gradient's stride holes; 1, 1 otherwise) (WGSL `UH`, `UW`).
    pub upsample: [u32; 2],
    /// Invocations per workgroup (WGSL override `WG`).
    pub lanes: u32,
}

impl WindowSpec {
    /// Input rows and columns one invocation's block reads (WGSL `WH`, `WW`).
    pub fn window(self) -> [u32; 2] {
        let extent = |outs: u32, taps: u32, stride: u32, dil: u32| {
            (outs - 1) * stride + (taps - 1) * dil + 1
        };
        [
            extent(self.rows, self.kernel[0], self.stride[0], self.dilation[0]),
            extent(self.cols, self.kernel[1], self.stride[1], self.dilation[1]),
        ]
    }
}

/// The tile of the workgroup-memory GEMM core (`shaders/shared/block_gemm.wgsl`): a workgroup
/// computes `bm` × `bn` outputs, staging `bk`-deep slices of both operands in workgroup memory;
/// each invocation holds `tm` × `tn` of them in registers. This is the shape real GPUs reward
/// (operands reused from fast on-chip memory, many threads); lavapipe prefers the register tiles
/// of [`TileSpec`], as its barriers are expensive (PERFORMANCE.md, [#hardware-gpu-profile]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockSpec {
    /// GEMM rows per workgroup (WGSL `BM`).
    pub bm: u32,
    /// GEMM columns per workgroup (WGSL `BN`).
    pub bn: u32,
    /// Reduction depth of one staged slice (WGSL `BK`).
    pub bk: u32,
    /// Rows per invocation, a multiple of 4 (WGSL `TM`).
    pub tm: u32,
    /// Columns per invocation, a multiple of 4 (WGSL `TN`).
    pub tn: u32,
}

impl BlockSpec {
    /// Invocations per workgroup.
    pub fn threads(self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// GEMM items one workgroup covers: [rows, columns] (along `tiles_m`, `tiles_n`).
    pub fn workgroup_items(self) -> [usize; 2] {
        [self.bm as usize, self.bn as usize]
    }

    /// Whether the core can run this tile: whole vec4 register tiles that divide the workgroup
    /// tile, and slices that split evenly over the invocations.
    pub fn is_valid(self) -> bool {
        let Self { bm, bn, bk, tm, tn } = self;
        let whole = tm > 0 && tn > 0 && bk > 0 && tm % 4 == 0 && tn % 4 == 0;
        whole
            && bm % tm == 0
            && bn % tn == 0
            && (1..=1024).contains(&self.threads())
            && (bm * bk) % self.threads() == 0
            && (bn * bk) % self.threads() == 0
    }
}

impl std::fmt::Display for BlockSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "block {}x{}x{} in workgroup memory, {}x{} per invocation, {} threads",
            self.bm,
            self.bn,
            self.bk,
            self.tm,
            self.tn,
            self.threads()
        )
    }
}

/// A kernel specialisation: what gets generated into the source and the workgroup size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spec {
    /// Implicit-GEMM and 1D kernels.
    Tile(TileSpec),
    /// Direct depthwise kernels.
    Window(WindowSpec),
    /// The workgroup-memory GEMM core.
    Block(BlockSpec),
}

impl Spec {
    /// The generated constants (also the `//#for` counts).
    pub fn counts(self) -> Vec<(&'static str, u32)> {
        match self {
            Spec::Tile(t) => vec![("LANE_TILE", t.lane_tile), ("UNIFORM_TILE", t.uniform_tile)],
            Spec::Window(w) => {
                let [wh, ww] = w.window();
                vec![
                    ("TP", w.rows),
                    ("TQ", w.cols),
                    ("R", w.kernel[0]),
                    ("S", w.kernel[1]),
                    ("SH", w.stride[0]),
                    ("SW", w.stride[1]),
                    ("DH", w.dilation[0]),
                    ("DW", w.dilation[1]),
                    ("UH", w.upsample[0]),
                    ("UW", w.upsample[1]),
                    ("WH", wh),
                    ("WW", ww),
                ]
            }
            Spec::Block(b) => vec![
                ("BM", b.bm),
                ("BN", b.bn),
                ("BK", b.bk),
                ("TM", b.tm),
                ("TN", b.tn),
                ("THREADS", b.threads()),
                ("A_LOADS", b.bm * b.bk / b.threads()),
                ("B_LOADS", b.bn * b.bk / b.threads()),
                ("TM4", b.tm / 4),
                ("TN4", b.tn / 4),
                ("QUAD", 4),
            ],
        }
    }

    /// Bytes of workgroup memory the block core stages (`a_tile`, `b_tile`); the other kernels'
    /// (bias_grad's 1 KiB tree) are below every device's minimum.
    pub fn workgroup_bytes(self) -> u32 {
        match self {
            Spec::Block(b) => (b.bm + b.bn).saturating_mul(b.bk).saturating_mul(4),
            _ => 0,
        }
    }

    /// Invocations per workgroup.
    pub fn lanes(self) -> u32 {
        match self {
            Spec::Tile(t) => t.lanes,
            Spec::Window(w) => w.lanes,
            Spec::Block(b) => b.threads(),
        }
    }
}

impl From<TileSpec> for Spec {
    fn from(t: TileSpec) -> Spec {
        Spec::Tile(t)
    }
}

impl From<WindowSpec> for Spec {
    fn from(w: WindowSpec) -> Spec {
        Spec::Window(w)
    }
}

impl From<BlockSpec> for Spec {
    fn from(b: BlockSpec) -> Spec {
        Spec::Block(b)
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Tile(t) => t.fmt(f),
            Spec::Window(w) => {
                let [wh, ww] = w.window();
                write!(
                    f,
                    "{}x{} outputs per invocation from a {wh}x{ww} window",
                    w.rows, w.cols
                )?;
                if w.upsample != [1, 1] {
                    write!(f, " over {}x{} stride holes", w.upsample[0], w.upsample[1])?;
                }
                write!(f, ", {} lanes", w.lanes)
            }
            Spec::Block(b) => b.fmt(f),
        }
    }
}

/// Expands `//#for VAR in COUNT` … `//#end` blocks (nestable): the body is repeated for VAR =
/// 0..COUNT. Inside, `{EXPR}` (no spaces; integers, `+`, `-`, `*`, bound variables and names
/// of `counts`) is replaced by its value, e.g. `x{a*SH+r*DH}`. COUNT names an entry of `counts`.
///
/// WGSL has no unroll attribute, and naga emits `for` loops over function-scope arrays as real
/// loops with indexed memory, which software rasterisers (lavapipe) keep in scratch memory;
/// unrolled scalars stay in registers (5× faster on lavapipe; PERFORMANCE.md, [#unrolling]).
pub fn unroll(src: &str, counts: &[(&str, u32)]) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::with_capacity(src.len() * 4);
    expand(&lines, counts, &mut Vec::new(), &mut out);
    out
}

fn expand<'a>(
    lines: &[&'a str],
    counts: &[(&str, u32)],
    bound: &mut Vec<(&'a str, u32)>,
    out: &mut String,
) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(header) = line.trim().strip_prefix("//#for ") {
            let (var, count_name) = header
                .split_once(" in ")
                .unwrap_or_else(|| panic!("malformed unroll header: {line}"));
            let count = lookup(counts, count_name.trim())
                .unwrap_or_else(|| panic!("unknown unroll count in: {line}"));
            let end = matching_end(lines, i);
            for v in 0..count {
                bound.push((var.trim(), v));
                expand(&lines[i + 1..end], counts, bound, out);
                bound.pop();
            }
            i = end + 1;
        } else {
            if bound.is_empty() {
                out.push_str(line);
            } else {
                substitute(line, counts, bound, out);
            }
            out.push('\n');
            i += 1;
        }
    }
}

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table.iter().rev().find(|(n, _)| *n == name).map(|e| e.1)
}

/// Replaces every `{EXPR}` in `line` that evaluates under `bound` and `counts`.
fn substitute(line: &str, counts: &[(&str, u32)], bound: &[(&str, u32)], out: &mut String) {
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open + 1..].find('}') else {
            break;
        };
        let expr = &rest[open + 1..open + 1 + len];
        match eval(expr, counts, bound) {
            Some(v) => {
                out.push_str(&rest[..open]);
                out.push_str(&v.to_string());
                rest = &rest[open + len + 2..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
}

/// `a*b+c-d` over integers and names; `None` when `expr` is not such an expression.
fn eval(expr: &str, counts: &[(&str, u32)], bound: &[(&str, u32)]) -> Option<i64> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_+-*".contains(c);
    if expr.is_empty() || !expr.chars().all(ok) {
        return None;
    }
    let value = |atom: &str| -> Option<i64> {
        atom.parse::<i64>().ok().or_else(|| {
            lookup(bound, atom)
                .or_else(|| lookup(counts, atom))
                .map(i64::from)
        })
    };
    let mut total = 0i64;
    let mut sign = 1i64;
    let mut term_start = 0;
    let bytes = expr.as_bytes();
    for i in 0..=bytes.len() {
        if i == bytes.len() || bytes[i] == b'+' || bytes[i] == b'-' {
            let term = &expr[term_start..i];
            let mut product = 1i64;
            for atom in term.split('*') {
                product *= value(atom)?;
            }
            total += sign * product;
            if i < bytes.len() {
                sign = if bytes[i] == b'-' { -1 } else { 1 };
            }
            term_start = i + 1;
        }
    }
    Some(total)
}

/// Index of the `//#end` closing the `//#for` at `open`.
fn matching_end(lines: &[&str], open: usize) -> usize {
    let mut depth = 0;
    for (i, line) in lines.iter().enumerate().skip(open) {
        let t = line.trim();
        if t.starts_with("//#for ") {
            depth += 1;
        } else if t == "//#end" {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unclosed unroll block at line {}", open + 1)
}
