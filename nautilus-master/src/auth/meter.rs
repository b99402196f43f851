//! A budget of failed signature verifications per claimed stake id.
//!
//! A forged token can copy everything public about a stake record (owner, role, cluster, node
//! name, epoch) and so pass every check made before the signature. What it cannot do is verify.
//! Each failed verification is charged to the stake id the token names; once a stake's budget is
//! spent, tokens naming it are refused before their signature is checked, until the budget
//! refills. Genuine tokens are never charged, so the budget binds only under forgery.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use daas_seal::Address;
use lru::LruCache;

use crate::ratelimit::RateLimit;

/// Stake ids tracked at once; a stake evicted from the LRU starts again with a full budget.
const TRACKED_STAKES: usize = 65_536;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of failed verifications, keyed by the stake id a token claims.
pub(crate) struct FailureBudget {
    per_second: f64,
    burst: f64,
    buckets: Mutex<LruCache<Address, Bucket>>,
}

impl FailureBudget {
    /// A budget of `limit.burst` failures refilled at `limit.per_second`; a rate of 0 (or a
    /// non-finite one) disables the budget.
    pub(crate) fn new(limit: RateLimit) -> Self {
        let per_second = if limit.per_second.is_finite() && limit.per_second > 0.0 {
            limit.per_second
        } else {
            0.0
        };
        let burst = if limit.burst.is_finite() {
            limit.burst.max(1.0)
        } else {
            1.0
        };
        FailureBudget {
            per_second,
            burst,
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(TRACKED_STAKES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// `Err(wait)` when `stake`'s budget is spent at `now`; takes nothing.
    pub(crate) fn check(&self, stake: &Address, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = buckets.get_mut(stake) else {
            return Ok(());
        };
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            let wait = (1.0 - tokens) / self.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600)))
        }
    }

    /// Charges one failed verification to `stake` at `now` (never below an empty bucket).
    pub(crate) fn charge(&self, stake: &Address, now: Instant) {
        if self.per_second <= 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = match buckets.get(stake) {
            Some(bucket) => self.refilled(*bucket, now),
            None => self.burst,
        };
        buckets.put(
            *stake,
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAKE: Address = Address::new([5; 32]);
    const OTHER: Address = Address::new([6; 32]);

    #[test]
    fn a_spent_budget_refuses_until_it_refills() {
        let budget = FailureBudget::new(RateLimit::new(1.0, 2.0));
        let t0 = Instant::now();
        assert_eq!(budget.check(&STAKE, t0), Ok(()), "untouched stake");
        budget.charge(&STAKE, t0);
        assert_eq!(budget.check(&STAKE, t0), Ok(()), "one failure left");
        budget.charge(&STAKE, t0);
        let wait = budget.check(&STAKE, t0).expect_err("spent");
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(budget.check(&OTHER, t0), Ok(()), "other stakes unaffected");
        // Charges beyond an empty bucket do not dig a deeper hole.
        budget.charge(&STAKE, t0);
        assert_eq!(budget.check(&STAKE, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_zero_rate_disables_the_budget() {
        let budget = FailureBudget::new(RateLimit::unlimited());
        let t0 = Instant::now();
        for _ in 0..10 {
            budget.charge(&STAKE, t0);
        }
        assert_eq!(budget.check(&STAKE, t0), Ok(()));
    }
}
