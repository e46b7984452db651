//! Exponential backoff with full jitter, for the retries the adapters do themselves (unprocessed batch
//! items, failed batch entries) on top of the SDK's own retries.

use std::time::Duration;

use rand::Rng;

/// A bounded retry schedule.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay cap for the first retry; doubles each attempt.
    pub base: Duration,
    /// Upper bound of any single delay.
    pub max: Duration,
    /// How many retries at most.
    pub max_retries: u32,
}

impl Backoff {
    /// The schedule adapters use for unprocessed batch items: 8 retries from 50 ms up to 5 s.
    pub const BATCH: Backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(5),
        max_retries: 8,
    };

    /// The delay before retry number `attempt` (0-based): uniformly random in
    /// `[0, min(max, base * 2^attempt)]` ("full jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.cap(attempt);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// The upper bound of the delay before retry number `attempt`.
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_growing_cap() {
        let b = Backoff::BATCH;
        for attempt in 0..40 {
            let cap = b.cap(attempt);
            assert!(cap <= b.max);
            for _ in 0..20 {
                assert!(b.delay(attempt) <= cap);
            }
        }
        assert_eq!(b.cap(0), Duration::from_millis(50));
        assert_eq!(b.cap(3), Duration::from_millis(400));
        assert_eq!(b.cap(30), Duration::from_secs(5));
    }
}
