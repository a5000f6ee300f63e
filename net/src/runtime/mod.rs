//! The runtime of one node: starts the threads, and gives the server a [`NodeHandle`] to
//! submit writes and reads and to read the node's status.
//!
//! ```text
//!   udp-receive ──┐                         ┌──> UDP send (to peers)
//!   HTTP threads ─┼─> events ─> node loop ──┼──> storage thread ──> WAL (group commit)
//!   storage ──────┘  (channel)  (owns core  └──> replies (a waiting caller's channel, or
//!                               Node + Store)     an HTTP responder called in place)
//! ```
//!
//! The node loop is the only thread that touches the Raft node and the store. It makes no
//! Raft or store decisions: it feeds core inputs with the monotonic clock's time and carries
//! out core's outputs.
//!
//! A request is answered through a `Reply`: a caller that waits ([`NodeHandle::write`],
//! [`NodeHandle::read`]) gets the answer on a channel; one that does not
//! ([`NodeHandle::submit_write`], [`NodeHandle::submit_read`]) gives a function that the node
//! loop calls with the answer, so that an HTTP answer is queued for its connection with no
//! thread in between.

mod leader_watch;
pub mod liveness;
pub mod members;
mod node_loop;
mod snapshot_encoder;

use crate::datagram::Receiver as DatagramReceiver;
use crate::metrics::Metrics;
use crate::storage::{StorageReport, spawn_storage};
use crate::transport::{Prober, Sender, spawn_receiver};
use crate::wal::{Wal, WalConfig};
use leader_watch::LeaderWatch;
use liveness::Heartbeat;
use members::KnownPeers;
use node_loop::{NodeLoop, Peers};
use rafting_core::LogIndex;
use rafting_core::NodeId;
use rafting_core::raft::{
    Config, DurableState, Envelope, Membership, MembershipChange, Node, Status,
};
pub use rafting_core::replica::Consistency;
pub use rafting_core::replica::MembershipApplied;
use rafting_core::replica::{Numbered, RateRefusal, Replica, ReplicaConfig, ReplicaError};
use rafting_core::store::{
    ClientId, Operation, Outcome, Query, ReadAnswer, Store, StoreConfig, StoreError, TenantId,
};
use rafting_wal::ClusterId;
use rafting_wire::{ClusterKey, Sealer};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Core's configuration: identity, voters, timing, limits.
    pub raft: Config,
    pub store: StoreConfig,
    pub cluster_id: u64,
    pub udp_listen: SocketAddr,
    /// UDP address of every other voter.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    pub data_directory: PathBuf,
    /// How often the leader advances the replicated session clock.
    pub session_tick_interval_ms: u64,
    /// Client requests queued for the node loop at most; more wait at the channel.
    pub request_queue_max: usize,
    /// Entries and bytes applied between two snapshots (0: that trigger is off; see
    /// [`rafting_core::replica::ReplicaConfig`]).
    pub snapshot_every_entries: u64,
    pub snapshot_every_bytes: u64,
    /// Probe a leader that falls silent, so that its crash is noticed within a few heartbeat
    /// intervals when its host reports the port closed (see `transport::Prober`).
    pub leader_probes: bool,
    /// This node may bootstrap a new cluster from an empty data directory, voting at once
    /// (`--initial-cluster-state new`). Otherwise a member of a multi-node cluster that finds
    /// no log catches up from a leader before it votes or campaigns: its data may have been
    /// lost, and a voter that forgot what it acknowledged could elect a stale node.
    pub bootstrap: bool,
    /// The key derived from the cluster secret: every datagram is then authenticated and
    /// checked against replays (see `rafting_wire::auth`). `None`: an open cluster, whose
    /// datagrams carry no tag, as before authentication existed.
    pub cluster_key: Option<ClusterKey>,
}

/// The file that records, across restarts, that a node started on an empty disk and has not
/// caught up yet.
pub const CATCHING_UP_MARKER: &str = "catching-up";

/// Whether this start must catch up before voting, creating the marker that says so when
/// the data directory has no log yet. A restart in the middle of a catch-up finds the marker
/// and goes on catching up.
fn must_catch_up(config: &RuntimeConfig) -> std::io::Result<bool> {
    let marker = config.data_directory.join(CATCHING_UP_MARKER);
    if marker.exists() {
        return Ok(true);
    }
    let fresh = !config.data_directory.join("wal").exists();
    if !fresh || config.bootstrap || config.peers.is_empty() {
        return Ok(false);
    }
    record_catch_up(config)?;
    Ok(true)
}

