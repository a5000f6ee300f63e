//! Stepping a host's replica and carrying out its output, in the order the replica's contract
//! gives the runtime: persist to the simulated disk, send through the simulated network,
//! answer clients, arm the timer — and run every safety check on what the step changed (the
//! entries written, the role, term and commit, the messages sent, the entries applied).

use crate::checkers;
use crate::coverage;
use crate::network::Fate;
use crate::simulator::{EventKind, Simulator};
use crate::status_check::BeforeStep;
use crate::trace::TraceEvent;
use rafting_core::raft::{
    EntryPayload, Envelope, InstallSnapshot, Message, Node, PersistBatch, RoleName,
};
use rafting_core::replica::{AppliedEntry, Input, Output, SnapshotJob};
use rafting_core::{LogIndex, Millis, Term};
use rand::Rng;

impl Simulator<'_, '_> {
    pub(crate) fn on_deliver(&mut self, to: usize, envelope: Envelope, sent_us: u64) {
        let from = envelope.from.get() as usize - 1;
        if self.hosts[to].replica.is_none() {
            self.trace_drop(&envelope, sent_us, "node down");
            return;
        }
        if self.network.is_blocked(from, to) {
            self.trace_drop(&envelope, sent_us, "partitioned");
            return;
        }
        if self.hosts[to].paused {
            // (Asked here rather than through `hold_if_paused`: wrapping every message in an
            // event and out again copied it twice, at every delivery.)
            let held = EventKind::Deliver {
                to,
                envelope,
                sent_us,
            };
            self.hosts[to].backlog.push(held);
            return;
        }
        self.hand_over(to, envelope, sent_us);
    }

    /// A message (sent at `sent_us`) that reached a running node is stepped into it.
    pub(crate) fn hand_over(&mut self, to: usize, envelope: Envelope, sent_us: u64) {
        self.events += 1;
        if self.tracer.enabled() {
            self.tracer.record(
                self.now_us,
                TraceEvent::Deliver {
                    from: envelope.from.get(),
                    to: envelope.to.get(),
                    sent_us,
                    message: envelope.message.kind(),
                    term: envelope.message.term().get(),
                    append: crate::trace::AppendSummary::of(&envelope.message),
                },
            );
        }
        let transfer = matches!(envelope.message, Message::TimeoutNow(_));
        self.step_node(to, Input::Message(envelope));
        if transfer {
            let host = &mut self.hosts[to];
            host.campaigned_on_transfer = host.node().map(Node::term);
        }
    }

    pub(crate) fn trace_drop(&mut self, envelope: &Envelope, sent_us: u64, reason: &'static str) {
        self.events += 1;
        if self.tracer.enabled() {
            self.tracer.record(
                self.now_us,
                TraceEvent::Drop {
                    from: envelope.from.get(),
                    to: envelope.to.get(),
                    sent_us,
                    message: envelope.message.kind(),
                    term: envelope.message.term().get(),
                    reason,
                },
            );
        }
    }

    pub(crate) fn on_timer(&mut self, node: usize, incarnation: u64) {
        let host = &mut self.hosts[node];
        if host.incarnation != incarnation || host.replica.is_none() {
            return;
        }
        if host.timer_at_us != self.now_us {
            // Not the timer armed last: one armed for a later time before the node moved its
            // deadline earlier. The armed one has fired or will. (Acting on it would re-arm a
            // second chain of timers for the same deadlines, for ever: two thirds of all
            // events once were such re-arms.)
            return;
        }
        if host.paused {
            // The timer is re-armed when the node resumes.
            host.timer_at_us = u64::MAX;
            return;
        }
        host.timer_at_us = u64::MAX;
        if host.wake_us > self.now_us {
            // The node pushed its deadline back since this event was armed: re-arm, no step.
            let at = host.wake_us;
            self.arm_timer(node, at);
            return;
        }
        self.events += 1;
        self.tracer.record(
            self.now_us,
            TraceEvent::Timer {
                node: node as u64 + 1,
            },
        );
        self.step_node(node, Input::Tick);
    }

