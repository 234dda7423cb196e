//! The uniform of each kernel family, mirrored from `shaders/shared/uniforms.wgsl`.
//!
//! Each struct is declared once through [`uniform!`], which also produces its
//! [`UniformLayout`]: the field names, byte offsets and scalar types as Rust lays them out. The
//! reflection test (`tests/shaders.rs`) parses every kernel with naga and checks the WGSL
//! struct against that layout, so a field added, dropped or reordered on one side fails it.

use crate::problem::ConvProblem;

/// The WGSL scalar type of a uniform field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `f32`.
    F32,
}

/// A Rust type that is one WGSL scalar.
pub trait ScalarType {
    /// Its WGSL type.
    const SCALAR: Scalar;
}

impl ScalarType for u32 {
    const SCALAR: Scalar = Scalar::U32;
}
impl ScalarType for i32 {
    const SCALAR: Scalar = Scalar::I32;
}
impl ScalarType for f32 {
    const SCALAR: Scalar = Scalar::F32;
}

/// One field of a uniform struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniformField {
    /// Its name, the same in Rust and WGSL.
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Its type (4 bytes each).
    pub scalar: Scalar,
}

/// A uniform struct as both sides lay it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniformLayout {
    /// The WGSL struct's name.
    pub wgsl_name: &'static str,
    /// Size in bytes.
    pub size: usize,
    /// Every field, in order.
    pub fields: &'static [UniformField],
}

/// A Rust mirror of a WGSL uniform struct.
pub trait Uniform: bytemuck::Pod + std::fmt::Debug {
    /// The layout both sides must share.
    const LAYOUT: UniformLayout;
}

/// Declares a `#[repr(C)]` uniform struct of 4-byte scalars and its [`UniformLayout`].
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        pub struct $name:ident as $wgsl:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Uniform for $name {
            const LAYOUT: UniformLayout = UniformLayout {
                wgsl_name: $wgsl,
                size: std::mem::size_of::<$name>(),
                fields: &[$(UniformField {
                    name: stringify!($field),
                    offset: std::mem::offset_of!($name, $field),
                    scalar: <$ty as ScalarType>::SCALAR,
                },)*],
            };
        }
    };
}

uniform! {
    /// WGSL `struct Conv`: the implicit-GEMM passes (forward, input gradient per stride phase,
    /// weight gradient with split-K; register and workgroup-memory cores) and col2im.
    pub struct ConvUniform as "Conv" {
        /// Batch N.
        pub n: u32,
        /// Input channels C.
        pub c: u32,
        /// Input height H.
        pub h: u32,
        /// Input width W.
        pub w: u32,
        /// Output channels K.
        pub k: u32,
        /// Kernel height R.
        pub r: u32,
        /// Kernel width S.
        pub s: u32,
        /// Groups.
        pub groups: u32,
        /// Output height P.
        pub p: u32,
        /// Output width Q.
        pub q: u32,
        /// Input channels per group.
        pub cg: u32,
        /// Output channels per group.
        pub kg: u32,
        /// Stride along height.
        pub stride_h: u32,
        /// Stride along width.
        pub stride_w: u32,
        /// Top padding.
        pub pad_top: u32,
        /// Left padding.
        pub pad_left: u32,
        /// Dilation along height.
        pub dil_h: u32,
        /// Dilation along width.
        pub dil_w: u32,
        /// 1 when the forward pass adds a bias.
        pub has_bias: u32,
        /// GEMM rows of this dispatch (the lane items of the register core).
        pub rows: u32,
        /// GEMM columns of this dispatch (the uniform items of the register core).
        pub cols: u32,
        /// Workgroup tiles along the rows.
        pub tiles_m: u32,
        /// Workgroup tiles along the columns.
        pub tiles_n: u32,
        /// Workgroups in the whole (linear) grid that do work.
        pub tiles_total: u32,
        /// Input-gradient stride phase (h mod sh).
        pub phase_h: u32,
        /// Input-gradient stride phase (w mod sw).
        pub phase_w: u32,
        /// Input rows in this phase.
        pub phase_rows_h: u32,
        /// Input columns in this phase.
        pub phase_rows_w: u32,
        /// Input gradient: first kernel row in this stride phase.
        pub tap_r0: u32,
        /// Input gradient: step between the phase's kernel rows.
        pub tap_r_step: u32,
        /// Input gradient: kernel rows in this phase.
        pub tap_rn: u32,
        /// Input gradient: first kernel column in this stride phase.
        pub tap_s0: u32,
        /// Input gradient: step between the phase's kernel columns.
        pub tap_s_step: u32,
        /// Input gradient: kernel columns in this phase.
        pub tap_sn: u32,
        /// Weight gradient: partial sums (split-K count).
        pub splits: u32,
        /// Weight gradient: reduction indices per split.
        pub split_len: u32,
        /// Weight gradient: reduction length N·P·Q.
        pub red_len: u32,
        /// Elements of the op's output: dW (one split-K slice) or, for col2im, dX.
        pub out_len: u32,
        /// Fused epilogue: α, the convolution's scale.
        pub alpha: f32,
        /// Fused epilogue: β, the residual's scale.
        pub beta: f32,
        /// Fused epilogue: the activation's first parameter.
        pub act_a: f32,
        /// Fused epilogue: the activation's second parameter.
        pub act_b: f32,
    }
}

