//! Driving the simulated clients as clients of each host's replica, through the request
//! interface the runtime's HTTP API uses: sending writes and reads, timing them out, and
//! turning the replica's answers into history records and client decisions.
//!
//! An opaque-workload request is a store write without numbering (the replica numbers it on
//! its node's own client record, as it does a REST write without the exactly-once headers):
//! `put /w/c<client>` with the request's unique payload as the value. Every answer that says
//! "applied at index i" is checked against the answering node's log: the entry at `i` must be
//! the request that was answered (the replica's proposal table matched it right), and no other
//! entry may ever commit there (`acknowledged_write_kept`).

use crate::checkers::{self, Violation, check};
use crate::network::MICROS_PER_MS;
use crate::simulator::{EventKind, Phase, Simulator};
use crate::trace::TraceEvent;
use crate::workload::Outcome;
use rafting_core::raft::EntryPayload;
use rafting_core::replica::{Answer, Applied, Input, ReplicaError, RequestId};
use rafting_core::store::{Command, Operation as StoreOperation, TenantId};
use rafting_core::{LogIndex, Millis, NodeId};
use rand::Rng;

impl Simulator<'_, '_> {
    pub(crate) fn trace_client(
        &mut self,
        client: usize,
        operation: u64,
        event: &'static str,
        index: Option<u64>,
    ) {
        if self.tracer.enabled() {
            let node = self.clients[client].target as u64 + 1;
            let client = self.clients[client].id;
            let now = self.now_us;
            self.tracer.record(
                now,
                TraceEvent::Client {
                    client,
                    op: operation,
                    event,
                    node,
                    index,
                },
            );
        }
    }

    /// Coverage: a request reaching a node that leads a term older than the latest leader's.
    pub(crate) fn note_request_at(&mut self, target: usize) {
        if self.at_deposed_leader(target) {
            self.coverage
                .reach(crate::coverage::REQUEST_AT_DEPOSED_LEADER, self.now_us);
        }
    }

    /// The deadline a request sent now to `target` carries, on that host's own clock: the
    /// client's timeout, so that the replica gives up about when the client does.
    pub(crate) fn request_deadline(&self, target: usize) -> Millis {
        let local = self.hosts[target].local_ms(self.now_us);
        Millis(local + self.scenario.workload.request_timeout_ms)
    }

    /// Sends a write to `target`'s replica and flushes it at once (the runtime flushes at the
    /// end of each round of events; a simulated request is a round of its own).
    pub(crate) fn send_write(&mut self, target: usize, write: Input) {
        self.send_client_request(target, vec![write, Input::Flush]);
    }

    /// Sends a client's request to `target`: at once, or after the client network's delay.
    pub(crate) fn send_client_request(&mut self, target: usize, inputs: Vec<Input>) {
        let [low, high] = self.scenario.workload.client_latency_ms;
        if high == 0 {
            self.deliver_client_request(target, inputs);
            return;
        }
        let delay_us = self
            .streams
            .client_network
            .random_range(low * MICROS_PER_MS..=high * MICROS_PER_MS);
        let kind = EventKind::ClientRequest {
            node: target,
            inputs,
        };
        self.schedule(self.now_us + delay_us, kind);
    }

    /// A client's request reaches `node`: lost if it is down (the client times out), held
    /// until it resumes if it is paused, handed to its replica otherwise.
    pub(crate) fn deliver_client_request(&mut self, node: usize, inputs: Vec<Input>) {
        let host = &mut self.hosts[node];
        if host.replica.is_none() {
            return;
        }
        if host.paused {
            host.held_requests.push(inputs);
            return;
        }
        if inputs
            .iter()
            .any(|input| matches!(input, Input::Read { .. }))
            && self.at_deposed_leader(node)
        {
            self.coverage
                .reach(crate::coverage::READ_AT_DEPOSED_LEADER, self.now_us);
        }
        for input in inputs {
            self.step_node(node, input);
        }
    }

