//! The discrete-event loop: one seed, one thread, every event ordered by (simulated time,
//! sequence number), so a seed always replays the same way.
//!
//! [`run_seed`] is the entry point. A seed runs in two phases: the safety phase, with the
//! scenario's faults, for `duration_ms`; then the liveness phase, in which faults stop (every
//! node restarts and resumes, links heal, the network turns reliable) and the cluster must
//! elect a leader and finish every pending request within `liveness.bound_ms`.

use crate::checkers::{self, Record, Violation, check};
use crate::coverage::Coverage;
use crate::kv::sessions::ClockBounds;
use crate::kv::{KvReport, KvWorld};
use crate::network::{MICROS_PER_MS, Network};
use crate::params::{Params, Streams};
use crate::queue::EventQueue;
use crate::scenario::{Scenario, WorkloadKind};
use crate::trace::{TraceEvent, Tracer};
use crate::wal_disk::WalDisk;
use crate::workload::{Client, History};
use rafting_core::raft::{Config, ConfigError, Envelope, Node, RoleName};
use rafting_core::replica::{Answer, Input, Replica, ReplicaConfig};
use rafting_core::store::{Store, StoreConfig};
use rafting_core::{LogIndex, NodeId, Term};
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use thiserror::Error;

/// Why a seed could not run at all (as opposed to running and finding a violation).
#[derive(Debug, Error)]
pub enum SimError {
    #[error("node configuration rejected: {0}")]
    Config(#[from] ConfigError),
    #[error("writing the trace failed: {0}")]
    Trace(#[from] std::io::Error),
}

impl SimError {
    pub fn kind(&self) -> &'static str {
        match self {
            SimError::Config(_) => "sim_config",
            SimError::Trace(_) => "sim_trace",
        }
    }
}

/// The summary of one seed.
#[derive(Clone, Debug, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    pub events: u64,
    pub simulated_ms: u64,
    /// The first violation found; the seed stops there.
    pub violation: Option<Violation>,
    /// How long the liveness phase took to settle, if it did.
    pub liveness_ms: Option<u64>,
    pub operations: usize,
    pub committed_operations: usize,
    /// The KV workload's figures (all zero for the opaque workload).
    pub kv: KvReport,
    /// The services workload's figures (all zero for the others).
    pub services: crate::services::ServicesReport,
    pub params: Params,
    /// The protocol situations the seed reached (see [`crate::coverage`]).
    pub coverage: Coverage,
    /// What the attacker sent and what became of it (empty without one).
    pub attack: crate::attacker::AttackReport,
}

/// A seed's report and the client history it recorded.
pub struct SeedOutcome {
    pub report: SeedReport,
    pub history: History,
}

