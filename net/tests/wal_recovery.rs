//! Recovery of the on-disk log: reopening after appends, truncation and roll-over, and the
//! clear errors for damaged or foreign files.

use rafting_core::raft::{Entry, EntryPayload, HardState};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_net::wal::{Wal, WalConfig, WalErrorKind, ZEROS_AHEAD_BYTES, release_files};
use rafting_wal::{Batch, ClusterId};
use std::fs;
use std::path::{Path, PathBuf};

fn config(directory: &Path) -> WalConfig {
    WalConfig {
        segment_bytes_target: 4096,
        ..WalConfig::new(directory, ClusterId(11), NodeId::new(1))
    }
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term::new(term),
        index: LogIndex::new(index),
        payload: EntryPayload::Command(format!("t{term}-i{index}").repeat(8).into_bytes().into()),
    }
}

fn batch(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Batch {
    Batch {
        hard_state: Some(HardState {
            term: Term::new(term),
            voted_for: Some(NodeId::new(1)),
            commit: LogIndex::new(indexes.start().saturating_sub(1)),
        }),
        entries: indexes.map(|index| entry(term, index)).collect(),
    }
}

fn segment_files(directory: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap()
        .map(|item| item.unwrap().path())
        .collect();
    paths.sort();
    paths
}

// Appends across many segments, with one overwrite of a suffix, reopen to exactly the log the
// batches describe and the latest hard state; appending continues after the reopen.
#[test]
fn reopen_recovers_appends_truncation_and_roll_over() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(recovered, Default::default());
    for start in (1..=200).step_by(10) {
        wal.append(&batch(1, start..=start + 9)).unwrap();
    }
    wal.append(&batch(2, 150..=160)).unwrap();
    assert!(
        wal.segment_sequences().count() > 3,
        "{:?}",
        wal.segment_sequences()
    );
    drop(wal);

    let (mut wal, recovered) = Wal::open(config(directory.path())).unwrap();
    let expected: Vec<Entry> = (1..150)
        .map(|index| entry(1, index))
        .chain((150..=160).map(|index| entry(2, index)))
        .collect();
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state.unwrap().commit, LogIndex::new(149));
    assert_eq!(recovered.torn_tail_bytes, 0);
    assert_eq!(wal.last_index(), Some(LogIndex::new(160)));

    wal.append(&batch(2, 161..=161)).unwrap();
    let gap = wal.append(&batch(2, 170..=170)).unwrap_err();
    assert_eq!(gap.kind(), WalErrorKind::InvalidBatch);
    drop(wal);
    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(recovered.entries.last(), Some(&entry(2, 161)));
}

// A hard state written alone survives, and a later one wins; an empty batch writes nothing.
#[test]
fn latest_hard_state_wins() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    for term in 1..=3 {
        let hard_state = HardState {
            term: Term::new(term),
            voted_for: Some(NodeId::new(term)),
            commit: LogIndex::ZERO,
        };
        wal.append(&Batch {
            hard_state: Some(hard_state),
            entries: Vec::new(),
        })
        .unwrap();
    }
    wal.append(&Batch::default()).unwrap();
    drop(wal);
    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(
        recovered.hard_state.unwrap().voted_for,
        Some(NodeId::new(3))
    );
    assert!(recovered.entries.is_empty());
}

