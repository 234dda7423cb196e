//! Host buffers allocated fallibly: a problem whose buffers exceed the memory available gets one
//! [`Error::OutOfHostMemory`] naming the buffer, never an abort.

use crate::error::{Error, Result};

fn failed<T>(what: &str, len: usize) -> Error {
    Error::OutOfHostMemory {
        what: what.to_string(),
        bytes: len as u128 * std::mem::size_of::<T>() as u128,
    }
}

/// An empty vector with room for `len` elements.
pub fn vec_with_capacity<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| failed::<T>(what, len))?;
    Ok(v)
}

/// A vector of `len` copies of `value`.
pub fn filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = vec_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// Checks that `bytes` of host memory can be allocated now (allocating and freeing them), so a
/// kernel that allocates its output infallibly fails here, with one error, instead of aborting.
pub fn ensure_available(bytes: u128, what: &str) -> Result<()> {
    let len = usize::try_from(bytes).map_err(|_| Error::OutOfHostMemory {
        what: what.to_string(),
        bytes,
    })?;
    vec_with_capacity::<u8>(len, what).map(drop)
}
