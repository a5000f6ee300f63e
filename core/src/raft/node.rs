//! The Raft node: one value that a driver feeds inputs and whose outputs it carries out.

use super::config::{Config, ConfigError};
use super::entry::{Entry, EntryPayload, HardState};
use super::log::RaftLog;
use super::message::{Envelope, Message};
use super::output::{
    BatchId, DurableState, Input, Output, PersistBatch, PersistSnapshot, ProposalOutcome,
    ReadOutcome, Snapshot,
};
use super::progress::{Inflight, Progress};
use super::role::{LeaderState, Role, RoleName};
use super::snapshot::{IncomingSnapshot, entries_after_snapshot, recovered_log_misses_entries};
use super::status::{PeerStatus, Status};
use crate::types::{LogIndex, Millis, NodeId, Term};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// One Raft node, as a pure state machine.
///
/// A node never reads a clock, touches a file or a socket, or draws ambient randomness. A
/// driver (the simulator or the real runtime) owns it and, step by step:
///
/// 1. builds it with [`Node::new`] on first start, or [`Node::restart`] with the
///    [`DurableState`] it recovered from disk;
/// 2. calls [`Node::step`] with the current time and one [`Input`]: a message from a peer, a
///    proposal, a read, a transfer request, a report that a batch is durable, or a bare
///    [`Input::Tick`] when only time has passed;
/// 3. carries out the returned [`Output`] in this order: start persisting `persist`; send
///    `messages`; apply `committed` in order; then answer `proposals` and serve `reads`;
/// 4. reports `Input::Persisted(id)` once the batch `id` is durable (batches are made durable
///    in the order they were emitted);
/// 5. steps the node again no later than `wake_at`.
///
/// **Restart replays.** A restarted node hands out every committed entry it recovered again,
/// from index 1, in `committed` of its first steps: the driver rebuilds its state machine from
/// them (an empty store applies them all; a driver must not skip them). Proposals do not
/// survive a restart: their outcomes are never reported, so a client that got no answer
/// treats its write as unknown and retries with its exactly-once numbering.
///
/// **Matching answers.** A [`ProposalOutcome::Accepted`] names the `(index, term)` the
/// proposal took; the entry committed at that index answers it only if its term is the same
/// (another leader may have put another entry there). [`crate::replica::Replica`] keeps that
/// table; a driver of the bare node keeps its own.
///
/// The one ordering rule that matters — persist before acknowledging — is enforced inside the
/// node: votes and append acknowledgements that depend on a batch are held until that batch
/// is reported durable, so everything in `messages` may always be sent at once.
///
/// ```
/// use rafting_core::raft::{Config, Input, Node, ProposalId};
/// use rafting_core::{Millis, NodeId};
///
/// let ids = [NodeId(1), NodeId(2), NodeId(3)];
/// let mut nodes: Vec<Node> =
///     ids.iter().map(|&id| Node::new(Config::new(id, ids, 7)).unwrap()).collect();
/// let mut inbox = Vec::new();
/// let mut committed = Vec::new();
/// let mut proposed = false;
/// for now in (0..10_000u64).step_by(10) {
///     // Feed every node the passage of time, then deliver messages until the network is
///     // quiet. A real driver persists asynchronously; this one persists at once.
///     let mut inputs: Vec<(usize, Input)> = (0..3).map(|n| (n, Input::Tick)).collect();
///     if !proposed {
///         if let Some(leader) = nodes.iter().position(|node| node.is_leader()) {
///             inputs.push((leader, Input::Propose { id: ProposalId(1), data: b"x=1".to_vec() }));
///             proposed = true;
///         }
///     }
///     while let Some((n, input)) = inputs.pop() {
///         let output = nodes[n].step(Millis(now), input);
///         if let Some(batch) = output.persist {
///             inputs.push((n, Input::Persisted(batch.id)));
///         }
///         for envelope in output.messages {
///             let to = ids.iter().position(|&id| id == envelope.to).unwrap();
///             inbox.push((to, Input::Message(envelope)));
///         }
///         committed.extend(output.committed.into_iter().map(|entry| (n, entry)));
///         inputs.append(&mut inbox);
///     }
/// }
/// // The command committed and was applied on all three nodes.
/// let applied = committed.iter().filter(|(_, entry)| {
///     matches!(&entry.payload, rafting_core::raft::EntryPayload::Command(data) if data[..] == b"x=1"[..])
/// });
/// assert_eq!(applied.count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Node {
    pub(super) config: Config,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: Millis,
    pub(super) term: Term,
    pub(super) voted_for: Option<NodeId>,
    pub(super) leader: Option<NodeId>,
    pub(super) role: Role,
    pub(super) log: RaftLog,
    /// When a follower or candidate starts an election.
    pub(super) election_deadline: Millis,
    /// When this node last heard from a leader of its term (for the CheckQuorum lease).
    pub(super) leader_contact: Option<Millis>,
    /// The hard state last handed out for persisting.
    pub(super) emitted_hard_state: HardState,
    /// Smallest log index changed in this step and not yet handed out for persisting.
    pub(super) unsaved_from: Option<LogIndex>,
    /// Sequence number the next persist batch gets; batches are numbered from 1.
    pub(super) next_batch: u64,
    /// Every batch up to this one is durable.
    pub(super) persisted_batch: u64,
    /// Messages that may only leave once the given batch is durable.
    pub(super) held: Vec<(u64, Envelope)>,
    /// The output being assembled by the current step.
    pub(super) output: Output,
    /// Whether the node has been stepped yet: the first step tells it what time it is.
    pub(super) started: bool,
    /// Set while a node that started on an empty disk catches up (see
    /// [`Config::catch_up_before_voting`]): it neither votes nor campaigns meanwhile.
    pub(super) catch_up: Option<CatchUp>,
    /// Votes are refused for this term and earlier: a node that caught up after losing its
    /// disk may already have voted in them before the loss.
    pub(super) vote_floor: Term,
    /// The newest snapshot this node holds: taken here and durable, or installed.
    pub(super) snapshot: Option<Snapshot>,
    /// The CRC-32C of that snapshot's image (0 without one), which every chunk sent to a
    /// follower carries: computed once per snapshot, not at each of the leader's steps that
    /// streams it.
    pub(super) snapshot_checksum: u32,
    /// A snapshot to hand out in the next persist batch.
    pub(super) unsaved_snapshot: Option<PersistSnapshot>,
    /// Snapshots taken here, by the batch that persists them: once it is durable the log is
    /// compacted up to them.
    pub(super) compactions: Vec<(u64, Snapshot)>,
    /// A snapshot being received from the leader.
    pub(super) incoming: Option<IncomingSnapshot>,
    /// Assembled snapshots refused because their checksum did not match (for coverage).
    pub(super) snapshot_checksum_failures: u64,
    /// Snapshots installed from a leader.
    pub(super) snapshots_installed: u64,
}

