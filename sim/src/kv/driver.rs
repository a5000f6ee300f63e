//! Driving the KV clients: choosing each client's next request, sending its attempts
//! (proposals through the log, reads through ReadIndex), and settling it from the answer.

use super::operations::{self, KvRequest, Untranslatable};
use super::sessions::{SessionRecord, check};
use super::{
    ClientSession, KvClient, Pending, PendingKind, READ_ATTEMPT_BIT, SessionPurpose,
    TICK_PROPOSAL_BIT,
};
use crate::checkers::{self, Violation};
use crate::linearizability::{ClientId as CheckedClient, Completion, Operation, Timestamp};
use crate::simulator::{EventKind, Simulator};
use crate::workload::Outcome;
use rafting_core::raft::{
    EntryPayload, Input, ProposalId, ProposalOutcome, ProposeError, ReadId, ReadOutcome,
};
use rafting_core::store::{Command, Operation as StoreOperation, Outcome as StoreOutcome};
use rafting_core::store::{Request, Response, SessionId, StoreError};
use rand::Rng;

/// Percent chance, per request chosen, that a client without a session opens one.
const SESSION_OPEN_PERCENT: u32 = 10;
/// Percent chances, per renewal due, that the client abandons or closes its session instead.
const SESSION_ABANDON_PERCENT: u32 = 4;
const SESSION_CLOSE_PERCENT: u32 = 4;

impl Simulator<'_, '_> {
    fn kv_client(&mut self, client: usize) -> &mut KvClient {
        &mut self.kv.as_mut().expect("KV mode").clients[client]
    }

    /// A client's turn: start its next request if it has none, then send an attempt.
    pub(crate) fn kv_send(&mut self, client: usize) {
        if self.kv_client(client).pending.is_none() {
            let kind = self.kv_next_request(client);
            let now = self.now_us;
            self.kv_client(client).pending = Some(Pending {
                kind,
                invoked_us: now,
            });
            self.clients[client].unfinished = true;
            self.maybe_wander(client);
        }
        self.kv_attempt(client);
    }

    /// At the seed's wander probability, a new request goes to a random node (the generator is
    /// drawn only when wandering is on, so other scenarios keep their seeds).
    fn maybe_wander(&mut self, client: usize) {
        let probability = self.params.wander_probability;
        if probability > 0.0 && self.streams.workload.random_bool(probability) {
            self.clients[client].target = self.streams.workload.random_range(0..self.hosts.len());
        }
    }

    /// Registration first, then a due session request, then a random KV request.
    fn kv_next_request(&mut self, client: usize) -> PendingKind {
        let state = self.kv_client(client).clone();
        if state.record.is_none() {
            return PendingKind::Register;
        }
        let sequence = state.next_sequence;
        let session_kind = |operation, purpose| PendingKind::Session {
            sequence,
            operation,
            purpose,
        };
        if let Some(purpose) = self.kv_session_due(client, state.session) {
            let operation = match &purpose {
                SessionPurpose::Open => StoreOperation::OpenSession {
                    ttl_ms: self.scenario.workload.session_ttl_ms,
                },
                SessionPurpose::Bind { session, key } => StoreOperation::Put {
                    key: key.clone(),
                    value: b"ephemeral".to_vec(),
                    session: Some(SessionId(*session)),
                },
                SessionPurpose::KeepAlive { session } => StoreOperation::KeepAlive {
                    session: SessionId(*session),
                },
                SessionPurpose::Close { session } => StoreOperation::CloseSession {
                    session: SessionId(*session),
                },
            };
            return session_kind(operation, purpose);
        }
        let value = format!("c{}-s{sequence}", self.clients[client].id);
        let keys = self.scenario.workload.keys_per_directory;
        let request = operations::draw_request(&mut self.streams.workload, keys, value.as_bytes());
        PendingKind::Kv { sequence, request }
    }

