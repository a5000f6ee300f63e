//! The write-ahead log on disk: segment files, group commit and recovery.
//!
//! The record format and the recovery rules live in `rafting-wal` as pure functions over
//! bytes (shared with the simulator's disk); this module only does the file IO around them.
//!
//! Durability rules, each one a lesson from a lost write somewhere else:
//! - [`Wal::append`] returns only once the batch is on disk: one `write` of one frame, then
//!   one `fdatasync`. The node loop reports the batch durable to core only after that.
//! - A new segment is created under a temporary name, synced, renamed and the directory
//!   synced, so a crash never leaves a segment with a missing or partial header.
//! - Frames are written over zeros laid down ahead of them, [`ZEROS_AHEAD_BYTES`] at a time
//!   by a thread of their own (`wal::zeros`) while half as many are still ahead. Only the
//!   zeros' own syncs change the file's size; the log's syncs overwrite blocks the file
//!   already has, so `fdatasync` flushes data alone and never waits for the file system's
//!   journal, which every other file operation on the disk (snapshot files, renames,
//!   removals, other processes) also goes through. The zeros are cut off a segment before the
//!   next one starts, and recovery reads them as space, not damage
//!   (`rafting_wal::replay_segment`). On this machine's disk a sync of a small write took
//!   35-40% less time at the median, and a third to a quarter of the time while another
//!   process created, synced and removed files.
//! - After a failed write or sync the log refuses every further append: the kernel may have
//!   dropped the dirty pages, so retrying could acknowledge data that is not on disk.
//! - On [`Wal::open`], every segment is verified. A torn tail at the end of the last segment
//!   is cut (on disk too); any other damage is an error naming the file and byte offset.
//!
//! Snapshots and compaction: snapshot files live beside the segments. [`Wal::persist_snapshot`]
//! writes one atomically (temporary file, fsync, rename, directory fsync) and, for a snapshot
//! installed over a log that did not continue it, then writes a reset record. A snapshot the
//! node took of its own state is written by another thread ([`Wal::snapshot_write`]) while
//! appends go on, and counts once [`Wal::snapshot_written`] says so. Once the snapshot is
//! durable, [`Wal::compact`] starts a new segment (each segment starts with the hard state
//! current when it was created, so nothing is lost), keeps the newest two snapshot files and
//! deletes the oldest segments whose entries the *previous* snapshot covers: should the newest
//! snapshot file be damaged, recovery falls back to the previous one and the log after it.
//! [`Wal::open`] loads the newest snapshot file that checks out and reports the damaged ones.

mod segment_files;
mod zeros;

pub use segment_files::release_files;
pub use zeros::ZEROS_AHEAD_BYTES;

use rafting_core::raft::{Entry, HardState, PersistSnapshot, Snapshot};
use rafting_core::{LogIndex, NodeId};
use rafting_wal::snapshot_file::{
    SnapshotMeta, decode_snapshot_file, newest_valid_snapshot, parse_snapshot_file_name,
    snapshot_file_head_and_tail, snapshot_file_name, snapshot_files_to_delete,
};
use rafting_wal::{
    Batch, ClusterId, LogOwner, LogShape, RecordRef, RecoveredLog, SEGMENT_HEADER_BYTES,
    SegmentExpectation, encode_frame, replay_segment,
};
use std::fs::File;
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rafting_wal::{WalError, WalErrorKind};

/// The smallest segment size accepted, so a misconfiguration cannot create a file per write.
pub const SEGMENT_BYTES_TARGET_MIN: u64 = 4096;

/// Where the log lives and whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalConfig {
    pub directory: PathBuf,
    pub cluster_id: ClusterId,
    pub node_id: NodeId,
    /// A segment is closed and a new one started once the next write would take it past
    /// this size (a single write larger than this still goes into one segment).
    pub segment_bytes_target: u64,
}

impl WalConfig {
    /// A configuration with the default segment size of 64 MiB.
    pub fn new(directory: impl Into<PathBuf>, cluster_id: ClusterId, node_id: NodeId) -> Self {
        WalConfig {
            directory: directory.into(),
            cluster_id,
            node_id,
            segment_bytes_target: 64 * 1024 * 1024,
        }
    }

