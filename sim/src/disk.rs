//! The simulated disk of one node, at the level of persist batches.
//!
//! Batches are written in the order the node emits them and become durable one by one (each
//! after an fsync latency the simulator draws). A crash loses every batch not yet durable; a
//! torn write keeps a prefix of the records of the one batch being written when the crash
//! hit (its hard state first, then its entries in order) and never touches durable data.
//!
//! [`SimulatedDisk`] is the seam where rafting-wal's byte-level recovery will plug in: a
//! byte-backed implementation encodes the same batches as records and runs the real recovery.

use rafting_core::raft::{BatchId, DurableState, Entry, PersistBatch};
use std::collections::VecDeque;

/// What the simulator needs from a node's disk.
pub trait SimulatedDisk {
    /// Starts writing a batch; it is not durable until [`SimulatedDisk::sync_next`].
    fn write(&mut self, batch: PersistBatch);
    /// Makes the oldest pending batch durable and returns its id.
    fn sync_next(&mut self) -> Option<BatchId>;
    /// The node crashed: pending batches are lost. With `torn_records = Some(k)`, the first
    /// `k` records of the batch being written survive (a torn write).
    fn crash(&mut self, torn_records: Option<usize>);
    /// How many records the batch being written has (for choosing a torn prefix).
    fn records_in_flight(&self) -> usize;
    /// What a restarting node recovers.
    fn recover(&self) -> DurableState;
    /// Batches written but not yet durable.
    fn pending(&self) -> usize;
}

/// A disk that keeps durable state as values and pending batches in a queue.
#[derive(Clone, Debug, Default)]
pub struct BatchDisk {
    durable: DurableState,
    pending: VecDeque<PersistBatch>,
}

impl BatchDisk {
    pub fn new() -> BatchDisk {
        BatchDisk::default()
    }

    /// Durable entries (for checkers and tests).
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    fn apply_entries(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        self.durable
            .entries
            .retain(|entry| entry.index < first.index);
        assert_eq!(
            self.durable.last_index().min(first.index.prev()),
            first.index.prev(),
            "a persist batch must continue the durable log without a gap"
        );
        self.durable.entries.extend_from_slice(entries);
    }
}

impl SimulatedDisk for BatchDisk {
    fn write(&mut self, batch: PersistBatch) {
        self.pending.push_back(batch);
    }

    fn sync_next(&mut self) -> Option<BatchId> {
        let batch = self.pending.pop_front()?;
        if let Some(persist) = &batch.snapshot {
            if persist.log_reset {
                self.durable.entries.clear();
            }
            self.durable.snapshot = Some(persist.snapshot.clone());
        }
        if let Some(hard_state) = batch.hard_state {
            self.durable.hard_state = hard_state;
        }
        self.apply_entries(&batch.entries);
        Some(batch.id)
    }

    fn crash(&mut self, torn_records: Option<usize>) {
        let in_flight = self.pending.pop_front();
        self.pending.clear();
        let (Some(batch), Some(mut records)) = (in_flight, torn_records) else {
            return;
        };
        if let Some(hard_state) = batch.hard_state {
            if records == 0 {
                return;
            }
            self.durable.hard_state = hard_state;
            records -= 1;
        }
        let kept = records.min(batch.entries.len());
        self.apply_entries(&batch.entries[..kept]);
    }

    fn records_in_flight(&self) -> usize {
        self.pending.front().map_or(0, |batch| {
            usize::from(batch.hard_state.is_some()) + batch.entries.len()
        })
    }

    fn recover(&self) -> DurableState {
        self.durable.clone()
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rafting_core::raft::{EntryPayload, HardState};
    use rafting_core::{LogIndex, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: EntryPayload::Noop,
        }
    }

    /// A batch of `entries` in `term` with the hard state of that term (also used by the
    /// WAL disk's tests).
    pub(crate) fn batch(sequence: u64, term: u64, entries: Vec<Entry>) -> PersistBatch {
        let last = entries.last().map_or(LogIndex::ZERO, |entry| entry.index);
        PersistBatch {
            id: BatchId {
                sequence,
                last_index: last,
                last_term: Term(term),
            },
            hard_state: Some(HardState {
                term: Term(term),
                voted_for: None,
                commit: LogIndex::ZERO,
            }),
            entries,
            snapshot: None,
        }
    }

    // A crash loses what was not synced, and a later batch may replace a durable suffix.
    #[test]
    fn crash_loses_pending_and_batches_replace_suffixes() {
        let mut disk = BatchDisk::new();
        disk.write(batch(1, 1, vec![entry(1, 1), entry(2, 1)]));
        disk.write(batch(2, 2, vec![entry(2, 2)]));
        disk.write(batch(3, 2, vec![entry(3, 2)]));
        assert_eq!(disk.sync_next().map(|id| id.sequence), Some(1));
        assert_eq!(disk.sync_next().map(|id| id.sequence), Some(2));
        disk.crash(None);
        let state = disk.recover();
        assert_eq!(state.entries, vec![entry(1, 1), entry(2, 2)]);
        assert_eq!(state.hard_state.term, Term(2));
    }

    // A torn write keeps a prefix of the in-flight batch's records, hard state first.
    #[test]
    fn torn_write_keeps_a_prefix_of_records() {
        let mut disk = BatchDisk::new();
        disk.write(batch(1, 3, vec![entry(1, 3), entry(2, 3), entry(3, 3)]));
        assert_eq!(disk.records_in_flight(), 4);
        disk.crash(Some(2));
        let state = disk.recover();
        assert_eq!(state.hard_state.term, Term(3));
        assert_eq!(state.entries, vec![entry(1, 3)]);
    }
}