    /// The session request this client should send now, if any. Abandoning happens here:
    /// the client forgets its session and never renews it again.
    fn kv_session_due(
        &mut self,
        client: usize,
        session: Option<ClientSession>,
    ) -> Option<SessionPurpose> {
        let random = &mut self.streams.workload;
        let Some(open) = session else {
            return (random.random_range(0..100) < SESSION_OPEN_PERCENT)
                .then_some(SessionPurpose::Open);
        };
        if !open.bound {
            let key = format!("/eph/c{}/s{}", self.clients[client].id, open.session);
            return Some(SessionPurpose::Bind {
                session: open.session,
                key,
            });
        }
        let renew_every_us = self.scenario.workload.session_ttl_ms * 1000 / 4;
        if self.now_us < open.renewal_invoked_us + renew_every_us {
            return None;
        }
        let roll = random.random_range(0..100);
        if roll < SESSION_ABANDON_PERCENT {
            let now = self.now_us;
            if let Some(record) = self.kv_sessions().get_mut(&open.session) {
                record.abandoned_at_us = Some(now);
            }
            self.kv_client(client).session = None;
            return None;
        }
        if roll < SESSION_ABANDON_PERCENT + SESSION_CLOSE_PERCENT {
            if let Some(record) = self.kv_sessions().get_mut(&open.session) {
                record.closing = true;
            }
            return Some(SessionPurpose::Close {
                session: open.session,
            });
        }
        Some(SessionPurpose::KeepAlive {
            session: open.session,
        })
    }

    fn kv_sessions(&mut self) -> &mut std::collections::BTreeMap<u64, SessionRecord> {
        &mut self.kv.as_mut().expect("KV mode").sessions
    }

    /// Sends one attempt of the client's pending request to the node it targets.
    fn kv_attempt(&mut self, client: usize) {
        let target = self.clients[client].target;
        self.note_request_at(target);
        if !self.hosts[target].running() {
            self.retry_soon(client, true);
            return;
        }
        let state = self.kv_client(client).clone();
        let pending = state.pending.expect("an attempt has a request");
        let record = state.record.unwrap_or_default();
        let command = match pending.kind {
            PendingKind::Register => Command::RegisterClient,
            PendingKind::Kv {
                request: KvRequest::Read { query, input },
                ..
            } => {
                self.kv_read_attempt(client, target, query, input);
                return;
            }
            PendingKind::Kv {
                sequence,
                request: KvRequest::Write { operation, .. },
            }
            | PendingKind::Session {
                sequence,
                operation,
                ..
            } => Command::Request(
                Request::new(record, sequence, operation).acknowledging_below(sequence),
            ),
        };
        let client_id = self.clients[client].id;
        let data = command.encode();
        let attempt = self.history.invoke_with_payload(
            client_id,
            target as u64 + 1,
            self.now_us,
            data.clone(),
        );
        self.start_attempt(client, attempt);
        let id = ProposalId(attempt);
        self.step_node(target, Input::Propose { id, data });
    }

    fn start_attempt(&mut self, client: usize, attempt: u64) {
        self.clients[client].current = Some(attempt);
        self.trace_client(client, attempt, "invoke", None);
        let timeout = self.scenario.workload.request_timeout_ms;
        self.schedule_in_ms(
            timeout,
            EventKind::ClientTimeout {
                client,
                operation: attempt,
            },
        );
    }

    fn kv_read_attempt(
        &mut self,
        client: usize,
        target: usize,
        query: rafting_core::store::Query,
        input: crate::linearizability::kv::KvInput,
    ) {
        if self.scenario.workload.planted_stale_reads {
            // The planted anomaly: no ReadIndex, and the answer comes from the running node
            // that has applied least (a lagging or cut-off follower).
            let stalest = (0..self.hosts.len())
                .filter(|&node| self.hosts[node].running())
                .min_by_key(|&node| (self.hosts[node].last_applied, node))
                .unwrap_or(target);
            let answer = self.hosts[stalest].store.read(&query);
            self.kv_settle_read(client, &input, &answer);
            return;
        }
        let kv = self.kv.as_mut().expect("KV mode");
        kv.next_read += 1;
        let read = kv.next_read;
        self.start_attempt(client, READ_ATTEMPT_BIT | read);
        self.step_node(target, Input::Read { id: ReadId(read) });
    }

