//! CPU implementations: the f64 reference (the oracle every other path is tested against) and the
//! fast path (im2col + GEMM) that the benchmark calls "CPU".

pub mod fast;
pub mod reference;
