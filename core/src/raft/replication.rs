//! Log replication and commit: AppendEntries on both sides, heartbeats, and the leader's
//! commit rule (Raft §5.3, §5.4.2).

use super::entry::Entry;
use super::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse, Message,
};
use super::node::Node;
use super::quorum::Majority;
use super::role::Role;
use crate::types::{LogIndex, NodeId, Term};

impl Node {
    // ---- follower side ----

    pub(super) fn on_append_entries(&mut self, from: NodeId, request: AppendEntries) {
        match self.role {
            Role::Leader(_) => return, // Two leaders in one term cannot happen; ignore.
            Role::Follower => {}
            _ => self.become_follower(self.term, Some(from)),
        }
        self.heard_from_leader(from);
        let Some(request) = self.trim_committed_prefix(request) else {
            return;
        };
        if !well_formed(&request) {
            return;
        }
        if let Some(catch_up) = &mut self.catch_up {
            catch_up.target.get_or_insert(request.leader_commit);
        }
        if !self
            .log
            .matches(request.prev_log_index, request.prev_log_term)
        {
            self.reject_append(from, request.prev_log_index);
            return;
        }
        let last_new_index = self.merge_entries(request.prev_log_index, request.entries);
        self.log
            .commit_to(request.leader_commit.min(last_new_index));
        let outcome = AppendOutcome::Accepted {
            match_index: last_new_index,
        };
        let response = AppendEntriesResponse {
            term: self.term,
            outcome,
        };
        // The acknowledgement promises the entries are durable here: it waits for the write.
        self.send_when_durable(from, Message::AppendEntriesResponse(response));
    }

    fn heard_from_leader(&mut self, leader: NodeId) {
        self.leader = Some(leader);
        self.leader_contact = Some(self.now);
        self.reset_election_deadline();
    }

    /// Entries at or below our commit index are already known to match the leader's log, so
    /// an append that starts before the commit index is cut down to what follows it. Returns
    /// `None` when nothing is left to check and the request was fully answered.
    fn trim_committed_prefix(&mut self, mut request: AppendEntries) -> Option<AppendEntries> {
        let commit = self.log.commit();
        if request.prev_log_index >= commit {
            return Some(request);
        }
        let skip = commit.get() - request.prev_log_index.get();
        let skip = usize::try_from(skip)
            .unwrap_or(usize::MAX)
            .min(request.entries.len());
        request.entries.drain(..skip);
        request.prev_log_index = commit;
        request.prev_log_term = self.log.term_at(commit).unwrap_or(Term::ZERO);
        if request
            .entries
            .first()
            .is_some_and(|entry| entry.index != commit.next())
        {
            return None; // Indexes were not contiguous: malformed.
        }
        Some(request)
    }

    /// Appends `entries` after `prev_index`, replacing a conflicting suffix. Returns the index
    /// of the last entry the request covered.
    fn merge_entries(&mut self, prev_index: LogIndex, entries: Vec<Entry>) -> LogIndex {
        let last_new_index = LogIndex(prev_index.get() + entries.len() as u64);
        let mut pending = entries.into_iter().peekable();
        while let Some(entry) = pending.peek() {
            match self.log.term_at(entry.index) {
                Some(term) if term == entry.term => {
                    pending.next();
                }
                Some(_) => {
                    // Conflict: everything from here on is replaced by the leader's entries.
                    self.log.truncate_from(entry.index);
                    break;
                }
                None => break,
            }
        }
        for entry in pending {
            self.mark_unsaved(entry.index);
            self.log.append(entry);
        }
        last_new_index
    }

    fn reject_append(&mut self, to: NodeId, rejected_prev_index: LogIndex) {
        let (hint_index, hint_term) = if rejected_prev_index > self.log.last_index() {
            (self.log.last_index().next(), None)
        } else {
            let term = self.log.term_at(rejected_prev_index);
            (self.log.first_index_of_term_at(rejected_prev_index), term)
        };
        let outcome = AppendOutcome::Rejected {
            rejected_prev_index,
            hint_index,
            hint_term,
        };
        let response = AppendEntriesResponse {
            term: self.term,
            outcome,
        };
        self.send(to, Message::AppendEntriesResponse(response));
    }

    pub(super) fn on_heartbeat(&mut self, from: NodeId, request: Heartbeat) {
        match self.role {
            Role::Leader(_) => return,
            Role::Follower => {}
            _ => self.become_follower(self.term, Some(from)),
        }
        self.heard_from_leader(from);
        // The leader clamps `commit` to what it knows we match, so it is safe to adopt.
        self.log.commit_to(request.commit);
        let response = HeartbeatResponse {
            term: self.term,
            round: request.round,
            last_log_index: self.log.last_index(),
        };
        self.send(from, Message::HeartbeatResponse(response));
    }

    // ---- leader side ----

