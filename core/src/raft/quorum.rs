//! Quorum arithmetic in one place: what a majority of the voters has granted, reached or
//! confirmed.
//!
//! Every rule that counts voters (winning an election, committing an index, confirming a
//! ReadIndex round, keeping the CheckQuorum lease) asks a [`Majority`] instead of counting
//! for itself. Only voters count: a node outside the configuration (a learner, a removed
//! member) is never part of a quorum. A joint configuration (Raft §4.3, for membership
//! change) will be two majorities that must both agree, behind the same three questions.

use crate::types::NodeId;
use std::collections::BTreeSet;

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A majority granted.
    Won,
    /// Enough voters refused that a majority can no longer grant.
    Lost,
    Pending,
}

/// A simple majority of a set of voters.
#[derive(Clone, Copy, Debug)]
pub struct Majority<'a> {
    voters: &'a BTreeSet<NodeId>,
}

impl<'a> Majority<'a> {
    pub fn new(voters: &'a BTreeSet<NodeId>) -> Majority<'a> {
        Majority { voters }
    }

    /// Voters needed for a majority.
    pub fn size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The result of an election in which `granted` and `rejected` answered. Answers from
    /// non-voters are ignored.
    pub fn vote_result(
        &self,
        granted: &BTreeSet<NodeId>,
        rejected: &BTreeSet<NodeId>,
    ) -> VoteResult {
        let count = |set: &BTreeSet<NodeId>| set.intersection(self.voters).count();
        let size = self.size();
        if count(granted) >= size {
            VoteResult::Won
        } else if count(rejected) > self.voters.len().saturating_sub(size) {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// Whether the voters for which `holds` is true make a majority.
    pub fn reached(&self, holds: impl Fn(NodeId) -> bool) -> bool {
        self.voters.iter().filter(|&&voter| holds(voter)).count() >= self.size()
    }

    /// The highest value that a majority of the voters has reached, given each voter's
    /// value (a match index, an acknowledged round). The default when there are no voters.
    pub fn agreed<T: Ord + Copy + Default>(&self, value_of: impl Fn(NodeId) -> T) -> T {
        // A leader asks at every step (commit, read rounds): the values of a configuration of
        // up to `ON_STACK` voters are sorted on the stack, a larger one's in a vector.
        const ON_STACK: usize = 16;
        let count = self.voters.len();
        let mut on_stack = [T::default(); ON_STACK];
        let mut on_heap = Vec::new();
        let values: &mut [T] = if count <= ON_STACK {
            &mut on_stack[..count]
        } else {
            on_heap.resize(count, T::default());
            &mut on_heap
        };
        for (value, &voter) in values.iter_mut().zip(self.voters) {
            *value = value_of(voter);
        }
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.size() - 1).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn a_majority_is_more_than_half() {
        for (count, size) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            let ids: Vec<u64> = (1..=count).collect();
            assert_eq!(Majority::new(&voters(&ids)).size(), size, "{count} voters");
        }
    }

    #[test]
    fn votes_win_lose_or_wait_and_only_voters_count() {
        let all = voters(&[1, 2, 3, 4, 5]);
        let majority = Majority::new(&all);
        assert_eq!(
            majority.vote_result(&voters(&[1, 2, 3]), &voters(&[])),
            VoteResult::Won
        );
        assert_eq!(
            majority.vote_result(&voters(&[1, 2]), &voters(&[3])),
            VoteResult::Pending
        );
        assert_eq!(
            majority.vote_result(&voters(&[1, 2]), &voters(&[3, 4, 5])),
            VoteResult::Lost
        );
        // Grants from outside the configuration do not make a majority.
        assert_eq!(
            majority.vote_result(&voters(&[1, 2, 8, 9]), &voters(&[])),
            VoteResult::Pending
        );
        assert_eq!(
            majority.vote_result(&voters(&[1]), &voters(&[2, 3, 8])),
            VoteResult::Pending
        );
    }

    #[test]
    fn the_agreed_value_is_the_highest_a_majority_has_reached() {
        let all = voters(&[1, 2, 3, 4, 5]);
        let values = [0u64, 9, 7, 3, 5, 1];
        let agreed = Majority::new(&all).agreed(|id| values[id.get() as usize]);
        assert_eq!(
            agreed, 5,
            "9, 7 and 5 have reached 5; only two have reached 7"
        );
        let one = voters(&[1]);
        assert_eq!(Majority::new(&one).agreed(|_| 4u64), 4);
    }

    #[test]
    fn reached_counts_voters_only() {
        let all = voters(&[1, 2, 3]);
        let majority = Majority::new(&all);
        assert!(majority.reached(|id| id.get() <= 2));
        assert!(!majority.reached(|id| id.get() == 1 || id.get() > 3));
    }
}