/// A node catching up after starting on an empty disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CatchUp {
    /// The commit index of the first leader it heard from: once its own log holds and has
    /// made durable that much, it may vote again. `None` until a leader is heard.
    pub target: Option<LogIndex>,
}

impl Node {
    /// A node starting with an empty log.
    pub fn new(config: Config) -> Result<Node, ConfigError> {
        Node::restart(config, DurableState::default())
    }

    /// A node resuming from what it made durable before it stopped: its newest snapshot, if
    /// any, and the log entries that continue it (a tail that does not is dropped: it was
    /// discarded when the snapshot was installed, or an older snapshot stands in for a
    /// damaged newer one and the leader will send what is missing).
    pub fn restart(config: Config, durable: DurableState) -> Result<Node, ConfigError> {
        config.validate()?;
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ config.id.get().rotate_left(32));
        let (base, base_term) = durable
            .snapshot
            .as_ref()
            .map_or((LogIndex::ZERO, Term::ZERO), |s| (s.index, s.term));
        // A log that misses entries after its snapshot lost what it may have acknowledged:
        // the node catches up before it votes, as on a wiped disk.
        let lost_entries = recovered_log_misses_entries(&durable.entries, base);
        let entries = entries_after_snapshot(durable.entries, base, base_term);
        let mut log = RaftLog::recovered_after(base, base_term, entries, durable.hard_state.commit);
        // The configuration comes from the snapshot and the log once they hold one; the
        // bootstrap configuration (flags) stands only for an empty history.
        let base_membership = durable
            .snapshot
            .as_ref()
            .map_or_else(|| config.bootstrap_membership(), |s| s.membership.clone());
        log.set_base_membership(base_membership);
        let snapshot_checksum = durable
            .snapshot
            .as_ref()
            .map_or(0, |s| crc32c::crc32c(&s.image));
        let mut node = Node {
            rng,
            now: Millis::ZERO,
            term: durable.hard_state.term,
            voted_for: durable.hard_state.voted_for,
            leader: None,
            role: Role::Follower,
            election_deadline: Millis::ZERO,
            leader_contact: None,
            emitted_hard_state: HardState {
                commit: log.commit(),
                ..durable.hard_state
            },
            log,
            unsaved_from: None,
            next_batch: 1,
            persisted_batch: 0,
            held: Vec::new(),
            output: Output::default(),
            started: false,
            catch_up: (config.catch_up_before_voting || lost_entries)
                .then_some(CatchUp { target: None }),
            vote_floor: Term::ZERO,
            snapshot: durable.snapshot,
            snapshot_checksum,
            unsaved_snapshot: None,
            compactions: Vec::new(),
            incoming: None,
            snapshot_checksum_failures: 0,
            snapshots_installed: 0,
            config,
        };
        node.reset_election_deadline();
        Ok(node)
    }

    /// Feeds one input at time `now` and returns what the driver must do. Time never moves
    /// back: an earlier `now` than a previous step's is treated as no time passing.
    pub fn step(&mut self, now: Millis, input: Input) -> Output {
        self.now = self.now.max(now);
        if !self.started {
            // A node learns the time only from its first input; its first election timeout
            // counts from then, not from the driver's origin of time.
            self.started = true;
            self.reset_election_deadline();
        }
        self.fire_timers();
        match input {
            Input::Tick => {}
            Input::Message(envelope) => self.on_message(envelope),
            Input::Propose { id, data } => self.on_propose(id, data),
            Input::ProposeBatch { proposals } => {
                for (id, data) in proposals {
                    self.on_propose(id, data);
                }
            }
            Input::Read { id } => self.on_read(id),
            Input::TransferLeadership { to } => self.on_transfer_leadership(to),
            Input::Persisted(batch) => self.on_persisted(batch),
            Input::Campaign => {
                if !matches!(self.role, Role::Leader(_)) {
                    self.on_election_timeout();
                }
            }
            Input::PeerUnreachable { peer } => self.on_peer_unreachable(peer),
            Input::SnapshotTaken { index, image } => self.on_snapshot_taken(index, image),
            Input::ChangeMembership { id, change } => self.on_change_membership(id, change),
        }
        self.end_step()
    }

    fn fire_timers(&mut self) {
        if matches!(self.role, Role::Leader(_)) {
            self.fire_leader_timers();
        } else if self.now >= self.election_deadline {
            self.on_election_timeout();
        }
    }

    /// Completes a step: sends what the leader owes, hands out the persist batch, releases
    /// held messages, committed entries and ready reads, and computes the next wake-up.
    fn end_step(&mut self) -> Output {
        if matches!(self.role, Role::Leader(_)) {
            self.leader_maybe_commit();
            self.leader_send_pending();
        }
        self.output.persist = self.take_persist_batch();
        self.release_held_messages();
        let committed = self.log.take_applicable();
        if let Role::Leader(leader) = &mut self.role {
            for entry in &committed {
                if let Some((term, id)) = leader.pending_proposals.remove(&entry.index) {
                    debug_assert_eq!(term, entry.term, "a leader's own entry keeps its term");
                    self.output.proposals.push(ProposalOutcome::Committed {
                        id,
                        index: entry.index,
                    });
                }
            }
        }
        self.output.committed = committed;
        self.maybe_step_down_when_removed();
        self.maybe_finish_catch_up();
        self.release_ready_reads();
        self.output.wake_at = self.wake_at();
        #[cfg(debug_assertions)]
        if let Err(broken) = self.check_invariants() {
            panic!("node {} broke an invariant: {broken}", self.config.id);
        }
        std::mem::take(&mut self.output)
    }

    /// Checks what must hold between steps, in O(peers + pending proposals): the log's indexes
    /// are ordered (`applied ≤ commit ≤ last`, `durable ≤ last`), no entry is of a later term
    /// than the node's, and a leader leads itself, voted for itself, and keeps each follower's
    /// `match_index < next_index ≤ last + 1`, only uncommitted proposals pending, and a
    /// heartbeat round wanted only for reads that wait for it.
    ///
    /// Debug builds (the tests and the simulator under `cargo test`) run it at the end of every
    /// step; the simulator also runs it as a checker in every build.
    pub fn check_invariants(&self) -> Result<(), String> {
        let log = &self.log;
        let (applied, commit, last) = (log.applied(), log.commit(), log.last_index());
        if !(applied <= commit && commit <= last && log.durable() <= last) {
            return Err(format!(
                "log indexes out of order: applied {applied}, commit {commit}, durable {}, last {last}",
                log.durable()
            ));
        }
        if log.last_term() > self.term {
            return Err(format!(
                "the last entry's term {} is later than the node's {}",
                log.last_term(),
                self.term
            ));
        }
        if let Role::Leader(leader) = &self.role {
            let own = Some(self.config.id);
            if self.leader != own || self.voted_for != own {
                return Err(format!(
                    "a leader that believes in {:?} and voted for {:?}",
                    self.leader, self.voted_for
                ));
            }
            for (peer, progress) in &leader.progress {
                if progress.match_index >= progress.next_index || progress.next_index > last.next()
                {
                    return Err(format!(
                        "progress of {peer}: match {} next {} with last {last}",
                        progress.match_index, progress.next_index
                    ));
                }
            }
            let members: Vec<NodeId> = self
                .log
                .membership()
                .members()
                .filter(|&id| id != self.config.id)
                .collect();
            if !leader.progress.keys().copied().eq(members.iter().copied()) {
                return Err(format!(
                    "a leader replicating to {:?} in a configuration of {members:?}",
                    leader.progress.keys().collect::<Vec<_>>()
                ));
            }
            if leader.reads.round_needed && leader.reads.is_empty() {
                return Err("a leader that needs a heartbeat round with no read waiting".into());
            }
            if let Some((&index, _)) = leader.pending_proposals.first_key_value()
                && index <= applied
            {
                return Err(format!("proposal at {index} pending after it was applied"));
            }
        } else if self.leader == Some(self.config.id) {
            return Err(format!(
                "a {} that believes it leads",
                self.role.name().as_str()
            ));
        }
        Ok(())
    }

    fn wake_at(&self) -> Millis {
        match &self.role {
            Role::Leader(leader) => {
                let mut at = leader.heartbeat_deadline.min(leader.check_quorum_deadline);
                if let Some(transfer) = &leader.transfer {
                    at = at.min(transfer.deadline);
                }
                at
            }
            _ => self.election_deadline,
        }
    }

    /// Builds the persist batch for what changed in this step, if anything must be made
    /// durable: new entries, or a new term or vote. A change of commit index alone is carried
    /// along with the next batch rather than costing an fsync of its own.
    fn take_persist_batch(&mut self) -> Option<PersistBatch> {
        if !self.has_unsaved_changes() {
            return None;
        }
        let hard_state = self.hard_state();
        let entries = match self.unsaved_from.take() {
            Some(from) => self.log.entries_from(from, usize::MAX, usize::MAX),
            None => Vec::new(),
        };
        let hard_state_out = (hard_state != self.emitted_hard_state).then_some(hard_state);
        self.emitted_hard_state = hard_state;
        let id = BatchId {
            sequence: self.next_batch,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        let snapshot = self.unsaved_snapshot.take();
        if let Some(taken) = snapshot.as_ref().filter(|persist| !persist.log_reset)
            && self.snapshot.as_ref() != Some(&taken.snapshot)
        {
            self.compactions.push((id.sequence, taken.snapshot.clone()));
        }
        self.next_batch += 1;
        Some(PersistBatch {
            id,
            hard_state: hard_state_out,
            entries,
            snapshot,
        })
    }

    /// Whether this step changed something that must be made durable: log entries, or the
    /// term or vote (the commit index alone rides along with the next batch).
    fn has_unsaved_changes(&self) -> bool {
        self.unsaved_from.is_some()
            || self.unsaved_snapshot.is_some()
            || (self.term, self.voted_for)
                != (
                    self.emitted_hard_state.term,
                    self.emitted_hard_state.voted_for,
                )
    }

    /// The batch that the state changed so far in this step will be part of: messages that
    /// depend on that state wait for it.
    pub(super) fn current_batch(&self) -> u64 {
        if self.has_unsaved_changes() {
            self.next_batch
        } else {
            self.next_batch - 1
        }
    }

    /// Sends `message` once everything this node has changed so far is durable.
    pub(super) fn send_when_durable(&mut self, to: NodeId, message: Message) {
        let envelope = Envelope {
            from: self.config.id,
            to,
            message,
        };
        let batch = self.current_batch();
        if batch <= self.persisted_batch {
            self.output.messages.push(envelope);
        } else {
            self.held.push((batch, envelope));
        }
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        self.output.messages.push(Envelope {
            from: self.config.id,
            to,
            message,
        });
    }

    fn release_held_messages(&mut self) {
        let persisted = self.persisted_batch;
        // In place, in order: this runs at the end of every step, mostly with nothing held.
        let ready = self.held.extract_if(.., |(batch, _)| *batch <= persisted);
        self.output
            .messages
            .extend(ready.map(|(_, envelope)| envelope));
    }

    fn on_persisted(&mut self, batch: BatchId) {
        if batch.sequence >= self.next_batch || batch.sequence <= self.persisted_batch {
            // A report for a batch never emitted, or one already reported: nothing to learn.
            return;
        }
        self.persisted_batch = batch.sequence;
        self.log.mark_durable(batch.last_index, batch.last_term);
        self.compact_persisted(batch.sequence);
        if let Role::Candidate {
            self_vote_batch, ..
        } = &self.role
            && *self_vote_batch <= self.persisted_batch
        {
            let id = self.config.id;
            self.on_vote(id, true);
        }
    }

    /// A node catching up may vote again once its log holds, durably, everything the leader it
    /// first heard from had committed. From then on it refuses votes in the terms it may have
    /// voted in before its disk was lost.
    fn maybe_finish_catch_up(&mut self) {
        let Some(CatchUp {
            target: Some(target),
        }) = self.catch_up
        else {
            return;
        };
        if self.log.commit() >= target && self.log.durable() >= target {
            self.catch_up = None;
            self.vote_floor = self.term;
        }
    }

    /// Whether this node may take part in elections (vote, campaign) now.
    pub(super) fn may_vote(&self) -> bool {
        self.catch_up.is_none()
    }

    /// Appends a new entry at the end of the log (leader only), marking it unsaved.
    pub(super) fn append_entry(&mut self, payload: EntryPayload) -> LogIndex {
        let index = self.log.last_index().next();
        self.log.append(Entry {
            term: self.term,
            index,
            payload,
        });
        self.mark_unsaved(index);
        index
    }

    pub(super) fn mark_unsaved(&mut self, from: LogIndex) {
        self.unsaved_from = Some(self.unsaved_from.map_or(from, |current| current.min(from)));
    }

    pub(super) fn reset_election_deadline(&mut self) {
        let timeout = self
            .rng
            .random_range(self.config.election_timeout_ms_min..self.config.election_timeout_ms_max);
        self.election_deadline = self.now.plus(timeout);
    }

    /// Moves to follower of `term`, adopting it if it is newer (and forgetting the vote).
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "the term never decreases");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.step_down_cleanup(leader);
        self.role = Role::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.leader_contact = Some(self.now);
        }
        self.reset_election_deadline();
    }

    /// When leadership ends, every proposal and read the leader held gets a clear answer.
    fn step_down_cleanup(&mut self, hint: Option<NodeId>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        for (_, (_, id)) in std::mem::take(&mut leader.pending_proposals) {
            self.output.proposals.push(ProposalOutcome::Unknown {
                id,
                leader_hint: hint,
            });
        }
        for id in leader.reads.drain_all() {
            let error = super::output::ReadError::NotLeader { leader_hint: hint };
            self.output.reads.push(ReadOutcome::Failed { id, error });
        }
    }

    pub(super) fn leader_state(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            Role::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    /// Every other member of the newest configuration, voters and learners: those a leader
    /// replicates to.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.log
            .membership()
            .members()
            .filter(|&id| id != self.config.id)
            .collect()
    }

    /// The other voters of the newest configuration: those asked for votes.
    pub(super) fn voting_peers(&self) -> Vec<NodeId> {
        self.log
            .membership()
            .voters
            .iter()
            .copied()
            .filter(|&id| id != self.config.id)
            .collect()
    }

    /// Whether this node votes in its newest configuration (learners and removed members
    /// never campaign).
    pub fn is_voter(&self) -> bool {
        self.log.membership().is_voter(self.config.id)
    }

    /// The configuration in force here: the newest in the log.
    pub fn membership(&self) -> &super::membership::Membership {
        self.log.membership()
    }

    /// The configuration in force at the commit index.
    pub fn committed_membership(&self) -> &super::membership::Membership {
        self.log.memberships().at(self.log.commit())
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.log.commit(),
        }
    }

    // ---- read-only accessors for drivers, checkers and tests ----

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> RoleName {
        self.role.name()
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The leader this node currently believes in, if any (itself when leading).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    pub fn commit_index(&self) -> LogIndex {
        self.log.commit()
    }

    pub fn applied_index(&self) -> LogIndex {
        self.log.applied()
    }

    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    pub fn durable_index(&self) -> LogIndex {
        self.log.durable()
    }

    /// Whether this node started on an empty disk (or on a log that misses entries) and is
    /// still catching up before it may vote.
    pub fn is_catching_up(&self) -> bool {
        self.catch_up.is_some()
    }

    /// While catching up, the index its log must hold durably before it may vote again;
    /// `None` when not catching up, or before it heard from a leader.
    pub fn catch_up_target(&self) -> Option<LogIndex> {
        self.catch_up.as_ref().and_then(|catch_up| catch_up.target)
    }

    /// The in-memory log (for checkers and tests).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// Reads a leader holds (waiting for its term's first commit, for a heartbeat round, or for
    /// the state machine); zero on other roles.
    pub fn pending_reads(&self) -> usize {
        match &self.role {
            Role::Leader(leader) => leader.reads.len(),
            _ => 0,
        }
    }

    /// The voter a leader is handing leadership to; `None` on other roles and when no transfer
    /// is in progress.
    pub fn transfer_target(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(leader) => leader.transfer.as_ref().map(|transfer| transfer.target),
            _ => None,
        }
    }

    /// The last entry the newest snapshot this node holds covers (zero: none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot
            .as_ref()
            .map_or(LogIndex::ZERO, |snapshot| snapshot.index)
    }

    /// A leader's view of each follower, in id order, read in place from its progress (what
    /// [`Node::status`] copies into `peers`, without the copy, for a check after every step);
    /// empty on other roles.
    pub fn peer_statuses(&self) -> impl Iterator<Item = PeerStatus> + Clone + '_ {
        // The type is spelt out so that it does not hang on the leader's arm alone.
        let progress: Option<&BTreeMap<NodeId, Progress>> = match &self.role {
            Role::Leader(leader) => Some(&leader.progress),
            _ => None,
        };
        progress
            .into_iter()
            .flatten()
            .map(|(&id, progress)| PeerStatus {
                id,
                match_index: progress.match_index,
                next_index: progress.next_index,
                state: progress.state_name(),
                recent_active: progress.recent_active,
                disk_losses: progress.disk_losses,
                doubted: progress.doubted,
                appends_in_flight: progress.inflight().map_or(0, Inflight::len),
                bytes_in_flight: progress.inflight().map_or(0, Inflight::bytes),
            })
    }

    /// A copy of this node's state for status pages and traces (not a Raft snapshot), built
    /// from the accessors above.
    pub fn status(&self) -> Status {
        let membership = self.log.membership();
        Status {
            id: self.config.id,
            role: self.role.name(),
            term: self.term,
            leader: self.leader(),
            commit_index: self.log.commit(),
            applied_index: self.log.applied(),
            last_index: self.log.last_index(),
            durable_index: self.log.durable(),
            catching_up: self.is_catching_up(),
            catch_up_target: self.catch_up_target(),
            pending_reads: self.pending_reads(),
            transfer_target: self.transfer_target(),
            uncommitted_bytes: self.log.uncommitted_bytes(),
            snapshot_index: self.snapshot_index(),
            first_log_index: self.log.first_index(),
            snapshots_installed: self.snapshots_installed,
            snapshot_checksum_failures: self.snapshot_checksum_failures,
            voters: membership.voters.clone(),
            learners: membership.learners.clone(),
            peers: self.peer_statuses().collect(),
        }
    }
}

