//! One connection's state in the event loop: what it waits for, the bytes read and not yet
//! used, the answer not yet written. Every step is non-blocking: [`Connection::drive`] goes as
//! far as the socket allows and says whether to keep the connection.

use super::chunked::ChunkedBody;
use super::idle::IdleTicket;
use super::stream::{Chunk, LAST_CHUNK};
use super::{
    ConnectionState, Framing, Head, HttpError, LINGER, LINGER_BYTES_MAX, Request, RequestHead,
    Response, Screened, Shared, body_ended_early, encode, encode_stream_head, parse_head,
};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// An output buffer larger than this is given back once written.
const OUTPUT_KEPT_BYTES: usize = 64 * 1024;

/// What the loop needs while it drives a connection.
pub(super) struct Context<'a> {
    pub(super) shared: &'a Shared,
    pub(super) now: Instant,
    /// Scratch space for reads, shared by every connection.
    pub(super) read_buffer: &'a mut [u8],
}

impl Context<'_> {
    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }
}

/// Whether the loop keeps a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Keep,
    Close,
}

/// What a connection waits for.
enum Phase {
    /// The first byte of a request (evictable while its answer is written).
    Idle { since: Instant },
    /// The rest of a request head whose first byte came at `started`.
    Head { started: Instant },
    /// The body of a request whose head is read.
    Body {
        head: Head,
        started: Instant,
        chunked: Option<ChunkedBody>,
    },
    /// A worker has the request; nothing is read until its answer is written.
    Working { keep_alive: bool, head_only: bool },
    /// The answer is a stream that stays open ([`super::Responder::stream`]): its chunks are
    /// written as they come; what the client sends meanwhile is read only to notice that it
    /// left, and dropped.
    Streaming { keep_alive: bool },
    /// An answer given from the head ([`super::Handler::screen`]), held until `until`.
    Holding { until: Instant, answer: HeldAnswer },
    /// The body of a request answered from its head, `left` bytes to read and drop.
    Discarding { left: usize, started: Instant },
    /// Once the answer is written: shut the writing side, then linger.
    LingerNext,
    /// Reads and drops what the client still sends, until `until` ([`LINGER`]).
    Lingering { until: Instant, drained: usize },
    /// Once the answer is written: close.
    Closing,
}

/// An answer from a request's head, and what follows it.
struct HeldAnswer {
    response: Response,
    /// The body to read and drop after the answer; `None`: close instead.
    body_to_drop: Option<usize>,
    keep_alive: bool,
    head_only: bool,
    started: Instant,
}

/// How a read went.
enum Received {
    Bytes(usize),
    WouldBlock,
    Ended,
}

/// Where the body of a request stands.
enum BodyProgress {
    Whole(Vec<u8>),
    /// More bytes are needed, at most this many.
    Needs(usize),
    Failed(HttpError),
}

/// What one step of [`Connection::drive`] leads to.
enum Step {
    Again,
    Wait,
    Close,
}

pub(super) struct Connection {
    stream: TcpStream,
    phase: Phase,
    /// Bytes received and not yet used (the start of a pipelined request, say).
    pending: Vec<u8>,
    /// Bytes of `pending` already parsed without finding a whole head. A head only completes
    /// with a new line ending, so one trickled a byte at a time is not parsed again for every
    /// byte.
    parsed: Option<usize>,
    /// The answer being written, and how much of it is.
    output: Vec<u8>,
    written: usize,
    /// When the answer being written last made progress.
    output_progress: Instant,
    requests_served: u64,
    /// The handler's state for this connection ([`super::Handler::screen`]).
    state: ConnectionState,
    /// A request read whole, for the loop to hand to a worker.
    pub(super) ready: Option<Request>,
    /// The open flag of the stream it carries, cleared when the stream or the connection
    /// ends.
    stream_open: Option<Arc<AtomicBool>>,
    /// The connection's place in the idle set, while evictable.
    pub(super) idle_ticket: Option<IdleTicket>,
    /// The deadline the loop's timers hold for it.
    pub(super) timer: Option<Instant>,
    /// Whether the socket may have bytes to read: set by a readiness event, cleared when a
    /// read would block. Readiness is edge-triggered, so without a new event since the last
    /// read that would block there is nothing to read, and the read is skipped (writing
    /// 10,000 answers at once costs 10,000 writes, not also 10,000 reads).
    pub(super) readable: bool,
    /// Its client shut its side of the connection (or it broke) while a request was worked
    /// on: the answer is still written (a client may half-close after its request), then
    /// the connection closes; meanwhile a newcomer at the cap may evict it (a long poll
    /// whose client hung up would otherwise hold its place until the poll times out).
    peer_closed: bool,
}

