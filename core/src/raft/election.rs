//! Elections: timeouts, PreVote, RequestVote, and becoming leader (Raft §5.2, thesis §9.6).

use super::entry::EntryPayload;
use super::message::{Message, PreVote, PreVoteResponse, RequestVote, RequestVoteResponse};
use super::node::Node;
use super::progress::Progress;
use super::quorum::{Majority, VoteResult};
use super::role::{LeaderState, ReadQueue, Role};
use crate::types::{NodeId, Term};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

impl Node {
    pub(super) fn on_election_timeout(&mut self) {
        if !self.may_vote() || !self.is_voter() {
            // Catching up after an empty-disk start, or a learner or a removed member: wait
            // for a leader, never campaign.
            self.reset_election_deadline();
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// A follower whose leader is reported gone stops waiting for it: it forgets the leader
    /// and its lease (so it will help a peer's election) and moves its election timer into the
    /// next heartbeat interval. The survivors learn of the loss at about the same moment, so
    /// each takes its own slot of that interval, by rank among them (with a little jitter):
    /// the first has its election settled before the next starts, and nobody splits the vote.
    pub(super) fn on_peer_unreachable(&mut self, peer: NodeId) {
        if !matches!(self.role, Role::Follower) || self.leader != Some(peer) {
            return;
        }
        self.leader = None;
        self.leader_contact = None;
        let voters = self.log.membership().voters.clone();
        let survivors = voters.iter().filter(|&&id| id != peer);
        let rank = survivors
            .clone()
            .position(|&id| id == self.config.id)
            .unwrap_or(0) as u64;
        let slot = (self.config.heartbeat_interval_ms / survivors.count().max(1) as u64).max(2);
        let delay = rank * slot + self.rng.random_range(0..slot / 2);
        self.election_deadline = self.election_deadline.min(self.now.plus(delay));
    }

    /// Asks every peer whether it would vote for us in the next term, without changing ours.
    fn become_pre_candidate(&mut self) {
        let mut granted = BTreeSet::new();
        granted.insert(self.config.id);
        self.role = Role::PreCandidate {
            granted,
            rejected: BTreeSet::new(),
        };
        self.leader = None;
        self.reset_election_deadline();
        let request = PreVote {
            term: self.term.next(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        };
        for peer in self.voting_peers() {
            self.send(peer, Message::PreVote(request.clone()));
        }
        if self.tally() == VoteResult::Won {
            self.become_candidate(false);
        }
    }

    /// Starts an election in a new term and votes for itself. The requests for votes leave,
    /// and the own vote counts, only once the batch holding the new term and vote is durable
    /// (see [`Node::on_persisted`]). Were the requests sent at once, the others' votes alone
    /// could make this node leader of a term its own disk does not hold: a crash would bring
    /// it back in the old term, its voters would grant the same term again (they voted for
    /// it), and it would lead one term twice with different entries at one index.
    pub(super) fn become_candidate(&mut self, transfer: bool) {
        let term = self.term.next();
        self.become_follower(term, None);
        self.voted_for = Some(self.config.id);
        let self_vote_batch = self.current_batch();
        self.role = Role::Candidate {
            granted: BTreeSet::new(),
            rejected: BTreeSet::new(),
            self_vote_batch,
        };
        let request = RequestVote {
            term: self.term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            transfer,
        };
        for peer in self.voting_peers() {
            self.send_when_durable(peer, Message::RequestVote(request.clone()));
        }
    }

    /// Whether we could vote for `candidate` in `term` (the vote itself aside from the log).
    fn can_vote_for(&self, candidate: NodeId, term: Term, pre_vote_term_ahead: bool) -> bool {
        if !self.may_vote() || term <= self.vote_floor {
            return false;
        }
        self.voted_for == Some(candidate)
            || (self.voted_for.is_none() && self.leader.is_none())
            || pre_vote_term_ahead
    }

    pub(super) fn on_pre_vote(&mut self, from: NodeId, request: PreVote) {
        let term_ahead = request.term > self.term;
        let granted = self.can_vote_for(from, request.term, term_ahead)
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);
        // A granted pre-vote echoes the asked term so the pre-candidate can match it up.
        let term = if granted { request.term } else { self.term };
        self.send(
            from,
            Message::PreVoteResponse(PreVoteResponse { term, granted }),
        );
    }

    pub(super) fn on_pre_vote_response(&mut self, from: NodeId, response: PreVoteResponse) {
        let Role::PreCandidate { granted, rejected } = &mut self.role else {
            return;
        };
        if response.granted {
            if response.term != self.term.next() {
                return;
            }
            granted.insert(from);
        } else {
            rejected.insert(from);
        }
        match self.tally() {
            VoteResult::Won => self.become_candidate(false),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    pub(super) fn on_request_vote(&mut self, from: NodeId, request: RequestVote) {
        let granted = self.can_vote_for(from, request.term, false)
            && self
                .log
                .is_up_to_date(request.last_log_index, request.last_log_term);
        if granted {
            self.voted_for = Some(from);
            self.reset_election_deadline();
        }
        let response = RequestVoteResponse {
            term: self.term,
            granted,
        };
        // The vote must be durable before the candidate hears of it (Raft §5.2, Figure 2).
        self.send_when_durable(from, Message::RequestVoteResponse(response));
    }

    /// Records a vote for or against this candidate (its own vote included).
    pub(super) fn on_vote(&mut self, from: NodeId, granted: bool) {
        let Role::Candidate {
            granted: yes,
            rejected: no,
            ..
        } = &mut self.role
        else {
            return;
        };
        if granted {
            yes.insert(from);
        } else {
            no.insert(from);
        }
        match self.tally() {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    fn tally(&self) -> VoteResult {
        let (granted, rejected) = match &self.role {
            Role::PreCandidate { granted, rejected } => (granted, rejected),
            Role::Candidate {
                granted, rejected, ..
            } => (granted, rejected),
            _ => return VoteResult::Pending,
        };
        Majority::new(&self.log.membership().voters).vote_result(granted, rejected)
    }

    fn become_leader(&mut self) {
        let next_index = self.log.last_index().next();
        let progress: BTreeMap<NodeId, Progress> = self
            .peers()
            .into_iter()
            .map(|peer| (peer, Progress::new(next_index)))
            .collect();
        self.leader = Some(self.config.id);
        self.leader_contact = Some(self.now);
        self.role = Role::Leader(Box::new(LeaderState {
            progress,
            heartbeat_deadline: self.now.plus(self.config.heartbeat_interval_ms),
            check_quorum_deadline: self.now.plus(self.config.election_timeout_ms_min),
            term_start_index: next_index,
            pending_proposals: BTreeMap::new(),
            reads: ReadQueue::default(),
            transfer: None,
        }));
        // The no-op lets the leader commit entries of earlier terms (Raft §5.4.2, §8).
        let index = self.append_entry(EntryPayload::Noop);
        debug_assert_eq!(index, next_index);
    }

    /// Leadership transfer: the old leader asks us to campaign at once, skipping PreVote.
    pub(super) fn on_timeout_now(&mut self, from: NodeId) {
        if matches!(self.role, Role::Leader(_))
            || self.leader != Some(from)
            || !self.may_vote()
            || !self.is_voter()
        {
            return;
        }
        self.become_candidate(true);
    }
}
