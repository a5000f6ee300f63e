//! The leader's own duties: timers (heartbeats, CheckQuorum), proposals, and leadership
//! transfer (thesis §3.10).

use super::entry::EntryPayload;
use super::message::{Message, TimeoutNow};
use super::node::Node;
use super::output::{ProposalId, ProposalOutcome, ProposeError};
use super::quorum::Majority;
use super::role::{Role, Transfer};
use crate::types::{LogIndex, NodeId};

impl Node {
    pub(super) fn fire_leader_timers(&mut self) {
        let now = self.now;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader
            .transfer
            .is_some_and(|transfer| now >= transfer.deadline)
        {
            // The target did not take over in time: keep leading and accept proposals again.
            leader.transfer = None;
        }
        if now >= leader.check_quorum_deadline {
            leader.check_quorum_deadline = now.plus(self.config.election_timeout_ms_min);
            let own = self.config.id;
            let heard = Majority::new(&self.log.membership().voters).reached(|voter| {
                voter == own
                    || leader
                        .progress
                        .get(&voter)
                        .is_some_and(|progress| progress.recent_active)
            });
            for progress in leader.progress.values_mut() {
                progress.recent_active = false;
            }
            if self.config.check_quorum && !heard {
                // We cannot hear a majority: step down rather than keep a lease we cannot
                // renew, so clients go find the real leader (thesis §6.2).
                self.become_follower(self.term, None);
                return;
            }
        }
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if now >= leader.heartbeat_deadline {
            leader.heartbeat_deadline = now.plus(self.config.heartbeat_interval_ms);
            for progress in leader.progress.values_mut() {
                progress.on_heartbeat_interval();
            }
            self.broadcast_heartbeat();
        }
    }

    pub(super) fn on_propose(&mut self, id: ProposalId, data: Vec<u8>) {
        if let Err(error) = self.check_proposal(data.len()) {
            self.output
                .proposals
                .push(ProposalOutcome::Rejected { id, error });
            return;
        }
        let index = self.append_entry(EntryPayload::Command(data.into()));
        self.accept_proposal(id, index);
    }

    /// Records proposal `id`, just appended at `index`, as waiting for its commit, and says
    /// it was accepted.
    pub(super) fn accept_proposal(&mut self, id: ProposalId, index: LogIndex) {
        let term = self.term;
        if let Role::Leader(leader) = &mut self.role {
            leader.pending_proposals.insert(index, (term, id));
        }
        self.output
            .proposals
            .push(ProposalOutcome::Accepted { id, index, term });
    }

    pub(super) fn check_proposal(&self, size: usize) -> Result<(), ProposeError> {
        let Role::Leader(leader) = &self.role else {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        };
        if leader.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        if size > self.config.proposal_bytes_max {
            return Err(ProposeError::TooLarge {
                size,
                max: self.config.proposal_bytes_max,
            });
        }
        let uncommitted = self.log.last_index().get() - self.log.commit().get();
        let uncommitted = usize::try_from(uncommitted).unwrap_or(usize::MAX);
        if uncommitted >= self.config.uncommitted_entries_max
            || self.log.uncommitted_bytes().saturating_add(size) > self.config.uncommitted_bytes_max
        {
            return Err(ProposeError::UncommittedLimit);
        }
        Ok(())
    }

    pub(super) fn on_transfer_leadership(&mut self, to: NodeId) {
        let deadline = self.now.plus(self.config.election_timeout_ms_min);
        if to == self.config.id || !self.log.membership().is_voter(to) {
            return;
        }
        let Some(leader) = self.leader_state() else {
            return;
        };
        leader.transfer = Some(Transfer {
            target: to,
            deadline,
            timeout_now_sent: false,
        });
        self.maybe_send_timeout_now(to);
    }

    /// Once the transfer target has everything, tell it to campaign now.
    pub(super) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let last_index = self.log.last_index();
        let term = self.term;
        let Some(leader) = self.leader_state() else {
            return;
        };
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        let caught_up = leader
            .progress
            .get(&peer)
            .is_some_and(|p| p.match_index == last_index);
        if transfer.target != peer || transfer.timeout_now_sent || !caught_up {
            return;
        }
        transfer.timeout_now_sent = true;
        self.send(peer, Message::TimeoutNow(TimeoutNow { term }));
    }
}
