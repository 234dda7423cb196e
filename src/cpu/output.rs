//! Outputs that the kernels write element by element, allocated without zeroing them first:
//! `vec![0.0; n]` memsets a multi-megabyte output on one thread before the parallel kernel
//! starts (10 % of the depthwise forward's profile samples; PERFORMANCE.md, [#cpu-unzeroed]).

use std::mem::MaybeUninit;

/// A `len`-element output filled by `write`.
///
/// # Safety
/// `write` writes every element of the slice it is given (it may not read any it has not
/// written).
pub(crate) unsafe fn written_by(
    len: usize,
    write: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    if cfg!(any(debug_assertions, test)) {
        // Debug builds and this crate's unit tests (below, also under --release) poison the
        // output, so an element a writer misses fails the comparison with the reference
        // instead of passing on stale memory.
        out.resize(len, f32::NAN);
        out.clear();
    }
    write(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `write` initialised all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// `s` as a slice that a writer of [`written_by`]'s kind can take.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn as_uninit(s: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the writers only store initialised f32s,
    // so `s` stays initialised.
    unsafe { &mut *(s as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

#[cfg(test)]
mod tests {
    //! Every kernel that writes through [`written_by`], on problems with tails, strides, phases
    //! and padding, against the f64 reference with the output poisoned (NaN) first.
    use crate::cpu::fast::{self, CpuChoice, CpuKernel};
    use crate::cpu::isa::{Avx2Fma, Avx512};
    use crate::cpu::{depthwise, reference};
    #[cfg(target_arch = "x86_64")]
    use crate::cpu::{direct, direct_depthwise};
    use crate::metrics::compare;
    use crate::{ConvParams, ConvProblem};

    fn tensor(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn assert_matches(what: &str, got: &[f32], want: &[f32]) {
        let e = compare(got, want);
        assert!(e.within_tolerance(), "{what}: {e:?}");
    }

    #[test]
    fn unzeroed_outputs_are_written_whole() {
        let avx512 = Avx512::detect();
        if avx512.is_none() {
            eprintln!(
                "\n*** this CPU has no AVX-512F, so only the portable kernels that write \
                 unzeroed outputs were tested here, NOT the AVX-512 ones ***\n"
            );
        }
        let cases = [
            // Depthwise, stride 1 (the plane is its own phase) and strided with K = 2C.
            (
                [2, 8, 9, 21],
                [8, 1, 3, 3],
                ConvParams::default().groups(8).padding(1, 1),
            ),
            (
                [2, 6, 11, 13],
                [12, 1, 3, 2],
                ConvParams::default()
                    .groups(6)
                    .stride(2, 3)
                    .dilation(2, 1)
                    .padding(2, 1),
            ),
            // Stride 2 with an odd width (the last column of each dX row has no pair).
            (
                [1, 3, 9, 15],
                [3, 1, 3, 3],
                ConvParams::default()
                    .groups(3)
                    .stride(2, 2)
                    .padding_tlbr(0, 0, 1, 1),
            ),
            // Dense direct forward: tails on both tile axes; strided with groups.
            (
                [2, 5, 17, 19],
                [7, 5, 3, 3],
                ConvParams::default().padding(1, 1),
            ),
            (
                [2, 6, 20, 23],
                [8, 3, 3, 3],
                ConvParams::default()
                    .groups(2)
                    .stride(2, 2)
                    .padding_tlbr(1, 0, 2, 1),
            ),
            // Pointwise with groups: the GEMM forward reads X as its column matrix, the input
            // gradient writes dX from its GEMMs.
            ([3, 6, 5, 7], [4, 3, 1, 1], ConvParams::default().groups(2)),
        ];
        let mut seed = 0x5eed;
        for (xs, ws, params) in cases {
            let pb = ConvProblem::new(&xs, &ws, params).unwrap();
            let (x, w, dy) = (
                tensor(pb.x_len(), &mut seed),
                tensor(pb.w_len(), &mut seed),
                tensor(pb.y_len(), &mut seed),
            );
            let what = |op: &str| format!("{op} x={xs:?} w={ws:?} {params:?}");
            let y = reference::forward(&pb, &x, &w, None).unwrap();
            let dx = reference::input_grad(&pb, &dy, &w).unwrap();
            if pb.is_depthwise() {
                let fwd = depthwise::forward(&pb, &x, &w);
                assert_matches(&what("portable forward"), &fwd, &y);
                let got = depthwise::input_grad(&pb, &dy, &w);
                assert_matches(&what("portable input-grad"), &got, &dx);
            }
            if !pb.is_depthwise() {
                // The GEMM forward (and a pointwise input gradient, dX = Wᵀ·dY), images across the
                // threads and threads in each image.
                for parallel in [true, false] {
                    let choice = CpuChoice {
                        kernel: Some(CpuKernel::Portable),
                        images_in_parallel: Some(parallel),
                        columns: Some(true),
                        ..CpuChoice::HEURISTIC
                    };
                    let fwd = fast::forward_choice(&choice, &pb, &x, &w, None).unwrap();
                    assert_matches(&what(&format!("gemm forward {choice}")), &fwd, &y);
                    if pb.is_pointwise() {
                        let got = fast::input_grad_choice(&choice, &pb, &dy, &w).unwrap();
                        assert_matches(&what(&format!("gemm input-grad {choice}")), &got, &dx);
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            if let (Some(cpu), false) = (Avx2Fma::detect(), pb.is_depthwise()) {
                let fwd = direct::forward(cpu, &pb, &x, &w, None);
                assert_matches(&what("AVX2 forward"), &fwd, &y);
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(cpu) = avx512 {
                if pb.is_depthwise() {
                    let fwd = direct_depthwise::forward(cpu, &pb, &x, &w);
                    assert_matches(&what("forward"), &fwd, &y);
                    let got = direct_depthwise::input_grad(cpu, &pb, &dy, &w);
                    assert_matches(&what("input-grad"), &got, &dx);
                } else {
                    let fwd = direct::forward(cpu, &pb, &x, &w, None);
                    assert_matches(&what("forward"), &fwd, &y);
                }
            }
        }
    }
}
