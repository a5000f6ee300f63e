//! The event loop: one thread that owns the listener and every connection, woken by `mio`
//! for readiness, by its timers, and by a [`Waker`] when a responder sends an answer.
//!
//! Each round it accepts what is waiting, drives the connections that are ready
//! ([`Connection::drive`]), writes the answers that arrived ([`Completions`]), and acts on the
//! deadlines that have passed. Nothing in it blocks: a request read whole goes to a worker.

use super::connection::{Connection, Context, Flow};
use super::idle::IdleConnections;
use super::workers::{Job, Responder};
use super::{HttpError, READ_CHUNK_BYTES, Response, Shared};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::Ordering;
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

/// Answers sent by responders on other threads, waiting for the loop to write them.
pub(super) struct Completions {
    answers: Mutex<Vec<(Token, Response)>>,
    waker: Arc<Waker>,
}

impl Completions {
    fn push(&self, token: Token, response: Response) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.push((token, response));
        // One wake per batch: the loop takes every answer queued when it wakes.
        if answers.len() == 1 {
            drop(answers);
            if let Err(error) = self.waker.wake() {
                tracing::error!(%error, "cannot wake the HTTP event loop");
            }
        }
    }

    fn take(&self) -> Vec<(Token, Response)> {
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

pub(super) struct EventLoop {
    poll: Poll,
    /// `None` once the server is stopping.
    listener: Option<TcpListener>,
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
        mut listener: TcpListener,
        shared: &Arc<Shared>,
    ) -> io::Result<(EventLoop, Arc<Waker>)> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let completions = Arc::new(Completions {
            answers: Mutex::new(Vec::new()),
            waker: waker.clone(),
        });
        let event_loop = EventLoop {
            poll,
            listener: Some(listener),
            shared: shared.clone(),
            completions,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            timers: BTreeSet::new(),
            idle: IdleConnections::default(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
            accept_retry_at: None,
        };
        Ok((event_loop, waker))
    }

    /// Runs until the server's owner says to exit; every socket closes when it returns.
    pub(super) fn run(mut self, jobs: &Sender<Job>) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        while !self.shared.exit.load(Ordering::Relaxed) {
            if self.shared.stopping.load(Ordering::Relaxed) && self.listener.is_some() {
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
                Ok((stream, _)) => self.admit(stream, now, jobs),
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
            let responder = Responder::new(move |response| completions.push(token, response));
            // Sent only while the workers live; otherwise the dropped responder answers 500.
            let _ = jobs.send(Job { request, responder });
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
        for (token, response) in self.completions.take() {
            self.drive(token, now, jobs, |connection, context| {
                connection.complete(&response, context);
                connection.drive(context)
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
