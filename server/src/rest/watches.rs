//! The watch long polls open on this node: counted per tenant (the `watches` cap), and the
//! ones waiting for a change held in one registry, answered by one thread, not a thread each.
//!
//! A waiting watch is a [`Waiter`]: its query (tenant, prefix, `since`, limit), the store
//! revision up to which it is known to have nothing to report, its deadline, and where its
//! answer goes (a [`Finish`], which writes the HTTP answer through the server's
//! responder). The registry's thread looks at this node's applied revision every
//! [`CHANGE_POLL_INTERVAL`] (the status the node loop publishes after every round; no call
//! into the node loop); when it has moved past what a group of waiters has seen, it reads the
//! group's changes once through the node loop, a stale read of the local store, and answers
//! every waiter of the group that has events with the same encoded batch. Waiters with the
//! same query (10,000 clients watching one prefix from one revision) are one group: a change
//! costs one read and one JSON encoding, whatever their number. A waiter whose time is up is
//! answered with its group's (empty) batch, and every waiter is answered at once when the
//! node stops.

use super::Finish;
use super::errors::{self, ApiError, Reply};
use super::json;
use super::streams::{Streamer, Streams};
use rafting_core::store::{Query, ReadAnswer, Revision, TenantId, WatchBatch, WatchQuery};
use rafting_net::runtime::{Consistency, NodeHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How often the registry looks for a new applied revision while watches wait. It bounds the
/// delay it adds between a change applied on this node and its watchers' answers.
pub const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(2);
/// How long the registry's read of a group's changes may wait for the node loop.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the registry sleeps while no watch waits (a new one wakes it at once).
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// The watches open on this node, per tenant, and the registry of those waiting.
#[derive(Default)]
pub struct OpenWatches {
    counts: Arc<Mutex<BTreeMap<TenantId, u64>>>,
    registry: OnceLock<Arc<Registry>>,
}

impl OpenWatches {
    /// How many watches `tenant` holds open on this node.
    pub fn held(&self, tenant: TenantId) -> u64 {
        lock(&self.counts).get(&tenant).copied().unwrap_or(0)
    }

    /// Counts one more open watch of `tenant`, or says how many it holds when at `cap`.
    pub fn open(&self, tenant: TenantId, cap: Option<u64>) -> Result<WatchSlot, u64> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(tenant).or_default();
        if cap.is_some_and(|cap| *count >= cap) {
            return Err(*count);
        }
        *count += 1;
        Ok(WatchSlot {
            counts: self.counts.clone(),
            tenant,
        })
    }

    /// Holds `waiter` until its query has events, its time is up, or the node stops.
    pub fn wait(&self, handle: &NodeHandle, waiter: Waiter) {
        let registry = self
            .registry
            .get_or_init(|| Registry::start(handle.clone()));
        let mut waiting = lock(&registry.waiting);
        if waiting.stopped {
            drop(waiting);
            registry.answer_now(waiter);
            return;
        }
        waiting.add(waiter);
        registry.changed.notify_one();
    }

    /// Holds `streamer` until its client leaves or is cut, its changes cannot be read (it fell
    /// behind the kept history, say), or the node stops ([`super::streams`]).
    pub fn stream(&self, handle: &NodeHandle, streamer: Streamer) {
        let registry = self
            .registry
            .get_or_init(|| Registry::start(handle.clone()));
        {
            let mut streams = lock(&registry.streams);
            streams.add(streamer, Instant::now());
        }
        // Under the lock the registry's thread checks for work before it sleeps, so the
        // notification cannot fall between its check and its wait.
        let waiting = lock(&registry.waiting);
        if waiting.stopped {
            drop(waiting);
            lock(&registry.streams).end_all();
            return;
        }
        registry.changed.notify_one();
    }

    /// Watch streams open in the registry now.
    pub fn streaming(&self) -> usize {
        self.registry
            .get()
            .map_or(0, |registry| lock(&registry.streams).len())
    }

    /// Answers every waiting watch now and ends the registry's thread (the node stops).
    pub fn stop(&self) {
        if let Some(registry) = self.registry.get() {
            registry.stopping.store(true, Ordering::Relaxed);
            registry.changed.notify_one();
        }
    }

    /// Watches waiting in the registry now.
    pub fn waiting(&self) -> usize {
        self.registry
            .get()
            .map_or(0, |registry| lock(&registry.waiting).waiters.len())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open watch counted against its tenant's `watches` cap on this node while it lives.
pub struct WatchSlot {
    counts: Arc<Mutex<BTreeMap<TenantId, u64>>>,
    tenant: TenantId,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// A watch waiting for a change.
pub struct Waiter {
    pub query: WatchQuery,
    /// The store revision up to which it has nothing to report (`since - 1`, or the revision
    /// its first look saw).
    pub seen: Revision,
    pub deadline: Instant,
    pub slot: WatchSlot,
    pub finish: Finish,
}

impl Waiter {
    /// Gives the slot back, then answers (a client that polls again at once finds its slot).
    fn answer(self, answer: Result<Reply, ApiError>) {
        let Waiter { slot, finish, .. } = self;
        drop(slot);
        finish(answer);
    }
}

/// The waiters with one query.
#[derive(Default)]
struct Group {
    members: BTreeSet<u64>,
    /// The lowest revision its members are known to have seen.
    seen: Revision,
}

#[derive(Default)]
struct Waiting {
    next_id: u64,
    waiters: BTreeMap<u64, Waiter>,
    groups: BTreeMap<GroupKey, Group>,
    deadlines: BTreeSet<(Instant, u64)>,
    stopped: bool,
}

type GroupKey = (TenantId, String, Revision, u32);

fn group_key(query: &WatchQuery) -> GroupKey {
    (query.tenant, query.prefix.clone(), query.since, query.limit)
}

impl Waiting {
    fn add(&mut self, waiter: Waiter) {
        let id = self.next_id;
        self.next_id += 1;
        let group = self
            .groups
            .entry(group_key(&waiter.query))
            .or_insert(Group {
                members: BTreeSet::new(),
                seen: waiter.seen,
            });
        group.members.insert(id);
        group.seen = group.seen.min(waiter.seen);
        self.deadlines.insert((waiter.deadline, id));
        self.waiters.insert(id, waiter);
    }

    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        self.deadlines.remove(&(waiter.deadline, id));
        let key = group_key(&waiter.query);
        if let Some(group) = self.groups.get_mut(&key) {
            group.members.remove(&id);
            if group.members.is_empty() {
                self.groups.remove(&key);
            }
        }
        Some(waiter)
    }

    /// The groups to read now: behind `revision`, holding a waiter whose time is up, or all
    /// of them when stopping.
    fn due(&self, revision: Revision, now: Instant, stopping: bool) -> Vec<GroupKey> {
        let mut due: BTreeSet<GroupKey> = (self.groups.iter())
            .filter(|(_, group)| stopping || group.seen < revision)
            .map(|(key, _)| key.clone())
            .collect();
        for (_, id) in self.deadlines.iter().take_while(|(at, _)| *at <= now) {
            if let Some(waiter) = self.waiters.get(id) {
                due.insert(group_key(&waiter.query));
            }
        }
        due.into_iter().collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }
}

struct Registry {
    handle: NodeHandle,
    waiting: Mutex<Waiting>,
    /// Lock order: `waiting`, then `streams`.
    streams: Mutex<Streams>,
    /// Signalled when a waiter arrives or the node stops.
    changed: Condvar,
    stopping: AtomicBool,
}

impl Registry {
    fn start(handle: NodeHandle) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            handle,
            waiting: Mutex::new(Waiting::default()),
            streams: Mutex::new(Streams::default()),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&registry);
        let spawned = std::thread::Builder::new()
            .name("watches".into())
            .spawn(move || run(&weak));
        if let Err(error) = spawned {
            // Without its thread, every watch is answered at once (a short poll).
            tracing::error!(%error, "cannot start the watch registry's thread");
            lock(&registry.waiting).stopped = true;
        }
        registry
    }

    /// Answers a waiter with one read, without waiting.
    fn answer_now(&self, waiter: Waiter) {
        let answer = self.read(&waiter.query);
        waiter.answer(answer.map(|(reply, _, _)| reply));
    }

    /// Reads a query's changes from this node's store.
    fn read_batch(&self, query: &WatchQuery) -> Result<WatchBatch, ApiError> {
        let answer = self
            .handle
            .read(
                Query::Watch(query.clone()),
                Consistency::Stale,
                READ_TIMEOUT,
            )
            .map_err(|error| errors::from_client_error(error, |_| None))?;
        let ReadAnswer::Watch(batch) = answer else {
            return Err(ApiError::new(
                500,
                "internal",
                "the node answered a watch unexpectedly",
            ));
        };
        Ok(batch)
    }

    /// Reads a query's changes: the reply, whether it has events, and the revision read at.
    fn read(&self, query: &WatchQuery) -> Result<(Reply, bool, Revision), ApiError> {
        let batch = self.read_batch(query)?;
        let reply = Reply::json(&json::watch_batch(&batch));
        Ok((reply, !batch.events.is_empty(), batch.current_revision))
    }

    /// One pass: reads the groups that are due and answers who has events, whose time is up,
    /// or everyone when stopping. Returns when to look again at the latest.
    fn pass(&self) -> Option<Instant> {
        let stopping = self.stopping.load(Ordering::Relaxed);
        let revision = Revision(self.handle.status().store_revision);
        let due = {
            let mut waiting = lock(&self.waiting);
            waiting.stopped |= stopping;
            waiting.due(revision, Instant::now(), stopping)
        };
        for key in due {
            let Some(query) = self.query_of(&key) else {
                continue;
            };
            let answer = self.read(&query);
            let now = Instant::now();
            let answered = {
                let mut waiting = lock(&self.waiting);
                let Some(group) = waiting.groups.get_mut(&key) else {
                    continue;
                };
                let members: Vec<u64> = match &answer {
                    Ok((_, false, read_at)) if !stopping => {
                        group.seen = group.seen.max(*read_at);
                        let members = group.members.clone();
                        (members.into_iter())
                            .filter(|id| waiting.waiters.get(id).is_some_and(|w| w.deadline <= now))
                            .collect()
                    }
                    _ => group.members.iter().copied().collect(),
                };
                (members.into_iter())
                    .filter_map(|id| waiting.remove(id))
                    .collect::<Vec<Waiter>>()
            };
            for waiter in answered {
                waiter.answer(clone_answer(&answer));
            }
        }
        let next_progress = self.stream_pass(revision, stopping);
        let next_deadline = lock(&self.waiting).next_deadline();
        match (next_deadline, next_progress) {
            (Some(deadline), Some(progress)) => Some(deadline.min(progress)),
            (deadline, progress) => deadline.or(progress),
        }
    }

    /// The streams' part of a pass: reads the changes of each group of streams behind
    /// `revision` (outside the lock: the read waits for the node loop) and sends them, then
    /// the progress lines that are due. Returns when a progress line is next due.
    fn stream_pass(&self, revision: Revision, stopping: bool) -> Option<Instant> {
        if stopping {
            lock(&self.streams).end_all();
            return None;
        }
        let due = lock(&self.streams).due(revision);
        for query in due {
            let read = self.read_batch(&query);
            lock(&self.streams).deliver(&query, read, Instant::now());
        }
        let mut streams = lock(&self.streams);
        streams.report_progress(revision, Instant::now());
        streams.next_progress()
    }

    fn query_of(&self, key: &GroupKey) -> Option<WatchQuery> {
        let waiting = lock(&self.waiting);
        let id = waiting.groups.get(key)?.members.first()?;
        Some(waiting.waiters.get(id)?.query.clone())
    }
}