    /// Whether `node` leads a term older than the latest leader's.
    fn at_deposed_leader(&self, node: usize) -> bool {
        let Some(raft) = self.hosts[node].node().filter(|raft| raft.is_leader()) else {
            return false;
        };
        let latest = self.record.leaders.keys().next_back().copied();
        latest.is_some_and(|latest| latest > raft.term())
    }

    /// Whether a client may send to `target` now: it runs, or it is paused and holds requests
    /// (a crashed node refuses the connection at once).
    pub(crate) fn reachable(&self, target: usize) -> bool {
        let host = &self.hosts[target];
        let holds = self.scenario.workload.hold_requests_while_paused;
        host.running() || (holds && host.replica.is_some())
    }

    pub(crate) fn retry_soon(&mut self, client: usize, pick_random_node: bool) {
        if pick_random_node {
            self.clients[client].target = self.streams.workload.random_range(0..self.hosts.len());
        }
        let delay = self.streams.workload.random_range(1..=20);
        self.schedule_in_ms(delay, EventKind::ClientSend { client });
    }

    pub(crate) fn on_client_send(&mut self, client: usize) {
        if self.clients[client].current.is_some() {
            return;
        }
        if matches!(self.phase, Phase::Liveness { .. }) && !self.clients[client].unfinished {
            return;
        }
        if self.kv.is_some() {
            self.kv_send(client);
            return;
        }
        self.events += 1;
        let target = self.clients[client].target;
        self.note_request_at(target);
        let client_id = self.clients[client].id;
        let operation = self
            .history
            .invoke(client_id, target as u64 + 1, self.now_us);
        self.clients[client].unfinished = true;
        self.trace_client(client, operation, "invoke", None);
        if !self.reachable(target) {
            self.history
                .complete(operation, Outcome::Failed, self.now_us);
            self.trace_client(client, operation, "unavailable", None);
            self.retry_soon(client, true);
            return;
        }
        self.clients[client].current = Some(operation);
        let timeout = self.scenario.workload.request_timeout_ms;
        self.schedule_in_ms(timeout, EventKind::ClientTimeout { client, operation });
        let value = self
            .history
            .get(operation)
            .map(|op| op.payload.clone())
            .unwrap_or_default();
        let write = Input::Write {
            id: RequestId(operation),
            tenant: TenantId::DEFAULT,
            operation: opaque_write(client_id, value),
            numbered: None,
            deadline: self.request_deadline(target),
        };
        self.send_write(target, write);
    }

    pub(crate) fn on_client_timeout(&mut self, client: usize, operation: u64) {
        if self.clients[client].current != Some(operation) {
            return;
        }
        if self.kv.is_some() {
            self.kv_timeout(client, operation);
            return;
        }
        self.events += 1;
        self.history
            .complete(operation, Outcome::Unknown, self.now_us);
        self.clients[client].current = None;
        self.trace_client(client, operation, "timeout", None);
        self.retry_soon(client, true);
    }

    /// The client whose request in flight is `attempt` (a stale answer finds none).
    pub(crate) fn client_of_attempt(&self, attempt: u64) -> Option<usize> {
        self.clients
            .iter()
            .position(|client| client.current == Some(attempt))
    }

    /// Retries soon: at the hinted leader if there is one, else at a random node.
    pub(crate) fn retry_at(&mut self, client: usize, hint: Option<NodeId>) {
        match hint {
            Some(leader) => {
                self.clients[client].target = leader.get() as usize - 1;
                self.retry_soon(client, false);
            }
            None => self.retry_soon(client, true),
        }
    }