impl ConvUniform {
    /// The problem's sizes; dispatch fields are left zero for the plan to fill in.
    pub fn from_problem(pb: &ConvProblem) -> Self {
        // ConvProblem::new bounds every size and parameter by MAX_EXTENT or MAX_ELEMENTS, both
        // below u32::MAX, so these conversions cannot fail.
        let u = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        ConvUniform {
            n: u(pb.n),
            c: u(pb.c),
            h: u(pb.h),
            w: u(pb.w),
            k: u(pb.k),
            r: u(pb.r),
            s: u(pb.s),
            groups: u(pb.params.groups),
            p: u(pb.p),
            q: u(pb.q),
            cg: u(pb.c_per_group()),
            kg: u(pb.k_per_group()),
            stride_h: u(pb.params.stride[0]),
            stride_w: u(pb.params.stride[1]),
            pad_top: u(pb.params.padding[0]),
            pad_left: u(pb.params.padding[1]),
            dil_h: u(pb.params.dilation[0]),
            dil_w: u(pb.params.dilation[1]),
            ..Default::default()
        }
    }
}

uniform! {
    /// WGSL `struct Pointwise`: the plain GEMM of 1×1 stride-1 passes on vec4 pixel quads,
    /// dst\[n, g·out_g + u, quad\] = Σ_t A(g, u, t)·src\[n, g·red_g + t, quad\] (+ bias).
    pub struct PointwiseUniform as "Pointwise" {
        /// Pixel quads per plane (H·W/4).
        pub quads: u32,
        /// Channels of the source tensor.
        pub src_c: u32,
        /// Channels of the destination tensor.
        pub dst_c: u32,
        /// Reduced channels per group.
        pub red_g: u32,
        /// Output channels per group.
        pub out_g: u32,
        /// Weight stride along the output channel.
        pub a_stride_out: u32,
        /// Weight stride along the reduced channel.
        pub a_stride_red: u32,
        /// 1 when a bias is added.
        pub has_bias: u32,
        /// Pixel quads in the batch (the lane items).
        pub rows: u32,
        /// Workgroup tiles along the quads.
        pub tiles_m: u32,
        /// Workgroup tiles along the output channels.
        pub tiles_n: u32,
        /// Workgroups in the whole grid.
        pub tiles_total: u32,
        /// Fused epilogue: α, the convolution's scale.
        pub alpha: f32,
        /// Fused epilogue: β, the residual's scale.
        pub beta: f32,
        /// Fused epilogue: the activation's first parameter.
        pub act_a: f32,
        /// Fused epilogue: the activation's second parameter.
        pub act_b: f32,
    }
}

uniform! {
    /// WGSL `struct PointwiseWeightGrad`: the 1×1 stride-1 weight gradient on vec4 quads.
    pub struct PointwiseWeightGradUniform as "PointwiseWeightGrad" {
        /// Pixel quads per plane (H·W/4).
        pub quads: u32,
        /// Input channels C.
        pub c: u32,
        /// Output channels K.
        pub k: u32,
        /// Input channels per group.
        pub cg: u32,
        /// Output channels per group.
        pub kg: u32,
        /// Groups.
        pub groups: u32,
        /// Workgroup tiles along the input channels.
        pub tiles_m: u32,
        /// Workgroup tiles along the output channels.
        pub tiles_n: u32,
        /// Workgroups in the whole grid.
        pub tiles_total: u32,
        /// Partial sums (split-K count).
        pub splits: u32,
        /// Quads per split.
        pub split_len: u32,
        /// Reduction length N·H·W/4.
        pub red_len: u32,
        /// Elements of dW (one split slice).
        pub out_len: u32,
    }
}

