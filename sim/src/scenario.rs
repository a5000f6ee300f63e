//! Scenario files: the TOML a human writes to describe a simulated cluster, its faults, its
//! workload, scripted events and expectations. `scenarios/README.md` documents every key.
//!
//! Parsing is strict: an unknown key or a bad value is an error naming the key and the file.
//! Ranges (`[low, high]`, or a single number meaning exactly that) are drawn once per seed
//! (swarm testing, see [`crate::params`]), so some seeds run calm and others brutal.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a scenario could not be loaded.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Parse {
        file: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

impl ScenarioError {
    /// A stable code for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            ScenarioError::Read { .. } => "scenario_read",
            ScenarioError::Parse { .. } => "scenario_parse",
            ScenarioError::Invalid { .. } => "scenario_invalid",
        }
    }
}

/// The assumptions a scenario runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Exactly what the original brief assumes: identical node lists, atomic persistence,
    /// links that lose messages but never reorder or duplicate them, no attacker.
    Brief,
    /// Reordering, duplication, torn tails, every partition kind, pauses and clock drift.
    Relaxed,
}

/// A closed range `[low, high]` drawn from once per seed. A single number means exactly it.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Span<T> {
    Exactly(T),
    Between([T; 2]),
}

impl<T: Copy + PartialOrd + Default> Span<T> {
    pub fn low(&self) -> T {
        match self {
            Span::Exactly(value) => *value,
            Span::Between([low, _]) => *low,
        }
    }

    pub fn high(&self) -> T {
        match self {
            Span::Exactly(value) => *value,
            Span::Between([_, high]) => *high,
        }
    }

    pub fn zero() -> Self {
        Span::Exactly(T::default())
    }
}

impl<T: Copy + PartialOrd + Default> Default for Span<T> {
    fn default() -> Self {
        Span::zero()
    }
}

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub profile: Profile,
    pub nodes: u64,
    /// Swarm over the cluster size: each seed draws its own size in `[low, high]` (at most
    /// `nodes`), so one scenario runs single nodes, even sizes and large clusters alike.
    #[serde(default)]
    pub nodes_drawn: Option<[u64; 2]>,
    /// The voters the cluster starts with: nodes `1..=initial_voters` (default: every node).
    /// The other hosts are spares: they start empty, outside the configuration (each a
    /// joining learner of its own, like `rafting node --join`), until an `add_node` event
    /// brings them in.
    #[serde(default)]
    pub initial_voters: Option<u64>,
    /// Test-only planted bug ([`rafting_core::raft::Config::planted_membership_unguarded`]):
    /// leaders propose membership changes without the commit-first and one-at-a-time rules.
    /// Never read from a file.
    #[serde(skip)]
    pub planted_membership_unguarded: bool,
    /// Test-only planted bug ([`rafting_core::raft::Config::planted_commit_by_counting`]):
    /// leaders commit entries of earlier terms by counting replicas. Never read from a file.
    #[serde(skip)]
    pub planted_commit_by_counting: bool,
    /// Length of the safety phase (faults on), in simulated milliseconds.
    pub duration_ms: u64,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub network: NetworkRanges,
    #[serde(default)]
    pub partitions: PartitionRanges,
    #[serde(default)]
    pub crashes: CrashRanges,
    #[serde(default)]
    pub pauses: PauseRanges,
    #[serde(default)]
    pub disk: DiskRanges,
    /// Snapshots and log compaction (off unless the scenario asks).
    #[serde(default)]
    pub snapshots: SnapshotRanges,
    #[serde(default)]
    pub clock: ClockRanges,
    /// The members share a cluster secret: datagrams are authenticated as the runtime's with
    /// `--cluster-secret-file` (the network then carries real bytes, see [`crate::attacker`]).
    #[serde(default)]
    pub secret: bool,
    /// A non-member that sends forged, replayed and mutated datagrams (relaxed only).
    #[serde(default)]
    pub attacker: AttackerRanges,
    #[serde(default)]
    pub workload: Workload,
    /// Ranges of the store's own limits each seed draws (see [`crate::kv::limits`]).
    #[serde(default)]
    pub store: crate::kv::limits::StoreRanges,
    /// The services workload's members (`workload.kind = "services"`).
    #[serde(default)]
    pub services: crate::services::ServicesSection,
    /// KV only: tenants created at the start, each with its own clients (`[[tenants]]`).
    #[serde(default)]
    pub tenants: Vec<TenantSection>,
    #[serde(default)]
    pub liveness: Liveness,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub events: Vec<ScriptedEvent>,
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// A protocol option that is either set, or drawn per seed (`"either"`), so that one
/// safeguard never hides a bug in another in every seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Toggle {
    Fixed(bool),
    Drawn(Either),
}

