//! Driving the simulated clients: sending requests to nodes, timing them out, and turning a
//! node's proposal outcomes into history records and client decisions.

use crate::checkers;
use crate::simulator::{EventKind, Phase, Simulator};
use crate::trace::TraceEvent;
use crate::workload::Outcome;
use rafting_core::raft::{EntryPayload, Input, ProposalId, ProposalOutcome, ProposeError};
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
        let Some(node) = self.hosts[target]
            .node
            .as_ref()
            .filter(|node| node.is_leader())
        else {
            return;
        };
        let latest = self.record.leaders.keys().next_back().copied();
        if latest.is_some_and(|latest| latest > node.term()) {
            self.coverage
                .reach(crate::coverage::REQUEST_AT_DEPOSED_LEADER, self.now_us);
        }
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
        if !self.hosts[target].running() {
            self.history
                .complete(operation, Outcome::Failed, self.now_us);
            self.trace_client(client, operation, "unavailable", None);
            self.retry_soon(client, true);
            return;
        }
        self.clients[client].current = Some(operation);
        let timeout = self.scenario.workload.request_timeout_ms;
        self.schedule_in_ms(timeout, EventKind::ClientTimeout { client, operation });
        let data = self
            .history
            .get(operation)
            .map(|op| op.payload.clone())
            .unwrap_or_default();
        let input = Input::Propose {
            id: ProposalId(operation),
            data,
        };
        self.step_node(target, input);
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

    fn client_of(&self, operation: u64) -> Option<usize> {
        let client_id = self.history.get(operation)?.client;
        let client = usize::try_from(client_id).ok()?.checked_sub(1)?;
        (self.clients.get(client)?.current == Some(operation)).then_some(client)
    }

    pub(crate) fn on_proposal_outcome(&mut self, node: usize, outcome: ProposalOutcome) {
        if self.kv.is_some() {
            self.kv_proposal_outcome(node, outcome);
            return;
        }
        let operation = match &outcome {
            ProposalOutcome::Accepted { id, .. }
            | ProposalOutcome::Committed { id, .. }
            | ProposalOutcome::Rejected { id, .. }
            | ProposalOutcome::Unknown { id, .. } => id.0,
        };
        let Some(client) = self.client_of(operation) else {
            return;
        };
        match outcome {
            ProposalOutcome::Accepted { index, term, .. } => {
                if let Some(record) = self.history.get_mut(operation) {
                    record.accepted_at = Some((index.get(), term.get()));
                }
                self.trace_client(client, operation, "accepted", Some(index.get()));
            }
            ProposalOutcome::Committed { index, .. } => {
                let outcome = Outcome::Committed { index: index.get() };
                self.history.complete(operation, outcome, self.now_us);
                let payload = self.history.get(operation).map(|op| op.payload.clone());
                let digest = checkers::digest(&EntryPayload::Command(payload.unwrap_or_default()));
                let id = self.hosts[node].id;
                let result = checkers::acknowledged_write_kept(&mut self.record, id, index, digest);
                self.check(result);
                self.clients[client].current = None;
                self.clients[client].unfinished = false;
                self.trace_client(client, operation, "committed", Some(index.get()));
                let think = self.think_time_ms();
                self.schedule_in_ms(think, EventKind::ClientSend { client });
            }
            ProposalOutcome::Rejected { error, .. } => {
                self.history
                    .complete(operation, Outcome::Failed, self.now_us);
                self.clients[client].current = None;
                self.trace_client(client, operation, "rejected", None);
                match error {
                    ProposeError::NotLeader {
                        leader_hint: Some(leader),
                    } => {
                        self.clients[client].target = leader.get() as usize - 1;
                        self.retry_soon(client, false);
                    }
                    _ => self.retry_soon(client, true),
                }
            }
            ProposalOutcome::Unknown { leader_hint, .. } => {
                self.history
                    .complete(operation, Outcome::Unknown, self.now_us);
                self.clients[client].current = None;
                self.trace_client(client, operation, "unknown", None);
                match leader_hint {
                    Some(leader) => {
                        self.clients[client].target = leader.get() as usize - 1;
                        self.retry_soon(client, false);
                    }
                    None => self.retry_soon(client, true),
                }
            }
        }
    }
}
