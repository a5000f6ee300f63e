//! SIGTERM and SIGINT (Ctrl-C) set a flag that the long-running commands poll, so that they
//! stop cleanly instead of dying mid-write.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    // Only an atomic store: the one thing that is safe inside a signal handler.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Routes SIGTERM and SIGINT to the stop flag.
pub fn install() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Whether SIGTERM or SIGINT arrived since [`install`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Routes SIGHUP (the terminal closed) to the stop flag as well, for a supervisor that must
/// stop its children rather than die and leave them running.
pub fn install_hangup() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: as in `install`.
    unsafe {
        libc::signal(libc::SIGHUP, handler);
    }
}
