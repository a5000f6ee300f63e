//! The node loop: the one thread that owns the Raft node and the store.
//!
//! It turns events (datagrams, storage reports, client requests) into core inputs stamped
//! with the monotonic clock, and carries out each output in the order core documents:
//! persist, send, apply, answer.

use super::leader_watch::LeaderWatch;
use super::liveness::{Heartbeat, LOOP_ROUND_INTERVAL_MAX};
use super::{ClientError, Consistency, Event, NodeStatus, Reply};
use crate::metrics::Metrics;
use crate::storage::StorageReport;
use crate::transport::Sender;
use rafting_core::raft::{
    Entry, EntryPayload, Input, Node, Output, PersistBatch, ProposalId, ProposalOutcome, ReadError,
    ReadId, ReadOutcome, RoleName,
};
use rafting_core::store::{
    ClientId, Command, Operation, Outcome, Query, ReadAnswer, Request, Response, Store, TenantId,
    Tick,
};
use rafting_core::{LogIndex, Millis, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes waiting for this leader's exactly-once client record, at most.
const QUEUED_WRITES_MAX: usize = 10_000;
/// How often expired requests are swept.
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);
/// Events handled between two status refreshes.
const EVENTS_PER_ROUND_MAX: usize = 512;

enum Waiter {
    Client {
        reply: Reply<Outcome>,
        deadline: Instant,
        sequence: u64,
    },
    RegisterClient,
    Tick,
}

struct PendingRead {
    query: Query,
    reply: Reply<ReadAnswer>,
    deadline: Instant,
}

struct QueuedWrite {
    tenant: TenantId,
    operation: Operation,
    reply: Reply<Outcome>,
    deadline: Instant,
}

/// This node's exactly-once client record in the store, used for the writes it proposes as
/// leader. The record is replicated, so it stays valid across terms.
enum ClientRecord {
    Unregistered,
    Registering,
    Registered {
        client: ClientId,
        next_sequence: u64,
    },
}

/// How the node loop reaches its peers: messages out, and the watch on its leader.
pub(super) struct Peers {
    pub(super) sender: Sender,
    pub(super) watch: LeaderWatch,
}

pub(super) struct NodeLoop {
    node: Node,
    store: Store,
    peers: Peers,
    batches: mpsc::Sender<PersistBatch>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<NodeStatus>>,
    session_tick_interval_ms: u64,
    /// Beaten every round, so that the server can tell a live loop from a dead one.
    heartbeat: Arc<Heartbeat>,
    origin: Instant,
    next_id: u64,
    waiters: BTreeMap<ProposalId, Waiter>,
    /// Proposals in the log, by index: answered when that index is applied.
    accepted: BTreeMap<LogIndex, (Term, ProposalId)>,
    reads: BTreeMap<ReadId, PendingRead>,
    client: ClientRecord,
    queued_writes: VecDeque<QueuedWrite>,
    outstanding_sequences: BTreeSet<u64>,
    next_session_tick_ms: u64,
    next_sweep: Instant,
    /// The last batch handed to the storage thread, and the last it reported durable (the
    /// storage thread reports a group of batches at once, by its last).
    batch_sent: u64,
    batch_persisted: u64,
    shutting_down: bool,
    storage_failed: Option<String>,
    leader: Option<NodeId>,
    /// When core last asked to be woken.
    wake_at: Millis,
    /// Proposals of this round of events, handed to core together.
    unsent_proposals: Vec<(ProposalId, Vec<u8>)>,
    /// The marker file that says this node started on an empty disk and is catching up;
    /// removed once core says it has (see `Config::catch_up_before_voting`).
    catching_up_marker: Option<PathBuf>,
    /// Disk losses of each follower already logged (the leader's view).
    disk_losses_logged: BTreeMap<NodeId, u64>,
}

