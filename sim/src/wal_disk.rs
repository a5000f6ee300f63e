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
//! Snapshots are files of real bytes ([`encode_snapshot_file`]), chosen at recovery by the
//! same [`newest_valid_snapshot`] the runtime uses. As the runtime does, a persisted snapshot
//! starts a new segment, deletes the oldest segments whose entries the *previous* snapshot
//! covers (so a damaged newest snapshot can always fall back to the previous one and the
//! log), and keeps two snapshot files. A snapshot installed over a log that did not continue
//! it writes a reset record after the file.
//!
//! [`BatchDisk`]: crate::disk::BatchDisk

use crate::disk::SimulatedDisk;
use rafting_core::raft::{BatchId, DurableState, PersistBatch, Snapshot, entries_after_snapshot};
use rafting_core::{LogIndex, NodeId};
use rafting_wal::snapshot_file::{
    SnapshotMeta, decode_snapshot_file, encode_snapshot_file, newest_valid_snapshot,
    snapshot_file_name, snapshot_files_to_delete,
};
use rafting_wal::{
    ClusterId, LogOwner, LogShape, RecordRef, RecoveredLog, SegmentExpectation, WalError,
    encode_frame, new_segment_bytes, replay_segment,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// Zeros past the end of a frame torn over the zeros the runtime lays down ahead of its
/// frames: some of the space that was still ahead.
const ZEROS_PAST_A_TORN_FRAME: usize = 64;

/// One simulated segment file.
#[derive(Clone, Debug)]
struct Segment {
    sequence: u64,
    bytes: Vec<u8>,
    /// The highest index any entry written to it had (`None`: no entry yet).
    index_max: Option<LogIndex>,
}

impl Segment {
    fn name(&self) -> String {
        format!("simulated-segment-{}", self.sequence)
    }
}

#[derive(Clone, Debug)]
pub struct WalDisk {
    owner: LogOwner,
    /// The durable segments, oldest first; the last is being written.
    segments: Vec<Segment>,
    /// The durable snapshot files, by name.
    snapshot_files: Vec<(String, Vec<u8>)>,
    shape: LogShape,
    /// The durable state as values, mirrored from the synced batches (every entry since the
    /// last reset, even those a snapshot covers: only entries after it are compared).
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
            segments: vec![Segment {
                sequence: 1,
                bytes: new_segment_bytes(owner, 1).to_vec(),
                index_max: None,
            }],
            snapshot_files: Vec::new(),
            shape: LogShape::default(),
            durable: DurableState::default(),
            pending: VecDeque::new(),
        }
    }

    /// The durable state as values (for checkers).
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    /// The durable bytes of the segment being written.
    pub fn bytes(&self) -> &[u8] {
        &self.active().bytes
    }

    /// How many segments and snapshot files the disk holds.
    pub fn files(&self) -> (usize, usize) {
        (self.segments.len(), self.snapshot_files.len())
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }

    /// Flips one bit of the durable bytes of the segment being written (a disk fault).
    /// Positions wrap around the segment.
    pub fn corrupt(&mut self, position: usize, bit: u8) {
        let segment = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        let position = position % segment.bytes.len();
        segment.bytes[position] ^= 1 << (bit % 8);
    }

    /// Flips one bit of the newest snapshot file (a disk fault), provided recovery still
    /// reaches everything the disk held through the previous snapshot and the log (the damage
    /// this models must cost nothing acknowledged). Returns whether it flipped it.
    pub fn corrupt_newest_snapshot(&mut self, position: usize, bit: u8) -> bool {
        let Some(newest) =
            (0..self.snapshot_files.len()).max_by_key(|&at| &self.snapshot_files[at].0)
        else {
            return false;
        };
        let flip = |files: &mut Vec<(String, Vec<u8>)>| {
            let bytes = &mut files[newest].1;
            let position = position % bytes.len();
            bytes[position] ^= 1 << (bit % 8);
        };
        flip(&mut self.snapshot_files);
        let reaches = self.replay().is_ok_and(|(state, _, _)| {
            let (base, term) = state
                .snapshot
                .as_ref()
                .map_or((LogIndex::ZERO, Default::default()), |s| (s.index, s.term));
            let kept = entries_after_snapshot(state.entries, base, term);
            kept.last().map_or(base, |entry| entry.index) >= self.durable.last_index()
        });
        if !reaches {
            flip(&mut self.snapshot_files);
        }
        reaches
    }

    /// Snapshot files that do not check out (recovery skips them).
    pub fn damaged_snapshots(&self) -> usize {
        let (_, skipped) = newest_valid_snapshot(&self.snapshot_files, self.owner);
        skipped.len()
    }

    /// Runs the real recovery over the durable bytes: the newest valid snapshot (with the
    /// errors of damaged ones skipped), then every segment. Returns the recovered state and
    /// the valid length of the last segment.
    pub fn replay(&self) -> Result<(DurableState, u64, Vec<WalError>), WalError> {
        let (found, skipped) = newest_valid_snapshot(&self.snapshot_files, self.owner);
        let snapshot = found.map(|(meta, image)| Snapshot {
            index: meta.index,
            term: meta.term,
            membership: meta.membership,
            image: Arc::new(image.to_vec()),
        });
        let mut log = RecoveredLog::default();
        let mut valid_length = 0;
        let last = self.active().sequence;
        for segment in &self.segments {
            let expectation = SegmentExpectation {
                owner: self.owner,
                sequence: segment.sequence,
                is_last: segment.sequence == last,
            };
            let scan = replay_segment(&segment.name(), &segment.bytes, expectation, &mut log)?;
            valid_length = scan.valid_length;
        }
        let state = DurableState {
            hard_state: log.hard_state.unwrap_or_default(),
            entries: log.entries,
            snapshot,
        };
        Ok((state, valid_length, skipped))
    }

    /// Appends the frame of `batch`, written after a log of shape `shape`, to `buffer`;
    /// returns the shape after it.
    fn encode(batch: &PersistBatch, shape: LogShape, buffer: &mut Vec<u8>) -> LogShape {
        let (records, shape) = shape
            .plan(batch.hard_state.as_ref(), &batch.entries)
            .expect("core emitted a persist batch that breaks the log's ordering rules");
        encode_frame(&records, buffer).expect("a simulated batch always fits a frame");
        shape
    }

    /// Takes in the values of a synced batch (moved, not copied: the bytes are written).
    fn mirror(&mut self, batch: PersistBatch) {
        if let Some(persist) = batch.snapshot {
            if persist.log_reset {
                self.durable.entries.clear();
            }
            self.durable.snapshot = Some(persist.snapshot);
        }
        if let Some(hard_state) = batch.hard_state {
            self.durable.hard_state = hard_state;
        }
        if let Some(first) = batch.entries.first() {
            // The entries are in index order: cut the suffix the batch overwrites.
            let kept = crate::checkers::position_from(&self.durable.entries, first.index);
            self.durable.entries.truncate(kept);
            self.durable.entries.extend(batch.entries);
        }
    }

    fn append_to_active(&mut self, frame: &[u8], index_max: Option<LogIndex>) {
        let segment = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        segment.bytes.extend_from_slice(frame);
        segment.index_max = segment.index_max.max(index_max);
    }

    /// Writes the snapshot file (the runtime: temporary file, fsync, rename, directory
    /// fsync), then the reset record if the log is discarded.
    fn write_snapshot(&mut self, snapshot: &Snapshot, log_reset: bool) {
        let meta = SnapshotMeta {
            owner: self.owner,
            index: snapshot.index,
            term: snapshot.term,
            membership: snapshot.membership.clone(),
        };
        let name = snapshot_file_name(snapshot.index, snapshot.term);
        self.snapshot_files.retain(|(held, _)| *held != name);
        self.snapshot_files
            .push((name, encode_snapshot_file(&meta, &snapshot.image)));
        if log_reset {
            let mut frame = Vec::new();
            let reset = [RecordRef::Reset {
                after: snapshot.index,
            }];
            encode_frame(&reset, &mut frame).expect("a reset record fits a frame");
            self.append_to_active(&frame, None);
            self.shape.reset(snapshot.index);
        }
    }

    /// After a snapshot is durable: a new segment (starting with the hard state), the oldest
    /// segments the previous snapshot covers deleted, two snapshot files kept.
    fn compact_files(&mut self) {
        let sequence = self.active().sequence + 1;
        let mut bytes = new_segment_bytes(self.owner, sequence).to_vec();
        let hard_state = [RecordRef::HardState(&self.durable.hard_state)];
        encode_frame(&hard_state, &mut bytes).expect("a hard state fits a frame");
        self.segments.push(Segment {
            sequence,
            bytes,
            index_max: None,
        });
        // Damaged files are neither counted nor deleted (kept for inspection, as the runtime
        // does): two *valid* snapshots are kept.
        let owner = self.owner;
        let names: Vec<String> = self
            .snapshot_files
            .iter()
            .filter(|(name, bytes)| decode_snapshot_file(name, bytes, owner).is_ok())
            .map(|(name, _)| name.clone())
            .collect();
        let delete = snapshot_files_to_delete(&names);
        self.snapshot_files
            .retain(|(name, _)| !delete.contains(name));
        let mut indexes: Vec<LogIndex> = names
            .iter()
            .filter(|name| !delete.contains(name))
            .filter_map(|name| rafting_wal::snapshot_file::parse_snapshot_file_name(name))
            .map(|(index, _)| index)
            .collect();
        indexes.sort();
        let Some(&covered) = indexes.iter().rev().nth(1) else {
            return;
        };
        while self.segments.len() > 1
            && self.segments[0]
                .index_max
                .is_some_and(|index_max| index_max <= covered)
        {
            self.segments.remove(0);
        }
    }

    fn records_of(&self, batch: &PersistBatch) -> usize {
        usize::from(batch.hard_state.is_some()) + batch.entries.len() + 1
    }
}

