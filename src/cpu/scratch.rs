//! Reused scratch buffers for the CPU kernels, so a call allocates (and page-faults) only its
//! output: fresh multi-megabyte buffers cost a page fault per 4 KiB on first touch, which on the
//! suite's shapes was a third of the direct kernels' time.

use std::sync::Mutex;

/// Buffers returned by finished calls, largest kept first; at most [`KEPT`] of them.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
const KEPT: usize = 8;

/// A buffer of `len` f32s from the pool, returned to it on drop. Its contents are whatever the
/// last user left: callers overwrite every element they read (or use [`Scratch::zeroed`]).
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

impl Scratch {
    pub(crate) fn uninit(len: usize) -> Self {
        // An empty buffer (a path that needs no scratch) leaves the pool's buffers to others.
        if len == 0 {
            return Scratch {
                buf: Vec::new(),
                len,
            };
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest kept buffer that is big enough, else a new one.
        let pick = (0..pool.len())
            .filter(|&i| pool[i].len() >= len)
            .min_by_key(|&i| pool[i].len());
        let buf = match pick {
            Some(i) => pool.swap_remove(i),
            None => vec![0f32; len],
        };
        Scratch { buf, len }
    }

    pub(crate) fn zeroed(len: usize) -> Self {
        let mut s = Self::uninit(len);
        s.fill(0.0);
        s
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.buf.capacity() == 0 {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(std::mem::take(&mut self.buf));
        // Keep the largest few: they serve every smaller request.
        pool.sort_by_key(|b| std::cmp::Reverse(b.len()));
        pool.truncate(KEPT);
    }
}

/// Frees every kept scratch buffer (the next CPU call allocates afresh).
pub fn release() {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
