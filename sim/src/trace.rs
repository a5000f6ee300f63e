//! The trace of one seed, as JSON lines: every delivery, drop, timer, role change, fault,
//! persist and client event, with its simulated time. The same seed writes the same bytes.

use crate::checkers::Violation;
use crate::params::Params;
use serde::Serialize;
use std::io::Write;

/// One thing that happened.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TraceEvent<'a> {
    Start {
        scenario: &'a str,
        seed: u64,
        params: &'a Params,
    },
    /// A message reaches `to` (sent at `sent_us`).
    Deliver {
        from: u64,
        to: u64,
        sent_us: u64,
        message: &'static str,
        term: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        append: Option<AppendSummary>,
    },
    /// A message is lost: at its sending (loss) or at its arrival (node down, partitioned).
    Drop {
        from: u64,
        to: u64,
        sent_us: u64,
        message: &'static str,
        term: u64,
        reason: &'static str,
    },
    Timer {
        node: u64,
    },
    Persisted {
        node: u64,
        batch: u64,
        last_index: u64,
    },
    Role {
        node: u64,
        role: &'static str,
        term: u64,
    },
    Commit {
        node: u64,
        index: u64,
    },
    Fault {
        what: String,
    },
    Client {
        client: u64,
        op: u64,
        event: &'static str,
        node: u64,
        index: Option<u64>,
    },
    Phase {
        phase: &'static str,
    },
    Violation {
        violation: &'a Violation,
    },
    End {
        events: u64,
        simulated_ms: u64,
    },
}

/// The shape of an AppendEntries message, for reading traces.
#[derive(Serialize)]
pub struct AppendSummary {
    pub prev_index: u64,
    pub prev_term: u64,
    pub entries: usize,
    pub last_term: u64,
    pub commit: u64,
}

impl AppendSummary {
    pub fn of(message: &rafting_core::raft::Message) -> Option<AppendSummary> {
        let rafting_core::raft::Message::AppendEntries(append) = message else {
            return None;
        };
        Some(AppendSummary {
            prev_index: append.prev_log_index.get(),
            prev_term: append.prev_log_term.get(),
            entries: append.entries.len(),
            last_term: append.entries.last().map_or(0, |entry| entry.term.get()),
            commit: append.leader_commit.get(),
        })
    }
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    #[serde(flatten)]
    event: TraceEvent<'a>,
}

/// Where a seed's trace goes, if anywhere. With no sink, recording costs one branch.
pub struct Tracer<'w> {
    sink: Option<&'w mut dyn Write>,
    error: Option<std::io::Error>,
}

impl<'w> Tracer<'w> {
    pub fn new(sink: Option<&'w mut dyn Write>) -> Tracer<'w> {
        Tracer { sink, error: None }
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one line; the first write error is kept and reported by [`Tracer::finish`].
    pub fn record(&mut self, t_us: u64, event: TraceEvent<'_>) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let line = Line { t_us, event };
        let result = serde_json::to_writer(&mut *sink, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| sink.write_all(b"\n"));
        if let Err(error) = result
            && self.error.is_none()
        {
            self.error = Some(error);
        }
    }

    /// Flushes the sink and returns the first error met while tracing.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match self.sink.as_mut() {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }
}