    pub(crate) fn arm_timer(&mut self, node: usize, at_us: u64) {
        let host = &mut self.hosts[node];
        host.wake_us = at_us;
        if at_us >= host.timer_at_us {
            return;
        }
        host.timer_at_us = at_us;
        let incarnation = host.incarnation;
        self.schedule(at_us, EventKind::Timer { node, incarnation });
    }

    /// Encodes a snapshot the node asked for, and hands the image back after the time an
    /// encoder takes over its bytes (at 100 MB/s, at least a millisecond): meanwhile the node
    /// goes on applying, and may crash, pause or install a leader's snapshot.
    fn encode_snapshot(&mut self, node: usize, job: &SnapshotJob) {
        const BYTES_PER_US: u64 = 100;
        let image = job.encode();
        let delay_us = 1000 + image.len() as u64 / BYTES_PER_US;
        let encoded = EventKind::SnapshotEncoded {
            node,
            incarnation: self.hosts[node].incarnation,
            index: job.index,
            image,
        };
        self.schedule(self.now_us + delay_us, encoded);
    }

    pub(crate) fn on_snapshot_encoded(
        &mut self,
        node: usize,
        incarnation: u64,
        index: LogIndex,
        image: Vec<u8>,
    ) {
        let host = &self.hosts[node];
        if host.incarnation != incarnation || host.replica.is_none() {
            return;
        }
        let kind = EventKind::SnapshotEncoded {
            node,
            incarnation,
            index,
            image,
        };
        if let Some(EventKind::SnapshotEncoded { index, image, .. }) =
            self.hold_if_paused(node, kind)
        {
            self.events += 1;
            self.step_node(node, Input::SnapshotEncoded { index, image });
        }
    }

    pub(crate) fn on_fsync(&mut self, node: usize, incarnation: u64) {
        if self.hosts[node].incarnation != incarnation || self.hosts[node].replica.is_none() {
            return;
        }
        let kind = EventKind::Fsync { node, incarnation };
        if self.hold_if_paused(node, kind).is_none() {
            return;
        }
        use crate::disk::SimulatedDisk;
        // Group commit, as the runtime's storage thread does it: one fsync makes durable
        // every batch that was written when it started; the node hears of the last one.
        let covered = std::mem::take(&mut self.hosts[node].sync_covers);
        let mut synced = None;
        for _ in 0..covered {
            synced = self.hosts[node].disk.sync_next().or(synced);
        }
        if self.hosts[node].disk.pending() > 0 {
            self.start_sync(node);
        }
        let Some(batch) = synced else {
            return;
        };
        self.events += 1;
        if self.tracer.enabled() {
            self.tracer.record(
                self.now_us,
                TraceEvent::Persisted {
                    node: node as u64 + 1,
                    batch: batch.sequence,
                    last_index: batch.last_index.get(),
                },
            );
        }
        self.step_node(node, Input::Persisted(batch));
    }

    /// Steps a running host's replica with one input, at the host's own (drifting) clock, and
    /// carries out its output.
    pub(crate) fn step_node(&mut self, node: usize, input: Input) {
        let now_us = self.now_us;
        let host = &mut self.hosts[node];
        let local = Millis(host.local_ms(now_us));
        let Some(replica) = host.replica.as_mut() else {
            return;
        };
        let before = BeforeStep::of(replica.node());
        let output = replica.step(local, input);
        if host.catching_up && !replica.node().is_catching_up() {
            host.catching_up = false;
        }
        let truncated = output
            .persist
            .iter()
            .filter_map(|batch| batch.entries.first())
            .any(|first| first.index <= before.last_index);
        self.carry_out(node, output);
        self.check_status(node, &before, truncated);
    }

