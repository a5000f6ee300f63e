//! The node loop: the one thread that owns the replica (the Raft node and the store).
//!
//! It turns events (datagrams, storage reports, client requests) into replica inputs stamped
//! with the monotonic clock, and carries out each output in the order core documents:
//! persist, send, answer. Every decision about requests (admission, batching, the proposal
//! table, exactly-once numbering, the session clock, deadlines) is the replica's.

use super::leader_watch::LeaderWatch;
use super::liveness::{Heartbeat, LOOP_ROUND_INTERVAL_MAX};
use super::members::{self, KnownPeers, MemberAddress};
use super::{ClientError, Event, NodeStatus, Reply};
use crate::metrics::Metrics;
use crate::storage::StorageReport;
use crate::transport::Sender;
use rafting_core::raft::{Membership, PersistBatch, RoleName};
use rafting_core::replica::{
    Answer, Input, MembershipApplied, Output, Replica, ReplicaError, RequestId, SnapshotJob,
};
use rafting_core::store::{Outcome, ReadAnswer};
use rafting_core::{LogIndex, Millis, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events handled between two status refreshes.
const EVENTS_PER_ROUND_MAX: usize = 512;

/// Where the answer to a request goes.
enum ReplyTo {
    Write(Reply<Outcome>),
    Read(Reply<ReadAnswer>),
    Transfer(Reply<()>),
    Membership(Reply<MembershipApplied>),
}

/// How the node loop reaches its peers: messages out, and the watch on its leader.
pub(super) struct Peers {
    pub(super) sender: Sender,
    pub(super) watch: LeaderWatch,
    /// The peers' UDP addresses the node was started with (flags or `members.toml`).
    pub(super) configured: BTreeMap<NodeId, SocketAddr>,
    /// The senders the datagram receiver accepts.
    pub(super) known: Arc<KnownPeers>,
}

pub(super) struct NodeLoop {
    replica: Replica,
    peers: Peers,
    batches: mpsc::Sender<PersistBatch>,
    /// Copies of the store to encode as snapshot images, off this thread.
    encoder: mpsc::Sender<SnapshotJob>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<NodeStatus>>,
    /// Beaten every round, so that the server can tell a live loop from a dead one.
    heartbeat: Arc<Heartbeat>,
    origin: Instant,
    next_request: u64,
    /// Where each request in the replica is answered.
    replies: BTreeMap<RequestId, ReplyTo>,
    /// The last batch handed to the storage thread, and the last it reported durable (the
    /// storage thread reports a group of batches at once, by its last).
    batch_sent: u64,
    batch_persisted: u64,
    shutting_down: bool,
    storage_failed: Option<String>,
    leader: Option<NodeId>,
    /// When the replica last asked to be woken.
    wake_at: Millis,
    /// The marker file that says this node started on an empty disk and is catching up;
    /// removed once core says it has (see `Config::catch_up_before_voting`).
    catching_up_marker: Option<PathBuf>,
    /// Disk losses of each follower already logged (the leader's view).
    disk_losses_logged: BTreeMap<NodeId, u64>,
    /// The configuration the peer table was last built from.
    table_built_from: Option<(Membership, bool)>,
}

impl NodeLoop {
    pub(super) fn new(
        replica: Replica,
        peers: Peers,
        batches: mpsc::Sender<PersistBatch>,
        encoder: mpsc::Sender<SnapshotJob>,
        metrics: Arc<Metrics>,
        status: Arc<Mutex<NodeStatus>>,
    ) -> NodeLoop {
        NodeLoop {
            replica,
            peers,
            batches,
            encoder,
            metrics,
            status,
            heartbeat: Arc::new(Heartbeat::new()),
            origin: Instant::now(),
            next_request: 1,
            replies: BTreeMap::new(),
            batch_sent: 0,
            batch_persisted: 0,
            shutting_down: false,
            storage_failed: None,
            leader: None,
            wake_at: Millis::ZERO,
            catching_up_marker: None,
            disk_losses_logged: BTreeMap::new(),
            table_built_from: None,
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
        if self.replica.node().is_catching_up() {
            return;
        }
        if let Some(marker) = self.catching_up_marker.take() {
            if let Err(error) = std::fs::remove_file(&marker) {
                tracing::warn!(marker = %marker.display(), %error, "could not remove the catch-up marker");
            }
            tracing::info!(
                commit = self.replica.node().commit_index().get(),
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

    /// A deadline on the monotonic clock, in the replica's time.
    fn millis_at(&self, deadline: Instant) -> Millis {
        Millis(deadline.saturating_duration_since(self.origin).as_millis() as u64)
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
                Err(RecvTimeoutError::Timeout) => {
                    if self.storage_failed.is_none() {
                        self.step(Input::Tick);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.heartbeat.beat();
            if self.storage_failed.is_none() {
                // The round's writes go to Raft together: one persist batch, one append.
                self.step(Input::Flush);
            }
            self.watch_leader();
            self.publish_status();
            let all_durable = self.batch_persisted >= self.batch_sent;
            if self.shutting_down && (all_durable || self.storage_failed.is_some()) {
                break;
            }
        }
        self.fail_everything(ClientError::ShuttingDown);
        self.publish_status();
        tracing::info!("node loop stopped");
    }

    fn wait_duration(&self) -> Duration {
        let now = self.now().get();
        let mut wake_ms = now + LOOP_ROUND_INTERVAL_MAX.as_millis() as u64;
        if self.storage_failed.is_none() {
            wake_ms = wake_ms.min(self.wake_at.get());
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
        if event.is_refusable()
            && let Some(error) = self.refusal()
        {
            event.refuse(error);
            return;
        }
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
            Event::SnapshotEncoded { index, image } => {
                self.step(Input::SnapshotEncoded { index, image });
            }
            Event::Storage(StorageReport::Failed(error)) => {
                self.storage_failed = Some(error.clone());
                self.fail_everything(ClientError::StorageFailed(error));
            }
            Event::Write {
                tenant,
                operation,
                numbered,
                reply,
                deadline,
            } => {
                let id = self.request(ReplyTo::Write(reply));
                let deadline = self.millis_at(deadline);
                self.step(Input::Write {
                    id,
                    tenant,
                    operation,
                    numbered,
                    deadline,
                });
            }
            Event::RegisterClient { reply, deadline } => {
                let id = self.request(ReplyTo::Write(reply));
                let deadline = self.millis_at(deadline);
                self.step(Input::RegisterClient { id, deadline });
            }
            Event::Read {
                query,
                consistency,
                reply,
                deadline,
            } => {
                let id = self.request(ReplyTo::Read(reply));
                let deadline = self.millis_at(deadline);
                self.step(Input::Read {
                    id,
                    query,
                    consistency,
                    deadline,
                });
            }
            Event::Transfer { to, reply } => {
                let id = self.request(ReplyTo::Transfer(reply));
                self.step(Input::TransferLeadership { id, to });
            }
            Event::ChangeMembership {
                change,
                reply,
                deadline,
            } => {
                let id = self.request(ReplyTo::Membership(reply));
                let deadline = self.millis_at(deadline);
                self.step(Input::ChangeMembership {
                    id,
                    change,
                    deadline,
                });
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
        None
    }

    fn request(&mut self, reply: ReplyTo) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.replies.insert(id, reply);
        id
    }

    fn step(&mut self, input: Input) {
        let role_before = self.replica.node().role();
        let now = self.now();
        let output = self.replica.step(now, input);
        self.carry_out(output);
        self.follow_configuration();
        self.forget_catch_up_once_done();
        let node = self.replica.node();
        if node.role() == RoleName::Candidate && role_before != RoleName::Candidate {
            Metrics::count(&self.metrics.elections_started);
        }
        if node.leader() != self.leader {
            self.leader = node.leader();
            let followed = self.leader.filter(|&leader| leader != node.id());
            self.peers.watch.follow(followed, Instant::now());
            if let Some(leader) = self.leader {
                Metrics::count(&self.metrics.leader_changes);
                tracing::info!(%leader, term = %node.term(), "leader known");
            }
        }
    }

    /// Carries out one output in core's documented order: persist, send, answer.
    fn carry_out(&mut self, output: Output) {
        self.wake_at = output.wake_at;
        for batch in output.persist {
            let sequence = batch.id.sequence;
            if self.batches.send(batch).is_ok() {
                self.batch_sent = sequence;
            }
        }
        for envelope in output.messages {
            self.peers.sender.send(envelope);
        }
        for _ in &output.applied {
            Metrics::count(&self.metrics.entries_applied);
        }
        for answer in output.answers {
            self.deliver(answer);
        }
        if let Some(job) = output.snapshot_to_encode {
            // The encoder lives as long as this loop; should it have died, snapshots stop
            // and the log grows, which the operator sees in the disk usage and the logs.
            if self.encoder.send(job).is_err() {
                tracing::error!("the snapshot encoder stopped: no more snapshots are taken");
            }
        }
    }

    fn deliver(&mut self, answer: Answer) {
        let Some(reply) = self.replies.remove(&answer.id()) else {
            return;
        };
        match (answer, reply) {
            (Answer::Write { result, .. }, ReplyTo::Write(reply)) => {
                match &result {
                    Ok(_) => Metrics::count(&self.metrics.proposals),
                    Err(ReplicaError::NotLeader { .. })
                    | Err(ReplicaError::Overloaded(_))
                    | Err(ReplicaError::TooLarge { .. }) => {
                        Metrics::count(&self.metrics.proposals_rejected)
                    }
                    Err(_) => {}
                }
                let answer = match result {
                    Ok(applied) => applied.response.map_err(ClientError::Store),
                    Err(error) => Err(ClientError::from(error)),
                };
                reply.send(answer);
            }
            (Answer::Read { result, .. }, ReplyTo::Read(reply)) => {
                if result.is_ok() {
                    Metrics::count(&self.metrics.reads);
                }
                reply.send(result.map_err(ClientError::from));
            }
            (Answer::Transfer { result, .. }, ReplyTo::Transfer(reply)) => {
                reply.send(result.map_err(ClientError::from));
            }
            (Answer::Membership { result, .. }, ReplyTo::Membership(reply)) => {
                reply.send(result.map_err(ClientError::from));
            }
            _ => tracing::error!("an answer of the wrong kind for its request"),
        }
    }

    /// Answers every request in flight with `error`.
    fn fail_everything(&mut self, error: ClientError) {
        // The replica forgets what it was waiting for; every request it held has a reply here,
        // and each gets `error` rather than the replica's own answer.
        let _ = self.replica.fail_all(&ReplicaError::Timeout);
        for (_, reply) in std::mem::take(&mut self.replies) {
            match reply {
                ReplyTo::Write(reply) => reply.send(Err(error.clone())),
                ReplyTo::Read(reply) => reply.send(Err(error.clone())),
                ReplyTo::Transfer(reply) => reply.send(Err(error.clone())),
                ReplyTo::Membership(reply) => reply.send(Err(error.clone())),
            }
        }
    }

    /// Keeps the peer table in step with the configuration in force: the sender, the leader
    /// probes and the datagram receiver learn members added at runtime (from the addresses
    /// their entries carry) and forget removed ones.
    fn follow_configuration(&mut self) {
        let memberships = self.replica.node().log().memberships();
        let learned = memberships.newest_index() > LogIndex::ZERO;
        let newest = memberships.newest();
        if self
            .table_built_from
            .as_ref()
            .is_some_and(|(membership, was_learned)| {
                membership == newest && *was_learned == learned
            })
        {
            return;
        }
        let own = self.replica.node().id();
        let decode = |text: &str| MemberAddress::decode(text).map(|address| address.udp);
        let table = members::resolve(own, newest, learned, &self.peers.configured, decode);
        tracing::info!(
            voters = ?newest.voters,
            learners = ?newest.learners,
            peers = ?table,
            "the configuration in force changed: peer addresses updated"
        );
        // Senders still configured stay heard: a removed member that has not heard of its
        // removal is answered (harmlessly), and the bootstrap peers keep a joining node open.
        let mut heard: Vec<NodeId> = table.keys().copied().collect();
        heard.extend(self.peers.configured.keys().copied());
        heard.sort_unstable();
        heard.dedup();
        self.peers.known.set(heard);
        self.peers.watch.set_peers(table.clone());
        self.peers.sender.set_peers(table);
        self.table_built_from = Some((newest.clone(), learned));
    }

    fn publish_status(&mut self) {
        let raft = self.replica.node().status();
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
        Metrics::set(&self.metrics.is_leader, u64::from(self.replica.is_leader()));
        let memberships = self.replica.node().log().memberships();
        let newest_index = memberships.newest_index();
        let membership_learned = newest_index > LogIndex::ZERO;
        let committed = membership_learned && newest_index <= self.replica.node().commit_index();
        let status = NodeStatus {
            raft,
            membership: memberships.newest().clone(),
            membership_learned,
            committed_membership: committed.then(|| memberships.newest().clone()),
            store_revision: self.replica.store().revision().get(),
            storage_failed: self.storage_failed.clone(),
        };
        if let Ok(mut shared) = self.status.lock() {
            *shared = status;
        }
    }
}
