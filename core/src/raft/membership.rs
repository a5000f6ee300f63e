//! Cluster membership: who votes, who only learns, and how the configuration moves through the
//! log (single-server changes, thesis §4.2). See `docs/snapshots-and-membership.md`.
//!
//! A configuration is a log entry ([`super::EntryPayload::Configuration`]) and takes effect as
//! soon as it is **appended**, not when it commits: a node always uses the newest
//! configuration in its log. A truncation that removes a configuration entry falls back to the
//! one before it, which is why [`MembershipLog`] keeps every configuration of the log's suffix
//! (and the one at its base, which a snapshot carries).
//!
//! Changes add, promote or remove one member at a time, so any majority of the old voters and
//! any majority of the new ones overlap. Two rules make that enough (Ongaro, raft-dev 2015):
//! a leader proposes a change only after an entry of its own term has committed, and only one
//! change may be uncommitted at a time (both checked in [`super::leader`]).

use crate::types::{LogIndex, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The members of the cluster at some point of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Members that vote and count toward every quorum.
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log and snapshots but never vote or count.
    pub learners: BTreeSet<NodeId>,
    /// How the driver reaches each member (opaque to core: the runtime stores its UDP and HTTP
    /// addresses here). A member without an entry is reached as the driver was configured.
    pub addresses: BTreeMap<NodeId, String>,
}

/// One single-server change.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A new member that only learns (`learner`) or that votes at once.
    Add {
        id: NodeId,
        address: String,
        learner: bool,
    },
    /// A learner becomes a voter.
    Promote { id: NodeId },
    /// A voter or a learner leaves.
    Remove { id: NodeId },
}

impl MembershipChange {
    /// The member the change is about.
    pub fn member(&self) -> NodeId {
        match self {
            MembershipChange::Add { id, .. }
            | MembershipChange::Promote { id }
            | MembershipChange::Remove { id } => *id,
        }
    }
}

/// Why a change cannot apply to a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MembershipError {
    #[error("{id} is already a member")]
    AlreadyMember { id: NodeId },
    #[error("{id} is not a member")]
    UnknownMember { id: NodeId },
    #[error("{id} is already a voter")]
    AlreadyVoter { id: NodeId },
    #[error("{id} is the last voter; a cluster needs one")]
    LastVoter { id: NodeId },
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    #[error("{id} trails the commit index (match {match_index}, commit {commit}): not caught up")]
    NotCaughtUp {
        id: NodeId,
        match_index: LogIndex,
        commit: LogIndex,
    },
}

impl MembershipError {
    /// A stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            MembershipError::AlreadyMember { .. } => "already_member",
            MembershipError::UnknownMember { .. } => "unknown_member",
            MembershipError::AlreadyVoter { .. } => "already_voter",
            MembershipError::LastVoter { .. } => "last_voter",
            MembershipError::ZeroNodeId => "invalid_member",
            MembershipError::NotCaughtUp { .. } => "not_caught_up",
        }
    }
}

impl Membership {
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
            addresses: BTreeMap::new(),
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Voters and learners, in id order (the union of two ordered sets comes out ordered and
    /// without repeats, with nothing to allocate: a leader asks at every step).
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.learners).copied()
    }

    /// The configuration after `change`, or why it cannot apply.
    pub fn apply(&self, change: &MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::Add {
                id,
                address,
                learner,
            } => {
                if *id == NodeId::ZERO {
                    return Err(MembershipError::ZeroNodeId);
                }
                if self.contains(*id) {
                    return Err(MembershipError::AlreadyMember { id: *id });
                }
                if *learner {
                    next.learners.insert(*id);
                } else {
                    next.voters.insert(*id);
                }
                if !address.is_empty() {
                    next.addresses.insert(*id, address.clone());
                }
            }
            MembershipChange::Promote { id } => {
                if self.is_voter(*id) {
                    return Err(MembershipError::AlreadyVoter { id: *id });
                }
                if !next.learners.remove(id) {
                    return Err(MembershipError::UnknownMember { id: *id });
                }
                next.voters.insert(*id);
            }
            MembershipChange::Remove { id } => {
                if !self.contains(*id) {
                    return Err(MembershipError::UnknownMember { id: *id });
                }
                if self.voters.len() == 1 && self.is_voter(*id) {
                    return Err(MembershipError::LastVoter { id: *id });
                }
                next.voters.remove(id);
                next.learners.remove(id);
                next.addresses.remove(id);
            }
        }
        Ok(next)
    }
}

/// The configurations of a log: the one in force at its base (from the snapshot, or the
/// bootstrap configuration at index 0) and every configuration entry after it, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipLog {
    /// `(index, configuration)`; the first is the base (its index at or below the log's
    /// base), the others are entries of the log. Never empty.
    configurations: Vec<(LogIndex, Membership)>,
}

impl Default for MembershipLog {
    fn default() -> Self {
        MembershipLog::new(LogIndex::ZERO, Membership::default())
    }
}

impl MembershipLog {
    pub fn new(base: LogIndex, membership: Membership) -> MembershipLog {
        MembershipLog {
            configurations: vec![(base, membership)],
        }
    }

    /// The newest configuration: the one the node uses.
    pub fn newest(&self) -> &Membership {
        &self.configurations.last().expect("never empty").1
    }

    /// The index of the newest configuration entry (the base's when the log holds none).
    pub fn newest_index(&self) -> LogIndex {
        self.configurations.last().expect("never empty").0
    }

    /// The configuration in force at `index`: the newest at or below it.
    pub fn at(&self, index: LogIndex) -> &Membership {
        self.configurations
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map_or(&self.configurations[0].1, |(_, membership)| membership)
    }

