//! Sessions (leases) and the replicated clock that expires them.
//!
//! # The replicated clock
//!
//! No node reads its own clock when applying. Instead the leader proposes
//! [`Tick { term, now }`](super::Tick) commands carrying its local time, and every node
//! advances the store's clock by the same rule:
//!
//! 1. A tick from an older term than the last one seen is ignored (it cannot happen in a
//!    well-formed log, where terms never decrease, but a confused proposer cannot move time).
//! 2. The first tick of a newer term only records the new leader's reading: the clock does
//!    **not** advance. The time between the old leader's last tick and the new leader's first
//!    one — the election gap — is therefore not counted.
//! 3. A later tick of the same term advances the clock by the leader's elapsed time since its
//!    previous tick, capped at `tick_advance_ms_max` (a leader whose clock jumps, or whose
//!    ticks were delayed by a stall, cannot expire every session in one step). A reading
//!    older than the previous one advances nothing.
//!
//! 4. While no session is open the clock has nothing to expire, so the leader does not tick
//!    at all (see [`crate::store::Store::session_clock_needed`]): an idle cluster writes no
//!    log entries. A tick that finds no session open only records the leader's reading, and
//!    so does the first tick after a session opens in an empty table: the idle time before it
//!    is never counted against the new session (it runs slow by at most one tick interval,
//!    the safe side).
//!
//! So a leader change pauses session time for at most the election gap (plus one tick
//! interval): a healthy session is never expired because its owner could not reach anyone
//! during an election, and no TTL is reset to full either — each session keeps the time it
//! had left. Since the clock only runs while a leader is ticking, it runs slow, never fast,
//! compared with real time: a session never expires *earlier* than its owner expects, which
//! is the safe side for masters with fencing (the owner's library stops acting on its own
//! deadline, measured with its local clock).
//!
//! # Sessions
//!
//! A session belongs to a tenant, has a TTL and a deadline (`clock + ttl`, pushed back by
//! every keep-alive). It expires at the first tick where `clock >= deadline`, and its
//! ephemeral keys are deleted in that same command, at one revision.

use super::command::Tick;
use super::error::StoreError;
use super::key::{SessionId, TenantId};
use crate::types::{Millis, Term};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The replicated session clock (rules in the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionClock {
    now: Millis,
    leader_term: Term,
    leader_last_reading: Millis,
    /// The next tick only records the leader's reading (rule 4): no session was open
    /// since the last one, so the leader may not have ticked for a long time.
    resync: bool,
}

impl SessionClock {
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Applies one tick; returns by how much the clock advanced.
    pub fn on_tick(&mut self, tick: Tick, advance_ms_max: u64) -> u64 {
        if tick.term < self.leader_term {
            return 0;
        }
        if tick.term > self.leader_term || self.resync {
            // Rule 2 (a new leader) and rule 4 (after a time with no session): only record.
            self.leader_term = tick.term;
            self.leader_last_reading = tick.now;
            self.resync = false;
            return 0;
        }
        let elapsed_ms = tick.now.since(self.leader_last_reading);
        self.leader_last_reading = self.leader_last_reading.max(tick.now);
        let advance_ms = elapsed_ms.min(advance_ms_max);
        self.now = self.now.plus(advance_ms);
        advance_ms
    }
}

/// One open session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub tenant: TenantId,
    pub ttl_ms: u64,
    pub expires_at: Millis,
    /// The ephemeral keys bound to this session, in the session's tenant.
    pub keys: BTreeSet<String>,
}

/// All open sessions, with a deadline index so that a tick finds the expired ones without
/// scanning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionTable {
    clock: SessionClock,
    sessions: OrdMap<SessionId, Session>,
    deadlines: OrdSet<(Millis, SessionId)>,
}

impl SessionTable {
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Open sessions of `tenant`.
    pub fn count_of(&self, tenant: TenantId) -> usize {
        self.sessions
            .values()
            .filter(|s| s.tenant == tenant)
            .count()
    }

    /// The open sessions of `tenant`, by id.
    pub fn ids_of(&self, tenant: TenantId) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.tenant == tenant)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Advances the clock and returns the sessions now expired, in deadline order (ties by
    /// id). They stay open until the caller closes them with [`SessionTable::remove`].
    pub fn on_tick(&mut self, tick: Tick, advance_ms_max: u64) -> Vec<SessionId> {
        if self.sessions.is_empty() {
            self.clock.resync = true;
        }
        self.clock.on_tick(tick, advance_ms_max);
        let now = self.clock.now();
        self.deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, session)| *session)
            .collect()
    }

    /// Opens `session`; the caller has checked the TTL bounds and the session cap.
    pub fn open(&mut self, session: SessionId, tenant: TenantId, ttl_ms: u64) -> Millis {
        if self.sessions.is_empty() {
            self.clock.resync = true;
        }
        let expires_at = self.clock.now().plus(ttl_ms);
        let previous = self.sessions.insert(
            session,
            Session {
                tenant,
                ttl_ms,
                expires_at,
                keys: BTreeSet::new(),
            },
        );
        assert!(
            previous.is_none(),
            "session ids are log indexes, never reused"
        );
        self.deadlines.insert((expires_at, session));
        expires_at
    }

    /// The session if it is open in `tenant`; another tenant's session is "not found".
    pub fn check_open(&self, session: SessionId, tenant: TenantId) -> Result<&Session, StoreError> {
        match self.sessions.get(&session) {
            Some(found) if found.tenant == tenant => Ok(found),
            _ => Err(StoreError::SessionNotFound { session }),
        }
    }

    /// Pushes the deadline back to `now + ttl`.
    /// The deadline of an open session.
    pub fn expires_at(&self, session: SessionId) -> Option<Millis> {
        self.sessions.get(&session).map(|open| open.expires_at)
    }

    pub fn keep_alive(
        &mut self,
        session: SessionId,
        tenant: TenantId,
    ) -> Result<Millis, StoreError> {
        self.check_open(session, tenant)?;
        let now = self.clock.now();
        let found = self.sessions.get_mut(&session).expect("checked just above");
        self.deadlines.remove(&(found.expires_at, session));
        found.expires_at = now.plus(found.ttl_ms);
        self.deadlines.insert((found.expires_at, session));
        Ok(found.expires_at)
    }

    /// Removes the session and returns it (with its ephemeral keys, for the caller to
    /// delete).
    pub fn remove(&mut self, session: SessionId) -> Option<Session> {
        let removed = self.sessions.remove(&session)?;
        self.deadlines.remove(&(removed.expires_at, session));
        Some(removed)
    }

    /// Records that `key` is now bound to `session` (which must be open).
    pub fn bind(&mut self, session: SessionId, key: &str) {
        let found = self
            .sessions
            .get_mut(&session)
            .expect("binding to an open session");
        found.keys.insert(key.to_owned());
    }

    /// Forgets that `key` was bound to `session`, if the session is still open.
    pub fn unbind(&mut self, session: SessionId, key: &str) {
        if let Some(found) = self.sessions.get_mut(&session) {
            found.keys.remove(key);
        }
    }
}