// A byte flipped in the middle of an older segment stops recovery with an error that names
// the file and the byte offset of the damaged record.
#[test]
fn flipped_middle_byte_is_refused_with_file_and_offset() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    for start in (1..=100).step_by(5) {
        wal.append(&batch(1, start..=start + 4)).unwrap();
    }
    drop(wal);
    let first_segment = segment_files(directory.path())[0].clone();
    let mut bytes = fs::read(&first_segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(&first_segment, &bytes).unwrap();

    let error = Wal::open(config(directory.path())).unwrap_err();
    assert_eq!(error.kind(), WalErrorKind::Corrupt);
    let message = error.to_string();
    assert!(
        message.contains(&first_segment.display().to_string()),
        "{message}"
    );
    assert!(message.contains("byte offset"), "{message}");
    let offset: usize = message
        .split("byte offset ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|number| number.parse().ok())
        .unwrap();
    assert!(
        offset <= middle && middle - offset < 1024,
        "offset {offset}, flipped {middle}"
    );
}

// A tail cut in the middle of the last record recovers everything before it, and the file
// is cut on disk so the next append follows the intact records. The record is cut both ways
// a crash can cut it: its last bytes never written over the zeros laid down ahead of it, or
// (a file that grew with each write) the file itself ending early.
#[test]
fn cut_tail_recovers_and_is_truncated_on_disk() {
    for over_zeros in [true, false] {
        let directory = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
        wal.append(&batch(1, 1..=3)).unwrap();
        wal.append(&batch(1, 4..=6)).unwrap();
        drop(wal);
        let last_segment = segment_files(directory.path()).pop().unwrap();
        let mut bytes = fs::read(&last_segment).unwrap();
        let frames_end = bytes.iter().rposition(|&byte| byte != 0).unwrap() + 1;
        assert!(
            bytes.len() > frames_end,
            "zeros are laid down after the frames"
        );
        let cut = frames_end - 7;
        if over_zeros {
            bytes[cut..frames_end].fill(0);
        } else {
            bytes.truncate(cut);
        }
        fs::write(&last_segment, &bytes).unwrap();

        let (mut wal, recovered) = Wal::open(config(directory.path())).unwrap();
        assert_eq!(recovered.entries.last(), Some(&entry(1, 3)));
        assert!(recovered.torn_tail_bytes > 0);
        let cut_length = fs::metadata(&last_segment).unwrap().len();
        assert_eq!(cut_length, bytes.len() as u64 - recovered.torn_tail_bytes);
        wal.append(&batch(1, 4..=4)).unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(config(directory.path())).unwrap();
        assert_eq!(recovered.entries.last(), Some(&entry(1, 4)));
    }
}

// Frames are written over zeros laid down ahead of them: the file grows by a megabyte at
// once (laid down by a thread of the log's own), not with each write, and a reopen reads the zeros as space (no torn tail), keeps them
// and writes the next frames over them. A segment that is rolled over is cut to its frames
// first, so every older segment ends with its last frame (a reopen refuses zeros there).
#[test]
fn frames_are_written_over_zeros_laid_down_ahead_and_cut_off_at_roll_over() {
    let directory = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_bytes_target: 3 * ZEROS_AHEAD_BYTES as u64,
        ..config(directory.path())
    };
    let (mut wal, _) = Wal::open(config.clone()).unwrap();
    wal.append(&batch(1, 1..=3)).unwrap();
    wal.wait_for_zeros_ahead();
    let segment = segment_files(directory.path()).pop().unwrap();
    let grown = fs::metadata(&segment).unwrap().len();
    assert!(grown > ZEROS_AHEAD_BYTES as u64, "{grown}");
    wal.append(&batch(1, 4..=6)).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), grown);
    drop(wal);

    let (mut wal, recovered) = Wal::open(config.clone()).unwrap();
    assert_eq!(recovered.torn_tail_bytes, 0);
    assert_eq!(recovered.entries.last(), Some(&entry(1, 6)));
    assert_eq!(fs::metadata(&segment).unwrap().len(), grown);
    let large = |index: u64| Batch {
        hard_state: None,
        entries: vec![Entry {
            term: Term::new(1),
            index: LogIndex::new(index),
            payload: EntryPayload::Command(vec![index as u8 | 1; 256 * 1024].into()),
        }],
    };
    for index in 7..=30 {
        wal.append(&large(index)).unwrap();
    }
    let segments = segment_files(directory.path());
    assert!(segments.len() >= 2, "{segments:?}");
    for older in &segments[..segments.len() - 1] {
        let bytes = fs::read(older).unwrap();
        assert!(bytes.len() as u64 <= config.segment_bytes_target);
        assert_ne!(bytes.last(), Some(&0), "{} ends in zeros", older.display());
    }
    drop(wal);
    let (_, recovered) = Wal::open(config).unwrap();
    assert_eq!(recovered.torn_tail_bytes, 0);
    assert_eq!(recovered.entries.len(), 30);
    assert_eq!(recovered.entries.last().unwrap().index, LogIndex::new(30));
}

