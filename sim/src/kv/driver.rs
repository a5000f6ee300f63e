//! Driving the KV clients: choosing each client's next request, sending its attempts to a
//! replica (numbered writes, linearizable reads), and settling it from the replica's answer.

use super::operations::{self, KvRequest, Untranslatable};
use super::sessions::{self, SessionRecord, check};
use super::{ClientSession, KvClient, Pending, PendingKind, READ_ATTEMPT_BIT, SessionPurpose};
use crate::checkers::Violation;
use crate::linearizability::kv::{KvInput, KvOutput};
use crate::linearizability::{ClientId as CheckedClient, Completion, Operation, Timestamp};
use crate::simulator::{EventKind, Simulator};
use crate::workload::Outcome;
use rafting_core::replica::{Applied, Consistency, Input, Numbered, ReplicaError, RequestId};
use rafting_core::store::{Command, Operation as StoreOperation, Outcome as StoreOutcome};
use rafting_core::store::{Query, ReadAnswer, Request, Response, SessionId, StoreError, TenantId};
use rand::Rng;

/// Percent chance, per request chosen, that a client without a session opens one.
const SESSION_OPEN_PERCENT: u32 = 10;
/// Percent chances, per renewal due, that the client abandons or closes its session instead.
const SESSION_ABANDON_PERCENT: u32 = 4;
const SESSION_CLOSE_PERCENT: u32 = 4;
/// With `kv_edge_cases`, percent chance per renewal due that the client overwrites its
/// session's key without the session (once per session).
const SESSION_UNBIND_PERCENT: u32 = 30;
/// With `kv_edge_cases`, client `i` acknowledges its answers `i % ACKNOWLEDGE_LAG_SPAN`
/// requests late, so up to that many answers stay cached in its record.
const ACKNOWLEDGE_LAG_SPAN: u64 = 3;

impl Simulator<'_, '_> {
    pub(crate) fn kv_client(&mut self, client: usize) -> &mut KvClient {
        &mut self.kv.as_mut().expect("KV mode").clients[client]
    }

