//! The CPU's floating-point modes while the core computes.
//!
//! Training drives Adam's moment estimates and many gradients towards subnormal floats,
//! which the CPU handles tens of times more slowly (measured: 100,000-cell epochs 17 s
//! instead of 10.4 s); TensorFlow trains with flush-to-zero too. The team's threads set
//! it for good (`numeric_team`); the calling thread (R's) sets it only while it computes
//! (`FlushDenormals`), so R's own arithmetic is unchanged.

use crate::error::{Error, Result};
use crate::team::Team;

/// x86 MXCSR bits "flush to zero" and "denormals are zero".
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// Sets flush-to-zero/denormals-are-zero on this thread and returns the previous
/// float-mode register (0 where there is none).
#[allow(deprecated)]
pub(crate) fn set_flush_denormals() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        // SAFETY: MXCSR only holds this thread's floating-point modes.
        unsafe {
            let saved = _mm_getcsr();
            _mm_setcsr(saved | FTZ_DAZ);
            saved
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[allow(deprecated)]
fn restore_float_modes(saved: u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: restores the value read by `set_flush_denormals` on this thread.
    unsafe {
        std::arch::x86_64::_mm_setcsr(saved)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = saved;
}

/// Flushes subnormals on the calling thread while it lives and restores the caller's
/// float modes when dropped, on every exit path.
pub(crate) struct FlushDenormals(u32);

impl FlushDenormals {
    pub(crate) fn new() -> Self {
        FlushDenormals(set_flush_denormals())
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        restore_float_modes(self.0);
    }
}

/// A team of `threads` whose workers flush subnormals.
pub(crate) fn numeric_team(threads: usize) -> Result<Team> {
    Team::new(threads, || {
        set_flush_denormals();
    })
    .map_err(|e| Error::Internal(format!("threads: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denormals_are_flushed_inside_and_restored_outside() {
        let tiny = std::hint::black_box(1e-40f32); // a subnormal f32
        assert!(tiny > 0.0 && !tiny.is_normal());
        // inside: a subnormal operand reads as zero (DAZ) on x86_64
        let inside = {
            let _flush = FlushDenormals::new();
            std::hint::black_box(tiny) * std::hint::black_box(1.0f32)
        };
        #[cfg(target_arch = "x86_64")]
        assert_eq!(inside, 0.0);
        let _ = inside;
        // outside: IEEE behaviour again
        let outside = std::hint::black_box(tiny) * std::hint::black_box(1.0f32);
        assert_eq!(outside, tiny);
    }
}