/// The one word a drawn [`Toggle`] is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Either {
    Either,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: [u64; 2],
    pub pre_vote: Toggle,
    pub check_quorum: Toggle,
    /// The nodes' batching and flow-control limits, each a range drawn once per seed (the same
    /// for every node), so that limits the workloads never approach at their defaults are
    /// reached in some seeds. Defaults: `rafting_core::raft::Config::new`'s.
    pub entries_per_append_max: Span<u64>,
    pub bytes_per_append_max: Span<u64>,
    pub inflight_messages_max: Span<u64>,
    pub inflight_bytes_max: Span<u64>,
    pub uncommitted_entries_max: Span<u64>,
    pub uncommitted_bytes_max: Span<u64>,
    pub pending_reads_max: Span<u64>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval_ms: 100,
            election_timeout_ms: [1000, 2000],
            pre_vote: Toggle::Fixed(true),
            check_quorum: Toggle::Fixed(true),
            entries_per_append_max: Span::Exactly(256),
            bytes_per_append_max: Span::Exactly(48 * 1024),
            inflight_messages_max: Span::Exactly(64),
            inflight_bytes_max: Span::Exactly(4 * 1024 * 1024),
            uncommitted_entries_max: Span::Exactly(10_000),
            uncommitted_bytes_max: Span::Exactly(32 * 1024 * 1024),
            pending_reads_max: Span::Exactly(10_000),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkRanges {
    /// One-way latency of each message is drawn from this range.
    pub latency_ms: [u64; 2],
    pub loss_probability: Span<f64>,
    pub duplicate_probability: Span<f64>,
    /// Probability that a message is held back by up to `reorder_delay_ms_max` extra.
    pub reorder_probability: Span<f64>,
    pub reorder_delay_ms_max: u64,
}

impl Default for NetworkRanges {
    fn default() -> Self {
        NetworkRanges {
            latency_ms: [1, 10],
            loss_probability: Span::zero(),
            duplicate_probability: Span::zero(),
            reorder_probability: Span::zero(),
            reorder_delay_ms_max: 50,
        }
    }
}

/// The kinds of partition the random fault injector can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// The nodes split into two random groups.
    Halves,
    /// The current leader is cut off from everyone.
    IsolateLeader,
    /// Two groups that cannot see each other, and one node that sees both.
    Bridge,
    /// One node can send but not receive, or receive but not send.
    OneWay,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionRanges {
    pub per_minute: Span<f64>,
    pub duration_ms: [u64; 2],
    pub kinds: Vec<PartitionKind>,
}

