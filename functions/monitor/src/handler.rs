//! The scheduled tick: enqueue the pipeline canary, a refresh job for each connection whose idle
//! refresh is due, a start job for each sync whose next run is due, and a check of each run that
//! stopped without ending. The connector records the canary and the health endpoint reports its
//! round trip, so a stalled queue, worker or store shows up as a stale canary. The connector runs
//! the refreshes (one at a time per connection, like every refresh).
//!
//! A due connection is postponed by [`RETRY_REFRESH_AFTER`] before its job is enqueued: a job in
//! flight is not enqueued again on the next tick, two overlapping ticks do not both enqueue it (the
//! postponement is conditional on the due time they read), and a refresh that failed for now (or a
//! job that was never sent) comes back after that delay. A refresh that succeeds moves the due time
//! a day on; `needs_reauth` removes the connection from the index.
//!
//! Due syncs are found the same way, through the `SyncDue` index of next run times (each sync's
//! time carries its own stable jitter, so syncs on one schedule spread out), and moved
//! [`RETRY_SYNC_START_AFTER`] on before their start job is enqueued; the connector's start sets
//! the real next run time from the sync's frequency.
//!
//! Events waiting for their webhooks are found by a peek at each shard of the outbox index: a
//! shard that holds one gets a dispatch job (the connector makes the messages and empties the
//! shard, enqueuing another dispatch while more remain). An idle deployment spends one read per
//! shard and tick; a shard dispatched twice makes no second message (messages' ids are derived).
//!
//! Runs that stopped without ending (their job lost or dead-lettered, or every invocation
//! crashing: none of these can report itself) are found through the `ActiveRuns` index of runs in
//! progress by last save: those not saved for [`RUN_IDLE_AFTER`] get a `check_run` job each, and
//! their number is the `StalledRuns` metric. The connector's check resumes such a run (saving it,
//! which moves it out of the window) or ends it `stalled` (which takes it out of the index), so a
//! run is checked again only if it stops again.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::{
    ACTIVE_RUN_SHARDS, EventOutbox, JobQueue, OUTBOX_SHARDS, RefreshSchedule, SyncSchedule,
};
use tributary_core::sync::RUN_IDLE_AFTER;
use tributary_core::time::Clock;

/// How many refresh jobs one tick enqueues at most (a tick a minute: 288,000 a day).
pub const MAX_REFRESHES_PER_TICK: usize = 200;
/// When a due connection whose job was enqueued is due again if nothing refreshed it.
pub const RETRY_REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// How many sync start jobs one tick enqueues at most.
pub const MAX_SYNC_STARTS_PER_TICK: usize = 500;
/// When a due sync whose start was enqueued is due again if the start never happened.
pub const RETRY_SYNC_START_AFTER: Duration = Duration::from_secs(10 * 60);
/// How many idle runs of each shard of the index one tick checks at most (the oldest first).
pub const MAX_RUN_CHECKS_PER_SHARD: usize = 25;

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
    /// How many sync start jobs it enqueued.
    pub sync_starts_enqueued: usize,
    /// How many outbox shards it enqueued a dispatch of.
    pub dispatches_enqueued: usize,
    /// How many checks of runs that stopped without ending it enqueued.
    pub run_checks_enqueued: usize,
}

/// Handles one scheduled tick. Any event shape is accepted: the schedule's payload carries nothing
/// the tick needs.
#[tracing::instrument(skip_all)]
pub async fn handle<Q: JobQueue, R: RefreshSchedule + SyncSchedule + EventOutbox>(
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
    let sync_starts_enqueued = enqueue_due_syncs(deps, now).await?;
    let dispatches_enqueued = enqueue_dispatches(deps).await?;
    let run_checks_enqueued = enqueue_run_checks(deps, now).await?;
    Ok(TickOutcome {
        canary_job_id: canary.id.to_string(),
        refreshes_enqueued,
        sync_starts_enqueued,
        dispatches_enqueued,
        run_checks_enqueued,
    })
}

