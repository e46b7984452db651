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
use tributary_core::ids::OperationId;
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::operation::{self, OperationError, OperationKind, OperationState, Recorder};
use tributary_core::ports::{
    ActionStore, CanaryStore, ConnectionStore, EventOutbox, InboundStore, IntegrationStore,
    JobLedger, JobQueue, OperationLog, SyncStore, WebhookStore,
};
use tributary_core::records::RecordStore;
use tributary_core::refresh::{IdleRefresh, RefreshError, Refresher};
use tributary_core::time::Clock;
use tributary_core::vault::Vault;
use tributary_engine::Engine;
use tributary_engine::grant::{EngineGrant, catalog_spec, policy};
use tributary_engine::origins::ProviderOrigins;

use crate::sync::{JobTime, SyncJobError, Syncing};

/// What a token refresh needs.
pub struct Refreshing<S> {
    /// Connections and integrations.
    pub store: S,
    /// The credential vault.
    pub vault: Vault,
    /// The engine whose HTTP client calls token endpoints.
    pub engine: Engine,
    /// The deployment's provider origin overrides.
    pub origins: ProviderOrigins,
}

/// What the handler needs.
pub struct Deps<Q, L, C, S, R> {
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
    /// How long the operations log keeps an operation (days).
    pub operations_retention_days: u32,
    /// Token refreshes.
    pub refreshing: Refreshing<S>,
    /// Sync runs (and, over the same store, action runs and webhooks).
    pub syncing: Syncing<S, R>,
    /// Webhook deliveries.
    pub delivering: crate::webhooks::Delivering,
}

/// Everything the jobs' work needs of the control-plane store.
pub trait WorkStore:
    ConnectionStore
    + IntegrationStore
    + SyncStore
    + ActionStore
    + EventOutbox
    + WebhookStore
    + InboundStore
    + OperationLog
{
}
impl<T> WorkStore for T where
    T: ConnectionStore
        + IntegrationStore
        + SyncStore
        + ActionStore
        + EventOutbox
        + WebhookStore
        + InboundStore
        + OperationLog
{
}

