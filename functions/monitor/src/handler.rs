//! The scheduled tick: enqueue the pipeline canary, and a refresh job for each connection whose
//! idle refresh is due. The connector records the canary and the health endpoint reports its round
//! trip, so a stalled queue, worker or store shows up as a stale canary. The connector runs the
//! refreshes (one at a time per connection, like every refresh).
//!
//! A due connection is postponed by [`RETRY_REFRESH_AFTER`] before its job is enqueued: a job in
//! flight is not enqueued again on the next tick, two overlapping ticks do not both enqueue it (the
//! postponement is conditional on the due time they read), and a refresh that failed for now (or a
//! job that was never sent) comes back after that delay. A refresh that succeeds moves the due time
//! a day on; `needs_reauth` removes the connection from the index.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::{JobQueue, RefreshSchedule};
use tributary_core::time::Clock;

/// How many refresh jobs one tick enqueues at most (a tick a minute: 288,000 a day).
pub const MAX_REFRESHES_PER_TICK: usize = 200;
/// When a due connection whose job was enqueued is due again if nothing refreshed it.
pub const RETRY_REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);

/// What the handler needs.
pub struct Deps<Q, R> {
    /// The jobs queue.
    pub queue: Q,
    /// The index of connections due for an idle refresh.
    pub schedule: R,
    /// The time source.
    pub clock: Arc<dyn Clock>,
}

/// What one tick did (returned to the invoker, useful with `cargo lambda invoke`).
#[derive(Debug, Serialize)]
pub struct TickOutcome {
    /// The canary job enqueued on this tick.
    pub canary_job_id: String,
    /// How many idle-refresh jobs it enqueued.
    pub refreshes_enqueued: usize,
}

/// Handles one scheduled tick. Any event shape is accepted: the schedule's payload carries nothing
/// the tick needs.
#[tracing::instrument(skip_all)]
pub async fn handle<Q: JobQueue, R: RefreshSchedule>(
    deps: &Deps<Q, R>,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<TickOutcome, lambda_runtime::Error> {
    let now = deps.clock.now_ms();
    let canary = JobEnvelope::new(JobKind::Canary {
        enqueued_at_ms: now,
    });
    deps.queue.send(&canary, Duration::ZERO).await?;
    tracing::info!(job_id = %canary.id, "canary enqueued");
    let refreshes_enqueued = enqueue_due_refreshes(deps, now).await?;
    Ok(TickOutcome {
        canary_job_id: canary.id.to_string(),
        refreshes_enqueued,
    })
}

async fn enqueue_due_refreshes<Q: JobQueue, R: RefreshSchedule>(
    deps: &Deps<Q, R>,
    now: tributary_core::time::EpochMillis,
) -> Result<usize, lambda_runtime::Error> {
    let retry_at =
        now.saturating_add(i64::try_from(RETRY_REFRESH_AFTER.as_millis()).unwrap_or(i64::MAX));
    let mut jobs = Vec::new();
    for due in deps
        .schedule
        .due_refreshes(now, MAX_REFRESHES_PER_TICK)
        .await?
    {
        if deps.schedule.postpone_refresh(&due, retry_at).await? {
            jobs.push(JobEnvelope::new(JobKind::RefreshConnection {
                tenant_id: due.tenant_id,
                connection_id: due.connection_id,
            }));
        }
    }
    if !jobs.is_empty() {
        deps.queue.send_batch(&jobs).await?;
        tracing::info!(jobs = jobs.len(), "idle refreshes enqueued");
    }
    Ok(jobs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::connection::{Connection, ConnectionStatus, IDLE_REFRESH_AFTER_MS};
    use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};
    use tributary_testing::fixtures::oauth_connection;
    use tributary_testing::{FakeQueue, ManualClock, MemStore};

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
            schedule: MemStore::default(),
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
            schedule: MemStore::default(),
            clock: Arc::new(ManualClock::at(0)),
        };
        assert!(handle(&deps, scheduled_event()).await.is_err());
    }

    fn connection(
        tenant: &TenantId,
        obtained: Option<i64>,
        status: ConnectionStatus,
    ) -> Connection {
        Connection {
            status,
            tokens_obtained_at_ms: obtained,
            ..oauth_connection(
                tenant,
                &IntegrationId::generate(),
                &ConnectionId::generate(),
                "airtable",
                "v1.k1.sealed".into(),
            )
        }
    }

    #[tokio::test]
    async fn due_idle_connections_are_enqueued_once_and_again_after_the_retry_delay() {
        const T0: i64 = 1_700_000_000_000;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let now = T0 + IDLE_REFRESH_AFTER_MS;
        let due = connection(&tenant, Some(T0), ConnectionStatus::Active);
        let recent = connection(&tenant, Some(T0 + 3_600_000), ConnectionStatus::Active);
        let no_refresh_token = connection(&tenant, None, ConnectionStatus::Active);
        let reauth = connection(&tenant, Some(T0), ConnectionStatus::NeedsReauth);
        for c in [&due, &recent, &no_refresh_token, &reauth] {
            store.put_connection(c);
        }
        let clock = Arc::new(ManualClock::at(now));
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store.clone(),
            clock: clock.clone(),
        };
        let out = handle(&deps, scheduled_event()).await.unwrap();
        assert_eq!(out.refreshes_enqueued, 1);
        let refreshes: Vec<JobKind> = deps
            .queue
            .sent()
            .into_iter()
            .map(|j| j.kind)
            .filter(|k| matches!(k, JobKind::RefreshConnection { .. }))
            .collect();
        assert_eq!(
            refreshes,
            [JobKind::RefreshConnection {
                tenant_id: tenant.clone(),
                connection_id: due.id.clone(),
            }]
        );
        // The next tick does not enqueue it again while its job is in flight...
        clock.advance(60_000);
        assert_eq!(
            handle(&deps, scheduled_event())
                .await
                .unwrap()
                .refreshes_enqueued,
            0
        );
        // ...but after the retry delay it does, if nothing refreshed it.
        clock.advance(i64::try_from(RETRY_REFRESH_AFTER.as_millis()).unwrap());
        assert_eq!(
            handle(&deps, scheduled_event())
                .await
                .unwrap()
                .refreshes_enqueued,
            1
        );
    }

    #[tokio::test]
    async fn when_the_store_is_down_the_tick_fails_after_the_canary() {
        let store = MemStore::default();
        store.fail(true);
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store,
            clock: Arc::new(ManualClock::at(0)),
        };
        assert!(handle(&deps, scheduled_event()).await.is_err());
        assert_eq!(deps.queue.sent().len(), 1, "the canary went out first");
    }
}
