//! Two vector loops the portable kernels spend their time in, compiled twice: for AVX2 with
//! FMA (chosen at run time where the CPU has them) and for the baseline target. The code is
//! plain Rust in both; LLVM vectorises it to the width each target has.
//!
//! Each output element is summed in a fixed order (term by term, lane by lane), so a result
//! is bit-for-bit repeatable on one CPU; the FMA build rounds once per term, the baseline twice.

#[cfg(target_arch = "x86_64")]
use super::isa::Avx2Fma;

/// One term of a gather: `weight · src[offset + i]` for output element i.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Term {
    pub offset: usize,
    pub weight: f32,
}

/// dst[i] = Σ_terms weight·src[offset + i], the terms in order.
///
/// Panics if a term reads past `src` (callers size their layouts so none does).
pub(crate) fn gather(dst: &mut [f32], src: &[f32], terms: &[Term]) {
    let n = dst.len();
    assert!(
        terms.iter().all(|t| t.offset + n <= src.len()),
        "gather reads inside src"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Avx2Fma::detect() {
        // SAFETY: the token proves the CPU has AVX2 and FMA.
        unsafe { gather_avx2(isa, dst, src, terms) };
        return;
    }
    gather_body::<Separate>(dst, src, terms);
}

/// out[t] += Σ_i g[i]·src[offsets[t] + i] for every t.
///
/// Panics if an offset reads past `src`.
pub(crate) fn dots(out: &mut [f32], g: &[f32], src: &[f32], offsets: &[usize]) {
    assert!(
        out.len() == offsets.len() && offsets.iter().all(|&o| o + g.len() <= src.len()),
        "dots reads inside src"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = Avx2Fma::detect() {
        // SAFETY: the token proves the CPU has AVX2 and FMA.
        unsafe { dots_avx2(isa, out, g, src, offsets) };
        return;
    }
    dots_body::<Separate>(out, g, src, offsets);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gather_avx2(_: Avx2Fma, dst: &mut [f32], src: &[f32], terms: &[Term]) {
    gather_body::<Fused>(dst, src, terms);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dots_avx2(_: Avx2Fma, out: &mut [f32], g: &[f32], src: &[f32], offsets: &[usize]) {
    dots_body::<Fused>(out, g, src, offsets);
}

/// a·b + c, fused or not.
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding (an FMA instruction; only where the target has one, else it is a libm call).
#[cfg(target_arch = "x86_64")]
struct Fused;
/// Two roundings.
struct Separate;

#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Output elements per block: the block's sums stay in registers while every term is added
/// (eight AVX2 vectors: enough independent FMA chains to hide their latency).
const BLOCK: usize = 64;
/// The block size for outputs shorter than [`BLOCK`].
const SHORT: usize = 8;

#[inline(always)]
fn gather_body<M: MulAdd>(dst: &mut [f32], src: &[f32], terms: &[Term]) {
    let n = dst.len();
    if n >= BLOCK {
        gather_blocks::<M, BLOCK>(dst, src, terms);
    } else if n >= SHORT {
        gather_blocks::<M, SHORT>(dst, src, terms);
    } else {
        for (i, out) in dst.iter_mut().enumerate() {
            let mut acc = 0f32;
            for t in terms {
                acc = M::mul_add(t.weight, src[t.offset + i], acc);
            }
            *out = acc;
        }
    }
}

/// [`gather_body`] for `dst.len() >= B`, in blocks of B; the last block ends at the end of
/// `dst`, overlapping the one before (its shared elements are computed the same way twice).
#[inline(always)]
fn gather_blocks<M: MulAdd, const B: usize>(dst: &mut [f32], src: &[f32], terms: &[Term]) {
    let n = dst.len();
    let starts = (0..n / B)
        .map(|b| b * B)
        .chain((!n.is_multiple_of(B)).then_some(n - B));
    for start in starts {
        let mut acc = [0f32; B];
        for t in terms {
            let s: &[f32; B] = src[t.offset + start..][..B].try_into().unwrap();
            for l in 0..B {
                acc[l] = M::mul_add(t.weight, s[l], acc[l]);
            }
        }
        dst[start..start + B].copy_from_slice(&acc);
    }
}

/// Lanes per dot-product accumulator, and taps summed together (each g load serves them all).
const LANES: usize = 16;
const TAPS: usize = 4;

#[inline(always)]
fn dots_body<M: MulAdd>(out: &mut [f32], g: &[f32], src: &[f32], offsets: &[usize]) {
    let mut outs = out.chunks_exact_mut(TAPS);
    let mut offs = offsets.chunks_exact(TAPS);
    for (o, off) in (&mut outs).zip(&mut offs) {
        dots_group::<M, TAPS>(o, g, src, off.try_into().unwrap());
    }
    for (o, &off) in outs.into_remainder().iter_mut().zip(offs.remainder()) {
        dots_group::<M, 1>(std::slice::from_mut(o), g, src, &[off]);
    }
}

#[inline(always)]
fn dots_group<M: MulAdd, const T: usize>(
    out: &mut [f32],
    g: &[f32],
    src: &[f32],
    offsets: &[usize; T],
) {
    let n = g.len();
    let taps: [&[f32]; T] = std::array::from_fn(|t| &src[offsets[t]..][..n]);
    let mut acc = [[0f32; LANES]; T];
    let chunks = g.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut start = 0;
    for gc in chunks {
        for t in 0..T {
            // SAFETY: start + LANES ≤ n (whole chunks of g), the length of every tap's slice.
            // Checked indexing here kept the sums in memory, a store after every FMA.
            let s = unsafe { taps[t].get_unchecked(start..start + LANES) };
            for l in 0..LANES {
                acc[t][l] = M::mul_add(gc[l], s[l], acc[t][l]);
            }
        }
        start += LANES;
    }
    for t in 0..T {
        for (l, gv) in tail.iter().enumerate() {
            acc[t][l] = M::mul_add(*gv, taps[t][start + l], acc[t][l]);
        }
        out[t] += acc[t].iter().sum::<f32>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    #[test]
    fn gather_and_dots_match_plain_sums() {
        let src = values(300, 7);
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 100, 250] {
            let terms: Vec<Term> = [0usize, 3, 17, 40, 49]
                .iter()
                .zip(values(5, 11))
                .map(|(&offset, weight)| Term { offset, weight })
                .collect();
            let mut dst = vec![f32::NAN; n];
            gather(&mut dst, &src, &terms);
            for (i, d) in dst.iter().enumerate() {
                let want: f64 = terms
                    .iter()
                    .map(|t| t.weight as f64 * src[t.offset + i] as f64)
                    .sum();
                assert!((*d as f64 - want).abs() < 1e-5, "gather n={n} i={i}");
            }
            let g = values(n, 3);
            let offsets = [0usize, 5, 9, 33, 41];
            let mut out = vec![1f32; offsets.len()];
            dots(&mut out, &g, &src, &offsets);
            for (t, &o) in offsets.iter().enumerate() {
                let want: f64 = 1.0 + (0..n).map(|i| g[i] as f64 * src[o + i] as f64).sum::<f64>();
                assert!((out[t] as f64 - want).abs() < 1e-4, "dots n={n} t={t}");
            }
        }
    }
}