/// Which node a random crash hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashTarget {
    /// Any running node.
    #[default]
    Any,
    /// The running leader with the highest term (no crash when there is none).
    Leader,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrashRanges {
    pub per_minute: Span<f64>,
    pub restart_delay_ms: [u64; 2],
    pub target: CrashTarget,
    /// Probability that a crash also wipes the node's disk (relaxed only): it restarts with
    /// nothing, as after a replaced or re-imaged disk, and must catch up before it may vote.
    /// Only one node at a time is wiped and not yet caught up (more would lose data that no
    /// protocol could keep).
    pub wipe_probability: Span<f64>,
    /// Test-only planted bug: a wiped node restarts as a voter at once, as RAFTiNG did before
    /// issue 10. Never read from a file.
    #[serde(skip)]
    pub planted_wiped_node_votes: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PauseRanges {
    pub per_minute: Span<f64>,
    pub duration_ms: [u64; 2],
}

/// When nodes snapshot their store and compact their log, and the faults that concern
/// snapshots. Each seed draws its own values.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotRanges {
    /// Entries applied between two snapshots of a node (zero: never snapshot).
    pub every_entries: Span<u64>,
    /// Bytes of image per InstallSnapshot chunk (zero: the node's default).
    pub chunk_bytes: Span<u64>,
    /// Probability that a crash also flips a bit of the node's newest snapshot file (only
    /// when the previous snapshot and the log still cover what it held: a damaged newest
    /// snapshot must never cost acknowledged data).
    pub corrupt_probability: Span<f64>,
    /// Probability that an InstallSnapshot chunk arrives with one bit of its data flipped
    /// (damage the datagram checksum missed); the end-to-end CRC must refuse the image.
    pub chunk_corruption_probability: Span<f64>,
    /// Test-only planted bug ([`rafting_core::raft::Config::planted_snapshot_unverified`]):
    /// followers install snapshots without checking their CRC. Never read from a file.
    #[serde(skip)]
    pub planted_unverified: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskRanges {
    pub fsync_latency_ms: [u64; 2],
    /// Probability that a crash tears the write in progress (keeps a prefix of its records).
    pub torn_write_probability: Span<f64>,
}

impl Default for DiskRanges {
    fn default() -> Self {
        DiskRanges {
            fsync_latency_ms: [1, 5],
            torn_write_probability: Span::zero(),
        }
    }
}

/// The attacker fault: a process on the network, no member, sending bad datagrams.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttackerRanges {
    /// Datagrams it sends per simulated second (range; 0, the default: no attacker).
    pub per_second: Span<f64>,
    /// Send forged messages (a higher-term AppendEntries committing a forged entry).
    pub forge: bool,
    /// Send captured genuine datagrams again.
    pub replay: bool,
    /// Send captured datagrams with bits flipped and the checksum fixed.
    pub mutate: bool,
    /// Claim to be a member half the time (otherwise a non-member id).
    pub spoof_member: bool,
}

impl Default for AttackerRanges {
    fn default() -> Self {
        AttackerRanges {
            per_second: Span::zero(),
            forge: true,
            replay: true,
            mutate: true,
            spoof_member: true,
        }
    }
}

