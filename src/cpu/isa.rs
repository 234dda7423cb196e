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
