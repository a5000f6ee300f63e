//! An event loop: one thread that owns a share of the connections (the first loop also owns
//! the listener and deals new connections out in turn), woken by `mio` for readiness, by its
//! timers, and by a [`Waker`] when a responder sends an answer or a connection is handed to
//! it.
//!
//! Each round it accepts what is waiting, drives the connections that are ready
//! ([`Connection::drive`]), writes the answers that arrived ([`Completions`]), and acts on the
//! deadlines that have passed. Nothing in it blocks: a request read whole goes to a worker,
//! unless the handler serves it without waiting ([`super::Handler::serves_without_waiting`]).

use super::connection::{Connection, Context, Flow};
use super::idle::IdleConnections;
use super::stream::{Chunk, ResponseStream};
use super::workers::{self, Job, Responder};
use super::{HttpError, READ_CHUNK_BYTES, Response, Shared};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connections are numbered from here, never reusing a number, so that an answer that
/// arrives after its connection closed cannot reach another one.
const FIRST_CONNECTION: usize = 2;
const EVENTS_CAPACITY: usize = 1024;
/// After a failed accept (out of descriptors, say), how long before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// What a responder or a stream sends the loop for one connection.
pub(super) enum Completion {
    /// The answer to the request a worker had.
    Answer(Response),
    /// The head of a chunked answer that stays open ([`super::Responder::stream`]); the flag
    /// is cleared when the connection ends.
    Open(Response, Arc<AtomicBool>),
    /// One chunk of an open stream.
    Chunk(Chunk),
    /// The end of an open stream's body.
    End,
}

/// Answers sent by responders on other threads, waiting for the loop to write them.
pub(super) struct Completions {
    answers: Mutex<Vec<(Token, Completion)>>,
    waker: Arc<Waker>,
}