impl AttackerRanges {
    pub fn enabled(&self) -> bool {
        self.per_second.high() > 0.0
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockRanges {
    /// Largest relative deviation of a node's timer rate from real time (0.05 = ±5%).
    pub drift_max: Span<f64>,
}

/// What the simulated clients ask of the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Opaque commands with unique payloads; nothing is applied to a state machine.
    #[default]
    Opaque,
    /// Store requests (get, put, delete, cas, list, transactions, sessions with ephemeral
    /// keys) applied to every node's `Store`, with a linearizability check at the end.
    Kv,
    /// Members of a master/standby service group, as processes of their own (see
    /// [`crate::services`]).
    Services,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub clients: u64,
    /// Think time between a client's requests.
    pub request_interval_ms: Span<u64>,
    /// A request unanswered after this long is recorded as "maybe happened" and retried.
    pub request_timeout_ms: u64,
    /// KV only: keys per directory; there are two directories (`/kv/d0`, `/kv/d1`), and lists
    /// and transactions stay inside one.
    pub keys_per_directory: u64,
    /// KV only: the TTL of the clients' sessions.
    pub session_ttl_ms: u64,
    /// KV only: how often the leader proposes a `Tick` of the replicated session clock.
    pub session_tick_interval_ms: u64,
    /// KV only: probability that a client sends its next request to a random node instead of
    /// the one it last knew as leader. Clients otherwise all follow the leader's hints and move
    /// together, so a deposed leader that still serves would be asked only by clients that
    /// nobody else contradicts; wandering clients find the new leader and write through it.
    pub wander_probability: Span<f64>,
    /// One-way delay between a client and a node, drawn per request and per answer. Zero (the
    /// default) hands a request to the node in the same instant the client sends it.
    pub client_latency_ms: [u64; 2],
    /// A request sent to a paused node waits in its socket and is handed to it when it resumes,
    /// before what its peers sent meanwhile (a node that wakes from a long pause answers its
    /// clients on what it believed when it stopped). Otherwise a paused node refuses at once.
    pub hold_requests_while_paused: bool,
    /// KV only: requests at the store's edges. Each directory's name is a key too, beside a key
    /// that sorts between it and its subtree (`/kv/d0`, `/kv/d0-b`, `/kv/d0/k0`); transactions
    /// compare versions with `Greater` and `Less` and compare values; a client acknowledges
    /// its answers a few requests late, so the store keeps several cached and a retry must
    /// find its own among them; and a client sometimes overwrites its ephemeral key without
    /// its session before closing it, so the close must not delete it.
    pub kv_edge_cases: bool,
    /// Test-only planted anomaly: KV reads skip ReadIndex and are served from the store of
    /// the running node that has applied least (stale reads). Never read from a file.
    #[serde(skip)]
    pub planted_stale_reads: bool,
    /// Test-only planted bug: the store never checks the keys cap
    /// (`StoreConfig::planted_keys_cap_unchecked`). Never read from a file.
    #[serde(skip)]
    pub planted_keys_cap_unchecked: bool,
    /// Test-only planted bug: the replica admits writes first come first served, without
    /// per-tenant shares or rates (`ReplicaConfig::planted_unfair_admission`).
    #[serde(skip)]
    pub planted_unfair_admission: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            kind: WorkloadKind::Opaque,
            clients: 3,
            request_interval_ms: Span::Between([10, 100]),
            request_timeout_ms: 3000,
            keys_per_directory: 3,
            session_ttl_ms: 5000,
            session_tick_interval_ms: 200,
            wander_probability: Span::zero(),
            client_latency_ms: [0, 0],
            hold_requests_while_paused: false,
            kv_edge_cases: false,
            planted_stale_reads: false,
            planted_keys_cap_unchecked: false,
            planted_unfair_admission: false,
        }
    }
}

/// A tenant of the KV workload. Its first client creates it at the start through the store's
/// tenant command (as an administrator would, through the log); then each of its clients acts
/// in it. A well-behaved tenant's clients run the KV workload (its history is checked for
/// linearizability on its own); a hostile tenant's clients flood.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub name: String,
    /// The tenant's caps (absent ones are unlimited), as `POST /v1/tenants` takes them.
    #[serde(default)]
    pub caps: rafting_core::store::Caps,
    pub clients: u64,
    /// Its clients flood: every `flood_interval_ms`, a write of `value_bytes` to a new key or
    /// a session opened and never renewed, to the leader, without waiting for answers.
    #[serde(default)]
    pub hostile: bool,
    /// Hostile only: the size of its values.
    #[serde(default = "TenantSection::value_bytes_default")]
    pub value_bytes: usize,
    /// Hostile only: each of its clients sends a write this often, answered or not.
    #[serde(default = "TenantSection::flood_interval_ms_default")]
    pub flood_interval_ms: u64,
    /// Well-behaved only: every request of its clients is answered within this many
    /// milliseconds of its first attempt (the `tenant_latency` check). For scenarios without
    /// faults: a fault may hold any request up to its timeout.
    #[serde(default)]
    pub latency_ms_max: Option<u64>,
}

impl TenantSection {
    fn value_bytes_default() -> usize {
        64 * 1024
    }

    fn flood_interval_ms_default() -> u64 {
        2
    }
}

