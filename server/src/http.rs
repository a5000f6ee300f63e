//! A small HTTP/1.1 server: one thread per connection, request heads parsed by `httparse`.
//!
//! Each connection's thread reads a request, hands it to the [`Handler`] and writes the answer,
//! then waits for the next request on the same connection (keep-alive). Nothing sits between
//! the socket and the handler: no shared queue, no worker pool, so a slow request delays only
//! its own connection. (The server used before, tiny_http, hands connections to a thread pool
//! whose spawn can leave a new connection queued with no thread to serve it until another
//! connection closes; under load that showed up as requests stuck for seconds.)
//!
//! What a client sends is never trusted: heads and bodies are bounded, `Content-Length` and
//! `Transfer-Encoding: chunked` are both understood (never together), `Expect: 100-continue`
//! is answered, and anything malformed is refused with a status from the [`Handler`] and the
//! connection closed. Nothing here panics on input.
//!
//! A connection cannot hold its slot for long without sending a request: a request head must
//! arrive whole within [`Limits::head_timeout`] of its first byte (else `408`), and when every
//! slot is taken a new connection evicts an idle one instead of being turned away: the
//! oldest of those that never sent a request, else the one idle longest between keep-alive
//! requests. Only when no connection is idle is the newcomer answered `503`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

mod idle;
use idle::{IdleConnections, IdleTicket};

/// Headers a request may carry at most.
const HEADERS_MAX: usize = 64;
/// How often a waiting connection checks whether the server is stopping.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const READ_CHUNK_BYTES: usize = 16 * 1024;
const CONNECTION_STACK_BYTES: usize = 256 * 1024;
/// After refusing a request, what the client still sends is read and dropped for at most this
/// long and this much before closing: closing with unread data would reset the connection,
/// and the client could lose the answer that says why.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 * 1024 * 1024;

/// A request, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// An answer. `Content-Length` and `Connection` are added by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request could not be read. The connection closes after the answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("request has more than {0} headers")]
    TooManyHeaders(usize),
    #[error("request body of {size} bytes exceeds the limit of {max}")]
    BodyTooLarge { size: usize, max: usize },
    #[error("transfer encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    #[error("the request was not received whole within {0:?}")]
    Timeout(Duration),
    #[error("too many connections (at most {0})")]
    TooManyConnections(usize),
}

impl HttpError {
    /// The status that fits.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge(_) | HttpError::TooManyHeaders(_) => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedEncoding(_) => 501,
            HttpError::Timeout(_) => 408,
            HttpError::TooManyConnections(_) => 503,
        }
    }
}

/// A request's head, as the [`Handler`] may see it before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(String, Vec<u8>)],
    /// The body's length when the client declared it (`Content-Length`; 0 without a body);
    /// `None` for a chunked body.
    pub body_bytes: Option<usize>,
}

/// An answer given from a request's head alone ([`Handler::screen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    pub response: Response,
    /// Close the connection after the answer instead of reading the next request.
    pub close: bool,
    /// Hold the answer this long first, reading nothing meanwhile (a client told to wait
    /// that sends again at once waits anyway, and its body stays in its own buffers).
    pub delay: Duration,
}

/// What the handler keeps on a connection between its requests (who the connection belongs
/// to, say); dropped when the connection closes.
pub type ConnectionState = Option<Box<dyn std::any::Any + Send>>;

/// What the server serves.
pub trait Handler: Send + Sync + 'static {
    /// May answer a request from its head alone, before its body is read: a tenant over its
    /// rate, say, so that refusing a flood of large writes costs the node no more than reading
    /// their heads. The body is then read into a small buffer and dropped, and the connection
    /// kept unless the answer says to close it; a chunked body, one larger than
    /// [`Limits::body_bytes_max`] or one the client waits to send until `100 Continue` is
    /// never read: the connection closes after the answer. `state` is the connection's own,
    /// kept from one request to the next. By default every request is read whole.
    fn screen(&self, _head: &RequestHead<'_>, _state: &mut ConnectionState) -> Option<Screened> {
        None
    }
    fn handle(&self, request: Request) -> Response;
    /// The answer to a request that could not be read, or a connection turned away.
    fn refuse(&self, error: &HttpError) -> Response;
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once. A connection beyond it evicts an idle one (see
    /// [`IdleConnections`]), or is answered 503 and closed when none is idle.
    pub connections_max: usize,
    pub head_bytes_max: usize,
    pub body_bytes_max: usize,
    /// A connection with no request for this long is closed (it may be evicted sooner when
    /// the server is at its cap).
    pub idle_timeout: Duration,
    /// A request head must arrive whole within this time of its first byte.
    pub head_timeout: Duration,
    /// A request, head and body, must arrive whole within this time of its first byte.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections_max: 1024,
            head_bytes_max: 16 * 1024,
            body_bytes_max: 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            head_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

struct Shared {
    handler: Arc<dyn Handler>,
    limits: Limits,
    stopping: AtomicBool,
    connections: AtomicUsize,
    idle: Mutex<IdleConnections>,
}

impl Shared {
    fn idle(&self) -> MutexGuard<'_, IdleConnections> {
        // A connection thread that panicked cannot leave the map half-updated: every update
        // is one insert or one remove.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes an idle connection, the first in [`IdleConnections`]' order of eviction; false
    /// when none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let Some(stream) = self.idle().pop_oldest() else {
            return false;
        };
        // Its thread sees the end of the stream at once and ends, freeing its slot.
        let _ = stream.shutdown(Shutdown::Both);
        true
    }
}

