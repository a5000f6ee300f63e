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
//! snapshot covers, and is compacted only once the writer reports the file durable.

use crate::metrics::Metrics;
use crate::wal::{SnapshotWrite, Wal, WalError};
use rafting_core::raft::{BatchId, PersistBatch};
use rafting_wal::Batch;
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
    let (writes, written, writer) = spawn_snapshot_writer()?;
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
                match compact_after_written(&mut wal, &written) {
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
                match write_group(&mut wal, group, &writes) {
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
            drop(writes);
            let _ = writer.join();
        })
}

/// What the snapshot writer reports: the name of each file it made durable.
type Written = Receiver<Result<String, WalError>>;

/// The snapshot writer: writes each file it is given, in order, and reports each result.
fn spawn_snapshot_writer() -> std::io::Result<(Sender<SnapshotWrite>, Written, JoinHandle<()>)> {
    let (writes, to_write) = mpsc::channel::<SnapshotWrite>();
    let (done, written) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("snapshot-writer".into())
        .spawn(move || {
            for write in to_write {
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
    Ok((writes, written, writer))
}

/// Counts the snapshot files the writer finished and compacts the log after them; returns
/// how many it finished.
fn compact_after_written(wal: &mut Wal, written: &Written) -> Result<usize, WalError> {
    let mut finished = 0;
    for result in written.try_iter() {
        wal.snapshot_written(result?);
        finished += 1;
    }
    if finished > 0 {
        compact(wal)?;
    }
    Ok(finished)
}

fn compact(wal: &mut Wal) -> Result<(), WalError> {
    let started = Instant::now();
    wal.compact()?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "log compacted");
    Ok(())
}

/// Writes a group of batches in order: runs of plain batches as one frame each, an installed
/// snapshot's file and reset record before the batch that carries it (compacting once the
/// group is durable), and a taken snapshot's file handed to the writer. Returns how many files
/// it handed to the writer.
fn write_group(
    wal: &mut Wal,
    group: Vec<PersistBatch>,
    writes: &Sender<SnapshotWrite>,
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
                let write = wal.snapshot_write(&persist.snapshot);
                writes.send(write).map_err(|_| {
                    let stopped = std::io::Error::other("the snapshot writer stopped");
                    WalError::io(wal.directory().display(), "write a snapshot", stopped)
                })?;
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
        compact(wal)?;
    }
    Ok(handed)
}
