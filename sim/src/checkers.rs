//! Raft's safety properties as named check functions, run by the simulator after every step.
//!
//! The checks are incremental: the simulator reports what one step changed (a node's role and
//! term, the entries it wrote, the entries it applied, its commit index) and each check
//! compares that change against a cluster-wide record. That keeps a check after every step
//! cheap enough for hundreds of thousands of steps per second.
//!
//! The names in [`check`] are what a failure reports and what `rafting sim run` prints.

use rafting_core::raft::{
    AppendOutcome, DurableState, Entry, EntryPayload, Envelope, Message, RaftLog,
};
use rafting_core::store::{
    Cap, Event, EventKind, KeyValue, ListQuery, Response, Revision, Store, StoreError, TenantId,
    WatchQuery,
};
use rafting_core::{LogIndex, NodeId, Term};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, btree_map};

/// The names under which checks report violations.
pub mod check {
    /// At most one leader per term (Raft's Election Safety).
    pub const ELECTION_SAFETY: &str = "election_safety";
    /// No two candidates of one term each gather a majority of the configuration they
    /// campaigned in (across membership changes, the majorities of two configurations must
    /// overlap).
    pub const NO_DISJOINT_MAJORITIES: &str = "no_disjoint_majorities";
    /// Two entries with the same index and term have the same payload and the same
    /// predecessor term, hence identical logs up to them (Log Matching).
    pub const LOG_MATCHING: &str = "log_matching";
    /// A leader's log holds every entry committed before it was elected (Leader Completeness),
    /// and no node ever replaces a committed entry.
    pub const LEADER_COMPLETENESS: &str = "leader_completeness";
    /// The entry committed and applied at index i is the same on every node, and each node
    /// applies indexes in order (State Machine Safety).
    pub const STATE_MACHINE_SAFETY: &str = "state_machine_safety";
    /// A node's commit index never decreases while it runs (a restart may recover lower).
    pub const COMMIT_MONOTONIC: &str = "commit_monotonic";
    /// A proposal reported committed stays at its index with its payload, forever.
    pub const ACKNOWLEDGED_WRITE_KEPT: &str = "acknowledged_write_kept";
    /// After faults stop, a leader is elected and every pending request finishes in time.
    pub const LIVENESS: &str = "liveness";
    /// A node leads, asks for votes, grants a vote, or acknowledges entries only in a term
    /// (and with a vote, and entries) that its own disk already holds: what a node says to
    /// others must survive its crash.
    pub const ACTS_ON_DURABLE_STATE: &str = "acts_on_durable_state";
    /// The seed exceeded its event or queue budget: nodes chatter without end (a livelock or
    /// a message storm). Reported, with its replay command, instead of running forever.
    pub const HANG: &str = "hang";
    /// A node's store agrees with itself: its listings (whole, paged, per directory), its gets,
    /// its key count and its watch history (replayed) all describe the same key space.
    pub const STORE_CONSISTENT: &str = "store_consistent";
    /// After faults stop, every node applies at least what the cluster had committed when they
    /// stopped: a node the leader never catches up (its disk lost entries it had acknowledged,
    /// it never learns the newer term) is an availability bug no safety check sees.
    pub const CAUGHT_UP: &str = "caught_up";
    /// A node keeps the limits its configuration sets: an append carries at most
    /// `entries_per_append_max` entries and, beyond its first entry, at most
    /// `bytes_per_append_max` bytes; a leader that accepted a proposal holds at most
    /// `uncommitted_entries_max` entries and `uncommitted_bytes_max` bytes beyond its commit.
    /// Sizes are counted here, not with core's own `size_bytes`.
    pub const LIMITS_KEPT: &str = "limits_kept";
    /// Every snapshot of a given index holds the same state: two nodes that took one there
    /// took identical images, and a follower that installed one from a leader ends with
    /// exactly the store its sender had at that index (its store, imaged again, equals the
    /// image the sender took).
    pub const SNAPSHOT_STATE_MATCHES: &str = "snapshot_state_matches";
    /// No tenant holds more than a stored cap allows (keys, bytes, sessions, services,
    /// members), in any node's replicated state.
    pub const TENANT_CAPS: &str = "tenant_caps";
    /// Every node answers an applied entry the same way (what was refused, and why, is
    /// decided by the state machine, so all nodes agree on it).
    pub const APPLIED_ANSWERS_AGREE: &str = "applied_answers_agree";
    /// A well-behaved tenant's requests complete within its bound while another floods.
    pub const TENANT_LATENCY: &str = "tenant_latency";
    /// A node outside the configuration (its removal committed, or a spare never added)
    /// does not disrupt the members: it never leads, and never moves to a term no member has
    /// reached (a campaign of its own that would depose a healthy leader; PreVote and
    /// CheckQuorum prevent it).
    pub const REMOVED_NODE_QUIET: &str = "removed_node_quiet";
}

/// Core's documented per-entry overhead in byte limits (term, index, tag).
const ENTRY_OVERHEAD_BYTES: usize = 24;