/// A running server; [`HttpServer::stop`] ends it.
pub struct HttpServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(
        listen: SocketAddr,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(listen)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler,
            limits,
            stopping: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            idle: Mutex::new(IdleConnections::default()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(HttpServer {
            address,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets requests in progress finish (their connections then close), and
    /// waits up to `grace` for every connection to end.
    pub fn stop(mut self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Wake the acceptor out of `accept` with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(200));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + grace;
        while self.connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit, so that the connection
/// cap, not the descriptor limit, decides how many clients are served (each connection is
/// one descriptor; the default soft limit is often 1,024). Returns the limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes only into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit(2) reads only the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(%error, "cannot accept an HTTP connection");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let open = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = ConnectionCount(shared.clone());
        // The evicted connection's slot frees when its thread ends, a moment later: until
        // then the count runs over the cap by the evictions in flight.
        if open > shared.limits.connections_max && !shared.evict_oldest_idle() {
            let error = HttpError::TooManyConnections(shared.limits.connections_max);
            let mut connection = Connection::new(stream, shared.clone());
            connection.refuse(&error);
            drop(guard);
            continue;
        }
        let mut connection = Connection::new(stream, shared.clone());
        // Evictable from now on, not only once its thread runs: under a flood of newcomers,
        // the ones not yet started are the ones to evict, not a client between requests.
        connection.mark_idle();
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || {
                let _guard = guard;
                connection.serve();
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a thread for an HTTP connection");
        }
    }
}

/// Counts a connection until dropped.
struct ConnectionCount(Arc<Shared>);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Connection {
    /// Shared with [`IdleConnections`] while the connection waits for a request.
    stream: Arc<TcpStream>,
    shared: Arc<Shared>,
    /// Bytes received and not yet consumed (the start of a pipelined request, say).
    pending: Vec<u8>,
    /// The connection's place in [`IdleConnections`] while it waits for a request.
    idle_ticket: Option<IdleTicket>,
    requests_served: u64,
    /// The handler's state for this connection ([`Handler::screen`]).
    state: ConnectionState,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.mark_busy();
    }
}

/// How reading a request ended.
enum Incoming {
    Request {
        request: Request,
        keep_alive: bool,
    },
    /// Answered from its head by [`Handler::screen`]. The answer goes first; then the body
    /// of `body_to_drop` bytes is read and dropped (`None`: it is not read, and the connection
    /// closes after the answer).
    Screened {
        response: Response,
        body_to_drop: Option<usize>,
        keep_alive: bool,
        head_only: bool,
        started: Instant,
        delay: Duration,
    },
    /// The client closed, went idle too long, was evicted, or the server is stopping between
    /// requests.
    Closed,
    Refused(HttpError),
}

/// What a connection is waiting for, which decides how long it may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// The first byte of a request: up to the idle timeout, or until evicted or stopping.
    Idle,
    /// The rest of a request head that started at this instant.
    Head(Instant),
    /// The body of a request that started at this instant.
    Body(Instant),
}

