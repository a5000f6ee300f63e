//! What a driver feeds a node ([`Input`]) and what it must carry out ([`Output`]).

use super::entry::{Entry, HardState};
use super::membership::{MembershipChange, MembershipError};
use super::message::Envelope;
use crate::types::{LogIndex, Millis, NodeId, Term};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

/// Caller-chosen identity of a proposal, echoed in its [`ProposalOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId(pub u64);

/// Caller-chosen identity of a linearizable read, echoed in its [`ReadOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadId(pub u64);

/// One input to [`super::Node::step`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Only time has passed: fire whatever timers are due.
    Tick,
    /// A message from a peer.
    Message(Envelope),
    /// A client command to replicate. Only a leader accepts it.
    Propose { id: ProposalId, data: Vec<u8> },
    /// Several commands at once, in order: they share one persist batch and one append per
    /// follower. Each gets its own outcome.
    ProposeBatch {
        proposals: Vec<(ProposalId, Vec<u8>)>,
    },
    /// A linearizable read (ReadIndex). Only a leader accepts it.
    Read { id: ReadId },
    /// Ask the leader to hand leadership to `to`.
    TransferLeadership { to: NodeId },
    /// The driver has made the batch `id`, and every batch before it, durable.
    Persisted(BatchId),
    /// Start an election now, as if the election timer had fired (PreVote still applies).
    /// Ignored by a leader. For operators and scripted scenarios.
    Campaign,
    /// The driver has evidence that `peer`'s process is gone: its host refused a datagram
    /// (ICMP port unreachable). Only a hint, never needed for safety: a follower told that
    /// its leader is gone gives up the leader's lease and starts an election within one
    /// heartbeat interval instead of waiting out the election timeout. PreVote still applies,
    /// so a false report cannot unseat a leader the other followers still hear.
    PeerUnreachable { peer: NodeId },
    /// The driver's state machine, with everything up to `index` applied and nothing after,
    /// is `image`: the node persists it as a snapshot (in its next [`PersistBatch`]) and,
    /// once that batch is durable, forgets the log up to `index`. Ignored unless
    /// `index` is applied here and above the log's base, and no other snapshot is being
    /// persisted.
    SnapshotTaken { index: LogIndex, image: Vec<u8> },
    /// Propose one membership change (leader only). Answered like a proposal: `Accepted`,
    /// then `Committed` once the configuration entry commits (it is in force on the leader
    /// from the moment it is appended), or `Rejected` with why.
    ChangeMembership {
        id: ProposalId,
        change: MembershipChange,
    },
}

/// Names one persistence batch. Batches are numbered in the order the node emits them; the
/// driver makes them durable in that order. `last_index`/`last_term` name the log's last
/// entry when the batch was made, so a batch overtaken by a later truncation is never
/// mistaken for the newer entries at the same index (the "ABA" bug etcd once had).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchId {
    pub sequence: u64,
    pub last_index: LogIndex,
    pub last_term: Term,
}

/// What the driver must make durable, atomically with respect to a crash of the node: after
/// a crash, either all of it is durable or the driver recovers a prefix of the batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "a persist batch must be written and then reported with Input::Persisted"]
pub struct PersistBatch {
    pub id: BatchId,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append. If the first entry's index is at or below the last durable index,
    /// everything from that index on is replaced.
    pub entries: Vec<Entry>,
    /// A snapshot to make durable: one the driver took ([`Input::SnapshotTaken`]) or one a
    /// leader sent. See [`PersistSnapshot`].
    pub snapshot: Option<PersistSnapshot>,
}

/// The state machine at a log index: the image and the last entry it includes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: LogIndex,
    pub term: Term,
    /// The configuration in force at `index` (the log before it is gone).
    pub membership: super::membership::Membership,
    /// Shared, so that a leader streaming it to several followers never copies it.
    pub image: Arc<Vec<u8>>,
}

