//! The pipeline canary: the monitor enqueues a canary job on every tick, the connector records when it
//! processed it, and the health endpoint reports the last round trip and its age. A fresh canary proves
//! that the schedule, the queue, the worker and the store work together.

use serde::{Deserialize, Serialize};

use crate::ids::JobId;
use crate::time::EpochMillis;

/// A canary job as processed by the connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryObservation {
    /// The canary job.
    pub job_id: JobId,
    /// When the monitor enqueued it.
    pub enqueued_at_ms: EpochMillis,
    /// When the connector processed it.
    pub processed_at_ms: EpochMillis,
}

impl CanaryObservation {
    /// Enqueue-to-processing latency in milliseconds (never negative, even across clock skew).
    pub fn round_trip_ms(&self) -> u64 {
        u64::try_from(self.processed_at_ms.saturating_sub(self.enqueued_at_ms)).unwrap_or(0)
    }

    /// Milliseconds since it was processed, as of `now`.
    pub fn age_ms(&self, now: EpochMillis) -> u64 {
        u64::try_from(now.saturating_sub(self.processed_at_ms)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_age_never_go_negative() {
        let o = CanaryObservation {
            job_id: JobId::generate(),
            enqueued_at_ms: 2_000,
            processed_at_ms: 1_500,
        };
        assert_eq!(o.round_trip_ms(), 0);
        assert_eq!(o.age_ms(1_000), 0);
        assert_eq!(o.age_ms(4_500), 3_000);
    }
}
