//! Fail-stop: a node that has lost a thread it cannot live without stops, loudly, instead of
//! staying half-alive.
//!
//! Two parts. The panic hook writes every panic through `tracing`, so it lands in `node.log`
//! with the thread's name and the source location (the default hook only prints to stderr).
//! And [`exit_if_a_thread_died`], polled by `rafting node`'s main thread, ends the process with
//! [`EXIT_CODE_THREAD_DIED`] once the runtime reports an essential thread (node loop, storage,
//! UDP receiver) as ended: its HTTP workers would otherwise go on answering for a node that
//! no longer replicates, applies or persists anything. A supervisor (`rafting dev`, systemd)
//! sees the exit and the operator finds the panic in `node.log`.

use rafting_net::runtime::Runtime;

/// The exit code of a node that stopped because an essential thread died (`EX_SOFTWARE`).
pub const EXIT_CODE_THREAD_DIED: i32 = 70;

/// Routes every panic to the log: thread name, location and message, and a backtrace when
/// `RUST_BACKTRACE` asks for one. Call after the logger is installed.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map(|location| location.to_string())
            .unwrap_or_else(|| "an unknown location".to_owned());
        let message = panic_message(info.payload());
        let backtrace = std::backtrace::Backtrace::capture();
        match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => {
                tracing::error!(thread, %location, "panic: {message}\n{backtrace}")
            }
            _ => tracing::error!(thread, %location, "panic: {message}"),
        }
    }));
}

/// The text of a panic's payload (`panic!` with a literal or with a format).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a panic without a message"
    }
}

/// Ends the process with [`EXIT_CODE_THREAD_DIED`] when one of the node's essential threads has
/// ended. The process exits at once, without the clean stop: the thread that would make the
/// last batch durable may be the one that is gone, and what is durable is already safe.
pub fn exit_if_a_thread_died(runtime: &Runtime) {
    if let Some(thread) = runtime.ended_thread() {
        tracing::error!(
            thread,
            exit_code = EXIT_CODE_THREAD_DIED,
            "the node's {thread} thread has died (see the panic above): stopping the process \
             rather than serving requests it can no longer carry out"
        );
        std::process::exit(EXIT_CODE_THREAD_DIED);
    }
}
