//! What a driver feeds a [`Replica`](super::Replica) and what it must carry out.

use super::rates::RateKind;
use crate::raft::{
    BatchId, Entry, Envelope, Membership, MembershipChange, MembershipError, PersistBatch,
    ProposeError,
};
use crate::store::{ClientId, Operation, Query, ReadAnswer, Response, Store, StoreError, TenantId};
use crate::types::{LogIndex, Millis, NodeId, Term};
use thiserror::Error;

/// Driver-chosen identity of a client request, echoed in its [`Answer`]. The replica never
/// interprets it; the driver keeps ids unique among its requests in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// ReadIndex through the leader: sees every write acknowledged before the read began.
    Linearizable,
    /// This node's applied state, possibly behind; answered at once, on any node.
    Stale,
}

/// An external client's exactly-once numbering of a write (Raft thesis §6.3): a retry with
/// the same `(client, sequence)` gets the first attempt's answer instead of applying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbered {
    /// A record from [`Input::RegisterClient`].
    pub client: ClientId,
    pub sequence: u64,
    /// The client holds every answer numbered below this; the store may forget them. A
    /// client with one request at a time passes its `sequence`.
    pub acknowledged_below: u64,
}

/// One input to [`Replica::step`](super::Replica::step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Only time has passed: fire whatever timers are due.
    Tick,
    /// A message from a peer.
    Message(Envelope),
    /// The driver has made the batch durable, and every batch before it.
    Persisted(BatchId),
    /// A write. Without `numbered` it is numbered on this node's own client record (applied
    /// once per attempt: a retry after an unknown outcome may apply twice); with it, the
    /// external client's numbering makes retries safe. Queued until [`Input::Flush`].
    Write {
        id: RequestId,
        tenant: TenantId,
        operation: Operation,
        numbered: Option<Numbered>,
        /// Answered with [`ReplicaError::Timeout`] if still unanswered at this time.
        deadline: Millis,
    },
    /// Registers an exactly-once client record; answered with
    /// [`Outcome::ClientRegistered`](crate::store::Outcome::ClientRegistered). Queued until
    /// [`Input::Flush`].
    RegisterClient { id: RequestId, deadline: Millis },
    /// A read of the store.
    Read {
        id: RequestId,
        query: Query,
        consistency: Consistency,
        deadline: Millis,
    },
    /// Proposes every write queued since the last flush, as one batch (one persist batch
    /// and one append per follower). A driver sends it at the end of each round of events;
    /// the simulator after each request.
    Flush,
    /// Ask the leader to hand leadership to `to` (answered at once: accepted or not leader).
    TransferLeadership { id: RequestId, to: NodeId },
    /// Start an election now (see [`crate::raft::Input::Campaign`]).
    Campaign,
    /// Add, promote or remove one member (leader only); answered with
    /// [`Answer::Membership`] once the configuration entry commits and is applied here.
    ChangeMembership {
        id: RequestId,
        change: MembershipChange,
        deadline: Millis,
    },
    /// Evidence that `peer`'s process is gone (see [`crate::raft::Input::PeerUnreachable`]).
    PeerUnreachable { peer: NodeId },
    /// The image of the snapshot [`Output::snapshot_to_encode`] asked for, encoded by the
    /// driver ([`SnapshotJob::encode`]), possibly many steps later.
    SnapshotEncoded { index: LogIndex, image: Vec<u8> },
}

/// A snapshot to encode off the step: a copy of the store as it was at `index`. Encoding a
/// store of tens of megabytes takes tens of milliseconds; done inside the step, it held every
/// request and heartbeat of the node for that long. The driver encodes it wherever it likes
/// (the runtime on a thread of its own, the simulator a moment later) and hands the image
/// back with [`Input::SnapshotEncoded`]; the node compacts its log only once the image is
/// durable, so nothing depends on how long that takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotJob {
    pub index: LogIndex,
    pub store: Store,
}

impl SnapshotJob {
    /// The image of the store (see [`Store::snapshot`]).
    pub fn encode(&self) -> Vec<u8> {
        self.store.snapshot()
    }
}

/// A write that committed and was applied: the store's answer and where it sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The store's answer: an outcome, or a refusal decided by the log (a version mismatch,
    /// an unknown client), which is as definite as an outcome.
    pub response: Response,
    pub index: LogIndex,
    pub term: Term,
}

/// The answer to one client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A write or a client registration.
    Write {
        id: RequestId,
        result: Result<Applied, ReplicaError>,
    },
    Read {
        id: RequestId,
        result: Result<ReadAnswer, ReplicaError>,
    },
    /// A leadership transfer request was accepted (`Ok`) or refused.
    Transfer {
        id: RequestId,
        result: Result<(), ReplicaError>,
    },
    /// A membership change committed (`Ok`) or was refused.
    Membership {
        id: RequestId,
        result: Result<MembershipApplied, ReplicaError>,
    },
}

/// A membership change that committed: the configuration in force from `index` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipApplied {
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

impl Answer {
    pub fn id(&self) -> RequestId {
        match self {
            Answer::Write { id, .. }
            | Answer::Read { id, .. }
            | Answer::Transfer { id, .. }
            | Answer::Membership { id, .. } => *id,
        }
    }
}