    /// Carries out one answer of `node`'s replica.
    pub(crate) fn on_answer(&mut self, node: usize, answer: Answer) {
        match answer {
            Answer::Write { id, result } if id.0 & crate::services::MEMBER_REQUEST_BIT != 0 => {
                self.on_member_answer_sent(result, id.0 & !crate::services::MEMBER_REQUEST_BIT)
            }
            Answer::Write { id, result } => {
                if id.0 & crate::kv::UNCHECKED_ATTEMPT_BIT != 0 {
                    self.note_unchecked_answer(&result);
                } else if let Ok(applied) = &result {
                    // Every "applied at i", even one its client no longer waits for, checked
                    // against the answering node's log as it is now.
                    self.check_answered_entry(node, id.0, applied.index);
                }
                self.answer_client(Answer::Write { id, result });
            }
            Answer::Read { .. } => self.answer_client(answer),
            // Scripted transfers only watch what follows.
            Answer::Transfer { .. } => {}
            Answer::Membership { result, .. } => {
                let what = match result {
                    Ok(applied) => format!(
                        "n{}: membership change committed at {}",
                        node + 1,
                        applied.index
                    ),
                    Err(error) => {
                        format!("n{}: membership change refused: {}", node + 1, error.code())
                    }
                };
                self.fault(what);
            }
        }
    }

    /// Sends a replica's answer back to its client: at once, or after the client network's
    /// delay.
    fn answer_client(&mut self, answer: Answer) {
        let [low, high] = self.scenario.workload.client_latency_ms;
        if high == 0 {
            self.on_client_answer(answer);
            return;
        }
        let delay_us = self
            .streams
            .client_network
            .random_range(low * MICROS_PER_MS..=high * MICROS_PER_MS);
        self.schedule(self.now_us + delay_us, EventKind::ClientAnswer { answer });
    }

    /// A replica's answer reaches its client.
    pub(crate) fn on_client_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Write { id, result } => self.on_write_answer(id.0, result),
            Answer::Read { id, result } => self.kv_read_answer(id.0, result),
            Answer::Transfer { .. } | Answer::Membership { .. } => {}
        }
    }

    fn on_write_answer(&mut self, attempt: u64, result: Result<Applied, ReplicaError>) {
        let Some(client) = self.client_of_attempt(attempt) else {
            return;
        };
        self.clients[client].current = None;
        match result {
            Ok(applied) if self.kv.is_some() => self.kv_write_applied(client, attempt, applied),
            Ok(applied) => self.opaque_write_applied(client, attempt, applied),
            Err(error) => self.on_write_refused(client, attempt, error),
        }
    }

    /// A write attempt got no answer from the store: refused before it entered the log
    /// (certainly not applied), or its fate is unknown (maybe applied). Either way the client
    /// retries: a KV client with the same numbering, an opaque one as a new request.
    fn on_write_refused(&mut self, client: usize, attempt: u64, error: ReplicaError) {
        let (outcome, event, hint) = match error {
            ReplicaError::NotLeader { leader } => (Outcome::Failed, "rejected", leader),
            ReplicaError::OutcomeUnknown { leader } => (Outcome::Unknown, "unknown", leader),
            ReplicaError::Timeout => (Outcome::Unknown, "replica_timeout", None),
            ReplicaError::Overloaded(_)
            | ReplicaError::TooLarge { .. }
            | ReplicaError::RateLimited { .. }
            | ReplicaError::Store(_)
            | ReplicaError::LeaderNotReady
            | ReplicaError::ChangeInProgress
            | ReplicaError::Membership(_) => (Outcome::Failed, "rejected", None),
        };
        self.history.complete(attempt, outcome, self.now_us);
        self.trace_client(client, attempt, event, None);
        self.retry_at(client, hint);
    }

    fn opaque_write_applied(&mut self, client: usize, attempt: u64, applied: Applied) {
        let index = applied.index.get();
        if applied.response.is_err() {
            // The store refused it (this node's client record was evicted): not applied.
            self.history.complete(attempt, Outcome::Failed, self.now_us);
            self.trace_client(client, attempt, "refused", Some(index));
            self.retry_soon(client, true);
            return;
        }
        let outcome = Outcome::Committed { index };
        self.history.complete(attempt, outcome, self.now_us);
        self.clients[client].unfinished = false;
        self.trace_client(client, attempt, "committed", Some(index));
        let think = self.think_time_ms();
        self.schedule_in_ms(think, EventKind::ClientSend { client });
    }

    /// A replica answered `attempt` as applied at `index`: the entry there in the answering
    /// node's log must be the command the attempt sent, and it must stay committed there.
    fn check_answered_entry(&mut self, node: usize, attempt: u64, index: LogIndex) {
        let host = &self.hosts[node];
        let id = host.id;
        let Some(entry) = host.node().and_then(|raft| raft.log().entry(index)) else {
            let detail = format!("operation {attempt} answered at {index}, beyond its log");
            return self.violate(answered_elsewhere(id, index, detail));
        };
        let digest = checkers::digest(&entry.payload);
        let matches = match (&entry.payload, self.sent_by(attempt)) {
            (EntryPayload::Command(bytes), Some(Sent::Exactly(sent))) => *bytes == sent,
            (EntryPayload::Command(bytes), Some(Sent::Unnumbered(sent))) => matches!(
                Command::decode(bytes),
                Ok(Command::Request(request)) if request.operation == sent
            ),
            _ => false,
        };
        if !matches {
            let detail = format!("operation {attempt} answered at {index}, where another entry is");
            return self.violate(answered_elsewhere(id, index, detail));
        }
        let result = checkers::acknowledged_write_kept(&mut self.record, id, index, digest);
        self.check(result);
    }

    /// What an attempt put in the log, as far as its client knows it.
    fn sent_by(&self, attempt: u64) -> Option<Sent> {
        let operation = self.history.get(attempt)?;
        Some(if self.kv.is_some() {
            Sent::Exactly(operation.payload.clone())
        } else {
            Sent::Unnumbered(opaque_write(operation.client, operation.payload.clone()))
        })
    }
}

