//! The storage thread: group commit of persist batches into the write-ahead log.
//!
//! The node loop hands over each batch as core emits it. The thread takes everything queued,
//! writes it as one group with one fdatasync, and only then reports the last batch durable.
//!
//! Snapshots: one installed from a leader replaces the log, so its batch splits the group:
//! what came before it is written, then the snapshot file and a reset record, then the rest.
//! One the node took of its own state changes nothing in the log: its file goes to a second
//! thread, the snapshot writer, while appends go on (a store of large values makes a file of
//! tens of megabytes, and writing it in line held every write of the cluster for most of a
//! second). Its batch is reported durable as usual: the log still holds every entry the
//! snapshot covers, and is compacted only once the writer reports the file durable. The
//! files a compaction retires are released by the same thread, a slice at a time.

use crate::metrics::Metrics;
use crate::wal::{SnapshotWrite, Wal, WalError, release_files};
use rafting_core::raft::{BatchId, PersistBatch};
use rafting_wal::Batch;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the storage thread reports back.
#[derive(Debug)]
pub enum StorageReport {
    Persisted(BatchId),
    Failed(String),
}

/// Most batches grouped into one write.
const GROUP_BATCHES_MAX: usize = 1024;

/// While the snapshot writer has a file in hand, how long the storage thread waits for a
/// batch before it looks whether the file is done (so the log is compacted without waiting
/// for the next write).
const IDLE_LOOK: Duration = Duration::from_millis(100);

pub fn spawn_storage(
    mut wal: Wal,
    batches: Receiver<PersistBatch>,
    metrics: Arc<Metrics>,
    report: impl Fn(StorageReport) -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let (jobs, written, writer) = spawn_snapshot_writer()?;
    std::thread::Builder::new()
        .name("storage".into())
        .spawn(move || {
            let failed = |error: WalError| {
                tracing::error!(%error, "writing to disk failed; the node stops persisting");
                report(StorageReport::Failed(error.to_string()));
            };
            // Snapshot files handed to the writer and not yet reported: only while there are
            // some does an idle thread wake to look.
            let mut writing = 0;
            loop {
                let first = if writing == 0 {
                    match batches.recv() {
                        Ok(batch) => Some(batch),
                        Err(_) => break,
                    }
                } else {
                    match batches.recv_timeout(IDLE_LOOK) {
                        Ok(batch) => Some(batch),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                };
                match compact_after_written(&mut wal, &written, &jobs) {
                    Ok(finished) => writing -= finished,
                    Err(error) => {
                        failed(error);
                        break;
                    }
                }
                let Some(first) = first else { continue };
                let mut group = vec![first];
                while group.len() < GROUP_BATCHES_MAX {
                    match batches.try_recv() {
                        Ok(batch) => group.push(batch),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                let last = group.last().map(|batch| batch.id).expect("non-empty group");
                let count = group.len() as u64;
                let started = Instant::now();
                match write_group(&mut wal, group, &jobs) {
                    Ok(handed) => writing += handed,
                    Err(error) => {
                        failed(error);
                        break;
                    }
                }
                metrics.observe_fsync(started.elapsed().as_micros() as u64);
                metrics
                    .batches_persisted
                    .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                if !report(StorageReport::Persisted(last)) {
                    break;
                }
            }
            // A snapshot file being written is finished before the thread ends.
            drop(jobs);
            let _ = writer.join();
        })
}

/// What the snapshot writer reports: the name of each file it made durable.
type Written = Receiver<Result<String, WalError>>;

/// What the storage thread hands the snapshot writer, done in order.
enum DiskJob {
    /// Write a snapshot file the node took, and report it.
    Write(SnapshotWrite),
    /// Give back the space of files the log retired (nothing waits for it; a failure is
    /// logged, and the files are removed when the log is next opened).
    Release(Vec<PathBuf>),
}

/// The snapshot writer: does each job it is given, in order, and reports each file written.
fn spawn_snapshot_writer() -> std::io::Result<(Sender<DiskJob>, Written, JoinHandle<()>)> {
    let (jobs, to_do) = mpsc::channel::<DiskJob>();
    let (done, written) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("snapshot-writer".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            for job in to_do {
                let write = match job {
                    DiskJob::Write(write) => write,
                    DiskJob::Release(paths) => {
                        if let Err(error) = release_files(&paths) {
                            tracing::warn!(%error, "giving back the space of retired log files failed");
                        }
                        continue;
                    }
                };
                let (index, bytes) = (write.index(), write.image_bytes());
                let started = Instant::now();
                let result = write.run();
                if result.is_ok() {
                    tracing::info!(
                        index = index.get(),
                        bytes,
                        installed = false,
                        ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                }
                if done.send(result).is_err() {
                    return;
                }
            }
        })?;
    Ok((jobs, written, writer))
}

/// Counts the snapshot files the writer finished and compacts the log after them; returns
/// how many it finished.
fn compact_after_written(
    wal: &mut Wal,
    written: &Written,
    jobs: &Sender<DiskJob>,
) -> Result<usize, WalError> {
    let mut finished = 0;
    for result in written.try_iter() {
        wal.snapshot_written(result?);
        finished += 1;
    }
    if finished > 0 {
        compact(wal, jobs)?;
    }
    Ok(finished)
}

/// Compacts the log and hands the files it retired to the snapshot writer to release.
fn compact(wal: &mut Wal, jobs: &Sender<DiskJob>) -> Result<(), WalError> {
    let started = Instant::now();
    let retired = wal.compact()?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "log compacted");
    if !retired.is_empty() {
        send(wal, jobs, DiskJob::Release(retired))?;
    }
    Ok(())
}

fn send(wal: &Wal, jobs: &Sender<DiskJob>, job: DiskJob) -> Result<(), WalError> {
    jobs.send(job).map_err(|_| {
        let stopped = std::io::Error::other("the snapshot writer stopped");
        WalError::io(
            wal.directory().display(),
            "hand over to the snapshot writer",
            stopped,
        )
    })
}

/// Writes a group of batches in order: runs of plain batches as one frame each, an installed
/// snapshot's file and reset record before the batch that carries it (compacting once the
/// group is durable), and a taken snapshot's file handed to the writer. Returns how many files
/// it handed to the writer.
fn write_group(
    wal: &mut Wal,
    group: Vec<PersistBatch>,
    jobs: &Sender<DiskJob>,
) -> Result<usize, WalError> {
    let mut records: Vec<Batch> = Vec::with_capacity(group.len());
    let mut compact_now = false;
    let mut handed = 0;
    for batch in group {
        match &batch.snapshot {
            Some(persist) if persist.log_reset => {
                wal.append_all(&records)?;
                records.clear();
                let started = Instant::now();
                wal.persist_snapshot(persist)?;
                tracing::info!(
                    index = persist.snapshot.index.get(),
                    bytes = persist.snapshot.image.len(),
                    installed = true,
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                compact_now = true;
            }
            Some(persist) => {
                send(
                    wal,
                    jobs,
                    DiskJob::Write(wal.snapshot_write(&persist.snapshot)),
                )?;
                handed += 1;
            }
            None => {}
        }
        records.push(Batch {
            hard_state: batch.hard_state,
            entries: batch.entries,
        });
    }
    wal.append_all(&records)?;
    if compact_now {
        compact(wal, jobs)?;
    }
    Ok(handed)
}