/// A check for each run in progress not saved for [`RUN_IDLE_AFTER`]. The count is emitted on
/// every tick, 0 included, so the metric shows the monitor looking rather than missing data.
async fn enqueue_run_checks<Q: JobQueue, R: SyncSchedule>(
    deps: &Deps<Q, R>,
    now: tributary_core::time::EpochMillis,
) -> Result<usize, lambda_runtime::Error> {
    let before = now.saturating_sub(i64::try_from(RUN_IDLE_AFTER.as_millis()).unwrap_or(i64::MAX));
    let mut jobs = Vec::new();
    for shard in 0..ACTIVE_RUN_SHARDS {
        for idle in deps
            .schedule
            .idle_runs(shard, before, MAX_RUN_CHECKS_PER_SHARD)
            .await?
        {
            tracing::warn!(
                tenant_id = %idle.tenant_id,
                sync_id = %idle.sync_id,
                run_id = %idle.run_id,
                active_at_ms = idle.active_at_ms,
                "sync run stopped without ending"
            );
            jobs.push(JobEnvelope::new(JobKind::CheckRun {
                tenant_id: idle.tenant_id,
                sync_id: idle.sync_id,
                run_id: idle.run_id,
            }));
        }
    }
    tributary_aws::metrics::stalled_runs(u64::try_from(jobs.len()).unwrap_or(u64::MAX));
    if !jobs.is_empty() {
        deps.queue.send_batch(&jobs).await?;
        tracing::info!(jobs = jobs.len(), "run checks enqueued");
    }
    Ok(jobs.len())
}

async fn enqueue_dispatches<Q: JobQueue, R: EventOutbox>(
    deps: &Deps<Q, R>,
) -> Result<usize, lambda_runtime::Error> {
    let mut jobs = Vec::new();
    for shard in 0..OUTBOX_SHARDS {
        if !deps.schedule.pending_events(shard, 1).await?.is_empty() {
            jobs.push(JobEnvelope::new(JobKind::DispatchEvents { shard }));
        }
    }
    if !jobs.is_empty() {
        deps.queue.send_batch(&jobs).await?;
        tracing::info!(jobs = jobs.len(), "event dispatches enqueued");
    }
    Ok(jobs.len())
}

