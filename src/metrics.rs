//! How results are compared with the reference: relative L2 error and the largest error scaled
//! by the reference's magnitude, max(1, max|ref|). Shared by the tests and `gpuconv bench`.

/// Relative L2 error allowed for an f32 result.
pub const REL_L2_TOL: f64 = 1e-5;
/// Largest single error allowed, as a fraction of max(1, max|reference|).
pub const MAX_TOL: f64 = 1e-4;

/// The error of one result against its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// ‖got − want‖₂ / ‖want‖₂ (infinite when any element is NaN or infinite).
    pub rel_l2: f64,
    /// max |got − want| / max(1, max |want|).
    pub scaled_max: f64,
    /// Index of the largest error.
    pub worst: usize,
    /// Elements whose error exceeds `MAX_TOL`·max(1, max|want|).
    pub bad: usize,
}

impl ErrorStats {
    /// Whether the result is within both tolerances.
    pub fn within_tolerance(&self) -> bool {
        self.rel_l2 <= REL_L2_TOL && self.scaled_max <= MAX_TOL && self.bad == 0
    }
}

/// Compares `got` with `want` (same length; a length difference counts as infinitely wrong).
pub fn compare(got: &[f32], want: &[f32]) -> ErrorStats {
    if got.len() != want.len() {
        return ErrorStats {
            rel_l2: f64::INFINITY,
            scaled_max: f64::INFINITY,
            worst: 0,
            bad: got.len().max(want.len()),
        };
    }
    let scale = want.iter().fold(1f64, |m, &v| m.max((v as f64).abs()));
    let (mut num, mut den, mut worst_err, mut worst, mut bad) = (0f64, 0f64, 0f64, 0usize, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        // NaN (a poisoned, unwritten element) and infinities count as infinitely wrong.
        let err = if g.is_finite() {
            (g as f64 - w as f64).abs()
        } else {
            f64::INFINITY
        };
        num += err * err;
        den += (w as f64) * (w as f64);
        if err > MAX_TOL * scale {
            bad += 1;
        }
        if err > worst_err {
            worst_err = err;
            worst = i;
        }
    }
    ErrorStats {
        rel_l2: num.sqrt() / den.sqrt().max(f64::MIN_POSITIVE),
        scaled_max: worst_err / scale,
        worst,
        bad,
    }
}

/// [`compare`] for results that may legitimately hold NaN or ±∞: where `want` has one, `got`
/// must have the same (any NaN for NaN, the same infinity) or it counts as a bad element; the
/// finite elements are compared as [`compare`] does.
pub fn compare_nan_aware(got: &[f32], want: &[f32]) -> ErrorStats {
    if got.len() != want.len() {
        return compare(got, want);
    }
    let mismatched = got
        .iter()
        .zip(want)
        .filter(|(g, w)| !(w.is_finite() || g == w || g.is_nan() && w.is_nan()))
        .count();
    let (g, w): (Vec<f32>, Vec<f32>) = got
        .iter()
        .zip(want)
        .filter(|(_, w)| w.is_finite())
        .map(|(g, w)| (*g, *w))
        .unzip();
    let mut stats = compare(&g, &w);
    stats.bad += mismatched;
    if mismatched > 0 {
        stats.rel_l2 = f64::INFINITY;
    }
    stats
}