/// A snapshot the driver must write (temporary file, sync, rename, directory sync).
///
/// With `log_reset` it replaces the log, so it is written **before** the rest of its batch.
/// Without, it pictures entries of the log itself (durable with this batch at the latest):
/// the driver may write it
/// beside the batches that follow (and report them, and this one, durable before the file
/// is), as long as it keeps the log whole until the file is durable. Only then may it delete
/// the log segments whose entries are all at or below `snapshot.index`, and older snapshot
/// files but one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistSnapshot {
    pub snapshot: Snapshot,
    /// Installed from a leader over a log that did not hold `(index, term)`: every entry the
    /// log holds is discarded (after the snapshot is durable), and the next entry written is
    /// `index + 1`.
    pub log_reset: bool,
}

/// The fate of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalOutcome {
    /// Appended to the leader's log at `index`; the entry at `(index, term)` reaches
    /// [`Output::committed`] once committed.
    Accepted {
        id: ProposalId,
        index: LogIndex,
        term: Term,
    },
    /// The entry committed and is in [`Output::committed`] of this same output.
    Committed { id: ProposalId, index: LogIndex },
    /// Never entered the log.
    Rejected { id: ProposalId, error: ProposeError },
    /// The leader lost leadership before the entry committed. It may still commit under the
    /// next leader, or be discarded: the caller does not know, and may retry with its client
    /// session so the command applies at most once.
    Unknown {
        id: ProposalId,
        leader_hint: Option<NodeId>,
    },
}

/// Why a proposal was refused. The caller may retry elsewhere or later.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ProposeError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    #[error("too many uncommitted entries at the leader; retry later")]
    UncommittedLimit,
    #[error("payload of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// A configuration change waits until the leader has committed an entry of its own term
    /// (its no-op, right after election): the rule that fixes the single-server change bug.
    #[error("the leader has not yet committed an entry of its term; retry shortly")]
    TermNotCommitted,
    /// Another configuration change is not committed yet: one at a time.
    #[error("another membership change is in progress; retry once it commits")]
    ChangeInProgress,
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// The fate of a read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOutcome {
    /// Serve the read now, against the state machine with everything up to `index` applied.
    /// Core releases it only after the entries up to `index` were handed out in
    /// [`Output::committed`] (in this output or an earlier one).
    Ready {
        id: ReadId,
        index: LogIndex,
    },
    Failed {
        id: ReadId,
        error: ReadError,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ReadError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("too many reads pending at the leader; retry later")]
    PendingLimit,
}

/// Everything one step asks of the driver. Carry it out in this order:
///
/// 1. start writing [`Output::persist`] (if any), and report it with [`Input::Persisted`]
///    once durable;
/// 2. send [`Output::messages`] — they are always safe to send now (acknowledgements and
///    votes that need the write are held inside the node until it is reported durable);
/// 3. apply [`Output::committed`] to the state machine, in order;
/// 4. answer [`Output::proposals`] and serve [`Output::reads`] (after step 3);
/// 5. call [`super::Node::step`] with [`Input::Tick`] no later than [`Output::wake_at`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "outputs are obligations: persist, send, apply, answer"]
pub struct Output {
    pub persist: Option<PersistBatch>,
    pub messages: Vec<Envelope>,
    pub committed: Vec<Entry>,
    pub proposals: Vec<ProposalOutcome>,
    pub reads: Vec<ReadOutcome>,
    /// A snapshot from the leader was installed in this step: the driver replaces its state
    /// machine with the image **before** applying `committed` (which follows it). It is also
    /// in `persist`.
    pub installed: Option<Snapshot>,
    pub wake_at: Millis,
}

impl Output {
    /// True when the output asks nothing of the driver but a later wake-up.
    pub fn is_idle(&self) -> bool {
        self.persist.is_none()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.proposals.is_empty()
            && self.reads.is_empty()
            && self.installed.is_none()
    }
}

/// What a node recovers from durable storage on restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableState {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
    /// The newest valid snapshot on disk. Entries at or below its index are ignored; entries
    /// after it are kept only if they continue it (see [`super::Node::restart`]).
    pub snapshot: Option<Snapshot>,
}

impl DurableState {
    /// The last index this state covers: its last entry's, or the snapshot's.
    pub fn last_index(&self) -> LogIndex {
        let snapshot = self.snapshot.as_ref().map_or(LogIndex::ZERO, |s| s.index);
        self.entries
            .last()
            .map_or(snapshot, |entry| entry.index.max(snapshot))
    }
}
