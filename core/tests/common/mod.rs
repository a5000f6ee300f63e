//! A small in-memory cluster for core's tests: instant or manual persistence, a message queue
//! the test controls, link cuts, and a readable trace of what happened.

#![allow(dead_code)] // Each test file uses a different part of the harness.

use rafting_core::raft::{
    Config, DurableState, Entry, EntryPayload, Envelope, Input, MembershipChange, Message, Node,
    Output, PersistBatch, ProposalId, ProposalOutcome, ReadId, ReadOutcome, RoleName,
};
use rafting_core::{LogIndex, Millis, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

pub fn ids(count: u64) -> Vec<NodeId> {
    (1..=count).map(NodeId).collect()
}

pub fn config(id: NodeId, voters: &[NodeId]) -> Config {
    Config::new(id, voters.iter().copied(), 42)
}

/// What storage holds for one node, maintained from its persist batches.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub state: DurableState,
}

impl Disk {
    pub fn write(&mut self, batch: &PersistBatch) {
        if let Some(hard_state) = batch.hard_state {
            self.state.hard_state = hard_state;
        }
        if let Some(first) = batch.entries.first() {
            self.state.entries.retain(|entry| entry.index < first.index);
            self.state.entries.extend(batch.entries.iter().cloned());
        }
    }
}

pub struct Cluster {
    pub ids: Vec<NodeId>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub configs: BTreeMap<NodeId, Config>,
    pub now: Millis,
    /// Messages sent and not yet delivered, oldest first.
    pub queue: VecDeque<Envelope>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Nodes whose persist batches wait for an explicit `persist(id)`.
    pub manual_persist: BTreeSet<NodeId>,
    pub unpersisted: BTreeMap<NodeId, VecDeque<PersistBatch>>,
    pub disks: BTreeMap<NodeId, Disk>,
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub proposals: Vec<(NodeId, ProposalOutcome)>,
    pub reads: Vec<(NodeId, ReadOutcome)>,
    /// Human-readable record of deliveries and state changes, for snapshot tests.
    pub trace: String,
    pub tracing: bool,
    next_id: u64,
}

impl Cluster {
    pub fn new(count: u64) -> Cluster {
        Cluster::with_config(count, |_| {})
    }

    pub fn with_config(count: u64, adjust: impl Fn(&mut Config)) -> Cluster {
        let ids = ids(count);
        let mut configs = BTreeMap::new();
        for &id in &ids {
            let mut config = config(id, &ids);
            adjust(&mut config);
            configs.insert(id, config);
        }
        let nodes = configs
            .iter()
            .map(|(&id, c)| (id, Node::new(c.clone()).unwrap()))
            .collect();
        Cluster {
            nodes,
            configs,
            now: Millis::ZERO,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            manual_persist: BTreeSet::new(),
            unpersisted: BTreeMap::new(),
            disks: ids.iter().map(|&id| (id, Disk::default())).collect(),
            applied: ids.iter().map(|&id| (id, Vec::new())).collect(),
            proposals: Vec::new(),
            reads: Vec::new(),
            trace: String::new(),
            tracing: false,
            next_id: 1,
            ids,
        }
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    pub fn step(&mut self, id: NodeId, input: Input) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let before = (node.role(), node.term());
        let commit_before = node.commit_index();
        let output = node.step(self.now, input);
        let after = (node.role(), node.term());
        let commit_after = node.commit_index();
        if self.tracing && before != after {
            let _ = writeln!(
                self.trace,
                "  {id} becomes {} in {}",
                after.0.as_str(),
                after.1
            );
        }
        if self.tracing && commit_after != commit_before {
            let _ = writeln!(self.trace, "  {id} commits up to {commit_after}");
        }
        self.handle_output(id, output);
    }

    fn handle_output(&mut self, id: NodeId, output: Output) {
        if let Some(batch) = output.persist {
            self.unpersisted.entry(id).or_default().push_back(batch);
        }
        for envelope in output.messages {
            if self.cut.contains(&(envelope.from, envelope.to)) {
                continue;
            }
            self.queue.push_back(envelope);
        }
        for entry in &output.committed {
            if self.tracing {
                let _ = writeln!(self.trace, "  {id} applies {}", describe_entry(entry));
            }
        }
        self.applied.get_mut(&id).unwrap().extend(output.committed);
        self.proposals
            .extend(output.proposals.into_iter().map(|p| (id, p)));
        self.reads.extend(output.reads.into_iter().map(|r| (id, r)));
        if !self.manual_persist.contains(&id) {
            self.persist(id);
        }
    }

