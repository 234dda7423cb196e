//! Outputs that the kernels write element by element, allocated without zeroing them first:
//! `vec![0.0; n]` memsets a multi-megabyte output on one thread before the parallel kernel
//! starts (10 % of the depthwise forward's profile samples, benches/NOTES.md).

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
    if cfg!(debug_assertions) {
        // Debug builds (`cargo test` without --release) poison the output, so an element a
        // writer misses fails the comparison with the reference instead of reading stale memory.
        out.resize(len, f32::NAN);
        out.clear();
    }
    write(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `write` initialised all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// `s` as a slice that a writer of [`written_by`]'s kind can take.
pub(crate) fn as_uninit(s: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the writers only store initialised f32s,
    // so `s` stays initialised.
    unsafe { &mut *(s as *mut [f32] as *mut [MaybeUninit<f32>]) }
}
