//! The [`Replica`]: a Raft node, its store, and the request path between them and clients.

use super::io::{
    Answer, Applied, AppliedEntry, Consistency, Input, MembershipApplied, Numbered, Output,
    RateRefusal, ReplicaError, RequestId, SnapshotJob,
};
use super::queue::{Queued, WriteQueue, cost_bytes};
use super::rates::{OverRate, RateKind, RateLimiter};
use super::reads::{PendingRead, PendingReads};
use crate::raft::{
    self, Entry, EntryPayload, Node, ProposalId, ProposalOutcome, ReadError, ReadId, ReadOutcome,
};
use crate::store::{
    ClientId, Command, Operation, Outcome, Query, Request, Store, StoreError, TenantId, Tick,
};
use crate::types::{LogIndex, Millis, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet};

/// The replica's own bounds and cadences. Raft's are in [`raft::Config`], the store's in
/// [`crate::store::StoreConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// How often the leader advances the replicated session clock while sessions exist.
    pub session_tick_interval_ms: u64,
    /// Writes waiting to be proposed (for the next flush, or for this node's own client
    /// record to be registered), at most; more are refused with `overloaded`.
    pub queued_writes_max: usize,
    /// Writes one tenant may have queued, at most: the rest of the queue stays open to the
    /// others.
    pub queued_writes_per_tenant_max: usize,
    /// Linearizable reads one tenant may have waiting for the read index, at most: the rest
    /// of the node's table of pending reads stays open to the others.
    pub pending_reads_per_tenant_max: usize,
    /// Bytes of queued writes one flush proposes, at most (at least one write goes whatever
    /// its size). What is left is proposed by the next step, a millisecond later at most.
    /// The bound keeps the queue in the replica, where fair queuing orders it by tenant,
    /// rather than in the log, whose order is final: a tenant's burst of large values
    /// enters the log a share at a time, with every other tenant's writes interleaved by
    /// weight, instead of all at once ahead of them.
    pub flush_bytes_max: u64,
    /// How often unanswered requests are checked against their deadlines.
    pub sweep_interval_ms: u64,
    /// A snapshot of the store is taken (and the log compacted once it is durable) after
    /// this many entries applied since the last one, or this many bytes of entries, whichever
    /// comes first. Zero turns either trigger off.
    pub snapshot_every_entries: u64,
    pub snapshot_every_bytes: u64,
    /// Test-only planted bug: admission is unfair. Writes queue first come, first served
    /// across tenants (no deficit round robin), a tenant's share of the queue and its write
    /// rates are not enforced. The simulator's `tenant_latency` checker must catch a
    /// flooding tenant hurting the others.
    #[doc(hidden)]
    pub planted_unfair_admission: bool,
}

/// Defaults that keep a restart's log replay to a few seconds at most: about 100,000 entries
/// (bounded by 64 MiB of them) are replayed at a few hundred thousand entries a second.
pub const SNAPSHOT_EVERY_ENTRIES_DEFAULT: u64 = 100_000;
pub const SNAPSHOT_EVERY_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// Members take their snapshots in this many phases of the interval (see
/// [`snapshot_head_start`]).
pub const SNAPSHOT_PHASES: u64 = 3;
/// Four of the largest values a tenant may write (256 KiB), or some 6,000 small writes, per
/// flush: far more than a round of the node loop gathers except in a burst.
pub const FLUSH_BYTES_MAX_DEFAULT: u64 = 1024 * 1024;

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            session_tick_interval_ms: 500,
            queued_writes_max: 10_000,
            queued_writes_per_tenant_max: 2_500,
            pending_reads_per_tenant_max: 2_500,
            flush_bytes_max: FLUSH_BYTES_MAX_DEFAULT,
            sweep_interval_ms: 50,
            snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES_DEFAULT,
            snapshot_every_bytes: SNAPSHOT_EVERY_BYTES_DEFAULT,
            planted_unfair_admission: false,
        }
    }
}

