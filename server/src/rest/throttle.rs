//! The HTTP front's memory of the replica's rate refusals, so that a tenant over a rate is
//! refused at the head of its next request, before its body is read.
//!
//! The decision is the replica's: its token buckets refuse a request with a [`RateRefusal`]
//! that says how long the bucket stays short of what the request needed. Until then, any
//! request of that tenant needing as much of the same kind would be refused too (a bucket only
//! refills with time, and every request it lets through takes from it), so the front refuses
//! such requests itself, with the same answer and the time left. It never refuses a request
//! the replica would have let through. What it saves is the body: a tenant flooding with
//! 256 KiB writes is refused for the price of a head, instead of 256 KiB read, copied and
//! handed to the node loop per refusal, which was what slowed every other tenant down.
//!
//! Only a tenant with a refusal on record pays for the check: a request whose token names no
//! such tenant goes straight through, unverified here (the handler verifies it as usual).
//!
//! When a refusal lapses, the bucket holds about what the refused request needed, and the
//! first request needing as much takes it. Every request a flood had waiting behind the
//! refusal would otherwise reach the replica at that instant, each with its body read and
//! handed to the node loop (64 connections of 256 KiB writes: 16 MB at every lapse, which
//! stalled the other tenants' writes behind it). So the lapse lets one request through and
//! puts a prediction in the refusal's place: the bucket as it will be once that request has
//! taken its share, refilling at the tenant's rate since the lapse. The requests behind are
//! refused at their heads until the bucket holds their need again; a request the prediction
//! got wrong (the replica refused it too) records the replica's refusal instead.

use rafting_core::replica::{RateKind, RateRefusal};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusals on record at most; the oldest lapse first when there are more.
const REMEMBERED_MAX: usize = 4_096;

/// What a request is about to ask of its tenant's buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// A write of this many bytes (as the replica counts them).
    Write {
        bytes: u64,
    },
    Read,
}

#[derive(Clone, Debug)]
struct Remembered {
    refusal: RateRefusal,
    until: Instant,
}

impl Remembered {
    /// The refusal to keep once this one has lapsed at `now` and a request needing `needs`
    /// goes through: the bucket held `needed` at the lapse and has refilled since (up to its
    /// burst); once that request has taken `needs`, a request needing as much waits for the
    /// difference to refill. `None` when nothing is to be kept: a smaller request (it never
    /// met this refusal), a rate of zero (the bucket never refills: the replica answers), a
    /// request the bucket cannot hold yet (the replica refuses it and says until when), or a
    /// bucket that will still hold `needs` afterwards.
    fn after_lapse(&self, needs: u64, now: Instant) -> Option<Remembered> {
        let RateRefusal {
            rate,
            burst,
            needed,
            ..
        } = self.refusal;
        // The replica takes a full bucket for a request larger than the burst.
        let needs = needs.min(burst.max(needed));
        if needs < needed || rate == 0 {
            return None;
        }
        let elapsed_ms =
            u64::try_from(now.duration_since(self.until).as_millis()).unwrap_or(u64::MAX);
        // In thousandths of a token, as the replica counts them (`rate` per millisecond).
        let held = needed
            .saturating_mul(1_000)
            .saturating_add(elapsed_ms.saturating_mul(rate))
            .min(burst.max(needed).saturating_mul(1_000));
        let left = held.checked_sub(needs.saturating_mul(1_000))?;
        let wait_ms = needs
            .saturating_mul(1_000)
            .checked_sub(left)?
            .div_ceil(rate);
        if wait_ms == 0 {
            return None;
        }
        Some(Remembered {
            refusal: RateRefusal {
                needed: needs,
                retry_after_ms: wait_ms,
                ..self.refusal.clone()
            },
            until: now + Duration::from_millis(wait_ms),
        })
    }
}

/// The refusals still in force, by tenant name and kind.
#[derive(Debug, Default)]
pub struct Throttles {
    refusals: Mutex<BTreeMap<(String, RateKind), Remembered>>,
}

