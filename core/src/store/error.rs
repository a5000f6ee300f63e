//! The store's errors: typed values with a stable code string.
//!
//! Errors are part of the replicated answer (a cached response may be an error), so they are
//! plain serde data, compare equal across nodes, and never carry anything node-local. The
//! [`StoreError::code`] strings are a public contract: the REST API and clients match on
//! them, so they never change once released.

use super::key::{ClientId, Revision, SessionId};
use super::tenants::Cap;
use serde::{Deserialize, Serialize};

/// Every way a store command or query can fail.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key not found: {key}")]
    NotFound { key: String },

    /// A compare-and-set found another version than the one expected (0 means "absent").
    #[error("version mismatch on {key}: expected {expected}, found {actual}")]
    VersionMismatch {
        key: String,
        expected: u64,
        actual: u64,
    },

    /// The key (or prefix) breaks the key rules.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    /// A key, value, transaction or listing is over its cap.
    #[error("{what} too large: {size_bytes} > {size_bytes_max}")]
    TooLarge {
        what: String,
        size_bytes: u64,
        size_bytes_max: u64,
    },

    /// The exactly-once record of this client is gone (never registered, or evicted): the
    /// store can no longer tell whether a request was applied, so it refuses it. The client
    /// must register again and treat its outstanding requests as "maybe applied".
    #[error("unknown client {client}: never registered, or evicted; register again")]
    UnknownClient { client: ClientId },

    /// The request's sequence number is below what the store still remembers for this
    /// client (acknowledged or evicted from its response cache); it is never applied twice.
    #[error("stale request {sequence} from {client}: the lowest accepted is {sequence_min}")]
    StaleRequest {
        client: ClientId,
        sequence: u64,
        sequence_min: u64,
    },

    /// No service group has this name (in this tenant).
    #[error("service group not found: {group}")]
    GroupNotFound { group: String },

    /// The group has no member with this instance id (never registered, or gone).
    #[error("member {instance} not found in service group {group}")]
    MemberNotFound { group: String, instance: String },

    /// A resign from a member that is not the master of the group's current epoch.
    #[error("stale epoch {epoch} for service group {group}: the current epoch is {current}")]
    StaleEpoch {
        group: String,
        epoch: u64,
        current: u64,
    },

    /// The instance is registered in the group already, with a live session.
    #[error(
        "member {instance} is already registered in service group {group}; it can register again once its session ends"
    )]
    MemberExists { group: String, instance: String },

    /// A member brought group settings that differ from the group's.
    #[error("service group {group} exists with other settings: {differences}")]
    SettingsConflict { group: String, differences: String },

    /// The session (lease) does not exist in this tenant: never opened, closed, or expired.
    #[error("session not found: {session}")]
    SessionNotFound { session: SessionId },

    /// A watch asked for history that has been dropped. Re-list the prefix (a listing
    /// carries the store revision) and watch again from that revision + 1, or, if missing
    /// events is acceptable, resume from `restart_from`, the oldest revision still kept.
    #[error(
        "revision {requested} is compacted; the oldest kept revision is {restart_from}, the \
         current one {current_revision}"
    )]
    Compacted {
        requested: Revision,
        restart_from: Revision,
        /// The store's revision when the watch was refused.
        current_revision: Revision,
    },

    /// A store-wide bound was reached (sessions, clients); the request is refused whole.
    #[error("limit reached: {what} (max {max})")]
    LimitReached { what: String, max: u64 },

    /// The request is malformed in a way not covered above (a TTL out of range, an empty
    /// transaction branch over its cap, ...).
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// The command bytes could not be decoded. Applied entries with garbage bytes produce
    /// this answer on every node alike, and change nothing.
    #[error("undecodable command: {reason}")]
    BadCommand { reason: String },

    /// The write would take the tenant over one of its stored caps. Deletes and session
    /// closes are never refused this way.
    #[error(
        "tenant {tenant} is at its {cap} cap: usage {usage} of {limit}, and this request adds \
         {requested}"
    )]
    QuotaExceeded {
        tenant: String,
        cap: Cap,
        usage: u64,
        limit: u64,
        requested: u64,
    },

    /// No tenant has this name (or the request's tenant was deleted).
    #[error("tenant not found: {name}")]
    TenantNotFound { name: String },

    /// A tenant with this name exists already.
    #[error("tenant {name} exists already")]
    TenantExists { name: String },

    /// A tenant that holds data is deleted only with `purge`.
    #[error(
        "tenant {tenant} still holds {keys} keys, {sessions} sessions and {services} service \
         groups; delete them first, or delete the tenant with ?purge"
    )]
    TenantNotEmpty {
        tenant: String,
        keys: u64,
        sessions: u64,
        services: u64,
    },

    /// The name is not a valid tenant name.
    #[error("invalid tenant name {name:?}: {reason}")]
    InvalidTenantName { name: String, reason: String },

    /// The tenant has no live token with this id.
    #[error("tenant {tenant} has no token {token}")]
    TokenNotFound { tenant: String, token: u64 },

    /// Reserved for the server: this node is not the leader. The store never returns it.
    #[error("not the leader")]
    NotLeader,
}

impl StoreError {
    /// The stable code string of this error, as the REST API reports it.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::VersionMismatch { .. } => "version_mismatch",
            StoreError::InvalidKey { .. } => "invalid_key",
            StoreError::TooLarge { .. } => "too_large",
            StoreError::UnknownClient { .. } => "unknown_client",
            StoreError::StaleRequest { .. } => "stale_request",
            StoreError::GroupNotFound { .. } => "group_not_found",
            StoreError::MemberNotFound { .. } => "member_not_found",
            StoreError::MemberExists { .. } => "member_exists",
            StoreError::StaleEpoch { .. } => "stale_epoch",
            StoreError::SettingsConflict { .. } => "settings_conflict",
            StoreError::SessionNotFound { .. } => "session_not_found",
            StoreError::Compacted { .. } => "compacted",
            StoreError::LimitReached { .. } => "limit_reached",
            StoreError::InvalidRequest { .. } => "invalid_request",
            StoreError::BadCommand { .. } => "bad_command",
            StoreError::QuotaExceeded { cap, .. } => cap.code(),
            StoreError::TenantNotFound { .. } => "tenant_not_found",
            StoreError::TenantExists { .. } => "tenant_exists",
            StoreError::TenantNotEmpty { .. } => "tenant_not_empty",
            StoreError::InvalidTenantName { .. } => "invalid_tenant_name",
            StoreError::TokenNotFound { .. } => "token_not_found",
            StoreError::NotLeader => "not_leader",
        }
    }

    pub(crate) fn too_large(what: &str, size_bytes: usize, size_bytes_max: usize) -> StoreError {
        StoreError::TooLarge {
            what: what.to_owned(),
            size_bytes: size_bytes as u64,
            size_bytes_max: size_bytes_max as u64,
        }
    }

    pub(crate) fn invalid_request(reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRequest {
            reason: reason.into(),
        }
    }
}
