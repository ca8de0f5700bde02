//! User interrupts (Ctrl-C, SIGINT) seen from Rust. `R_CheckUserInterrupt` must not be
//! called directly (on a pending interrupt it long-jumps over Rust frames); inside
//! `R_ToplevelExec` the jump ends in that call's own context, which then returns FALSE,
//! and the interrupt is consumed. Only ever called on R's main thread.

use std::os::raw::{c_int, c_void};
use std::time::{Duration, Instant};

extern "C" {
    fn R_ToplevelExec(fun: extern "C" fn(*mut c_void), data: *mut c_void) -> c_int;
    fn R_CheckUserInterrupt();
}

extern "C" fn check(_: *mut c_void) {
    // SAFETY: called by R_ToplevelExec on R's main thread, inside its own top-level
    // context, which catches the long jump of a pending interrupt.
    unsafe { R_CheckUserInterrupt() }
}

/// Whether the user has asked R to stop (consuming the request).
pub fn pending() -> bool {
    // SAFETY: R's API, called on the main thread (the thread running .Call); `check`
    // does not touch `data`.
    unsafe { R_ToplevelExec(check, std::ptr::null_mut()) == 0 }
}

/// A `stop` callback for the core's passes: asks R at most every `every`, so that the
/// check costs nothing next to a minibatch.
pub fn poller(every: Duration) -> impl FnMut() -> bool {
    let mut last = Instant::now();
    move || {
        let now = Instant::now();
        if now.duration_since(last) < every {
            return false;
        }
        last = now;
        pending()
    }
}
