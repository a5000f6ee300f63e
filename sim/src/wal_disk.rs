//! A simulated disk that stores the real write-ahead log bytes.
//!
//! Each synced batch is encoded exactly as `rafting-net` writes it ([`LogShape::plan_batch`],
//! [`encode_frame`]) into one in-memory segment, and a restarting node recovers by running
//! rafting-wal's own [`replay_segment`] over those bytes. A torn write leaves a prefix of the
//! in-flight frame's bytes at the end of the segment, which recovery must cut, exactly as on a
//! real disk after a crash mid-write. Corruption can be injected at any byte, and recovery must
//! then refuse the log rather than serve from it.
//!
//! Alongside the bytes the disk keeps the durable state as values (what [`BatchDisk`] keeps),
//! and every recovery checks that replaying the bytes gives the same state: a differential
//! test of the log format that runs on every crash of every simulated seed.
//!
//! [`BatchDisk`]: crate::disk::BatchDisk

use crate::disk::SimulatedDisk;
use rafting_core::NodeId;
use rafting_core::raft::{BatchId, DurableState, PersistBatch};
use rafting_wal::{
    Batch, ClusterId, LogOwner, LogShape, RecoveredLog, SegmentExpectation, WalError, encode_frame,
    new_segment_bytes, replay_segment,
};
use std::collections::VecDeque;

const SEGMENT_NAME: &str = "simulated-segment-1";

#[derive(Clone, Debug)]
pub struct WalDisk {
    owner: LogOwner,
    /// The durable bytes of the one segment.
    bytes: Vec<u8>,
    shape: LogShape,
    /// The durable state as values, mirrored from the synced batches.
    durable: DurableState,
    pending: VecDeque<PersistBatch>,
}

impl WalDisk {
    pub fn new(node: NodeId) -> WalDisk {
        let owner = LogOwner {
            cluster_id: ClusterId(1),
            node_id: node,
        };
        WalDisk {
            owner,
            bytes: new_segment_bytes(owner, 1).to_vec(),
            shape: LogShape::default(),
            durable: DurableState::default(),
            pending: VecDeque::new(),
        }
    }

    /// The durable state as values (for checkers).
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    /// The durable bytes of the segment.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Flips one bit of the durable bytes (a disk fault). Positions wrap around the segment.
    pub fn corrupt(&mut self, position: usize, bit: u8) {
        let position = position % self.bytes.len();
        self.bytes[position] ^= 1 << (bit % 8);
    }

    /// Runs the real recovery over the durable bytes.
    pub fn replay(&self) -> Result<(DurableState, u64), WalError> {
        let expectation = SegmentExpectation {
            owner: self.owner,
            sequence: 1,
            is_last: true,
        };
        let mut log = RecoveredLog::default();
        let scan = replay_segment(SEGMENT_NAME, &self.bytes, expectation, &mut log)?;
        let state = DurableState {
            hard_state: log.hard_state.unwrap_or_default(),
            entries: log.entries,
        };
        Ok((state, scan.valid_length))
    }

    fn encode(&self, batch: &PersistBatch) -> (Vec<u8>, LogShape) {
        let batch = Batch {
            hard_state: batch.hard_state,
            entries: batch.entries.clone(),
        };
        let (records, shape) = self
            .shape
            .plan_batch(&batch)
            .expect("core emitted a persist batch that breaks the log's ordering rules");
        let mut frame = Vec::new();
        encode_frame(&records, &mut frame).expect("a simulated batch always fits a frame");
        (frame, shape)
    }

    fn mirror(&mut self, batch: &PersistBatch) {
        if let Some(hard_state) = batch.hard_state {
            self.durable.hard_state = hard_state;
        }
        if let Some(first) = batch.entries.first() {
            self.durable
                .entries
                .retain(|entry| entry.index < first.index);
            self.durable.entries.extend_from_slice(&batch.entries);
        }
    }
}

impl SimulatedDisk for WalDisk {
    fn write(&mut self, batch: PersistBatch) {
        self.pending.push_back(batch);
    }

