//! The [`Store`]: the state machine value, its apply entry points and its accessors.

use super::answer::{Outcome, Response};
use super::clients::{Admission, ClientTable};
use super::command::{Command, Operation, Request, Tick};
use super::config::StoreConfig;
use super::key::{Revision, TenantId};
use super::keyspace::KeySpace;
use super::services::{Departure, ServiceTable};
use super::sessions::SessionTable;
use super::tenants::TenantTable;
use super::watch::WatchHistory;
use crate::types::{LogIndex, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The replicated configuration store of one node.
///
/// Feed it every committed entry's command bytes, in log order, with [`Store::apply`]; serve
/// reads with [`Store::read`] once Raft says they are safe. Two stores given the same entries
/// hold the same state and give the same answers, bit for bit.
///
/// The whole value is serde data: a snapshot is the store encoded, and restoring is decoding
/// it (every node must also run with the same [`StoreConfig`], which the snapshot carries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) revision: Revision,
    pub(crate) last_applied: LogIndex,
    pub(crate) tenants: BTreeMap<TenantId, KeySpace>,
    pub(crate) history: WatchHistory,
    pub(crate) sessions: SessionTable,
    pub(crate) clients: ClientTable,
    pub(crate) services: ServiceTable,
    pub(crate) tenant_table: TenantTable,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        let history = WatchHistory::new(
            config.watch_history_events_max,
            config.watch_history_bytes_max,
        );
        let clients = ClientTable::new(config.clients_max, config.responses_per_client_max);
        Store {
            config,
            revision: Revision::ZERO,
            last_applied: LogIndex::ZERO,
            tenants: BTreeMap::new(),
            history,
            sessions: SessionTable::default(),
            clients,
            services: ServiceTable::default(),
            tenant_table: TenantTable::default(),
        }
    }

    /// Applies the command bytes of the committed entry at `index`. Undecodable bytes give a
    /// `bad_command` answer and change nothing but `last_applied`.
    ///
    /// # Panics
    /// If `index` is not above the last applied index: the driver must apply each entry once,
    /// in log order (entries without a store command, such as no-ops, may be skipped).
    pub fn apply(&mut self, index: LogIndex, command_bytes: &[u8]) -> Response {
        match Command::decode(command_bytes) {
            Ok(command) => self.apply_command(index, command),
            Err(error) => {
                self.advance_applied(index);
                Err(error)
            }
        }
    }

    /// The typed twin of [`Store::apply`], for callers that hold the command itself.
    pub fn apply_command(&mut self, index: LogIndex, command: Command) -> Response {
        self.advance_applied(index);
        match command {
            Command::RegisterClient => {
                let (client, _evicted) = self.clients.register(index);
                Ok(Outcome::ClientRegistered { client })
            }
            Command::Request(request) => self.apply_request(index, request),
            Command::Tick(tick) => Ok(self.apply_tick(tick)),
        }
    }

    fn advance_applied(&mut self, index: LogIndex) {
        assert!(
            index > self.last_applied,
            "entries are applied once, in order: {index} after {}",
            self.last_applied
        );
        self.last_applied = index;
    }

    /// Runs a client request through the exactly-once table, then applies it.
    fn apply_request(&mut self, index: LogIndex, request: Request) -> Response {
        let Request {
            client,
            sequence,
            acknowledged_below,
            tenant,
            operation,
        } = request;
        match self
            .clients
            .admit(index, client, sequence, acknowledged_below, tenant)
        {
            Admission::Refuse(error) => return Err(error),
            Admission::Duplicate(response) => return response,
            Admission::Apply => {}
        }
        let response = self.apply_operation(index, tenant, operation);
        self.clients
            .remember(client, sequence, tenant, response.clone());
        response
    }

    /// Applies one operation; every change it makes shares the next revision.
    fn apply_operation(
        &mut self,
        index: LogIndex,
        tenant: TenantId,
        operation: Operation,
    ) -> Response {
        let revision = self.revision.next();
        self.check_tenant_exists(tenant)?;
        match operation {
            Operation::Put {
                key,
                value,
                session,
            } => self.put(tenant, key, value, session, None, revision),
            Operation::CompareAndSet {
                key,
                expected_version,
                value,
                session,
            } => self.put(
                tenant,
                key,
                value,
                session,
                Some(expected_version),
                revision,
            ),
            Operation::Delete { key } => self.delete(tenant, &key, revision),
            Operation::Transaction(transaction) => {
                self.apply_transaction(tenant, transaction, revision)
            }
            Operation::OpenSession { ttl_ms } => self.open_session(index, tenant, ttl_ms),
            Operation::KeepAlive { session } => {
                let expires_at = self.sessions.keep_alive(session, tenant)?;
                Ok(Outcome::KeptAlive {
                    session,
                    expires_at,
                })
            }
            Operation::CloseSession { session } => self.close_session(tenant, session, revision),
            Operation::RegisterMember(registration) => {
                self.register_member(index, tenant, *registration, revision)
            }
            Operation::MemberKeepAlive { group, instance } => {
                self.member_keep_alive(tenant, &group, &instance)
            }
            Operation::MemberUpdate {
                group,
                instance,
                update,
            } => self.update_member(tenant, &group, &instance, update, revision),
            Operation::Deregister { group, instance } => {
                self.deregister_member(tenant, &group, &instance, revision)
            }
            Operation::Resign {
                group,
                instance,
                epoch,
                to,
            } => self.resign(tenant, &group, &instance, epoch, to, revision),
            Operation::StartGroup { group } => self.start_group(tenant, &group, revision),
            Operation::Tenant(command) => self.apply_tenant_command(tenant, *command, revision),
            Operation::DrainMember {
                group,
                instance,
                draining,
            } => self.drain_member(tenant, &group, &instance, draining, revision),
        }
    }

    /// Advances the replicated clock and expires the sessions whose deadline has passed.
    fn apply_tick(&mut self, tick: Tick) -> Outcome {
        let revision = self.revision.next();
        let expired = self.sessions.on_tick(tick, self.config.tick_advance_ms_max);
        for session in &expired {
            self.end_session(*session, revision, Departure::Expired);
        }
        self.services_on_clock(revision);
        Outcome::Ticked {
            now: self.sessions.now(),
            expired,
            revision: self.revision,
        }
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The global revision: the number of applied commands that changed the key space.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The index of the last entry applied.
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// The replicated session clock.
    pub fn now(&self) -> Millis {
        self.sessions.now()
    }

    /// Keys stored in `tenant`.
    pub fn key_count(&self, tenant: TenantId) -> usize {
        self.tenants.get(&tenant).map_or(0, KeySpace::len)
    }

    /// Open sessions across all tenants.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the leader should keep proposing ticks of the replicated session clock: only
    /// while some session is open, since the clock exists to expire sessions. An idle
    /// cluster then writes nothing to its log (see the clock's rule 4 in `sessions`).
    pub fn session_clock_needed(&self) -> bool {
        self.sessions.len() > 0
    }

    /// Exactly-once client records held.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Whether `client` still has an exactly-once record.
    pub fn has_client(&self, client: super::key::ClientId) -> bool {
        self.clients.contains(client)
    }

    /// Events held in the watch history, and the oldest revision it still holds entirely.
    pub fn watch_history(&self) -> (usize, Revision) {
        (self.history.len(), self.history.oldest_complete())
    }
}
