//! The scheduled tick: enqueue the pipeline canary. The connector records it and the health endpoint
//! reports its round trip, so a stalled queue, worker or store shows up as a stale canary.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::JobQueue;
use tributary_core::time::Clock;

/// What the handler needs.
pub struct Deps<Q> {
    /// The jobs queue.
    pub queue: Q,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

/// What one tick did (returned to the invoker, useful with `cargo lambda invoke`).
#[derive(Debug, Serialize)]
pub struct TickOutcome {
    /// The canary job enqueued on this tick.
    pub canary_job_id: String,
}

/// Handles one scheduled tick. Any event shape is accepted: the schedule's payload carries nothing
/// the tick needs.
#[tracing::instrument(skip_all)]
pub async fn handle<Q: JobQueue>(
    deps: &Deps<Q>,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<TickOutcome, lambda_runtime::Error> {
    let canary = JobEnvelope::new(JobKind::Canary {
        enqueued_at_ms: deps.clock.now_ms(),
    });
    deps.queue.send(&canary, Duration::ZERO).await?;
    tracing::info!(job_id = %canary.id, "canary enqueued");
    Ok(TickOutcome {
        canary_job_id: canary.id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_testing::{FakeQueue, ManualClock};

    fn scheduled_event() -> LambdaEvent<serde_json::Value> {
        let raw = include_str!("../events/scheduled.json");
        LambdaEvent::new(
            serde_json::from_str(raw).unwrap(),
            lambda_runtime::Context::default(),
        )
    }

    #[tokio::test]
    async fn every_tick_enqueues_one_canary_stamped_with_now() {
        let deps = Deps {
            queue: FakeQueue::default(),
            clock: Arc::new(ManualClock::at(42_000)),
        };
        let out = handle(&deps, scheduled_event()).await.unwrap();
        let sent = deps.queue.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].id.to_string(), out.canary_job_id);
        assert_eq!(
            sent[0].kind,
            JobKind::Canary {
                enqueued_at_ms: 42_000
            }
        );
    }

    #[tokio::test]
    async fn when_queue_is_down_the_tick_fails_so_it_is_visible_in_errors() {
        let deps = Deps {
            queue: FakeQueue::failing(),
            clock: Arc::new(ManualClock::at(0)),
        };
        assert!(handle(&deps, scheduled_event()).await.is_err());
    }
}