// Whatever follows a segment's frames when it is rolled over is cut off, even bytes the log
// did not lay down itself (zeros a failed write left behind on a full disk): the segment is
// measured, not trusted.
#[test]
fn a_segment_is_cut_to_its_frames_at_roll_over_whatever_follows_them() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    // The target is 4096 bytes: this batch passes it, so no zeros are laid down after it.
    wal.append(&batch(1, 1..=100)).unwrap();
    let segment = segment_files(directory.path()).pop().unwrap();
    let frames_end = fs::metadata(&segment).unwrap().len();
    assert!(frames_end > 4096, "{frames_end}");
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(frames_end + 5000).unwrap();
    wal.append(&batch(1, 101..=101)).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), frames_end);
    drop(wal);
    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(recovered.entries.len(), 101);
}

// Files that are not this node's log are refused with a clear kind: another cluster, another
// node, an empty segment, a missing segment in the sequence.
#[test]
fn foreign_empty_and_missing_segments_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    for start in (1..=300).step_by(5) {
        wal.append(&batch(1, start..=start + 4)).unwrap();
    }
    drop(wal);

    let other_cluster = WalConfig {
        cluster_id: ClusterId(12),
        ..config(directory.path())
    };
    let error = Wal::open(other_cluster).unwrap_err();
    assert_eq!(error.kind(), WalErrorKind::ForeignSegment);
    let other_node = WalConfig {
        node_id: NodeId::new(2),
        ..config(directory.path())
    };
    assert_eq!(
        Wal::open(other_node).unwrap_err().kind(),
        WalErrorKind::ForeignSegment
    );

    let segments = segment_files(directory.path());
    assert!(segments.len() >= 3);
    fs::remove_file(&segments[1]).unwrap();
    assert_eq!(
        Wal::open(config(directory.path())).unwrap_err().kind(),
        WalErrorKind::MissingSegment
    );

    fs::write(&segments[1], b"").unwrap();
    let error = Wal::open(config(directory.path())).unwrap_err();
    assert_eq!(error.kind(), WalErrorKind::BadHeader);
    assert!(error.to_string().contains("empty"), "{error}");
}

fn snapshot_at(index: u64, term: u64) -> rafting_core::raft::PersistSnapshot {
    rafting_core::raft::PersistSnapshot {
        snapshot: rafting_core::raft::Snapshot {
            index: LogIndex::new(index),
            term: Term::new(term),
            membership: rafting_core::raft::Membership::new([1, 2, 3].map(NodeId::new), []),
            image: std::sync::Arc::new(format!("image at {index}").into_bytes()),
        },
        log_reset: false,
    }
}

fn names(directory: &Path, suffix: &str) -> Vec<String> {
    segment_files(directory)
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .filter(|name| name.ends_with(suffix))
        .collect()
}

// Snapshots compact the log on disk: each one starts a new segment, the oldest segments the
// previous snapshot covers are deleted, two snapshot files are kept. A reopen loads the newest
// snapshot; with the newest damaged it reports the file and falls back to the previous one,
// and the log still covers everything after it.
#[test]
fn snapshots_compact_the_log_and_a_damaged_one_falls_back_to_the_previous() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    for (round, start) in (1..=300).step_by(10).enumerate() {
        wal.append(&batch(1, start..=start + 9)).unwrap();
        if round % 10 == 9 {
            wal.persist_snapshot(&snapshot_at(start + 9, 1)).unwrap();
            wal.compact().unwrap();
        }
    }
    assert_eq!(names(directory.path(), ".snap").len(), 2);
    drop(wal);

    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    let snapshot = recovered.snapshot.expect("a snapshot");
    assert_eq!(snapshot.index, LogIndex::new(300));
    assert!(recovered.damaged_snapshots.is_empty());
    let first = recovered.entries.first().unwrap().index.get();
    assert!(
        first > 1 && first <= 201,
        "segments up to the previous snapshot go: {first}"
    );

    let newest = directory
        .path()
        .join(names(directory.path(), ".snap").pop().unwrap());
    let mut bytes = fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    fs::write(&newest, bytes).unwrap();
    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(recovered.snapshot.unwrap().index, LogIndex::new(200));
    assert!(
        recovered.damaged_snapshots[0].contains("snapshot-"),
        "{:?}",
        recovered.damaged_snapshots
    );
    let first = recovered.entries.first().unwrap().index.get();
    assert!(
        first <= 201,
        "the log still covers what follows the previous snapshot: {first}"
    );
    assert_eq!(recovered.entries.last().unwrap().index.get(), 300);
}