/// The entries and bytes node `id` counts as already applied towards its first snapshot: a
/// third of an interval per phase, `(id - 1) % 3` phases. Every member applies the same
/// entries, so without it all of them took their snapshot at the same index, and each paused
/// its node loop to encode the image and wrote the file at the same moment: the commit
/// quorum itself stalled (a 90 MB image held every write for about 100 ms). In three phases,
/// at most a third of the members take one together, never a majority of three or more; a
/// snapshot counts from zero again, so each member keeps its phase until it installs one from
/// a leader or restarts.
pub fn snapshot_head_start(config: &ReplicaConfig, id: NodeId) -> (u64, u64) {
    let phase = id.get().saturating_sub(1) % SNAPSHOT_PHASES;
    let head_start = |every: u64| every / SNAPSHOT_PHASES * phase;
    (
        head_start(config.snapshot_every_entries),
        head_start(config.snapshot_every_bytes),
    )
}

/// What a proposal in the log answers.
#[derive(Debug)]
enum Waiter {
    /// A client's write, numbered on this node's record (`own_sequence`) or the client's.
    Write {
        id: RequestId,
        deadline: Millis,
        own_sequence: Option<u64>,
    },
    /// A client's registration of its own record.
    Register { id: RequestId, deadline: Millis },
    /// The registration of this node's own record.
    RegisterOwn,
    /// A tick of the session clock.
    Tick,
    /// An administrator's membership change.
    Membership { id: RequestId, deadline: Millis },
}

/// This node's exactly-once client record, used for the writes that carry no numbering of
/// their own. It is replicated, so it stays valid across terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnRecord {
    Unregistered,
    Registering,
    Registered {
        client: ClientId,
        next_sequence: u64,
    },
}

/// A Raft [`Node`] and its [`Store`], with the request path between them and their clients:
/// admission, batching, the proposal table that matches each committed entry to the request
/// it answers, exactly-once numbering, the session clock's ticks, deadlines.
///
/// Pure and deterministic like the node: time arrives with every [`Input`], every effect
/// leaves in an [`Output`]. The runtime (`rafting node`) and every simulated host drive this
/// same type; `docs/replica.md` is the driver's manual.
#[derive(Debug)]
pub struct Replica {
    node: Node,
    store: Store,
    config: ReplicaConfig,
    now: Millis,
    /// Proposal ids are the replica's own, never the driver's request ids.
    next_proposal: u64,
    next_read: u64,
    /// Every proposal handed to the node and not yet answered.
    waiters: BTreeMap<ProposalId, Waiter>,
    /// Proposals in the log, by index: answered when that index is applied.
    accepted: BTreeMap<LogIndex, (Term, ProposalId)>,
    reads: PendingReads,
    own: OwnRecord,
    /// Sequences of this node's record in flight, for `acknowledged_below`.
    own_outstanding: BTreeSet<u64>,
    queue: WriteQueue,
    /// Per-tenant request rates.
    rates: RateLimiter,
    /// Proposals for the next flush.
    unsent: Vec<(ProposalId, Vec<u8>)>,
    next_session_tick: Millis,
    next_sweep: Millis,
    was_leader: bool,
    /// Queued writes became proposable inside a step (this node's record was registered).
    flush_due: bool,
    /// The last flush left writes queued past its bound: the first step at or after this
    /// time proposes more.
    flush_more_at: Option<Millis>,
    /// The output being assembled by the current step.
    output: Output,
    node_wake_at: Millis,
    /// Entries and their bytes applied since the last snapshot (taken or installed).
    applied_since_snapshot: (u64, u64),
    /// A snapshot handed to the driver to encode has not come back yet.
    encoding_snapshot: bool,
}