/// What an event does when its time comes.
#[derive(Debug)]
pub(crate) enum EventKind {
    Deliver {
        to: usize,
        envelope: Envelope,
        /// When it was sent, for the trace.
        sent_us: u64,
    },
    /// Datagrams reach `to` (wire mode): from node `from`, or from the attacker (`None`).
    DeliverBytes {
        to: usize,
        from: Option<usize>,
        datagrams: Vec<Vec<u8>>,
        attack: Option<crate::attacker::Attack>,
        /// When they were sent, for the trace.
        sent_us: u64,
    },
    /// The attacker sends its next datagram.
    AttackerTurn,
    /// The membership driver takes its next step (see [`crate::membership`]).
    MembershipTurn,
    Timer {
        node: usize,
        incarnation: u64,
    },
    Fsync {
        node: usize,
        incarnation: u64,
    },
    /// A node's snapshot image is encoded (see `Output::snapshot_to_encode`).
    SnapshotEncoded {
        node: usize,
        incarnation: u64,
        index: LogIndex,
        image: Vec<u8>,
    },
    ClientSend {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        operation: u64,
    },
    /// A client's request reaches a node (after `workload.client_latency_ms`).
    ClientRequest {
        node: usize,
        inputs: Vec<Input>,
    },
    /// A node's answer reaches its client.
    ClientAnswer {
        answer: Answer,
    },
    Restart {
        node: usize,
    },
    /// The runtime's probe of a silent peer meets a closed port: `to` learns `peer` is down.
    CrashHint {
        to: usize,
        peer: usize,
    },
    Resume {
        node: usize,
    },
    Heal,
    RandomPartition,
    RandomCrash,
    RandomPause,
    Scripted(usize),
    ExpectSnapshot(usize),
    Expect(usize),
    Liveness,
    /// A service member's turn: it acts on what its agent asks.
    MemberTurn {
        member: usize,
        incarnation: u64,
    },
    MemberTimeout {
        member: usize,
        incarnation: u64,
        request: u64,
    },
    MemberFault,
    MemberRestart {
        member: usize,
    },
    /// A member's request reaches a node.
    MemberRequest {
        node: usize,
        request: u64,
        operation: Box<rafting_core::store::Operation>,
    },
    /// A group change applied by a node reaches a member watching it.
    MemberObserved {
        member: usize,
        incarnation: u64,
        epoch: u64,
        master: Option<String>,
    },
    /// A farm caller picks a member.
    CallerPick {
        caller: usize,
    },
    /// A node's view of the farm (after applying `index`) reaches a caller watching it.
    CallerView {
        caller: usize,
        node: usize,
        index: u64,
        members: Vec<rafting_core::store::services::MemberEntry>,
    },
    /// A node's answer reaches a member.
    MemberAnswer {
        member: usize,
        incarnation: u64,
        request: u64,
        result: Box<Result<rafting_core::replica::Applied, rafting_core::replica::ReplicaError>>,
    },
}

/// One simulated machine: the replica (when running: the Raft node, its store and the request
/// path the runtime runs), its disk, clock and checker state.
pub(crate) struct Host {
    pub id: NodeId,
    pub config: Config,
    pub replica_config: ReplicaConfig,
    /// The store configuration of the seed (`[store]` ranges, and the scenario's planted store
    /// bug, see `Workload::planted_keys_cap_unchecked`).
    pub store_config: StoreConfig,
    pub replica: Option<Replica>,
    /// Bumped at every crash, so events of a previous life are recognised and ignored.
    pub incarnation: u64,
    /// The real write-ahead log format, recovered by the real replay code on restart.
    pub disk: WalDisk,
    /// Batches the fsync in flight will make durable (0: the disk is idle).
    pub sync_covers: usize,
    /// The term this node campaigned in when a leadership transfer told it to.
    pub campaigned_on_transfer: Option<Term>,
    /// Its disk was wiped and it has not caught up yet (the runtime's `catching-up` marker
    /// file): a restart now starts it catching up again.
    pub catching_up: bool,
    /// Outside the configuration as far as the membership driver knows: a spare not yet
    /// added, or a node whose removal committed. It need not catch up at the end, and must
    /// not disrupt the members ([`checkers::removed_node_quiet`]).
    pub outside: bool,
    pub paused: bool,
    /// Events that arrived while paused, delivered on resume.
    pub backlog: Vec<EventKind>,
    /// Client requests that arrived while paused (sticky clients): handed to the node first
    /// on resume, before the backlog.
    pub held_requests: Vec<Vec<Input>>,
    /// When the node asked to be woken, and when the pending timer event fires.
    pub wake_us: u64,
    pub timer_at_us: u64,
    pub clock_rate_ppm: u64,
    pub last_commit: LogIndex,
    pub last_applied: LogIndex,
    pub last_role: RoleName,
    pub last_term: Term,
}

impl Host {
    /// The node's own clock reading at global time `now_us` (it may run fast or slow).
    pub fn local_ms(&self, now_us: u64) -> u64 {
        let local_us = u128::from(now_us) * u128::from(self.clock_rate_ppm) / 1_000_000;
        (local_us / u128::from(MICROS_PER_MS)) as u64
    }

