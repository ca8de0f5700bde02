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

/// SIGTERM read as an interrupt (batch jobs: a scheduler's `scancel`, `docker stop`,
/// `kill`): the handler raises SIGINT in the process, which R's own handler turns into
/// the user interrupt that training already stops at cleanly; `sigterm_received`
/// tells the job which signal it was.
static TERM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_term(_: c_int) {
    // only async-signal-safe calls here: an atomic store and kill(2)
    TERM.store(true, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: kill and getpid are async-signal-safe.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGINT);
    }
}

/// Installs the SIGTERM handler; false where signals are not POSIX ones or it failed.
pub fn catch_sigterm() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: a zeroed sigaction with a handler that only calls async-signal-safe
        // functions; the previous action is not needed.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_term as extern "C" fn(c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut()) == 0
        }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether a SIGTERM has arrived since `catch_sigterm`.
pub fn sigterm_received() -> bool {
    TERM.load(std::sync::atomic::Ordering::SeqCst)
}