    /// A client's turn: start its next request if it has none, then send an attempt.
    pub(crate) fn kv_send(&mut self, client: usize) {
        if self.kv_hostile(client) && self.kv_client(client).tenant_id.is_some() {
            self.kv_flood(client);
            return;
        }
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
        let Some(tenant) = state.tenant_id else {
            return PendingKind::JoinTenant;
        };
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
                SessionPurpose::Unbind { key, .. } => StoreOperation::Put {
                    key: key.clone(),
                    value: b"no longer ephemeral".to_vec(),
                    session: None,
                },
                SessionPurpose::Close { session } => StoreOperation::CloseSession {
                    session: SessionId(*session),
                },
            };
            return session_kind(operation, purpose);
        }
        let value = format!("c{}-s{sequence}", self.clients[client].id);
        let keys = operations::KeySet {
            keys_per_directory: self.scenario.workload.keys_per_directory,
            edge_cases: self.scenario.workload.kv_edge_cases,
        };
        let request =
            operations::draw_request_in(&mut self.streams.workload, keys, value.as_bytes())
                .in_tenant(tenant);
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
        let edge_cases = self.scenario.workload.kv_edge_cases;
        if edge_cases && !open.unbound && roll >= 100 - SESSION_UNBIND_PERCENT {
            let key = format!("/eph/c{}/s{}", self.clients[client].id, open.session);
            return Some(SessionPurpose::Unbind {
                session: open.session,
                key,
            });
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

    /// Sends one attempt of the client's pending request to the node it targets. Every
    /// attempt of a write carries the same `(client, sequence)`, so the replica applies it at
    /// most once.
    fn kv_attempt(&mut self, client: usize) {
        let target = self.clients[client].target;
        self.note_request_at(target);
        if !self.reachable(target) {
            self.retry_soon(client, true);
            return;
        }
        let state = self.kv_client(client).clone();
        let pending = state.pending.expect("an attempt has a request");
        let record = state.record.unwrap_or_default();
        let tenant = state.tenant_id.unwrap_or(TenantId::DEFAULT);
        let (operation, sequence) = match pending.kind {
            PendingKind::JoinTenant => {
                self.kv_join_attempt(client, target);
                return;
            }
            PendingKind::Register => {
                let attempt = self.start_write_attempt(client, target, Command::RegisterClient);
                let id = RequestId(attempt);
                let deadline = self.request_deadline(target);
                self.send_write(target, Input::RegisterClient { id, deadline });
                return;
            }
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
            } => (operation, sequence),
        };
        // What the replica will put in the log, as the history's record of this attempt.
        let acknowledged_below = self.kv_acknowledged_below(client, sequence);
        let request = Request::new(record, sequence, operation.clone())
            .in_tenant(tenant)
            .acknowledging_below(acknowledged_below);
        let attempt = self.start_write_attempt(client, target, Command::Request(request));
        let write = Input::Write {
            id: RequestId(attempt),
            tenant,
            operation,
            numbered: Some(Numbered {
                client: record,
                sequence,
                acknowledged_below,
            }),
            deadline: self.request_deadline(target),
        };
        self.send_write(target, write);
    }

    /// How many of its latest answers the client leaves unacknowledged: none, or with
    /// `kv_edge_cases` a lag of its own (so its record caches several answers).
    fn kv_acknowledge_lag(&self, client: usize) -> u64 {
        if self.scenario.workload.kv_edge_cases {
            client as u64 % ACKNOWLEDGE_LAG_SPAN
        } else {
            0
        }
    }

    /// The sequence below which a request of the client's acknowledges its answers.
    fn kv_acknowledged_below(&self, client: usize, sequence: u64) -> u64 {
        sequence.saturating_sub(self.kv_acknowledge_lag(client))
    }

    /// A write refused as stale: only right for a request the client acknowledged, or when
    /// more answers were outstanding than the store caches.
    fn kv_check_stale(&mut self, client: usize, response: &Response) {
        let Err(StoreError::StaleRequest {
            sequence,
            sequence_min,
            ..
        }) = response
        else {
            return;
        };
        let responses_max = self.hosts[0].store_config.responses_per_client_max as u64;
        let result = sessions::retry_answered(
            self.clients[client].id,
            *sequence,
            self.kv_acknowledged_below(client, *sequence),
            *sequence_min,
            self.kv_acknowledge_lag(client) + 1,
            responses_max,
        );
        self.check(result);
    }

    /// Records a write attempt of `command` in the history and starts its client's timeout.
    fn start_write_attempt(&mut self, client: usize, target: usize, command: Command) -> u64 {
        let client_id = self.clients[client].id;
        let attempt = self.history.invoke_with_payload(
            client_id,
            target as u64 + 1,
            self.now_us,
            command.encode(),
        );
        self.start_attempt(client, attempt);
        attempt
    }

    pub(crate) fn start_attempt(&mut self, client: usize, attempt: u64) {
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

    fn kv_read_attempt(&mut self, client: usize, target: usize, query: Query, input: KvInput) {
        if self.scenario.workload.planted_stale_reads {
            // The planted anomaly: no ReadIndex, and the answer comes from the running node
            // that has applied least (a lagging or cut-off follower).
            let stalest = (0..self.hosts.len())
                .filter(|&node| self.hosts[node].running())
                .min_by_key(|&node| (self.hosts[node].last_applied, node))
                .unwrap_or(target);
            let replica = self.hosts[stalest].replica.as_ref();
            let answer = replica.map(|replica| replica.store().read(&query));
            if let Some(answer) = answer {
                self.kv_settle_read(client, &input, &answer);
            }
            return;
        }
        self.kv_send_read(client, target, query);
    }

    /// A new request id outside the workload history's, marked with `bit`.
    pub(crate) fn kv_next_attempt(&mut self, bit: u64) -> u64 {
        let kv = self.kv.as_mut().expect("KV mode");
        kv.next_attempt += 1;
        bit | kv.next_attempt
    }

    /// Sends a linearizable read of `query` as the client's attempt.
    pub(crate) fn kv_send_read(&mut self, client: usize, target: usize, query: Query) {
        let attempt = self.kv_next_attempt(READ_ATTEMPT_BIT);
        self.start_attempt(client, attempt);
        let read = Input::Read {
            id: RequestId(attempt),
            query,
            consistency: Consistency::Linearizable,
            deadline: self.request_deadline(target),
        };
        self.send_client_request(target, vec![read]);
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

    /// A replica answered the client's write attempt: applied, with the store's answer.
    pub(crate) fn kv_write_applied(&mut self, client: usize, attempt: u64, applied: Applied) {
        let index = applied.index.get();
        let outcome = Outcome::Committed { index };
        self.history.complete(attempt, outcome, self.now_us);
        self.trace_client(client, attempt, "committed", Some(index));
        if let Err(error) = &applied.response {
            self.note_tenant_refusal(error);
        }
        self.kv_settle_write(client, &applied.response);
    }

    /// A replica answered the client's read attempt. A store error (a key not found) is an
    /// answer; a replica error is a reason to retry.
    pub(crate) fn kv_read_answer(
        &mut self,
        attempt: u64,
        result: Result<ReadAnswer, ReplicaError>,
    ) {
        let Some(client) = self.client_of_attempt(attempt) else {
            return;
        };
        self.clients[client].current = None;
        let answer = match result {
            Ok(answer) => Ok(answer),
            Err(ReplicaError::Store(error)) => Err(error),
            Err(error) => {
                self.trace_client(client, attempt, "read_failed", None);
                let hint = match error {
                    ReplicaError::NotLeader { leader }
                    | ReplicaError::OutcomeUnknown { leader } => leader,
                    _ => None,
                };
                self.retry_at(client, hint);
                return;
            }
        };
        self.trace_client(client, attempt, "read", None);
        let pending = self.kv_client(client).pending.clone();
        if let Some(PendingKind::JoinTenant) = pending.as_ref().map(|pending| &pending.kind) {
            self.kv_on_tenant_found(client, &answer);
            return;
        }
        if let Some(PendingKind::Kv {
            request: KvRequest::Read { input, .. },
            ..
        }) = pending.map(|pending| pending.kind)
        {
            self.kv_settle_read(client, &input, &answer);
        }
    }

    fn kv_settle_read(
        &mut self,
        client: usize,
        input: &KvInput,
        answer: &Result<ReadAnswer, StoreError>,
    ) {
        let output = operations::read_output(input, answer);
        self.kv_record_operation(client, output);
    }

    /// A write's definite answer arrived: record it and move the client on.
    fn kv_settle_write(&mut self, client: usize, response: &Response) {
        let Some(pending) = self.kv_client(client).pending.clone() else {
            return;
        };
        if let PendingKind::Kv { .. } | PendingKind::Session { .. } = pending.kind {
            self.kv_check_stale(client, response);
        }
        match pending.kind {
            PendingKind::JoinTenant => self.kv_on_tenant_created(client, response),
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
        let tenant = self.kv_client(client).tenant;
        let kv = self.kv.as_mut().expect("KV mode");
        kv.histories
            .entry(tenant)
            .or_default()
            .push(operation)
            .expect("completion never precedes invocation");
        if matches!(request, KvRequest::Write { .. }) {
            self.kv_client(client).next_sequence += 1;
        }
        self.kv_finish(client);
    }

    pub(crate) fn kv_finish(&mut self, client: usize) {
        self.kv_note_latency(client);
        self.kv_client(client).pending = None;
        self.clients[client].unfinished = false;
        let think = self.think_time_ms();
        self.schedule_in_ms(think, EventKind::ClientSend { client });
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