    /// The global time at which the node's clock reads `local_ms`.
    pub fn global_us(&self, local_ms: u64) -> u64 {
        let local_us = u128::from(local_ms) * u128::from(MICROS_PER_MS);
        let rate = u128::from(self.clock_rate_ppm);
        local_us
            .saturating_mul(1_000_000)
            .div_ceil(rate)
            .min(u128::from(u64::MAX)) as u64
    }

    /// Makes the host a node joining the cluster on its next start: an empty disk, itself
    /// its only learner, catching up before it may vote (the runtime's `rafting node
    /// --join`).
    pub fn make_joining(&mut self) {
        self.disk = WalDisk::new(self.id);
        self.catching_up = true;
        self.config.voters.clear();
        self.config.learners = [self.id].into_iter().collect();
    }

    /// The Raft node inside the replica, when the host runs.
    pub fn node(&self) -> Option<&Node> {
        self.replica.as_ref().map(Replica::node)
    }

    pub fn running(&self) -> bool {
        self.replica.is_some() && !self.paused
    }

    /// A replica around `node` with an empty store: a started node replays its committed
    /// entries into the store on its first steps.
    /// A node restarted from a snapshot starts from the store in it.
    pub fn start_replica(&mut self, node: Node) {
        // (A store restored from a snapshot has the default configuration: the planted keys
        // cap bug is for scenarios without snapshots.)
        let store = match node.snapshot() {
            Some(snapshot) => Store::restore(&snapshot.image)
                .unwrap_or_else(|error| panic!("a snapshot this node wrote must restore: {error}")),
            None => Store::new(self.store_config.clone()),
        };
        self.replica = Some(Replica::new(node, store, self.replica_config));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Safety,
    Liveness { started_us: u64 },
    Done,
}

/// Everything one seed's run holds.
pub struct Simulator<'s, 'w> {
    pub(crate) scenario: &'s Scenario,
    pub(crate) seed: u64,
    pub(crate) params: Params,
    pub(crate) now_us: u64,
    queue: EventQueue<EventKind>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) network: Network,
    pub(crate) streams: Streams,
    pub(crate) record: Record,
    pub(crate) history: History,
    pub(crate) clients: Vec<Client>,
    pub(crate) tracer: Tracer<'w>,
    pub(crate) events: u64,
    pub(crate) violation: Option<Violation>,
    pub(crate) phase: Phase,
    pub(crate) liveness_ms: Option<u64>,
    /// Highest commit index among an expectation's nodes at its `since_ms`.
    pub(crate) snapshots: BTreeMap<usize, LogIndex>,
    /// The KV workload's clients, history and session records, when it runs.
    pub(crate) kv: Option<KvWorld>,
    /// The services workload's members, when it runs.
    pub(crate) services: Option<crate::services::ServicesWorld>,
    /// The protocol situations this seed reached.
    pub(crate) coverage: Coverage,
    /// A `pause_new_leader` event waits for the next election win: pause the winner this long.
    pub(crate) pause_next_leader_ms: Option<u64>,
    /// An `isolate_new_leader` event waits for the next election win.
    pub(crate) isolate_next_leader: bool,
    /// An `isolate_leader_on_commit` event waits for a leader's commit to advance.
    pub(crate) isolate_leader_on_commit: bool,
    /// The highest index known committed when faults stopped: every node must apply it.
    pub(crate) liveness_target: LogIndex,
    /// Real datagrams on the network, when the scenario has a secret or an attacker.
    pub(crate) wire: Option<crate::attacker::Wire>,
    /// The last snapshot chunk sent to a node, by (receiver, snapshot index, snapshot term):
    /// its sender and where it ended (for coverage of resent and resumed transfers).
    pub(crate) snapshot_chunks: BTreeMap<(usize, LogIndex, Term), (usize, u64)>,
    /// Scripted replacements of nodes (membership changes), in order.
    pub(crate) replacements: Vec<crate::membership::Replacement>,
    /// The highest term any member (a host not [`Host::outside`]) has held.
    pub(crate) member_term_max: Term,
}

