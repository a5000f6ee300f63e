//! Tenants in the KV workload (`[[tenants]]`): joining a tenant at the start, the hostile
//! tenant's flood, and the latency bound of the well-behaved ones.
//!
//! A tenant's first client creates it with the store's `TenantCommand::Create`, a write in
//! the default tenant (the administrator's), through the log like any write; its other
//! clients look it up (`Query::Tenant`) until it exists. Only then do they act in it.
//!
//! A hostile client sends a write every `flood_interval_ms`, without a client record
//! (unnumbered), to the node that leads, and never waits for an answer: refusals (rate, quota,
//! queue share, `retry_after_ms`) change nothing. Its writes are values of `value_bytes` to ever new keys, overwrites, and
//! sessions opened with a long TTL and never renewed, so it runs into every stored cap and
//! its rates. Watches are long polls held by a node, not replicated state, and the simulated
//! clients do not hold them, so the hostile tenant does not open any.

use super::{PendingKind, UNCHECKED_ATTEMPT_BIT};
use crate::checkers::{Violation, check};
use crate::coverage;
use crate::simulator::{EventKind, Phase, Simulator};
use rafting_core::raft::RoleName;
use rafting_core::replica::{Applied, Input, ReplicaError, RequestId};
use rafting_core::store::{
    Operation, Outcome, Query, ReadAnswer, Response, StoreError, TenantCommand, TenantId,
    TokenRecord,
};
use rand::Rng;

/// The TTL of the hostile tenant's sessions: long enough that they pile up to its cap.
const FLOOD_SESSION_TTL_MS: u64 = 60_000;
/// Percent of the flood that opens sessions, and that overwrites one key (the rest writes
/// new keys).
const FLOOD_SESSION_PERCENT: u32 = 20;
const FLOOD_OVERWRITE_PERCENT: u32 = 10;

impl Simulator<'_, '_> {
    /// Whether the client belongs to a hostile tenant.
    pub(crate) fn kv_hostile(&mut self, client: usize) -> bool {
        let tenant = self.kv_client(client).tenant;
        tenant.is_some_and(|position| self.scenario.tenants[position].hostile)
    }

    /// The hostile client's next write.
    pub(crate) fn kv_flood_operation(&mut self, client: usize) -> Operation {
        let position = self
            .kv_client(client)
            .tenant
            .expect("a hostile client has a tenant");
        let value_bytes = self.scenario.tenants[position].value_bytes;
        let id = self.clients[client].id;
        let state = self.kv_client(client);
        state.next_sequence += 1;
        let written = state.next_sequence;
        let roll = self.streams.workload.random_range(0..100);
        if roll < FLOOD_SESSION_PERCENT {
            return Operation::OpenSession {
                ttl_ms: FLOOD_SESSION_TTL_MS,
            };
        }
        let key = if roll < FLOOD_SESSION_PERCENT + FLOOD_OVERWRITE_PERCENT {
            format!("/flood/c{id}/k0")
        } else {
            format!("/flood/c{id}/k{written}")
        };
        // Built in place: a flood sends thousands of these values a simulated second, and a
        // copy of each was most of the scenario's wall time.
        Operation::Put {
            key,
            value: vec![b'x'; value_bytes],
            session: None,
        }
    }

    /// Creates the client's tenant, or looks it up.
    pub(crate) fn kv_join_attempt(&mut self, client: usize, target: usize) {
        let state = self.kv_client(client).clone();
        let position = state.tenant.expect("only a tenant's client joins one");
        let section = &self.scenario.tenants[position];
        let name = section.name.clone();
        if !state.creates_tenant {
            self.kv_send_read(client, target, Query::Tenant { name });
            return;
        }
        let token = TokenRecord::new(name.as_bytes(), &format!("simulated-{name}"));
        let command = TenantCommand::Create {
            name,
            caps: section.caps,
            token,
        };
        let operation = Operation::Tenant(Box::new(command));
        self.kv_unchecked_attempt(client, target, TenantId::DEFAULT, operation);
    }

    /// Sends an unnumbered write that is part of no checked history (see
    /// [`UNCHECKED_ATTEMPT_BIT`]).
    pub(crate) fn kv_unchecked_attempt(
        &mut self,
        client: usize,
        target: usize,
        tenant: TenantId,
        operation: Operation,
    ) {
        let attempt = self.kv_next_attempt(UNCHECKED_ATTEMPT_BIT);
        self.start_attempt(client, attempt);
        self.kv_send_unnumbered(target, attempt, tenant, operation);
    }

    /// Sends `operation` as an unnumbered write of `tenant` to `target`.
    fn kv_send_unnumbered(
        &mut self,
        target: usize,
        attempt: u64,
        tenant: TenantId,
        operation: Operation,
    ) {
        let write = Input::Write {
            id: RequestId(attempt),
            tenant,
            operation,
            numbered: None,
            deadline: self.request_deadline(target),
        };
        self.send_write(target, write);
    }