/// Why one message failed.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Envelope(#[from] tributary_core::job::EnvelopeError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// A refresh that may work later (the provider, the store or the vault failed for now).
    #[error("the refresh failed for now: {0}")]
    Refresh(RefreshError),
    /// A sync job that may work later.
    #[error(transparent)]
    Sync(#[from] SyncJobError),
    /// An action job that may work later.
    #[error(transparent)]
    Action(#[from] crate::action::ActionJobError),
    /// A webhook job that may work later.
    #[error(transparent)]
    Webhook(#[from] crate::webhooks::WebhookJobError),
    /// An inbound webhook's routing that may work later.
    #[error(transparent)]
    Inbound(#[from] crate::inbound::InboundJobError),
}

impl JobError {
    /// A stable class for the operations log (never the error's text, which may name internals).
    fn class(&self) -> &'static str {
        match self {
            JobError::Envelope(_) => "malformed",
            JobError::Port(_) => "store",
            JobError::Refresh(_) => "refresh",
            JobError::Sync(_)
            | JobError::Action(_)
            | JobError::Webhook(_)
            | JobError::Inbound(_) => "internal",
        }
    }
}

/// Handles one SQS batch and reports which messages failed.
#[tracing::instrument(skip_all, fields(records = event.payload.records.len()))]
pub async fn handle<Q, L, C, S, R>(
    deps: &Deps<Q, L, C, S, R>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    Q: JobQueue,
    L: JobLedger,
    C: CanaryStore,
    S: WorkStore,
    R: RecordStore,
{
    let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
    let mut response = SqsBatchResponse::default();
    for message in &event.payload.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        // The trace of whoever sent the job (the API call, the schedule), so that the job's work
        // can be found from it and it from the work.
        let span = tracing::info_span!(
            "message",
            message_id = %message_id,
            job_id = tracing::field::Empty,
            trace_header = tributary_aws::sqs::received_trace_header(&message.attributes),
        );
        let outcome = process(deps, message, deadline_ms)
            .instrument(span.clone())
            .await;
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

async fn process<Q, L, C, S, R>(
    deps: &Deps<Q, L, C, S, R>,
    message: &SqsMessage,
    deadline_ms: i64,
) -> Result<(), JobError>
where
    Q: JobQueue,
    L: JobLedger,
    C: CanaryStore,
    S: WorkStore,
    R: RecordStore,
{
    let job = JobEnvelope::parse(message.body.as_deref().unwrap_or_default())?;
    tracing::Span::current().record("job_id", tracing::field::display(&job.id));
    if deps.ledger.is_done(&job.id).await? {
        tracing::info!(job_id = %job.id, kind = job.kind.name(), "duplicate delivery of a completed job; acknowledged");
        return Ok(());
    }
    let recorder = recorder_of(&job, receive_count(message), deps.clock.now_ms());
    let outcome = match &recorder {
        Some(r) => operation::recording(r.clone(), run_job(deps, &job, deadline_ms)).await,
        None => run_job(deps, &job, deadline_ms).await,
    };
    if let Some(r) = recorder {
        log_operation(deps, &r, &outcome).await;
    }
    outcome?;
    deps.ledger
        .mark_done(&job.id, deps.ledger_retention)
        .await?;
    Ok(())
}

/// The operation a job is, if it is one the operations log keeps (the canary, schedules,
/// dispatches and purges are not). Its id is derived from the job and the delivery, so a retried
/// write of the same delivery's operation replaces it.
fn recorder_of(job: &JobEnvelope, receive_count: u32, now: i64) -> Option<Arc<Recorder>> {
    let (tenant, kind, subject) = match &job.kind {
        JobKind::SyncRun {
            tenant_id, run_id, ..
        } => (tenant_id, OperationKind::SyncRun, run_id.to_string()),
        JobKind::ActionRun {
            tenant_id,
            action_run_id,
        } => (
            tenant_id,
            OperationKind::ActionRun,
            action_run_id.to_string(),
        ),
        JobKind::DeliverWebhook {
            tenant_id,
            message_id,
        } => (
            tenant_id,
            OperationKind::WebhookDelivery,
            message_id.to_string(),
        ),
        JobKind::InboundWebhook {
            tenant_id,
            inbound_id,
            ..
        } => (
            tenant_id,
            OperationKind::InboundWebhook,
            inbound_id.to_string(),
        ),
        JobKind::RefreshConnection {
            tenant_id,
            connection_id,
        } => (
            tenant_id,
            OperationKind::TokenRefresh,
            connection_id.to_string(),
        ),
        JobKind::Canary { .. }
        | JobKind::ScheduledSync { .. }
        | JobKind::DispatchEvents { .. }
        | JobKind::PurgeSync { .. }
        | JobKind::CheckRun { .. } => return None,
    };
    let id = OperationId::derive(now, &format!("{}#{receive_count}", job.id));
    let recorder = Recorder::new(id, tenant.clone(), kind, now);
    recorder.describe(|d| d.op.subject = Some(subject));
    Some(Arc::new(recorder))
}

/// Writes the job's operation (unless the work found nothing to do) and emits its metrics. A
/// failure to write it is logged: the log never fails the work it describes.
async fn log_operation<Q, L, C, S: OperationLog, R>(
    deps: &Deps<Q, L, C, S, R>,
    recorder: &Recorder,
    outcome: &Result<(), JobError>,
) {
    let default = match outcome {
        Ok(()) => OperationState::Succeeded,
        Err(JobError::Sync(SyncJobError::Busy))
        | Err(JobError::Action(crate::action::ActionJobError::Busy)) => {
            // Another invocation holds the work: that one's operation tells what happened.
            recorder.describe(|d| d.skip = true);
            OperationState::Retrying
        }
        Err(e) => {
            recorder.describe(|d| {
                d.state = Some(OperationState::Retrying);
                if d.op.error.is_none() {
                    d.op.error = Some(OperationError {
                        class: e.class().into(),
                        message: "the work failed for now; the job comes back with backoff".into(),
                    });
                }
            });
            OperationState::Retrying
        }
    };
    let Some(op) = recorder.finish(default, deps.clock.now_ms()) else {
        return;
    };
    tributary_aws::operations::emit_metrics("connector", &op);
    if let Err(e) = deps
        .syncing
        .store
        .record_operation(&op, deps.operations_retention_days)
        .await
    {
        tracing::warn!(error = %e, operation_id = %op.id, "could not write the operation to the log");
    }
}

/// Does the job's work.
async fn run_job<Q, L, C, S, R>(
    deps: &Deps<Q, L, C, S, R>,
    job: &JobEnvelope,
    deadline_ms: i64,
) -> Result<(), JobError>
where
    Q: JobQueue,
    L: JobLedger,
    C: CanaryStore,
    S: WorkStore,
    R: RecordStore,
{
    // The invocation's time, for the jobs that stop at a budget.
    let time = JobTime {
        clock: &*deps.clock,
        deadline_ms,
        job_id: &job.id,
    };
    match &job.kind {
        JobKind::Canary { enqueued_at_ms } => {
            let observation = CanaryObservation {
                job_id: job.id.clone(),
                enqueued_at_ms: *enqueued_at_ms,
                processed_at_ms: deps.clock.now_ms(),
            };
            deps.canaries.record(&observation).await?;
            tributary_aws::metrics::canary_round_trip(observation.round_trip_ms());
            tracing::info!(
                job_id = %job.id,
                round_trip_ms = observation.round_trip_ms(),
                "canary recorded"
            );
        }
        JobKind::RefreshConnection {
            tenant_id,
            connection_id,
        } => refresh(deps, tenant_id, connection_id).await?,
        JobKind::ScheduledSync {
            tenant_id,
            sync_id,
            due_ms,
        } => {
            crate::sync::start_scheduled(
                &deps.syncing,
                &deps.queue,
                &*deps.clock,
                tenant_id,
                sync_id,
                *due_ms,
            )
            .await?
        }
        JobKind::SyncRun {
            tenant_id,
            sync_id,
            run_id,
            continuation,
        } => {
            crate::sync::execute(
                &deps.syncing,
                &deps.queue,
                &time,
                tenant_id,
                sync_id,
                run_id,
                *continuation,
            )
            .await?
        }
        JobKind::ActionRun {
            tenant_id,
            action_run_id,
        } => {
            crate::action::execute(
                &deps.syncing,
                &deps.queue,
                &*deps.clock,
                tenant_id,
                action_run_id,
            )
            .await?
        }
        JobKind::DispatchEvents { shard } => {
            crate::webhooks::dispatch(&deps.syncing.store, &deps.queue, &*deps.clock, *shard)
                .await?
        }
        JobKind::DeliverWebhook {
            tenant_id,
            message_id,
        } => {
            crate::webhooks::deliver(
                &deps.syncing.store,
                &deps.queue,
                &deps.delivering,
                &*deps.clock,
                tenant_id,
                message_id,
            )
            .await?
        }
        JobKind::InboundWebhook {
            tenant_id,
            integration_id,
            inbound_id,
        } => {
            crate::inbound::route(
                &deps.syncing,
                &deps.queue,
                &*deps.clock,
                tenant_id,
                integration_id,
                inbound_id,
            )
            .await?
        }
        JobKind::PurgeSync { tenant_id, sync_id } => {
            crate::sync::purge(&deps.syncing, &deps.queue, &time, tenant_id, sync_id).await?
        }
        JobKind::CheckRun {
            tenant_id,
            sync_id,
            run_id,
        } => {
            crate::sync::check_idle(
                &deps.syncing,
                &deps.queue,
                &time,
                tenant_id,
                sync_id,
                run_id,
            )
            .await?
        }
    }
    Ok(())
}

/// The monitor's refresh of an idle connection. Done (acknowledged) when refreshed, when nothing was
/// due any more, when the connection is gone or cannot be refreshed, and when the provider refused
/// the refresh token for good (the connection is `needs_reauth` with an event); anything that may
/// work later fails the message, which the queue brings back with backoff.
async fn refresh<Q, L, C, S, R>(
    deps: &Deps<Q, L, C, S, R>,
    tenant: &TenantId,
    id: &ConnectionId,
) -> Result<(), JobError>
where
    S: ConnectionStore + IntegrationStore,
{
    let r = &deps.refreshing;
    let Some(connection) = r.store.get_connection(tenant, id).await? else {
        tracing::info!(connection_id = %id, "the connection is gone; nothing to refresh");
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    operation::describe(|d| {
        d.op.connection_id = Some(connection.id.clone());
        d.op.integration_id = Some(connection.integration_id.clone());
        d.op.provider = Some(connection.provider.clone());
    });
    let Some(spec) = catalog_spec(&connection.provider) else {
        tracing::error!(connection_id = %id, provider = %connection.provider, "not in the catalog");
        return Ok(());
    };
    let grant = EngineGrant {
        store: &r.store,
        vault: &r.vault,
        engine: &r.engine,
        origins: &r.origins,
        clock: &*deps.clock,
    };
    let refresher = Refresher {
        store: &r.store,
        vault: &r.vault,
        grant: &grant,
        clock: &*deps.clock,
        policy: policy(spec),
    };
    let failed = |class: &str, message: String| {
        operation::describe(|d| {
            d.state = Some(OperationState::Failed);
            d.op.error = Some(OperationError {
                class: class.into(),
                message,
            });
        });
    };
    match refresher.refresh_idle(tenant, id).await {
        Ok(outcome) => {
            let outcome = match outcome {
                IdleRefresh::Refreshed => "refreshed",
                IdleRefresh::NotDue | IdleRefresh::InProgress => {
                    // Nothing was done here: not an operation.
                    operation::describe(|d| d.skip = true);
                    "not due or in progress elsewhere"
                }
            };
            tracing::info!(connection_id = %id, outcome, "idle refresh");
            Ok(())
        }
        Err(RefreshError::NeedsReauth(reason)) => {
            tracing::info!(connection_id = %id, "idle refresh refused; the connection needs reauthorization");
            failed(
                "needs_reauth",
                format!("the provider refused the refresh token: {reason}"),
            );
            Ok(())
        }
        Err(
            e @ (RefreshError::NotFound | RefreshError::NotRefreshable | RefreshError::Malformed),
        ) => {
            tracing::warn!(connection_id = %id, error = %e, "idle refresh not possible");
            failed("config", e.to_string());
            Ok(())
        }
        Err(e) => Err(JobError::Refresh(e)),
    }
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
        // Another invocation runs this sync: try again once it has had time to stop.
        JobError::Sync(SyncJobError::Busy) => Duration::from_secs(30),
        // An attempt in progress: come back once its lease may have run out.
        JobError::Action(crate::action::ActionJobError::Busy) => {
            Duration::from_millis(crate::action::ATTEMPT_LEASE_MS.unsigned_abs())
        }
        JobError::Port(_)
        | JobError::Refresh(_)
        | JobError::Sync(_)
        | JobError::Action(_)
        | JobError::Webhook(_)
        | JobError::Inbound(_) => {
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
    type TestDeps = Deps<FakeQueue, MemStore, MemStore, MemStore, MemStore>;

    fn deps(canaries: MemStore) -> TestDeps {
        Deps {
            queue: FakeQueue::default(),
            ledger: MemStore::default(),
            canaries,
            clock: Arc::new(ManualClock::at(1_764_000_000_750)),
            ledger_retention: Duration::from_secs(3600),
            operations_retention_days: 14,
            refreshing: refreshing(MemStore::default(), ProviderOrigins::new()),
            syncing: syncing(MemStore::default(), ProviderOrigins::new()),
            delivering: crate::webhooks::Delivering {
                client: tributary_http::HttpClient::new(crate::webhooks::delivery_http(
                    tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
                ))
                .unwrap(),
                vault: Vault::new(Arc::new(Arc::new(tributary_testing::keyring()))),
            },
        }
    }

    /// Sync runs over `store` (its records too), reading through a one-attempt engine.
    pub(crate) fn syncing(
        store: MemStore,
        origins: ProviderOrigins,
    ) -> Syncing<MemStore, MemStore> {
        Syncing {
            records: store.clone(),
            store,
            vault: Vault::new(Arc::new(Arc::new(tributary_testing::keyring()))),
            engine: Engine::new(tributary_engine::HttpConfig {
                max_attempts: 1,
                egress: tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
                ..tributary_engine::HttpConfig::default()
            })
            .unwrap(),
            origins,
            time_budget: None,
        }
    }

    pub(crate) fn refreshing(store: MemStore, origins: ProviderOrigins) -> Refreshing<MemStore> {
        Refreshing {
            store,
            vault: Vault::new(Arc::new(Arc::new(tributary_testing::keyring()))),
            engine: Engine::new(tributary_engine::HttpConfig {
                max_attempts: 1,
                egress: tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
                ..tributary_engine::HttpConfig::default()
            })
            .unwrap(),
            origins,
        }
    }

    mod oplog;

    fn event_from_fixture() -> LambdaEvent<SqsEvent> {
        let raw = include_str!("../events/sqs-batch.json");
        let payload: SqsEvent = serde_json::from_str(raw).unwrap();
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    pub(crate) fn event(bodies: &[(&str, &str, &str)]) -> LambdaEvent<SqsEvent> {
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

    mod idle_refresh {
        use std::collections::BTreeMap;

        use tributary_core::connection::{
            CREDENTIALS_PURPOSE, Connection, ConnectionStatus, IDLE_REFRESH_AFTER_MS,
        };
        use tributary_core::ids::IntegrationId;
        use tributary_core::integration::{CLIENT_SECRET_PURPOSE, Integration};
        use tributary_core::vault::Owner;
        use tributary_testing::fixtures::oauth_connection;
        use tributary_testing::keyring;
        use wiremock::matchers::{body_string_contains, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        use super::*;

        const NOW: i64 = 1_764_000_000_000;

        struct Setup {
            d: TestDeps,
            store: MemStore,
            connection: Connection,
            server: MockServer,
        }

        /// A due Airtable connection (tokens obtained 21 hours ago, access token valid for
        /// another hour) and a local token endpoint answering `status` with `body`.
        async fn setup(status: u16, body: serde_json::Value) -> Setup {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/oauth2/v1/token"))
                .and(body_string_contains("refresh_token=rt-0"))
                .respond_with(ResponseTemplate::new(status).set_body_json(body))
                .mount(&server)
                .await;
            let store = MemStore::default();
            let tenant = TenantId::generate();
            let seal = |object: &str, purpose: &str, plain: &[u8]| {
                keyring()
                    .seal(
                        &Owner {
                            tenant: tenant.as_str(),
                            object,
                            purpose,
                        },
                        plain,
                    )
                    .unwrap()
                    .encode()
            };
            let integration = Integration {
                id: IntegrationId::generate(),
                tenant_id: tenant.clone(),
                provider: "airtable".into(),
                name: "Airtable".into(),
                auth_mode: "oauth2_authorization_code".into(),
                oauth_client_id: Some("client".into()),
                oauth_client_secret: None,
                scopes: vec![],
                return_urls: vec![],
                enabled: true,
                webhook_secret: None,
                webhook_verification_token: None,
                webhook_routing: Default::default(),
                created_at_ms: 1,
                updated_at_ms: 1,
                version: 1,
            };
            let integration = Integration {
                oauth_client_secret: Some(seal(
                    integration.id.as_str(),
                    CLIENT_SECRET_PURPOSE,
                    b"secret",
                )),
                ..integration
            };
            store.put_integration(&integration);
            let id = ConnectionId::generate();
            let credentials = seal(
                id.as_str(),
                CREDENTIALS_PURPOSE,
                br#"{"access_token":"at-0","refresh_token":"rt-0"}"#,
            );
            let connection = Connection {
                config: BTreeMap::from([
                    ("base_id".to_owned(), "appAAAABBBBCCCCDD".to_owned()),
                    ("table".to_owned(), "t".to_owned()),
                ]),
                token_expires_at_ms: Some(NOW + 3_600_000),
                tokens_obtained_at_ms: Some(NOW - IDLE_REFRESH_AFTER_MS - 3_600_000),
                ..oauth_connection(&tenant, &integration.id, &id, "airtable", credentials)
            };
            store.put_connection(&connection);
            let mut d = deps(MemStore::default());
            d.clock = Arc::new(ManualClock::at(NOW));
            d.refreshing = refreshing(
                store.clone(),
                ProviderOrigins::from([("airtable".to_owned(), server.uri())]),
            );
            Setup {
                d,
                store,
                connection,
                server,
            }
        }

        fn job(s: &Setup) -> String {
            JobEnvelope::new(JobKind::RefreshConnection {
                tenant_id: s.connection.tenant_id.clone(),
                connection_id: s.connection.id.clone(),
            })
            .to_body()
        }

        async fn stored(s: &Setup) -> Connection {
            s.store
                .get_connection(&s.connection.tenant_id, &s.connection.id)
                .await
                .unwrap()
                .unwrap()
        }

        async fn token_calls(s: &Setup) -> usize {
            s.server.received_requests().await.unwrap_or_default().len()
        }

        #[tokio::test]
        async fn a_due_connection_is_refreshed_once_although_its_token_is_still_valid() {
            let s = setup(
                200,
                serde_json::json!({"access_token": "at-1", "refresh_token": "rt-1",
                    "expires_in": 3600, "token_type": "Bearer"}),
            )
            .await;
            let body = job(&s);
            let out = handle(&s.d, event(&[("m1", &body, "1")])).await.unwrap();
            assert!(out.batch_item_failures.is_empty());
            assert_eq!(token_calls(&s).await, 1);
            let c = stored(&s).await;
            assert_eq!(c.tokens_obtained_at_ms, Some(NOW));
            assert_eq!(c.idle_refresh_due_ms(), Some(NOW + IDLE_REFRESH_AFTER_MS));
            assert_eq!(c.version, 2);
            // Another job for it (a monitor tick that overlapped) finds nothing due.
            let again = job(&s);
            let out = handle(&s.d, event(&[("m2", &again, "1")])).await.unwrap();
            assert!(out.batch_item_failures.is_empty());
            assert_eq!(token_calls(&s).await, 1);
        }

        #[tokio::test]
        async fn a_refused_refresh_token_is_acknowledged_and_needs_reauth() {
            let s = setup(400, serde_json::json!({"error": "invalid_grant"})).await;
            let body = job(&s);
            let out = handle(&s.d, event(&[("m1", &body, "1")])).await.unwrap();
            assert!(out.batch_item_failures.is_empty(), "nothing to retry");
            let c = stored(&s).await;
            assert_eq!(c.status, ConnectionStatus::NeedsReauth);
            assert_eq!(c.idle_refresh_due_ms(), None, "out of the index");
        }

        #[tokio::test]
        async fn an_outage_fails_the_message_for_a_retry_and_changes_nothing() {
            let s = setup(503, serde_json::json!({"error": "unavailable"})).await;
            let body = job(&s);
            let out = handle(&s.d, event(&[("m1", &body, "1")])).await.unwrap();
            assert_eq!(out.batch_item_failures.len(), 1);
            assert_eq!(
                s.d.queue.retried(),
                vec![("rh-m1".to_owned(), Duration::from_secs(5))]
            );
            assert_eq!(stored(&s).await, s.connection);
            assert!(s.d.ledger.done_jobs().is_empty());
        }
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