async fn enqueue_due_syncs<Q: JobQueue, R: SyncSchedule>(
    deps: &Deps<Q, R>,
    now: tributary_core::time::EpochMillis,
) -> Result<usize, lambda_runtime::Error> {
    let retry_at =
        now.saturating_add(i64::try_from(RETRY_SYNC_START_AFTER.as_millis()).unwrap_or(i64::MAX));
    let mut jobs = Vec::new();
    for due in deps
        .schedule
        .due_syncs(now, MAX_SYNC_STARTS_PER_TICK)
        .await?
    {
        if deps.schedule.reschedule_sync(&due, retry_at).await? {
            jobs.push(JobEnvelope::new(JobKind::ScheduledSync {
                tenant_id: due.tenant_id,
                sync_id: due.sync_id,
                due_ms: due.due_ms,
            }));
        }
    }
    if !jobs.is_empty() {
        deps.queue.send_batch(&jobs).await?;
        tracing::info!(jobs = jobs.len(), "sync starts enqueued");
    }
    Ok(jobs.len())
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
    async fn due_active_syncs_are_started_once_and_again_after_the_retry_delay() {
        use tributary_core::ids::ConnectionId;
        use tributary_core::sync::{SyncMode, SyncStatus};
        use tributary_testing::fixtures::sync_config;
        const NOW: i64 = 1_700_000_000_000;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let conn = ConnectionId::generate();
        let sync = |model: &str, next: Option<i64>| {
            sync_config(
                &tenant,
                &conn,
                "stripe",
                "customers",
                model,
                SyncMode::FullRefresh,
                next,
            )
        };
        let due = sync("a", Some(NOW - 1));
        let later = sync("b", Some(NOW + 60_000));
        let unscheduled = sync("c", None);
        let paused = tributary_core::sync::SyncConfig {
            status: SyncStatus::Paused,
            ..sync("d", Some(NOW - 1))
        };
        for s in [&due, &later, &unscheduled, &paused] {
            store.put_sync(s);
        }
        let clock = Arc::new(ManualClock::at(NOW));
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store.clone(),
            clock: clock.clone(),
        };
        let out = handle(&deps, scheduled_event()).await.unwrap();
        assert_eq!(out.sync_starts_enqueued, 1);
        let starts: Vec<JobKind> = deps
            .queue
            .sent()
            .into_iter()
            .map(|j| j.kind)
            .filter(|k| matches!(k, JobKind::ScheduledSync { .. }))
            .collect();
        assert_eq!(
            starts,
            [JobKind::ScheduledSync {
                tenant_id: tenant.clone(),
                sync_id: due.id.clone(),
                due_ms: NOW - 1,
            }]
        );
        // Not again on the next tick while its start is in flight...
        clock.advance(60_000);
        let out = handle(&deps, scheduled_event()).await.unwrap();
        assert_eq!(out.sync_starts_enqueued, 1, "only `later`, now due");
        // ...but after the retry delay, if the start never happened.
        clock.advance(i64::try_from(RETRY_SYNC_START_AFTER.as_millis()).unwrap());
        let out = handle(&deps, scheduled_event()).await.unwrap();
        assert_eq!(out.sync_starts_enqueued, 2);
    }

    fn checks(q: &FakeQueue) -> Vec<tributary_core::ids::SyncRunId> {
        q.sent()
            .into_iter()
            .filter_map(|j| match j.kind {
                JobKind::CheckRun { run_id, .. } => Some(run_id),
                _ => None,
            })
            .collect()
    }

    fn idle_ms() -> i64 {
        i64::try_from(RUN_IDLE_AFTER.as_millis()).unwrap()
    }

    async fn seed_run(
        store: &MemStore,
        sync: &tributary_core::sync::SyncConfig,
        saved_at_ms: i64,
        state: tributary_core::sync::RunState,
    ) -> tributary_core::sync::SyncRun {
        use tributary_core::ports::SyncStore;
        let mut run = tributary_core::sync::SyncRun::queued(
            sync,
            tributary_core::sync::RunTrigger::Manual,
            false,
            saved_at_ms,
        );
        run.state = state;
        store.create_run(&run).await.unwrap();
        run
    }

    #[tokio::test]
    async fn runs_not_saved_for_the_idle_time_get_one_check_each_and_fresh_or_ended_ones_none() {
        use tributary_core::sync::{RunState, SyncMode};
        use tributary_testing::fixtures::sync_config;
        const NOW: i64 = 1_700_000_000_000;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let sync = sync_config(
            &tenant,
            &ConnectionId::generate(),
            "stripe",
            "customers",
            "customers",
            SyncMode::FullRefresh,
            None,
        );
        store.put_sync(&sync);
        // A run whose first job was lost, one whose invocations crash after starting, one that
        // continued 29 minutes ago, one saved exactly the idle time ago, one long over.
        let lost = seed_run(&store, &sync, NOW - idle_ms() - 1, RunState::Queued).await;
        let crashed = seed_run(&store, &sync, NOW - 3 * idle_ms(), RunState::Running).await;
        let fresh = seed_run(&store, &sync, NOW - idle_ms() + 60_000, RunState::Continued).await;
        let at_bound = seed_run(&store, &sync, NOW - idle_ms(), RunState::Running).await;
        let ended = seed_run(&store, &sync, NOW - 3 * idle_ms(), RunState::Succeeded).await;
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store.clone(),
            clock: Arc::new(ManualClock::at(NOW)),
        };

        let out = handle(&deps, scheduled_event()).await.unwrap();

        let mut found = checks(&deps.queue);
        found.sort();
        let mut expected = vec![lost.id.clone(), crashed.id.clone()];
        expected.sort();
        assert_eq!(
            found,
            expected,
            "not {:?}",
            [&fresh.id, &at_bound.id, &ended.id]
        );
        assert_eq!(out.run_checks_enqueued, 2);
        let sent = deps.queue.sent();
        let job = sent
            .iter()
            .find(|j| matches!(&j.kind, JobKind::CheckRun { run_id, .. } if *run_id == lost.id))
            .unwrap();
        assert_eq!(
            job.kind,
            JobKind::CheckRun {
                tenant_id: tenant.clone(),
                sync_id: sync.id.clone(),
                run_id: lost.id.clone(),
            }
        );
    }

    #[tokio::test]
    async fn a_tick_checks_the_oldest_idle_runs_of_every_shard_up_to_its_bound() {
        use tributary_core::sync::{RunState, SyncMode};
        use tributary_testing::fixtures::sync_config;
        const NOW: i64 = 1_700_000_000_000;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let sync = sync_config(
            &tenant,
            &ConnectionId::generate(),
            "stripe",
            "customers",
            "customers",
            SyncMode::FullRefresh,
            None,
        );
        store.put_sync(&sync);
        for i in 0..200 {
            seed_run(
                &store,
                &sync,
                NOW - idle_ms() - 1 - i * 1_000,
                RunState::Queued,
            )
            .await;
        }
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store.clone(),
            clock: Arc::new(ManualClock::at(NOW)),
        };

        let out = handle(&deps, scheduled_event()).await.unwrap();

        let before = NOW - idle_ms();
        let mut expected = Vec::new();
        for shard in 0..ACTIVE_RUN_SHARDS {
            let all = store.idle_runs(shard, before, 1_000).await.unwrap();
            assert!(
                all.len() > MAX_RUN_CHECKS_PER_SHARD,
                "shard {shard}: {}",
                all.len()
            );
            expected.extend(
                all.into_iter()
                    .take(MAX_RUN_CHECKS_PER_SHARD)
                    .map(|r| r.run_id),
            );
        }
        expected.sort();
        let mut found = checks(&deps.queue);
        found.sort();
        assert_eq!(
            found.len(),
            MAX_RUN_CHECKS_PER_SHARD * ACTIVE_RUN_SHARDS as usize
        );
        assert_eq!(found, expected);
        assert_eq!(out.run_checks_enqueued, found.len());
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

    #[tokio::test]
    async fn a_shard_holding_events_gets_one_dispatch_and_an_empty_one_none() {
        use tributary_core::connection::{ConnectionEvent, ConnectionEventType};
        use tributary_core::ports::{ConnectionStore, EventOutbox};
        use tributary_core::tenancy::AuditEvent;
        let store = MemStore::default();
        let deps = Deps {
            queue: FakeQueue::default(),
            schedule: store.clone(),
            clock: Arc::new(ManualClock::at(1_000)),
        };
        let dispatches = |q: &FakeQueue| -> Vec<u32> {
            q.sent()
                .into_iter()
                .filter_map(|j| match j.kind {
                    JobKind::DispatchEvents { shard } => Some(shard),
                    _ => None,
                })
                .collect()
        };
        handle(&deps, scheduled_event()).await.unwrap();
        assert!(dispatches(&deps.queue).is_empty(), "nothing waits");

        let tenant = TenantId::generate();
        let made = connection(&tenant, None, ConnectionStatus::Active);
        let event = ConnectionEvent::of(&made, ConnectionEventType::Created, None, 1_000);
        let audit = AuditEvent {
            id: tributary_core::ids::AuditEventId::generate(),
            tenant_id: tenant.clone(),
            at_ms: 1_000,
            actor: "key_1".into(),
            action: "connection.created".into(),
            target: made.id.to_string(),
        };
        store
            .create_connection(&made, &event, &audit)
            .await
            .unwrap();
        let out = handle(&deps, scheduled_event()).await.unwrap();
        let shard = tributary_core::outbound::outbox_shard(&tenant);
        assert_eq!(dispatches(&deps.queue), [shard]);
        assert_eq!(out.dispatches_enqueued, 1);

        // Once dispatched, the shard is quiet again.
        let waiting = store.pending_events(shard, 10).await.unwrap();
        store.clear_outbox(&tenant, &waiting[0].key).await.unwrap();
        handle(&deps, scheduled_event()).await.unwrap();
        assert_eq!(dispatches(&deps.queue), [shard]);
    }
}