impl NodeLoop {
    pub(super) fn new(
        node: Node,
        store: Store,
        peers: Peers,
        batches: mpsc::Sender<PersistBatch>,
        metrics: Arc<Metrics>,
        status: Arc<Mutex<NodeStatus>>,
        session_tick_interval_ms: u64,
    ) -> NodeLoop {
        NodeLoop {
            node,
            store,
            peers,
            batches,
            metrics,
            status,
            session_tick_interval_ms: session_tick_interval_ms.max(1),
            heartbeat: Arc::new(Heartbeat::new()),
            origin: Instant::now(),
            next_id: 1,
            waiters: BTreeMap::new(),
            accepted: BTreeMap::new(),
            reads: BTreeMap::new(),
            client: ClientRecord::Unregistered,
            queued_writes: VecDeque::new(),
            outstanding_sequences: BTreeSet::new(),
            next_session_tick_ms: 0,
            next_sweep: Instant::now(),
            batch_sent: 0,
            batch_persisted: 0,
            shutting_down: false,
            storage_failed: None,
            leader: None,
            wake_at: Millis::ZERO,
            unsent_proposals: Vec::new(),
            catching_up_marker: None,
            disk_losses_logged: BTreeMap::new(),
        }
    }

    /// This node is catching up after starting on an empty disk; `marker` records it on disk
    /// until it has.
    pub(super) fn catching_up(mut self, marker: PathBuf) -> NodeLoop {
        self.catching_up_marker = Some(marker);
        self
    }

    /// Once core says the catch-up is done, the marker goes, so a restart votes at once.
    fn forget_catch_up_once_done(&mut self) {
        if self.node.is_catching_up() {
            return;
        }
        if let Some(marker) = self.catching_up_marker.take() {
            if let Err(error) = std::fs::remove_file(&marker) {
                tracing::warn!(marker = %marker.display(), %error, "could not remove the catch-up marker");
            }
            tracing::info!(
                commit = self.node.commit_index().get(),
                "caught up after starting on an empty disk: this node votes again"
            );
        }
    }

    /// The heartbeat this loop beats every round, for the threads that watch it.
    pub(super) fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    fn now(&self) -> Millis {
        Millis(self.origin.elapsed().as_millis() as u64)
    }

