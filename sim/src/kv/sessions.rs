//! Session checks: an ephemeral key disappears neither too early nor too late.
//!
//! The store expires a session when its replicated clock passes the session's deadline, and
//! that clock only advances with the leader's `Tick` commands (see
//! `rafting_core::store::sessions`). The simulator knows real time, so it can judge the clock
//! from outside:
//!
//! - **`ephemeral_key_kept`**: a session renewed (opened or kept alive, and acknowledged) at a
//!   request invoked at real time `R` is alive until at least `R + (ttl − tick_advance_max) /
//!   rate_max`: after the renewal is applied the clock can jump by at most one capped tick,
//!   then runs no faster than the fastest node's clock. Expiring earlier is a violation.
//! - **`ephemeral_key_expires`**: a session abandoned by its owner (no renewal after the one
//!   acknowledged at real time `A`) is gone, with its keys, by `A + ttl / rate_min +` the time
//!   the cluster could not commit anything (elections, lost quorums, stalled leaders) `+` a
//!   small allowance per leader change (the first tick of a term does not advance the clock)
//!   `+` one allowance for tick cadence and commit latency. Staying longer is a violation;
//!   so is a key still readable on a node that applied its session's expiry.
//!
//! The check functions are pure; the simulator feeds them [`SessionRecord`]s.

use crate::checkers::Violation;
use rafting_core::store::TenantId;
use std::collections::BTreeSet;

/// The names under which session checks report violations.
pub mod check {
    /// A session kept alive by its owner is not expired (its ephemeral keys stay).
    pub const EPHEMERAL_KEY_KEPT: &str = "ephemeral_key_kept";
    /// A session abandoned by its owner expires, and its ephemeral keys go, within a bound.
    pub const EPHEMERAL_KEY_EXPIRES: &str = "ephemeral_key_expires";
    /// The client history is linearizable (Wing & Gong search over the KV model).
    pub const LINEARIZABILITY: &str = "linearizability";
    /// A session close answers with the number of keys it deleted: the keys still bound to
    /// the session (a key overwritten without the session is no longer bound to it).
    pub const SESSION_KEYS_DELETED: &str = "session_keys_deleted";
    /// A retried write gets the answer of its first application: the store keeps a client's
    /// answers until the client acknowledges them (or their count passes the store's cap),
    /// so a retry of an unacknowledged request is never refused as stale.
    pub const RETRY_ANSWERED: &str = "retry_answered";
}

/// Real-time bounds of the session clock, from the seed's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockBounds {
    /// Slowest and fastest node clock, in parts per million of real time.
    pub rate_ppm_min: u64,
    pub rate_ppm_max: u64,
    /// The store's cap on one tick's advance.
    pub tick_advance_ms_max: u64,
    /// Allowance for each leader change in an abandoned session's window.
    pub per_leader_change_us: u64,
    /// Allowance for tick cadence and commit latency, once per session.
    pub slack_us: u64,
}

/// What the simulator knows about one session, from its owner and from the nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub session: u64,
    pub client: u64,
    /// The tenant its ephemeral keys belong to.
    pub tenant: TenantId,
    pub ttl_ms: u64,
    /// Invocation time of the latest acknowledged open or keep-alive.
    pub renewal_invoked_us: u64,
    /// Completion time of the latest acknowledged open or keep-alive.
    pub renewal_acknowledged_us: u64,
    /// Ephemeral keys the owner was told it wrote under the session.
    pub keys: BTreeSet<String>,
    /// When the owner stopped renewing it, if it did.
    pub abandoned_at_us: Option<u64>,
    /// The owner asked to close it: it may end at any time from then on.
    pub closing: bool,
    /// When a node first applied its expiry or its close.
    pub ended_at_us: Option<u64>,
    /// Since the last acknowledged renewal: real time during which the cluster committed
    /// nothing, and leader changes seen.
    pub stalled_us: u64,
    pub leader_changes: u64,
}

impl SessionRecord {
    /// The earliest real time at which the store may expire the session.
    pub fn earliest_expiry_us(&self, bounds: &ClockBounds) -> u64 {
        let guaranteed_ms = self.ttl_ms.saturating_sub(bounds.tick_advance_ms_max);
        self.renewal_invoked_us + scale_us(guaranteed_ms, bounds.rate_ppm_max)
    }

    /// The latest real time by which an abandoned session must be gone, if abandoned.
    pub fn latest_expiry_us(&self, bounds: &ClockBounds) -> Option<u64> {
        self.abandoned_at_us?;
        Some(
            self.renewal_acknowledged_us
                + scale_us(self.ttl_ms, bounds.rate_ppm_min)
                + self.stalled_us
                + self.leader_changes * bounds.per_leader_change_us
                + bounds.slack_us,
        )
    }
}

