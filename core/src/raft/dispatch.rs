//! The message dispatcher: checks the term once, then hands the message to its handler.

use super::message::{
    AppendEntriesResponse, AppendOutcome, Envelope, HeartbeatResponse, InstallSnapshotResponse,
    Message, PreVoteResponse,
};
use super::node::Node;
use super::role::Role;
use crate::types::NodeId;

impl Node {
    pub(super) fn on_message(&mut self, envelope: Envelope) {
        let Envelope { from, to, message } = envelope;
        if to != self.config.id || from == self.config.id || from == NodeId::ZERO {
            // Misaddressed or looped back: not ours to answer. A sender outside our
            // configuration is still heard (thesis §4.1: a server processes requests without
            // consulting its configuration): it may be a leader that added us, or a voter
            // added by a change we have not received yet. Only voters of our configuration
            // count in any quorum, and a removed member cannot win a pre-vote.
            return;
        }
        let term = message.term();
        if term > self.term {
            if !self.on_higher_term(from, &message) {
                return;
            }
        } else if term < self.term {
            self.on_stale_term(from, &message);
            return;
        }
        match message {
            Message::PreVote(request) => self.on_pre_vote(from, request),
            Message::PreVoteResponse(response) => self.on_pre_vote_response(from, response),
            Message::RequestVote(request) => self.on_request_vote(from, request),
            Message::RequestVoteResponse(response) => {
                if matches!(self.role, Role::Candidate { .. }) && response.term == self.term {
                    self.on_vote(from, response.granted);
                }
            }
            Message::AppendEntries(request) => self.on_append_entries(from, request),
            Message::AppendEntriesResponse(response) => {
                self.on_append_entries_response(from, response)
            }
            Message::Heartbeat(request) => self.on_heartbeat(from, request),
            Message::HeartbeatResponse(response) => self.on_heartbeat_response(from, response),
            Message::TimeoutNow(_) => self.on_timeout_now(from),
            Message::InstallSnapshot(request) => self.on_install_snapshot(from, request),
            Message::InstallSnapshotResponse(response) => {
                self.on_install_snapshot_response(from, response)
            }
        }
    }

    /// A message from a newer term. Returns whether to go on and handle it.
    fn on_higher_term(&mut self, from: NodeId, message: &Message) -> bool {
        match message {
            // A pre-vote names a term its sender has not entered; nobody adopts it.
            Message::PreVote(_) => !self.in_leader_lease(),
            // A granted pre-vote echoes the term we would campaign in.
            Message::PreVoteResponse(response) if response.granted => true,
            Message::RequestVote(request) if !request.transfer && self.in_leader_lease() => {
                // CheckQuorum lease: we heard from a live leader less than an election timeout
                // ago, so this candidate is disruptive (it was partitioned, or its clock ran
                // fast). Ignore it without adopting its term (thesis §4.2.3).
                false
            }
            Message::AppendEntries(_) | Message::Heartbeat(_) | Message::InstallSnapshot(_) => {
                self.become_follower(message.term(), Some(from));
                true
            }
            _ => {
                self.become_follower(message.term(), None);
                true
            }
        }
    }

    /// A message from an older term. Most are ignored; a few get an answer that tells the
    /// sender it is behind, so a deposed leader or stale pre-candidate learns of the new term.
    fn on_stale_term(&mut self, from: NodeId, message: &Message) {
        let term = self.term;
        match message {
            Message::AppendEntries(request) if self.config.check_quorum || self.config.pre_vote => {
                // Without this, a leader isolated and then reconnected under PreVote could never
                // learn the new term: nobody would answer it and it would never campaign.
                let outcome = AppendOutcome::Rejected {
                    rejected_prev_index: request.prev_log_index,
                    hint_index: self.log.last_index().next(),
                    hint_term: None,
                };
                let response = AppendEntriesResponse { term, outcome };
                self.send(from, Message::AppendEntriesResponse(response));
            }
            Message::Heartbeat(request) if self.config.check_quorum || self.config.pre_vote => {
                let last_log_index = self.log.last_index();
                let response = HeartbeatResponse {
                    term,
                    round: request.round,
                    last_log_index,
                };
                self.send(from, Message::HeartbeatResponse(response));
            }
            Message::InstallSnapshot(request)
                if self.config.check_quorum || self.config.pre_vote =>
            {
                // A deposed leader still streaming a snapshot learns the new term.
                let response = InstallSnapshotResponse {
                    term,
                    index: request.index,
                    snapshot_term: request.snapshot_term,
                    next_offset: 0,
                    installed: false,
                };
                self.send(from, Message::InstallSnapshotResponse(response));
            }
            Message::PreVote(_) => {
                let response = PreVoteResponse {
                    term,
                    granted: false,
                };
                self.send(from, Message::PreVoteResponse(response));
            }
            _ => {}
        }
    }

    /// Under CheckQuorum, a node that heard from a leader less than the minimum election
    /// timeout ago (or is the leader) refuses to help anyone else start an election.
    pub(super) fn in_leader_lease(&self) -> bool {
        if !self.config.check_quorum {
            return false;
        }
        if matches!(self.role, Role::Leader(_)) {
            return true;
        }
        match (self.leader, self.leader_contact) {
            (Some(_), Some(contact)) => {
                self.now.since(contact) < self.config.election_timeout_ms_min
            }
            _ => false,
        }
    }
}