    pub(super) fn run(mut self, events: Receiver<Event>) {
        self.heartbeat.beat();
        self.step(Input::Tick);
        loop {
            match events.recv_timeout(self.wait_duration()) {
                Ok(event) => {
                    self.handle(event);
                    for _ in 0..EVENTS_PER_ROUND_MAX {
                        match events.try_recv() {
                            Ok(event) => self.handle(event),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.step(Input::Tick),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.heartbeat.beat();
            self.flush_proposals();
            self.watch_leader();
            self.housekeeping();
            let all_durable = self.batch_persisted >= self.batch_sent;
            if self.shutting_down && (all_durable || self.storage_failed.is_some()) {
                break;
            }
        }
        self.fail_everything(&ClientError::ShuttingDown);
        self.publish_status();
        tracing::info!("node loop stopped");
    }

    fn wait_duration(&self) -> Duration {
        let now = self.now().get();
        let mut wake_ms = now + LOOP_ROUND_INTERVAL_MAX.as_millis() as u64;
        if self.storage_failed.is_none() {
            wake_ms = wake_ms.min(self.wake_at.get());
        }
        if self.node.is_leader() && self.store.session_clock_needed() {
            wake_ms = wake_ms.min(self.next_session_tick_ms);
        }
        let mut wait = Duration::from_millis(wake_ms.saturating_sub(now));
        if let Some(probe) = self.peers.watch.next_due() {
            wait = wait.min(probe.saturating_duration_since(Instant::now()));
        }
        wait.max(Duration::from_millis(1))
    }

    /// Probes a silent leader when due; a leader found down is reported to core at once.
    fn watch_leader(&mut self) {
        if self.storage_failed.is_some() {
            return;
        }
        if let Some(leader) = self.peers.watch.poll(Instant::now()) {
            Metrics::count(&self.metrics.leaders_found_down);
            tracing::warn!(%leader, "the leader's port is closed: its process is gone");
            self.step(Input::PeerUnreachable { peer: leader });
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Message(envelope) => {
                self.peers.watch.heard_from(envelope.from, Instant::now());
                if self.storage_failed.is_none() {
                    self.step(Input::Message(envelope));
                }
            }
            Event::Storage(StorageReport::Persisted(batch)) => {
                self.batch_persisted = self.batch_persisted.max(batch.sequence);
                self.step(Input::Persisted(batch));
            }
            Event::Storage(StorageReport::Failed(error)) => {
                self.storage_failed = Some(error.clone());
                self.fail_everything(&ClientError::StorageFailed(error));
            }
            Event::Write {
                tenant,
                operation,
                reply,
                deadline,
            } => self.on_write(tenant, operation, reply, deadline),
            Event::Read {
                query,
                consistency,
                reply,
                deadline,
            } => self.on_read(query, consistency, reply, deadline),
            Event::Transfer { to, reply } => {
                let result = if self.node.is_leader() {
                    self.step(Input::TransferLeadership { to });
                    Ok(())
                } else {
                    Err(ClientError::NotLeader {
                        leader: self.node.leader(),
                    })
                };
                let _ = reply.send(result);
            }
            Event::Shutdown => {
                tracing::info!("shutting down: finishing the batch in flight");
                self.shutting_down = true;
            }
            Event::InjectedPanic => panic!("injected panic: a test asked the node loop to die"),
        }
    }

    /// Refuses a request the node cannot take now, or returns `None` to go on.
    fn refusal(&self) -> Option<ClientError> {
        if let Some(error) = &self.storage_failed {
            return Some(ClientError::StorageFailed(error.clone()));
        }
        if self.shutting_down {
            return Some(ClientError::ShuttingDown);
        }
        if !self.node.is_leader() {
            return Some(ClientError::NotLeader {
                leader: self.node.leader(),
            });
        }
        None
    }

    fn on_write(
        &mut self,
        tenant: TenantId,
        operation: Operation,
        reply: Reply<Outcome>,
        deadline: Instant,
    ) {
        if let Some(error) = self.refusal() {
            let _ = reply.send(Err(error));
            return;
        }
        let write = QueuedWrite {
            tenant,
            operation,
            reply,
            deadline,
        };
        if matches!(self.client, ClientRecord::Registered { .. }) {
            self.propose_write(write);
            return;
        }
        if self.queued_writes.len() >= QUEUED_WRITES_MAX {
            let _ = write
                .reply
                .send(Err(ClientError::Overloaded("write queue full".into())));
            return;
        }
        self.queued_writes.push_back(write);
        self.register_client();
    }

    fn register_client(&mut self) {
        if !matches!(self.client, ClientRecord::Unregistered) || !self.node.is_leader() {
            return;
        }
        self.client = ClientRecord::Registering;
        self.propose(Command::RegisterClient, Waiter::RegisterClient);
    }

    fn propose_write(&mut self, write: QueuedWrite) {
        let ClientRecord::Registered {
            client,
            next_sequence,
        } = &mut self.client
        else {
            return;
        };
        let sequence = *next_sequence;
        *next_sequence += 1;
        let acknowledged_below = self
            .outstanding_sequences
            .first()
            .copied()
            .unwrap_or(sequence);
        let request = Request::new(*client, sequence, write.operation)
            .in_tenant(write.tenant)
            .acknowledging_below(acknowledged_below);
        self.outstanding_sequences.insert(sequence);
        let waiter = Waiter::Client {
            reply: write.reply,
            deadline: write.deadline,
            sequence,
        };
        self.propose(Command::Request(request), waiter);
    }

    /// Queues a proposal; the queue goes to core as one batch at the end of the round of
    /// events, so concurrent writes share a persist batch and an append per follower.
    fn propose(&mut self, command: Command, waiter: Waiter) {
        let id = ProposalId(self.next_id);
        self.next_id += 1;
        self.waiters.insert(id, waiter);
        self.unsent_proposals.push((id, command.encode()));
    }

    fn flush_proposals(&mut self) {
        // Answers to one batch may queue more (writes waiting for the client record), so go
        // on until nothing is left; each pass only proposes what the last one queued.
        for _ in 0..8 {
            if self.unsent_proposals.is_empty() {
                return;
            }
            let proposals = std::mem::take(&mut self.unsent_proposals);
            self.step(Input::ProposeBatch { proposals });
        }
    }

    fn on_read(
        &mut self,
        query: Query,
        consistency: Consistency,
        reply: Reply<ReadAnswer>,
        deadline: Instant,
    ) {
        if consistency == Consistency::Stale && self.storage_failed.is_none() {
            let _ = reply.send(self.store.read(&query).map_err(ClientError::Store));
            return;
        }
        if let Some(error) = self.refusal() {
            let _ = reply.send(Err(error));
            return;
        }
        let id = ReadId(self.next_id);
        self.next_id += 1;
        self.reads.insert(
            id,
            PendingRead {
                query,
                reply,
                deadline,
            },
        );
        self.step(Input::Read { id });
    }

    fn step(&mut self, input: Input) {
        let was_leader = self.node.is_leader();
        let role_before = self.node.role();
        let now = self.now();
        let output = self.node.step(now, input);
        self.carry_out(output);
        self.forget_catch_up_once_done();
        if self.node.role() == RoleName::Candidate && role_before != RoleName::Candidate {
            Metrics::count(&self.metrics.elections_started);
        }
        if self.node.leader() != self.leader {
            self.leader = self.node.leader();
            let followed = self.leader.filter(|&leader| leader != self.node.id());
            self.peers.watch.follow(followed, Instant::now());
            if let Some(leader) = self.leader {
                Metrics::count(&self.metrics.leader_changes);
                tracing::info!(%leader, term = %self.node.term(), "leader known");
            }
        }
        if self.node.is_leader() && !was_leader {
            self.next_session_tick_ms = now.get();
            self.register_client();
        } else if was_leader && !self.node.is_leader() {
            let error = ClientError::NotLeader {
                leader: self.node.leader(),
            };
            for write in std::mem::take(&mut self.queued_writes) {
                let _ = write.reply.send(Err(error.clone()));
            }
        }
    }

    /// Carries out one output in core's documented order: persist, send, apply, answer.
    fn carry_out(&mut self, output: Output) {
        self.wake_at = output.wake_at;
        if let Some(batch) = output.persist {
            let sequence = batch.id.sequence;
            if self.batches.send(batch).is_ok() {
                self.batch_sent = sequence;
            }
        }
        for envelope in &output.messages {
            self.peers.sender.send(envelope);
        }
        for outcome in output.proposals {
            self.on_proposal_outcome(outcome);
        }
        for entry in output.committed {
            self.apply(entry);
        }
        for outcome in output.reads {
            self.on_read_outcome(outcome);
        }
    }

    fn on_proposal_outcome(&mut self, outcome: ProposalOutcome) {
        match outcome {
            ProposalOutcome::Accepted { id, index, term } => {
                Metrics::count(&self.metrics.proposals);
                self.accepted.insert(index, (term, id));
            }
            ProposalOutcome::Committed { .. } => {} // Answered when the entry is applied.
            ProposalOutcome::Rejected { id, error } => {
                Metrics::count(&self.metrics.proposals_rejected);
                self.finish(id, Err(ClientError::from_propose(error)));
            }
            ProposalOutcome::Unknown { id, leader_hint } => {
                self.accepted.retain(|_, (_, accepted)| *accepted != id);
                self.finish(
                    id,
                    Err(ClientError::OutcomeUnknown {
                        leader: leader_hint,
                    }),
                );
            }
        }
    }

    fn apply(&mut self, entry: Entry) {
        Metrics::count(&self.metrics.entries_applied);
        let response = match &entry.payload {
            EntryPayload::Command(bytes) => Some(self.store.apply(entry.index, bytes)),
            EntryPayload::Noop => None,
        };
        let Some((term, id)) = self.accepted.remove(&entry.index) else {
            return;
        };
        match response {
            Some(response) if term == entry.term => self.finish(id, Ok(response)),
            _ => self.finish(
                id,
                Err(ClientError::OutcomeUnknown {
                    leader: self.node.leader(),
                }),
            ),
        }
    }

    /// Answers the waiter of proposal `id`.
    fn finish(&mut self, id: ProposalId, result: Result<Response, ClientError>) {
        let Some(waiter) = self.waiters.remove(&id) else {
            return;
        };
        match waiter {
            Waiter::Client {
                reply, sequence, ..
            } => {
                self.outstanding_sequences.remove(&sequence);
                if matches!(
                    result,
                    Ok(Err(rafting_core::store::StoreError::SessionExpired { .. }))
                ) {
                    // Our client record was evicted: register again for later writes.
                    self.client = ClientRecord::Unregistered;
                }
                let answer = result.and_then(|response| response.map_err(ClientError::Store));
                let _ = reply.send(answer);
            }
            Waiter::RegisterClient => match result {
                Ok(Ok(Outcome::ClientRegistered { client })) => {
                    tracing::info!(%client, "registered this node's exactly-once client record");
                    self.client = ClientRecord::Registered {
                        client,
                        next_sequence: 1,
                    };
                    for write in std::mem::take(&mut self.queued_writes) {
                        self.propose_write(write);
                    }
                }
                _ => {
                    self.client = ClientRecord::Unregistered;
                    self.register_client();
                }
            },
            Waiter::Tick => {}
        }
    }

    fn on_read_outcome(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Ready { id, .. } => {
                if let Some(read) = self.reads.remove(&id) {
                    Metrics::count(&self.metrics.reads);
                    let _ = read
                        .reply
                        .send(self.store.read(&read.query).map_err(ClientError::Store));
                }
            }
            ReadOutcome::Failed { id, error } => {
                if let Some(read) = self.reads.remove(&id) {
                    let error = match error {
                        ReadError::NotLeader { leader_hint } => ClientError::NotLeader {
                            leader: leader_hint,
                        },
                        ReadError::PendingLimit => {
                            ClientError::Overloaded("too many pending reads".into())
                        }
                    };
                    let _ = read.reply.send(Err(error));
                }
            }
        }
    }

    /// Periodic duties: the leader's session clock tick, request deadlines, the status copy.
    fn housekeeping(&mut self) {
        let now = self.now();
        if self.node.is_leader()
            && self.store.session_clock_needed()
            && now.get() >= self.next_session_tick_ms
            && self.storage_failed.is_none()
            && !self.shutting_down
        {
            self.next_session_tick_ms = now.get() + self.session_tick_interval_ms;
            let tick = Tick {
                term: self.node.term(),
                now,
            };
            self.propose(Command::Tick(tick), Waiter::Tick);
        }
        if Instant::now() >= self.next_sweep {
            self.next_sweep = Instant::now() + SWEEP_INTERVAL;
            self.sweep_expired();
        }
        self.publish_status();
    }

    fn sweep_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<ProposalId> = self
            .waiters
            .iter()
            .filter(
                |(_, waiter)| matches!(waiter, Waiter::Client { deadline, .. } if *deadline <= now),
            )
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.finish(id, Err(ClientError::Timeout));
        }
        let expired: Vec<ReadId> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(read) = self.reads.remove(&id) {
                let _ = read.reply.send(Err(ClientError::Timeout));
            }
        }
        while self
            .queued_writes
            .front()
            .is_some_and(|write| write.deadline <= now)
        {
            if let Some(write) = self.queued_writes.pop_front() {
                let _ = write.reply.send(Err(ClientError::Timeout));
            }
        }
    }