    fn carry_out(&mut self, node: usize, output: Output) {
        let proposed = self.proposed_in_own_term(node, &output.persist);
        if self.kv.is_some() {
            self.note_proposals(node, &output.persist);
        }
        self.check_snapshots(node, &output);
        for batch in output.persist {
            self.persist(node, batch);
        }
        self.check_node_state(node);
        let host = &self.hosts[node];
        if proposed && let Some(raft) = host.node().filter(|raft| raft.is_leader()) {
            let result = checkers::uncommitted_within_limits(host.id, &host.config, raft.log());
            self.check(result);
        }
        let host = &self.hosts[node];
        for envelope in &output.messages {
            let durable = host.disk.durable();
            let result = checkers::acts_on_durable_state(host.id, durable, envelope)
                .and_then(|()| checkers::append_within_limits(host.id, &host.config, envelope));
            if let Err(violation) = result {
                self.violate(violation);
                break;
            }
        }
        for envelope in output.messages {
            self.send(envelope);
        }
        for applied in &output.applied {
            self.apply(node, applied);
        }
        for answer in output.answers {
            self.on_answer(node, answer);
        }
        if let Some(job) = output.snapshot_to_encode {
            self.encode_snapshot(node, &job);
        }
        let wake_us = self.hosts[node]
            .global_us(output.wake_at.get())
            .max(self.now_us + 1);
        self.arm_timer(node, wake_us);
    }

    /// Checks the snapshots a node took or installed in this step against what others took
    /// at the same index, and notes coverage.
    fn check_snapshots(&mut self, node: usize, output: &Output) {
        let id = self.hosts[node].id;
        if self.hosts[node]
            .node()
            .is_some_and(|raft| raft.snapshot_checksum_failures() > 0)
        {
            self.coverage
                .reach(coverage::SNAPSHOT_CHECKSUM_REFUSED, self.now_us);
        }
        let installed = output.installed.map(|(index, _)| index);
        for batch in &output.persist {
            let Some(persist) = batch.snapshot.as_ref() else {
                continue;
            };
            let index = persist.snapshot.index;
            if installed == Some(index) {
                continue;
            }
            self.coverage.reach(coverage::SNAPSHOT_TAKEN, self.now_us);
            let digest = checkers::bytes_digest(&persist.snapshot.image);
            let snapshots = &mut self.record.snapshots;
            let result = checkers::snapshot_state_matches(snapshots, id, index, digest, false);
            self.check(result);
        }
        let Some(index) = installed else {
            return;
        };
        self.coverage
            .reach(coverage::SNAPSHOT_INSTALLED, self.now_us);
        let host = &mut self.hosts[node];
        host.last_applied = index;
        let Some(replica) = host.replica.as_ref() else {
            return;
        };
        let digest = checkers::bytes_digest(&replica.store().snapshot());
        let snapshots = &mut self.record.snapshots;
        let result = checkers::snapshot_state_matches(snapshots, id, index, digest, true);
        self.check(result);
        if self.tracer.enabled() {
            let detail = format!("n{} installs snapshot at {index}", id.get());
            self.fault(detail);
        }
    }

    /// Whether a leader's step appended a command of its own term (a proposal it accepted).
    fn proposed_in_own_term(&self, node: usize, batches: &[PersistBatch]) -> bool {
        let Some(raft) = self.hosts[node].node().filter(|raft| raft.is_leader()) else {
            return false;
        };
        batches
            .iter()
            .flat_map(|batch| &batch.entries)
            .any(|entry| {
                entry.term == raft.term() && matches!(entry.payload, EntryPayload::Command(_))
            })
    }

    /// Tells the session checks when a leader appended entries of its own term.
    fn note_proposals(&mut self, node: usize, batches: &[PersistBatch]) {
        let leader = self.hosts[node].node().filter(|raft| raft.is_leader());
        let Some(term) = leader.map(Node::term) else {
            return;
        };
        for entries in batches.iter().map(|batch| &batch.entries) {
            let first = entries.iter().find(|entry| entry.term == term);
            if let (Some(first), Some(last)) = (first, entries.last()) {
                self.kv_on_proposed(first.index, last.index);
            }
        }
    }

