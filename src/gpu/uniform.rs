//! The problem uniform shared by every kernel.

use crate::problem::ConvProblem;

/// Mirrors WGSL `struct Conv` in `shaders/shared/conv.wgsl` field for field (a test checks the size
/// naga computes equals this one's).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvUniform {
    /// Batch.
    pub n: u32,
    /// Input channels.
    pub c: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub k: u32,
    /// Kernel height.
    pub r: u32,
    /// Kernel width.
    pub s: u32,
    /// Groups.
    pub groups: u32,
    /// Output height.
    pub p: u32,
    /// Output width.
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
    /// GEMM rows of this dispatch.
    pub rows: u32,
    /// Workgroup tiles along GEMM rows.
    pub tiles_m: u32,
    /// Workgroup tiles along GEMM columns.
    pub tiles_n: u32,
    /// Workgroups in the whole (linear) grid that do work.
    pub tiles_total: u32,
    /// GEMM columns of this dispatch.
    pub cols: u32,
    /// Input-gradient stride phase (h mod sh).
    pub phase_h: u32,
    /// Input-gradient stride phase (w mod sw).
    pub phase_w: u32,
    /// Input rows in this phase.
    pub phase_rows_h: u32,
    /// Input columns in this phase.
    pub phase_rows_w: u32,
    /// Split-K count.
    pub splits: u32,
    /// Reduction indices per split.
    pub split_len: u32,
    /// Reduction length N·P·Q.
    pub red_len: u32,
    /// Length of one output slice (weight gradient) or of the reduced output.
    pub out_len: u32,
    /// Pointwise GEMM: weight stride along the output channel.
    pub a_stride_out: u32,
    /// Pointwise GEMM: weight stride along the reduced channel.
    pub a_stride_red: u32,
    /// Block input gradient: first kernel row in this stride phase.
    pub tap_r0: u32,
    /// Block input gradient: step between the phase's kernel rows.
    pub tap_r_step: u32,
    /// Block input gradient: kernel rows in this phase.
    pub tap_rn: u32,
    /// Block input gradient: first kernel column in this stride phase.
    pub tap_s0: u32,
    /// Block input gradient: step between the phase's kernel columns.
    pub tap_s_step: u32,
    /// Block input gradient: kernel columns in this phase.
    pub tap_sn: u32,
}

impl ConvUniform {
    /// The problem's sizes; dispatch fields are left zero for the op to fill in.
    pub fn from_problem(pb: &ConvProblem) -> Self {
        // ConvProblem::new bounds every size below u32::MAX, so these casts are exact.
        let u = |v: usize| v as u32;
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

/// Mirrors WGSL `struct Depthwise` in `shaders/shared/conv.wgsl` (the direct depthwise kernels).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DepthwiseUniform {
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
}