    fn fail_everything(&mut self, error: &ClientError) {
        let ids: Vec<ProposalId> = self.waiters.keys().copied().collect();
        for id in ids {
            self.finish(id, Err(error.clone()));
        }
        for (_, read) in std::mem::take(&mut self.reads) {
            let _ = read.reply.send(Err(error.clone()));
        }
        for write in std::mem::take(&mut self.queued_writes) {
            let _ = write.reply.send(Err(error.clone()));
        }
    }

    fn publish_status(&mut self) {
        let raft = self.node.status();
        for peer in &raft.peers {
            let logged = self.disk_losses_logged.entry(peer.id).or_insert(0);
            if peer.disk_losses > *logged {
                *logged = peer.disk_losses;
                tracing::error!(
                    follower = %peer.id,
                    now_ends_at = peer.match_index.get(),
                    losses = peer.disk_losses,
                    "a follower's log ends below what it acknowledged: its disk lost data \
                     (wiped, replaced, or an fsync that lied); bringing it up to date"
                );
            }
        }
        Metrics::set(&self.metrics.term, raft.term.get());
        Metrics::set(&self.metrics.commit_index, raft.commit_index.get());
        Metrics::set(&self.metrics.applied_index, raft.applied_index.get());
        Metrics::set(&self.metrics.is_leader, u64::from(self.node.is_leader()));
        let status = NodeStatus {
            raft,
            store_revision: self.store.revision().get(),
            storage_failed: self.storage_failed.clone(),
        };
        if let Ok(mut shared) = self.status.lock() {
            *shared = status;
        }
    }
}