/// Writes the catch-up marker durably, so a restart before the catch-up ends goes on with it.
fn record_catch_up(config: &RuntimeConfig) -> std::io::Result<()> {
    let file = std::fs::File::create(config.data_directory.join(CATCHING_UP_MARKER))?;
    file.sync_all()?;
    std::fs::File::open(&config.data_directory)?.sync_all()
}

/// What stamps this node's datagrams: nothing in an open cluster; with a cluster key, a new
/// incarnation made durable in the data directory first.
fn sealer_for(config: &RuntimeConfig) -> Result<Sealer, StartError> {
    let Some(key) = config.cluster_key.clone() else {
        return Ok(Sealer::open());
    };
    let incarnation = crate::incarnation::next_incarnation(&config.data_directory)
        .map_err(StartError::Incarnation)?;
    tracing::info!(
        incarnation,
        "datagrams are authenticated with the cluster secret"
    );
    Ok(Sealer::new(key, incarnation, config.peers.keys().copied()))
}

/// Why a client request failed. `code()` is stable and is what the REST API reports.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ClientError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the request timed out; a write may or may not have been applied")]
    Timeout,
    #[error("leadership changed before the write committed; it may or may not have been applied")]
    OutcomeUnknown { leader: Option<NodeId> },
    #[error("the leader is overloaded: {0}")]
    Overloaded(String),
    #[error("request of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// The tenant is over its request rate; retry after the time given.
    #[error(transparent)]
    RateLimited(RateRefusal),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("the node's storage failed: {0}")]
    StorageFailed(String),
    /// A membership change refused by the leader (`code` is the replica's: another change in
    /// progress, a leader not ready yet, an unknown member, a learner not caught up, ...).
    #[error("{message}")]
    MembershipRefused { code: &'static str, message: String },
}

impl ClientError {
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::NotLeader { .. } => "not_leader",
            ClientError::Store(error) => error.code(),
            ClientError::Timeout => "timeout",
            ClientError::OutcomeUnknown { .. } => "outcome_unknown",
            ClientError::Overloaded(_) => "overloaded",
            ClientError::TooLarge { .. } => "too_large",
            ClientError::RateLimited(refusal) => refusal.kind.code(),
            ClientError::ShuttingDown => "shutting_down",
            ClientError::StorageFailed(_) => "storage_failed",
            ClientError::MembershipRefused { code, .. } => code,
        }
    }
}

impl From<ReplicaError> for ClientError {
    fn from(error: ReplicaError) -> ClientError {
        match error {
            ReplicaError::NotLeader { leader } => ClientError::NotLeader { leader },
            ReplicaError::OutcomeUnknown { leader } => ClientError::OutcomeUnknown { leader },
            ReplicaError::Timeout => ClientError::Timeout,
            ReplicaError::Overloaded(reason) => ClientError::Overloaded(reason.into()),
            ReplicaError::TooLarge { size, max } => ClientError::TooLarge { size, max },
            ReplicaError::Store(error) => ClientError::Store(error),
            ReplicaError::RateLimited(refusal) => ClientError::RateLimited(refusal),
            ReplicaError::LeaderNotReady
            | ReplicaError::ChangeInProgress
            | ReplicaError::Membership(_) => ClientError::MembershipRefused {
                code: error.code(),
                message: error.to_string(),
            },
        }
    }
}

/// Where the answer to one client request goes: a function the node loop calls once, on its
/// own thread, so it must be quick and must not block (it hands the answer on: to a waiting
/// caller's channel, or to an HTTP connection's responder). A reply dropped unanswered (the
/// node loop ended, or the request never reached it) answers [`ClientError::ShuttingDown`],
/// so a request never silently disappears.
pub(crate) struct Reply<T> {
    answer: Option<Deliver<T>>,
}

/// What a [`Reply`] calls with the answer.
type Deliver<T> = Box<dyn FnOnce(Result<T, ClientError>) + Send>;

impl<T> Reply<T> {
    fn new(answer: impl FnOnce(Result<T, ClientError>) + Send + 'static) -> Reply<T> {
        Reply {
            answer: Some(Box::new(answer)),
        }
    }