    fn persist(&mut self, node: usize, batch: PersistBatch) {
        let host = &self.hosts[node];
        let id = host.id;
        let mut violation = None;
        if let (Some(raft), Some(first)) = (host.node(), batch.entries.first()) {
            let mut previous_term = raft.log().term_at(first.index.prev()).unwrap_or_default();
            for entry in &batch.entries {
                let written = &mut self.record.written;
                if let Err(found) = checkers::log_matching(written, id, entry, previous_term) {
                    violation = Some(found);
                    break;
                }
                previous_term = entry.term;
            }
            let committed = &self.record.committed;
            let before = &host.disk.durable().entries;
            let kept =
                checkers::committed_entries_kept(committed, id, before, raft.log(), first.index);
            violation = violation.or(kept.err());
        }
        if let Some(violation) = violation {
            self.violate(violation);
        }
        if let (Some(first), Some(durable_last)) = (
            batch.entries.first(),
            self.hosts[node].disk.durable().entries.last(),
        ) && first.index <= durable_last.index
        {
            self.coverage
                .reach(coverage::FOLLOWER_TRUNCATED_SUFFIX, self.now_us);
        }
        use crate::disk::SimulatedDisk;
        self.hosts[node].disk.write(batch);
        if self.hosts[node].sync_covers == 0 {
            self.start_sync(node);
        }
    }

    /// Starts an fsync of every batch written so far; batches written while it runs wait
    /// for the next one.
    fn start_sync(&mut self, node: usize) {
        use crate::disk::SimulatedDisk;
        let [low, high] = self.scenario.disk.fsync_latency_ms;
        let latency_us = self.streams.disk.random_range(low * 1000..=high * 1000);
        let host = &mut self.hosts[node];
        host.sync_covers = host.disk.pending();
        let incarnation = host.incarnation;
        self.schedule(
            self.now_us + latency_us,
            EventKind::Fsync { node, incarnation },
        );
    }

    /// Role, term and commit checks on the node just stepped.
    pub(crate) fn check_node_state(&mut self, node: usize) {
        let host = &self.hosts[node];
        let Some(raft) = host.node() else {
            return;
        };
        let (id, role, term, commit) = (host.id, raft.role(), raft.term(), raft.commit_index());
        let role_changed = role != host.last_role || term != host.last_term;
        let previous_commit = host.last_commit;
        if role_changed && host.outside {
            let leads = role == RoleName::Leader;
            let result =
                checkers::removed_node_quiet(id, leads, host.last_term, term, self.member_term_max);
            self.check(result);
        } else if role_changed {
            self.member_term_max = self.member_term_max.max(term);
        }
        if role_changed {
            if role == RoleName::Leader {
                let incarnation = self.hosts[node].incarnation;
                let leaders = &mut self.record.leaders;
                let result = checkers::election_safety(leaders, id, incarnation, term);
                self.check(result);
                self.note_new_leader(node);
                let raft = self.hosts[node].node().expect("checked running above");
                let result = checkers::leader_completeness(
                    &self.record.committed,
                    &self.record.committed_in,
                    id,
                    term,
                    raft.log(),
                );
                self.check(result);
                if self.kv.is_some() {
                    self.kv_on_new_leader();
                }
                if let Some(duration_ms) = self.pause_next_leader_ms.take() {
                    self.pause(node, duration_ms);
                }
                if std::mem::take(&mut self.isolate_next_leader) {
                    self.isolate_in_step(node, "as it wins");
                }
            }
            self.tracer.record(
                self.now_us,
                TraceEvent::Role {
                    node: id.get(),
                    role: role.as_str(),
                    term: term.get(),
                },
            );
            let host = &mut self.hosts[node];
            host.last_role = role;
            host.last_term = term;
        }
        if commit != previous_commit {
            if role == RoleName::Leader
                && self.isolate_leader_on_commit
                && commit >= self.last_index_out_of_reach(node)
            {
                self.isolate_leader_on_commit = false;
                self.isolate_in_step(node, "as it commits");
            }
            self.check(checkers::commit_monotonic(id, previous_commit, commit));
            self.record_commits(node, previous_commit, commit);
            self.hosts[node].last_commit = commit;
            if self.kv.is_some() {
                self.kv_on_commit(commit);
            }
        }
    }