// Compaction does not free the space of the files it drops on the spot (on a disk mounted
// with `discard`, unlinking tens of megabytes at once held every log sync for ~20 ms): it
// renames them out of the log's sight and returns them; `release_files` frees them a slice at
// a time, and a reopen removes any it did not get to, reading nothing from them.
#[test]
fn compaction_retires_files_that_a_release_or_a_reopen_removes() {
    let directory = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(config(directory.path())).unwrap();
    let mut retired = Vec::new();
    for (round, start) in (1..=300).step_by(10).enumerate() {
        wal.append(&batch(1, start..=start + 9)).unwrap();
        if round % 10 == 9 {
            wal.persist_snapshot(&snapshot_at(start + 9, 1)).unwrap();
            retired.extend(wal.compact().unwrap());
        }
    }
    let names: Vec<String> = retired
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(
        names.iter().any(|name| name.ends_with(".snap.retired"))
            && names.iter().any(|name| name.ends_with(".wal.retired")),
        "{names:?}"
    );
    assert!(retired.iter().all(|path| path.exists()));
    let (released, left) = retired.split_at(retired.len() / 2);
    release_files(released).unwrap();
    assert!(released.iter().all(|path| !path.exists()));
    drop(wal);

    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert!(
        left.iter().all(|path| !path.exists()),
        "a reopen removes what was left"
    );
    assert_eq!(recovered.snapshot.unwrap().index, LogIndex::new(300));
    assert!(recovered.damaged_snapshots.is_empty());
    assert_eq!(recovered.entries.last().unwrap().index.get(), 300);
}

// The storage thread writes a snapshot the node took on a thread of its own: every batch is
// still reported durable; the file appears and the log is compacted after it (two
// snapshots: the segments the first covers go), and a reopen finds the newest snapshot and
// every entry after the previous one.
#[test]
fn the_storage_thread_writes_taken_snapshots_beside_the_appends_and_compacts_after_them() {
    use rafting_core::raft::{BatchId, PersistBatch};
    use rafting_net::metrics::Metrics;
    use rafting_net::storage::{StorageReport, spawn_storage};
    use std::sync::{Arc, mpsc};
    use std::time::{Duration, Instant};

    let directory = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(directory.path())).unwrap();
    let (batches, to_store) = mpsc::channel();
    let (reports, reported) = mpsc::channel();
    let storage = spawn_storage(wal, to_store, Arc::new(Metrics::default()), move |report| {
        reports.send(report).is_ok()
    })
    .unwrap();
    // One batch at a time, each its own group (grouped, they would make one frame).
    for (sequence, start) in (1..=300).step_by(10).enumerate() {
        let sequence = sequence as u64 + 1;
        let Batch {
            hard_state,
            entries,
        } = batch(1, start..=start + 9);
        let last = start + 9;
        batches
            .send(PersistBatch {
                id: BatchId {
                    sequence,
                    last_index: LogIndex::new(last),
                    last_term: Term::new(1),
                },
                hard_state,
                entries,
                snapshot: [100, 200].contains(&last).then(|| snapshot_at(last, 1)),
            })
            .unwrap();
        match reported.recv_timeout(Duration::from_secs(10)).unwrap() {
            StorageReport::Persisted(id) => assert_eq!(id.sequence, sequence),
            StorageReport::Failed(error) => panic!("{error}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(directory.path(), ".snap").len() < 2
        || names(directory.path(), ".wal")[0] == "00000000000000000001.wal"
    {
        assert!(
            Instant::now() < deadline,
            "both snapshot files and a compaction within 10 s: {:?}",
            names(directory.path(), "")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(batches);
    storage.join().unwrap();

    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    assert_eq!(recovered.snapshot.unwrap().index, LogIndex::new(200));
    let first = recovered.entries.first().unwrap().index.get();
    assert!(
        first > 1 && first <= 101,
        "the segments up to 100 went: {first}"
    );
    assert_eq!(recovered.entries.last().unwrap().index, LogIndex::new(300));
}