    /// Makes every outstanding batch of `id` durable and reports it.
    pub fn persist(&mut self, id: NodeId) {
        let batches: Vec<PersistBatch> = self
            .unpersisted
            .get_mut(&id)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default();
        let Some(last) = batches.last().map(|batch| batch.id) else {
            return;
        };
        for batch in &batches {
            self.disks.get_mut(&id).unwrap().write(batch);
        }
        self.step(id, Input::Persisted(last));
    }

    /// Delivers one message (the oldest), if any.
    pub fn deliver_one(&mut self) -> bool {
        let Some(envelope) = self.queue.pop_front() else {
            return false;
        };
        if !self.nodes.contains_key(&envelope.to) {
            return true; // To a member the harness does not run: lost.
        }
        if self.tracing {
            let _ = writeln!(
                self.trace,
                "{} -> {}: {}",
                envelope.from,
                envelope.to,
                describe(&envelope.message)
            );
        }
        self.step(envelope.to, Input::Message(envelope));
        true
    }

    /// Delivers messages until the network is quiet (bounded, so a livelock fails the test).
    pub fn deliver_all(&mut self) {
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Advances time in 10 ms steps, ticking every node and delivering everything each step.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now.plus(ms);
        while self.now < end {
            self.now = self.now.plus(10).min(end);
            for id in self.ids.clone() {
                self.step(id, Input::Tick);
            }
            self.deliver_all();
        }
    }

    /// Makes `id` campaign now and delivers until quiet.
    pub fn campaign(&mut self, id: u64) {
        self.step(NodeId(id), Input::Campaign);
        self.deliver_all();
    }

    /// Elects node `id` as leader from a quiet cluster and asserts it won.
    pub fn elect(&mut self, id: u64) {
        self.campaign(id);
        assert!(
            self.node(id).is_leader(),
            "n{id} should have won: {:?}",
            self.node(id).status()
        );
    }

    pub fn propose(&mut self, at: u64, data: &str) -> ProposalId {
        let id = ProposalId(self.next_id);
        self.next_id += 1;
        self.step(
            NodeId(at),
            Input::Propose {
                id,
                data: data.as_bytes().to_vec(),
            },
        );
        id
    }

    pub fn read(&mut self, at: u64) -> ReadId {
        let id = ReadId(self.next_id);
        self.next_id += 1;
        self.step(NodeId(at), Input::Read { id });
        id
    }

    pub fn read_outcome(&self, id: ReadId) -> Option<&ReadOutcome> {
        self.reads.iter().map(|(_, r)| r).find(|r| match r {
            ReadOutcome::Ready { id: x, .. } | ReadOutcome::Failed { id: x, .. } => *x == id,
        })
    }

    pub fn proposal_outcomes(&self, id: ProposalId) -> Vec<&ProposalOutcome> {
        self.proposals
            .iter()
            .map(|(_, p)| p)
            .filter(|p| match p {
                ProposalOutcome::Accepted { id: x, .. }
                | ProposalOutcome::Committed { id: x, .. }
                | ProposalOutcome::Rejected { id: x, .. }
                | ProposalOutcome::Unknown { id: x, .. } => *x == id,
            })
            .collect()
    }