    /// The longest log among the running nodes `node` cannot reach (0 when it reaches all).
    fn last_index_out_of_reach(&self, node: usize) -> LogIndex {
        (0..self.hosts.len())
            .filter(|&other| other != node && !self.network.connected(node, other))
            .filter_map(|other| self.hosts[other].node())
            .map(|raft| raft.log().last_index())
            .max()
            .unwrap_or_default()
    }

    /// Cuts `node` off from every other node in the middle of its step: the messages of the
    /// step, sent after this, are lost.
    fn isolate_in_step(&mut self, node: usize, moment: &str) {
        self.network.heal();
        self.network.isolate(node);
        self.fault(format!("isolate n{} {moment}", node + 1));
    }

    /// Records entries `(from, to]` of `node`'s log as committed, checking agreement.
    pub(crate) fn record_commits(&mut self, node: usize, from: LogIndex, to: LogIndex) {
        let host = &self.hosts[node];
        let Some(raft) = host.node() else {
            return;
        };
        // Entries a snapshot covers are no longer in the log (the snapshot checker vouches for
        // them).
        let mut index = from.max(raft.log().base()).next();
        while index <= to {
            let Some(entry) = raft.log().entry(index) else {
                break;
            };
            let term = raft.term();
            if let Err(violation) =
                checkers::record_committed(&mut self.record, host.id, term, entry)
            {
                self.violate(violation);
                return;
            }
            if raft.is_leader() && self.conflicts_later(node, index, entry.term) {
                self.coverage
                    .reach(coverage::COMMITTED_OVER_LATER_CONFLICT, self.now_us);
            }
            index = index.next();
        }
        if self.tracer.enabled() {
            let node = host.id.get();
            self.tracer.record(
                self.now_us,
                TraceEvent::Commit {
                    node,
                    index: to.get(),
                },
            );
        }
    }

    /// Whether a node other than `node` holds an entry of a later term than `term` at `index`
    /// (asked only until a seed has reached the state once).
    fn conflicts_later(&self, node: usize, index: LogIndex, term: Term) -> bool {
        if self
            .coverage
            .reached
            .contains_key(coverage::COMMITTED_OVER_LATER_CONFLICT)
        {
            return false;
        }
        self.hosts
            .iter()
            .enumerate()
            .filter(|&(other, _)| other != node)
            .filter_map(|(_, host)| host.node()?.log().term_at(index))
            .any(|other_term| other_term > term)
    }

    /// Coverage of a node that has just become leader.
    fn note_new_leader(&mut self, node: usize) {
        let Some(raft) = self.hosts[node].node() else {
            return;
        };
        let (id, term) = (raft.id(), raft.term());
        let log = raft.log();
        // Entries no node has known committed: the leader may not count them as committed.
        let known_committed = LogIndex(self.record.committed.len() as u64);
        let mut index = log.commit().max(known_committed).next();
        while index <= log.last_index() {
            if log
                .term_at(index)
                .is_some_and(|entry_term| entry_term < term)
            {
                self.coverage
                    .reach(coverage::OLD_TERM_ENTRY_AT_NEW_LEADER, self.now_us);
                break;
            }
            index = index.next();
        }
        if self.record.leaders.values().any(|&(other, _)| other != id) {
            self.coverage.reach(coverage::LEADER_CHANGE, self.now_us);
        }
        if self.hosts[node].campaigned_on_transfer == Some(term) {
            self.coverage
                .reach(coverage::ELECTED_BY_TRANSFER, self.now_us);
        }
    }