    fn sync_next(&mut self) -> Option<BatchId> {
        let batch = self.pending.pop_front()?;
        let (frame, shape) = self.encode(&batch);
        self.bytes.extend_from_slice(&frame);
        self.shape = shape;
        self.mirror(&batch);
        Some(batch.id)
    }

    /// A torn write of `k` records leaves the same fraction of the in-flight frame's bytes
    /// (never all of it). Then, as the real log does when it is opened, the torn tail is cut.
    fn crash(&mut self, torn_records: Option<usize>) {
        let in_flight = self.pending.pop_front();
        self.pending.clear();
        let (Some(batch), Some(records)) = (in_flight, torn_records) else {
            return;
        };
        let (frame, _) = self.encode(&batch);
        let total = self.records_of(&batch).max(1);
        let kept = frame.len() * records.min(total - 1) / total;
        self.bytes.extend_from_slice(&frame[..kept]);
        match self.replay() {
            Ok((_, valid_length)) => self.bytes.truncate(valid_length as usize),
            Err(error) => panic!("a torn tail must be recoverable: {error}"),
        }
    }

    fn records_in_flight(&self) -> usize {
        self.pending
            .front()
            .map_or(0, |batch| self.records_of(batch))
    }

    /// Recovers by replaying the bytes, and checks the result against the mirrored values.
    fn recover(&self) -> DurableState {
        let (state, _) = self
            .replay()
            .unwrap_or_else(|error| panic!("the simulated write-ahead log must recover: {error}"));
        assert_eq!(
            state, self.durable,
            "replaying the log bytes disagrees with what was synced"
        );
        state
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl WalDisk {
    fn records_of(&self, batch: &PersistBatch) -> usize {
        usize::from(batch.hard_state.is_some()) + batch.entries.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::BatchDisk;
    use crate::disk::tests::batch;
    use rafting_core::raft::{Entry, EntryPayload};
    use rafting_core::{LogIndex, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: EntryPayload::Command(format!("{index}@{term}").into_bytes()),
        }
    }

    fn history() -> Vec<PersistBatch> {
        vec![
            batch(1, 1, vec![entry(1, 1), entry(2, 1), entry(3, 1)]),
            batch(2, 2, vec![entry(2, 2)]),
            batch(3, 2, vec![entry(3, 2), entry(4, 2)]),
            batch(4, 3, vec![]),
            batch(5, 4, vec![entry(4, 4)]),
        ]
    }

    /// The byte-level disk and the value-level disk recover the same state from the same
    /// batches, including suffix replacements and hard-state-only batches.
    #[test]
    fn recovers_what_the_value_disk_recovers() {
        let mut wal = WalDisk::new(NodeId(1));
        let mut values = BatchDisk::new();
        for batch in history() {
            wal.write(batch.clone());
            values.write(batch);
            assert_eq!(wal.sync_next(), values.sync_next());
            assert_eq!(wal.recover(), values.recover());
        }
        assert_eq!(wal.recover().entries.len(), 4);
    }

    /// A torn frame is cut on recovery: frames are all or nothing, so exactly the batches
    /// synced before the crash survive.
    #[test]
    fn a_torn_write_loses_only_the_in_flight_batch() {
        for torn in 0..6 {
            let mut wal = WalDisk::new(NodeId(1));
            let batches = history();
            for batch in &batches[..2] {
                wal.write(batch.clone());
                wal.sync_next();
            }
            let synced = wal.recover();
            wal.write(batches[2].clone());
            wal.crash(Some(torn));
            assert_eq!(wal.recover(), synced, "torn prefix of {torn} records");
            // The log goes on after the cut.
            wal.write(batches[2].clone());
            wal.sync_next();
            assert_eq!(wal.recover().entries.last(), Some(&entry(4, 2)));
        }
    }

    /// A flipped bit in the middle of the log is refused with the file and offset, never
    /// served.
    #[test]
    fn corruption_in_the_middle_is_refused() {
        let mut wal = WalDisk::new(NodeId(1));
        for batch in history() {
            wal.write(batch);
            wal.sync_next();
        }
        let middle = wal.bytes().len() / 2;
        wal.corrupt(middle, 3);
        let error = wal.replay().unwrap_err();
        assert!(error.to_string().contains(SEGMENT_NAME), "{error}");
    }
}