    /// Cuts both directions between `a` and every node in `others`.
    pub fn isolate(&mut self, a: u64) {
        for &other in &self.ids {
            if other != NodeId(a) {
                self.cut.insert((NodeId(a), other));
                self.cut.insert((other, NodeId(a)));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes `id` (losing what was not persisted) and restarts it from its disk.
    pub fn crash_and_restart(&mut self, id: u64) {
        let id = NodeId(id);
        self.unpersisted.remove(&id);
        self.queue
            .retain(|envelope| envelope.to != id && envelope.from != id);
        let durable = self.disks[&id].state.clone();
        let node = Node::restart(self.configs[&id].clone(), durable).unwrap();
        self.nodes.insert(id, node);
        self.applied.insert(id, Vec::new());
    }

    /// Crashes `id` and restarts it on an empty disk, as a node whose data directory was
    /// wiped: it catches up before it may vote, as the runtime starts such a node.
    pub fn wipe_and_restart(&mut self, id: u64) {
        let id = NodeId(id);
        self.unpersisted.remove(&id);
        self.queue
            .retain(|envelope| envelope.to != id && envelope.from != id);
        self.disks.insert(id, Disk::default());
        let mut config = self.configs[&id].clone();
        config.catch_up_before_voting = true;
        self.nodes.insert(id, Node::new(config).unwrap());
        self.applied.insert(id, Vec::new());
    }

    /// Adds node `id` to the harness as a node that joins a running cluster: an empty disk
    /// and a bootstrap in which it is only a learner (it learns the real configuration from
    /// the leader).
    pub fn add_joining_node(&mut self, id: u64, adjust: impl Fn(&mut Config)) {
        let id = NodeId(id);
        let mut config = Config::new(id, [], 42);
        config.learners.insert(id);
        adjust(&mut config);
        self.nodes.insert(id, Node::new(config.clone()).unwrap());
        self.configs.insert(id, config);
        self.disks.insert(id, Disk::default());
        self.applied.insert(id, Vec::new());
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// Proposes a membership change at `at`.
    pub fn change(&mut self, at: u64, change: MembershipChange) -> ProposalId {
        let id = ProposalId(self.next_id);
        self.next_id += 1;
        self.step(NodeId(at), Input::ChangeMembership { id, change });
        id
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_leader())
            .map(|n| n.id())
            .collect()
    }

    /// Commands applied on `id`, as strings, in order.
    pub fn applied_commands(&self, id: u64) -> Vec<String> {
        self.applied[&NodeId(id)]
            .iter()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Command(data) => Some(String::from_utf8_lossy(data).into_owned()),
                EntryPayload::Noop | EntryPayload::Configuration(_) => None,
            })
            .collect()
    }

    /// The log of `id` as (term, index) pairs.
    pub fn log_terms(&self, id: u64) -> Vec<u64> {
        let node = self.node(id);
        (1..=node.last_index().get())
            .map(|i| node.log().term_at(LogIndex(i)).unwrap().get())
            .collect()
    }
}

pub fn role(cluster: &Cluster, id: u64) -> RoleName {
    cluster.node(id).role()
}

pub fn term(cluster: &Cluster, id: u64) -> Term {
    cluster.node(id).term()
}

pub fn describe_entry(entry: &Entry) -> String {
    match &entry.payload {
        EntryPayload::Noop => format!("{}@{} noop", entry.index, entry.term),
        EntryPayload::Configuration(membership) => format!(
            "{}@{} configuration voters {:?} learners {:?}",
            entry.index, entry.term, membership.voters, membership.learners
        ),
        EntryPayload::Command(data) => {
            format!(
                "{}@{} {:?}",
                entry.index,
                entry.term,
                String::from_utf8_lossy(data)
            )
        }
    }
}

/// One line per message, for readable traces.
pub fn describe(message: &Message) -> String {
    match message {
        Message::PreVote(m) => {
            format!(
                "PreVote term={} last={}@{}",
                m.term.get(),
                m.last_log_index.get(),
                m.last_log_term.get()
            )
        }
        Message::PreVoteResponse(m) => {
            format!(
                "PreVoteResponse term={} granted={}",
                m.term.get(),
                m.granted
            )
        }
        Message::RequestVote(m) => format!(
            "RequestVote term={} last={}@{}{}",
            m.term.get(),
            m.last_log_index.get(),
            m.last_log_term.get(),
            if m.transfer { " transfer" } else { "" }
        ),
        Message::RequestVoteResponse(m) => {
            format!(
                "RequestVoteResponse term={} granted={}",
                m.term.get(),
                m.granted
            )
        }
        Message::AppendEntries(m) => {
            let entries: Vec<String> = m.entries.iter().map(describe_entry).collect();
            format!(
                "AppendEntries term={} prev={}@{} commit={} entries=[{}]",
                m.term.get(),
                m.prev_log_index.get(),
                m.prev_log_term.get(),
                m.leader_commit.get(),
                entries.join(", ")
            )
        }
        Message::AppendEntriesResponse(m) => match m.outcome {
            rafting_core::raft::AppendOutcome::Accepted { match_index } => {
                format!(
                    "AppendEntriesResponse term={} accepted match={}",
                    m.term.get(),
                    match_index.get()
                )
            }
            rafting_core::raft::AppendOutcome::Rejected {
                rejected_prev_index,
                hint_index,
                hint_term,
            } => format!(
                "AppendEntriesResponse term={} rejected prev={} hint={}@{}",
                m.term.get(),
                rejected_prev_index.get(),
                hint_index.get(),
                hint_term.map_or("?".to_string(), |t| t.get().to_string())
            ),
        },
        Message::Heartbeat(m) => {
            format!(
                "Heartbeat term={} commit={} round={}",
                m.term.get(),
                m.commit.get(),
                m.round
            )
        }
        Message::HeartbeatResponse(m) => format!(
            "HeartbeatResponse term={} round={} last={}",
            m.term.get(),
            m.round,
            m.last_log_index.get()
        ),
        Message::TimeoutNow(m) => format!("TimeoutNow term={}", m.term.get()),
        Message::InstallSnapshot(m) => format!(
            "InstallSnapshot term={} snapshot={}@{} bytes={}..{} of {}",
            m.term.get(),
            m.index.get(),
            m.snapshot_term.get(),
            m.offset,
            m.offset + m.data.len() as u64,
            m.total_bytes
        ),
        Message::InstallSnapshotResponse(m) => format!(
            "InstallSnapshotResponse term={} snapshot={}@{} next={}{}",
            m.term.get(),
            m.index.get(),
            m.snapshot_term.get(),
            m.next_offset,
            if m.installed { " installed" } else { "" }
        ),
    }
}

/// Builds an entry whose payload names its position, e.g. `"t4i5"`.
pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Command(format!("t{term}i{index}").into_bytes().into()),
    }
}