/// Bounds on one seed's work, so that a bug that makes nodes chatter without end (a livelock,
/// a message storm) ends the seed as a reported `hang` instead of running forever.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Events one seed may process.
    pub events_max: u64,
    /// Events that may wait in the queue at once (messages in flight, timers, ...): the
    /// simulator's memory.
    pub queued_events_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            events_max: 20_000_000,
            queued_events_max: 1_000_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Liveness {
    /// After the safety phase, the healed cluster must elect a leader and finish every
    /// pending request within this many simulated milliseconds.
    pub bound_ms: u64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { bound_ms: 15_000 }
    }
}

/// An event scripted at a simulated time.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptedEvent {
    CrashLeader {
        at_ms: u64,
    },
    /// `wipe = true` (relaxed only): the crash also takes the node's whole disk, as
    /// `crashes.wipe_probability` would, unless another wiped node is still catching up.
    Crash {
        at_ms: u64,
        node: u64,
        #[serde(default)]
        wipe: bool,
    },
    CrashAll {
        at_ms: u64,
    },
    Restart {
        at_ms: u64,
        node: u64,
    },
    RestartAll {
        at_ms: u64,
    },
    Isolate {
        at_ms: u64,
        node: u64,
    },
    IsolateLeader {
        at_ms: u64,
    },
    Partition {
        at_ms: u64,
        groups: Vec<Vec<u64>>,
    },
    /// The link between the two nodes of `between` is cut both ways; they still reach
    /// everyone else (a partial partition).
    CutLink {
        at_ms: u64,
        between: [u64; 2],
    },
    /// `node` keeps sending but receives nothing (`receive = false`) or the reverse.
    OneWay {
        at_ms: u64,
        node: u64,
        receive: bool,
    },
    Heal {
        at_ms: u64,
    },
    /// Sets the message loss probability from now on.
    Network {
        at_ms: u64,
        loss_probability: f64,
    },
    Pause {
        at_ms: u64,
        node: u64,
        duration_ms: u64,
    },
    /// The running leader (the one with the highest term) stops for `duration_ms`, then runs
    /// on with whatever it believed; what arrived meanwhile follows.
    PauseLeader {
        at_ms: u64,
        duration_ms: u64,
    },
    /// The next node to win an election after `at_ms` stops for `duration_ms` in the step it
    /// wins, before its first entry of the term can commit (it has sent its no-op; the
    /// answers wait for it).
    PauseNewLeader {
        at_ms: u64,
        duration_ms: u64,
    },
    /// The next node to win an election after `at_ms` is cut off from every other node in
    /// the step it wins, before its first messages leave: its no-op stays on it alone (the
    /// paper's S5 in Figure 8, a leader whose entry of a later term nobody else holds).
    IsolateNewLeader {
        at_ms: u64,
    },
    /// After `at_ms`, the first leader whose commit index advances to or past the last index
    /// of every node it cannot reach is cut off from every other node in that step, before
    /// its messages leave: no follower learns of the commit, and the appends it was about to
    /// send are lost (Figure 8's leader, lost right after committing at an index that a
    /// cut-off node may hold differently). The cut replaces the network's shape, so the nodes
    /// it could not reach are back.
    IsolateLeaderOnCommit {
        at_ms: u64,
    },
    /// The running leader is asked to hand leadership over to `to`.
    TransferLeader {
        at_ms: u64,
        to: u64,
    },
    /// `node` is told to start an election now (`Input::Campaign`; PreVote first if on).
    Campaign {
        at_ms: u64,
        node: u64,
    },
    /// `node` (default: the leader at that moment) is removed from the configuration, its
    /// disk is wiped, and it joins again as a learner and is promoted once caught up: each
    /// change proposed to the leader and retried until it commits. One replacement at a time.
    ReplaceNode {
        at_ms: u64,
        #[serde(default)]
        node: Option<u64>,
    },
    /// `node`, a spare host outside the configuration (see `initial_voters`), is added as a
    /// learner and promoted once caught up, each change proposed to the leader and retried
    /// until it commits. Changes scripted at the same time are proposed together, each turn:
    /// the leader's one-change-at-a-time rule orders them.
    AddNode {
        at_ms: u64,
        node: u64,
    },
    /// `node` (default: the leader at that moment) is removed from the configuration, retried
    /// until the removal commits. The removed node keeps running with what it has: it must not
    /// disrupt the cluster (`removed_node_quiet`).
    RemoveNode {
        at_ms: u64,
        #[serde(default)]
        node: Option<u64>,
    },
}