/// The command an attempt sent, as its client knows it.
enum Sent {
    /// A KV client's command, encoded by the client byte for byte (its own numbering).
    Exactly(Vec<u8>),
    /// An opaque request's operation: the replica numbers it on its node's own record.
    Unnumbered(StoreOperation),
}

/// The store write an opaque request sends: its unique payload as the value of its client's
/// key.
fn opaque_write(client: u64, value: Vec<u8>) -> StoreOperation {
    let mut digits = [0; crate::workload::DECIMAL_DIGITS_MAX];
    let mut key = String::with_capacity(24);
    key.push_str("/w/c");
    key.push_str(crate::workload::decimal(client, &mut digits));
    StoreOperation::Put {
        key,
        value,
        session: None,
    }
}

fn answered_elsewhere(node: NodeId, index: LogIndex, detail: String) -> Violation {
    Violation {
        check: check::ACKNOWLEDGED_WRITE_KEPT,
        at_us: 0,
        nodes: vec![node.get()],
        index: Some(index.get()),
        term: None,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;
    use crate::simulator::Simulator;
    use crate::workload::Outcome;
    use rafting_core::store::TenantId;
    use std::path::Path;

    // Opaque requests are store writes through each host's replica, not raw proposals: after
    // a calm seed settles, the leader's store holds under each client's key the value of that
    // client's last committed request (its highest index among the client's writes).
    #[test]
    fn opaque_requests_are_store_writes_through_the_replica() {
        let text = r#"
            name = "opaque_through_the_replica"
            profile = "brief"
            nodes = 3
            duration_ms = 4000
            [workload]
            clients = 2
        "#;
        let scenario = Scenario::parse(text, Path::new("inline.toml")).expect("parses");
        let mut simulator = Simulator::new(&scenario, 7, None).expect("starts");
        simulator.run();
        assert!(simulator.violation.is_none(), "{:?}", simulator.violation);
        let leader = simulator
            .hosts
            .iter()
            .find_map(|host| host.replica.as_ref().filter(|replica| replica.is_leader()))
            .expect("the seed settled with a leader");
        for client in &simulator.clients {
            let last = simulator
                .history
                .operations
                .iter()
                .filter(|operation| operation.client == client.id)
                .rfind(|operation| matches!(operation.outcome, Outcome::Committed { .. }))
                .expect("each client had a request committed");
            let key = format!("/w/c{}", client.id);
            let found = leader
                .store()
                .get(TenantId::DEFAULT, &key)
                .expect("written");
            assert_eq!(
                found.value.as_deref(),
                Some(last.payload.as_slice()),
                "{key}"
            );
        }
    }
}