    pub(super) fn on_append_entries_response(
        &mut self,
        from: NodeId,
        response: AppendEntriesResponse,
    ) {
        let last_index = self.log.last_index();
        let hint = match response.outcome {
            AppendOutcome::Rejected {
                hint_index,
                hint_term,
                ..
            } => Some(self.next_index_guess(hint_index, hint_term)),
            AppendOutcome::Accepted { .. } => None,
        };
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        match response.outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > last_index {
                    return; // Claims entries we never had: not an answer to us.
                }
                progress.on_accepted(match_index);
            }
            AppendOutcome::Rejected {
                rejected_prev_index,
                hint_index,
                ..
            } => {
                let guess = hint.unwrap_or(rejected_prev_index);
                if !progress.on_disk_lost(rejected_prev_index, hint_index) {
                    progress.on_rejected(rejected_prev_index, guess);
                }
            }
        }
        self.maybe_send_timeout_now(from);
    }

    /// Fast backtracking (thesis §5.3 optimisation): from the follower's hint, the next index
    /// to try, skipping a whole conflicting term at once.
    fn next_index_guess(&self, hint_index: LogIndex, hint_term: Option<Term>) -> LogIndex {
        match hint_term.and_then(|term| self.log.last_index_of_term(term)) {
            Some(last_of_term) => last_of_term.next(),
            None => hint_index,
        }
    }

    pub(super) fn on_heartbeat_response(&mut self, from: NodeId, response: HeartbeatResponse) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(progress) = leader.progress.get_mut(&from) else {
            return;
        };
        progress.recent_active = true;
        if response.round <= leader.reads.round {
            progress.round_acknowledged = progress.round_acknowledged.max(response.round);
        }
        if progress.match_index < self.log.last_index() {
            progress.unpause();
        }
    }

    /// Sends each follower whatever it is owed and the window allows: new entries while
    /// replicating, one probe while probing.
    pub(super) fn leader_send_pending(&mut self) {
        for peer in self.peers() {
            self.send_appends_to(peer);
        }
    }

    fn send_appends_to(&mut self, peer: NodeId) {
        if self.send_snapshot_to(peer) {
            return;
        }
        let entries_max = self.config.entries_per_append_max;
        let bytes_max = self.config.bytes_per_append_max;
        let (messages_max, inflight_bytes_max) = (
            self.config.inflight_messages_max,
            self.config.inflight_bytes_max,
        );
        loop {
            let term = self.term;
            let commit = self.log.commit();
            let last_index = self.log.last_index();
            let Role::Leader(leader) = &mut self.role else {
                return;
            };
            let Some(progress) = leader.progress.get_mut(&peer) else {
                return;
            };
            let probing = matches!(progress.state, super::progress::ProgressState::Probe { .. });
            let has_new = progress.next_index <= last_index;
            if !progress.can_send(messages_max, inflight_bytes_max) || (!probing && !has_new) {
                return;
            }
            let prev_log_index = progress.next_index.prev();
            let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
                // next_index ran past our log (cannot happen; be safe): restart probing.
                progress.become_probe();
                return;
            };
            let entries = self
                .log
                .entries_from(progress.next_index, entries_max, bytes_max);
            let bytes: usize = entries.iter().map(Entry::size_bytes).sum();
            let last_sent = entries.last().map_or(prev_log_index, |entry| entry.index);
            progress.on_sent(last_sent, bytes, entries.len());
            let request = AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: commit,
            };
            self.send(peer, Message::AppendEntries(request));
            if probing {
                return;
            }
        }
    }

    /// Sends a heartbeat to every follower, carrying the commit index each may adopt and the
    /// current read round.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let term = self.term;
        let commit = self.log.commit();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let round = leader.reads.round;
        let messages: Vec<(NodeId, Heartbeat)> = leader
            .progress
            .iter()
            .map(|(&peer, progress)| {
                (
                    peer,
                    Heartbeat {
                        term,
                        commit: progress.match_index.min(commit),
                        round,
                    },
                )
            })
            .collect();
        for (peer, heartbeat) in messages {
            self.send(peer, Message::Heartbeat(heartbeat));
        }
    }

    /// Raft §5.4.2: the leader commits the highest index a quorum has made durable, but only
    /// if that entry is of its own term; earlier entries then commit with it.
    pub(super) fn leader_maybe_commit(&mut self) {
        let own_durable = self.log.durable();
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let own = self.config.id;
        let candidate = Majority::new(&self.log.membership().voters).agreed(|voter| {
            if voter == own {
                own_durable
            } else {
                leader
                    .progress
                    .get(&voter)
                    .map_or(LogIndex::ZERO, |progress| progress.match_index)
            }
        });
        if candidate > self.log.commit() && self.log.term_at(candidate) == Some(self.term) {
            self.log.commit_to(candidate);
            self.on_commit_advanced();
        }
    }
}

/// An append is well formed when its entries follow `prev_log_index` contiguously, their terms
/// never decrease, start no lower than `prev_log_term`, and never exceed the sender's term.
/// Anything else did not come from a correct leader and is ignored.
fn well_formed(request: &AppendEntries) -> bool {
    let mut expected_index = request.prev_log_index.next();
    let mut previous_term = request.prev_log_term;
    if request.prev_log_term > request.term {
        return false;
    }
    for entry in &request.entries {
        if entry.index != expected_index || entry.term < previous_term || entry.term > request.term
        {
            return false;
        }
        expected_index = expected_index.next();
        previous_term = entry.term;
    }
    request
        .prev_log_index
        .get()
        .checked_add(request.entries.len() as u64)
        .is_some()
}