    /// The answer to the creation of the client's tenant.
    pub(crate) fn kv_on_tenant_created(&mut self, client: usize, response: &Response) {
        let state = self.kv_client(client);
        match response {
            Ok(Outcome::TokenIssued { tenant, .. }) => state.tenant_id = Some(*tenant),
            // An earlier attempt created it: look it up.
            Err(StoreError::TenantExists { .. }) => state.creates_tenant = false,
            _ => {}
        }
        self.kv_finish(client);
    }

    /// The answer to the lookup of the client's tenant (not found yet: it tries again).
    pub(crate) fn kv_on_tenant_found(
        &mut self,
        client: usize,
        answer: &Result<ReadAnswer, StoreError>,
    ) {
        if let Ok(ReadAnswer::Tenant(view)) = answer {
            self.kv_client(client).tenant_id = Some(view.id);
        }
        self.kv_finish(client);
    }

    /// A hostile client's turn: one write to the leader, whatever became of the last ones,
    /// and the next turn after its interval. It stops once faults stop: the liveness phase
    /// judges the cluster, not the flood.
    pub(crate) fn kv_flood(&mut self, client: usize) {
        if matches!(self.phase, Phase::Liveness { .. }) {
            self.clients[client].unfinished = false;
            return;
        }
        let operation = self.kv_flood_operation(client);
        let tenant = self
            .kv_client(client)
            .tenant_id
            .unwrap_or(TenantId::DEFAULT);
        let leader = (0..self.hosts.len())
            .filter(|&node| self.hosts[node].running())
            .filter(|&node| self.hosts[node].last_role == RoleName::Leader)
            .max_by_key(|&node| self.hosts[node].last_term);
        let target = leader.unwrap_or(self.clients[client].target);
        if self.reachable(target) {
            let attempt = self.kv_next_attempt(UNCHECKED_ATTEMPT_BIT);
            self.kv_send_unnumbered(target, attempt, tenant, operation);
        }
        let position = self
            .kv_client(client)
            .tenant
            .expect("a hostile client has a tenant");
        let interval = self.scenario.tenants[position].flood_interval_ms;
        self.schedule_in_ms(interval, EventKind::ClientSend { client });
    }

    /// Notes the replica's or the store's refusal of an unchecked write (the flood's) for
    /// the coverage summary.
    pub(crate) fn note_unchecked_answer(&mut self, result: &Result<Applied, ReplicaError>) {
        match result {
            Ok(applied) => {
                if let Err(error) = &applied.response {
                    self.note_tenant_refusal(error);
                }
            }
            Err(error) => self.note_write_refusal(error),
        }
    }

    /// Notes a quota refusal for the coverage summary.
    pub(crate) fn note_tenant_refusal(&mut self, error: &StoreError) {
        if matches!(error, StoreError::QuotaExceeded { .. }) {
            self.coverage
                .reach(coverage::TENANT_REFUSED_QUOTA, self.now_us);
        }
    }

    /// Notes the refusal of a write by the replica for the coverage summary.
    fn note_write_refusal(&mut self, error: &ReplicaError) {
        match error {
            ReplicaError::RateLimited(_) => {
                self.coverage
                    .reach(coverage::TENANT_REFUSED_RATE, self.now_us);
            }
            ReplicaError::Store(error) => self.note_tenant_refusal(error),
            _ => {}
        }
    }

    /// A request of the client is answered: its time counts towards its tenant's latency,
    /// which must stay within the tenant's bound (`tenant_latency`). Joining a tenant and
    /// registering are setup, and the hostile tenant has no bound.
    pub(crate) fn kv_note_latency(&mut self, client: usize) {
        let state = self.kv_client(client).clone();
        let Some(pending) = state.pending else {
            return;
        };
        let setup = matches!(
            pending.kind,
            PendingKind::JoinTenant | PendingKind::Register
        );
        if setup || self.kv_hostile(client) {
            return;
        }
        let latency_us = self.now_us.saturating_sub(pending.invoked_us);
        let (name, bound_ms) = match state.tenant {
            Some(position) => {
                let section = &self.scenario.tenants[position];
                (section.name.clone(), section.latency_ms_max)
            }
            None => ("default".to_owned(), None),
        };
        let kv = self.kv.as_mut().expect("KV mode");
        let longest = kv.latency_us_max.entry(name.clone()).or_default();
        *longest = (*longest).max(latency_us);
        if let Some(bound_ms) = bound_ms
            && latency_us > bound_ms * 1000
        {
            self.violate(Violation {
                check: check::TENANT_LATENCY,
                at_us: 0,
                nodes: Vec::new(),
                index: None,
                term: None,
                detail: format!(
                    "a request of tenant {name} (client {}) took {} ms, over its bound of \
                     {bound_ms} ms: {:?}",
                    self.clients[client].id,
                    latency_us / 1000,
                    pending.kind
                ),
            });
        }
    }
}
