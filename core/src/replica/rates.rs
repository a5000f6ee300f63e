//! Per-tenant request rates: a token bucket per tenant and kind (writes, reads), with time
//! as an input like everything else in `core`.
//!
//! A bucket holds up to `burst` tokens (default: one second's worth, `rate`), starts full,
//! and refills at `rate` tokens per second; a request takes one token or is refused with the
//! time until one is there. Rates are node-local (each node counts what it serves), which is
//! what a rate is for: protecting the node doing the work.

use crate::store::{Caps, TenantId};
use crate::types::Millis;
use std::collections::BTreeMap;

/// Tokens are counted in thousandths so that a refill of a few milliseconds is not lost.
const MILLI: u64 = 1_000;
/// What a refusal with a rate of zero asks the client to wait.
const RETRY_AFTER_MS_AT_RATE_ZERO: u64 = 60_000;

/// Writes, bytes written, or reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RateKind {
    Writes,
    /// Bytes of keys and values written (what a write costs the log, the disks and the
    /// network): a tenant writing few but huge values is held by this one.
    WriteBytes,
    Reads,
}

impl RateKind {
    pub fn code(self) -> &'static str {
        match self {
            RateKind::Writes => "rate_writes",
            RateKind::WriteBytes => "rate_write_bytes",
            RateKind::Reads => "rate_reads",
        }
    }

    /// The rate and burst of this kind in `caps`.
    fn of(self, caps: &Caps) -> Option<(u64, u64)> {
        let (rate, burst) = match self {
            RateKind::Writes => (caps.write_rate?, caps.write_burst),
            RateKind::WriteBytes => (caps.write_bytes_rate?, caps.write_bytes_burst),
            RateKind::Reads => (caps.read_rate?, caps.read_burst),
        };
        Some((rate, burst.unwrap_or(rate)))
    }
}

/// A refusal: the tenant is over its rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverRate {
    pub kind: RateKind,
    pub rate: u64,
    pub burst: u64,
    pub retry_after_ms: u64,
    /// The tokens the request needed (its amount, at most the burst).
    pub needed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens_milli: u64,
    refilled_at: Millis,
}

/// Every tenant's buckets (only tenants with a rate cap have one; tenants are bounded by the
/// store's tenant cap).
#[derive(Clone, Debug, Default)]
pub(super) struct RateLimiter {
    buckets: BTreeMap<(TenantId, RateKind), Bucket>,
}

impl RateLimiter {
    /// Takes `amount` tokens of `kind` for `tenant` at `now`, or says how long to wait. An
    /// amount larger than the burst takes a full bucket (so it is slowed, never barred).
    pub fn take(
        &mut self,
        tenant: TenantId,
        kind: RateKind,
        amount: u64,
        caps: Option<&Caps>,
        now: Millis,
    ) -> Result<(), OverRate> {
        let Some((rate, burst)) = caps.and_then(|caps| kind.of(caps)) else {
            return Ok(());
        };
        let capacity_milli = burst.saturating_mul(MILLI);
        let bucket = self.buckets.entry((tenant, kind)).or_insert(Bucket {
            tokens_milli: capacity_milli,
            refilled_at: now,
        });
        // A refill of `rate` tokens per second is `rate` thousandths per millisecond.
        let refill = now.since(bucket.refilled_at).saturating_mul(rate);
        bucket.tokens_milli = bucket
            .tokens_milli
            .saturating_add(refill)
            .min(capacity_milli);
        bucket.refilled_at = bucket.refilled_at.max(now);
        let needed_milli = amount.saturating_mul(MILLI).min(capacity_milli).max(1);
        if bucket.tokens_milli >= needed_milli {
            bucket.tokens_milli -= needed_milli;
            return Ok(());
        }
        let retry_after_ms = if rate == 0 {
            RETRY_AFTER_MS_AT_RATE_ZERO
        } else {
            (needed_milli - bucket.tokens_milli).div_ceil(rate)
        };
        Err(OverRate {
            kind,
            rate,
            burst,
            retry_after_ms,
            needed: needed_milli.div_ceil(MILLI),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(rate: u64, burst: Option<u64>) -> Caps {
        Caps {
            write_rate: Some(rate),
            write_burst: burst,
            ..Caps::default()
        }
    }

    /// Proves the bucket: a burst goes through at once, the next request is refused with
    /// the wait until a token is back, and after that wait it goes through.
    #[test]
    fn a_burst_then_the_rate() {
        let mut limiter = RateLimiter::default();
        let tenant = TenantId::new(1);
        let caps = caps(100, Some(5));
        let take = |limiter: &mut RateLimiter, at| {
            limiter.take(tenant, RateKind::Writes, 1, Some(&caps), Millis::new(at))
        };
        for _ in 0..5 {
            assert!(take(&mut limiter, 0).is_ok());
        }
        let refused = take(&mut limiter, 0).unwrap_err();
        assert_eq!(refused.retry_after_ms, 10, "100/s is one token per 10 ms");
        assert!(take(&mut limiter, 10).is_ok());
        assert!(take(&mut limiter, 10).is_err());
    }

    /// Proves the bytes bucket: a write is charged its size, and one larger than the burst
    /// waits for a full bucket instead of being refused for ever.
    #[test]
    fn bytes_are_charged_by_size() {
        let mut limiter = RateLimiter::default();
        let tenant = TenantId::new(1);
        let caps = Caps {
            write_bytes_rate: Some(1_000),
            write_bytes_burst: Some(2_000),
            ..Caps::default()
        };
        let take = |limiter: &mut RateLimiter, amount, at| {
            limiter.take(
                tenant,
                RateKind::WriteBytes,
                amount,
                Some(&caps),
                Millis::new(at),
            )
        };
        assert!(take(&mut limiter, 1_500, 0).is_ok());
        let refused = take(&mut limiter, 1_000, 0).unwrap_err();
        assert_eq!(
            refused.retry_after_ms, 500,
            "500 bytes missing at 1,000 bytes/s"
        );
        assert!(take(&mut limiter, 1_000, 500).is_ok());
        assert!(
            take(&mut limiter, 5_000, 2_500).is_ok(),
            "a full bucket lets a big one by"
        );
        assert!(take(&mut limiter, 1, 2_500).is_err());
    }

    /// Proves that a rate of zero refuses everything, a missing rate nothing, and one
    /// tenant's bucket is not another's.
    #[test]
    fn zero_none_and_separate_tenants() {
        let mut limiter = RateLimiter::default();
        let zero = caps(0, None);
        let refused = limiter.take(
            TenantId::new(1),
            RateKind::Writes,
            1,
            Some(&zero),
            Millis::ZERO,
        );
        assert_eq!(
            refused.unwrap_err().retry_after_ms,
            RETRY_AFTER_MS_AT_RATE_ZERO
        );
        for _ in 0..1_000 {
            assert!(
                limiter
                    .take(TenantId::new(2), RateKind::Writes, 1, None, Millis::ZERO)
                    .is_ok()
            );
        }
        let one = caps(1, Some(1));
        assert!(
            limiter
                .take(
                    TenantId::new(3),
                    RateKind::Writes,
                    1,
                    Some(&one),
                    Millis::ZERO
                )
                .is_ok()
        );
        assert!(
            limiter
                .take(
                    TenantId::new(4),
                    RateKind::Writes,
                    1,
                    Some(&one),
                    Millis::ZERO
                )
                .is_ok()
        );
        assert!(
            limiter
                .take(
                    TenantId::new(3),
                    RateKind::Reads,
                    1,
                    Some(&one),
                    Millis::ZERO
                )
                .is_ok()
        );
    }
}
