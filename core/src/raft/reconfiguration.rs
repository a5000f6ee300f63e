//! Membership change at the leader (thesis §4.2): proposing one single-server change at a
//! time, keeping replication in step with the configuration, and stepping down once a change
//! that removes the leader commits. The configuration itself, and why single-server changes
//! are enough, are in [`super::membership`].

use super::entry::EntryPayload;
use super::membership::{Membership, MembershipChange, MembershipError};
use super::message::{Message, TimeoutNow};
use super::node::Node;
use super::output::{ProposalId, ProposalOutcome, ProposeError};
use super::progress::Progress;
use super::role::Role;
use crate::types::{LogIndex, NodeId};

impl Node {
    pub(super) fn on_change_membership(&mut self, id: ProposalId, change: MembershipChange) {
        let membership = match self.check_membership_change(&change) {
            Ok(membership) => membership,
            Err(error) => {
                self.output
                    .proposals
                    .push(ProposalOutcome::Rejected { id, error });
                return;
            }
        };
        let index = self.append_entry(EntryPayload::Configuration(membership));
        self.sync_progress_with_membership();
        self.accept_proposal(id, index);
    }

    /// The configuration after `change`, if this leader may propose it now.
    ///
    /// Two rules make single-server changes safe (Ongaro, raft-dev 2015). **Commit first**: a
    /// leader proposes a change only once an entry of its own term has committed; otherwise a
    /// change it proposes could overlap a change a deposed leader left uncommitted, and two
    /// configurations that differ by two servers could each elect a leader in one term. **One
    /// at a time**: no change while another is uncommitted, so consecutive configurations
    /// always differ by one server.
    fn check_membership_change(
        &self,
        change: &MembershipChange,
    ) -> Result<Membership, ProposeError> {
        self.check_proposal(0)?;
        let Role::Leader(leader) = &self.role else {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        };
        let commit = self.log.commit();
        if !self.config.planted_membership_unguarded {
            if commit < leader.term_start_index {
                return Err(ProposeError::TermNotCommitted);
            }
            if self.log.memberships().newest_index() > commit {
                return Err(ProposeError::ChangeInProgress);
            }
        }
        let next = self.log.membership().apply(change)?;
        if let MembershipChange::Promote { id } = change {
            // A learner far behind would be a voter that cannot help commit anything for a
            // while: with a small cluster, one slow voter can cost the majority.
            let match_index = leader
                .progress
                .get(id)
                .map_or(LogIndex::ZERO, |progress| progress.match_index);
            let window = self.config.entries_per_append_max as u64;
            if commit.get().saturating_sub(match_index.get()) > window {
                return Err(ProposeError::Membership(MembershipError::NotCaughtUp {
                    id: *id,
                    match_index,
                    commit,
                }));
            }
        }
        Ok(next)
    }

    /// The leader replicates to every member of its newest configuration, and only to them:
    /// a new member starts probing from the end of the log, a removed one is forgotten.
    pub(super) fn sync_progress_with_membership(&mut self) {
        let peers = self.peers();
        let last_index = self.log.last_index();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        leader.progress.retain(|peer, _| peers.contains(peer));
        for peer in peers {
            leader
                .progress
                .entry(peer)
                .or_insert_with(|| Progress::new(last_index));
        }
    }

    /// A leader whose removal has committed (and been handed out for applying, so its answer
    /// goes out) steps down. It tells the followers the commit index and hands leadership to
    /// the most caught-up voter, so the cluster need not wait out an election timeout under
    /// its followers' CheckQuorum lease.
    pub(super) fn maybe_step_down_when_removed(&mut self) {
        let own = self.config.id;
        // The newest configuration decides (a leader newly promoted has not applied its own
        // promotion yet); it must be applied here before the leader goes.
        let memberships = self.log.memberships();
        if !self.is_leader()
            || memberships.newest().is_voter(own)
            || memberships.newest_index() > self.log.applied()
        {
            return;
        }
        self.broadcast_heartbeat();
        if let Some(successor) = self.caught_up_voter() {
            let term = self.term;
            self.send(successor, Message::TimeoutNow(TimeoutNow { term }));
        }
        self.become_follower(self.term, None);
    }

    /// The voter (other than this node) whose log matches the leader's to its last entry, the
    /// lowest id first.
    fn caught_up_voter(&self) -> Option<NodeId> {
        let Role::Leader(leader) = &self.role else {
            return None;
        };
        let last_index = self.log.last_index();
        let voters = &self.log.membership().voters;
        leader
            .progress
            .iter()
            .find(|(peer, progress)| voters.contains(peer) && progress.match_index == last_index)
            .map(|(&peer, _)| peer)
    }
}