impl Connection {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Connection {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(POLL_INTERVAL));
        Connection {
            stream: Arc::new(stream),
            shared,
            pending: Vec::new(),
            idle_ticket: None,
            requests_served: 0,
            state: None,
        }
    }

    fn serve(mut self) {
        loop {
            match self.read_request() {
                Incoming::Request {
                    request,
                    keep_alive,
                } => {
                    let head_only = request.method == "HEAD";
                    let response = self.shared.handler.handle(request);
                    self.requests_served += 1;
                    let keep_alive = keep_alive && !self.shared.stopping.load(Ordering::Relaxed);
                    if self.write(&response, keep_alive, head_only).is_err() || !keep_alive {
                        break;
                    }
                }
                Incoming::Screened {
                    response,
                    body_to_drop,
                    keep_alive,
                    head_only,
                    started,
                    delay,
                } => {
                    self.hold(delay);
                    self.requests_served += 1;
                    let keep_alive = keep_alive
                        && body_to_drop.is_some()
                        && !self.shared.stopping.load(Ordering::Relaxed);
                    if self.write(&response, keep_alive, head_only).is_err() {
                        break;
                    }
                    let dropped = body_to_drop
                        .is_some_and(|length| self.discard_body(length, started).is_ok());
                    if !keep_alive || !dropped {
                        let _ = self.stream.shutdown(Shutdown::Write);
                        self.linger();
                        break;
                    }
                }
                Incoming::Closed => break,
                Incoming::Refused(error) => {
                    self.refuse(&error);
                    self.linger();
                    break;
                }
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Lets a newcomer at the cap evict this connection while it waits for a request.
    fn mark_idle(&mut self) {
        if self.idle_ticket.is_some() {
            return;
        }
        let used = self.requests_served > 0;
        let ticket = self.shared.idle().insert(self.stream.clone(), used);
        self.idle_ticket = Some(ticket);
    }

    fn mark_busy(&mut self) {
        if let Some(ticket) = self.idle_ticket.take() {
            self.shared.idle().remove(ticket);
        }
    }

    fn refuse(&mut self, error: &HttpError) {
        tracing::debug!(%error, "HTTP request refused");
        let response = self.shared.handler.refuse(error);
        let _ = self.write(&response, false, false);
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads and drops what the client still sends, within [`LINGER`] and
    /// [`LINGER_BYTES_MAX`], so that the answer already written is not lost to a reset.
    fn linger(&mut self) {
        let until = Instant::now() + LINGER;
        let mut drained = 0;
        let mut buffer = [0u8; READ_CHUNK_BYTES];
        while Instant::now() < until && drained < LINGER_BYTES_MAX {
            match (&*self.stream).read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => drained += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }

    /// Reads more bytes into `pending`. `Ok(false)`: the peer closed, or the connection was
    /// idle too long, evicted, or the server is stopping.
    fn fill(&mut self, wait: Wait) -> Result<bool, HttpError> {
        let waiting_since = Instant::now();
        let mut buffer = [0u8; READ_CHUNK_BYTES];
        loop {
            match (&*self.stream).read(&mut buffer) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.pending.extend_from_slice(&buffer[..read]);
                    return Ok(true);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.waited_enough(wait, waiting_since)? {
                        return Ok(false);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(false),
            }
        }
    }

    /// Whether a connection waiting for a request should close: idle too long, or the server
    /// is stopping. A head or a body slower than its timeout is refused with 408.
    fn waited_enough(&self, wait: Wait, waiting_since: Instant) -> Result<bool, HttpError> {
        let limits = &self.shared.limits;
        let (started, timeout) = match wait {
            Wait::Idle => {
                return Ok(self.shared.stopping.load(Ordering::Relaxed)
                    || waiting_since.elapsed() >= limits.idle_timeout);
            }
            Wait::Head(started) => (started, limits.head_timeout),
            Wait::Body(started) => (started, limits.request_timeout),
        };
        if started.elapsed() >= timeout {
            return Err(HttpError::Timeout(timeout));
        }
        Ok(false)
    }

    fn read_request(&mut self) -> Incoming {
        let mut started = (!self.pending.is_empty()).then(Instant::now);
        if started.is_none() {
            self.mark_idle();
        }
        // Bytes already parsed without finding a whole head. A head only completes with a new
        // line ending, so one trickled a byte at a time is not parsed again for every byte;
        // the first bytes are parsed at once, so a wrong protocol is refused at once.
        let mut parsed: Option<usize> = None;
        let (head, head_bytes) = loop {
            let head_bytes_max = self.shared.limits.head_bytes_max;
            let worth_parsing = match parsed {
                None => true,
                Some(length) => {
                    self.pending[length..].contains(&b'\n') || self.pending.len() > head_bytes_max
                }
            };
            if worth_parsing {
                match parse_head(&self.pending, head_bytes_max) {
                    Ok(Some(parsed)) => break parsed,
                    Ok(None) => parsed = Some(self.pending.len()),
                    Err(error) => return Incoming::Refused(error),
                }
            }
            let wait = started.map_or(Wait::Idle, Wait::Head);
            match self.fill(wait) {
                Ok(true) if started.is_none() => {
                    self.mark_busy();
                    started = Some(Instant::now());
                }
                Ok(true) => {}
                Ok(false) => return Incoming::Closed,
                Err(error) => return Incoming::Refused(error),
            }
        };
        self.pending.drain(..head_bytes);
        let started = started.unwrap_or_else(Instant::now);
        if let Some(screened) = self.screen(&head, started) {
            return screened;
        }
        if head.expect_continue && head.framing != Framing::None {
            let _ = (&*self.stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let body = match head.framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(length) => self.read_exact_body(length, started),
            Framing::Chunked => self.read_chunked_body(started),
        };
        match body {
            Ok(body) => Incoming::Request {
                request: Request {
                    method: head.method,
                    target: head.target,
                    headers: head.headers,
                    body,
                },
                keep_alive: head.keep_alive,
            },
            Err(error) => Incoming::Refused(error),
        }
    }

    /// Asks the handler whether the request is answered from its head.
    fn screen(&mut self, head: &Head, started: Instant) -> Option<Incoming> {
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
        } = self.shared.handler.screen(&head_seen, &mut self.state)?;
        let body_to_drop = body_bytes.filter(|&length| {
            length == 0 || (length <= self.shared.limits.body_bytes_max && !head.expect_continue)
        });
        Some(Incoming::Screened {
            response,
            body_to_drop,
            keep_alive: head.keep_alive && !close,
            head_only: head.method == "HEAD",
            started,
            delay,
        })
    }

    /// Waits `delay`, or until the server stops.
    fn hold(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while !self.shared.stopping.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(POLL_INTERVAL));
        }
    }

    /// Reads `length` bytes of body and drops them, a buffer at a time.
    fn discard_body(&mut self, length: usize, started: Instant) -> Result<(), HttpError> {
        let buffered = length.min(self.pending.len());
        self.pending.drain(..buffered);
        let mut left = length - buffered;
        let mut buffer = [0u8; READ_CHUNK_BYTES];
        while left > 0 {
            let wanted = left.min(buffer.len());
            let read = self.read_body_into(&mut buffer[..wanted], started)?;
            left -= read;
        }
        Ok(())
    }

    /// Reads some body bytes into `buffer`; an end of stream is an error, as the head promised
    /// more.
    fn read_body_into(&mut self, buffer: &mut [u8], started: Instant) -> Result<usize, HttpError> {
        let waiting_since = Instant::now();
        loop {
            match (&*self.stream).read(buffer) {
                Ok(0) => return Err(body_ended_early()),
                Ok(read) => return Ok(read),
                Err(error) => self.body_read_failed(&error, started, waiting_since)?,
            }
        }
    }

    /// A failed read of a body: a poll timeout waits on (within the request's time), an
    /// interruption retries, anything else ends the request.
    fn body_read_failed(
        &self,
        error: &io::Error,
        started: Instant,
        waiting_since: Instant,
    ) -> Result<(), HttpError> {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self
                .waited_enough(Wait::Body(started), waiting_since)
                .map(|_| ()),
            io::ErrorKind::Interrupted => Ok(()),
            _ => Err(body_ended_early()),
        }
    }

    /// Reads a body of `length` bytes straight into the buffer it is handed over in: one copy
    /// from the socket, none after.
    fn read_exact_body(&mut self, length: usize, started: Instant) -> Result<Vec<u8>, HttpError> {
        let max = self.shared.limits.body_bytes_max;
        if length > max {
            return Err(HttpError::BodyTooLarge { size: length, max });
        }
        if self.pending.len() < length {
            self.pending.reserve_exact(length - self.pending.len());
            let waiting_since = Instant::now();
            while self.pending.len() < length {
                let wanted = (length - self.pending.len()) as u64;
                match (&*self.stream).take(wanted).read_to_end(&mut self.pending) {
                    Ok(0) => return Err(body_ended_early()),
                    Ok(_) => {}
                    Err(error) => self.body_read_failed(&error, started, waiting_since)?,
                }
            }
        }
        let rest = self.pending.split_off(length);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    fn read_chunked_body(&mut self, started: Instant) -> Result<Vec<u8>, HttpError> {
        let max = self.shared.limits.body_bytes_max;
        let mut body = Vec::new();
        loop {
            // The chunk size line.
            let (line_bytes, size) = loop {
                match httparse::parse_chunk_size(&self.pending) {
                    Ok(httparse::Status::Complete(parsed)) => break parsed,
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(HttpError::Malformed("bad chunk size".into())),
                }
                if self.pending.len() > self.shared.limits.head_bytes_max {
                    return Err(HttpError::Malformed("chunk size line too long".into()));
                }
                if !self.fill(Wait::Body(started))? {
                    return Err(HttpError::Malformed("the body ended early".into()));
                }
            };
            self.pending.drain(..line_bytes);
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size == 0 {
                self.skip_trailers(started)?;
                return Ok(body);
            }
            if body.len().saturating_add(size) > max {
                let size = body.len().saturating_add(size);
                return Err(HttpError::BodyTooLarge { size, max });
            }
            // The chunk's data and its CRLF.
            while self.pending.len() < size + 2 {
                if !self.fill(Wait::Body(started))? {
                    return Err(HttpError::Malformed("the body ended early".into()));
                }
            }
            if &self.pending[size..size + 2] != b"\r\n" {
                return Err(HttpError::Malformed("a chunk does not end in CRLF".into()));
            }
            body.extend_from_slice(&self.pending[..size]);
            self.pending.drain(..size + 2);
        }
    }

    /// Skips the trailer section after the last chunk, up to its empty line.
    fn skip_trailers(&mut self, started: Instant) -> Result<(), HttpError> {
        loop {
            if let Some(end) = find(&self.pending, b"\r\n") {
                self.pending.drain(..end + 2);
                if end == 0 {
                    return Ok(());
                }
                continue;
            }
            if self.pending.len() > self.shared.limits.head_bytes_max {
                return Err(HttpError::HeadTooLarge(self.shared.limits.head_bytes_max));
            }
            if !self.fill(Wait::Body(started))? {
                return Err(HttpError::Malformed("the trailers ended early".into()));
            }
        }
    }

    fn write(&mut self, response: &Response, keep_alive: bool, head_only: bool) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(128 + response.body.len());
        let reason = reason_phrase(response.status);
        let _ = write!(bytes, "HTTP/1.1 {} {reason}\r\n", response.status);
        for (name, value) in &response.headers {
            let clean = |text: &str| !text.contains(['\r', '\n']);
            if clean(name) && clean(value) {
                let _ = write!(bytes, "{name}: {value}\r\n");
            }
        }
        let _ = write!(bytes, "Content-Length: {}\r\n", response.body.len());
        if !keep_alive {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        if !head_only {
            bytes.extend_from_slice(&response.body);
        }
        (&*self.stream).write_all(&bytes)
    }
}

fn body_ended_early() -> HttpError {
    HttpError::Malformed("the body ended early".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses a request head from the start of `bytes`: `Ok(None)` while incomplete, else the
/// head and how many bytes it took.
fn parse_head(bytes: &[u8], head_bytes_max: usize) -> Result<Option<(Head, usize)>, HttpError> {
    // Tolerate blank lines before a request (RFC 9112 §2.2).
    let skipped = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(&bytes[skipped..]) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => {
            if bytes.len() > head_bytes_max {
                return Err(HttpError::HeadTooLarge(head_bytes_max));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders(HEADERS_MAX)),
        Err(error) => return Err(HttpError::Malformed(error.to_string())),
    };
    if skipped + length > head_bytes_max {
        return Err(HttpError::HeadTooLarge(head_bytes_max));
    }
    let method = request.method.unwrap_or_default().to_owned();
    let target = request.path.unwrap_or_default().to_owned();
    let http_1_1 = request.version == Some(1);
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    let lengths: Vec<String> = values("content-length").collect();
    let encodings: Vec<String> = values("transfer-encoding").collect();
    let connection: Vec<String> = values("connection").collect();
    let framing = match (lengths.as_slice(), encodings.as_slice()) {
        ([], []) => Framing::None,
        ([length], []) => {
            let length = length
                .parse::<usize>()
                .map_err(|_| HttpError::Malformed(format!("bad Content-Length {length:?}")))?;
            Framing::Length(length)
        }
        ([], [encoding]) if encoding == "chunked" => Framing::Chunked,
        ([], [encoding]) => return Err(HttpError::UnsupportedEncoding(encoding.clone())),
        ([_, ..], [_, ..]) => {
            return Err(HttpError::Malformed(
                "both Content-Length and Transfer-Encoding".into(),
            ));
        }
        _ => {
            return Err(HttpError::Malformed(
                "repeated Content-Length or Transfer-Encoding".into(),
            ));
        }
    };
    let has = |token: &str| {
        connection
            .iter()
            .any(|v| v.split(',').any(|t| t.trim() == token))
    };
    let keep_alive = if http_1_1 {
        !has("close")
    } else {
        has("keep-alive")
    };
    let expect_continue = values("expect").any(|v| v == "100-continue");
    let head = Head {
        method,
        target,
        headers,
        framing,
        keep_alive,
        expect_continue,
    };
    Ok(Some((head, skipped + length)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
