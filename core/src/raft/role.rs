//! Role-specific state. A follower cannot hold replication progress: it lives in the leader.

use super::output::{ProposalId, ReadId};
use super::progress::Progress;
use crate::types::{LogIndex, Millis, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Clone, Debug)]
pub enum Role {
    Follower,
    /// Asking for pre-votes for `term + 1` without changing its own term.
    PreCandidate {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
    },
    /// Campaigning in its term. Its own vote counts only once the batch holding it is durable
    /// (`self_vote_batch`), or a crash could let it vote twice in the term.
    Candidate {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        self_vote_batch: u64,
    },
    Leader(Box<LeaderState>),
}

impl Role {
    pub fn name(&self) -> RoleName {
        match self {
            Role::Follower => RoleName::Follower,
            Role::PreCandidate { .. } => RoleName::PreCandidate,
            Role::Candidate { .. } => RoleName::Candidate,
            Role::Leader(_) => RoleName::Leader,
        }
    }
}

/// The role without its state, for status reports and traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleName {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Follower => "follower",
            RoleName::PreCandidate => "pre-candidate",
            RoleName::Candidate => "candidate",
            RoleName::Leader => "leader",
        }
    }
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    /// One entry per peer (not this node).
    pub progress: BTreeMap<NodeId, Progress>,
    pub heartbeat_deadline: Millis,
    pub check_quorum_deadline: Millis,
    /// Index of the no-op this leader appended at the start of its term.
    pub term_start_index: LogIndex,
    /// Proposals appended in this term and not yet committed, by index.
    pub pending_proposals: BTreeMap<LogIndex, (Term, ProposalId)>,
    pub reads: ReadQueue,
    pub transfer: Option<Transfer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub target: NodeId,
    pub deadline: Millis,
    pub timeout_now_sent: bool,
}

/// ReadIndex bookkeeping at the leader (thesis §6.4).
///
/// A read is registered with the commit index at arrival and the heartbeat round that will
/// confirm it. Reads that arrive before the leader has committed an entry of its own term wait
/// in `awaiting_term_commit`, because until then the leader's commit index may lag what the
/// cluster has committed.
#[derive(Clone, Debug, Default)]
pub struct ReadQueue {
    /// The last heartbeat round broadcast.
    pub round: u64,
    /// Reads registered since the last broadcast need a new round.
    pub round_needed: bool,
    pub awaiting_term_commit: Vec<ReadId>,
    /// (read, read index, round that confirms it), in registration order.
    pub unconfirmed: VecDeque<(ReadId, LogIndex, u64)>,
    /// Confirmed reads waiting for the state machine to reach their index.
    pub confirmed: VecDeque<(ReadId, LogIndex)>,
}

impl ReadQueue {
    pub fn len(&self) -> usize {
        self.awaiting_term_commit.len() + self.unconfirmed.len() + self.confirmed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every read held, in no particular order (for failing them all on step-down).
    pub fn drain_all(&mut self) -> Vec<ReadId> {
        let mut ids: Vec<ReadId> = self.awaiting_term_commit.drain(..).collect();
        ids.extend(self.unconfirmed.drain(..).map(|(id, _, _)| id));
        ids.extend(self.confirmed.drain(..).map(|(id, _)| id));
        ids
    }
}