/// Runs one seed of a scenario, writing its trace to `trace` if given.
pub fn run_seed(
    scenario: &Scenario,
    seed: u64,
    trace: Option<&mut dyn Write>,
) -> Result<SeedOutcome, SimError> {
    let sized;
    let scenario = match scenario.nodes_drawn {
        Some([low, high]) => {
            sized = Scenario {
                nodes: crate::params::draw_cluster_size(seed, low, high),
                ..scenario.clone()
            };
            &sized
        }
        None => scenario,
    };
    let mut simulator = Simulator::new(scenario, seed, trace)?;
    simulator.run();
    simulator.finish()
}

impl<'s, 'w> Simulator<'s, 'w> {
    pub fn new(
        scenario: &'s Scenario,
        seed: u64,
        trace: Option<&'w mut dyn Write>,
    ) -> Result<Self, SimError> {
        let nodes = scenario.nodes as usize;
        let mut streams = Streams::new(seed, nodes);
        let params = Params::draw(scenario, &mut streams.params);
        let mut network = Network::new(nodes, scenario.profile);
        network.latency_ms = scenario.network.latency_ms;
        network.loss_probability = params.loss_probability;
        network.duplicate_probability = params.duplicate_probability;
        network.reorder_probability = params.reorder_probability;
        network.reorder_delay_ms_max = scenario.network.reorder_delay_ms_max;
        let ids: Vec<NodeId> = (1..=scenario.nodes).map(NodeId).collect();
        let voters = &ids[..scenario.initial_voters.unwrap_or(scenario.nodes) as usize];
        let mut hosts = Vec::with_capacity(nodes);
        for (position, &id) in ids.iter().enumerate() {
            let config = node_config(scenario, &params, id, voters, streams.node_seeds[position]);
            let mut host = Host {
                id,
                config,
                replica_config: ReplicaConfig {
                    session_tick_interval_ms: scenario.workload.session_tick_interval_ms,
                    snapshot_every_entries: params.snapshot_every_entries,
                    snapshot_every_bytes: 0,
                    planted_unfair_admission: scenario.workload.planted_unfair_admission,
                    ..ReplicaConfig::default()
                },
                store_config: scenario
                    .store
                    .draw(seed, scenario.workload.planted_keys_cap_unchecked),
                replica: None,
                incarnation: 0,
                disk: WalDisk::new(id),
                sync_covers: 0,
                campaigned_on_transfer: None,
                catching_up: false,
                outside: false,
                paused: false,
                backlog: Vec::new(),
                held_requests: Vec::new(),
                wake_us: u64::MAX,
                timer_at_us: u64::MAX,
                clock_rate_ppm: params.clock_rate_ppm[position],
                last_commit: LogIndex::ZERO,
                last_applied: LogIndex::ZERO,
                last_role: RoleName::Follower,
                last_term: Term::ZERO,
            };
            if !voters.contains(&id) {
                // A spare: it starts as a node joining the cluster would, and waits to be
                // added.
                host.make_joining();
                host.outside = true;
                host.config.catch_up_before_voting = true;
            }
            let node = Node::new(host.config.clone())?;
            host.start_replica(node);
            hosts.push(host);
        }
        let clients = (0..scenario.client_count())
            .map(|client| Client {
                id: client + 1,
                target: streams.workload.random_range(0..nodes),
                current: None,
                unfinished: false,
            })
            .collect();
        let kv = (scenario.workload.kind == WorkloadKind::Kv).then(|| kv_world(scenario, &params));
        let services = (scenario.workload.kind == WorkloadKind::Services)
            .then(|| crate::services::ServicesWorld::new(scenario, seed));
        Ok(Simulator {
            scenario,
            seed,
            params,
            now_us: 0,
            queue: EventQueue::new(),
            hosts,
            network,
            streams,
            record: Record::default(),
            history: History::default(),
            clients,
            tracer: Tracer::new(trace),
            events: 0,
            violation: None,
            phase: Phase::Safety,
            liveness_ms: None,
            snapshots: BTreeMap::new(),
            kv,
            services,
            coverage: Coverage::default(),
            pause_next_leader_ms: None,
            isolate_next_leader: false,
            isolate_leader_on_commit: false,
            liveness_target: LogIndex::ZERO,
            wire: (scenario.secret || scenario.attacker.enabled())
                .then(|| crate::attacker::Wire::new(nodes, scenario.secret)),
            snapshot_chunks: BTreeMap::new(),
            replacements: Vec::new(),
            member_term_max: Term::ZERO,
        })
    }