/// What an entry counts for in byte limits: core's documented per-entry overhead plus its
/// payload, computed here independently of `Entry::size_bytes`.
pub fn entry_bytes(entry: &Entry) -> usize {
    ENTRY_OVERHEAD_BYTES
        + match &entry.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command(data) => data.len(),
            // Eight bytes per member and the addresses' text.
            EntryPayload::Configuration(membership) => {
                let members = membership.voters.len() + membership.learners.len();
                8 * members
                    + membership
                        .addresses
                        .values()
                        .map(String::len)
                        .sum::<usize>()
            }
        }
}

/// An append leaving `node` stays within the node's per-append limits (the first entry always
/// fits, however large).
pub fn append_within_limits(
    node: NodeId,
    config: &rafting_core::raft::Config,
    envelope: &Envelope,
) -> Result<(), Violation> {
    let Message::AppendEntries(append) = &envelope.message else {
        return Ok(());
    };
    let count = append.entries.len();
    let bytes: usize = append.entries.iter().map(entry_bytes).sum();
    let detail = if count > config.entries_per_append_max {
        format!(
            "an append carries {count} entries, above entries_per_append_max {}",
            config.entries_per_append_max
        )
    } else if count > 1 && bytes > config.bytes_per_append_max {
        format!(
            "an append carries {count} entries of {bytes} bytes, above bytes_per_append_max {}",
            config.bytes_per_append_max
        )
    } else {
        return Ok(());
    };
    Err(Violation {
        check: check::LIMITS_KEPT,
        at_us: 0,
        nodes: vec![node.get(), envelope.to.get()],
        index: append.entries.first().map(|entry| entry.index.get()),
        term: Some(append.term.get()),
        detail,
    })
}

/// A leader that has just accepted a proposal holds no more uncommitted entries or bytes than
/// its limits allow: each proposal is admitted only while the backlog is below them.
pub fn uncommitted_within_limits(
    node: NodeId,
    config: &rafting_core::raft::Config,
    log: &RaftLog,
) -> Result<(), Violation> {
    let commit = log.commit();
    let entries = log.last_index().get().saturating_sub(commit.get());
    let mut bytes = 0usize;
    let mut index = commit.next();
    while index <= log.last_index() {
        bytes += log.entry(index).map_or(0, entry_bytes);
        index = index.next();
    }
    let detail = if entries > config.uncommitted_entries_max as u64 {
        format!(
            "{entries} entries beyond commit {}, above uncommitted_entries_max {}",
            commit.get(),
            config.uncommitted_entries_max
        )
    } else if bytes > config.uncommitted_bytes_max + ENTRY_OVERHEAD_BYTES {
        // A proposal is admitted by its payload's size; the entry it becomes also carries the
        // per-entry overhead, so the last one admitted may pass the cap by that much.
        format!(
            "{bytes} bytes beyond commit {}, above uncommitted_bytes_max {}",
            commit.get(),
            config.uncommitted_bytes_max
        )
    } else {
        return Ok(());
    };
    Err(Violation {
        check: check::LIMITS_KEPT,
        at_us: 0,
        nodes: vec![node.get()],
        index: Some(log.last_index().get()),
        term: None,
        detail,
    })
}

/// One broken property, with the nodes and indexes involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub check: &'static str,
    /// Simulated time of the step that broke it, in microseconds.
    pub at_us: u64,
    pub nodes: Vec<u64>,
    pub index: Option<u64>,
    pub term: Option<u64>,
    pub detail: String,
}

impl Violation {
    fn new(check: &'static str, nodes: &[NodeId], detail: String) -> Violation {
        Violation {
            check,
            at_us: 0,
            nodes: nodes.iter().map(|node| node.get()).collect(),
            index: None,
            term: None,
            detail,
        }
    }

    fn at(mut self, index: LogIndex, term: Term) -> Violation {
        self.index = Some(index.get());
        self.term = Some(term.get());
        self
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} at t={}us", self.check, self.at_us)?;
        if !self.nodes.is_empty() {
            write!(formatter, " nodes {:?}", self.nodes)?;
        }
        if let Some(index) = self.index {
            write!(formatter, " index {index}")?;
        }
        if let Some(term) = self.term {
            write!(formatter, " term {term}")?;
        }
        write!(formatter, ": {}", self.detail)
    }
}

/// A stable 64-bit fingerprint of an entry's payload ([`bytes_digest`]), so records stay
/// small.
pub fn digest(payload: &EntryPayload) -> u64 {
    match payload {
        EntryPayload::Noop => 0,
        EntryPayload::Command(data) => bytes_digest(data),
        EntryPayload::Configuration(membership) => {
            bytes_digest(format!("{membership:?}").as_bytes())
        }
    }
}

/// A stable 64-bit fingerprint of bytes, never zero. FNV-1a's xor and multiply, but eight
/// bytes at a time, each word's high bits folded back down: it runs over every entry each
/// node writes, commits and applies, and over every snapshot image, and one byte a step was
/// a twentieth of the simulator's time. Every step is a bijection of the running hash, so two
/// inputs of one length that differ in a single word never collide.
pub fn bytes_digest(data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ data.len() as u64;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of eight bytes"));
        hash = (hash ^ word).wrapping_mul(PRIME);
        hash ^= hash >> 32;
    }
    for byte in words.remainder() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
    }
    hash | 1
}