impl SimulatedDisk for WalDisk {
    fn write(&mut self, batch: PersistBatch) {
        self.pending.push_back(batch);
    }

    fn sync_next(&mut self) -> Option<BatchId> {
        let batch = self.pending.pop_front()?;
        if let Some(persist) = &batch.snapshot {
            self.write_snapshot(&persist.snapshot, persist.log_reset);
        }
        // Encoded straight onto the end of the segment, as the runtime writes it.
        let segment = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        self.shape = WalDisk::encode(&batch, self.shape, &mut segment.bytes);
        let index_max = batch.entries.last().map(|entry| entry.index);
        segment.index_max = segment.index_max.max(index_max);
        let (id, compact) = (batch.id, batch.snapshot.is_some());
        self.mirror(batch);
        if compact {
            self.compact_files();
        }
        Some(id)
    }

    /// A torn write of `k` records leaves the same fraction of the in-flight frame's bytes
    /// (never all of it). The runtime writes its frames over zeros laid down ahead, so what
    /// was not written reads as zeros to past the frame's end; a frame that passed the end of
    /// the file ends where the write stopped. Which of the two a crash leaves alternates with
    /// the number of records torn (no new draw, so the trace does not change). Then, as the real log does
    /// when it is opened, the torn tail is cut.
    /// A batch that carries a snapshot tears in its snapshot file, which is written first
    /// under a temporary name: recovery never sees it, and the frame was never begun.
    fn crash(&mut self, torn_records: Option<usize>) {
        let in_flight = self.pending.pop_front();
        self.pending.clear();
        let (Some(batch), Some(records)) = (in_flight, torn_records) else {
            return;
        };
        if batch.snapshot.is_some() {
            return;
        }
        let mut frame = Vec::new();
        WalDisk::encode(&batch, self.shape, &mut frame);
        let total = self.records_of(&batch).max(1);
        let kept = frame.len() * records.min(total - 1) / total;
        self.append_to_active(&frame[..kept], None);
        if records % 2 == 0 {
            let zeros = frame.len() - kept + ZEROS_PAST_A_TORN_FRAME;
            self.append_to_active(&vec![0; zeros], None);
        }
        match self.replay() {
            Ok((_, valid_length, _)) => {
                let segment = self
                    .segments
                    .last_mut()
                    .expect("a log always has a segment");
                segment.bytes.truncate(valid_length as usize);
            }
            Err(error) => panic!("a torn tail must be recoverable: {error}"),
        }
    }

