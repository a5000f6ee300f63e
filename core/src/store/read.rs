//! Reads: get, list and watch polls, served from local state.
//!
//! These never change the store and never go through the log. They are linearizable when the
//! caller first obtains a read index from Raft (ReadIndex) and waits until this store has
//! applied up to it; served without that step they are stale reads, which the server must
//! only offer as an explicit option.

use super::answer::{KeyValue, ListQuery, Listing, Query, ReadAnswer, WatchBatch, WatchQuery};
use super::error::StoreError;
use super::key::{Prefix, TenantId};
use super::keyspace::key_value;
use super::store::Store;
use super::watch::Poll;

impl Store {
    /// Serves one read query.
    pub fn read(&self, query: &Query) -> Result<ReadAnswer, StoreError> {
        match query {
            Query::Get { tenant, key } => self.get(*tenant, key).map(ReadAnswer::Value),
            Query::List(list) => self.list(list).map(ReadAnswer::List),
            Query::Watch(watch) => self.watch(watch).map(ReadAnswer::Watch),
            Query::Service { tenant, group } => self
                .group_view(*tenant, group)
                .map(|view| ReadAnswer::Service(Box::new(view)))
                .ok_or_else(|| StoreError::GroupNotFound {
                    group: group.clone(),
                }),
            Query::Services { tenant } => Ok(ReadAnswer::Services(
                self.services
                    .groups(*tenant)
                    .filter_map(|(name, _)| self.group_view(*tenant, name))
                    .collect(),
            )),
            Query::Tenants => Ok(ReadAnswer::Tenants(self.tenants())),
            Query::Tenant { name } => self
                .tenant(name)
                .map(|view| ReadAnswer::Tenant(Box::new(view))),
            Query::Authenticate { token } => Ok(ReadAnswer::Authenticated(
                self.authenticate(token)
                    .and_then(|tenant| self.tenant_table.view(tenant))
                    .map(Box::new),
            )),
        }
    }

    /// The key with its value and metadata; `not_found` if absent.
    pub fn get(&self, tenant: TenantId, key: &str) -> Result<KeyValue, StoreError> {
        self.check_key(key)?;
        self.tenants
            .get(&tenant)
            .and_then(|space| space.get(key))
            .map(|record| key_value(key, record, false))
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }

    /// One page of the keys under a prefix, in key order.
    pub fn list(&self, query: &ListQuery) -> Result<Listing, StoreError> {
        let prefix = Prefix::parse(&query.prefix, self.config.key_bytes_max)?;
        let limit = effective_limit(query.limit, self.config.list_entries_max);
        let (entries, continue_after) = match self.tenants.get(&query.tenant) {
            Some(space) => space.list(&prefix, query.after.as_deref(), limit, query.keys_only),
            None => (Vec::new(), None),
        };
        Ok(Listing {
            revision: self.revision,
            entries,
            continue_after,
        })
    }

    /// The changes under a prefix since a revision, or `compacted` if they are gone.
    pub fn watch(&self, query: &WatchQuery) -> Result<WatchBatch, StoreError> {
        let prefix = Prefix::parse(&query.prefix, self.config.key_bytes_max)?;
        let poll = Poll {
            tenant: query.tenant,
            prefix: &prefix,
            since: query.since,
            limit: effective_limit(query.limit, self.config.watch_events_per_poll_max),
            current_revision: self.revision,
        };
        self.history.poll(&poll)
    }
}

/// A requested limit, where 0 means "as many as allowed", capped by the store's maximum.
fn effective_limit(requested: u32, maximum: usize) -> usize {
    match requested {
        0 => maximum,
        requested => (requested as usize).min(maximum),
    }
    .max(1)
}