    pub(crate) fn schedule(&mut self, at_us: u64, kind: EventKind) {
        self.queue.push(at_us, kind);
    }

    pub(crate) fn schedule_in_ms(&mut self, delay_ms: u64, kind: EventKind) {
        self.schedule(self.now_us + delay_ms * MICROS_PER_MS, kind);
    }

    /// Records a violation (the first one stops the seed).
    pub(crate) fn violate(&mut self, mut violation: Violation) {
        if self.violation.is_some() {
            return;
        }
        violation.at_us = self.now_us;
        self.tracer.record(
            self.now_us,
            TraceEvent::Violation {
                violation: &violation,
            },
        );
        self.violation = Some(violation);
    }

    pub(crate) fn check(&mut self, result: Result<(), Violation>) {
        if let Err(violation) = result {
            self.violate(violation);
        }
    }

    fn start(&mut self) {
        let params = self.params.clone();
        self.tracer.record(
            0,
            TraceEvent::Start {
                scenario: &self.scenario.name,
                seed: self.seed,
                params: &params,
            },
        );
        for node in 0..self.hosts.len() {
            self.schedule(
                0,
                EventKind::Timer {
                    node,
                    incarnation: 0,
                },
            );
            // Every node is stepped at time 0 (its first input tells it the time), whether or
            // not a client ever talks to it.
            self.hosts[node].timer_at_us = 0;
            self.hosts[node].wake_us = 0;
        }
        for client in 0..self.clients.len() {
            let delay = self.think_time_ms();
            self.schedule_in_ms(delay, EventKind::ClientSend { client });
        }
        if self.services.is_some() {
            self.services_start();
        }
        self.schedule_first_faults();
        self.schedule_attacker();
        self.schedule_script();
        self.schedule(
            self.scenario.duration_ms * MICROS_PER_MS,
            EventKind::Liveness,
        );
    }

    pub(crate) fn think_time_ms(&mut self) -> u64 {
        let [low, high] = self.params.request_interval_ms;
        self.streams.workload.random_range(low..=high)
    }

    /// Runs events until the seed ends: a violation, the liveness phase settling, or its bound.
    pub fn run(&mut self) {
        self.start();
        let deadline_us =
            (self.scenario.duration_ms + self.scenario.liveness.bound_ms) * MICROS_PER_MS;
        let mut processed: u64 = 0;
        while let Some(event) = self.queue.pop() {
            if self.violation.is_some() || self.phase == Phase::Done {
                break;
            }
            processed += 1;
            if let Some(violation) = self.over_budget(processed) {
                self.now_us = event.at_us;
                self.violate(violation);
                break;
            }
            if event.at_us > deadline_us {
                self.now_us = deadline_us;
                break;
            }
            self.now_us = event.at_us;
            self.dispatch(event.kind);
            if let Phase::Liveness { started_us } = self.phase {
                self.check_settled(started_us);
            }
        }
        if self.phase != Phase::Done && self.violation.is_none() {
            self.now_us = self.now_us.max(deadline_us);
            self.liveness_failed();
        }
    }

