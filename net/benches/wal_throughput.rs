//! Write-ahead log throughput next to the physical limit of the same disk, in one run.
//!
//! For each batch size (1, 16, 256 entries of 100 payload bytes) it measures:
//! - raw: a plain loop appending the same number of bytes to a file and calling fdatasync,
//!   in the same directory (each sync also makes the file's new size durable);
//! - zeros: the same loop writing over zeros laid down a megabyte at a time ahead of it, as
//!   the log does (most syncs change no metadata: the best any log could do);
//! - wal: `Wal::append` of one batch per call (one write and one fdatasync each).
//!
//! Run: `cargo bench -p rafting-net --bench wal_throughput`. Set `WAL_BENCH_DIR` to measure
//! another disk and `WAL_BENCH_SECONDS` to change the time per case (default 3).

use rafting_core::raft::{Entry, EntryPayload, HardState};
use rafting_core::{LogIndex, NodeId, Term};
use rafting_net::wal::{Wal, WalConfig, ZEROS_AHEAD_BYTES};
use rafting_wal::{Batch, ClusterId};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAYLOAD_BYTES: usize = 100;
const BATCH_SIZES: [usize; 3] = [1, 16, 256];

/// Operations (batches synced) and payload bytes done in a measured interval.
struct Measurement {
    syncs: u64,
    entries: u64,
    elapsed: Duration,
}

impl Measurement {
    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }

    fn payload_megabytes_per_second(&self) -> f64 {
        self.per_second(self.entries * PAYLOAD_BYTES as u64) / 1e6
    }
}

/// The plain loop: appending to the file (`over_zeros` false) or writing over zeros laid
/// down [`ZEROS_AHEAD_BYTES`] at a time ahead of the writes.
fn measure_raw(
    directory: &Path,
    batch_size: usize,
    duration: Duration,
    over_zeros: bool,
) -> Measurement {
    let path = directory.join(format!("raw-{batch_size}-{over_zeros}"));
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .unwrap();
    let buffer = vec![b'x'; batch_size * PAYLOAD_BYTES];
    let zeros = vec![0u8; ZEROS_AHEAD_BYTES];
    let (mut length, mut allocated) = (0, 0);
    let start = Instant::now();
    let mut syncs = 0;
    while start.elapsed() < duration {
        file.write_all_at(&buffer, length).unwrap();
        length += buffer.len() as u64;
        if over_zeros && length > allocated {
            file.write_all_at(&zeros, length).unwrap();
            allocated = length + zeros.len() as u64;
        }
        file.sync_data().unwrap();
        syncs += 1;
    }
    let measurement = Measurement {
        syncs,
        entries: syncs * batch_size as u64,
        elapsed: start.elapsed(),
    };
    std::fs::remove_file(&path).unwrap();
    measurement
}

fn measure_wal(directory: &Path, batch_size: usize, duration: Duration) -> Measurement {
    let wal_directory = directory.join(format!("wal-{batch_size}"));
    let config = WalConfig::new(&wal_directory, ClusterId(1), NodeId::new(1));
    let (mut wal, _) = Wal::open(config).unwrap();
    let mut next_index = 1u64;
    // The entries are built once and renumbered per batch: the node loop receives them
    // ready-made from core, so building them is not the log's cost.
    let mut batch = Batch {
        hard_state: None,
        entries: vec![
            Entry {
                term: Term::new(1),
                index: LogIndex::ZERO,
                payload: EntryPayload::Command(vec![b'x'; PAYLOAD_BYTES].into()),
            };
            batch_size
        ],
    };
    let start = Instant::now();
    let mut syncs = 0;
    while start.elapsed() < duration {
        for entry in &mut batch.entries {
            entry.index = LogIndex::new(next_index);
            next_index += 1;
        }
        batch.hard_state = Some(HardState {
            term: Term::new(1),
            voted_for: Some(NodeId::new(1)),
            commit: LogIndex::new(next_index - 1),
        });
        wal.append(&batch).unwrap();
        syncs += 1;
    }
    let measurement = Measurement {
        syncs,
        entries: syncs * batch_size as u64,
        elapsed: start.elapsed(),
    };
    drop(wal);
    std::fs::remove_dir_all(&wal_directory).unwrap();
    measurement
}

fn bench_directory() -> PathBuf {
    std::env::var_os("WAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn main() {
    // `cargo test --benches` runs this binary too; measure only under `cargo bench`.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    let seconds: f64 = std::env::var("WAL_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    let duration = Duration::from_secs_f64(seconds);
    let root = bench_directory();
    std::fs::create_dir_all(&root).unwrap();
    let directory = tempfile::tempdir_in(&root).unwrap();
    println!(
        "directory {}, {seconds} s per case, {PAYLOAD_BYTES} B entries",
        root.display()
    );
    println!(
        "{:>6} {:>5} {:>12} {:>10} {:>12} {:>9} {:>9}",
        "batch", "kind", "entries/s", "fsyncs/s", "payload MB/s", "% of raw", "",
    );
    for batch_size in BATCH_SIZES {
        let raw = measure_raw(directory.path(), batch_size, duration, false);
        let zeros = measure_raw(directory.path(), batch_size, duration, true);
        let wal = measure_wal(directory.path(), batch_size, duration);
        for (kind, measurement) in [("raw", &raw), ("zeros", &zeros), ("wal", &wal)] {
            let ratio =
                100.0 * measurement.per_second(measurement.entries) / raw.per_second(raw.entries);
            println!(
                "{batch_size:>6} {kind:>5} {:>12.0} {:>10.0} {:>12.2} {:>8.1}%",
                measurement.per_second(measurement.entries),
                measurement.per_second(measurement.syncs),
                measurement.payload_megabytes_per_second(),
                ratio,
            );
        }
    }
}