/// Real microseconds for `local_ms` of a clock running at `rate_ppm`.
fn scale_us(local_ms: u64, rate_ppm: u64) -> u64 {
    (u128::from(local_ms) * 1000 * 1_000_000 / u128::from(rate_ppm.max(1))) as u64
}

fn violation(check: &'static str, record: &SessionRecord, detail: String) -> Violation {
    Violation {
        check,
        at_us: 0,
        nodes: Vec::new(),
        index: None,
        term: None,
        detail: format!(
            "session {} of client {} (ttl {} ms): {detail}",
            record.session, record.client, record.ttl_ms
        ),
    }
}

/// A node applied the session's expiry at `expired_at_us`: not before it was due.
pub fn ephemeral_key_kept(
    record: &SessionRecord,
    expired_at_us: u64,
    bounds: &ClockBounds,
) -> Result<(), Violation> {
    let earliest_us = record.earliest_expiry_us(bounds);
    if record.closing || expired_at_us >= earliest_us {
        return Ok(());
    }
    Err(violation(
        check::EPHEMERAL_KEY_KEPT,
        record,
        format!(
            "expired at {expired_at_us} us, but it was renewed by a request invoked at {} us \
             and must live until at least {earliest_us} us (keys {:?})",
            record.renewal_invoked_us, record.keys
        ),
    ))
}

/// An abandoned session must be gone by its bound. `now_us` is the time of the check; call it
/// whenever the session may be overdue, and at the end of the run.
pub fn ephemeral_key_expires(
    record: &SessionRecord,
    now_us: u64,
    bounds: &ClockBounds,
) -> Result<(), Violation> {
    let Some(latest_us) = record.latest_expiry_us(bounds) else {
        return Ok(());
    };
    let ended_us = record.ended_at_us.unwrap_or(now_us);
    if ended_us <= latest_us {
        return Ok(());
    }
    let state = match record.ended_at_us {
        Some(ended) => format!("expired only at {ended} us"),
        None => format!("still alive at {now_us} us"),
    };
    Err(violation(
        check::EPHEMERAL_KEY_EXPIRES,
        record,
        format!(
            "abandoned after a renewal acknowledged at {} us, {state}, past its bound of \
             {latest_us} us ({} us without commits, {} leader changes; keys {:?})",
            record.renewal_acknowledged_us, record.stalled_us, record.leader_changes, record.keys
        ),
    ))
}

/// A node applied the session's expiry and still holds one of its ephemeral keys.
pub fn ephemeral_keys_gone(
    record: &SessionRecord,
    node: u64,
    surviving: &[String],
) -> Result<(), Violation> {
    if surviving.is_empty() {
        return Ok(());
    }
    let mut found = violation(
        check::EPHEMERAL_KEY_EXPIRES,
        record,
        format!("node {node} applied its end but still holds {surviving:?}"),
    );
    found.nodes = vec![node];
    Err(found)
}

/// A close of `record`'s session answered that it deleted `keys_deleted` keys: exactly the
/// keys its owner bound to it and did not rebind since (only the owner writes them).
pub fn session_keys_deleted(record: &SessionRecord, keys_deleted: u64) -> Result<(), Violation> {
    if keys_deleted == record.keys.len() as u64 {
        return Ok(());
    }
    Err(violation(
        check::SESSION_KEYS_DELETED,
        record,
        format!(
            "its close deleted {keys_deleted} keys, but the keys bound to it were {:?}",
            record.keys
        ),
    ))
}