    /// A `hang` violation once the seed has processed more events than its budget, or holds
    /// more waiting events than its memory bound.
    fn over_budget(&self, processed: u64) -> Option<Violation> {
        let limits = &self.scenario.limits;
        let detail = if processed > limits.events_max {
            format!("more than {} events processed", limits.events_max)
        } else if self.queue.len() > limits.queued_events_max {
            format!(
                "more than {} events waiting at once",
                limits.queued_events_max
            )
        } else {
            return None;
        };
        let in_flight = self
            .queue
            .iter()
            .filter(|kind| {
                matches!(
                    kind,
                    EventKind::Deliver { .. } | EventKind::DeliverBytes { .. }
                )
            })
            .count();
        Some(Violation {
            check: check::HANG,
            at_us: 0,
            nodes: Vec::new(),
            index: None,
            term: None,
            detail: format!("{detail} ({in_flight} messages in flight)"),
        })
    }

    fn dispatch(&mut self, kind: EventKind) {
        if let Some(wake_us) = self.member_event_held_until(&kind) {
            self.schedule(wake_us, kind);
            return;
        }
        match kind {
            EventKind::Deliver {
                to,
                envelope,
                sent_us,
            } => self.on_deliver(to, envelope, sent_us),
            EventKind::DeliverBytes {
                to,
                from,
                datagrams,
                attack,
                sent_us,
            } => self.on_deliver_bytes(to, from, datagrams, attack, sent_us),
            EventKind::AttackerTurn => self.on_attacker_turn(),
            EventKind::MembershipTurn => self.on_membership_turn(),
            EventKind::Timer { node, incarnation } => self.on_timer(node, incarnation),
            EventKind::Fsync { node, incarnation } => self.on_fsync(node, incarnation),
            EventKind::SnapshotEncoded {
                node,
                incarnation,
                index,
                image,
            } => self.on_snapshot_encoded(node, incarnation, index, image),
            EventKind::ClientSend { client } => self.on_client_send(client),
            EventKind::ClientTimeout { client, operation } => {
                self.on_client_timeout(client, operation)
            }
            EventKind::ClientRequest { node, inputs } => self.deliver_client_request(node, inputs),
            EventKind::ClientAnswer { answer } => self.on_client_answer(answer),
            EventKind::Restart { node } => self.restart(node),
            EventKind::CrashHint { to, peer } => self.on_crash_hint(to, peer),
            EventKind::Resume { node } => self.resume(node),
            EventKind::Heal => self.heal(),
            EventKind::RandomPartition => self.on_random_partition(),
            EventKind::RandomCrash => self.on_random_crash(),
            EventKind::RandomPause => self.on_random_pause(),
            EventKind::Scripted(position) => self.on_scripted(position),
            EventKind::ExpectSnapshot(position) => self.on_expect_snapshot(position),
            EventKind::Expect(position) => self.on_expect(position),
            EventKind::Liveness => self.start_liveness(),
            EventKind::MemberTurn {
                member,
                incarnation,
            } => self.on_member_turn(member, incarnation),
            EventKind::MemberTimeout {
                member,
                incarnation,
                request,
            } => self.on_member_timeout(member, incarnation, request),
            EventKind::MemberFault => self.on_member_fault(),
            EventKind::MemberRestart { member } => self.on_member_restart(member),
            EventKind::MemberRequest {
                node,
                request,
                operation,
            } => self.on_member_request(node, request, *operation),
            EventKind::MemberAnswer {
                member,
                incarnation,
                request,
                result,
            } => self.on_member_answer(member, incarnation, request, *result),
            EventKind::MemberObserved {
                member,
                incarnation,
                epoch,
                master,
            } => self.on_member_observed(member, incarnation, epoch, master),
            EventKind::CallerPick { caller } => self.on_caller_pick(caller),
            EventKind::CallerView {
                caller,
                node,
                index,
                members,
            } => self.on_caller_view(caller, node, index, members),
        }
    }

