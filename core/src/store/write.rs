//! Writes: puts, deletes, compare-and-set and the session commands.
//!
//! Every change to a key goes through [`Store::write_key`] or [`Store::delete_key`], which
//! keep the three structures a change touches in step: the tenant's key space, the
//! session's set of ephemeral keys, and the watch history. An operation validates
//! everything first and only then changes state, so a refused operation changes nothing.

use super::answer::{Event, EventKind, Outcome, Response};
use super::error::StoreError;
use super::key::{Revision, SessionId, TenantId, validate_key};
use super::services::{Departure, SERVICES_PREFIX};
use super::store::Store;
use super::tenants::Cap;
use crate::types::LogIndex;
use bytes::Bytes;

impl Store {
    /// A put, or with `expected_version` a compare-and-set (0: only if absent).
    pub(crate) fn put(
        &mut self,
        tenant: TenantId,
        key: String,
        value: Vec<u8>,
        session: Option<SessionId>,
        expected_version: Option<u64>,
        revision: Revision,
    ) -> Response {
        self.check_put(tenant, &key, &value, session)?;
        if let Some(expected) = expected_version {
            let actual = self
                .tenants
                .get(&tenant)
                .map_or(0, |space| space.version_of(&key));
            if actual != expected {
                return Err(StoreError::VersionMismatch {
                    key,
                    expected,
                    actual,
                });
            }
        }
        self.check_put_quota(tenant, &key, value.len())?;
        let version = self.write_key(tenant, key, value.into(), session, revision);
        Ok(Outcome::Written { revision, version })
    }

    /// Deletes a key; `not_found` if absent.
    pub(crate) fn delete(&mut self, tenant: TenantId, key: &str, revision: Revision) -> Response {
        self.check_writable_key(key)?;
        if self.delete_key(tenant, key, revision) {
            Ok(Outcome::Deleted { revision })
        } else {
            Err(StoreError::NotFound {
                key: key.to_owned(),
            })
        }
    }

    /// Opens a session whose id is `index`.
    pub(crate) fn open_session(
        &mut self,
        index: LogIndex,
        tenant: TenantId,
        ttl_ms: u64,
    ) -> Response {
        let (ttl_ms_min, ttl_ms_max) = (
            self.config.session_ttl_ms_min,
            self.config.session_ttl_ms_max,
        );
        if !(ttl_ms_min..=ttl_ms_max).contains(&ttl_ms) {
            return Err(StoreError::invalid_request(format!(
                "session TTL {ttl_ms} ms is outside [{ttl_ms_min}, {ttl_ms_max}] ms"
            )));
        }
        if self.sessions.len() >= self.config.sessions_max {
            return Err(StoreError::LimitReached {
                what: "open sessions".to_owned(),
                max: self.config.sessions_max as u64,
            });
        }
        self.check_cap(tenant, Cap::Sessions, 1)?;
        let session = SessionId::new(index.get());
        let expires_at = self.sessions.open(session, tenant, ttl_ms);
        self.count(tenant, Cap::Sessions, 1);
        Ok(Outcome::SessionOpened {
            session,
            ttl_ms,
            expires_at,
        })
    }

    /// Closes a session of `tenant` and deletes its ephemeral keys.
    pub(crate) fn close_session(
        &mut self,
        tenant: TenantId,
        session: SessionId,
        revision: Revision,
    ) -> Response {
        self.sessions.check_open(session, tenant)?;
        let keys_deleted = self.end_session(session, revision, Departure::Graceful);
        Ok(Outcome::SessionClosed {
            session,
            keys_deleted,
            revision: self.revision,
        })
    }

    /// Removes a session (closed or expired) and deletes its keys at `revision`; returns how
    /// many keys were deleted.
    pub(crate) fn end_session(
        &mut self,
        session: SessionId,
        revision: Revision,
        departure: Departure,
    ) -> u64 {
        let Some(ended) = self.sessions.remove(session) else {
            return 0;
        };
        self.count(ended.tenant, Cap::Sessions, -1);
        // Whoever holds state bound to the session hears of its end: service groups lose
        // the member it held.
        self.on_session_ended(session, revision, departure);
        let mut keys_deleted = 0;
        for key in &ended.keys {
            if self.delete_key(ended.tenant, key, revision) {
                keys_deleted += 1;
            }
        }
        keys_deleted
    }

    /// Checks everything a put needs before it changes anything.
    pub(crate) fn check_put(
        &self,
        tenant: TenantId,
        key: &str,
        value: &[u8],
        session: Option<SessionId>,
    ) -> Result<(), StoreError> {
        self.check_writable_key(key)?;
        if value.len() > self.config.value_bytes_max {
            return Err(StoreError::too_large(
                "value",
                value.len(),
                self.config.value_bytes_max,
            ));
        }
        if let Some(session) = session {
            self.sessions.check_open(session, tenant)?;
        }
        Ok(())
    }

    pub(crate) fn check_key(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key, self.config.key_bytes_max)
    }

    /// A key a client may write: valid, and not under the prefix the store keeps for service
    /// groups (`/_services`), which only the store writes.
    pub(crate) fn check_writable_key(&self, key: &str) -> Result<(), StoreError> {
        self.check_key(key)?;
        let reserved = key
            .strip_prefix(SERVICES_PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if reserved {
            return Err(StoreError::InvalidKey {
                key: key.to_owned(),
                reason: format!("keys under {SERVICES_PREFIX} are written by service groups only"),
            });
        }
        Ok(())
    }

    /// Writes a validated key at `revision`, keeping session bindings and the watch history
    /// in step. Returns the key's new version.
    pub(crate) fn write_key(
        &mut self,
        tenant: TenantId,
        key: String,
        value: Bytes,
        session: Option<SessionId>,
        revision: Revision,
    ) -> u64 {
        debug_assert!(revision >= self.revision, "the revision never decreases");
        let event_key = key.clone();
        let event_value = value.clone();
        let value_bytes = value.len();
        let effect = self
            .tenants
            .entry(tenant)
            .or_default()
            .put(key, value, session, revision);
        self.count_key_change(
            tenant,
            &event_key,
            effect.previous_value_bytes,
            Some(value_bytes),
        );
        if effect.previous_session != session {
            if let Some(previous) = effect.previous_session {
                self.sessions.unbind(previous, &event_key);
            }
            if let Some(current) = session {
                self.sessions.bind(current, &event_key);
            }
        }
        self.revision = revision;
        self.history.push(Event {
            revision,
            tenant,
            key: event_key,
            kind: EventKind::Put {
                value: event_value,
                version: effect.version,
                create_revision: effect.create_revision,
            },
        });
        effect.version
    }

    /// Deletes a key at `revision` if it exists, keeping session bindings and the watch
    /// history in step. Returns whether it existed.
    pub(crate) fn delete_key(&mut self, tenant: TenantId, key: &str, revision: Revision) -> bool {
        debug_assert!(revision >= self.revision, "the revision never decreases");
        let Some(space) = self.tenants.get_mut(&tenant) else {
            return false;
        };
        let Some(removed) = space.remove(key) else {
            return false;
        };
        if space.is_empty() {
            self.tenants.remove(&tenant);
        }
        self.count_key_change(tenant, key, Some(removed.value.len()), None);
        if let Some(session) = removed.session {
            self.sessions.unbind(session, key);
        }
        self.revision = revision;
        self.history.push(Event {
            revision,
            tenant,
            key: key.to_owned(),
            kind: EventKind::Delete,
        });
        true
    }
}