impl Replica {
    /// A replica around `node` (new or restarted from its log) and an empty `store`. The node
    /// replays every committed entry it recovered into the store on its first steps.
    pub fn new(node: Node, store: Store, config: ReplicaConfig) -> Replica {
        let applied_since_snapshot = snapshot_head_start(&config, node.id());
        Replica {
            node,
            store,
            config: ReplicaConfig {
                session_tick_interval_ms: config.session_tick_interval_ms.max(1),
                sweep_interval_ms: config.sweep_interval_ms.max(1),
                ..config
            },
            now: Millis::ZERO,
            next_proposal: 1,
            next_read: 1,
            waiters: BTreeMap::new(),
            accepted: BTreeMap::new(),
            reads: PendingReads::default(),
            own: OwnRecord::Unregistered,
            own_outstanding: BTreeSet::new(),
            queue: WriteQueue::new(config.planted_unfair_admission),
            rates: RateLimiter::default(),
            unsent: Vec::new(),
            next_session_tick: Millis::ZERO,
            next_sweep: Millis::ZERO,
            was_leader: false,
            flush_due: false,
            flush_more_at: None,
            output: Output::default(),
            node_wake_at: Millis::ZERO,
            applied_since_snapshot,
            encoding_snapshot: false,
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    pub fn is_leader(&self) -> bool {
        self.node.is_leader()
    }

    /// Client reads handed to the node and not answered yet (a read that timed out here is
    /// no longer counted, though the node may still hold it).
    pub fn pending_reads(&self) -> usize {
        self.reads.len()
    }

    /// Feeds one input at time `now` (the same clock the node is stepped with) and returns
    /// what the driver must do.
    pub fn step(&mut self, now: Millis, input: Input) -> Output {
        self.now = self.now.max(now);
        match input {
            Input::Tick => self.step_node(raft::Input::Tick),
            Input::Message(envelope) => self.step_node(raft::Input::Message(envelope)),
            Input::Persisted(batch) => self.step_node(raft::Input::Persisted(batch)),
            Input::Campaign => self.step_node(raft::Input::Campaign),
            Input::PeerUnreachable { peer } => {
                self.step_node(raft::Input::PeerUnreachable { peer })
            }
            Input::SnapshotEncoded { index, image } => {
                self.encoding_snapshot = false;
                // The node drops an image it no longer needs (a leader's snapshot installed
                // meanwhile covers the index).
                self.step_node(raft::Input::SnapshotTaken { index, image });
            }
            Input::TransferLeadership { id, to } => {
                let result = if self.node.is_leader() {
                    self.step_node(raft::Input::TransferLeadership { to });
                    Ok(())
                } else {
                    Err(self.not_leader())
                };
                self.output.answers.push(Answer::Transfer { id, result });
            }
            Input::Write {
                id,
                tenant,
                operation,
                numbered,
                deadline,
            } => self.on_write(Queued {
                id,
                tenant,
                operation,
                numbered,
                deadline,
            }),
            Input::RegisterClient { id, deadline } => self.on_register(id, deadline),
            Input::Read {
                id,
                query,
                consistency,
                deadline,
            } => self.on_read(id, query, consistency, deadline),
            Input::Flush => self.flush(),
            Input::ChangeMembership {
                id,
                change,
                deadline,
            } => self.on_change_membership(id, change, deadline),
        }
        self.housekeeping();
        self.end_step()
    }

    fn not_leader(&self) -> ReplicaError {
        ReplicaError::NotLeader {
            leader: self.node.leader(),
        }
    }

    fn answer_write(&mut self, id: RequestId, result: Result<Applied, ReplicaError>) {
        self.output.answers.push(Answer::Write { id, result });
    }

    // --- Requests -----------------------------------------------------------------------

    fn on_write(&mut self, write: Queued) {
        if !self.node.is_leader() {
            let error = self.not_leader();
            self.answer_write(write.id, Err(error));
            return;
        }
        if self.queue.len() >= self.config.queued_writes_max {
            self.answer_write(write.id, Err(ReplicaError::Overloaded("write queue full")));
            return;
        }
        if let Err(error) = self.admit_write(&write) {
            self.answer_write(write.id, Err(error));
            return;
        }
        let weight = self.store.tenant_weight(write.tenant);
        self.queue.push(write, weight);
        if write_needs_own_record(&self.queue) {
            self.register_own();
        }
    }

    /// The tenant's checks on a write: its share of the queue, its write rate, its stored
    /// caps. A write that only frees (a delete, a session close, a member leaving) passes
    /// every one of them: a tenant at its caps must be able to clean up.
    fn admit_write(&mut self, write: &Queued) -> Result<(), ReplicaError> {
        if self.config.planted_unfair_admission {
            return self
                .store
                .check_quota(write.tenant, &write.operation)
                .map_err(ReplicaError::Store);
        }
        if self.queue.len_of(write.tenant) >= self.config.queued_writes_per_tenant_max {
            return Err(ReplicaError::Overloaded(
                "this tenant's share of the write queue is full",
            ));
        }
        let frees = matches!(
            write.operation,
            Operation::Delete { .. }
                | Operation::CloseSession { .. }
                | Operation::Deregister { .. }
        );
        if frees {
            return Ok(());
        }
        self.take_rate(write.tenant, RateKind::Writes, 1)?;
        let bytes = cost_bytes(&write.operation);
        self.take_rate(write.tenant, RateKind::WriteBytes, bytes)?;
        self.store
            .check_quota(write.tenant, &write.operation)
            .map_err(ReplicaError::Store)
    }

    /// Takes `amount` (requests or bytes) of `kind` from the tenant's bucket.
    fn take_rate(
        &mut self,
        tenant: TenantId,
        kind: RateKind,
        amount: u64,
    ) -> Result<(), ReplicaError> {
        let caps = self.store.tenant_caps(tenant);
        self.rates
            .take(tenant, kind, amount, caps, self.now)
            .map_err(
                |OverRate {
                     kind,
                     rate,
                     burst,
                     retry_after_ms,
                     needed,
                 }| {
                    ReplicaError::RateLimited(RateRefusal {
                        tenant: self.store.tenant_name(tenant),
                        kind,
                        rate,
                        burst,
                        retry_after_ms,
                        needed,
                    })
                },
            )
    }

    /// A membership change goes to the node at once (not batched with writes): the node
    /// checks the rules (leader, commit first, one at a time) and appends it.
    fn on_change_membership(
        &mut self,
        id: RequestId,
        change: raft::MembershipChange,
        deadline: Millis,
    ) {
        if !self.node.is_leader() {
            let result = Err(self.not_leader());
            self.output.answers.push(Answer::Membership { id, result });
            return;
        }
        let proposal = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        self.waiters
            .insert(proposal, Waiter::Membership { id, deadline });
        self.step_node(raft::Input::ChangeMembership {
            id: proposal,
            change,
        });
    }

    fn on_register(&mut self, id: RequestId, deadline: Millis) {
        if !self.node.is_leader() {
            let error = self.not_leader();
            self.answer_write(id, Err(error));
            return;
        }
        self.propose(Command::RegisterClient, Waiter::Register { id, deadline });
    }

    fn on_read(&mut self, id: RequestId, query: Query, consistency: Consistency, deadline: Millis) {
        let tenant = rated_tenant(&query);
        if let Some(tenant) = tenant
            && let Err(error) = self.take_rate(tenant, RateKind::Reads, 1)
        {
            self.output.answers.push(Answer::Read {
                id,
                result: Err(error),
            });
            return;
        }
        if consistency == Consistency::Stale {
            let result = self.store.read(&query).map_err(ReplicaError::Store);
            self.output.answers.push(Answer::Read { id, result });
            return;
        }
        if !self.node.is_leader() {
            let result = Err(self.not_leader());
            self.output.answers.push(Answer::Read { id, result });
            return;
        }
        if let Some(tenant) = tenant
            && !self.config.planted_unfair_admission
            && self.reads.len_of(tenant) >= self.config.pending_reads_per_tenant_max
        {
            let result = Err(ReplicaError::Overloaded(
                "this tenant's share of the pending reads is full",
            ));
            self.output.answers.push(Answer::Read { id, result });
            return;
        }
        let read = ReadId(self.next_read);
        self.next_read += 1;
        self.reads.insert(
            read,
            PendingRead {
                request: id,
                query,
                deadline,
                tenant,
            },
        );
        self.step_node(raft::Input::Read { id: read });
    }

    /// Registers this node's own client record, once per leadership.
    fn register_own(&mut self) {
        if self.own != OwnRecord::Unregistered || !self.node.is_leader() {
            return;
        }
        self.own = OwnRecord::Registering;
        self.propose(Command::RegisterClient, Waiter::RegisterOwn);
    }

    /// Proposes what is queued, then hands the batch to the node.
    fn flush(&mut self) {
        self.flush_more_at = None;
        let mut budget_bytes = self.config.flush_bytes_max.max(1);
        // Answers to one batch may queue more (writes waiting for this node's record), so
        // go on until nothing is left; each pass proposes only what the last one queued.
        for _ in 0..8 {
            self.propose_queued(&mut budget_bytes);
            if self.unsent.is_empty() {
                break;
            }
            let proposals = std::mem::take(&mut self.unsent);
            self.step_node(raft::Input::ProposeBatch { proposals });
        }
        let own_record = matches!(self.own, OwnRecord::Registered { .. });
        if self.node.is_leader() && self.queue.has_candidate(own_record) {
            self.flush_more_at = Some(self.now.plus(1));
        }
    }

    /// Moves queued writes to the batch, in the queue's order (deficit round robin across
    /// tenants, by weight), until the flush's budget of bytes is spent. Writes numbered on
    /// this node's record wait until it is registered.
    fn propose_queued(&mut self, budget_bytes: &mut u64) {
        let own = match self.own {
            OwnRecord::Registered { client, .. } => Some(client),
            _ => None,
        };
        while *budget_bytes > 0
            && let Some(write) = self.queue.pop(own.is_some())
        {
            *budget_bytes = budget_bytes.saturating_sub(cost_bytes(&write.operation));
            let (numbered, own_sequence) = match write.numbered {
                Some(numbered) => (numbered, None),
                None => {
                    let sequence = self.next_own_sequence();
                    let acknowledged_below =
                        self.own_outstanding.first().copied().unwrap_or(sequence);
                    self.own_outstanding.insert(sequence);
                    let numbered = Numbered {
                        client: own.expect("popped only once registered"),
                        sequence,
                        acknowledged_below,
                    };
                    (numbered, Some(sequence))
                }
            };
            let request = Request::new(numbered.client, numbered.sequence, write.operation)
                .in_tenant(write.tenant)
                .acknowledging_below(numbered.acknowledged_below);
            let waiter = Waiter::Write {
                id: write.id,
                deadline: write.deadline,
                own_sequence,
            };
            self.propose(Command::Request(request), waiter);
        }
    }

    fn next_own_sequence(&mut self) -> u64 {
        let OwnRecord::Registered { next_sequence, .. } = &mut self.own else {
            unreachable!("numbered on this node's record only once it is registered");
        };
        let sequence = *next_sequence;
        *next_sequence += 1;
        sequence
    }

    fn propose(&mut self, command: Command, waiter: Waiter) {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        self.waiters.insert(id, waiter);
        self.unsent.push((id, command.encode()));
    }

    // --- The node's output --------------------------------------------------------------

    fn step_node(&mut self, input: raft::Input) {
        let output = self.node.step(self.now, input);
        self.node_wake_at = output.wake_at;
        if output.is_idle() {
            // Nothing to persist, send, apply or answer: most timer ticks of a follower.
            self.on_role();
            return;
        }
        if let Some(batch) = output.persist {
            self.output.persist.push(batch);
        }
        self.output.messages.extend(output.messages);
        // The installed snapshot is the state the committed entries that follow it apply to.
        if let Some(snapshot) = output.installed {
            self.install(snapshot);
        }
        // Accepted first: an entry may be accepted and committed in one output.
        for outcome in output.proposals {
            self.on_proposal_outcome(outcome);
        }
        for entry in output.committed {
            self.apply(entry);
        }
        for outcome in output.reads {
            self.on_read_outcome(outcome);
        }
        self.on_role();
    }

    fn on_role(&mut self) {
        let leader = self.node.is_leader();
        if leader && !self.was_leader {
            self.next_session_tick = self.now;
        } else if self.was_leader && !leader {
            let error = self.not_leader();
            for write in self.queue.drain() {
                self.answer_write(write.id, Err(error.clone()));
            }
            self.own = match self.own {
                OwnRecord::Registering => OwnRecord::Unregistered,
                other => other,
            };
        }
        self.was_leader = leader;
    }

    fn on_proposal_outcome(&mut self, outcome: ProposalOutcome) {
        match outcome {
            ProposalOutcome::Accepted { id, index, term } => {
                self.accepted.insert(index, (term, id));
            }
            ProposalOutcome::Committed { .. } => {} // Answered when the entry is applied.
            ProposalOutcome::Rejected { id, error } => {
                self.settle(id, Err(ReplicaError::from_propose(error)));
            }
            ProposalOutcome::Unknown { id, leader_hint } => {
                self.accepted.retain(|_, (_, accepted)| *accepted != id);
                let error = ReplicaError::OutcomeUnknown {
                    leader: leader_hint,
                };
                self.settle(id, Err(error));
            }
        }
    }

    /// Replaces the store with a snapshot a leader sent (verified by the node end to end).
    /// Proposals at or below its index will never be applied here: their outcome is unknown.
    fn install(&mut self, snapshot: raft::Snapshot) {
        match Store::restore(&snapshot.image) {
            Ok(store) => self.store = store,
            // Only a leader running another build could send an image that checks out but
            // does not decode. The store stays as it was; checkers see the difference.
            Err(error) => self.output.install_failure = Some(error.to_string()),
        }
        let settled: Vec<ProposalId> = self
            .accepted
            .range(..=snapshot.index)
            .map(|(_, &(_, id))| id)
            .collect();
        self.accepted.retain(|&index, _| index > snapshot.index);
        for id in settled {
            let error = ReplicaError::OutcomeUnknown {
                leader: self.node.leader(),
            };
            self.settle(id, Err(error));
        }
        self.applied_since_snapshot = (0, 0);
        self.output.installed = Some((snapshot.index, snapshot.term));
    }

    /// Takes a snapshot once enough was applied since the last one (and the last one is
    /// durable and encoded): a copy of the store at the applied index goes to the driver to
    /// encode ([`Output::snapshot_to_encode`]); its image goes to the node, which persists it.
    fn maybe_take_snapshot(&mut self) {
        let (entries, bytes) = self.applied_since_snapshot;
        let due = |every: u64, count: u64| every > 0 && count >= every;
        let config = &self.config;
        if !(due(config.snapshot_every_entries, entries) || due(config.snapshot_every_bytes, bytes))
            || self.node.is_persisting_snapshot()
            || self.encoding_snapshot
        {
            return;
        }
        let index = self.node.applied_index();
        if index <= self.node.log().base() {
            return;
        }
        self.applied_since_snapshot = (0, 0);
        self.encoding_snapshot = true;
        self.output.snapshot_to_encode = Some(SnapshotJob {
            index,
            store: self.store.clone(),
        });
    }

    fn apply(&mut self, entry: Entry) {
        let (entries, bytes) = &mut self.applied_since_snapshot;
        *entries += 1;
        *bytes += entry.size_bytes() as u64;
        let response = match &entry.payload {
            EntryPayload::Command(bytes) => Some(self.store.apply(entry.index, bytes)),
            EntryPayload::Noop | EntryPayload::Configuration(_) => None,
        };
        let membership_waiter = self
            .accepted
            .get(&entry.index)
            .is_some_and(|(_, id)| matches!(self.waiters.get(id), Some(Waiter::Membership { .. })));
        if membership_waiter && let Some((term, id)) = self.accepted.remove(&entry.index) {
            let result = match &entry.payload {
                EntryPayload::Configuration(membership) if term == entry.term => {
                    Ok(MembershipApplied {
                        index: entry.index,
                        term,
                        membership: membership.clone(),
                    })
                }
                _ => Err(ReplicaError::OutcomeUnknown {
                    leader: self.node.leader(),
                }),
            };
            if let Some(Waiter::Membership { id, .. }) = self.waiters.remove(&id) {
                self.output.answers.push(Answer::Membership { id, result });
            }
        } else if let Some((term, id)) = self.accepted.remove(&entry.index) {
            let result = match &response {
                Some(response) if term == entry.term => Ok(Applied {
                    response: response.clone(),
                    index: entry.index,
                    term,
                }),
                // Another leader's entry took the index: ours was discarded.
                _ => Err(ReplicaError::OutcomeUnknown {
                    leader: self.node.leader(),
                }),
            };
            self.settle(id, result);
        }
        self.output.applied.push(AppliedEntry { entry, response });
    }

    /// Answers the request behind proposal `id`.
    fn settle(&mut self, id: ProposalId, result: Result<Applied, ReplicaError>) {
        let Some(waiter) = self.waiters.remove(&id) else {
            return;
        };
        match waiter {
            Waiter::Write {
                id, own_sequence, ..
            } => {
                if let Some(sequence) = own_sequence {
                    self.own_outstanding.remove(&sequence);
                    if matches!(
                        &result,
                        Ok(Applied {
                            response: Err(StoreError::UnknownClient { .. }),
                            ..
                        })
                    ) {
                        // This node's record was evicted: register again for later writes.
                        self.own = OwnRecord::Unregistered;
                    }
                }
                self.answer_write(id, result);
            }
            Waiter::Register { id, .. } => self.answer_write(id, result),
            Waiter::RegisterOwn => match result {
                Ok(Applied {
                    response: Ok(Outcome::ClientRegistered { client }),
                    ..
                }) => {
                    self.own = OwnRecord::Registered {
                        client,
                        next_sequence: 1,
                    };
                    // The writes that waited for the record go without waiting for a flush.
                    self.flush_due = self.queue.has_unnumbered();
                }
                _ => self.own = OwnRecord::Unregistered,
            },
            Waiter::Tick => {}
            Waiter::Membership { id, .. } => {
                let membership = self.node.membership().clone();
                let result = result.map(|applied| MembershipApplied {
                    index: applied.index,
                    term: applied.term,
                    membership,
                });
                self.output.answers.push(Answer::Membership { id, result });
            }
        }
    }

    fn on_read_outcome(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Ready { id, .. } => {
                if let Some(read) = self.reads.remove(id) {
                    let result = self.store.read(&read.query).map_err(ReplicaError::Store);
                    let id = read.request;
                    self.output.answers.push(Answer::Read { id, result });
                }
            }
            ReadOutcome::Failed { id, error } => {
                if let Some(read) = self.reads.remove(id) {
                    let error = match error {
                        ReadError::NotLeader { leader_hint } => ReplicaError::NotLeader {
                            leader: leader_hint,
                        },
                        ReadError::PendingLimit => {
                            ReplicaError::Overloaded("too many pending reads")
                        }
                    };
                    let id = read.request;
                    self.output.answers.push(Answer::Read {
                        id,
                        result: Err(error),
                    });
                }
            }
        }
    }

    // --- Timers -------------------------------------------------------------------------

    /// The leader's session clock, this node's own record, and request deadlines.
    fn housekeeping(&mut self) {
        let more_due = self.flush_more_at.is_some_and(|at| self.now >= at);
        if std::mem::take(&mut self.flush_due) || more_due {
            self.flush();
        }
        if self.node.is_leader() {
            if write_needs_own_record(&self.queue) {
                self.register_own();
            }
            if self.store.session_clock_needed() && self.now >= self.next_session_tick {
                self.next_session_tick = self.now.plus(self.config.session_tick_interval_ms);
                let tick = Tick {
                    term: self.node.term(),
                    now: self.now,
                };
                self.propose(Command::Tick(tick), Waiter::Tick);
            }
            // Registrations and ticks go at once; writes wait for the driver's flush.
            if !self.unsent.is_empty() {
                let proposals = std::mem::take(&mut self.unsent);
                self.step_node(raft::Input::ProposeBatch { proposals });
            }
        }
        if self.now >= self.next_sweep {
            self.next_sweep = self.now.plus(self.config.sweep_interval_ms);
            self.sweep_expired();
        }
        self.maybe_take_snapshot();
    }

    fn sweep_expired(&mut self) {
        let now = self.now;
        let expired: Vec<ProposalId> = self
            .waiters
            .iter()
            .filter(|(_, waiter)| match waiter {
                Waiter::Write { deadline, .. }
                | Waiter::Register { deadline, .. }
                | Waiter::Membership { deadline, .. } => *deadline <= now,
                Waiter::RegisterOwn | Waiter::Tick => false,
            })
            .map(|(&id, _)| id)
            .collect();
        if !expired.is_empty() {
            // Their entries may still commit; nobody waits for them any more.
            self.accepted.retain(|_, (_, id)| !expired.contains(id));
        }
        for id in expired {
            self.settle(id, Err(ReplicaError::Timeout));
        }
        for read in self.reads.take_expired(now) {
            self.output.answers.push(Answer::Read {
                id: read.request,
                result: Err(ReplicaError::Timeout),
            });
        }
        for write in self.queue.take_expired(now) {
            self.answer_write(write.id, Err(ReplicaError::Timeout));
        }
    }

    /// Answers every request in flight with `error` (the driver is stopping, or its storage
    /// failed). The entries stay in the log: writes among them may still commit.
    pub fn fail_all(&mut self, error: &ReplicaError) -> Vec<Answer> {
        self.accepted.clear();
        let ids: Vec<ProposalId> = self.waiters.keys().copied().collect();
        for id in ids {
            self.settle(id, Err(error.clone()));
        }
        for read in self.reads.drain() {
            self.output.answers.push(Answer::Read {
                id: read.request,
                result: Err(error.clone()),
            });
        }
        for write in self.queue.drain() {
            self.answer_write(write.id, Err(error.clone()));
        }
        std::mem::take(&mut self.output.answers)
    }

    /// Checks what must hold between steps: every proposal in the log has a waiter, this
    /// node's outstanding sequences belong to writes in flight, a follower holds no queued
    /// writes and no pending reads, and the node's own invariants
    /// ([`Node::check_invariants`]). Run at the end of every step in debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.node.check_invariants()?;
        if let Some((index, (_, id))) = self
            .accepted
            .iter()
            .find(|(_, (_, id))| !self.waiters.contains_key(id))
        {
            return Err(format!("the proposal {id:?} at {index} has no waiter"));
        }
        let own_in_flight = self
            .waiters
            .values()
            .filter(|waiter| {
                matches!(waiter, Waiter::Write { own_sequence: Some(sequence), .. }
                    if self.own_outstanding.contains(sequence))
            })
            .count();
        if own_in_flight != self.own_outstanding.len() {
            return Err(format!(
                "{} of this node's sequences outstanding, {own_in_flight} writes in flight",
                self.own_outstanding.len()
            ));
        }
        if !self.node.is_leader() && (!self.queue.is_empty() || !self.reads.is_empty()) {
            return Err(format!(
                "a follower holding {} queued writes and {} reads",
                self.queue.len(),
                self.reads.len()
            ));
        }
        Ok(())
    }

