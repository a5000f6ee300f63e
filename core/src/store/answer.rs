//! What the store answers: outcomes of applied commands, read queries and their answers.
//!
//! [`Response`] is what [`Store::apply`](super::Store::apply) returns for every log entry,
//! and what the exactly-once layer caches. [`Query`] and [`ReadAnswer`] are the read side,
//! served locally by [`Store::read`](super::Store::read) once Raft has made the read safe
//! (ReadIndex).

use super::error::StoreError;
use super::key::{ClientId, Revision, SessionId, TenantId};
use super::services::{GroupView, MemberView};
use super::tenants::TenantView;
use crate::types::Millis;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The answer to one applied command.
pub type Response = Result<Outcome, StoreError>;

/// A successful command's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    ClientRegistered {
        client: ClientId,
    },
    /// The replicated clock now reads `now`; the listed sessions expired at this tick.
    Ticked {
        now: Millis,
        expired: Vec<SessionId>,
        revision: Revision,
    },
    /// A put or compare-and-set wrote the key at `revision`; `version` is the key's new one.
    Written {
        revision: Revision,
        version: u64,
    },
    Deleted {
        revision: Revision,
    },
    Transaction {
        succeeded: bool,
        revision: Revision,
        results: Vec<TransactionResult>,
    },
    SessionOpened {
        session: SessionId,
        ttl_ms: u64,
        expires_at: Millis,
    },
    KeptAlive {
        session: SessionId,
        expires_at: Millis,
    },
    /// The session is closed; its ephemeral keys were deleted at `revision`.
    SessionClosed {
        session: SessionId,
        keys_deleted: u64,
        revision: Revision,
    },
    /// A service group member registered: its role and the group's epoch.
    MemberRegistered(MemberView),
    /// A member's session was kept alive: its role now.
    MemberKeptAlive(MemberView),
    /// A group's master may have changed (deregister, resign, start).
    GroupChanged {
        epoch: u64,
        master: Option<String>,
    },
    /// The operator drained or undrained a farm member; `draining` says whether it is out of
    /// the picks now (its own flag may still hold it out). `revision`: the group's last change.
    MemberDrained {
        instance: String,
        drained_by_operator: bool,
        draining: bool,
        revision: Revision,
    },
    /// A tenant was created (with token 1) or given a new token.
    TokenIssued {
        tenant: TenantId,
        token: u64,
    },
    /// A tenant's caps changed, or one of its tokens was revoked.
    TenantChanged {
        tenant: TenantId,
    },
    /// A tenant is gone, with what it held.
    TenantDeleted {
        tenant: TenantId,
        keys_deleted: u64,
        sessions_closed: u64,
    },
}

/// The result of one operation inside a transaction, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionResult {
    Got(Option<KeyValue>),
    Written { version: u64 },
    Deleted { existed: bool },
}

/// A key with its value and metadata. `value` is `None` in keys-only listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    /// Shared with the store's record: a read copies no value.
    pub value: Option<Bytes>,
    /// 1 when created, +1 with every write; a deleted and re-created key starts again at 1.
    pub version: u64,
    pub create_revision: Revision,
    pub modify_revision: Revision,
    /// The session the key is bound to, if it is ephemeral.
    pub session: Option<SessionId>,
}

/// A read, served from local state after Raft made it linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Get {
        tenant: TenantId,
        key: String,
    },
    List(ListQuery),
    Watch(WatchQuery),
    /// One service group.
    Service {
        tenant: TenantId,
        group: String,
    },
    /// Every service group of a tenant.
    Services {
        tenant: TenantId,
    },
    /// Every tenant with its caps and usage.
    Tenants,
    /// One tenant by name.
    Tenant {
        name: String,
    },
    /// The tenant a bearer token belongs to.
    Authenticate {
        token: String,
    },
}

/// Keys under a prefix, in key order, at most `limit` of them (0: the store's maximum).
/// `after` continues a previous listing: only keys strictly greater are returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    pub tenant: TenantId,
    pub prefix: String,
    pub keys_only: bool,
    pub limit: u32,
    pub after: Option<String>,
}

/// The changes under `prefix` with revision `since` or later, at most about `limit` of them
/// (0: the store's maximum; the changes of one revision are never split).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchQuery {
    pub tenant: TenantId,
    pub prefix: String,
    pub since: Revision,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadAnswer {
    Value(KeyValue),
    List(Listing),
    Watch(WatchBatch),
    Service(Box<GroupView>),
    Services(Vec<GroupView>),
    Tenants(Vec<TenantView>),
    Tenant(Box<TenantView>),
    /// The token's tenant; `None` for an unknown or revoked token.
    Authenticated(Option<Box<TenantView>>),
}

/// A page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The store revision the listing reflects; watch from `revision + 1` to follow it.
    pub revision: Revision,
    pub entries: Vec<KeyValue>,
    /// Set when more keys remain: pass it as `after` to get the next page.
    pub continue_after: Option<String>,
}

/// A page of watch events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchBatch {
    pub events: Vec<Event>,
    /// Pass this as `since` in the next poll.
    pub next_since: Revision,
    pub current_revision: Revision,
}

/// One change recorded in the watch history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: Revision,
    pub tenant: TenantId,
    pub key: String,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put {
        /// Shared with the key's record and with every poll that returns the event.
        value: Bytes,
        version: u64,
        create_revision: Revision,
    },
    Delete,
}

impl Event {
    /// What the event counts for against the history's byte bound.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 48;
        let value_bytes = match &self.kind {
            EventKind::Put { value, .. } => value.len(),
            EventKind::Delete => 0,
        };
        OVERHEAD_BYTES + self.key.len() + value_bytes
    }
}

impl ListQuery {
    /// All keys under `prefix` in the default tenant, with values, up to the store maximum.
    pub fn new(prefix: &str) -> ListQuery {
        ListQuery {
            tenant: TenantId::DEFAULT,
            prefix: prefix.to_owned(),
            keys_only: false,
            limit: 0,
            after: None,
        }
    }
}

impl WatchQuery {
    /// Changes under `prefix` in the default tenant from `since` on.
    pub fn new(prefix: &str, since: Revision) -> WatchQuery {
        WatchQuery {
            tenant: TenantId::DEFAULT,
            prefix: prefix.to_owned(),
            since,
            limit: 0,
        }
    }
}
