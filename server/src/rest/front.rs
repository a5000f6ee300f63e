//! What the REST API decides at a request's head, before its body is read
//! ([`crate::http::Handler::screen`]): whose connection this is, whether the tenant may hold
//! one more connection to this node, and whether a rate refusal of the replica still holds for
//! it ([`super::throttle`]).
//!
//! A connection belongs to the tenant of the last token verified on it. The first request of a
//! connection (or one with another token) is authenticated here, once; the next ones with the
//! same token are not authenticated again at their heads (the handler still checks every
//! request). A tenant holds at most its `connections` cap of connections to one node: the one
//! over it is answered `429 quota_connections` and closed, so one tenant cannot take the
//! connection slots every tenant shares. As a connection has at most one request in the
//! workers' queue at a time ([`crate::http`]), the cap also bounds the tenant's share of that
//! queue: a tenant flooding from thousands of connections holds at most `connections` places
//! in it, and every other tenant's requests keep theirs. The administrator and an open
//! cluster are not counted.
//!
//! A request refused at its head for a rate the replica refused moments ago was sent by a
//! client that did not wait as told: its answer is held for the rest of that wait before it
//! is sent and the body read, so a flood slows to the rate it was answered with instead of
//! costing the node a refusal per round trip. A connection that keeps sending without waiting
//! is held longer each time: from its second request refused at its head in a row, at least
//! [`HOLD_STEP`] more per refusal, up to [`HOLD_MAX`]; a request that gets through clears the
//! count.
//! A client that waits as told never meets it (its next request gets through), while a flood
//! of connections that ignore `Retry-After` costs the node, and the cores it shares, a
//! refusal per connection per second instead of one per connection at every refill of the
//! bucket. A held answer is a timer of the HTTP event loop, not a thread. Each hold is
//! stretched or shortened at random by up to [`HOLD_JITTER`]: connections a flood opened
//! together, held alike, would otherwise stay in step and send their next requests (and
//! bodies) in one burst every second, which held another tenant's puts for a few
//! milliseconds each time (`bench/tenants-flood.py`).

use super::errors::ApiError;
use super::throttle::Demand;
use super::{Api, auth, errors, into_response, routes};
use crate::http::{ConnectionState, RequestHead, Screened};
use rafting_core::replica::{RateRefusal, put_cost_bytes};
use routes::Route;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest a request refused at its head is held before its answer.
const HOLD_MAX: Duration = Duration::from_secs(1);
/// What each refusal in a row at its head adds to a connection's shortest hold.
const HOLD_STEP: Duration = Duration::from_millis(100);
/// The share of a hold by which it is stretched or shortened at random.
const HOLD_JITTER: f64 = 0.25;

/// Connections open to this node, per tenant name.
#[derive(Debug, Default)]
pub struct TenantConnections {
    open: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl TenantConnections {
    /// Takes one of `tenant`'s connection slots, or says how many it holds when at `cap`.
    fn take(&self, tenant: &str, cap: Option<u64>) -> Result<Slot, u64> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.get(tenant).copied().unwrap_or(0);
        if cap.is_some_and(|cap| held >= cap) {
            return Err(held);
        }
        open.insert(tenant.to_owned(), held + 1);
        Ok(Slot {
            open: self.open.clone(),
            tenant: tenant.to_owned(),
        })
    }

    /// How many connections `tenant` holds to this node.
    pub fn held(&self, tenant: &str) -> u64 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(tenant).copied().unwrap_or(0)
    }
}

