//! Exactly-once writes: the table of client records (Raft thesis §6.3).
//!
//! A client registers once (`RegisterClient`; its id is that command's log index) and then
//! numbers its requests. For each client the store caches the answers of applied requests
//! until the client acknowledges them, so that a retried request gets the original answer
//! instead of being applied twice. Every rule here is a pure function of the log, so all
//! nodes keep identical tables.
//!
//! # Admission of a request `(client, sequence, acknowledged_below)`
//!
//! 1. Unknown client (never registered, or evicted) → `unknown_client`. The store cannot
//!    tell whether the request was applied, so it refuses rather than risk a double apply.
//! 2. `acknowledged_below` (clamped to `sequence`) raises the client's `sequence_min`: cached
//!    answers below it are dropped. It never lowers `sequence_min`.
//! 3. `sequence < sequence_min` → `stale_request` (the answer is forgotten).
//! 4. An answer is cached for `sequence` → that answer, nothing applied.
//! 5. Otherwise the request is applied and its answer cached. Requests may be applied out of
//!    order (a pipelining client), since "applied" is "has a cached answer".
//!
//! # Bounds and eviction
//!
//! - At most `responses_per_client_max` answers per client: caching one more drops the
//!   lowest-numbered one and raises `sequence_min` past it.
//! - At most `clients_max` clients: registering one more evicts the client whose last
//!   applied request (or registration) has the lowest log index — least recently active —
//!   with ties (impossible, as indexes are unique, but defined anyway) broken by lowest id.

use super::answer::Response;
use super::error::StoreError;
use super::key::{ClientId, TenantId};
use crate::types::LogIndex;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClientRecord {
    /// Log index of the client's latest registration or applied request (the LRU key).
    last_active: LogIndex,
    /// The lowest sequence number still accepted.
    sequence_min: u64,
    /// Answers of applied requests at or above `sequence_min`, sorted by sequence. A sorted
    /// deque rather than a map: answers usually arrive in order and leave from the front,
    /// so this costs no allocation per request. Each answer keeps the tenant of its request:
    /// a retry from another tenant (a client id and sequence guessed or reused across
    /// tenants) is never shown another tenant's answer.
    responses: VecDeque<(u64, TenantId, Response)>,
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Apply it, then [`ClientTable::remember`] the answer.
    Apply,
    /// Already applied: answer with the cached response.
    Duplicate(Response),
    /// Refuse it with this error (not cached).
    Refuse(StoreError),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClientTable {
    records: OrdMap<ClientId, ClientRecord>,
    /// `(last_active, client)` for every record: the first element is the next to evict.
    by_activity: OrdSet<(LogIndex, ClientId)>,
    clients_max: usize,
    responses_per_client_max: usize,
}

impl ClientTable {
    pub fn new(clients_max: usize, responses_per_client_max: usize) -> ClientTable {
        assert!(
            clients_max > 0,
            "the client table must hold at least one client"
        );
        assert!(
            responses_per_client_max > 0,
            "a client must be able to cache an answer"
        );
        ClientTable {
            records: OrdMap::new(),
            by_activity: OrdSet::new(),
            clients_max,
            responses_per_client_max,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn contains(&self, client: ClientId) -> bool {
        self.records.contains_key(&client)
    }

    /// Registers a client with id `index`, evicting the least recently active one if the
    /// table is full. Returns the new id and the evicted one.
    pub fn register(&mut self, index: LogIndex) -> (ClientId, Option<ClientId>) {
        let client = ClientId::new(index.get());
        let evicted = if self.records.len() >= self.clients_max {
            let (_, oldest) = self
                .by_activity
                .remove_min()
                .expect("a full table is not empty");
            self.records.remove(&oldest);
            Some(oldest)
        } else {
            None
        };
        let record = ClientRecord {
            last_active: index,
            sequence_min: 0,
            responses: VecDeque::new(),
        };
        let previous = self.records.insert(client, record);
        assert!(
            previous.is_none(),
            "client ids are log indexes, never reused"
        );
        self.by_activity.insert((index, client));
        (client, evicted)
    }

    /// Decides what to do with a request applied at `index` (rules in the module docs), and
    /// marks the client active at `index` unless it is refused.
    pub fn admit(
        &mut self,
        index: LogIndex,
        client: ClientId,
        sequence: u64,
        acknowledged_below: u64,
        tenant: TenantId,
    ) -> Admission {
        let Some(record) = self.records.get_mut(&client) else {
            return Admission::Refuse(StoreError::UnknownClient { client });
        };
        let acknowledged_below = acknowledged_below.min(sequence);
        if acknowledged_below > record.sequence_min {
            record.sequence_min = acknowledged_below;
            while record
                .responses
                .front()
                .is_some_and(|(oldest, _, _)| *oldest < acknowledged_below)
            {
                record.responses.pop_front();
            }
        }
        if sequence < record.sequence_min {
            let sequence_min = record.sequence_min;
            return Admission::Refuse(StoreError::StaleRequest {
                client,
                sequence,
                sequence_min,
            });
        }
        let cached = record
            .responses
            .binary_search_by_key(&sequence, |(cached, _, _)| *cached)
            .ok()
            .map(|position| &record.responses[position]);
        if let Some((_, owner, _)) = cached
            && *owner != tenant
        {
            // Another tenant's answer: refused like a forgotten one, never shown.
            return Admission::Refuse(StoreError::StaleRequest {
                client,
                sequence,
                sequence_min: record.sequence_min,
            });
        }
        let cached = cached.map(|(_, _, response)| response.clone());
        let previous_active = record.last_active;
        record.last_active = index;
        // Insert before removing, so that a lone client does not free and reallocate the
        // set's only node on every request.
        self.by_activity.insert((index, client));
        self.by_activity.remove(&(previous_active, client));
        match cached {
            Some(response) => Admission::Duplicate(response),
            None => Admission::Apply,
        }
    }

    /// Caches the answer of a request that [`ClientTable::admit`] let through.
    pub fn remember(
        &mut self,
        client: ClientId,
        sequence: u64,
        tenant: TenantId,
        response: Response,
    ) {
        let record = self
            .records
            .get_mut(&client)
            .expect("admitted clients are registered");
        let position = record
            .responses
            .partition_point(|(cached, _, _)| *cached < sequence);
        debug_assert!(
            record
                .responses
                .get(position)
                .is_none_or(|(cached, _, _)| *cached != sequence),
            "an answer is remembered once"
        );
        record
            .responses
            .insert(position, (sequence, tenant, response));
        if record.responses.len() > self.responses_per_client_max {
            let (dropped, _, _) = record
                .responses
                .pop_front()
                .expect("over the cap means not empty");
            record.sequence_min = record.sequence_min.max(dropped + 1);
        }
    }
}
