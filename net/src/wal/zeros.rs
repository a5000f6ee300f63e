//! Laying zeros down ahead of the log's frames, on a thread of its own (`log-zeros`).
//!
//! The log writes its frames over zeros so that its syncs change no file metadata (see the
//! log's rules). Laying a megabyte of zeros down and syncing it takes the disk 1-2 ms; done by
//! the group commit that found the zeros used up, it made that commit (and every write in
//! it) wait as long, every four frames of 256 KiB. Here the log asks for the next megabyte
//! while half a megabyte is still ahead, and goes on writing frames below it meanwhile.
//!
//! The zeros never touch a frame: a request covers only space past the frames and the zeros
//! already there, and a frame that would reach into the space of a request in flight waits
//! for it first. Dropping the layer waits for the request in flight, so nothing is written to
//! a segment after its log is gone (or rolled over: the log waits before it cuts a segment).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

/// Zeros laid down per request.
pub const ZEROS_AHEAD_BYTES: usize = 1024 * 1024;
static ZEROS: [u8; ZEROS_AHEAD_BYTES] = [0; ZEROS_AHEAD_BYTES];

/// When fewer zeros than this are left ahead of the frames, the next ones are asked for.
pub const ZEROS_LOW_BYTES: u64 = ZEROS_AHEAD_BYTES as u64 / 2;

struct Request {
    file: File,
    space: Range<u64>,
}

/// The thread and the request in flight.
pub struct ZeroLayer {
    requests: Option<Sender<Request>>,
    done: Receiver<Option<u64>>,
    in_flight: Option<Range<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl ZeroLayer {
    /// Starts the thread; `None` if the system will not start one (the log then writes its
    /// frames at the end of the file, as without zeros).
    pub fn start() -> Option<ZeroLayer> {
        let (requests, to_do) = mpsc::channel::<Request>();
        let (report, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("log-zeros".into())
            .spawn(move || {
                for Request { file, space } in to_do {
                    let length = (space.end - space.start) as usize;
                    let laid = file
                        .write_all_at(&ZEROS[..length.min(ZEROS_AHEAD_BYTES)], space.start)
                        .and_then(|()| file.sync_data());
                    if report.send(laid.ok().map(|()| space.end)).is_err() {
                        return;
                    }
                }
            })
            .inspect_err(|error| tracing::warn!(%error, "the log writes without zeros ahead"))
            .ok()?;
        Some(ZeroLayer {
            requests: Some(requests),
            done,
            in_flight: None,
            thread: Some(thread),
        })
    }

    /// Asks for zeros over `space` of `file`, unless a request is already in flight.
    pub fn request(&mut self, file: &File, space: Range<u64>) {
        if self.in_flight.is_some() || space.is_empty() {
            return;
        }
        let (Some(requests), Ok(file)) = (&self.requests, file.try_clone()) else {
            return;
        };
        let request = Request {
            file,
            space: space.clone(),
        };
        if requests.send(request).is_ok() {
            self.in_flight = Some(space);
        }
    }

    /// Where the space of the request in flight starts, if one is.
    pub fn in_flight_from(&self) -> Option<u64> {
        self.in_flight.as_ref().map(|space| space.start)
    }

    /// The end of the zeros the request in flight laid down and synced, once it has finished
    /// (`None` while it has not, or if it failed). With `wait`, waits for it to finish.
    pub fn finished(&mut self, wait: bool) -> Option<u64> {
        self.in_flight.as_ref()?;
        let reported = if wait {
            self.done.recv().ok()
        } else {
            self.done.try_recv().ok()
        };
        let laid = reported?;
        self.in_flight = None;
        laid
    }
}

impl std::fmt::Debug for ZeroLayer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ZeroLayer")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Drop for ZeroLayer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A request lays zeros over its space and syncs them; a second one waits its turn.
    #[test]
    fn zeros_are_laid_over_the_space_asked_for() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("segment");
        std::fs::write(&path, b"frames").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut layer = ZeroLayer::start().unwrap();
        layer.request(&file, 6..1006);
        assert_eq!(layer.in_flight_from(), Some(6));
        layer.request(&file, 1006..2006);
        assert_eq!(layer.finished(true), Some(1006));
        assert_eq!(layer.in_flight_from(), None);
        assert_eq!(layer.finished(true), None);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"frames");
        assert_eq!(bytes.len(), 1006);
        assert!(bytes[6..].iter().all(|&byte| byte == 0));
    }
}
