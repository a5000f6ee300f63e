//! Whether the node is alive, as opposed to merely running: the node loop's heartbeat, and
//! the threads the node cannot live without.
//!
//! A node whose loop has died or wedged still has its HTTP workers, and they would go on
//! answering (`/v1/health` included) from the last status the loop published. The heartbeat
//! lets the server tell a live loop from a silent one, and [`Runtime::ended_thread`](super::Runtime::ended_thread)
//! lets it notice that a thread has ended before anyone asked it to stop, so that the process
//! can stop too (fail-stop) rather than stay half-alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest the node loop waits for an event before it goes round again. Each round beats
/// the heartbeat, so a live loop beats at least this often even when the node is idle.
pub const LOOP_ROUND_INTERVAL_MAX: Duration = Duration::from_millis(100);

/// The time of the node loop's last round, shared between the loop (which beats it) and the
/// threads that ask how long it has been silent.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    last_beat_ms: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
        }
    }

    /// Records that the loop is going round now.
    pub fn beat(&self) {
        let now_ms = self.origin.elapsed().as_millis() as u64;
        self.last_beat_ms.store(now_ms, Ordering::Relaxed);
    }

    /// How long since the last beat (since creation when the loop never beat).
    pub fn silence(&self) -> Duration {
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let last_beat_ms = self.last_beat_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms.saturating_sub(last_beat_ms))
    }
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat::new()
    }
}