    fn owner(&self) -> LogOwner {
        LogOwner {
            cluster_id: self.cluster_id,
            node_id: self.node_id,
        }
    }
}

/// What was durable when the log was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest hard state written, `None` for a brand-new node.
    pub hard_state: Option<HardState>,
    /// Every entry of the log, in index order, after truncations were applied.
    pub entries: Vec<Entry>,
    /// Bytes of torn tail cut off the last segment (zero after a clean shutdown).
    pub torn_tail_bytes: u64,
    /// The newest snapshot file that checks out.
    pub snapshot: Option<Snapshot>,
    /// Snapshot files that did not check out, as their errors (each names the file and
    /// offset); they were skipped, never half-read.
    pub damaged_snapshots: Vec<String>,
}

/// The segment being appended to.
#[derive(Debug)]
struct ActiveSegment {
    sequence: u64,
    path: PathBuf,
    file: File,
    /// Where its frames end: the next frame is written here.
    length: u64,
    /// Where the zeros laid down (and synced) after the frames end.
    allocated: u64,
}

/// An open write-ahead log. One owner (the node's storage thread) appends to it.
#[derive(Debug)]
pub struct Wal {
    config: WalConfig,
    first_sequence: u64,
    active: ActiveSegment,
    shape: LogShape,
    hard_state: Option<HardState>,
    /// Set after a failed write or sync; every later append is refused.
    failed: bool,
    /// Reused for every frame, so steady-state appends do not allocate.
    frame_buffer: Vec<u8>,
    /// Each segment's sequence and the log's last index when it ended (or now, for the
    /// active one), oldest first.
    segment_last: Vec<(u64, Option<LogIndex>)>,
    /// The snapshot files on disk, by name.
    snapshot_names: Vec<String>,
    /// Lays zeros down ahead of the frames (`None` if its thread could not start).
    zeros: Option<zeros::ZeroLayer>,
}

/// A snapshot file to write: see [`Wal::snapshot_write`].
#[derive(Debug)]
pub struct SnapshotWrite {
    directory: PathBuf,
    meta: SnapshotMeta,
    image: Arc<Vec<u8>>,
}

impl SnapshotWrite {
    /// Writes the file atomically (temporary file, fsync, rename, directory fsync) and
    /// returns its name.
    pub fn run(self) -> Result<String, WalError> {
        let name = snapshot_file_name(self.meta.index, self.meta.term);
        let (head, tail) = snapshot_file_head_and_tail(&self.meta, &self.image);
        let parts: [&[u8]; 3] = [&head, &self.image, &tail];
        segment_files::write_snapshot_file(&self.directory, &name, &parts)?;
        Ok(name)
    }

    pub fn index(&self) -> LogIndex {
        self.meta.index
    }

    pub fn image_bytes(&self) -> usize {
        self.image.len()
    }
}

