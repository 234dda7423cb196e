//! CPU capabilities as proof values: a kernel that needs an instruction set takes the token,
//! and only detection makes one, so safe code cannot reach such a kernel on a CPU without it.

/// Proof that the running CPU has AVX-512F. Made only by [`Avx512::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx512 {
    _proof: (),
}

impl Avx512 {
    /// The token, when this CPU has AVX-512F.
    pub fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Avx512 { _proof: () });
        }
        None
    }
}

/// Proof that the running CPU has AVX2 and FMA. Made only by [`Avx2Fma::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx2Fma {
    _proof: (),
}

impl Avx2Fma {
    /// The token, when this CPU has AVX2 and FMA.
    pub fn detect() -> Option<Avx2Fma> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Avx2Fma { _proof: () });
        }
        None
    }
}