/// Snapshot State: `node` took (`installed: false`) or installed a snapshot at `index` whose
/// state has fingerprint `digest`. Images taken at one index must agree; an installed state
/// must equal an image some node took there.
pub fn snapshot_state_matches(
    snapshots: &mut BTreeMap<LogIndex, u64>,
    node: NodeId,
    index: LogIndex,
    digest: u64,
    installed: bool,
) -> Result<(), Violation> {
    let detail = match (snapshots.get(&index), installed) {
        (Some(&taken), _) if taken == digest => return Ok(()),
        (Some(_), false) => format!("took a snapshot at {index} unlike another node's there"),
        (Some(_), true) => format!(
            "installed a snapshot at {index} whose state differs from the one its sender took"
        ),
        (None, false) => {
            snapshots.insert(index, digest);
            return Ok(());
        }
        (None, true) => format!("installed a snapshot at {index} that no node took"),
    };
    let mut violation = Violation::new(check::SNAPSHOT_STATE_MATCHES, &[node], detail);
    violation.index = Some(index.get());
    Err(violation)
}

/// What one entry looked like the first time any node wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub digest: u64,
    pub previous_term: Term,
    pub first_writer: NodeId,
}

/// A log position's agreed content: its term and payload digest.
pub type Slot = (Term, u64);

/// Cluster-wide records the checks compare each step against.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// The leader of each term seen so far, and the incarnation (crash count) it led in.
    pub leaders: BTreeMap<Term, (NodeId, u64)>,
    /// Every (index, term) any node ever wrote, with its payload and predecessor.
    pub written: BTreeMap<(LogIndex, Term), Fingerprint>,
    /// Entries known committed, by index - 1.
    pub committed: Vec<Slot>,
    /// The term each of them was committed in, by index - 1: the term of the first node that
    /// knew it committed (its leader: followers learn a commit from the leader, later, in
    /// the same term or a newer one).
    pub committed_in: Vec<Term>,
    /// Entries applied by some node, by index - 1.
    pub applied: Vec<Slot>,
    /// Proposals reported committed to a client, by index - 1: the payload digest (0, which
    /// no digest is: none).
    pub acknowledged: Vec<u64>,
    /// The fingerprint of the store image any node took at an index.
    pub snapshots: BTreeMap<LogIndex, u64>,
    /// The store's answer to each applied entry, by index - 1: the first node that applied it
    /// and the answer's digest (0, which no digest is: none yet).
    pub answers: Vec<(NodeId, u64)>,
    /// Room to encode an answer in (reused: an answer is encoded for every entry every node
    /// applies).
    pub answer_bytes: Vec<u8>,
    /// Each candidacy: (term, candidate) → the voters of the configuration it campaigned in.
    pub candidacies: BTreeMap<(Term, NodeId), BTreeSet<NodeId>>,
    /// Votes granted: (term, candidate) → the voters that granted (its own vote included).
    pub votes: BTreeMap<(Term, NodeId), BTreeSet<NodeId>>,
}