    /// Holds an event for a paused node until it resumes. Returns true if held.
    pub(crate) fn hold_if_paused(&mut self, node: usize, kind: EventKind) -> Option<EventKind> {
        if self.hosts[node].paused {
            self.hosts[node].backlog.push(kind);
            return None;
        }
        Some(kind)
    }

    /// Faults stop: every node runs again, links heal and the network turns reliable.
    fn start_liveness(&mut self) {
        self.phase = Phase::Liveness {
            started_us: self.now_us,
        };
        self.liveness_target = LogIndex(self.record.committed.len() as u64);
        self.tracer
            .record(self.now_us, TraceEvent::Phase { phase: "liveness" });
        self.heal();
        self.network.loss_probability = 0.0;
        self.network.duplicate_probability = 0.0;
        self.network.reorder_probability = 0.0;
        if self.services.is_some() {
            self.services_liveness();
        }
        for node in 0..self.hosts.len() {
            if self.hosts[node].replica.is_none() {
                self.restart(node);
            } else if self.hosts[node].paused {
                self.resume(node);
            }
        }
    }

    fn check_settled(&mut self, started_us: u64) {
        if self.clients.iter().any(|client| client.unfinished) {
            return;
        }
        let leader = self
            .hosts
            .iter()
            .any(|host| host.node().is_some_and(Node::is_leader));
        if leader
            && (self.services.is_none() || self.services_settled())
            && checkers::nodes_behind(self.liveness_target, &self.applied_indexes()).is_empty()
        {
            self.phase = Phase::Done;
            self.liveness_ms = Some((self.now_us - started_us) / MICROS_PER_MS);
            self.tracer
                .record(self.now_us, TraceEvent::Phase { phase: "settled" });
        }
    }

    /// Each member's applied index (none for a node that is not running). Nodes outside the
    /// configuration need not catch up: nobody replicates to them.
    fn applied_indexes(&self) -> Vec<(NodeId, Option<LogIndex>)> {
        self.hosts
            .iter()
            .filter(|host| !host.outside)
            .map(|host| (host.id, host.replica.is_some().then_some(host.last_applied)))
            .collect()
    }

    fn liveness_failed(&mut self) {
        let unfinished: Vec<u64> = self
            .clients
            .iter()
            .filter(|client| client.unfinished)
            .map(|client| client.id)
            .collect();
        let leaders: Vec<u64> = self
            .hosts
            .iter()
            .filter(|host| host.node().is_some_and(Node::is_leader))
            .map(|host| host.id.get())
            .collect();
        let services_settled = self.services.is_none() || self.services_settled();
        if unfinished.is_empty() && !leaders.is_empty() && services_settled {
            let result = checkers::caught_up(self.liveness_target, &self.applied_indexes());
            if result.is_err() {
                return self.check(result);
            }
        }
        let detail = format!(
            "not settled {} ms after faults stopped: leaders {leaders:?}, clients unfinished {unfinished:?}",
            self.scenario.liveness.bound_ms
        );
        self.violate(Violation {
            check: check::LIVENESS,
            at_us: 0,
            nodes: leaders,
            index: None,
            term: None,
            detail,
        });
    }

    /// Every acknowledged write must be known committed with its payload at the end.
    fn check_acknowledged_at_end(&mut self) {
        let missing = self
            .record
            .acknowledged
            .iter()
            .enumerate()
            .find(|&(position, &digest)| {
                digest != 0
                    && self.record.committed.get(position).map(|slot| slot.1) != Some(digest)
            })
            .map(|(position, _)| LogIndex(position as u64 + 1));
        if let Some(index) = missing {
            self.violate(Violation {
                check: check::ACKNOWLEDGED_WRITE_KEPT,
                at_us: 0,
                nodes: Vec::new(),
                index: Some(index.get()),
                term: None,
                detail: format!("a write acknowledged at {index} is not committed there"),
            });
        }
    }