#[cfg(test)]
mod invariant_tests {
    use super::*;

    /// A one-node cluster that has elected itself and committed its no-op.
    fn leader() -> Node {
        let mut node = Node::new(Config::new(NodeId(1), [NodeId(1)], 1)).unwrap();
        let mut now = Millis(0);
        while !node.is_leader() {
            now = now.plus(100);
            let output = node.step(now, Input::Tick);
            if let Some(batch) = output.persist {
                let _ = node.step(now, Input::Persisted(batch.id));
            }
        }
        assert_eq!(node.check_invariants(), Ok(()));
        node
    }

    #[test]
    fn the_invariant_check_catches_hand_made_violations() {
        let mut broken = leader();
        broken.voted_for = None;
        assert!(broken.check_invariants().unwrap_err().contains("voted for"));

        let mut broken = leader();
        broken.term = Term::ZERO;
        assert!(
            broken
                .check_invariants()
                .unwrap_err()
                .contains("later than")
        );

        let mut broken = leader();
        broken.role = Role::Follower;
        assert!(
            broken
                .check_invariants()
                .unwrap_err()
                .contains("believes it leads")
        );

        let mut broken = leader();
        let last = broken.log.last_index();
        if let Role::Leader(state) = &mut broken.role {
            state.progress.insert(
                NodeId(2),
                super::super::progress::Progress::new(last.next()),
            );
            state.progress.get_mut(&NodeId(2)).unwrap().match_index = last.next();
        }
        assert!(
            broken
                .check_invariants()
                .unwrap_err()
                .contains("progress of n2")
        );
    }
}