impl Wal {
    /// Opens the log in `config.directory` (creating it for a new node), verifies every
    /// segment and returns the log with what it recovered.
    pub fn open(config: WalConfig) -> Result<(Wal, Recovered), WalError> {
        if config.segment_bytes_target < SEGMENT_BYTES_TARGET_MIN {
            return Err(WalError::InvalidBatch {
                reason: format!(
                    "segment_bytes_target {} is below the minimum {SEGMENT_BYTES_TARGET_MIN}",
                    config.segment_bytes_target
                ),
            });
        }
        let directory = config.directory.clone();
        std::fs::create_dir_all(&directory)
            .map_err(|error| WalError::io(directory.display(), "create directory", error))?;
        let sequences = segment_files::list_segments(&directory)?;
        let Some((&first_sequence, &last_sequence)) = sequences.first().zip(sequences.last())
        else {
            return Self::create_new(config);
        };
        let mut log = RecoveredLog::default();
        let mut torn_tail_bytes = 0;
        let mut last_zero_tail_bytes = 0;
        let mut last_valid_length = 0;
        let mut segment_last = Vec::with_capacity(sequences.len());
        for &sequence in &sequences {
            let path = segment_files::segment_path(&directory, sequence);
            let bytes = segment_files::read_segment(&path)?;
            let expectation = SegmentExpectation {
                owner: config.owner(),
                sequence,
                is_last: sequence == last_sequence,
            };
            let scan = replay_segment(&path.display().to_string(), &bytes, expectation, &mut log)?;
            torn_tail_bytes = scan.torn_tail_bytes;
            last_zero_tail_bytes = scan.zero_tail_bytes;
            last_valid_length = scan.valid_length;
            segment_last.push((sequence, log.shape().last_index()));
        }
        let snapshot_files = segment_files::read_snapshot_files(&directory)?;
        // Damaged files stay on disk for inspection but are neither counted among the two
        // kept nor deleted.
        let snapshot_names = snapshot_files
            .iter()
            .filter(|(name, bytes)| decode_snapshot_file(name, bytes, config.owner()).is_ok())
            .map(|(name, _)| name.clone())
            .collect();
        let (snapshot, damaged_snapshots) = newest_valid_snapshot(&snapshot_files, config.owner());
        let snapshot = snapshot.map(|(meta, image)| Snapshot {
            index: meta.index,
            term: meta.term,
            membership: meta.membership,
            image: Arc::new(image.to_vec()),
        });
        let path = segment_files::segment_path(&directory, last_sequence);
        if torn_tail_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                offset = last_valid_length,
                bytes = torn_tail_bytes,
                "cutting torn tail of the write-ahead log"
            );
            segment_files::truncate_segment(&path, last_valid_length)?;
        }
        let active = ActiveSegment {
            sequence: last_sequence,
            file: segment_files::open_for_writing(&path)?,
            path,
            length: last_valid_length,
            allocated: last_valid_length + last_zero_tail_bytes,
        };
        let wal = Wal {
            config,
            first_sequence,
            active,
            shape: log.shape(),
            hard_state: log.hard_state,
            failed: false,
            frame_buffer: Vec::new(),
            segment_last,
            snapshot_names,
            zeros: zeros::ZeroLayer::start(),
        };
        let recovered = Recovered {
            hard_state: log.hard_state,
            entries: log.entries,
            torn_tail_bytes,
            snapshot,
            damaged_snapshots: damaged_snapshots.iter().map(ToString::to_string).collect(),
        };
        Ok((wal, recovered))
    }

    fn create_new(config: WalConfig) -> Result<(Wal, Recovered), WalError> {
        const FIRST_SEQUENCE: u64 = 1;
        let (path, file) =
            segment_files::create_segment(&config.directory, config.owner(), FIRST_SEQUENCE, &[])?;
        if let Some(parent) = config
            .directory
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            segment_files::sync_directory(parent)?;
        }
        let active = ActiveSegment {
            sequence: FIRST_SEQUENCE,
            path,
            file,
            length: SEGMENT_HEADER_BYTES as u64,
            allocated: SEGMENT_HEADER_BYTES as u64,
        };
        let wal = Wal {
            config,
            first_sequence: FIRST_SEQUENCE,
            active,
            shape: LogShape::default(),
            hard_state: None,
            failed: false,
            frame_buffer: Vec::new(),
            segment_last: vec![(FIRST_SEQUENCE, None)],
            snapshot_names: Vec::new(),
            zeros: zeros::ZeroLayer::start(),
        };
        Ok((wal, Recovered::default()))
    }

    /// Writes one batch and makes it durable (one write, one fdatasync).
    pub fn append(&mut self, batch: &Batch) -> Result<(), WalError> {
        self.append_all(std::slice::from_ref(batch))
    }

    /// Writes several batches as one group commit: one frame, one write, one fdatasync.
    /// They become durable together or not at all. Returns only when they are durable.
    pub fn append_all(&mut self, batches: &[Batch]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::io(
                self.active.path.display(),
                "append",
                std::io::Error::other("an earlier write or sync failed; the log must be reopened"),
            ));
        }
        let mut shape = self.shape;
        let mut hard_state = self.hard_state;
        let mut records: Vec<RecordRef<'_>> = Vec::new();
        for batch in batches {
            let (batch_records, next_shape) = shape.plan_batch(batch)?;
            records.extend(batch_records);
            shape = next_shape;
            hard_state = batch.hard_state.or(hard_state);
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut frame = std::mem::take(&mut self.frame_buffer);
        frame.clear();
        let encoded = encode_frame(&records, &mut frame);
        let written = encoded.and_then(|()| self.write_durably(&frame));
        self.frame_buffer = frame;
        written?;
        self.shape = shape;
        self.hard_state = hard_state;
        self.note_active_last();
        Ok(())
    }

    fn note_active_last(&mut self) {
        let last = self.shape.last_index();
        if let Some(active) = self.segment_last.last_mut() {
            active.1 = last;
        }
    }

    /// Makes a snapshot durable: its file, written atomically, then (for a snapshot installed
    /// over a log that did not continue it) a reset record in the log. Call before writing
    /// the rest of its batch, and [`Wal::compact`] once the batch is durable.
    pub fn persist_snapshot(&mut self, persist: &PersistSnapshot) -> Result<(), WalError> {
        let name = self
            .snapshot_write(&persist.snapshot)
            .run()
            .inspect_err(|_| self.failed = true)?;
        self.snapshot_written(name);
        if persist.log_reset {
            let mut frame = Vec::new();
            encode_frame(
                &[RecordRef::Reset {
                    after: persist.snapshot.index,
                }],
                &mut frame,
            )?;
            self.write_durably(&frame)?;
            self.shape.reset(persist.snapshot.index);
            self.note_active_last();
        }
        Ok(())
    }

    /// The file write of a snapshot the node took of its own state, detached from the log so
    /// that another thread can do it while appends go on: the log still holds every entry the
    /// snapshot covers, and nothing is compacted until [`Wal::snapshot_written`] says the
    /// file is durable. (A snapshot installed from a leader resets the log and is written in
    /// line, by [`Wal::persist_snapshot`].)
    pub fn snapshot_write(&self, snapshot: &Snapshot) -> SnapshotWrite {
        SnapshotWrite {
            directory: self.config.directory.clone(),
            meta: SnapshotMeta {
                owner: self.config.owner(),
                index: snapshot.index,
                term: snapshot.term,
                membership: snapshot.membership.clone(),
            },
            image: snapshot.image.clone(),
        }
    }

    /// The snapshot file `name` is durable: it counts for [`Wal::compact`] from now on.
    pub fn snapshot_written(&mut self, name: String) {
        if !self.snapshot_names.contains(&name) {
            self.snapshot_names.push(name);
        }
    }

    /// After a snapshot is durable: starts a new segment, keeps the newest two snapshot files
    /// and retires the older ones and the oldest segments whose entries the previous snapshot
    /// covers. Returns the retired files, whose space [`release_files`] gives back.
    pub fn compact(&mut self) -> Result<Vec<PathBuf>, WalError> {
        self.roll_segment()?;
        let directory = self.config.directory.clone();
        let excess = snapshot_files_to_delete(&self.snapshot_names);
        let mut retired = segment_files::retire_files(&directory, &excess)?;
        self.snapshot_names.retain(|name| !excess.contains(name));
        let mut indexes: Vec<LogIndex> = self
            .snapshot_names
            .iter()
            .filter_map(|name| parse_snapshot_file_name(name))
            .map(|(index, _)| index)
            .collect();
        indexes.sort_unstable();
        let Some(&covered) = indexes.iter().rev().nth(1) else {
            return Ok(retired);
        };
        let mut deleted = Vec::new();
        while self.segment_last.len() > 1
            && self.segment_last[0].1.is_some_and(|last| last <= covered)
        {
            let (sequence, _) = self.segment_last.remove(0);
            deleted.push(segment_files::segment_file_name(sequence));
        }
        retired.extend(segment_files::retire_files(&directory, &deleted)?);
        self.first_sequence = self.segment_last[0].0;
        Ok(retired)
    }

    /// Appends `frame` to the active segment, rolling to a new one first if it would grow
    /// past the target size, and syncs it. The frame goes over zeros laid down ahead when
    /// there are any (else at the end of the file), and the next zeros are asked for when few
    /// are left.
    fn write_durably(&mut self, frame: &[u8]) -> Result<(), WalError> {
        let frame_length = frame.len() as u64;
        let has_frames = self.active.length > SEGMENT_HEADER_BYTES as u64;
        if has_frames && self.active.length + frame_length > self.config.segment_bytes_target {
            self.roll_segment()?;
        }
        let end = self.active.length + frame_length;
        self.take_zeros_laid(end);
        let active = &self.active;
        let shown = active.path.display();
        let result = active
            .file
            .write_all_at(frame, active.length)
            .map_err(|error| WalError::io(&shown, "write", error))
            .and_then(|()| {
                active
                    .file
                    .sync_data()
                    .map_err(|error| WalError::io(&shown, "fdatasync", error))
            });
        match result {
            Ok(()) => {
                self.active.length = end;
                self.active.allocated = self.active.allocated.max(end);
                self.ask_for_zeros();
                Ok(())
            }
            Err(error) => {
                self.failed = true;
                Err(error)
            }
        }
    }

    /// Takes in the zeros the layer has finished laying down; waits for them first if a
    /// frame ending at `end` would reach into the space they are being laid over.
    fn take_zeros_laid(&mut self, end: u64) {
        let Some(zeros) = &mut self.zeros else { return };
        let wait = zeros.in_flight_from().is_some_and(|from| end > from);
        if let Some(laid) = zeros.finished(wait) {
            self.active.allocated = self.active.allocated.max(laid);
        }
    }

    /// Asks for the next zeros once fewer than half a request's worth are left ahead of the
    /// frames (never past the segment's target size).
    fn ask_for_zeros(&mut self) {
        let Some(zeros) = &mut self.zeros else { return };
        let active = &self.active;
        if active.allocated - active.length >= zeros::ZEROS_LOW_BYTES {
            return;
        }
        let from = active.allocated;
        let to = (from + ZEROS_AHEAD_BYTES as u64).min(self.config.segment_bytes_target);
        zeros.request(&active.file, from..to);
    }

    /// Waits until the zeros being laid down ahead of the frames, if any, are on disk.
    pub fn wait_for_zeros_ahead(&mut self) {
        self.take_zeros_laid(u64::MAX);
    }

    /// Starts the next segment, carrying the current hard state into it so that older
    /// segments can later be deleted without losing it. Whatever follows the active
    /// segment's frames (the zeros ahead, or part of them if a write of them failed) is cut
    /// off it first: only the last segment may end in zeros.
    fn roll_segment(&mut self) -> Result<(), WalError> {
        self.wait_for_zeros_ahead();
        let file_length = self
            .active
            .file
            .metadata()
            .map_err(|error| WalError::io(self.active.path.display(), "stat", error))
            .inspect_err(|_| self.failed = true)?
            .len();
        if file_length > self.active.length {
            segment_files::truncate_segment(&self.active.path, self.active.length)
                .inspect_err(|_| self.failed = true)?;
            self.active.allocated = self.active.length;
        }
        let mut initial_frames = Vec::new();
        if let Some(hard_state) = &self.hard_state {
            encode_frame(&[RecordRef::HardState(hard_state)], &mut initial_frames)?;
        }
        let sequence = self.active.sequence + 1;
        let created = segment_files::create_segment(
            &self.config.directory,
            self.config.owner(),
            sequence,
            &initial_frames,
        );
        let (path, file) = created.inspect_err(|_| self.failed = true)?;
        self.segment_last.push((sequence, self.shape.last_index()));
        let length = (SEGMENT_HEADER_BYTES + initial_frames.len()) as u64;
        self.active = ActiveSegment {
            sequence,
            path,
            file,
            length,
            allocated: length,
        };
        Ok(())
    }

    /// The first index held, if the log holds any entry.
    pub fn first_index(&self) -> Option<LogIndex> {
        self.shape.first_index()
    }

    /// The last index held, if the log holds any entry.
    pub fn last_index(&self) -> Option<LogIndex> {
        self.shape.last_index()
    }

    /// The latest durable hard state.
    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    /// The sequence numbers of the segments on disk, oldest first; the last is being written.
    pub fn segment_sequences(&self) -> RangeInclusive<u64> {
        self.first_sequence..=self.active.sequence
    }

    /// The directory the log lives in.
    pub fn directory(&self) -> &Path {
        &self.config.directory
    }
}