    pub(crate) fn kv_timeout(&mut self, client: usize, attempt: u64) {
        self.events += 1;
        if attempt & READ_ATTEMPT_BIT == 0 {
            self.history
                .complete(attempt, Outcome::Unknown, self.now_us);
        }
        self.clients[client].current = None;
        self.trace_client(client, attempt, "timeout", None);
        self.retry_soon(client, true);
    }

    fn client_of_attempt(&self, attempt: u64) -> Option<usize> {
        self.clients
            .iter()
            .position(|client| client.current == Some(attempt))
    }

    pub(crate) fn kv_proposal_outcome(&mut self, node: usize, outcome: ProposalOutcome) {
        let attempt = match &outcome {
            ProposalOutcome::Accepted { id, .. }
            | ProposalOutcome::Committed { id, .. }
            | ProposalOutcome::Rejected { id, .. }
            | ProposalOutcome::Unknown { id, .. } => id.0,
        };
        if attempt & TICK_PROPOSAL_BIT != 0 {
            return;
        }
        let Some(client) = self.client_of_attempt(attempt) else {
            return;
        };
        match outcome {
            ProposalOutcome::Accepted { index, term, .. } => {
                if let Some(record) = self.history.get_mut(attempt) {
                    record.accepted_at = Some((index.get(), term.get()));
                }
            }
            ProposalOutcome::Committed { index, .. } => {
                let outcome = Outcome::Committed { index: index.get() };
                self.history.complete(attempt, outcome, self.now_us);
                let payload = self.history.get(attempt).map(|op| op.payload.clone());
                let digest = checkers::digest(&EntryPayload::Command(payload.unwrap_or_default()));
                let id = self.hosts[node].id;
                let result = checkers::acknowledged_write_kept(&mut self.record, id, index, digest);
                self.check(result);
                self.clients[client].current = None;
                self.trace_client(client, attempt, "committed", Some(index.get()));
                let response = self.hosts[node].responses.get(&index).cloned();
                match response {
                    Some(response) => self.kv_settle_write(client, &response),
                    None => self.violate(missing_response(node, index.get())),
                }
            }
            ProposalOutcome::Rejected { error, .. } => {
                self.history.complete(attempt, Outcome::Failed, self.now_us);
                self.clients[client].current = None;
                self.trace_client(client, attempt, "rejected", None);
                let hint = match error {
                    ProposeError::NotLeader { leader_hint } => leader_hint,
                    _ => None,
                };
                self.kv_retry_at(client, hint);
            }
            ProposalOutcome::Unknown { leader_hint, .. } => {
                self.history
                    .complete(attempt, Outcome::Unknown, self.now_us);
                self.clients[client].current = None;
                self.trace_client(client, attempt, "unknown", None);
                self.kv_retry_at(client, leader_hint);
            }
        }
    }

    fn kv_retry_at(&mut self, client: usize, hint: Option<rafting_core::NodeId>) {
        match hint {
            Some(leader) => {
                self.clients[client].target = leader.get() as usize - 1;
                self.retry_soon(client, false);
            }
            None => self.retry_soon(client, true),
        }
    }