uniform! {
    /// WGSL `struct Depthwise`: the direct depthwise kernels.
    pub struct DepthwiseUniform as "Depthwise" {
        /// Batch.
        pub n: u32,
        /// Channels of `src`.
        pub in_c: u32,
        /// Channels of `dst` (the weight gradient: of dY).
        pub out_c: u32,
        /// Source channels summed into each output channel.
        pub terms: u32,
        /// Source plane height.
        pub in_h: u32,
        /// Source plane width.
        pub in_w: u32,
        /// Output plane height.
        pub out_h: u32,
        /// Output plane width.
        pub out_w: u32,
        /// Source row of output row 0 at tap 0 (minus the top padding).
        pub off_h: i32,
        /// Source column of output column 0 at tap 0.
        pub off_w: i32,
        /// 1: weight channel = source channel and taps flipped (input gradient).
        pub flip: u32,
        /// Output channels per source-channel block.
        pub chan_div: u32,
        /// Source channels per output-channel block.
        pub chan_mult: u32,
        /// Output blocks down a plane.
        pub blocks_h: u32,
        /// Output blocks across a plane.
        pub blocks_w: u32,
        /// Workgroups per plane (forward) or per channel (weight gradient).
        pub chunks: u32,
        /// Workgroups in the dispatch.
        pub tiles_total: u32,
        /// Weight gradient: partial sums per channel.
        pub splits: u32,
        /// Weight gradient: length of one partial-sum slice (K·R·S).
        pub out_len: u32,
        /// 1 when a bias is added.
        pub has_bias: u32,
        /// Fused epilogue: α, the convolution's scale.
        pub alpha: f32,
        /// Fused epilogue: β, the residual's scale.
        pub beta: f32,
        /// Fused epilogue: the activation's first parameter.
        pub act_a: f32,
        /// Fused epilogue: the activation's second parameter.
        pub act_b: f32,
    }
}

uniform! {
    /// WGSL `struct Reduce`: adding split-K slices in index order, onto the output's own values
    /// when `accumulate`.
    pub struct ReduceUniform as "Reduce" {
        /// Slices to add.
        pub splits: u32,
        /// Elements per slice (and of the output).
        pub out_len: u32,
        /// 1: add onto what the output holds; 0: overwrite it.
        pub accumulate: u32,
        /// Where in the output the slice lands (elements).
        pub out_offset: u32,
    }
}

uniform! {
    /// WGSL `struct Elementwise`: the epilogue's passes of their own (epilogue.wgsl over Y in
    /// place, activation_grad.wgsl).
    pub struct ElementwiseUniform as "Elementwise" {
        /// Elements in this binding.
        pub len: u32,
        /// The output element index of this binding's first element.
        pub first: u32,
        /// Elements per channel plane.
        pub plane: u32,
        /// Channels (the bias's length).
        pub channels: u32,
        /// 1 when a bias is added.
        pub has_bias: u32,
        /// activation_grad: 1 when the saved tensor is the output, 0 the pre-activation.
        pub from_output: u32,
        /// α (epilogue.wgsl) or the gradient's scale (activation_grad.wgsl).
        pub alpha: f32,
        /// β, the residual's scale.
        pub beta: f32,
        /// The activation's first parameter.
        pub act_a: f32,
        /// The activation's second parameter.
        pub act_b: f32,
    }
}

uniform! {
    /// WGSL `struct Scan`: scanning values for NaN and ±∞.
    pub struct ScanUniform as "Scan" {
        /// Values to scan.
        pub len: u32,
    }
}

uniform! {
    /// WGSL `struct Border`: the input gradient's border pixels, recomputed exactly when the
    /// weights hold NaN or ±∞.
    pub struct BorderUniform as "Border" {
        /// Batch N.
        pub n: u32,
        /// Input channels C.
        pub c: u32,
        /// Input height H.
        pub h: u32,
        /// Input width W.
        pub w: u32,
        /// Output channels K.
        pub k: u32,
        /// Kernel height R.
        pub r: u32,
        /// Kernel width S.
        pub s: u32,
        /// Output height P.
        pub p: u32,
        /// Output width Q.
        pub q: u32,
        /// Input channels per group.
        pub cg: u32,
        /// Output channels per group.
        pub kg: u32,
        /// Stride along height.
        pub stride_h: u32,
        /// Stride along width.
        pub stride_w: u32,
        /// Top padding.
        pub pad_top: u32,
        /// Left padding.
        pub pad_left: u32,
        /// Dilation along height.
        pub dil_h: u32,
        /// Dilation along width.
        pub dil_w: u32,
        /// Rows at the top with a tap above dY.
        pub border_top: u32,
        /// Rows at the bottom with a tap below dY.
        pub border_bottom: u32,
        /// Columns at the left (of the rows between) with a tap left of dY.
        pub border_left: u32,
        /// Columns at the right with a tap right of dY.
        pub border_right: u32,
        /// Border pixels over all N·C planes.
        pub pixels: u32,
    }
}