    fn finish(mut self) -> Result<SeedOutcome, SimError> {
        if self.violation.is_none() {
            self.check_acknowledged_at_end();
        }
        let kv = self.kv_end_of_seed();
        let services = self.services_report();
        let simulated_ms = self.now_us / MICROS_PER_MS;
        self.tracer.record(
            self.now_us,
            TraceEvent::End {
                events: self.events,
                simulated_ms,
            },
        );
        self.tracer.finish()?;
        let committed_operations = self.history.committed().count();
        let report = SeedReport {
            seed: self.seed,
            events: self.events,
            simulated_ms,
            violation: self.violation,
            liveness_ms: self.liveness_ms,
            operations: self.history.operations.len(),
            committed_operations,
            kv,
            services,
            params: self.params,
            coverage: self.coverage,
            attack: self.wire.map(|wire| wire.report).unwrap_or_default(),
        };
        Ok(SeedOutcome {
            report,
            history: self.history,
        })
    }
}

fn node_config(
    scenario: &Scenario,
    params: &Params,
    id: NodeId,
    ids: &[NodeId],
    seed: u64,
) -> Config {
    let mut config = Config::new(id, ids.iter().copied(), seed);
    config.heartbeat_interval_ms = scenario.timing.heartbeat_interval_ms;
    config.election_timeout_ms_min = scenario.timing.election_timeout_ms[0];
    config.election_timeout_ms_max = scenario.timing.election_timeout_ms[1];
    config.pre_vote = params.pre_vote;
    config.check_quorum = params.check_quorum;
    let limits = params.limits;
    config.entries_per_append_max = limits.entries_per_append_max;
    config.bytes_per_append_max = limits.bytes_per_append_max;
    config.inflight_messages_max = limits.inflight_messages_max;
    config.inflight_bytes_max = limits.inflight_bytes_max;
    config.uncommitted_entries_max = limits.uncommitted_entries_max;
    config.uncommitted_bytes_max = limits.uncommitted_bytes_max;
    config.pending_reads_max = limits.pending_reads_max;
    if params.snapshot_chunk_bytes > 0 {
        config.snapshot_chunk_bytes = params.snapshot_chunk_bytes as usize;
    }
    config.planted_snapshot_unverified = scenario.snapshots.planted_unverified;
    config.planted_membership_unguarded = scenario.planted_membership_unguarded;
    config.planted_commit_by_counting = scenario.planted_commit_by_counting;
    config
}

/// The KV world of a seed: its clients, and the real-time bounds of its session clock.
fn kv_world(scenario: &Scenario, params: &Params) -> KvWorld {
    let tick_interval_us = scenario.workload.session_tick_interval_ms * MICROS_PER_MS;
    let latency_us = scenario.network.latency_ms[1] * MICROS_PER_MS;
    let fsync_us = scenario.disk.fsync_latency_ms[1] * MICROS_PER_MS;
    let stall_threshold_us = 2 * tick_interval_us;
    let bounds = ClockBounds {
        rate_ppm_min: params
            .clock_rate_ppm
            .iter()
            .copied()
            .min()
            .unwrap_or(1_000_000),
        rate_ppm_max: params
            .clock_rate_ppm
            .iter()
            .copied()
            .max()
            .unwrap_or(1_000_000),
        tick_advance_ms_max: StoreConfig::default().tick_advance_ms_max,
        per_leader_change_us: stall_threshold_us + tick_interval_us,
        slack_us: 2 * tick_interval_us + 4 * (latency_us + fsync_us),
    };
    KvWorld::new(&scenario.client_tenants(), bounds, stall_threshold_us)
}