/// A log from a list of terms: `[1, 1, 4]` is `t1i1, t1i2, t4i3`.
pub fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(t, i as u64 + 1))
        .collect()
}

impl Cluster {
    /// Restarts `id` with the given log (terms per index) in `term`, nothing committed.
    pub fn set_log(&mut self, id: u64, terms: &[u64], term: u64) {
        let id = NodeId(id);
        let mut durable = DurableState::default();
        durable.hard_state.term = Term(term);
        durable.entries = log_of(terms);
        self.disks.get_mut(&id).unwrap().state = durable.clone();
        let node = Node::restart(self.configs[&id].clone(), durable).unwrap();
        self.nodes.insert(id, node);
    }

    /// Figure 8 (c) of the Raft paper, before S1 campaigns for term 4: S1 and S2 hold the
    /// term-2 entry at index 2, S3 and S4 only index 1, S5 a term-3 entry at index 2; S5 is
    /// cut off. One entry per append, so replication can be watched step by step.
    pub fn figure_8() -> Cluster {
        let mut cluster = Cluster::with_config(5, |c| c.entries_per_append_max = 1);
        cluster.set_log(1, &[1, 2], 3);
        cluster.set_log(2, &[1, 2], 3);
        cluster.set_log(3, &[1], 3);
        cluster.set_log(4, &[1], 3);
        cluster.set_log(5, &[1, 3], 3);
        cluster.isolate(5);
        cluster
    }
}

/// A lone node fed messages by hand, for rule-by-rule tests.
pub struct Solo {
    pub node: Node,
    pub now: Millis,
}

impl Solo {
    pub fn new(id: u64, cluster_size: u64) -> Solo {
        Solo::with(id, cluster_size, &[], 0)
    }

    /// Node `id` of a cluster of `cluster_size`, with a log of the given terms, in `term`.
    pub fn with(id: u64, cluster_size: u64, terms: &[u64], term: u64) -> Solo {
        let ids = ids(cluster_size);
        let mut durable = DurableState::default();
        durable.hard_state.term = Term(term);
        durable.entries = log_of(terms);
        let node = Node::restart(config(NodeId(id), &ids), durable).unwrap();
        Solo {
            node,
            now: Millis::ZERO,
        }
    }

    /// Feeds one input, persisting any batch at once, and returns every message that left.
    pub fn step(&mut self, input: Input) -> Vec<Envelope> {
        let mut output = self.node.step(self.now, input);
        let mut messages = std::mem::take(&mut output.messages);
        if let Some(batch) = output.persist {
            let after = self.node.step(self.now, Input::Persisted(batch.id));
            messages.extend(after.messages);
        }
        messages
    }

    /// Feeds one input and returns the raw output (no automatic persistence).
    pub fn step_raw(&mut self, input: Input) -> Output {
        self.node.step(self.now, input)
    }

    pub fn receive(&mut self, from: u64, message: Message) -> Vec<Envelope> {
        let to = self.node.id();
        self.step(Input::Message(Envelope {
            from: NodeId(from),
            to,
            message,
        }))
    }
}
