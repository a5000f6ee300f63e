//! The storage thread: group commit of persist batches into the write-ahead log.
//!
//! The node loop hands over each batch as core emits it. The thread takes everything queued,
//! writes it as one group with one fdatasync, and only then reports the last batch durable.
//! A batch that carries a snapshot splits the group: what came before it is written, then
//! the snapshot file, then the rest; once all is durable the log is compacted.

use crate::metrics::Metrics;
use crate::wal::Wal;
use rafting_core::raft::{BatchId, PersistBatch};
use rafting_wal::Batch;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

/// What the storage thread reports back.
#[derive(Debug)]
pub enum StorageReport {
    Persisted(BatchId),
    Failed(String),
}

/// Most batches grouped into one write.
const GROUP_BATCHES_MAX: usize = 1024;

pub fn spawn_storage(
    mut wal: Wal,
    batches: Receiver<PersistBatch>,
    metrics: Arc<Metrics>,
    report: impl Fn(StorageReport) -> bool + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("storage".into()).spawn(move || {
        while let Ok(first) = batches.recv() {
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
            if let Err(error) = write_group(&mut wal, group) {
                tracing::error!(%error, "write-ahead log append failed; the node stops persisting");
                report(StorageReport::Failed(error.to_string()));
                return;
            }
            metrics.observe_fsync(started.elapsed().as_micros() as u64);
            metrics
                .batches_persisted
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            if !report(StorageReport::Persisted(last)) {
                return;
            }
        }
    })
}

/// Writes a group of batches in order: runs of plain batches as one frame each, a snapshot
/// file (and its reset record) before the batch that carries it, and compacts the log once a
/// snapshot and everything before it are durable.
fn write_group(wal: &mut Wal, group: Vec<PersistBatch>) -> Result<(), rafting_wal::WalError> {
    let mut records: Vec<Batch> = Vec::with_capacity(group.len());
    let mut compact = false;
    for batch in group {
        if let Some(persist) = &batch.snapshot {
            wal.append_all(&records)?;
            records.clear();
            wal.persist_snapshot(persist)?;
            tracing::info!(
                index = persist.snapshot.index.get(),
                bytes = persist.snapshot.image.len(),
                installed = persist.log_reset,
                "snapshot written"
            );
            compact = true;
        }
        records.push(Batch {
            hard_state: batch.hard_state,
            entries: batch.entries,
        });
    }
    wal.append_all(&records)?;
    if compact {
        wal.compact()?;
    }
    Ok(())
}
