//! A small HTTP/1.1 server: a few event loops on epoll (`mio`) own the sockets (each
//! connection belongs to one loop, dealt out in turn by the first, which accepts), and a pool
//! of workers runs the [`Handler`].
//!
//! ```text
//!   clients ──> event loop (mio) ──> jobs ──> workers (Handler::serve) ──┐
//!               accept, read heads          a few threads, each          │
//!               and bodies, screen,         running one request          │
//!               timeouts, eviction,                                      │
//!               buffered writes  <── completions + Waker <── Responder <─┘
//!                                        (any thread, now or later)
//! ```
//!
//! A connection costs a socket and a small record in the loop, never a thread: 10,000 clients
//! waiting on long polls are 10,000 records. The loop reads a request whole (head, then body),
//! hands it to a worker with a [`Responder`] (or serves it itself when the handler says it
//! waits for nothing: [`Handler::serves_without_waiting`]), and reads nothing more on that
//! connection until the answer is written. A handler answers at once ([`Handler::handle`]) or later: a long
//! poll keeps the [`Responder`] and returns, freeing its worker, and whoever completes the
//! wait (the watch registry of the REST API) sends the answer from its own thread; the loop
//! is woken through a `mio::Waker` and writes it.
//!
//! What a client sends is never trusted: heads and bodies are bounded, `Content-Length` and
//! `Transfer-Encoding: chunked` are both understood (never together), `Expect: 100-continue`
//! is answered, and anything malformed is refused with a status from the [`Handler`] and the
//! connection closed after a short linger (so the answer is not lost to a reset). Nothing
//! here panics on input, and a handler that panics costs its request a `500`, not a worker.
//!
//! Time limits, all enforced by the loop's timers: a request head must arrive whole within
//! [`Limits::head_timeout`] of its first byte and a whole request within
//! [`Limits::request_timeout`] (else `408`); a connection with no request for
//! [`Limits::idle_timeout`] is closed; an answer that the client does not read is buffered for
//! that connection alone, and a connection whose answer makes no progress for
//! [`Limits::write_timeout`] is closed. So a client that stalls, or never reads, holds one
//! buffered answer and one socket until it is closed; it never blocks the loop, a worker, the
//! node loop or another client.
//!
//! When every connection slot is taken, a new connection evicts an idle one instead of being
//! turned away: the oldest of those that never sent a request, else the one idle longest
//! between keep-alive requests. Only when no connection is idle is the newcomer answered
//! `503`.
//!
//! Fairness between clients: a connection has at most one request in a worker's hands or
//! waiting for one (the loop reads its next request only after the answer is written), so the
//! job queue holds at most one request per connection, served in arrival order; the REST API
//! caps each tenant's connections ([`crate::rest::front`]), which caps its share of the queue.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

mod chunked;
mod connection;
mod event_loop;
mod idle;
mod stream;
mod workers;

pub use stream::{Chunk, ResponseStream};
pub use workers::Responder;

/// Headers a request may carry at most.
const HEADERS_MAX: usize = 64;
const READ_CHUNK_BYTES: usize = 16 * 1024;
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
    /// that sends again at once waits anyway, and its body stays in its own buffers). The
    /// hold is a timer of the event loop: it costs no thread.
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
    /// Answers one request (on a worker thread; the event loop never calls it).
    fn handle(&self, request: Request) -> Response;
    /// Whether [`Handler::serve`] returns at once for this request, without waiting for
    /// anything: it hands the request on to another thread, whose answer comes back through
    /// the responder. The event loop then serves it itself, which saves the hop to a worker
    /// and back (two thread wake-ups per request, a large part of a small request's cost).
    /// It must be right: every connection of that loop waits while `serve` runs. By default
    /// every request goes to a worker.
    fn serves_without_waiting(&self, _request: &Request) -> bool {
        false
    }
    /// Answers one request through `responder`, now or later from any thread. A handler
    /// that waits long (a long poll) keeps `responder` and returns, so that its worker serves
    /// other requests meanwhile. By default, [`Handler::handle`] answers at once.
    fn serve(&self, request: Request, responder: Responder) {
        responder.send(self.handle(request));
    }
    /// The answer to a request that could not be read, or a connection turned away.
    fn refuse(&self, error: &HttpError) -> Response;
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once. A connection beyond it evicts an idle one (see
    /// [`idle::IdleConnections`]), or is answered 503 and closed when none is idle.
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
    /// A connection whose answer makes no progress for this long (the client does not read
    /// it) is closed.
    pub write_timeout: Duration,
    /// Bytes a streamed answer ([`Responder::stream`]) may hold unwritten when its next
    /// chunk arrives; past it, the client is too slow and its connection is cut.
    pub stream_buffer_bytes_max: usize,
    /// Event loops, each a thread that owns a share of the connections (the first also
    /// accepts them and deals them out in turn). Writing one change to 10,000 watch streams
    /// is 10,000 socket writes, which two loops share between two cores.
    pub event_loops: usize,
    /// Worker threads that run the handler. A request that waits on the cluster in its
    /// handler holds its worker, so this bounds such requests in flight on one node; long
    /// polls, and requests the loop serves itself ([`Handler::serves_without_waiting`]), hold
    /// none.
    pub workers: usize,
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
            write_timeout: Duration::from_secs(30),
            stream_buffer_bytes_max: 256 * 1024,
            event_loops: EVENT_LOOPS_DEFAULT,
            workers: 256,
        }
    }
}