impl Throttles {
    /// Records a refusal the replica made at `now`.
    pub fn remember(&self, refusal: &RateRefusal, now: Instant) {
        let until = now + Duration::from_millis(refusal.retry_after_ms);
        let mut refusals = self.lock();
        if refusals.len() >= REMEMBERED_MAX {
            refusals.retain(|_, remembered| remembered.until > now);
        }
        if refusals.len() >= REMEMBERED_MAX {
            return;
        }
        refusals.insert(
            (refusal.tenant.clone(), refusal.kind),
            Remembered {
                refusal: refusal.clone(),
                until,
            },
        );
    }

    /// Whether `tenant` has any refusal on record (lapsed or not): only then is a request of
    /// it worth authenticating at its head.
    pub fn is_throttled(&self, tenant: &str) -> bool {
        let refusals = self.lock();
        refusals
            .range((tenant.to_owned(), RateKind::Writes)..)
            .next()
            .is_some_and(|((name, _), _)| name == tenant)
    }

    /// The refusal `demand` of `tenant` meets at `now`, with the time left to wait, if one is
    /// still in force.
    pub fn refusal(&self, tenant: &str, demand: Demand, now: Instant) -> Option<RateRefusal> {
        let mut refusals = self.lock();
        let kinds: &[(RateKind, u64)] = match demand {
            Demand::Write { bytes } => &[(RateKind::Writes, 1), (RateKind::WriteBytes, bytes)],
            Demand::Read => &[(RateKind::Reads, 1)],
        };
        for &(kind, needs) in kinds {
            let key = (tenant.to_owned(), kind);
            let Some(remembered) = refusals.get(&key) else {
                continue;
            };
            if remembered.until <= now {
                match remembered.after_lapse(needs, now) {
                    Some(predicted) => {
                        refusals.insert(key, predicted);
                    }
                    None => {
                        refusals.remove(&key);
                    }
                }
                continue;
            }
            if needs >= remembered.refusal.needed {
                let left = remembered.until.duration_since(now);
                let retry_after_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
                return Some(RateRefusal {
                    retry_after_ms,
                    ..remembered.refusal.clone()
                });
            }
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, RateKind), Remembered>> {
        self.refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(tenant: &str, kind: RateKind, needed: u64, retry_after_ms: u64) -> RateRefusal {
        RateRefusal {
            tenant: tenant.into(),
            kind,
            rate: 100,
            burst: 200,
            retry_after_ms,
            needed,
        }
    }

    #[test]
    fn a_refusal_holds_for_its_wait_and_only_for_requests_needing_as_much() {
        let throttles = Throttles::default();
        let start = Instant::now();
        throttles.remember(&refusal("a", RateKind::WriteBytes, 1_000, 50), start);
        assert!(throttles.is_throttled("a"));
        assert!(!throttles.is_throttled("b") && !throttles.is_throttled(""));

        let soon = start + Duration::from_millis(20);
        let refused = throttles
            .refusal("a", Demand::Write { bytes: 1_000 }, soon)
            .expect("as large a write is refused");
        assert_eq!(
            refused.retry_after_ms, 30,
            "the time left, not the time first given"
        );
        assert_eq!(refused.kind, RateKind::WriteBytes);
        assert_eq!(
            throttles.refusal("a", Demand::Write { bytes: 999 }, soon),
            None,
            "a smaller write may fit in what the bucket holds"
        );
        assert_eq!(throttles.refusal("a", Demand::Read, soon), None);
        assert_eq!(
            throttles.refusal("b", Demand::Write { bytes: 1_000 }, soon),
            None
        );

        let later = start + Duration::from_millis(50);
        assert_eq!(
            throttles.refusal("a", Demand::Write { bytes: 999 }, later),
            None,
            "lapsed at its time"
        );
        assert!(
            !throttles.is_throttled("a"),
            "a lapsed refusal met by a smaller request is forgotten"
        );
    }

    // At a lapse one request goes through and the others behind it are refused at their
    // heads until the bucket holds their need again (1,000 bytes at 100 per second: 10 s),
    // less what it refilled between the lapse and that request.
    #[test]
    fn a_lapse_lets_one_request_through_and_predicts_the_bucket_after_it() {
        let bytes_refusal = RateRefusal {
            burst: 2_000,
            ..refusal("a", RateKind::WriteBytes, 1_000, 50)
        };
        let throttles = Throttles::default();
        let start = Instant::now();
        throttles.remember(&bytes_refusal, start);
        let lapse = start + Duration::from_millis(50);
        let write = Demand::Write { bytes: 1_000 };
        assert_eq!(
            throttles.refusal("a", write, lapse),
            None,
            "the first passes"
        );
        let behind = throttles
            .refusal("a", write, lapse)
            .expect("the next one at the same instant is refused at its head");
        assert_eq!(behind.retry_after_ms, 10_000);
        assert_eq!(behind.needed, 1_000);
        assert_eq!(
            throttles.refusal("a", Demand::Write { bytes: 999 }, lapse),
            None,
            "a smaller request is still the replica's to decide"
        );
        let after = lapse + Duration::from_millis(10_000);
        assert_eq!(
            throttles.refusal("a", write, after),
            None,
            "refilled: passes"
        );

        // Arriving 4 s after its lapse, the request found 1,400 in the bucket and leaves
        // 400: the next needs 6 s.
        let throttles = Throttles::default();
        throttles.remember(&bytes_refusal, start);
        let late = lapse + Duration::from_millis(4_000);
        assert_eq!(throttles.refusal("a", write, late), None);
        let behind = throttles.refusal("a", write, late).expect("refused");
        assert_eq!(behind.retry_after_ms, 6_000);

        // A bucket refilled far past the need (200 writes of burst) still holds enough after
        // the request: nothing to predict, the next passes too.
        let throttles = Throttles::default();
        throttles.remember(&refusal("a", RateKind::Writes, 1, 10), start);
        let much_later = start + Duration::from_secs(60);
        assert_eq!(
            throttles.refusal("a", Demand::Write { bytes: 0 }, much_later),
            None
        );
        assert!(
            throttles
                .refusal("a", Demand::Write { bytes: 0 }, much_later)
                .is_none(),
            "a burst of 200 writes still holds 199 after one: nothing to predict"
        );
    }

    #[test]
    fn a_refusal_of_requests_refuses_every_write_and_one_of_reads_every_read() {
        let throttles = Throttles::default();
        let start = Instant::now();
        throttles.remember(&refusal("a", RateKind::Writes, 1, 10), start);
        throttles.remember(&refusal("a", RateKind::Reads, 1, 10), start);
        let soon = start + Duration::from_millis(1);
        assert_eq!(
            throttles
                .refusal("a", Demand::Write { bytes: 0 }, soon)
                .map(|refused| refused.kind),
            Some(RateKind::Writes)
        );
        assert_eq!(
            throttles
                .refusal("a", Demand::Read, soon)
                .map(|refused| refused.kind),
            Some(RateKind::Reads)
        );
    }

    #[test]
    fn the_record_is_bounded_and_lapsed_refusals_make_room() {
        let throttles = Throttles::default();
        let start = Instant::now();
        for tenant in 0..REMEMBERED_MAX {
            throttles.remember(&refusal(&tenant.to_string(), RateKind::Writes, 1, 5), start);
        }
        throttles.remember(&refusal("late", RateKind::Writes, 1, 5), start);
        assert!(!throttles.is_throttled("late"), "full: not recorded");
        throttles.remember(
            &refusal("later", RateKind::Writes, 1, 5),
            start + Duration::from_millis(5),
        );
        assert!(throttles.is_throttled("later"), "the lapsed ones made room");
        assert!(!throttles.is_throttled("0"));
    }
}