    fn end_step(&mut self) -> Output {
        #[cfg(debug_assertions)]
        if let Err(broken) = self.check_invariants() {
            panic!("replica {} broke an invariant: {broken}", self.node.id());
        }
        let mut wake_at = self.node_wake_at;
        if self.node.is_leader() && self.store.session_clock_needed() {
            wake_at = wake_at.min(self.next_session_tick);
        }
        // O(1) on the hot path: a tick or registration in flight wakes a sweep needlessly,
        // which is harmless.
        if !self.waiters.is_empty() || !self.queue.is_empty() || !self.reads.is_empty() {
            wake_at = wake_at.min(self.next_sweep);
        }
        if let Some(at) = self.flush_more_at {
            wake_at = wake_at.min(at);
        }
        self.output.wake_at = wake_at.max(self.now);
        std::mem::take(&mut self.output)
    }
}

/// The tenant whose read rate a query counts against. Watch polls are bounded by the
/// watches cap instead (a long poll polls the local store many times), and the server's
/// own lookups (tokens, tenants) count for nobody.
fn rated_tenant(query: &Query) -> Option<TenantId> {
    match query {
        Query::Get { tenant, .. } | Query::Service { tenant, .. } | Query::Services { tenant } => {
            Some(*tenant)
        }
        Query::List(list) => Some(list.tenant),
        Query::Watch(_) | Query::Tenants | Query::Tenant { .. } | Query::Authenticate { .. } => {
            None
        }
    }
}

/// Whether a queued write waits for this node's own client record.
fn write_needs_own_record(queue: &WriteQueue) -> bool {
    queue.has_unnumbered()
}
