//! A log whose file cannot grow any more (a full disk, a file-size limit) still takes every
//! frame that fits: the zeros it lays down ahead of its frames are a convenience, so when
//! there is no room for them the frame is written and synced without them. The child is this
//! test binary, re-executed under a file-size limit (`RLIMIT_FSIZE`, with `SIGXFSZ` ignored so
//! a write past it fails with `EFBIG` instead of killing the process).

use rafting_core::raft::{Entry, EntryPayload, HardState};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_net::wal::{Wal, WalConfig, ZEROS_AHEAD_BYTES};
use rafting_wal::{Batch, ClusterId};
use std::path::Path;
use std::process::Command;

const CHILD_DIRECTORY_VARIABLE: &str = "RAFTING_WAL_FILE_LIMIT_CHILD_DIRECTORY";
/// The largest file the child may write: room for the first zeros ahead, not the second.
const FILE_LIMIT_BYTES: u64 = ZEROS_AHEAD_BYTES as u64 * 3 / 2;
const PAYLOAD_BYTES: usize = 1000;

fn config(directory: &Path) -> WalConfig {
    WalConfig {
        segment_bytes_target: 64 * 1024 * 1024,
        ..WalConfig::new(directory, ClusterId(6), NodeId::new(1))
    }
}

fn batch(index: u64) -> Batch {
    Batch {
        hard_state: Some(HardState {
            term: Term::new(1),
            voted_for: None,
            commit: LogIndex::new(index - 1),
        }),
        entries: vec![Entry {
            term: Term::new(1),
            index: LogIndex::new(index),
            payload: EntryPayload::Command(vec![index as u8 | 1; PAYLOAD_BYTES].into()),
        }],
    }
}

// The child side: under the limit, append until the log refuses, and say how many it took.
#[test]
fn file_limit_child_process() {
    let Ok(directory) = std::env::var(CHILD_DIRECTORY_VARIABLE) else {
        return;
    };
    let limit = libc::rlimit {
        rlim_cur: FILE_LIMIT_BYTES,
        rlim_max: FILE_LIMIT_BYTES,
    };
    // SAFETY: plain system calls on this process, which runs this one test.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let (mut wal, _) = Wal::open(config(Path::new(&directory))).unwrap();
    let mut taken = 0;
    while wal.append(&batch(taken + 1)).is_ok() {
        taken += 1;
    }
    println!("taken {taken}");
}

#[test]
fn a_log_that_cannot_grow_takes_every_frame_that_fits() {
    let directory = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "file_limit_child_process", "--nocapture"])
        .env(CHILD_DIRECTORY_VARIABLE, directory.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let taken: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("taken "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout}"));

    let (_, recovered) = Wal::open(config(directory.path())).unwrap();
    // Every frame acknowledged is there; of the refused one, at most a part the limit cut
    // (a torn tail, cut at the reopen).
    assert_eq!(recovered.entries.len() as u64, taken);
    assert!(recovered.torn_tail_bytes < PAYLOAD_BYTES as u64 + 100);
    // Each frame holds one entry of PAYLOAD_BYTES and a little more: the frames fill the file
    // up to its limit, not one megabyte of zeros short of it.
    let frames_fit = FILE_LIMIT_BYTES / (PAYLOAD_BYTES as u64 + 100);
    assert!(
        taken >= frames_fit,
        "took {taken} frames, {frames_fit} fit under {FILE_LIMIT_BYTES} bytes"
    );
}