impl Completions {
    pub(super) fn push(&self, token: Token, completion: Completion) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.push((token, completion));
        // One wake per batch: the loop takes every answer queued when it wakes.
        if answers.len() == 1 {
            drop(answers);
            if let Err(error) = self.waker.wake() {
                tracing::error!(%error, "cannot wake the HTTP event loop");
            }
        }
    }

    fn take(&self) -> Vec<(Token, Completion)> {
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Connections accepted by the first loop for another one, waiting for it to take them.
pub(super) struct Inbox {
    streams: Mutex<Vec<TcpStream>>,
    waker: Arc<Waker>,
}

impl Inbox {
    fn push(&self, stream: TcpStream) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.push(stream);
        if streams.len() == 1 {
            drop(streams);
            if let Err(error) = self.waker.wake() {
                tracing::error!(%error, "cannot wake an HTTP event loop");
            }
        }
    }

    fn take(&self) -> Vec<TcpStream> {
        std::mem::take(&mut *self.streams.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

pub(super) struct EventLoop {
    poll: Poll,
    waker: Arc<Waker>,
    /// The accepting loop's; `None` for the others, and once the server is stopping.
    listener: Option<TcpListener>,
    /// Whether it has seen the server stopping (and closed its idle connections).
    stopped: bool,
    /// Where this loop's share of new connections arrives.
    inbox: Arc<Inbox>,
    /// The accepting loop deals new connections out in turn: to itself, then to these.
    others: Vec<Arc<Inbox>>,
    next_owner: usize,
    shared: Arc<Shared>,
    completions: Arc<Completions>,
    connections: HashMap<Token, Connection>,
    next_token: usize,
    /// Each connection's next deadline ([`Connection::deadline`]), earliest first.
    timers: BTreeSet<(Instant, Token)>,
    idle: IdleConnections,
    read_buffer: Vec<u8>,
    accept_retry_at: Option<Instant>,
}

impl EventLoop {
    pub(super) fn new(
        mut listener: Option<TcpListener>,
        shared: &Arc<Shared>,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        if let Some(listener) = &mut listener {
            poll.registry()
                .register(listener, LISTENER, Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let inbox = Arc::new(Inbox {
            streams: Mutex::new(Vec::new()),
            waker: waker.clone(),
        });
        let completions = Arc::new(Completions {
            answers: Mutex::new(Vec::new()),
            waker: waker.clone(),
        });
        let event_loop = EventLoop {
            poll,
            waker,
            listener,
            stopped: false,
            inbox,
            others: Vec::new(),
            next_owner: 0,
            shared: shared.clone(),
            completions,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            timers: BTreeSet::new(),
            idle: IdleConnections::default(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
            accept_retry_at: None,
        };
        Ok(event_loop)
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub(super) fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    /// Deals new connections out to these loops too (the accepting loop).
    pub(super) fn hand_to(&mut self, others: Vec<Arc<Inbox>>) {
        self.others = others;
    }

    /// Runs until the server's owner says to exit; every socket closes when it returns.
    pub(super) fn run(mut self, jobs: &Sender<Job>) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        while !self.shared.exit.load(Ordering::Relaxed) {
            if self.shared.stopping.load(Ordering::Relaxed) && !self.stopped {
                self.stopped = true;
                self.stop_accepting();
            }
            let timeout = self.next_wake(Instant::now());
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(%error, "the HTTP event loop cannot poll; it stops");
                    return;
                }
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now, jobs),
                    WAKER => {}
                    token => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.drive(token, now, jobs, |connection, context| {
                            connection.readable |= readable;
                            connection.drive(context)
                        });
                    }
                }
            }
            for stream in self.inbox.take() {
                self.admit(stream, now, jobs);
            }
            self.write_answers(now, jobs);
            self.fire_timers(now, jobs);
            if self.accept_retry_at.is_some_and(|at| at <= now) {
                self.accept_retry_at = None;
                self.accept(now, jobs);
            }
        }
    }

    fn next_wake(&self, now: Instant) -> Option<Duration> {
        let timer = self.timers.first().map(|(at, _)| *at);
        let wake = match (timer, self.accept_retry_at) {
            (Some(timer), Some(retry)) => Some(timer.min(retry)),
            (timer, retry) => timer.or(retry),
        };
        wake.map(|at| at.saturating_duration_since(now))
    }

    fn stop_accepting(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let idle: Vec<Token> = (self.connections.iter())
            .filter(|(_, connection)| connection.evictable())
            .map(|(token, _)| *token)
            .collect();
        for token in idle {
            if let Some(connection) = self.connections.remove(&token) {
                self.close(token, connection);
            }
        }
    }

    fn accept(&mut self, now: Instant, jobs: &Sender<Job>) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.deal(stream, now, jobs),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(error) => {
                    // Out of descriptors and the like: try again shortly rather than spin.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    self.accept_retry_at = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Keeps a new connection, or hands it to the next loop in turn.
    fn deal(&mut self, stream: TcpStream, now: Instant, jobs: &Sender<Job>) {
        let owner = self.next_owner;
        self.next_owner = (self.next_owner + 1) % (self.others.len() + 1);
        match owner
            .checked_sub(1)
            .and_then(|index| self.others.get(index))
        {
            Some(other) => other.push(stream),
            None => self.admit(stream, now, jobs),
        }
    }

    /// Takes a new connection: within the cap, or by evicting an idle one, or else answered
    /// `503` and closed.
    fn admit(&mut self, stream: TcpStream, now: Instant, jobs: &Sender<Job>) {
        let token = Token(self.next_token);
        self.next_token += 1;
        let mut connection = Connection::new(stream, now);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(error) = self
            .poll
            .registry()
            .register(connection.stream(), token, interest)
        {
            tracing::warn!(%error, "cannot register an HTTP connection");
            return;
        }
        let open = self.shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let connections_max = self.shared.limits.connections_max;
        if open > connections_max && !self.evict_oldest_idle() {
            let context = Context {
                shared: &self.shared,
                now,
                read_buffer: &mut self.read_buffer,
            };
            connection.turn_away(&HttpError::TooManyConnections(connections_max), &context);
        }
        self.connections.insert(token, connection);
        self.drive(token, now, jobs, |connection, context| {
            connection.drive(context)
        });
    }

    /// Closes an idle connection, the first in [`IdleConnections`]' order of eviction; false
    /// when none is idle.
    fn evict_oldest_idle(&mut self) -> bool {
        while let Some(token) = self.idle.pop_oldest() {
            if let Some(mut connection) = self.connections.remove(&token) {
                connection.idle_ticket = None;
                self.close(token, connection);
                return true;
            }
        }
        false
    }

    /// Runs `step` on a connection, then hands its request to a worker, or closes it, and
    /// keeps its timer and its place in the idle set up to date.
    fn drive(
        &mut self,
        token: Token,
        now: Instant,
        jobs: &Sender<Job>,
        step: impl FnOnce(&mut Connection, &mut Context<'_>) -> Flow,
    ) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let mut context = Context {
            shared: &self.shared,
            now,
            read_buffer: &mut self.read_buffer,
        };
        let flow = step(connection, &mut context);
        if let Some(request) = connection.ready.take() {
            let completions = self.completions.clone();
            let streams = self.completions.clone();
            let responder = Responder::streaming(
                move |response| completions.push(token, Completion::Answer(response)),
                move |head| {
                    let open = Arc::new(AtomicBool::new(true));
                    streams.push(token, Completion::Open(head, open.clone()));
                    ResponseStream::new(token, streams, open)
                },
            );
            if self.shared.handler.serves_without_waiting(&request) {
                workers::serve(&self.shared, request, responder);
            } else {
                // Sent only while the workers live; otherwise the dropped responder answers
                // 500.
                let _ = jobs.send(Job { request, responder });
            }
        }
        if flow == Flow::Close {
            if let Some(connection) = self.connections.remove(&token) {
                self.close(token, connection);
            }
            return;
        }
        // A timer is moved only when the deadline comes sooner: one that fires before the
        // connection's deadline (it moved later since) finds nothing due and is set again,
        // which costs less than moving it at every request.
        let deadline = connection.deadline(&self.shared);
        let sooner = match (deadline, connection.timer) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if sooner {
            if let Some(old) = connection.timer.take() {
                self.timers.remove(&(old, token));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, token));
            }
            connection.timer = deadline;
        }
        match (connection.evictable(), connection.idle_ticket) {
            (true, None) => {
                connection.idle_ticket = Some(self.idle.insert(token, connection.used()));
            }
            (false, Some(ticket)) => {
                self.idle.remove(ticket);
                connection.idle_ticket = None;
            }
            _ => {}
        }
    }

    fn close(&mut self, token: Token, mut connection: Connection) {
        if let Some(at) = connection.timer.take() {
            self.timers.remove(&(at, token));
        }
        if let Some(ticket) = connection.idle_ticket.take() {
            self.idle.remove(ticket);
        }
        let _ = self.poll.registry().deregister(connection.stream());
        drop(connection);
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Writes the answers that responders sent since the last round.
    fn write_answers(&mut self, now: Instant, jobs: &Sender<Job>) {
        for (token, completion) in self.completions.take() {
            self.drive(token, now, jobs, |connection, context| {
                let flow = match completion {
                    Completion::Answer(response) => {
                        connection.complete(&response, context);
                        Flow::Keep
                    }
                    Completion::Open(head, open) => {
                        connection.open_stream(&head, open, context);
                        Flow::Keep
                    }
                    Completion::Chunk(chunk) => connection.stream_chunk(&chunk, context),
                    Completion::End => {
                        connection.end_stream(context);
                        Flow::Keep
                    }
                };
                match flow {
                    Flow::Keep => connection.drive(context),
                    Flow::Close => Flow::Close,
                }
            });
        }
    }

    /// Acts on every deadline that has passed.
    fn fire_timers(&mut self, now: Instant, jobs: &Sender<Job>) {
        let mut due = Vec::new();
        while let Some(&(at, token)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.push(token);
        }
        for token in due {
            if let Some(connection) = self.connections.get_mut(&token) {
                connection.timer = None;
            }
            self.drive(token, now, jobs, |connection, context| {
                connection.on_timer(context)
            });
        }
    }
}