    /// A configuration entry was appended at `index`.
    pub fn appended(&mut self, index: LogIndex, membership: Membership) {
        debug_assert!(
            index > self.newest_index(),
            "configurations are appended in order"
        );
        self.configurations.push((index, membership));
    }

    /// Entries from `from` on were removed: their configurations no longer apply. The base
    /// stays (a truncation never reaches committed entries, the base among them).
    pub fn truncated_from(&mut self, from: LogIndex) {
        let keep = self
            .configurations
            .iter()
            .skip(1)
            .take_while(|(index, _)| *index < from)
            .count()
            + 1;
        self.configurations.truncate(keep);
    }

    /// The log now starts after `base`: the configuration in force there becomes the base.
    pub fn compacted_to(&mut self, base: LogIndex) {
        let position = self
            .configurations
            .iter()
            .rposition(|(index, _)| *index <= base)
            .unwrap_or(0);
        self.configurations.drain(..position);
    }

    /// The log restarts after a snapshot at `base` whose configuration is `membership`;
    /// configurations of entries after it stay when `keeps_suffix`.
    pub fn restored_to(&mut self, base: LogIndex, membership: Membership, keeps_suffix: bool) {
        let suffix: Vec<(LogIndex, Membership)> = if keeps_suffix {
            self.configurations
                .drain(..)
                .skip(1)
                .filter(|(index, _)| *index > base)
                .collect()
        } else {
            Vec::new()
        };
        self.configurations = vec![(base, membership)];
        self.configurations.extend(suffix);
    }

    /// Replaces the base configuration (the bootstrap one, or a recovered snapshot's).
    pub fn set_base(&mut self, index: LogIndex, membership: Membership) {
        self.configurations[0] = (index, membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn changes_apply_one_member_at_a_time_and_refuse_what_makes_no_sense() {
        let start = Membership::new(ids(&[1, 2, 3]), []);
        let added = start
            .apply(&MembershipChange::Add {
                id: NodeId(4),
                address: "udp=x".into(),
                learner: true,
            })
            .unwrap();
        assert!(added.is_learner(NodeId(4)) && !added.is_voter(NodeId(4)));
        assert_eq!(added.addresses[&NodeId(4)], "udp=x");
        let promoted = added
            .apply(&MembershipChange::Promote { id: NodeId(4) })
            .unwrap();
        assert_eq!(promoted.voters.len(), 4);
        assert!(promoted.learners.is_empty());
        assert_eq!(
            promoted.apply(&MembershipChange::Promote { id: NodeId(4) }),
            Err(MembershipError::AlreadyVoter { id: NodeId(4) })
        );
        assert_eq!(
            start.apply(&MembershipChange::Promote { id: NodeId(9) }),
            Err(MembershipError::UnknownMember { id: NodeId(9) })
        );
        assert_eq!(
            start.apply(&MembershipChange::Remove { id: NodeId(9) }),
            Err(MembershipError::UnknownMember { id: NodeId(9) })
        );
        let add_again = MembershipChange::Add {
            id: NodeId(2),
            address: String::new(),
            learner: true,
        };
        assert_eq!(
            start.apply(&add_again),
            Err(MembershipError::AlreadyMember { id: NodeId(2) })
        );
        let solo = Membership::new(ids(&[1]), ids(&[2]));
        assert_eq!(
            solo.apply(&MembershipChange::Remove { id: NodeId(1) }),
            Err(MembershipError::LastVoter { id: NodeId(1) })
        );
        let removed = solo
            .apply(&MembershipChange::Remove { id: NodeId(2) })
            .unwrap();
        assert_eq!(removed, Membership::new(ids(&[1]), []));
    }

    #[test]
    fn the_log_of_configurations_follows_appends_truncations_and_compactions() {
        let bootstrap = Membership::new(ids(&[1, 2, 3]), []);
        let four = Membership::new(ids(&[1, 2, 3]), ids(&[4]));
        let promoted = Membership::new(ids(&[1, 2, 3, 4]), []);
        let mut log = MembershipLog::new(LogIndex::ZERO, bootstrap.clone());
        log.appended(LogIndex(5), four.clone());
        log.appended(LogIndex(9), promoted.clone());
        assert_eq!(log.newest(), &promoted);
        assert_eq!(log.at(LogIndex(4)), &bootstrap);
        assert_eq!(log.at(LogIndex(8)), &four);
        // A new leader's log replaced entries from 9 on: the previous configuration is back.
        log.truncated_from(LogIndex(9));
        assert_eq!(log.newest(), &four);
        log.truncated_from(LogIndex(1));
        assert_eq!(log.newest(), &bootstrap, "the base is never truncated");
        log.appended(LogIndex(5), four.clone());
        log.appended(LogIndex(9), promoted.clone());
        log.compacted_to(LogIndex(7));
        assert_eq!(
            log.at(LogIndex(7)),
            &four,
            "the base is the one in force there"
        );
        assert_eq!(log.newest(), &promoted);
        log.restored_to(LogIndex(12), bootstrap.clone(), true);
        assert_eq!(
            log.newest(),
            &bootstrap,
            "the snapshot's configuration is newer"
        );
        log.appended(LogIndex(13), four.clone());
        log.restored_to(LogIndex(12), promoted.clone(), true);
        assert_eq!(
            log.newest(),
            &four,
            "a kept suffix keeps its configurations"
        );
        log.restored_to(LogIndex(20), promoted.clone(), false);
        assert_eq!(log.newest(), &promoted);
        assert_eq!(log.newest_index(), LogIndex(20));
    }
}