    pub(crate) fn send(mut self, result: Result<T, ClientError>) {
        if let Some(answer) = self.answer.take() {
            answer(result);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            answer(Err(ClientError::ShuttingDown));
        }
    }
}

pub(crate) enum Event {
    Message(Envelope),
    Storage(StorageReport),
    Write {
        tenant: TenantId,
        operation: Operation,
        numbered: Option<Numbered>,
        reply: Reply<Outcome>,
        deadline: Instant,
    },
    RegisterClient {
        reply: Reply<Outcome>,
        deadline: Instant,
    },
    Read {
        query: Query,
        consistency: Consistency,
        reply: Reply<ReadAnswer>,
        deadline: Instant,
    },
    Transfer {
        to: NodeId,
        reply: Reply<()>,
    },
    ChangeMembership {
        change: MembershipChange,
        reply: Reply<MembershipApplied>,
        deadline: Instant,
    },
    Shutdown,
    /// The image of a snapshot the replica asked for, from the snapshot encoder.
    SnapshotEncoded {
        index: LogIndex,
        image: Vec<u8>,
    },
    /// Kills the node loop with a panic, for the tests of what follows a dead loop.
    InjectedPanic,
}

impl Event {
    /// A client request the node loop refuses while its storage has failed or it is shutting
    /// down (a leadership transfer is left to the replica).
    fn is_refusable(&self) -> bool {
        matches!(
            self,
            Event::Write { .. }
                | Event::RegisterClient { .. }
                | Event::Read { .. }
                | Event::ChangeMembership { .. }
        )
    }

    /// Answers a client request that will not reach the node loop with `error`.
    fn refuse(self, error: ClientError) {
        match self {
            Event::Write { reply, .. } | Event::RegisterClient { reply, .. } => {
                reply.send(Err(error))
            }
            Event::Read { reply, .. } => reply.send(Err(error)),
            Event::Transfer { reply, .. } => reply.send(Err(error)),
            Event::ChangeMembership { reply, .. } => reply.send(Err(error)),
            Event::Message(_)
            | Event::Storage(_)
            | Event::Shutdown
            | Event::SnapshotEncoded { .. }
            | Event::InjectedPanic => {}
        }
    }
}

/// A plain copy of the node's state, refreshed by the node loop after every step.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub raft: Status,
    /// The newest configuration in the log (the one in force), and whether it came from the
    /// log or a snapshot (`false`: the bootstrap one from the flags).
    pub membership: Membership,
    pub membership_learned: bool,
    /// The newest configuration once it is a committed entry of the log (or a snapshot's):
    /// what the cluster agreed on. `None` while it is the bootstrap one or uncommitted.
    pub committed_membership: Option<Membership>,
    pub store_revision: u64,
    pub storage_failed: Option<String>,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] rafting_core::raft::ConfigError),
    #[error("cannot open the write-ahead log: {0}")]
    Wal(#[from] rafting_wal::WalError),
    #[error("cannot bind UDP {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot record the catch-up marker in the data directory: {0}")]
    Marker(std::io::Error),
    #[error("cannot record this start's incarnation in the data directory: {0}")]
    Incarnation(std::io::Error),
    #[error("the snapshot file checks out but its store image does not load: {0}")]
    Snapshot(#[from] rafting_core::store::SnapshotError),
    #[error(
        "the log misses entries after its newest valid snapshot (damaged snapshot files: {damaged:?}) \
         and this node is its cluster's only voter, so no leader can bring it up to date; \
         restore the data directory from a backup, or start on an empty one (losing its data)"
    )]
    LostEntries { damaged: Vec<String> },
}

/// The server's door into a running node. Cheap to clone; every method may be called from
/// any thread.
#[derive(Clone)]
pub struct NodeHandle {
    events: SyncSender<Event>,
    status: Arc<Mutex<NodeStatus>>,
    heartbeat: Arc<Heartbeat>,
    metrics: Arc<Metrics>,
    id: NodeId,
}