    fn records_in_flight(&self) -> usize {
        self.pending
            .front()
            .map_or(0, |batch| self.records_of(batch))
    }

    /// Recovers by replaying the bytes, and checks the result against the mirrored values:
    /// the same hard state, snapshot (unless a damaged newest one was skipped) and entries
    /// after the snapshot.
    fn recover(&self) -> DurableState {
        let (state, _, skipped) = self
            .replay()
            .unwrap_or_else(|error| panic!("the simulated write-ahead log must recover: {error}"));
        assert_eq!(
            state.hard_state, self.durable.hard_state,
            "replaying the log bytes disagrees with what was synced"
        );
        if skipped.is_empty() {
            assert_eq!(
                state.snapshot, self.durable.snapshot,
                "the snapshot recovered is not the one synced"
            );
            let base = state.snapshot.as_ref().map_or(LogIndex::ZERO, |s| s.index);
            let after = |entries: &[rafting_core::raft::Entry]| -> Vec<rafting_core::raft::Entry> {
                entries.iter().filter(|e| e.index > base).cloned().collect()
            };
            assert_eq!(
                after(&state.entries),
                after(&self.durable.entries),
                "replaying the log bytes disagrees with what was synced"
            );
        }
        state
    }

    fn pending(&self) -> usize {
        self.pending.len()
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
            payload: EntryPayload::Command(format!("{index}@{term}").into_bytes().into()),
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
        assert!(error.to_string().contains("simulated-segment-1"), "{error}");
    }
}