/// What the event loop, the workers and the server's owner share.
struct Shared {
    handler: Arc<dyn Handler>,
    limits: Limits,
    /// Set by [`HttpServer::stop`]: no new connection is accepted and none is kept alive.
    stopping: AtomicBool,
    /// Set when the loop must end now: every connection has closed, or the grace is over.
    exit: AtomicBool,
    connections: AtomicUsize,
}

/// A running server; [`HttpServer::stop`] ends it.
pub struct HttpServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    /// One per event loop.
    wakers: Vec<Arc<mio::Waker>>,
    event_loops: Vec<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(
        listen: SocketAddr,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<HttpServer> {
        let listener = std::net::TcpListener::bind(listen)?;
        deepen_backlog(&listener);
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let event_loops_count = limits.event_loops.max(1);
        let shared = Arc::new(Shared {
            handler,
            limits,
            stopping: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        // The first loop accepts and hands every other connection to the next loop in turn.
        let mut others = Vec::new();
        for _ in 1..event_loops_count {
            others.push(event_loop::EventLoop::new(None, &shared)?);
        }
        let inboxes = others.iter().map(|event_loop| event_loop.inbox()).collect();
        let mut first =
            event_loop::EventLoop::new(Some(mio::net::TcpListener::from_std(listener)), &shared)?;
        first.hand_to(inboxes);
        let jobs = workers::spawn(&shared)?;
        let mut wakers = Vec::new();
        let mut event_loops = Vec::new();
        for (index, event_loop) in std::iter::once(first).chain(others).enumerate() {
            wakers.push(event_loop.waker());
            let jobs = jobs.clone();
            event_loops.push(
                std::thread::Builder::new()
                    .name(format!("http-loop-{index}"))
                    .spawn(move || event_loop.run(&jobs))?,
            );
        }
        Ok(HttpServer {
            address,
            shared,
            wakers,
            event_loops,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    fn wake_all(&self) {
        for waker in &self.wakers {
            let _ = waker.wake();
        }
    }

    /// Stops accepting, closes idle connections, lets requests in progress finish (their
    /// connections then close), and waits up to `grace` for every connection to end.
    pub fn stop(mut self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.wake_all();
        let deadline = Instant::now() + grace;
        while self.connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.exit.store(true, Ordering::Relaxed);
        self.wake_all();
        for event_loop in self.event_loops.drain(..) {
            let _ = event_loop.join();
        }
    }
}

/// Event loops by default: two, enough to use both cores of a small machine for the socket
/// writes of a fan-out, without a loop per core on a large one fighting the node loop.
const EVENT_LOOPS_DEFAULT: usize = 2;

/// Connections waiting to be accepted, at most (the kernel may cap it: `somaxconn`).
const ACCEPT_BACKLOG: libc::c_int = 4096;

/// Lets more connections wait for `accept` than the standard library's 128, so that
/// thousands of clients connecting at once are not dropped and left to retry their SYN.
fn deepen_backlog(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket we own and that is already listening only changes its
    // backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot deepen the accept backlog");
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

/// Appends an answer as bytes on the wire to `bytes`; a `HEAD` answer keeps its
/// `Content-Length` and drops its body.
fn encode(bytes: &mut Vec<u8>, response: &Response, keep_alive: bool, head_only: bool) {
    bytes.reserve(128 + response.body.len());
    encode_status_and_headers(bytes, response);
    let _ = write!(bytes, "Content-Length: {}\r\n", response.body.len());
    if !keep_alive {
        bytes.extend_from_slice(b"Connection: close\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
}

/// Appends the head of a chunked answer that stays open (a stream) to `bytes`.
fn encode_stream_head(bytes: &mut Vec<u8>, response: &Response) {
    encode_status_and_headers(bytes, response);
    bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
}

/// The status line and the handler's headers (a header with a line break in its name or
/// value is dropped rather than let split the answer).
fn encode_status_and_headers(bytes: &mut Vec<u8>, response: &Response) {
    let reason = reason_phrase(response.status);
    let _ = write!(bytes, "HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        let clean = |text: &str| !text.contains(['\r', '\n']);
        if clean(name) && clean(value) {
            let _ = write!(bytes, "{name}: {value}\r\n");
        }
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