/// No two disjoint majorities in one term: of the candidates of `term`, those whose granted
/// votes make a majority of the configuration each campaigned in must share a voter. A voter
/// grants one vote per term, so two such candidates mean two majorities that do not
/// intersect: two configurations too far apart (two changes at once, or one proposed over a
/// deposed leader's), or a voter that forgot its vote.
pub fn no_disjoint_majorities(record: &Record, term: Term) -> Result<(), Violation> {
    let majorities: Vec<(NodeId, &BTreeSet<NodeId>)> = record
        .candidacies
        .range((term, NodeId(0))..=(term, NodeId(u64::MAX)))
        .filter_map(|(&(_, candidate), voters)| {
            let granted = record.votes.get(&(term, candidate))?;
            let count = granted.intersection(voters).count();
            (count > voters.len() / 2).then_some((candidate, granted))
        })
        .collect();
    for (position, &(first, first_granted)) in majorities.iter().enumerate() {
        for &(second, second_granted) in &majorities[position + 1..] {
            if first_granted.is_disjoint(second_granted) {
                return Err(Violation::new(
                    check::NO_DISJOINT_MAJORITIES,
                    &[first, second],
                    format!(
                        "term {term}: {first} gathered {first_granted:?} and {second} \
                         {second_granted:?}, each a majority of its configuration"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A node outside the configuration stays quiet: checked each time its role or term changes
/// (`previous_term` to `term`), against the highest term any member has held so far. Moving
/// to a term some member reached is hearing the cluster; moving beyond every member's is a
/// campaign of its own, which a member that hears it would follow into a needless election.
/// A term it already held when it left is not counted (it gained it as a member).
pub fn removed_node_quiet(
    node: NodeId,
    leads: bool,
    previous_term: Term,
    term: Term,
    member_term_max: Term,
) -> Result<(), Violation> {
    if leads {
        return Err(Violation::new(
            check::REMOVED_NODE_QUIET,
            &[node],
            format!("{node}, outside the configuration, leads term {term}"),
        ));
    }
    if term > previous_term && term > member_term_max {
        return Err(Violation::new(
            check::REMOVED_NODE_QUIET,
            &[node],
            format!(
                "{node}, outside the configuration, moved from term {previous_term} to \
                 {term}, beyond every member's (at most {member_term_max})"
            ),
        ));
    }
    Ok(())
}

/// Where `index` is in the records kept by index - 1 (log indexes start at 1).
fn position_of(index: LogIndex) -> usize {
    let position = index.get().checked_sub(1).expect("log indexes start at 1");
    usize::try_from(position).expect("an index fits in memory")
}

fn slot_at(slots: &[Slot], index: LogIndex) -> Option<Slot> {
    let position = usize::try_from(index.get()).ok()?.checked_sub(1)?;
    slots.get(position).copied()
}

/// Election Safety: `node`, in its `incarnation`-th life, becomes leader of `term`; nobody
/// else may have led it, and neither may the same node in an earlier life (a node that lost
/// its term in a crash and won it again would lead one term twice).
pub fn election_safety(
    leaders: &mut BTreeMap<Term, (NodeId, u64)>,
    node: NodeId,
    incarnation: u64,
    term: Term,
) -> Result<(), Violation> {
    match leaders.get(&term) {
        Some(&(other, _)) if other != node => Err(Violation::new(
            check::ELECTION_SAFETY,
            &[other, node],
            format!("two leaders in term {term}: {other} and {node}"),
        )),
        Some(&(_, earlier)) if earlier != incarnation => Err(Violation::new(
            check::ELECTION_SAFETY,
            &[node],
            format!("{node} led term {term} twice: before and after a restart"),
        )),
        Some(_) => Ok(()),
        None => {
            leaders.insert(term, (node, incarnation));
            Ok(())
        }
    }
}

/// What `node` tells others rests on what its disk holds. Checked for every message it sends
/// and when it leads, against the durable state at that moment:
/// - a leader leads, and a candidate asks for votes, only in a durable term with a durable
///   vote for itself;
/// - a granted vote is durable (the term, and the vote for that candidate);
/// - an accepted append is durable (the term, and the entry at the acknowledged index).
///
/// A message of an older term than the disk's is stale and harmless (a later term superseded
/// it), so only the message's own term is compared for equality.
pub fn acts_on_durable_state(
    node: NodeId,
    durable: &DurableState,
    envelope: &Envelope,
) -> Result<(), Violation> {
    let hard_state = &durable.hard_state;
    let term = envelope.message.term();
    let fail = |what: String| {
        let detail = format!(
            "{node} {what} (durable: term {}, vote {:?})",
            hard_state.term, hard_state.voted_for
        );
        let mut violation = Violation::new(check::ACTS_ON_DURABLE_STATE, &[node], detail);
        violation.term = Some(term.get());
        Err(violation)
    };
    if hard_state.term > term {
        return Ok(());
    }
    let own_vote_durable = hard_state.term == term && hard_state.voted_for == Some(node);
    match &envelope.message {
        Message::RequestVote(_) if !own_vote_durable => fail(format!(
            "asks for votes in term {term} before its vote for itself is durable"
        )),
        Message::AppendEntries(_) | Message::Heartbeat(_) if !own_vote_durable => fail(format!(
            "leads term {term} before that term and its own vote are durable"
        )),
        Message::RequestVoteResponse(response)
            if response.granted
                && (hard_state.term != term || hard_state.voted_for != Some(envelope.to)) =>
        {
            fail(format!(
                "grants its vote in term {term} to {} before it is durable",
                envelope.to
            ))
        }
        Message::AppendEntriesResponse(response) => match response.outcome {
            AppendOutcome::Accepted { match_index } if hard_state.term < term => fail(format!(
                "acknowledges entries up to {match_index} in term {term}, a term its disk lacks"
            )),
            AppendOutcome::Accepted { match_index } if durable.last_index() < match_index => fail(
                format!("acknowledges entries up to {match_index} that are not durable"),
            ),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Log Matching: `node` wrote `entry` after an entry of `previous_term`.
pub fn log_matching(
    written: &mut BTreeMap<(LogIndex, Term), Fingerprint>,
    node: NodeId,
    entry: &Entry,
    previous_term: Term,
) -> Result<(), Violation> {
    let mine = Fingerprint {
        digest: digest(&entry.payload),
        previous_term,
        first_writer: node,
    };
    // One search of the map for both the first writer (which records) and the others.
    let theirs = match written.entry((entry.index, entry.term)) {
        btree_map::Entry::Vacant(vacant) => {
            vacant.insert(mine);
            return Ok(());
        }
        btree_map::Entry::Occupied(occupied) => &*occupied.into_mut(),
    };
    if theirs.digest != mine.digest {
        let detail = format!("same index and term, different payloads ({})", entry.index);
        let nodes = [theirs.first_writer, node];
        return Err(Violation::new(check::LOG_MATCHING, &nodes, detail).at(entry.index, entry.term));
    }
    if theirs.previous_term != mine.previous_term {
        let detail = format!(
            "same entry, different predecessors: term {} on {} and {} on {node}",
            theirs.previous_term, theirs.first_writer, previous_term
        );
        let nodes = [theirs.first_writer, node];
        return Err(Violation::new(check::LOG_MATCHING, &nodes, detail).at(entry.index, entry.term));
    }
    Ok(())
}

/// Leader Completeness: a new leader of `leader_term` holds every entry committed in an
/// earlier term. An entry committed in its term or a later one need not be there: a
/// candidate paused while its votes arrive can win an old term after a newer leader has
/// committed (Raft's property is for "leaders of all higher-numbered terms").
pub fn leader_completeness(
    committed: &[Slot],
    committed_in: &[Term],
    node: NodeId,
    leader_term: Term,
    log: &RaftLog,
) -> Result<(), Violation> {
    // Entries before the log's base were compacted into a snapshot; the base itself keeps
    // its term.
    let skip = usize::try_from(log.base().get().saturating_sub(1)).unwrap_or(usize::MAX);
    for (position, &(term, _)) in committed.iter().enumerate().skip(skip) {
        let index = LogIndex(position as u64 + 1);
        if committed_in
            .get(position)
            .is_some_and(|&when| when >= leader_term)
        {
            continue;
        }
        if log.term_at(index) != Some(term) {
            let detail = format!(
                "leader lacks committed entry {index} of term {term} (has {:?})",
                log.term_at(index)
            );
            return Err(Violation::new(check::LEADER_COMPLETENESS, &[node], detail).at(index, term));
        }
    }
    Ok(())
}

/// No node replaces a committed entry it held: of the entries `before` the write (the node's
/// durable log), every committed one at `from` or beyond must still be in `log` after it. (A
/// node may replace an entry at a committed index that it held with another term: that entry
/// was never the committed one.)
pub fn committed_entries_kept(
    committed: &[Slot],
    node: NodeId,
    before: &[Entry],
    log: &RaftLog,
    from: LogIndex,
) -> Result<(), Violation> {
    let first = from.max(log.base());
    // `before` is in index order: skip to `first` rather than scan the whole log every write.
    let start = position_from(before, first);
    for held in &before[start..] {
        let Some((term, _)) = slot_at(committed, held.index) else {
            break;
        };
        if held.term == term && log.term_at(held.index) != Some(term) {
            let index = held.index;
            let detail = format!("node replaced committed entry {index} of term {term}");
            return Err(Violation::new(check::LEADER_COMPLETENESS, &[node], detail).at(index, term));
        }
    }
    Ok(())
}

/// The position of the first of `entries` (in index order) at `index` or after. A log's
/// entries have consecutive indexes, so the position is read off the first one's index (a
/// binary search over a long log at every write took 2 % of the simulator's time); the
/// neighbours vouch for it, and a search stands in for a log with a gap.
pub fn position_from(entries: &[Entry], index: LogIndex) -> usize {
    let start = entries.first().map_or(0, |first| {
        let offset = index.get().saturating_sub(first.index.get());
        usize::try_from(offset).map_or(entries.len(), |offset| offset.min(entries.len()))
    });
    let after_those_before = start == 0 || entries[start - 1].index < index;
    let at_or_after = entries.get(start).is_none_or(|entry| entry.index >= index);
    if after_those_before && at_or_after {
        start
    } else {
        entries.partition_point(|entry| entry.index < index)
    }
}

/// Records that `node`, in `term`, knows `entry` committed; it must agree with what others
/// committed.
pub fn record_committed(
    record: &mut Record,
    node: NodeId,
    term: Term,
    entry: &Entry,
) -> Result<(), Violation> {
    let slot = (entry.term, digest(&entry.payload));
    agree(&mut record.committed, node, entry.index, slot, "committed")?;
    if record.committed_in.len() < record.committed.len() {
        record.committed_in.push(term);
    }
    let position = position_of(entry.index);
    match record.acknowledged.get(position) {
        Some(&acknowledged) if acknowledged != 0 && acknowledged != slot.1 => {
            let detail = format!(
                "acknowledged write at {} replaced by another entry",
                entry.index
            );
            Err(
                Violation::new(check::ACKNOWLEDGED_WRITE_KEPT, &[node], detail)
                    .at(entry.index, entry.term),
            )
        }
        _ => Ok(()),
    }
}

/// State Machine Safety: `node` applies `entry`, which must match what others applied.
pub fn state_machine_safety(
    applied: &mut Vec<Slot>,
    node: NodeId,
    entry: &Entry,
) -> Result<(), Violation> {
    agree(
        applied,
        node,
        entry.index,
        (entry.term, digest(&entry.payload)),
        "applied",
    )
}

fn agree(
    slots: &mut Vec<Slot>,
    node: NodeId,
    index: LogIndex,
    slot: Slot,
    what: &str,
) -> Result<(), Violation> {
    match slot_at(slots, index) {
        Some(existing) if existing == slot => Ok(()),
        Some(existing) => {
            let detail = format!(
                "{what} entry {index} differs: term {} here, term {} elsewhere (payloads {})",
                slot.0,
                existing.0,
                if existing.1 == slot.1 {
                    "equal"
                } else {
                    "differ"
                }
            );
            Err(Violation::new(check::STATE_MACHINE_SAFETY, &[node], detail).at(index, slot.0))
        }
        None if index.get() == slots.len() as u64 + 1 => {
            slots.push(slot);
            Ok(())
        }
        None => {
            let detail = format!("{what} entry {index} before {}", slots.len() + 1);
            Err(Violation::new(check::STATE_MACHINE_SAFETY, &[node], detail).at(index, slot.0))
        }
    }
}

/// A node applies indexes in order, without gaps, from 1 after each start.
pub fn applied_in_order(
    node: NodeId,
    last_applied: LogIndex,
    entry: &Entry,
) -> Result<(), Violation> {
    if entry.index != last_applied.next() {
        let detail = format!("applied {} right after {last_applied}", entry.index);
        return Err(Violation::new(check::STATE_MACHINE_SAFETY, &[node], detail)
            .at(entry.index, entry.term));
    }
    Ok(())
}

/// A node's commit index never decreases while it runs.
pub fn commit_monotonic(
    node: NodeId,
    previous: LogIndex,
    current: LogIndex,
) -> Result<(), Violation> {
    if current < previous {
        let detail = format!("commit index went back from {previous} to {current}");
        let mut violation = Violation::new(check::COMMIT_MONOTONIC, &[node], detail);
        violation.index = Some(current.get());
        return Err(violation);
    }
    Ok(())
}

/// A proposal is reported committed at `index` with payload `payload_digest`: the entry
/// known committed there, if any, must be it. Records the acknowledgement.
pub fn acknowledged_write_kept(
    record: &mut Record,
    node: NodeId,
    index: LogIndex,
    payload_digest: u64,
) -> Result<(), Violation> {
    let position = position_of(index);
    if record.acknowledged.len() <= position {
        record.acknowledged.resize(position + 1, 0);
    }
    record.acknowledged[position] = payload_digest;
    match slot_at(&record.committed, index) {
        Some((term, digest)) if digest != payload_digest => {
            let detail =
                format!("proposal acknowledged at {index} but another entry committed there");
            Err(Violation::new(check::ACKNOWLEDGED_WRITE_KEPT, &[node], detail).at(index, term))
        }
        _ => Ok(()),
    }
}

/// The stored caps [`tenant_caps`] holds usage to.
const STORED_CAPS: [Cap; 5] = [
    Cap::Keys,
    Cap::Bytes,
    Cap::Sessions,
    Cap::Services,
    Cap::Members,
];

/// No tenant's usage in `node`'s store passes one of its stored caps. Run after every entry
/// a node applies. (Caps lowered below usage by an administrator would be a false alarm;
/// the simulator never lowers caps.)
pub fn tenant_caps(node: NodeId, store: &Store) -> Result<(), Violation> {
    for (tenant, caps, usage) in store.tenants_with_caps() {
        for cap in STORED_CAPS {
            if let Some(limit) = caps.of(cap)
                && usage.of(cap) > limit
            {
                let detail = format!(
                    "tenant {} holds {} {} but its cap is {limit}",
                    store.tenant_name(tenant),
                    usage.of(cap),
                    format!("{cap:?}").to_lowercase()
                );
                return Err(Violation::new(check::TENANT_CAPS, &[node], detail));
            }
        }
    }
    Ok(())
}

/// `node` answered the entry at `index` with `answer`: the same answer as every node that
/// applied it before (an answer includes every refusal, so all nodes agree on what a cap
/// refused). Records the first answer.
pub fn applied_answers_agree(
    record: &mut Record,
    node: NodeId,
    index: LogIndex,
    answer: &Response,
) -> Result<(), Violation> {
    // The answer's encoding, not its `Debug` text: this runs for every entry every node
    // applies, and formatting was a tenth of the simulator's time.
    let mut encoded = std::mem::take(&mut record.answer_bytes);
    encoded.clear();
    bincode::serde::encode_into_writer(
        answer,
        rafting_core::codec::VecAppender(&mut encoded),
        bincode::config::standard(),
    )
    .expect("an answer always encodes");
    let digest = bytes_digest(&encoded);
    record.answer_bytes = encoded;
    let position = position_of(index);
    if record.answers.len() <= position {
        record.answers.resize(position + 1, (NodeId::ZERO, 0));
    }
    let slot = &mut record.answers[position];
    if slot.1 == 0 {
        *slot = (node, digest);
    }
    let (first, agreed) = *slot;
    if agreed == digest {
        return Ok(());
    }
    let detail = format!("{node} answered entry {index} with {answer:?}, unlike {first} before it");
    let mut violation = Violation::new(check::APPLIED_ANSWERS_AGREE, &[node, first], detail);
    violation.index = Some(index.get());
    Err(violation)
}

/// Every tenant's usage (what its stored caps are checked against), counted as the store
/// changed, equals a recount of what it holds.
fn usage_agrees_with_recount(store: &Store) -> Option<String> {
    store.tenants_with_usage().into_iter().find_map(|tenant| {
        let (counted, recounted) = (store.usage(tenant), store.recount_usage(tenant));
        (counted != recounted).then(|| {
            format!("{tenant}'s usage is counted as {counted:?} but recounts as {recounted:?}")
        })
    })
}

/// The store of `node` describes one key space, whichever way it is read: the whole listing,
/// the same listing in pages of one and two keys, a listing per directory, a `get` of each
/// key, the key count, and the watch history replayed (the last event of each key still
/// retained must be its current state). The KV clients only see answers to their own
/// requests; this reads the rest of the store (pagination, watches, revisions) as a client
/// would, so a store bug that every node repeats identically still shows.
/// The nodes that have not applied up to `target` (a node not running has applied nothing).
pub fn nodes_behind(target: LogIndex, applied: &[(NodeId, Option<LogIndex>)]) -> Vec<u64> {
    applied
        .iter()
        .filter(|(_, applied)| applied.is_none_or(|applied| applied < target))
        .map(|(node, _)| node.get())
        .collect()
}

/// Availability after faults stop: every node has applied `target`, the highest index the
/// cluster had committed when faults stopped. Judged when the liveness bound runs out with a
/// leader elected and every client served, so only a node left behind is reported.
pub fn caught_up(
    target: LogIndex,
    applied: &[(NodeId, Option<LogIndex>)],
) -> Result<(), Violation> {
    let behind = nodes_behind(target, applied);
    if behind.is_empty() {
        return Ok(());
    }
    let detail = applied
        .iter()
        .filter(|(node, _)| behind.contains(&node.get()))
        .map(|(node, applied)| match applied {
            Some(applied) => format!("{node} applied {}", applied.get()),
            None => format!("{node} not running"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(Violation {
        check: check::CAUGHT_UP,
        at_us: 0,
        nodes: behind,
        index: Some(target.get()),
        term: None,
        detail: format!(
            "not caught up with index {}, committed when faults stopped: {detail}",
            target.get()
        ),
    })
}

pub fn store_consistent(node: NodeId, store: &Store) -> Result<(), Violation> {
    store_consistency_error(store).map_or(Ok(()), |detail| {
        Err(Violation::new(check::STORE_CONSISTENT, &[node], detail))
    })
}

fn store_consistency_error(store: &Store) -> Option<String> {
    let listing = match list_all(store, "/", 0) {
        Ok(listing) => listing,
        Err(error) => return Some(format!("listing / failed: {error}")),
    };
    for page_size in [1, 2] {
        match list_all(store, "/", page_size) {
            Ok(paged) if paged == listing => {}
            Ok(paged) => {
                return Some(format!(
                    "listing / in pages of {page_size} gives {} keys, in one page {}",
                    paged.len(),
                    listing.len()
                ));
            }
            Err(error) => return Some(format!("listing / in pages failed: {error}")),
        }
    }
    if listing.len() != store.key_count(TenantId::DEFAULT) {
        return Some(format!(
            "the key count is {} but / lists {} keys",
            store.key_count(TenantId::DEFAULT),
            listing.len()
        ));
    }
    if let Some(error) = listing_agrees_with_gets(store, &listing) {
        return Some(error);
    }
    if let Some(error) = malformed_reads_refused(store) {
        return Some(error);
    }
    if let Some(error) = usage_agrees_with_recount(store) {
        return Some(error);
    }
    history_agrees_with_listing(store, &listing)
}

/// Reads naming a malformed key or prefix are refused with the stable error code a client
/// relies on, and a key of exactly the longest allowed length is not. (The KV clients only
/// send well-formed keys; these are the reads a careless or hostile client would send.)
fn malformed_reads_refused(store: &Store) -> Option<String> {
    let key_bytes_max = store.config().key_bytes_max;
    let longest = format!("/{}", "k".repeat(key_bytes_max - 1));
    let too_long = format!("{longest}k");
    let malformed: [(&str, &str); 9] = [
        ("", "invalid_key"),
        ("kv", "invalid_key"),
        ("/kv//d0", "invalid_key"),
        ("/kv/d0/", "invalid_key"),
        ("/kv/./d0", "invalid_key"),
        ("/kv/../d0", "invalid_key"),
        ("/kv/d0\u{7}", "invalid_key"),
        ("/kv/d\u{85}0", "invalid_key"),
        (&too_long, "too_large"),
    ];
    for (key, code) in malformed {
        match store.get(TenantId::DEFAULT, key) {
            Err(error) if error.code() == code => {}
            other => return Some(format!("get {key:?} gave {other:?}, not {code}")),
        }
        match store.list(&ListQuery::new(key)) {
            Err(error) if error.code() == code => {}
            other => return Some(format!("list {key:?} gave {other:?}, not {code}")),
        }
    }
    match store.get(TenantId::DEFAULT, &longest) {
        Err(error) if error.code() == "not_found" => None,
        Ok(_) => None,
        Err(error) => Some(format!(
            "get of a key of the longest allowed length: {error}"
        )),
    }
}

/// Every listed key reads the same through `get` and has sane revisions; listing its
/// directory, and listing the key itself as a prefix (in pages of one), gives exactly the keys
/// the whole listing has there.
fn listing_agrees_with_gets(store: &Store, listing: &[KeyValue]) -> Option<String> {
    let revision = store.revision();
    for entry in listing {
        match store.get(TenantId::DEFAULT, &entry.key) {
            Ok(got) if got == *entry => {}
            Ok(got) => return Some(format!("get {} = {got:?}, listed {entry:?}", entry.key)),
            Err(error) => return Some(format!("get {} failed: {error}, listed", entry.key)),
        }
        if entry.version == 0
            || entry.create_revision > entry.modify_revision
            || entry.modify_revision > revision
        {
            return Some(format!("{entry:?} at store revision {revision}"));
        }
        let Some((directory, _)) = entry.key.rsplit_once('/') else {
            return Some(format!("listed key {} is not absolute", entry.key));
        };
        if !directory.is_empty()
            && let Some(error) = sublisting_agrees(store, listing, directory, 0)
        {
            return Some(error);
        }
        if let Some(error) = sublisting_agrees(store, listing, &entry.key, 1) {
            return Some(error);
        }
    }
    None
}

/// Listing `prefix` in pages of `page_size` gives the prefix itself, if it is a key, and the
/// keys below it, as the whole listing has them.
fn sublisting_agrees(
    store: &Store,
    listing: &[KeyValue],
    prefix: &str,
    page_size: u32,
) -> Option<String> {
    let below = format!("{prefix}/");
    let expected: Vec<&KeyValue> = listing
        .iter()
        .filter(|other| other.key == prefix || other.key.starts_with(&below))
        .collect();
    match list_all(store, prefix, page_size) {
        Ok(under) if under.iter().eq(expected.iter().copied()) => None,
        Ok(under) => Some(format!(
            "listing {prefix} gives {} keys, / lists {} there",
            under.len(),
            expected.len()
        )),
        Err(error) => Some(format!("listing {prefix} failed: {error}")),
    }
}

/// The retained watch history, read in pages of one and in one page, is the same; and the
/// last retained event of each key is its current state (a put with its value and version at
/// its modify revision, or a delete of a key that is gone). A key modified at or after the
/// oldest complete revision must have such an event.
fn history_agrees_with_listing(store: &Store, listing: &[KeyValue]) -> Option<String> {
    let (events, oldest) = match watch_all(store, 0) {
        Ok(found) => found,
        Err(error) => return Some(format!("watching / failed: {error}")),
    };
    match watch_all(store, 1) {
        Ok((paged, _)) if paged == events => {}
        Ok((paged, _)) => {
            return Some(format!(
                "watching / in pages of one gives {} events, in one page {}",
                paged.len(),
                events.len()
            ));
        }
        Err(error) => return Some(format!("watching / in pages failed: {error}")),
    }
    let mut last: BTreeMap<&str, &Event> = BTreeMap::new();
    let mut previous = Revision::ZERO;
    for event in &events {
        if event.revision < previous || event.revision > store.revision() {
            return Some(format!(
                "watch event at {} after {previous}, store revision {}",
                event.revision,
                store.revision()
            ));
        }
        previous = event.revision;
        last.insert(&event.key, event);
    }
    let current: BTreeMap<&str, &KeyValue> = listing
        .iter()
        .map(|entry| (entry.key.as_str(), entry))
        .collect();
    for (key, event) in &last {
        let agrees = match (&event.kind, current.get(key)) {
            (EventKind::Delete, None) => true,
            (
                EventKind::Put {
                    value,
                    version,
                    create_revision,
                },
                Some(entry),
            ) => {
                entry.value.as_ref() == Some(value)
                    && entry.version == *version
                    && entry.create_revision == *create_revision
                    && entry.modify_revision == event.revision
            }
            _ => false,
        };
        if !agrees {
            return Some(format!(
                "the last watch event of {key} is {event:?}, the key is {:?}",
                current.get(key)
            ));
        }
    }
    for entry in listing {
        if entry.modify_revision >= oldest && !last.contains_key(entry.key.as_str()) {
            return Some(format!(
                "{} changed at {} (history complete from {oldest}) but no watch event has it",
                entry.key, entry.modify_revision
            ));
        }
    }
    None
}

/// Every key under `prefix`, read in pages of `page_size` (0: the store's maximum).
fn list_all(store: &Store, prefix: &str, page_size: u32) -> Result<Vec<KeyValue>, StoreError> {
    let mut entries = Vec::new();
    let mut query = ListQuery::new(prefix);
    query.limit = page_size;
    // A cursor that does not move ends the loop too: the caller's comparison then fails.
    for _ in 0..=store.key_count(TenantId::DEFAULT) + 1 {
        let page = store.list(&query)?;
        entries.extend(page.entries);
        match page.continue_after {
            Some(after) if Some(&after) != query.after.as_ref() => query.after = Some(after),
            _ => break,
        }
    }
    Ok(entries)
}

/// Every retained watch event of the default tenant, read in pages of `page_size` from the
/// oldest complete revision, and that revision.
/// A page of one event holds more only to keep a revision's events together.
fn watch_all(store: &Store, page_size: u32) -> Result<(Vec<Event>, Revision), String> {
    let (held, oldest) = store.watch_history();
    let mut events = Vec::new();
    let mut query = WatchQuery::new("/", oldest);
    query.limit = page_size;
    // A page that does not move the cursor ends the loop too: the comparison then fails.
    for _ in 0..=held + 1 {
        let batch = store.watch(&query).map_err(|error| error.to_string())?;
        if page_size == 1
            && let Some(first) = batch.events.first()
            && batch
                .events
                .iter()
                .any(|event| event.revision != first.revision)
        {
            return Err(format!(
                "a watch page of limit 1 from {} holds {} events of several revisions",
                query.since,
                batch.events.len()
            ));
        }
        let stuck = batch.events.is_empty() || batch.next_since <= query.since;
        events.extend(batch.events);
        if stuck || batch.next_since > store.revision() {
            break;
        }
        query.since = batch.next_since;
    }
    Ok((events, oldest))
}

#[cfg(test)]
#[path = "checkers_tests.rs"]
mod tests;
