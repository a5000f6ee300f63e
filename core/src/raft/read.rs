//! Linearizable reads by ReadIndex (thesis §6.4).
//!
//! A read is safe to serve once three things hold: the leader has committed an entry of its
//! own term (so its commit index is at least the cluster's), a quorum has answered a heartbeat
//! round sent after the read arrived (so no newer leader existed at that moment), and the
//! state machine has applied up to the commit index recorded when the read arrived.

use super::node::Node;
use super::output::{ReadError, ReadId, ReadOutcome};
use super::quorum::Majority;
use super::role::Role;

impl Node {
    pub(super) fn on_read(&mut self, id: ReadId) {
        let leader_hint = self.leader;
        let pending_reads_max = self.config.pending_reads_max;
        let commit = self.log.commit();
        let term_committed = self.log.term_at(commit) == Some(self.term);
        let Role::Leader(leader) = &mut self.role else {
            let error = ReadError::NotLeader { leader_hint };
            self.output.reads.push(ReadOutcome::Failed { id, error });
            return;
        };
        if leader.reads.len() >= pending_reads_max {
            let error = ReadError::PendingLimit;
            self.output.reads.push(ReadOutcome::Failed { id, error });
            return;
        }
        if term_committed {
            leader
                .reads
                .unconfirmed
                .push_back((id, commit, leader.reads.round + 1));
            leader.reads.round_needed = true;
        } else {
            leader.reads.awaiting_term_commit.push(id);
        }
    }

    /// Called when the leader's commit index moves: reads that waited for the leader's first
    /// commit in its term can now be registered.
    pub(super) fn on_commit_advanced(&mut self) {
        let commit = self.log.commit();
        if self.log.term_at(commit) != Some(self.term) {
            return;
        }
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.reads.awaiting_term_commit.is_empty() {
            return;
        }
        let round = leader.reads.round + 1;
        for id in std::mem::take(&mut leader.reads.awaiting_term_commit) {
            leader.reads.unconfirmed.push_back((id, commit, round));
        }
        leader.reads.round_needed = true;
    }

    /// Starts a new heartbeat round if reads are waiting for one and no earlier round is still
    /// unanswered, then moves every read whose round a quorum has answered to the confirmed
    /// queue. Under load, reads that arrive while a round is out share the next one, so the
    /// leader sends one round per round trip rather than one per read.
    fn confirm_reads(&mut self) {
        let majority = Majority::new(&self.log.membership().voters);
        let own = self.config.id;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        // With no read waiting and none wanting a round there is nothing to start or confirm;
        // this runs at the end of every leader step, so it skips two quorum counts.
        if leader.reads.unconfirmed.is_empty() && !leader.reads.round_needed {
            return;
        }
        let quorum_round = |leader: &super::role::LeaderState| {
            majority.agreed(|voter| {
                if voter == own {
                    leader.reads.round // The leader confirms its own rounds.
                } else {
                    leader
                        .progress
                        .get(&voter)
                        .map_or(0, |progress| progress.round_acknowledged)
                }
            })
        };
        let outstanding = quorum_round(leader) < leader.reads.round;
        let start_round = leader.reads.round_needed && !outstanding;
        if start_round {
            leader.reads.round += 1;
            leader.reads.round_needed = false;
        }
        let confirmed_round = quorum_round(leader);
        while let Some(&(id, index, round)) = leader.reads.unconfirmed.front() {
            if round > confirmed_round {
                break;
            }
            leader.reads.unconfirmed.pop_front();
            leader.reads.confirmed.push_back((id, index));
        }
        if start_round {
            self.broadcast_heartbeat();
        }
    }

    /// Releases confirmed reads whose index the driver has been handed for applying.
    pub(super) fn release_ready_reads(&mut self) {
        self.confirm_reads();
        let applied = self.log.applied();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        while let Some(&(id, index)) = leader.reads.confirmed.front() {
            if index > applied {
                break;
            }
            leader.reads.confirmed.pop_front();
            self.output.reads.push(ReadOutcome::Ready { id, index });
        }
    }
}