impl Connection {
    pub(super) fn new(stream: TcpStream, now: Instant) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            phase: Phase::Idle { since: now },
            pending: Vec::new(),
            parsed: None,
            output: Vec::new(),
            written: 0,
            output_progress: now,
            requests_served: 0,
            state: None,
            ready: None,
            stream_open: None,
            idle_ticket: None,
            timer: None,
            readable: true,
            peer_closed: false,
        }
    }

    pub(super) fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Whether a newcomer at the cap may evict it: it waits for a request, with nothing
    /// read of one and nothing left to write; or its client hung up while its request is
    /// worked on.
    pub(super) fn evictable(&self) -> bool {
        let waiting = matches!(self.phase, Phase::Idle { .. })
            && self.pending.is_empty()
            && self.output.is_empty();
        waiting || (self.peer_closed && matches!(self.phase, Phase::Working { .. }))
    }

    /// Whether it has served a request (an idle one is then evicted after the unused ones).
    pub(super) fn used(&self) -> bool {
        self.requests_served > 0
    }

    /// Answers a connection turned away or a request that cannot be read, then closes after
    /// lingering.
    pub(super) fn refuse(&mut self, error: &HttpError, context: &Context<'_>) {
        tracing::debug!(%error, "HTTP request refused");
        let response = context.shared.handler.refuse(error);
        self.queue(&response, false, false, context.now);
        self.phase = Phase::LingerNext;
    }

    /// Answers a connection beyond the cap and closes it once the answer is written.
    pub(super) fn turn_away(&mut self, error: &HttpError, context: &Context<'_>) {
        let response = context.shared.handler.refuse(error);
        self.queue(&response, false, false, context.now);
        self.phase = Phase::Closing;
    }

    /// The answer to the request a worker had.
    pub(super) fn complete(&mut self, response: &Response, context: &Context<'_>) {
        let Phase::Working {
            keep_alive,
            head_only,
        } = self.phase
        else {
            return;
        };
        let keep_alive = keep_alive && !context.stopping() && !self.peer_closed;
        self.queue(response, keep_alive, head_only, context.now);
        self.phase = if keep_alive {
            Phase::Idle { since: context.now }
        } else {
            Phase::Closing
        };
    }

    /// Writes the head of a streamed answer to the request a worker had; its chunks follow.
    pub(super) fn open_stream(
        &mut self,
        head: &Response,
        open: Arc<AtomicBool>,
        context: &Context<'_>,
    ) {
        let Phase::Working {
            keep_alive,
            head_only,
        } = self.phase
        else {
            open.store(false, Ordering::Relaxed);
            return;
        };
        if head_only {
            // A `HEAD` request gets the head alone: the stream ends at once.
            open.store(false, Ordering::Relaxed);
            self.queue(head, keep_alive, true, context.now);
            self.phase = if keep_alive && !context.stopping() {
                Phase::Idle { since: context.now }
            } else {
                Phase::Closing
            };
            return;
        }
        if self.output.is_empty() {
            self.output_progress = context.now;
        }
        encode_stream_head(&mut self.output, head);
        self.stream_open = Some(open);
        self.phase = Phase::Streaming { keep_alive };
    }

    /// Queues one chunk of the stream it carries, or cuts the connection when its client is
    /// too slow: the bytes it has not taken yet pass the bound.
    pub(super) fn stream_chunk(&mut self, chunk: &Chunk, context: &Context<'_>) -> Flow {
        if !matches!(self.phase, Phase::Streaming { .. }) {
            return Flow::Keep;
        }
        let unwritten = self.output.len() - self.written;
        if unwritten > context.shared.limits.stream_buffer_bytes_max {
            tracing::debug!(unwritten, "cutting a stream whose client does not keep up");
            return Flow::Close;
        }
        let bytes = chunk.bytes();
        if self.output.is_empty() {
            self.output_progress = context.now;
            // The common case: the socket takes the whole chunk, straight from the shared
            // bytes, and nothing is copied.
            let mut sent = 0;
            while sent < bytes.len() {
                match self.stream.write(&bytes[sent..]) {
                    Ok(0) => return Flow::Close,
                    Ok(written) => sent += written,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Flow::Close,
                }
            }
            self.output.extend_from_slice(&bytes[sent..]);
        } else {
            self.output.extend_from_slice(bytes);
        }
        Flow::Keep
    }

    /// Ends the body of the stream it carries; then reads the next request, or closes.
    pub(super) fn end_stream(&mut self, context: &Context<'_>) {
        let Phase::Streaming { keep_alive } = self.phase else {
            return;
        };
        if let Some(open) = self.stream_open.take() {
            open.store(false, Ordering::Relaxed);
        }
        if self.output.is_empty() {
            self.output_progress = context.now;
        }
        self.output.extend_from_slice(LAST_CHUNK);
        self.phase = if keep_alive && !context.stopping() {
            Phase::Idle { since: context.now }
        } else {
            Phase::Closing
        };
    }

    /// While its request is worked on: reads on, to notice a client that hangs up. Bytes of
    /// a pipelined next request are kept for later, up to a head's worth.
    fn notice_departure(&mut self, context: &mut Context<'_>) -> Step {
        let room = (context.shared.limits.head_bytes_max + 1).saturating_sub(self.pending.len());
        if self.peer_closed || room == 0 {
            return Step::Wait;
        }
        match self.read(context, room) {
            Received::Bytes(_) => Step::Again,
            Received::WouldBlock => Step::Wait,
            Received::Ended => {
                self.peer_closed = true;
                Step::Wait
            }
        }
    }

    /// While streaming: reads what the client sends only to notice that it left (a client
    /// that sends while its stream is open gets nothing for it).
    fn watch_stream_client(&mut self, context: &mut Context<'_>) -> Step {
        let read = self.read(context, usize::MAX);
        self.pending.clear();
        match read {
            Received::Bytes(_) => Step::Again,
            Received::WouldBlock => Step::Wait,
            Received::Ended => Step::Close,
        }
    }

    /// When the loop must look at it again if nothing happens: a timeout of what it waits
    /// for, or of the answer it cannot write.
    pub(super) fn deadline(&self, shared: &Shared) -> Option<Instant> {
        let limits = &shared.limits;
        if !self.output.is_empty() {
            return Some(self.output_progress + limits.write_timeout);
        }
        match &self.phase {
            Phase::Idle { since } => Some(*since + limits.idle_timeout),
            Phase::Head { started } => Some(*started + limits.head_timeout),
            Phase::Body { started, .. } | Phase::Discarding { started, .. } => {
                Some(*started + limits.request_timeout)
            }
            Phase::Holding { until, .. } | Phase::Lingering { until, .. } => Some(*until),
            Phase::Working { .. }
            | Phase::Streaming { .. }
            | Phase::LingerNext
            | Phase::Closing => None,
        }
    }

    /// Its deadline has passed: acts on the timeout, then drives it.
    pub(super) fn on_timer(&mut self, context: &mut Context<'_>) -> Flow {
        let Some(deadline) = self.deadline(context.shared) else {
            return self.drive(context);
        };
        if deadline > context.now {
            return self.drive(context);
        }
        if !self.output.is_empty() {
            tracing::debug!("closing an HTTP connection whose client does not read its answer");
            return Flow::Close;
        }
        let limits = &context.shared.limits;
        match std::mem::replace(&mut self.phase, Phase::Closing) {
            Phase::Idle { .. } | Phase::Lingering { .. } => return Flow::Close,
            Phase::Head { .. } => self.refuse(&HttpError::Timeout(limits.head_timeout), context),
            Phase::Body { .. } => self.refuse(&HttpError::Timeout(limits.request_timeout), context),
            Phase::Discarding { .. } => self.phase = Phase::LingerNext,
            Phase::Holding { answer, .. } => self.answer_screened(answer, context),
            other => self.phase = other,
        }
        self.drive(context)
    }

    /// Goes as far as the socket allows: writes what is queued, then reads and parses.
    pub(super) fn drive(&mut self, context: &mut Context<'_>) -> Flow {
        loop {
            if !self.output.is_empty() {
                match self.flush(context.now) {
                    Step::Again => {}
                    Step::Wait => return Flow::Keep,
                    Step::Close => return Flow::Close,
                }
            }
            let step = match self.phase {
                Phase::Idle { .. } | Phase::Head { .. } => self.read_head(context),
                Phase::Body { .. } => self.read_body(context),
                Phase::Working { .. } => self.notice_departure(context),
                Phase::Holding { .. } => Step::Wait,
                Phase::Streaming { .. } => self.watch_stream_client(context),
                Phase::Discarding { .. } => self.discard(context),
                Phase::LingerNext => {
                    let _ = self.stream.shutdown(Shutdown::Write);
                    self.phase = Phase::Lingering {
                        until: context.now + LINGER,
                        drained: 0,
                    };
                    Step::Again
                }
                Phase::Lingering { .. } => self.linger(context),
                Phase::Closing => Step::Close,
            };
            match step {
                Step::Again => {}
                Step::Wait => return Flow::Keep,
                Step::Close => return Flow::Close,
            }
        }
    }

    fn queue(&mut self, response: &Response, keep_alive: bool, head_only: bool, now: Instant) {
        if self.output.is_empty() {
            self.output_progress = now;
        }
        encode(&mut self.output, response, keep_alive, head_only);
    }

    /// Writes what the socket takes. `Again`: all written.
    fn flush(&mut self, now: Instant) -> Step {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Step::Close,
                Ok(written) => {
                    self.written += written;
                    self.output_progress = now;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Close,
            }
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > OUTPUT_KEPT_BYTES {
            self.output = Vec::new();
        }
        Step::Again
    }

    /// Reads what the socket has into `pending`, at most `wanted` bytes.
    fn read(&mut self, context: &mut Context<'_>, wanted: usize) -> Received {
        if !self.readable {
            return Received::WouldBlock;
        }
        let room = wanted.clamp(1, context.read_buffer.len());
        loop {
            match self.stream.read(&mut context.read_buffer[..room]) {
                Ok(0) => return Received::Ended,
                Ok(read) => {
                    self.pending.extend_from_slice(&context.read_buffer[..read]);
                    // Less than asked for: the socket is drained for now. Its next bytes (or
                    // its end) raise a new readiness event, so the read that would only say
                    // `WouldBlock` is skipped (a third of all reads under load).
                    if read < room {
                        self.readable = false;
                    }
                    return Received::Bytes(read);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Received::WouldBlock;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Received::Ended,
            }
        }
    }

    fn read_head(&mut self, context: &mut Context<'_>) -> Step {
        if let Phase::Idle { .. } = self.phase {
            if !self.pending.is_empty() {
                self.phase = Phase::Head {
                    started: context.now,
                };
            } else if context.stopping() {
                return Step::Close;
            }
        }
        if let Phase::Head { started } = self.phase {
            let head_bytes_max = context.shared.limits.head_bytes_max;
            let worth_parsing = match self.parsed {
                None => true,
                Some(length) => {
                    self.pending[length..].contains(&b'\n') || self.pending.len() > head_bytes_max
                }
            };
            if worth_parsing {
                match parse_head(&self.pending, head_bytes_max) {
                    Ok(Some((head, head_bytes))) => {
                        self.pending.drain(..head_bytes);
                        self.parsed = None;
                        self.on_head(head, started, context);
                        return Step::Again;
                    }
                    Ok(None) => self.parsed = Some(self.pending.len()),
                    Err(error) => {
                        self.refuse(&error, context);
                        return Step::Again;
                    }
                }
            }
        }
        let wanted = context.shared.limits.head_bytes_max + 1;
        match self.read(context, wanted) {
            Received::Bytes(_) => Step::Again,
            Received::WouldBlock => Step::Wait,
            Received::Ended => Step::Close,
        }
    }

    /// A whole head: screened, or its body read next.
    fn on_head(&mut self, head: Head, started: Instant, context: &mut Context<'_>) {
        if let Some((answer, delay)) = self.screen(&head, started, context) {
            if delay > Duration::ZERO {
                // The loop's timer answers when the hold is over (`on_timer`). The hold counts
                // from now, not from the loop's wake-up: a connection handed over by another loop
                // may be read well after that instant, and the client must wait the whole delay.
                self.phase = Phase::Holding {
                    until: Instant::now() + delay,
                    answer,
                };
            } else {
                self.answer_screened(answer, context);
            }
            return;
        }
        let max = context.shared.limits.body_bytes_max;
        if let Framing::Length(length) = head.framing
            && length > max
        {
            self.refuse(&HttpError::BodyTooLarge { size: length, max }, context);
            return;
        }
        if head.expect_continue && head.framing != Framing::None {
            if self.output.is_empty() {
                self.output_progress = context.now;
            }
            self.output
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let chunked = (head.framing == Framing::Chunked).then(ChunkedBody::new);
        self.phase = Phase::Body {
            head,
            started,
            chunked,
        };
    }

    /// Asks the handler whether the request is answered from its head.
    fn screen(
        &mut self,
        head: &Head,
        started: Instant,
        context: &Context<'_>,
    ) -> Option<(HeldAnswer, Duration)> {
        let body_bytes = match head.framing {
            Framing::None => Some(0),
            Framing::Length(length) => Some(length),
            Framing::Chunked => None,
        };
        let head_seen = RequestHead {
            method: &head.method,
            target: &head.target,
            headers: &head.headers,
            body_bytes,
        };
        let Screened {
            response,
            close,
            delay,
        } = context.shared.handler.screen(&head_seen, &mut self.state)?;
        let body_bytes_max = context.shared.limits.body_bytes_max;
        let body_to_drop = body_bytes
            .filter(|&length| length == 0 || (length <= body_bytes_max && !head.expect_continue));
        let answer = HeldAnswer {
            response,
            body_to_drop,
            keep_alive: head.keep_alive && !close,
            head_only: head.method == "HEAD",
            started,
        };
        Some((answer, delay))
    }

    /// Writes an answer given from the head; then drops the body and reads the next request,
    /// or closes after lingering.
    fn answer_screened(&mut self, answer: HeldAnswer, context: &Context<'_>) {
        self.requests_served += 1;
        let keep_alive = answer.keep_alive && answer.body_to_drop.is_some() && !context.stopping();
        self.queue(&answer.response, keep_alive, answer.head_only, context.now);
        self.phase = match answer.body_to_drop {
            Some(left) if keep_alive => Phase::Discarding {
                left,
                started: answer.started,
            },
            _ => Phase::LingerNext,
        };
    }

    fn read_body(&mut self, context: &mut Context<'_>) -> Step {
        let limits = &context.shared.limits;
        let progress = match &mut self.phase {
            Phase::Body { head, chunked, .. } => match (head.framing, chunked) {
                (Framing::Length(length), _) if self.pending.len() >= length => {
                    let rest = self.pending.split_off(length);
                    BodyProgress::Whole(std::mem::replace(&mut self.pending, rest))
                }
                (Framing::Length(length), _) => {
                    // The body goes straight into the buffer it is handed over in.
                    self.pending.reserve_exact(length - self.pending.len());
                    BodyProgress::Needs(length - self.pending.len())
                }
                (Framing::Chunked, Some(decoder)) => match decoder.advance(
                    &mut self.pending,
                    limits.body_bytes_max,
                    limits.head_bytes_max,
                ) {
                    Ok(Some(body)) => BodyProgress::Whole(body),
                    Ok(None) => BodyProgress::Needs(usize::MAX),
                    Err(error) => BodyProgress::Failed(error),
                },
                _ => BodyProgress::Whole(Vec::new()),
            },
            _ => return Step::Wait,
        };
        match progress {
            BodyProgress::Whole(body) => {
                self.dispatch(body);
                Step::Again
            }
            BodyProgress::Failed(error) => {
                self.refuse(&error, context);
                Step::Again
            }
            BodyProgress::Needs(wanted) => match self.read(context, wanted) {
                Received::Bytes(_) => Step::Again,
                Received::WouldBlock => Step::Wait,
                Received::Ended => {
                    self.refuse(&body_ended_early(), context);
                    Step::Again
                }
            },
        }
    }

    /// Hands the request, read whole, to the loop for a worker.
    fn dispatch(&mut self, body: Vec<u8>) {
        let Phase::Body { head, .. } = std::mem::replace(
            &mut self.phase,
            Phase::Working {
                keep_alive: false,
                head_only: false,
            },
        ) else {
            return;
        };
        self.phase = Phase::Working {
            keep_alive: head.keep_alive,
            head_only: head.method == "HEAD",
        };
        self.requests_served += 1;
        if self.pending.capacity() > OUTPUT_KEPT_BYTES {
            self.pending.shrink_to(OUTPUT_KEPT_BYTES);
        }
        self.ready = Some(Request {
            method: head.method,
            target: head.target,
            headers: head.headers,
            body,
        });
    }

    fn discard(&mut self, context: &mut Context<'_>) -> Step {
        let Phase::Discarding { left, .. } = &mut self.phase else {
            return Step::Wait;
        };
        let buffered = (*left).min(self.pending.len());
        self.pending.drain(..buffered);
        *left -= buffered;
        if *left == 0 {
            self.phase = Phase::Idle { since: context.now };
            return Step::Again;
        }
        let wanted = *left;
        match self.read(context, wanted) {
            Received::Bytes(_) => Step::Again,
            Received::WouldBlock => Step::Wait,
            Received::Ended => Step::Close,
        }
    }

    fn linger(&mut self, context: &mut Context<'_>) -> Step {
        self.pending.clear();
        let read = self.read(context, usize::MAX);
        self.pending.clear();
        let Phase::Lingering { drained, .. } = &mut self.phase else {
            return Step::Close;
        };
        match read {
            Received::Bytes(read) => {
                *drained += read;
                if *drained >= LINGER_BYTES_MAX {
                    return Step::Close;
                }
                Step::Again
            }
            Received::WouldBlock => Step::Wait,
            Received::Ended => Step::Close,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The stream's sender learns that its chunks go nowhere now.
        if let Some(open) = self.stream_open.take() {
            open.store(false, Ordering::Relaxed);
        }
    }
}