/// Client `client`'s request `sequence` was refused as stale (`sequence_min` is the store's
/// lowest sequence still answerable) although the client had acknowledged only the requests
/// below `acknowledged_below` and never had more than `outstanding_max` unacknowledged
/// answers, within the store's cap `responses_max`: its first answer was lost.
pub fn retry_answered(
    client: u64,
    sequence: u64,
    acknowledged_below: u64,
    sequence_min: u64,
    outstanding_max: u64,
    responses_max: u64,
) -> Result<(), Violation> {
    if sequence < acknowledged_below || outstanding_max > responses_max {
        return Ok(());
    }
    Err(Violation {
        check: check::RETRY_ANSWERED,
        at_us: 0,
        nodes: Vec::new(),
        index: None,
        term: None,
        detail: format!(
            "client {client}'s request {sequence} was refused as stale (lowest answerable \
             {sequence_min}), but it had acknowledged only the requests below \
             {acknowledged_below}, at most {outstanding_max} unacknowledged, within the store's \
             cap of {responses_max} cached answers"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    fn bounds() -> ClockBounds {
        ClockBounds {
            rate_ppm_min: 1_000_000,
            rate_ppm_max: 1_000_000,
            tick_advance_ms_max: 2000,
            per_leader_change_us: 1000 * MS,
            slack_us: 500 * MS,
        }
    }

    fn record() -> SessionRecord {
        SessionRecord {
            session: 7,
            client: 2,
            ttl_ms: 5000,
            renewal_invoked_us: 10_000 * MS,
            renewal_acknowledged_us: 10_020 * MS,
            keys: BTreeSet::from([String::from("/eph/c2/s7")]),
            ..SessionRecord::default()
        }
    }

    // A session renewed at 10 s with a 5 s TTL may lose at most one capped tick (2 s): an
    // expiry at 12.5 s is reported, one at 13 s is not, and a closing session may end anytime.
    #[test]
    fn ephemeral_key_kept_catches_an_early_expiry() {
        let record = record();
        let found = ephemeral_key_kept(&record, 12_500 * MS, &bounds()).unwrap_err();
        assert_eq!(found.check, check::EPHEMERAL_KEY_KEPT);
        assert!(ephemeral_key_kept(&record, 13_000 * MS, &bounds()).is_ok());
        let closing = SessionRecord {
            closing: true,
            ..record
        };
        assert!(ephemeral_key_kept(&closing, 10_001 * MS, &bounds()).is_ok());
    }

    // Abandoned after an acknowledgement at 10.02 s: due by 10.02 + 5 + 0.5 s, plus stalls
    // and leader changes. Alive at 16 s is reported; the same with 1 s of stall is not.
    #[test]
    fn ephemeral_key_expires_catches_a_session_that_outlives_its_bound() {
        let abandoned = SessionRecord {
            abandoned_at_us: Some(10_100 * MS),
            ..record()
        };
        let found = ephemeral_key_expires(&abandoned, 16_000 * MS, &bounds()).unwrap_err();
        assert_eq!(found.check, check::EPHEMERAL_KEY_EXPIRES);
        assert!(ephemeral_key_expires(&abandoned, 15_000 * MS, &bounds()).is_ok());
        let stalled = SessionRecord {
            stalled_us: 1000 * MS,
            ..abandoned.clone()
        };
        assert!(ephemeral_key_expires(&stalled, 16_000 * MS, &bounds()).is_ok());
        let ended_late = SessionRecord {
            ended_at_us: Some(17_000 * MS),
            ..abandoned
        };
        assert!(ephemeral_key_expires(&ended_late, 30_000 * MS, &bounds()).is_err());
        // A session its owner still renews is never overdue.
        assert!(ephemeral_key_expires(&record(), 60_000 * MS, &bounds()).is_ok());
    }

    // A node that applied the expiry but still serves the key is reported with that node.
    // A close that deleted a key no longer bound to the session (or none of the bound one)
    // is caught; the right count passes.
    #[test]
    fn session_keys_deleted_catches_a_wrong_count() {
        let bound = record();
        assert!(session_keys_deleted(&bound, 1).is_ok());
        let found = session_keys_deleted(&bound, 0).unwrap_err();
        assert_eq!(found.check, check::SESSION_KEYS_DELETED);
        let rebound = SessionRecord {
            keys: BTreeSet::new(),
            ..record()
        };
        assert!(session_keys_deleted(&rebound, 0).is_ok());
        assert!(session_keys_deleted(&rebound, 1).is_err());
    }

    // A stale refusal of an unacknowledged request within the cache's cap is caught; one of
    // an acknowledged request, or past the cap, is the store's right.
    #[test]
    fn retry_answered_catches_a_lost_first_answer() {
        let found = retry_answered(2, 7, 5, 8, 3, 1024).unwrap_err();
        assert_eq!(found.check, check::RETRY_ANSWERED);
        assert!(retry_answered(2, 4, 5, 5, 3, 1024).is_ok());
        assert!(retry_answered(2, 7, 5, 8, 3, 2).is_ok());
    }

    #[test]
    fn ephemeral_keys_gone_catches_a_surviving_key() {
        let record = record();
        assert!(ephemeral_keys_gone(&record, 3, &[]).is_ok());
        let found = ephemeral_keys_gone(&record, 3, &[String::from("/eph/c2/s7")]).unwrap_err();
        assert_eq!(found.check, check::EPHEMERAL_KEY_EXPIRES);
        assert_eq!(found.nodes, vec![3]);
    }
}