uniform! {
    /// WGSL `struct BiasGrad`: per-channel sums of dY.
    pub struct BiasGradUniform as "BiasGrad" {
        /// Batch N.
        pub n: u32,
        /// Channels K.
        pub k: u32,
        /// Elements per plane, P·Q.
        pub plane: u32,
    }
}

uniform! {
    /// WGSL `struct Sgemm`: C (M×N) = A (M×K)·B (K×N), N a multiple of 4.
    pub struct SgemmUniform as "Sgemm" {
        /// Rows of A and C.
        pub m: u32,
        /// Columns of B and C.
        pub n: u32,
        /// The reduction.
        pub k: u32,
        /// Workgroup tiles along the column quads.
        pub tiles_m: u32,
        /// Workgroup tiles along the rows.
        pub tiles_n: u32,
        /// Workgroups in the whole grid.
        pub tiles_total: u32,
    }
}

/// Every uniform layout, for the reflection test.
pub const ALL_LAYOUTS: [UniformLayout; 10] = [
    ElementwiseUniform::LAYOUT,
    ConvUniform::LAYOUT,
    PointwiseUniform::LAYOUT,
    PointwiseWeightGradUniform::LAYOUT,
    DepthwiseUniform::LAYOUT,
    ReduceUniform::LAYOUT,
    ScanUniform::LAYOUT,
    BorderUniform::LAYOUT,
    BiasGradUniform::LAYOUT,
    SgemmUniform::LAYOUT,
];

/// A uniform value of any family: what a planned dispatch carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UniformValue {
    /// `Conv`.
    Conv(ConvUniform),
    /// `Pointwise`.
    Pointwise(PointwiseUniform),
    /// `PointwiseWeightGrad`.
    PointwiseWeightGrad(PointwiseWeightGradUniform),
    /// `Depthwise`.
    Depthwise(DepthwiseUniform),
    /// `Reduce`.
    Reduce(ReduceUniform),
    /// `Scan`.
    Scan(ScanUniform),
    /// `Elementwise`.
    Elementwise(ElementwiseUniform),
    /// `Border`.
    Border(BorderUniform),
    /// `BiasGrad`.
    BiasGrad(BiasGradUniform),
    /// `Sgemm`.
    Sgemm(SgemmUniform),
}

impl UniformValue {
    /// Its layout.
    pub fn layout(&self) -> &'static UniformLayout {
        match self {
            UniformValue::Conv(_) => &ConvUniform::LAYOUT,
            UniformValue::Pointwise(_) => &PointwiseUniform::LAYOUT,
            UniformValue::PointwiseWeightGrad(_) => &PointwiseWeightGradUniform::LAYOUT,
            UniformValue::Depthwise(_) => &DepthwiseUniform::LAYOUT,
            UniformValue::Reduce(_) => &ReduceUniform::LAYOUT,
            UniformValue::Scan(_) => &ScanUniform::LAYOUT,
            UniformValue::Elementwise(_) => &ElementwiseUniform::LAYOUT,
            UniformValue::Border(_) => &BorderUniform::LAYOUT,
            UniformValue::BiasGrad(_) => &BiasGradUniform::LAYOUT,
            UniformValue::Sgemm(_) => &SgemmUniform::LAYOUT,
        }
    }

    /// Its bytes, as the GPU reads them.
    pub fn bytes(&self) -> &[u8] {
        match self {
            UniformValue::Conv(u) => bytemuck::bytes_of(u),
            UniformValue::Pointwise(u) => bytemuck::bytes_of(u),
            UniformValue::PointwiseWeightGrad(u) => bytemuck::bytes_of(u),
            UniformValue::Depthwise(u) => bytemuck::bytes_of(u),
            UniformValue::Reduce(u) => bytemuck::bytes_of(u),
            UniformValue::Scan(u) => bytemuck::bytes_of(u),
            UniformValue::Elementwise(u) => bytemuck::bytes_of(u),
            UniformValue::Border(u) => bytemuck::bytes_of(u),
            UniformValue::BiasGrad(u) => bytemuck::bytes_of(u),
            UniformValue::Sgemm(u) => bytemuck::bytes_of(u),
        }
    }
}