    /// Checks an entry the replica applied to its store in this step.
    fn apply(&mut self, node: usize, applied: &AppliedEntry) {
        let entry = &applied.entry;
        let host = &mut self.hosts[node];
        let id = host.id;
        let result = checkers::applied_in_order(id, host.last_applied, entry);
        host.last_applied = entry.index;
        self.check(result);
        let result = checkers::state_machine_safety(&mut self.record.applied, id, entry);
        self.check(result);
        if let Some(answer) = &applied.response {
            let result = checkers::applied_answers_agree(&mut self.record, id, entry.index, answer);
            self.check(result);
        }
        if let Some(replica) = self.hosts[node].replica.as_ref() {
            let result = checkers::tenant_caps(id, replica.store());
            self.check(result);
        }
        if self.kv.is_some() {
            self.kv_applied(node, applied);
        }
        if self.services.is_some() {
            self.services_applied(node, applied);
        }
    }

    fn send(&mut self, mut envelope: Envelope) {
        let from = envelope.from.get() as usize - 1;
        let to = envelope.to.get() as usize - 1;
        if let Message::InstallSnapshot(chunk) = &mut envelope.message {
            self.note_chunk(from, to, chunk);
        }
        self.note_vote(from, &envelope);
        if self.wire.is_some() {
            return self.send_datagrams(envelope);
        }
        match self
            .network
            .send(&mut self.streams.network, self.now_us, from, to)
        {
            Fate::Drop(reason) => self.trace_drop(&envelope, self.now_us, reason),
            Fate::Deliver {
                at_us,
                duplicate_at_us,
            } => {
                let sent_us = self.now_us;
                if let Some(duplicate_at_us) = duplicate_at_us {
                    let copy = EventKind::Deliver {
                        to,
                        envelope: envelope.clone(),
                        sent_us,
                    };
                    self.schedule(duplicate_at_us, copy);
                }
                let deliver = EventKind::Deliver {
                    to,
                    envelope,
                    sent_us,
                };
                self.schedule(at_us, deliver);
            }
        }
    }

    /// Records candidacies (with the configuration the candidate campaigns in) and granted
    /// votes as they leave, and checks that no two candidates of a term hold majorities.
    fn note_vote(&mut self, from: usize, envelope: &Envelope) {
        match &envelope.message {
            Message::RequestVote(request) => {
                let Some(node) = self.hosts[from].node() else {
                    return;
                };
                let voters = node.membership().voters.clone();
                let key = (request.term, envelope.from);
                let own = voters.contains(&envelope.from);
                self.record.candidacies.entry(key).or_insert(voters);
                if own {
                    self.record
                        .votes
                        .entry(key)
                        .or_default()
                        .insert(envelope.from);
                }
            }
            Message::RequestVoteResponse(response) if response.granted => {
                let key = (response.term, envelope.to);
                self.record
                    .votes
                    .entry(key)
                    .or_default()
                    .insert(envelope.from);
                let result = checkers::no_disjoint_majorities(&self.record, response.term);
                self.check(result);
            }
            _ => {}
        }
    }

    /// Coverage of snapshot transfers (a chunk resent, a transfer a new leader went on with),
    /// and the chunk-damage fault: one bit of the chunk's data flipped on the way.
    fn note_chunk(&mut self, from: usize, to: usize, chunk: &mut InstallSnapshot) {
        let end = chunk.offset + chunk.data.len() as u64;
        let key = (to, chunk.index, chunk.snapshot_term);
        if let Some(&(sender, sent_end)) = self.snapshot_chunks.get(&key)
            && chunk.offset > 0
        {
            if sender != from {
                self.coverage
                    .reach(coverage::SNAPSHOT_RESUMED_BY_NEW_LEADER, self.now_us);
            } else if chunk.offset < sent_end {
                self.coverage.reach(coverage::SNAPSHOT_RESENT, self.now_us);
            }
        }
        self.snapshot_chunks.insert(key, (from, end));
        let probability = self.params.chunk_corruption_probability;
        if probability > 0.0
            && !chunk.data.is_empty()
            && self.streams.network.random_bool(probability)
        {
            let position = self.streams.network.random_range(0..chunk.data.len());
            chunk.data[position] ^= 1 << self.streams.network.random_range(0..8u32);
        }
    }
}
