//! The storage thread: group commit of persist batches into the write-ahead log.
//!
//! The node loop hands over each batch as core emits it. The thread takes everything queued,
//! writes it as one group with one fdatasync, and only then reports the last batch durable.

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
            let records: Vec<Batch> = group
                .into_iter()
                .map(|batch| Batch { hard_state: batch.hard_state, entries: batch.entries })
                .collect();
            let started = Instant::now();
            if let Err(error) = wal.append_all(&records) {
                tracing::error!(%error, "write-ahead log append failed; the node stops persisting");
                report(StorageReport::Failed(error.to_string()));
                return;
            }
            metrics.observe_fsync(started.elapsed().as_micros() as u64);
            metrics
                .batches_persisted
                .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if !report(StorageReport::Persisted(last)) {
                return;
            }
        }
    })
}
