//! Chunked answers that stay open: a handler turns its [`super::Responder`] into a
//! [`ResponseStream`] and sends [`Chunk`]s through it from any thread, for as long as it likes.
//!
//! A chunk is framed once (`<size>\r\n<data>\r\n`) and shared: sending the same [`Chunk`] to
//! 10,000 streams costs 10,000 reference counts and socket writes, not 10,000 encodings. The
//! event loop never waits for a stream's client: a chunk that cannot be written at once is
//! kept in that connection's buffer, and a connection whose unwritten bytes already pass
//! [`super::Limits::stream_buffer_bytes_max`] when the next chunk arrives is cut (closed
//! without the terminating chunk, so its client sees a body that ended early, never a clean
//! end), as is one whose answer makes no progress for [`super::Limits::write_timeout`].

use super::event_loop::{Completion, Completions};
use mio::Token;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The bytes of one chunk of a chunked body, framed, shared between the streams it goes to.
#[derive(Debug, Clone)]
pub struct Chunk(Arc<[u8]>);

impl Chunk {
    /// Frames `data` as one chunk; empty data makes no chunk (an empty chunk would end the
    /// body), so `None`.
    pub fn new(data: &[u8]) -> Option<Chunk> {
        if data.is_empty() {
            return None;
        }
        let mut framed = Vec::with_capacity(data.len() + 12);
        framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        Some(Chunk(framed.into()))
    }

    /// The framed bytes, as written on the wire.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The chunk that ends a chunked body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// An open chunked answer. Send chunks from any thread; [`ResponseStream::end`] (or dropping
/// it) ends the body cleanly. Once the connection has closed (its client left, or it was cut
/// for falling behind), [`ResponseStream::is_open`] is false and what is sent is dropped.
pub struct ResponseStream {
    token: Token,
    completions: Arc<Completions>,
    /// Cleared by the event loop when the connection ends.
    open: Arc<AtomicBool>,
    ended: bool,
}

impl ResponseStream {
    pub(super) fn new(
        token: Token,
        completions: Arc<Completions>,
        open: Arc<AtomicBool>,
    ) -> ResponseStream {
        ResponseStream {
            token,
            completions,
            open,
            ended: false,
        }
    }

    /// Whether the connection still carries this stream.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Queues `chunk` for this stream's connection.
    pub fn send(&self, chunk: &Chunk) {
        if self.is_open() {
            self.completions
                .push(self.token, Completion::Chunk(chunk.clone()));
        }
    }

    /// Sends `last` if any, then ends the body (the connection reads its next request, or
    /// closes).
    pub fn end(mut self, last: Option<&Chunk>) {
        if let Some(chunk) = last {
            self.send(chunk);
        }
        self.finish();
    }

    fn finish(&mut self) {
        if !self.ended {
            self.ended = true;
            if self.is_open() {
                self.completions.push(self.token, Completion::End);
            }
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResponseStream")
            .field("token", &self.token.0)
            .field("open", &self.is_open())
            .finish()
    }
}