/// The running node's threads, joined by [`Runtime::wait`].
pub struct Runtime {
    pub handle: NodeHandle,
    /// The threads the node cannot live without: storage, UDP receiver, node loop (last).
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Runtime {
    /// Recovers the node from its write-ahead log and starts its threads.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, StartError> {
        config.raft.validate()?;
        let id = config.raft.id;
        let catch_up = must_catch_up(&config).map_err(StartError::Marker)?;
        if catch_up {
            tracing::warn!(
                "the data directory holds no log: this node will not vote or campaign until a \
                 leader of the cluster has brought it up to date (its data may have been lost). \
                 To bootstrap a brand-new cluster, start every member once with \
                 --initial-cluster-state new"
            );
        }
        let wal_config = WalConfig::new(
            config.data_directory.join("wal"),
            ClusterId(config.cluster_id),
            id,
        );
        let (wal, recovered) = Wal::open(wal_config)?;
        for damaged in &recovered.damaged_snapshots {
            tracing::error!(%damaged, "skipped a damaged snapshot file; using an older one and the log");
        }
        if recovered.torn_tail_bytes > 0 {
            tracing::warn!(
                bytes = recovered.torn_tail_bytes,
                "cut a torn tail off the log"
            );
        }
        tracing::info!(
            entries = recovered.entries.len(),
            snapshot_index = recovered.snapshot.as_ref().map_or(0, |s| s.index.get()),
            "recovered the write-ahead log"
        );
        let durable = DurableState {
            hard_state: recovered.hard_state.unwrap_or_default(),
            entries: recovered.entries,
            snapshot: recovered.snapshot,
        };
        let mut raft_config = config.raft.clone();
        raft_config.catch_up_before_voting = catch_up;
        let node = Node::restart(raft_config, durable)?;
        let catch_up = if node.is_catching_up() && !catch_up {
            if node.membership().voters.iter().all(|&voter| voter == id) {
                return Err(StartError::LostEntries {
                    damaged: recovered.damaged_snapshots,
                });
            }
            tracing::error!(
                damaged = recovered.damaged_snapshots.len(),
                "the log on disk misses entries after its newest valid snapshot (the snapshot \
                 files that covered them are damaged): this node will not vote or campaign \
                 until a leader of the cluster has brought it up to date"
            );
            record_catch_up(&config).map_err(StartError::Marker)?;
            true
        } else {
            catch_up
        };
        let socket = UdpSocket::bind(config.udp_listen).map_err(|source| StartError::Bind {
            address: config.udp_listen,
            source,
        })?;
        match crate::socket_buffers::enlarge(&socket) {
            Ok((receive, send)) => tracing::info!(receive, send, "peer socket buffers"),
            Err(error) => tracing::warn!(%error, "cannot enlarge the peer socket's buffers"),
        }
        let metrics = Arc::new(Metrics::default());
        let (events, events_receiver) = mpsc::sync_channel(config.request_queue_max.max(16));
        let (batches, batches_receiver) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(NodeStatus {
            raft: node.status(),
            membership: node.membership().clone(),
            membership_learned: node.log().memberships().newest_index() > LogIndex::ZERO,
            committed_membership: None,
            store_revision: 0,
            storage_failed: None,
        }));
        let mut threads = Vec::new();
        let storage_events = events.clone();
        threads.push(
            spawn_storage(wal, batches_receiver, metrics.clone(), move |report| {
                storage_events.send(Event::Storage(report)).is_ok()
            })
            .map_err(StartError::Thread)?,
        );
        let receive_socket = socket.try_clone().map_err(StartError::Thread)?;
        let receiver = DatagramReceiver::new(
            config.cluster_id,
            id,
            config.peers.keys().copied().collect(),
            config.cluster_key.clone(),
        );
        let known = KnownPeers::new(config.peers.keys().copied().collect());
        let message_events = events.clone();
        threads.push(
            spawn_receiver(
                receive_socket,
                receiver,
                known.clone(),
                metrics.clone(),
                stop.clone(),
                move |m| message_events.send(Event::Message(m)).is_ok(),
            )
            .map_err(StartError::Thread)?,
        );
        let sealer = Arc::new(sealer_for(&config)?);
        let sender = Sender::new(
            socket,
            config.cluster_id,
            config.peers.clone(),
            sealer.clone(),
            metrics.clone(),
        )
        .map_err(StartError::Thread)?;
        let prober = config.leader_probes.then(|| {
            let peers = config.peers.clone();
            Prober::new(config.cluster_id, id, peers, sealer, metrics.clone())
        });
        let watch = LeaderWatch::new(prober, config.raft.heartbeat_interval_ms);
        let store = match node.snapshot() {
            Some(snapshot) => Store::restore(&snapshot.image)?,
            None => Store::new(config.store.clone()),
        };
        let replica_config = ReplicaConfig {
            session_tick_interval_ms: config.session_tick_interval_ms,
            snapshot_every_entries: config.snapshot_every_entries,
            snapshot_every_bytes: config.snapshot_every_bytes,
            ..ReplicaConfig::default()
        };
        let replica = Replica::new(node, store, replica_config);
        let (encoder, encoder_thread) =
            snapshot_encoder::spawn(events.clone()).map_err(StartError::Thread)?;
        threads.push(encoder_thread);
        let node_loop = NodeLoop::new(
            replica,
            Peers {
                sender,
                watch,
                configured: config.peers.clone(),
                known,
            },
            batches,
            encoder,
            metrics.clone(),
            status.clone(),
        );
        let node_loop = if catch_up {
            node_loop.catching_up(config.data_directory.join(CATCHING_UP_MARKER))
        } else {
            node_loop
        };
        let heartbeat = node_loop.heartbeat();
        threads.push(
            std::thread::Builder::new()
                .name("node".into())
                .spawn(move || node_loop.run(events_receiver))
                .map_err(StartError::Thread)?,
        );
        let handle = NodeHandle {
            events,
            status,
            heartbeat,
            metrics,
            id,
        };
        Ok(Runtime {
            handle,
            threads,
            stop,
        })
    }

    /// Asks the node to stop cleanly and waits for its threads: the batch in flight is made
    /// durable first.
    pub fn shutdown(self) {
        let _ = self.handle.events.send(Event::Shutdown);
        self.wait();
    }

    /// The name of a thread the node cannot live without (`node`, `storage`, `udp-receive`,
    /// `snapshot-encoder`) that has ended. None of them ends before a shutdown, so one that
    /// has ended died: it panicked, or returned because a thread it depends on is gone. The
    /// node is then half-alive (its HTTP workers still answer), and the caller should stop
    /// the process.
    /// The node loop is named first: the storage thread ends when the loop that feeds it is
    /// gone, so the loop is the likelier cause when both have ended.
    pub fn ended_thread(&self) -> Option<String> {
        self.threads
            .iter()
            .rev()
            .find(|thread| thread.is_finished())
            .map(|thread| thread.thread().name().unwrap_or("unnamed").to_owned())
    }

    /// Waits for the node's threads to end (after a shutdown).
    pub fn wait(mut self) {
        if let Some(node_thread) = self.threads.pop() {
            let _ = node_thread.join();
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

impl NodeHandle {
    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn status(&self) -> NodeStatus {
        self.status
            .lock()
            .map(|status| status.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// How long since the node loop last went round. A live loop goes round at least every
    /// [`liveness::LOOP_ROUND_INTERVAL_MAX`], idle or not; a longer silence means it is dead
    /// or wedged, whatever the last published status says.
    pub fn loop_silence(&self) -> Duration {
        self.heartbeat.silence()
    }

    /// Makes the node loop panic, to test what a dead loop leads to. Nothing in production
    /// calls it: the server offers it only as a route that an environment variable enables.
    #[doc(hidden)]
    pub fn inject_node_loop_panic(&self) {
        let _ = self.events.send(Event::InjectedPanic);
    }

    /// Replicates one write and waits for its answer from the state machine. It is numbered
    /// on the leader's own client record: a retry after an unknown outcome may apply twice
    /// (use [`NodeHandle::write_numbered`] for exactly-once).
    pub fn write(
        &self,
        tenant: TenantId,
        operation: Operation,
        timeout: Duration,
    ) -> Result<Outcome, ClientError> {
        self.write_numbered(tenant, operation, None, timeout)
    }

    /// Replicates one write numbered by an external client (see
    /// [`NodeHandle::register_client`]): a retry with the same numbering is answered with
    /// the first attempt's answer and never applied twice.
    pub fn write_numbered(
        &self,
        tenant: TenantId,
        operation: Operation,
        numbered: Option<Numbered>,
        timeout: Duration,
    ) -> Result<Outcome, ClientError> {
        let deadline = Instant::now() + timeout;
        self.call(timeout, |reply| Event::Write {
            tenant,
            operation,
            numbered,
            reply,
            deadline,
        })
    }

    /// [`NodeHandle::write_numbered`] without waiting: returns at once, and `on_answer` gets
    /// the outcome later, once, on the node loop's thread, by the deadline `timeout` sets.
    /// `on_answer` must be quick and must not block (hand the answer on), as the node loop
    /// waits for it; in exchange no thread waits for the cluster, and an answer reaches an
    /// HTTP connection with no hop through a waiting thread. A full request queue answers
    /// [`ClientError::Overloaded`] at once, on the caller's thread.
    pub fn submit_write(
        &self,
        tenant: TenantId,
        operation: Operation,
        numbered: Option<Numbered>,
        timeout: Duration,
        on_answer: impl FnOnce(Result<Outcome, ClientError>) + Send + 'static,
    ) {
        self.submit(Event::Write {
            tenant,
            operation,
            numbered,
            reply: Reply::new(on_answer),
            deadline: Instant::now() + timeout,
        });
    }

    /// [`NodeHandle::read`] without waiting, answered as [`NodeHandle::submit_write`] is.
    pub fn submit_read(
        &self,
        query: Query,
        consistency: Consistency,
        timeout: Duration,
        on_answer: impl FnOnce(Result<ReadAnswer, ClientError>) + Send + 'static,
    ) {
        self.submit(Event::Read {
            query,
            consistency,
            reply: Reply::new(on_answer),
            deadline: Instant::now() + timeout,
        });
    }

    /// Registers an exactly-once client record and returns its id.
    pub fn register_client(&self, timeout: Duration) -> Result<ClientId, ClientError> {
        let deadline = Instant::now() + timeout;
        match self.call(timeout, |reply| Event::RegisterClient { reply, deadline })? {
            Outcome::ClientRegistered { client } => Ok(client),
            other => {
                tracing::error!(?other, "a registration answered with another outcome");
                Err(ClientError::Timeout)
            }
        }
    }

    /// Serves a read at the requested consistency.
    pub fn read(
        &self,
        query: Query,
        consistency: Consistency,
        timeout: Duration,
    ) -> Result<ReadAnswer, ClientError> {
        let deadline = Instant::now() + timeout;
        self.call(timeout, |reply| Event::Read {
            query,
            consistency,
            reply,
            deadline,
        })
    }

    /// Asks the leader to hand leadership to `to`. Returns once the request is accepted.
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), ClientError> {
        self.call(Duration::from_secs(5), |reply| Event::Transfer {
            to,
            reply,
        })
    }

    /// Proposes one membership change through the leader and waits until it has committed and
    /// been applied here (or was refused: another change in progress, a leader not ready, a
    /// learner not caught up, ...).
    pub fn change_membership(
        &self,
        change: MembershipChange,
        timeout: Duration,
    ) -> Result<MembershipApplied, ClientError> {
        let deadline = Instant::now() + timeout;
        self.call(timeout, |reply| Event::ChangeMembership {
            change,
            reply,
            deadline,
        })
    }

    /// Asks the node to shut down cleanly (the batch in flight is made durable).
    pub fn request_shutdown(&self) {
        let _ = self.events.send(Event::Shutdown);
    }

    /// Hands a request to the node loop and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        timeout: Duration,
        event: impl FnOnce(Reply<T>) -> Event,
    ) -> Result<T, ClientError> {
        let (sender, answer) = mpsc::channel();
        let reply = Reply::new(move |result| {
            let _ = sender.send(result);
        });
        self.events
            .send(event(reply))
            .map_err(|_| ClientError::ShuttingDown)?;
        // The node loop answers by the deadline; the margin covers a loop busy at that moment.
        match answer.recv_timeout(timeout + Duration::from_millis(500)) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(ClientError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::ShuttingDown),
        }
    }

    /// Hands a request to the node loop without waiting, for [`NodeHandle::submit_write`] and
    /// [`NodeHandle::submit_read`]. A full queue is not waited on: the request is answered
    /// [`ClientError::Overloaded`] at once (the queue holds thousands of requests, so it fills
    /// only when the node is far behind, and then a caller that must not block, an HTTP event
    /// loop, is better told so than stalled).
    fn submit(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                event.refuse(ClientError::Overloaded(
                    "the node's request queue is full".into(),
                ));
            }
            // Dropping the event answers its reply: the node is shutting down.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}
