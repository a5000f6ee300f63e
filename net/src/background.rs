//! Threads that do a node's background work (encoding and writing snapshots, giving back
//! the space of old files) yield the CPU to the threads every request waits for.
//!
//! A snapshot of a store of large values takes a core for a few hundred milliseconds
//! (encoding, checksumming, copying into the page cache). On a machine with few cores, at
//! the same priority, that time is taken from the node loop, the storage thread and the
//! network threads, and every request in flight waits for it. Lowered, the background
//! threads take what those leave.

/// The nice value of a background thread (0 is the default; 19 the lowest priority).
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority by [`BACKGROUND_NICE`] below the node's own (a
/// node an operator started with `nice -n 5` gets background threads at 15, not 10). Best
/// effort: if the system refuses, the thread runs at the usual priority and this says why
/// in the log.
pub fn lower_this_thread() {
    // SAFETY: gettid has no preconditions; getpriority and setpriority with PRIO_PROCESS
    // and a thread id read and change only that thread's nice value on Linux. getpriority
    // may return -1 as a value, so errno is cleared first and read after.
    let result = unsafe {
        let thread = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, thread);
        let current = if current == -1 && *libc::__errno_location() != 0 {
            0
        } else {
            current
        };
        let lowered = (current + BACKGROUND_NICE).min(19);
        libc::setpriority(libc::PRIO_PROCESS, thread, lowered)
    };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "could not lower a background thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The calling thread, and only it, gets the lower priority.
    #[test]
    fn a_background_thread_runs_at_a_lower_priority_than_the_others() {
        let nice =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = nice();
        let lowered = std::thread::spawn(move || {
            lower_this_thread();
            nice()
        })
        .join()
        .expect("the thread ran");
        assert_eq!(lowered, (before + BACKGROUND_NICE).min(19));
        assert_eq!(nice(), before);
    }
}