/// Why a request got no answer from the store. `code()` is stable; the REST API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReplicaError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership changed before the write committed; it may or may not have been applied")]
    OutcomeUnknown { leader: Option<NodeId> },
    #[error("the request timed out; a write may or may not have been applied")]
    Timeout,
    #[error("the leader is overloaded: {0}")]
    Overloaded(&'static str),
    #[error("request of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// The tenant is over its request rate (a token bucket on the node serving it).
    #[error(transparent)]
    RateLimited(RateRefusal),
    /// A read the store refused (a bad key, a compacted watch).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A new leader proposes a membership change only once it has committed an entry of its
    /// term (a few milliseconds after its election): retry shortly.
    #[error("the leader has not committed an entry of its term yet; retry shortly")]
    LeaderNotReady,
    /// Another membership change has not committed yet: one at a time.
    #[error("another membership change is in progress; retry once it commits")]
    ChangeInProgress,
    /// The change does not apply to the configuration (an unknown member, one already
    /// there, a learner not caught up, the last voter).
    #[error(transparent)]
    Membership(MembershipError),
}

/// A request refused because its tenant is over a rate: who, which rate, and when to come
/// back. `needed` is what the request asked of the bucket (1 for a request, its bytes for
/// [`RateKind::WriteBytes`], at most the burst): until `retry_after_ms` has passed, the bucket
/// holds fewer tokens than that, so any request of the tenant needing as much of the same kind
/// would be refused too. The HTTP front relies on it to refuse such requests before it reads
/// their bodies.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "tenant {tenant} is over its {what} rate of {rate}/s (burst {burst}); retry in \
     {retry_after_ms} ms",
    what = match kind {
        RateKind::Writes => "write",
        RateKind::WriteBytes => "written bytes",
        RateKind::Reads => "read",
    }
)]
pub struct RateRefusal {
    pub tenant: String,
    pub kind: RateKind,
    pub rate: u64,
    pub burst: u64,
    pub retry_after_ms: u64,
    pub needed: u64,
}

impl ReplicaError {
    pub fn code(&self) -> &'static str {
        match self {
            ReplicaError::NotLeader { .. } => "not_leader",
            ReplicaError::OutcomeUnknown { .. } => "outcome_unknown",
            ReplicaError::Timeout => "timeout",
            ReplicaError::Overloaded(_) => "overloaded",
            ReplicaError::TooLarge { .. } => "too_large",
            ReplicaError::RateLimited(refusal) => refusal.kind.code(),
            ReplicaError::Store(error) => error.code(),
            ReplicaError::LeaderNotReady => "leader_not_ready",
            ReplicaError::ChangeInProgress => "change_in_progress",
            ReplicaError::Membership(error) => error.code(),
        }
    }

    pub(super) fn from_propose(error: ProposeError) -> ReplicaError {
        match error {
            ProposeError::NotLeader { leader_hint } => ReplicaError::NotLeader {
                leader: leader_hint,
            },
            ProposeError::TransferInProgress => ReplicaError::NotLeader { leader: None },
            ProposeError::UncommittedLimit => {
                ReplicaError::Overloaded("too many uncommitted entries")
            }
            ProposeError::TooLarge { size, max } => ReplicaError::TooLarge { size, max },
            ProposeError::TermNotCommitted => ReplicaError::LeaderNotReady,
            ProposeError::ChangeInProgress => ReplicaError::ChangeInProgress,
            ProposeError::Membership(error) => ReplicaError::Membership(error),
        }
    }
}

/// An entry this node applied in this step, with the store's answer, for observers (the
/// simulator's checkers, metrics). A driver that does not observe may ignore it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedEntry {
    pub entry: Entry,
    /// `None` for entries without a store command (no-ops).
    pub response: Option<Response>,
}

/// Everything one step asks of the driver. Carry it out in this order:
///
/// 1. start writing [`Output::persist`] (if any), and report it with [`Input::Persisted`]
///    once durable;
/// 2. send [`Output::messages`];
/// 3. deliver [`Output::answers`] to the clients that asked;
/// 4. call [`Replica::step`](super::Replica::step) with [`Input::Tick`] no later than
///    [`Output::wake_at`].
///
/// The store was already brought up to date inside the step: answers are never ahead of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "outputs are obligations: persist, send, answer"]
pub struct Output {
    pub persist: Vec<PersistBatch>,
    pub messages: Vec<Envelope>,
    pub answers: Vec<Answer>,
    pub applied: Vec<AppliedEntry>,
    /// A snapshot from the leader replaced the store in this step, covering the log up to
    /// `(index, term)`; `applied` continues after it. For observers, like `applied`.
    pub installed: Option<(LogIndex, Term)>,
    /// The installed image checked out but did not decode as a store (another build's
    /// format): the store was left as it was. For observers and logs.
    pub install_failure: Option<String>,
    /// A snapshot is due: encode it and hand the image back with [`Input::SnapshotEncoded`].
    /// No other is asked for until then.
    pub snapshot_to_encode: Option<SnapshotJob>,
    pub wake_at: Millis,
}
