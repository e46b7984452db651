//! The SQS batch handler: each message is one job. A message is acknowledged only after its job's
//! effects are durable; a failed message is reported in `batchItemFailures` and rescheduled with
//! backoff, so SQS redelivers it and, after the redrive policy's count, moves it to the DLQ.
//! Redeliveries of a completed job are recognised by the job ledger and acknowledged without rerun.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;
use tributary_core::PortError;
use tributary_core::canary::CanaryObservation;
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::{CanaryStore, JobLedger, JobQueue};
use tributary_core::time::Clock;

/// What the handler needs.
pub struct Deps<Q, L, C> {
    /// The jobs queue (to reschedule failed messages).
    pub queue: Q,
    /// Which jobs already completed.
    pub ledger: L,
    /// Where canaries are recorded.
    pub canaries: C,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// How long completed jobs are remembered.
    pub ledger_retention: Duration,
}

/// Why one message failed.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Envelope(#[from] tributary_core::job::EnvelopeError),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Handles one SQS batch and reports which messages failed.
#[tracing::instrument(skip_all, fields(records = event.payload.records.len()))]
pub async fn handle<Q, L, C>(
    deps: &Deps<Q, L, C>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    Q: JobQueue,
    L: JobLedger,
    C: CanaryStore,
{
    let mut response = SqsBatchResponse::default();
    for message in &event.payload.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "message",
            message_id = %message_id,
            job_id = tracing::field::Empty
        );
        let outcome = process(deps, message).instrument(span.clone()).await;
        if let Err(err) = outcome {
            let receive_count = receive_count(message);
            span.in_scope(|| {
                tracing::warn!(error = %err, receive_count, "job failed; it will be retried");
            });
            if let Some(handle) = &message.receipt_handle {
                let delay = retry_delay(&err, receive_count);
                if let Err(e) = deps.queue.retry_after(handle, delay).await {
                    // The message still comes back after the queue's visibility timeout.
                    tracing::warn!(error = %e, "could not shorten the failed message's visibility");
                }
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

async fn process<Q, L, C>(deps: &Deps<Q, L, C>, message: &SqsMessage) -> Result<(), JobError>
where
    Q: JobQueue,
    L: JobLedger,
    C: CanaryStore,
{
    let job = JobEnvelope::parse(message.body.as_deref().unwrap_or_default())?;
    tracing::Span::current().record("job_id", tracing::field::display(&job.id));
    if deps.ledger.is_done(&job.id).await? {
        tracing::info!(job_id = %job.id, kind = job.kind.name(), "duplicate delivery of a completed job; acknowledged");
        return Ok(());
    }
    match &job.kind {
        JobKind::Canary { enqueued_at_ms } => {
            let observation = CanaryObservation {
                job_id: job.id.clone(),
                enqueued_at_ms: *enqueued_at_ms,
                processed_at_ms: deps.clock.now_ms(),
            };
            deps.canaries.record(&observation).await?;
            tracing::info!(
                job_id = %job.id,
                round_trip_ms = observation.round_trip_ms(),
                "canary recorded"
            );
        }
    }
    deps.ledger
        .mark_done(&job.id, deps.ledger_retention)
        .await?;
    Ok(())
}

fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// How long a failed message stays invisible: malformed messages come back at once (they cannot
/// succeed, so they should reach the DLQ quickly); others back off exponentially, capped at 15 min.
fn retry_delay(err: &JobError, receive_count: u32) -> Duration {
    match err {
        JobError::Envelope(_) => Duration::ZERO,
        JobError::Port(_) => {
            let exp = receive_count.saturating_sub(1).min(10);
            Duration::from_secs((5u64 << exp).min(900))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::error::Service;
    use tributary_testing::{FakeQueue, ManualClock, MemStore};

    /// The handler over `canaries`, with a ledger of its own.
    fn deps(canaries: MemStore) -> Deps<FakeQueue, MemStore, MemStore> {
        Deps {
            queue: FakeQueue::default(),
            ledger: MemStore::default(),
            canaries,
            clock: Arc::new(ManualClock::at(1_764_000_000_750)),
            ledger_retention: Duration::from_secs(3600),
        }
    }

    fn event_from_fixture() -> LambdaEvent<SqsEvent> {
        let raw = include_str!("../events/sqs-batch.json");
        let payload: SqsEvent = serde_json::from_str(raw).unwrap();
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    fn event(bodies: &[(&str, &str, &str)]) -> LambdaEvent<SqsEvent> {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .map(|(id, body, count)| {
                serde_json::json!({
                    "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                    "attributes": {"ApproximateReceiveCount": count},
                    "messageAttributes": {}, "eventSource": "aws:sqs",
                })
            })
            .collect();
        let payload: SqsEvent =
            serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    const CANARY: &str = r#"{"v":1,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"canary","enqueued_at_ms":1764000000000}"#;

    #[tokio::test]
    async fn when_canary_arrives_should_record_round_trip_and_ack() {
        let d = deps(MemStore::default());
        let out = handle(&d, event(&[("m1", CANARY, "1")])).await.unwrap();
        assert!(out.batch_item_failures.is_empty());
        let recorded = d.canaries.recorded_canaries();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].round_trip_ms(), 750);
    }

    #[tokio::test]
    async fn when_message_is_malformed_should_report_only_it_and_retry_at_once() {
        let d = deps(MemStore::default());
        let out = handle(&d, event(&[("bad", "not json", "1"), ("m1", CANARY, "1")]))
            .await
            .unwrap();
        let failed: Vec<_> = out
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["bad"]);
        assert_eq!(
            d.queue.retried(),
            vec![("rh-bad".to_owned(), Duration::ZERO)]
        );
        assert_eq!(d.canaries.recorded_canaries().len(), 1);
    }

    #[tokio::test]
    async fn when_job_is_redelivered_after_completion_should_not_run_twice() {
        let d = deps(MemStore::default());
        handle(&d, event(&[("m1", CANARY, "1")])).await.unwrap();
        let out = handle(&d, event(&[("m1", CANARY, "2")])).await.unwrap();
        assert!(out.batch_item_failures.is_empty());
        assert_eq!(d.canaries.recorded_canaries().len(), 1);
    }

    #[tokio::test]
    async fn when_store_is_down_should_fail_and_back_off_by_receive_count() {
        let canaries = MemStore::default();
        canaries.fail(true);
        let d = deps(canaries);
        let out = handle(&d, event(&[("m1", CANARY, "3")])).await.unwrap();
        assert_eq!(out.batch_item_failures.len(), 1);
        assert_eq!(
            d.queue.retried(),
            vec![("rh-m1".to_owned(), Duration::from_secs(20))]
        );
        // Not marked done: the retry must run it.
        assert!(d.ledger.done_jobs().is_empty());
    }

    #[tokio::test]
    async fn fixture_batch_fails_only_the_malformed_record() {
        let d = deps(MemStore::default());
        let event = event_from_fixture();
        let malformed: Vec<String> = event
            .payload
            .records
            .iter()
            .filter(|r| JobEnvelope::parse(r.body.as_deref().unwrap_or_default()).is_err())
            .filter_map(|r| r.message_id.clone())
            .collect();
        let out = handle(&d, event).await.unwrap();
        let failed: Vec<String> = out
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert!(!malformed.is_empty());
        assert_eq!(failed, malformed);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let port = || {
            JobError::Port(PortError::Throttled {
                service: Service::Store,
                operation: "x",
            })
        };
        assert_eq!(retry_delay(&port(), 1), Duration::from_secs(5));
        assert_eq!(retry_delay(&port(), 2), Duration::from_secs(10));
        assert_eq!(retry_delay(&port(), 50), Duration::from_secs(900));
    }
}
