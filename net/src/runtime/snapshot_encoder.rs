//! The snapshot encoder: a thread that turns the copies of the store the replica hands over
//! (`Output::snapshot_to_encode`) into snapshot images, off the node loop.
//!
//! Encoding a store of tens of megabytes takes tens of milliseconds; in the node loop it held
//! every request, heartbeat and append of the node for that long, every few seconds under a
//! tenant writing large values. Here the loop only hands the copy over and goes on; the image
//! comes back as an event and the node makes it durable as before (the log is compacted only
//! once the file is).

use super::Event;
use rafting_core::replica::SnapshotJob;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

/// Starts the encoder; each image goes back to the node loop through `events`. The thread
/// ends when the returned sender is dropped (the node loop is gone) or the loop stops taking
/// events.
pub(super) fn spawn(
    events: SyncSender<Event>,
) -> std::io::Result<(Sender<SnapshotJob>, JoinHandle<()>)> {
    let (jobs, to_encode) = mpsc::channel::<SnapshotJob>();
    let thread = std::thread::Builder::new()
        .name("snapshot-encoder".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            for job in to_encode {
                let started = Instant::now();
                let image = job.encode();
                tracing::debug!(
                    index = job.index.get(),
                    bytes = image.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot encoded"
                );
                let encoded = Event::SnapshotEncoded {
                    index: job.index,
                    image,
                };
                if events.send(encoded).is_err() {
                    return;
                }
            }
        })?;
    Ok((jobs, thread))
}