fn clone_answer(answer: &Result<(Reply, bool, Revision), ApiError>) -> Result<Reply, ApiError> {
    match answer {
        Ok((reply, _, _)) => Ok(Reply {
            status: reply.status,
            content_type: reply.content_type,
            body: reply.body.clone(),
            headers: reply.headers.clone(),
        }),
        Err(error) => Err(error.clone()),
    }
}

/// The registry's thread: a pass whenever the revision may have moved, a deadline passed or a
/// waiter arrived; it ends with the registry, or once stopped with nothing left waiting.
fn run(registry: &Weak<Registry>) {
    loop {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let next_deadline = registry.pass();
        let waiting = lock(&registry.waiting);
        let streams = lock(&registry.streams).len();
        if waiting.stopped && waiting.waiters.is_empty() && streams == 0 {
            return;
        }
        let wait = if waiting.waiters.is_empty() && streams == 0 {
            IDLE_WAIT
        } else {
            let until_deadline =
                next_deadline.map_or(IDLE_WAIT, |at| at.saturating_duration_since(Instant::now()));
            CHANGE_POLL_INTERVAL.min(until_deadline)
        };
        let _ = registry
            .changed
            .wait_timeout(waiting, wait)
            .unwrap_or_else(PoisonError::into_inner);
    }
}