/// One connection counted for a tenant; given back when dropped (the connection closed or
/// moved to another token).
#[derive(Debug)]
struct Slot {
    open: Arc<Mutex<BTreeMap<String, u64>>>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

/// Whom a connection belongs to: the token verified on it and its tenant's slot; and how
/// many of its requests in a row were refused at their heads.
#[derive(Debug)]
struct Owner {
    token: String,
    tenant: String,
    _slot: Slot,
    refused_in_a_row: u32,
}

/// [`crate::http::Handler::screen`] for the API.
pub fn screen(api: &Api, head: &RequestHead<'_>, state: &mut ConnectionState) -> Option<Screened> {
    api.admin_token.as_ref()?;
    let token = auth::bearer_token(head.headers)?;
    let owner = state
        .as_ref()
        .and_then(|state| state.downcast_ref::<Owner>());
    let known = owner
        .is_some_and(|owner| auth::constant_time_equal(owner.token.as_bytes(), token.as_bytes()));
    // The route is parsed only when needed: to authenticate a new token, or to weigh a
    // request of a throttled tenant (a known, unthrottled connection parses nothing here).
    let route = || routes::parse(head.method, head.target).ok();
    if !known {
        let route = route()?;
        // A new token on this connection: the old owner's slot is given back first.
        *state = None;
        let scoped = auth::scope(api, &route, head.headers).ok()?;
        let auth::Principal::Tenant { name } = &scoped.principal else {
            return None;
        };
        let cap = scoped.caps.and_then(|caps| caps.connections);
        match api.tenant_connections.take(name, cap) {
            Ok(slot) => {
                *state = Some(Box::new(Owner {
                    token: token.to_owned(),
                    tenant: name.clone(),
                    _slot: slot,
                    refused_in_a_row: 0,
                }));
            }
            Err(held) => {
                let error = ApiError::new(
                    429,
                    "quota_connections",
                    format!(
                        "tenant {name} holds {held} connections to this node, its cap of {}; \
                         close one (or reuse it: keep-alive) and retry",
                        cap.unwrap_or(0)
                    ),
                )
                .retry_after(1);
                return Some(answer(api, &route, head, error, true, Duration::ZERO));
            }
        }
    }
    let owner = state.as_mut()?.downcast_mut::<Owner>()?;
    if !api.throttles.is_throttled(&owner.tenant) {
        owner.refused_in_a_row = 0;
        return None;
    }
    let route = route()?;
    let demand = match &route {
        Route::KvPut { key, .. } => Demand::Write {
            bytes: put_cost_bytes(key.len(), head.body_bytes?),
        },
        Route::KvGet { .. } | Route::KvList { .. } => Demand::Read,
        _ => return None,
    };
    let Some(refusal) = api.throttles.refusal(&owner.tenant, demand, Instant::now()) else {
        owner.refused_in_a_row = 0;
        return None;
    };
    owner.refused_in_a_row = owner.refused_in_a_row.saturating_add(1);
    let hold = jittered(hold_for(&refusal, owner.refused_in_a_row));
    let error = errors::rate_limited(&refusal);
    Some(answer(api, &route, head, error, false, hold))
}

/// How long the answer to a request refused at its head is held: the rest of the wait the
/// tenant was told, and at least [`HOLD_STEP`] per refusal in a row on this connection after
/// the first, at most [`HOLD_MAX`].
fn hold_for(refusal: &RateRefusal, refused_in_a_row: u32) -> Duration {
    Duration::from_millis(refusal.retry_after_ms)
        .max(HOLD_STEP.saturating_mul(refused_in_a_row.saturating_sub(1)))
        .min(HOLD_MAX)
}

/// `hold` stretched or shortened at random by up to [`HOLD_JITTER`] of it.
fn jittered(hold: Duration) -> Duration {
    hold.mul_f64(1.0 + rand::random_range(-HOLD_JITTER..HOLD_JITTER))
}

fn answer(
    api: &Api,
    route: &Route,
    head: &RequestHead<'_>,
    error: ApiError,
    close: bool,
    delay: Duration,
) -> Screened {
    let mut response = into_response(error.into_reply());
    api.http_metrics.count(route.name(), response.status);
    if let Some(origin) = api.member_origin(head.headers) {
        super::cors::allow(&mut response, &origin);
    }
    Screened {
        response,
        close,
        delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafting_core::replica::RateKind;

    // The first refusal at a head holds for the wait the tenant was told; each one after it
    // in a row holds longer, up to a second.
    #[test]
    fn a_connection_that_keeps_sending_without_waiting_is_held_longer_each_time() {
        let refusal = RateRefusal {
            tenant: "a".into(),
            kind: RateKind::WriteBytes,
            rate: 4 << 20,
            burst: 8 << 20,
            retry_after_ms: 60,
            needed: 256 << 10,
        };
        let holds: Vec<u128> = (1..=13)
            .map(|in_a_row| hold_for(&refusal, in_a_row).as_millis())
            .collect();
        assert_eq!(
            holds,
            [
                60, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000, 1000
            ]
        );
        let long = RateRefusal {
            retry_after_ms: 5_000,
            ..refusal
        };
        assert_eq!(hold_for(&long, 1), HOLD_MAX);
    }

    // Holds alike come out spread, within a quarter either way.
    #[test]
    fn holds_are_spread_at_random_within_a_quarter() {
        let holds: Vec<Duration> = (0..200).map(|_| jittered(HOLD_MAX)).collect();
        assert!(holds.iter().all(|hold| {
            (Duration::from_millis(750)..=Duration::from_millis(1250)).contains(hold)
        }));
        let early = holds
            .iter()
            .filter(|hold| **hold < Duration::from_millis(900))
            .count();
        let late = holds
            .iter()
            .filter(|hold| **hold > Duration::from_millis(1100))
            .count();
        assert!(early > 20 && late > 20, "{early} early, {late} late of 200");
    }
}
