//! Counters and histograms the runtime keeps, rendered as Prometheus text.
//!
//! Everything is a relaxed atomic: metrics never take a lock on the node's hot path.

use crate::datagram::DropReason;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (microseconds) of the fsync latency histogram buckets.
pub const FSYNC_BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub proposals: AtomicU64,
    pub proposals_rejected: AtomicU64,
    pub entries_applied: AtomicU64,
    pub elections_started: AtomicU64,
    pub leader_changes: AtomicU64,
    pub leader_probes: AtomicU64,
    pub leaders_found_down: AtomicU64,
    pub term: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub is_leader: AtomicU64,
    pub reads: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub datagrams_send_failed: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    datagrams_dropped: [AtomicU64; DropReason::ALL.len()],
    pub batches_persisted: AtomicU64,
    pub fsyncs: AtomicU64,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_MICROS.len()],
    fsync_micros_sum: AtomicU64,
}

fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        add(counter, 1);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    fn dropped_slot(&self, reason: DropReason) -> &AtomicU64 {
        let slot = DropReason::ALL
            .iter()
            .position(|&r| r == reason)
            .unwrap_or(0);
        &self.datagrams_dropped[slot]
    }

    pub fn dropped(&self, reason: DropReason) {
        add(self.dropped_slot(reason), 1);
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        get(self.dropped_slot(reason))
    }

    pub fn dropped_total(&self) -> u64 {
        self.datagrams_dropped.iter().map(get).sum()
    }

    pub fn observe_fsync(&self, micros: u64) {
        add(&self.fsyncs, 1);
        add(&self.fsync_micros_sum, micros);
        for (bucket, &bound) in self.fsync_buckets.iter().zip(&FSYNC_BUCKETS_MICROS) {
            if micros <= bound {
                add(bucket, 1);
            }
        }
    }

    /// The node's metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let counters: [(&str, &str, &AtomicU64); 15] = [
            (
                "rafting_proposals_total",
                "Proposals accepted into the leader's log",
                &self.proposals,
            ),
            (
                "rafting_proposals_rejected_total",
                "Proposals refused",
                &self.proposals_rejected,
            ),
            (
                "rafting_entries_applied_total",
                "Log entries applied",
                &self.entries_applied,
            ),
            (
                "rafting_elections_started_total",
                "Elections this node started",
                &self.elections_started,
            ),
            (
                "rafting_leader_changes_total",
                "Changes of the leader this node saw",
                &self.leader_changes,
            ),
            (
                "rafting_leader_probes_total",
                "Probes sent to a leader that fell silent",
                &self.leader_probes,
            ),
            (
                "rafting_leaders_found_down_total",
                "Times a probe found the leader's port closed (an election follows at once)",
                &self.leaders_found_down,
            ),
            (
                "rafting_reads_total",
                "Linearizable reads served",
                &self.reads,
            ),
            (
                "rafting_datagrams_in_total",
                "Datagrams received",
                &self.datagrams_in,
            ),
            (
                "rafting_datagrams_out_total",
                "Datagrams sent",
                &self.datagrams_out,
            ),
            (
                "rafting_datagrams_send_failed_total",
                "Datagrams the OS refused",
                &self.datagrams_send_failed,
            ),
            (
                "rafting_messages_in_total",
                "Raft messages received",
                &self.messages_in,
            ),
            (
                "rafting_messages_out_total",
                "Raft messages sent",
                &self.messages_out,
            ),
            (
                "rafting_batches_persisted_total",
                "Persist batches made durable",
                &self.batches_persisted,
            ),
            (
                "rafting_fsyncs_total",
                "Group commits (one fdatasync each)",
                &self.fsyncs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(value)
            );
        }
        let gauges: [(&str, &str, u64); 5] = [
            ("rafting_term", "Current term", get(&self.term)),
            (
                "rafting_commit_index",
                "Commit index",
                get(&self.commit_index),
            ),
            (
                "rafting_applied_index",
                "Applied index",
                get(&self.applied_index),
            ),
            (
                "rafting_apply_lag",
                "Committed but not yet applied entries",
                get(&self.commit_index).saturating_sub(get(&self.applied_index)),
            ),
            (
                "rafting_is_leader",
                "1 when this node leads",
                get(&self.is_leader),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let name = "rafting_datagrams_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Datagrams dropped, by reason\n# TYPE {name} counter"
        );
        for (reason, value) in DropReason::ALL.iter().zip(&self.datagrams_dropped) {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{}\"}} {}",
                reason.as_str(),
                get(value)
            );
        }
        let name = "rafting_fsync_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Group commit fdatasync latency\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.fsync_buckets.iter().zip(FSYNC_BUCKETS_MICROS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                bound as f64 / 1e6,
                get(bucket)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", get(&self.fsyncs));
        let _ = writeln!(
            out,
            "{name}_sum {}",
            get(&self.fsync_micros_sum) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", get(&self.fsyncs));
    }
}