impl ScriptedEvent {
    pub fn at_ms(&self) -> u64 {
        match self {
            ScriptedEvent::CrashLeader { at_ms }
            | ScriptedEvent::Crash { at_ms, .. }
            | ScriptedEvent::CrashAll { at_ms }
            | ScriptedEvent::Restart { at_ms, .. }
            | ScriptedEvent::RestartAll { at_ms }
            | ScriptedEvent::Isolate { at_ms, .. }
            | ScriptedEvent::IsolateLeader { at_ms }
            | ScriptedEvent::Partition { at_ms, .. }
            | ScriptedEvent::OneWay { at_ms, .. }
            | ScriptedEvent::CutLink { at_ms, .. }
            | ScriptedEvent::Heal { at_ms }
            | ScriptedEvent::Network { at_ms, .. }
            | ScriptedEvent::Pause { at_ms, .. }
            | ScriptedEvent::PauseLeader { at_ms, .. }
            | ScriptedEvent::PauseNewLeader { at_ms, .. }
            | ScriptedEvent::IsolateNewLeader { at_ms }
            | ScriptedEvent::IsolateLeaderOnCommit { at_ms }
            | ScriptedEvent::TransferLeader { at_ms, .. }
            | ScriptedEvent::Campaign { at_ms, .. }
            | ScriptedEvent::ReplaceNode { at_ms, .. }
            | ScriptedEvent::AddNode { at_ms, .. }
            | ScriptedEvent::RemoveNode { at_ms, .. } => *at_ms,
        }
    }

    /// Node ids the event names explicitly.
    fn named_nodes(&self) -> Vec<u64> {
        match self {
            ScriptedEvent::Crash { node, .. }
            | ScriptedEvent::Restart { node, .. }
            | ScriptedEvent::Isolate { node, .. }
            | ScriptedEvent::OneWay { node, .. }
            | ScriptedEvent::Pause { node, .. }
            | ScriptedEvent::Campaign { node, .. } => vec![*node],
            ScriptedEvent::TransferLeader { to, .. } => vec![*to],
            ScriptedEvent::ReplaceNode { node, .. } | ScriptedEvent::RemoveNode { node, .. } => {
                node.iter().copied().collect()
            }
            ScriptedEvent::AddNode { node, .. } => vec![*node],
            ScriptedEvent::Partition { groups, .. } => groups.iter().flatten().copied().collect(),
            ScriptedEvent::CutLink { between, .. } => between.to_vec(),
            _ => Vec::new(),
        }
    }
}