    pub(crate) fn kv_read_outcome(&mut self, node: usize, outcome: ReadOutcome) {
        let read = match &outcome {
            ReadOutcome::Ready { id, .. } | ReadOutcome::Failed { id, .. } => id.0,
        };
        let Some(client) = self.client_of_attempt(READ_ATTEMPT_BIT | read) else {
            return;
        };
        self.clients[client].current = None;
        match outcome {
            ReadOutcome::Ready { index, .. } => {
                self.trace_client(client, READ_ATTEMPT_BIT | read, "read", Some(index.get()));
                let pending = self.kv_client(client).pending.clone();
                let Some(PendingKind::Kv {
                    request: KvRequest::Read { query, input },
                    ..
                }) = pending.map(|pending| pending.kind)
                else {
                    return;
                };
                let answer = self.hosts[node].store.read(&query);
                self.kv_settle_read(client, &input, &answer);
            }
            ReadOutcome::Failed { error, .. } => {
                self.trace_client(client, READ_ATTEMPT_BIT | read, "read_failed", None);
                let hint = match error {
                    rafting_core::raft::ReadError::NotLeader { leader_hint } => leader_hint,
                    rafting_core::raft::ReadError::PendingLimit => None,
                };
                self.kv_retry_at(client, hint);
            }
        }
    }

    fn kv_settle_read(
        &mut self,
        client: usize,
        input: &crate::linearizability::kv::KvInput,
        answer: &Result<rafting_core::store::ReadAnswer, StoreError>,
    ) {
        let output = operations::read_output(input, answer);
        self.kv_record_operation(client, output);
    }

    /// A write's definite answer arrived: record it and move the client on.
    fn kv_settle_write(&mut self, client: usize, response: &Response) {
        let Some(pending) = self.kv_client(client).pending.clone() else {
            return;
        };
        match pending.kind {
            PendingKind::Register => {
                if let Ok(StoreOutcome::ClientRegistered { client: record }) = response {
                    let state = self.kv_client(client);
                    state.record = Some(*record);
                    state.next_sequence = 1;
                }
                self.kv_finish(client);
            }
            PendingKind::Kv { request, .. } => {
                let output = operations::write_output(request.input(), response);
                self.kv_record_operation(client, output);
            }
            PendingKind::Session { purpose, .. } => {
                self.kv_on_session_answer(client, &purpose, pending.invoked_us, response);
                self.kv_client(client).next_sequence += 1;
                self.kv_finish(client);
            }
        }
    }

    /// Adds the client's finished KV request to the checked history.
    fn kv_record_operation(&mut self, client: usize, output: Result<KvOutput, Untranslatable>) {
        let Some(pending) = self.kv_client(client).pending.clone() else {
            return;
        };
        let PendingKind::Kv { request, .. } = pending.kind else {
            return;
        };
        let completion = match output {
            Ok(output) => Completion::Returned {
                output,
                completed_at: Timestamp(self.now_us),
            },
            Err(Untranslatable::Undecided(_)) => {
                self.kv.as_mut().expect("KV mode").undecided += 1;
                Completion::Unknown
            }
            Err(Untranslatable::Mismatch(detail)) => {
                self.violate(answer_mismatch(detail));
                Completion::Unknown
            }
        };
        let operation = Operation {
            client: CheckedClient(self.clients[client].id),
            input: request.input().clone(),
            invoked_at: Timestamp(pending.invoked_us),
            completion,
        };
        let kv = self.kv.as_mut().expect("KV mode");
        kv.history
            .push(operation)
            .expect("completion never precedes invocation");
        if matches!(request, KvRequest::Write { .. }) {
            self.kv_client(client).next_sequence += 1;
        }
        self.kv_finish(client);
    }

    fn kv_finish(&mut self, client: usize) {
        self.kv_client(client).pending = None;
        self.clients[client].unfinished = false;
        let think = self.think_time_ms();
        self.schedule_in_ms(think, EventKind::ClientSend { client });
    }
}

use crate::linearizability::kv::KvOutput;

fn missing_response(node: usize, index: u64) -> Violation {
    Violation {
        check: check::LINEARIZABILITY,
        at_us: 0,
        nodes: vec![node as u64 + 1],
        index: Some(index),
        term: None,
        detail: format!("index {index} reported committed but not applied in the same step"),
    }
}

fn answer_mismatch(detail: String) -> Violation {
    Violation {
        check: check::LINEARIZABILITY,
        at_us: 0,
        nodes: Vec::new(),
        index: None,
        term: None,
        detail: format!("a store answer does not fit its request: {detail}"),
    }
}