/// A property stated for a simulated time. `among` lists node ids (default: every node).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// Exactly one of `among` is leader.
    SingleLeader {
        at_ms: u64,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// None of `among` is leader.
    NoLeader {
        at_ms: u64,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// The highest commit index among `among` did not move between `since_ms` and `at_ms`.
    NoCommit {
        since_ms: u64,
        at_ms: u64,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// Every running node of `among` has committed at least `entries` entries.
    CommittedAtLeast {
        at_ms: u64,
        entries: u64,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// The seed has reached the protocol situation `state` (one of
    /// [`crate::coverage::STATES`]) by `at_ms`: the scenario's story really happened.
    Reached {
        at_ms: u64,
        state: String,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// The seed has *not* reached the protocol situation `state` by `at_ms`: for stories
    /// where reaching it is the bug (say, `leader_change` while a healthy leader should keep
    /// its lease).
    NotReached {
        at_ms: u64,
        state: String,
        #[serde(default)]
        among: Vec<u64>,
    },
    /// Every running node of `among` passes [`crate::checkers::store_consistent`]: its store
    /// reads the same through listings, pages, gets and its watch history (KV workload).
    StoreConsistent {
        at_ms: u64,
        #[serde(default)]
        among: Vec<u64>,
    },
}

impl Expectation {
    pub fn at_ms(&self) -> u64 {
        match self {
            Expectation::SingleLeader { at_ms, .. }
            | Expectation::NoLeader { at_ms, .. }
            | Expectation::NoCommit { at_ms, .. }
            | Expectation::CommittedAtLeast { at_ms, .. }
            | Expectation::Reached { at_ms, .. }
            | Expectation::NotReached { at_ms, .. }
            | Expectation::StoreConsistent { at_ms, .. } => *at_ms,
        }
    }

    pub fn among(&self) -> &[u64] {
        match self {
            Expectation::SingleLeader { among, .. }
            | Expectation::NoLeader { among, .. }
            | Expectation::NoCommit { among, .. }
            | Expectation::CommittedAtLeast { among, .. }
            | Expectation::Reached { among, .. }
            | Expectation::NotReached { among, .. }
            | Expectation::StoreConsistent { among, .. } => among,
        }
    }

    /// The name a failure of this expectation is reported under.
    pub fn name(&self) -> &'static str {
        match self {
            Expectation::SingleLeader { .. } => "expect_single_leader",
            Expectation::NoLeader { .. } => "expect_no_leader",
            Expectation::NoCommit { .. } => "expect_no_commit",
            Expectation::CommittedAtLeast { .. } => "expect_committed_at_least",
            Expectation::Reached { .. } => "expect_reached",
            Expectation::NotReached { .. } => "expect_not_reached",
            Expectation::StoreConsistent { .. } => crate::checkers::check::STORE_CONSISTENT,
        }
    }
}

impl Scenario {
    /// All clients: the workload's own (in the default tenant), then each tenant's.
    pub fn client_count(&self) -> u64 {
        self.workload.clients
            + self
                .tenants
                .iter()
                .map(|tenant| tenant.clients)
                .sum::<u64>()
    }

    /// The tenant of each client, as a position in [`Scenario::tenants`] (`None`: the default
    /// tenant), in the order of [`Scenario::client_count`]'s clients.
    pub fn client_tenants(&self) -> Vec<Option<usize>> {
        let own = (0..self.workload.clients).map(|_| None);
        let tenants = self
            .tenants
            .iter()
            .enumerate()
            .flat_map(|(position, tenant)| (0..tenant.clients).map(move |_| Some(position)));
        own.chain(tenants).collect()
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses and validates scenario text; `file` only names the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            file: file.to_path_buf(),
            source: Box::new(source),
        })?;
        crate::validate::validate(&scenario).map_err(|(key, message)| ScenarioError::Invalid {
            file: file.to_path_buf(),
            key,
            message,
        })?;
        // A misspelt state would make `not_reached` pass vacuously.
        for (position, expectation) in scenario.expect.iter().enumerate() {
            if let Expectation::NotReached { state, .. } = expectation
                && !crate::coverage::STATES.contains(&state.as_str())
            {
                return Err(ScenarioError::Invalid {
                    file: file.to_path_buf(),
                    key: format!("expect[{position}].state"),
                    message: format!(
                        "unknown state; one of {}",
                        crate::coverage::STATES.join(", ")
                    ),
                });
            }
        }
        Ok(scenario)
    }

    /// Every node id named by scripted events and expectations.
    pub(crate) fn named_nodes(&self) -> Vec<(String, u64)> {
        let mut named = Vec::new();
        for (position, event) in self.events.iter().enumerate() {
            for node in event.named_nodes() {
                named.push((format!("events[{position}]"), node));
            }
        }
        for (position, expectation) in self.expect.iter().enumerate() {
            for &node in expectation.among() {
                named.push((format!("expect[{position}].among"), node));
            }
        }
        named
    }
}
