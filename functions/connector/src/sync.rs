//! Sync runs: a scheduled start, the run itself (page by page, continued across invocations), and
//! the purge of a deleted sync.
//!
//! A run holds its sync's run lease while it executes, so one run of a sync executes at a time,
//! and the (connection, model) it writes has one writer. Each page goes fetch → map → canonical
//! JSON → hash-compared, batched upserts of what changed → the feed page committed, carrying the
//! run's position after that page: a run that stops (time budget, crash, rate limit) continues
//! from the last page that is durable, so at most the page in flight is fetched again.
//!
//! Retries happen in one layer: the sync engine's client makes one attempt per request, and a
//! rate limit or an outage defers the run through the queue (a continuation with a delay), counted
//! in the run's `retries` and bounded by [`MAX_DEFERRALS`] in a row without progress.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;
use tributary_core::PortError;
use tributary_core::connection::ConnectionStatus;
use tributary_core::ids::{EventId, JobId, SyncId, SyncRunId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::operation::{self, NoteKind, OperationError, OperationState};
use tributary_core::ports::{ConnectionStore, IntegrationStore, JobQueue, SyncStore};
use tributary_core::records::{
    FeedKey, FeedPage, Fetched, RecentWrites, RecordAction, RecordStore, stage_deletions,
    stage_page_after,
};
use tributary_core::refresh::RefreshError;
use tributary_core::sync::{
    LastRun, MAX_RECORD_ID_LEN, RUN_IDLE_AFTER, RunError, RunState, RunStats, RunTrigger,
    SyncConfig, SyncEvent, SyncEventType, SyncMode, SyncRun, SyncStatus, record_id,
};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{Clock, EpochMillis, SystemClock};
use tributary_core::vault::Vault;
use tributary_engine::grant::{UseError, catalog_spec, usable_connection};
use tributary_engine::origins::ProviderOrigins;
use tributary_engine::selector::Selector;
use tributary_engine::{Engine, EngineError, ErrorClass, ReadOptions, ResumePoint, StreamState};

/// Deferrals in a row (no page read between them) after which a run fails.
pub const MAX_DEFERRALS: u32 = 8;
/// Continuations in a row that do not move the position after which a run is `stalled`.
pub const MAX_STALLED_CONTINUATIONS: u32 = 3;
/// How many times a run that stopped without ending is resumed before a check ends it `stalled`.
pub const MAX_RESCUES: u32 = 2;
/// The longest delay SQS allows on a message.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// How often a run reads its own item to notice a cancellation, and saves its position when
/// pages change nothing (no feed page carries it then).
const CHECK_EVERY_MS: EpochMillis = 5_000;
/// Writes a run remembers (about 1 MB), far more than DynamoDB's replication lag covers.
const RECENT_WRITES: usize = 10_000;
/// Items one purge step removes.
const PURGE_STEP: usize = 1_000;
/// The audit actor of what runs do.
const ACTOR: &str = "tributary:connector";

/// What sync runs need.
pub struct Syncing<S, R> {
    /// Syncs, runs, connections and integrations (the control table).
    pub store: S,
    /// Records and their feed (the records table).
    pub records: R,
    /// The credential vault.
    pub vault: Vault,
    /// The engine reads go through: its client makes one attempt per request (the queue retries).
    pub engine: Engine,
    /// The deployment's provider origin overrides.
    pub origins: ProviderOrigins,
    /// Caps the time one invocation spends on a run (the default is 80 % of what the invocation
    /// has left when the run starts).
    pub time_budget: Option<Duration>,
}

/// Why a sync job failed (the message is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum SyncJobError {
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Another invocation holds the sync's run lease.
    #[error("another invocation is running this sync")]
    Busy,
}

/// The clock and deadline of one job.
pub struct JobTime<'a> {
    /// The time source.
    pub clock: &'a dyn Clock,
    /// When this invocation must be over (epoch ms), from the Lambda context.
    pub deadline_ms: EpochMillis,
    /// The job's id (the lease holder).
    pub job_id: &'a JobId,
}

impl JobTime<'_> {
    /// When this job stops reading: `budget` from now, or 80 % of what the invocation has left.
    fn stop_at(&self, budget: Option<Duration>) -> EpochMillis {
        let now = self.clock.now_ms();
        let left = (self.deadline_ms - now).max(0);
        let default = now + left * 4 / 5;
        match budget {
            Some(b) => default.min(now + i64::try_from(b.as_millis()).unwrap_or(i64::MAX)),
            None => default,
        }
    }
}

fn sync_event(
    sync: &SyncConfig,
    run: Option<&SyncRun>,
    kind: SyncEventType,
    at_ms: EpochMillis,
) -> SyncEvent {
    SyncEvent {
        id: EventId::generate(),
        tenant_id: sync.tenant_id.clone(),
        sync_id: sync.id.clone(),
        run_id: run.map(|r| r.id.clone()),
        kind,
        stats: run.map(|r| r.stats),
        error: run.and_then(|r| r.error.clone()),
        at_ms,
    }
}

/// Applies `change` to the sync as stored now, retrying on a concurrent write (the API may
/// change a sync's settings while a run ends): `None` when the sync is gone.
async fn edit_sync<S: SyncStore>(
    store: &S,
    tenant: &TenantId,
    id: &SyncId,
    mut change: impl FnMut(&mut SyncConfig),
    now_ms: EpochMillis,
) -> Result<Option<SyncConfig>, PortError> {
    for _ in 0..5 {
        let Some(mut sync) = store.get_sync(tenant, id).await? else {
            return Ok(None);
        };
        let read = sync.version;
        change(&mut sync);
        sync.updated_at_ms = now_ms;
        sync.version = read + 1;
        match store.update_sync(&sync, read).await {
            Ok(true) => return Ok(Some(sync)),
            Ok(false) => return Ok(None),
            Err(PortError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PortError::Conflict {
        service: tributary_core::error::Service::Store,
        operation: "UpdateItem",
    })
}

/// Saves the run at `now` (version-checked: the API's cancel may have changed it; the
/// cancellation is kept and honoured at the next check). The save time is how the monitor tells a
/// run in progress from one that stopped without ending.
async fn save_run<S: SyncStore>(
    store: &S,
    run: &mut SyncRun,
    now: EpochMillis,
) -> Result<(), PortError> {
    run.saved_at_ms = now;
    loop {
        let read = run.version;
        run.version = read + 1;
        match store.update_run(run, read).await {
            Ok(_) => return Ok(()),
            Err(PortError::Conflict { .. }) => {
                let Some(stored) = store.get_run(&run.tenant_id, &run.sync_id, &run.id).await?
                else {
                    return Ok(());
                };
                run.version = stored.version;
                run.cancel_requested |= stored.cancel_requested;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A sync's scheduled start (the monitor found it due): the next run is scheduled, and a run is
/// created and enqueued unless one is in progress. Idempotent: the run's id is stored on the sync
/// before the run is created, so a redelivered start finds it and only makes sure it exists and
/// is enqueued.
pub async fn start_scheduled<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &SyncId,
    due_ms: EpochMillis,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let Some(sync) = store.get_sync(tenant, id).await? else {
        tracing::info!(sync_id = %id, "the sync is gone; nothing to start");
        return Ok(());
    };
    if sync.status != SyncStatus::Active {
        tracing::info!(sync_id = %id, status = sync.status.as_str(), "the sync is not active; not started");
        return Ok(());
    }
    let now = clock.now_ms();
    if let Some(active) = &sync.active_run_id {
        match store.get_run(tenant, id, active).await? {
            Some(run) if !run.state.is_final() => {
                if run.trigger == RunTrigger::Schedule && run.queued_at_ms >= due_ms {
                    // This start's own run (a redelivery): make sure it is enqueued.
                    if run.state == RunState::Queued {
                        enqueue_run(queue, &run, 0, Duration::ZERO).await?;
                    }
                } else {
                    tracing::info!(sync_id = %id, run_id = %run.id, "a run is in progress; this occurrence is skipped");
                }
                reschedule(store, &sync, due_ms, now).await?;
                return Ok(());
            }
            Some(_) => {}
            None => {
                // Stored on the sync by an earlier delivery that stopped before creating it.
                let mut run = SyncRun::queued(&sync, RunTrigger::Schedule, false, due_ms.max(now));
                run.id = active.clone();
                create_and_enqueue(store, queue, &run).await?;
                return Ok(());
            }
        }
    }
    let mut run = SyncRun::queued(&sync, RunTrigger::Schedule, false, due_ms.max(now));
    let run_id = run.id.clone();
    let next = sync.frequency.next_run_ms(id, due_ms.max(now));
    let Some(saved) = edit_sync(
        store,
        tenant,
        id,
        |s| {
            s.active_run_id = Some(run_id.clone());
            s.next_run_at_ms = next;
        },
        now,
    )
    .await?
    else {
        return Ok(());
    };
    run.queued_at_ms = now;
    tracing::info!(sync_id = %id, run_id = %run.id, next_run_at_ms = ?saved.next_run_at_ms, "scheduled run started");
    create_and_enqueue(store, queue, &run).await
}

/// What a provider webhook's start of a sync's run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookStart {
    /// The run exists and is enqueued (made now, or by an earlier delivery of the same job).
    Started(SyncRunId),
    /// Another run is in progress: it is left to read what changed (one run of a sync at a time).
    InProgress(SyncRunId),
    /// The sync is gone or not active.
    Inactive,
}

/// Starts a run of the sync for a provider webhook, as a manual start would, with the id `run_id`
/// the caller derived from the delivery: the run takes the sync's slot (unless another run is in
/// progress), then is created and enqueued. Idempotent: a redelivered job finds its run (even
/// ended) by that id and only makes sure a queued one is enqueued, so one delivery never starts two
/// runs.
pub async fn start_for_webhook<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &SyncId,
    run_id: &SyncRunId,
) -> Result<WebhookStart, SyncJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    for _ in 0..5 {
        if let Some(run) = store.get_run(tenant, id, run_id).await? {
            if run.state == RunState::Queued {
                enqueue_run(queue, &run, 0, Duration::ZERO).await?;
            }
            return Ok(WebhookStart::Started(run.id));
        }
        let Some(mut sync) = store.get_sync(tenant, id).await? else {
            return Ok(WebhookStart::Inactive);
        };
        if sync.status != SyncStatus::Active {
            return Ok(WebhookStart::Inactive);
        }
        if let Some(active) = sync.active_run_id.clone().filter(|a| a != run_id)
            && store
                .get_run(tenant, id, &active)
                .await?
                .is_some_and(|r| !r.state.is_final())
        {
            return Ok(WebhookStart::InProgress(active));
        }
        let now = clock.now_ms();
        let mut run = SyncRun::queued(&sync, RunTrigger::Webhook, false, now);
        run.id = run_id.clone();
        // The slot first (on the version read, so a run started meanwhile wins), then the run: a
        // delivery that stops between the two finds the slot its own on the next one.
        if sync.active_run_id.as_ref() != Some(run_id) {
            let read = sync.version;
            sync.active_run_id = Some(run_id.clone());
            sync.updated_at_ms = now;
            sync.version = read + 1;
            match store.update_sync(&sync, read).await {
                Ok(true) => {}
                Ok(false) => return Ok(WebhookStart::Inactive),
                Err(PortError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        create_and_enqueue(store, queue, &run).await?;
        tracing::info!(sync_id = %id, run_id = %run.id, "webhook run started");
        return Ok(WebhookStart::Started(run.id));
    }
    Err(SyncJobError::Port(PortError::Conflict {
        service: tributary_core::error::Service::Store,
        operation: "UpdateItem",
    }))
}

async fn reschedule<S: SyncStore>(
    store: &S,
    sync: &SyncConfig,
    due_ms: EpochMillis,
    now: EpochMillis,
) -> Result<(), PortError> {
    let next = sync.frequency.next_run_ms(&sync.id, due_ms.max(now));
    edit_sync(
        store,
        &sync.tenant_id,
        &sync.id,
        |s| s.next_run_at_ms = next,
        now,
    )
    .await?;
    Ok(())
}

async fn create_and_enqueue<S: SyncStore, Q: JobQueue>(
    store: &S,
    queue: &Q,
    run: &SyncRun,
) -> Result<(), SyncJobError> {
    match store.create_run(run).await {
        Ok(()) | Err(PortError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    enqueue_run(queue, run, 0, Duration::ZERO).await
}

async fn enqueue_run<Q: JobQueue>(
    queue: &Q,
    run: &SyncRun,
    continuation: u32,
    delay: Duration,
) -> Result<(), SyncJobError> {
    let job = JobEnvelope::new(JobKind::SyncRun {
        tenant_id: run.tenant_id.clone(),
        sync_id: run.sync_id.clone(),
        run_id: run.id.clone(),
        continuation,
    });
    queue.send(&job, delay.min(MAX_DELAY)).await?;
    Ok(())
}

/// How one invocation of a run ended.
enum Stop {
    /// Read everything.
    Done(Option<Value>),
    /// Out of time: continue now.
    Budget,
    /// The provider asked to wait (or failed for now): continue after the delay.
    Defer(Duration, RunError),
    /// Failed for good.
    Fail(RunError),
    /// The connection needs the end user: the sync pauses.
    Reauth(RunError),
    /// The tenant cancelled.
    Cancelled,
}

fn classify(e: &EngineError) -> RunError {
    let class = match e.class() {
        ErrorClass::Auth => "auth",
        ErrorClass::RateLimited => "rate_limited",
        ErrorClass::Transient => match e {
            EngineError::Timeout(_) | EngineError::Transport(_) => "network",
            _ => "provider",
        },
        ErrorClass::Config => "config",
        _ => match e {
            EngineError::Malformed { .. } | EngineError::RecordTooLarge { .. } => "malformed",
            _ => "provider",
        },
    };
    RunError {
        class: class.into(),
        message: e.to_string().chars().take(500).collect(),
    }
}

fn backoff(deferrals: u32) -> Duration {
    Duration::from_secs((5u64 << deferrals.min(8)).min(900))
}

/// Executes (or continues) a run. Acknowledged (`Ok`) whenever the run's state is durable —
/// finished, continued with its continuation enqueued, or stale (a duplicate delivery, a run
/// already over); an error retries the message.
pub async fn execute<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    time: &JobTime<'_>,
    tenant: &TenantId,
    sync_id: &SyncId,
    run_id: &SyncRunId,
    continuation: u32,
) -> Result<(), SyncJobError>
where
    S: SyncStore + ConnectionStore + IntegrationStore,
    R: RecordStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let clock = time.clock;
    let Some(mut run) = store.get_run(tenant, sync_id, run_id).await? else {
        tracing::warn!(run_id = %run_id, "no such run; acknowledged");
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    if run.state.is_final() || continuation < run.continuations {
        tracing::info!(run_id = %run_id, state = run.state.as_str(), continuation, "stale run job; acknowledged");
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    let Some(sync) = store.get_sync(tenant, sync_id).await? else {
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    operation::describe(|d| {
        d.op.connection_id = Some(sync.connection_id.clone());
        d.op.integration_id = Some(sync.integration_id.clone());
        d.op.provider = Some(sync.provider.clone());
        d.op.sync_id = Some(sync.id.clone());
        d.op.name = Some(sync.stream.clone());
    });
    let holder = time.job_id.to_string();
    let now = clock.now_ms();
    if !store
        .lease_sync(tenant, sync_id, &holder, now, time.deadline_ms + 60_000)
        .await?
    {
        return Err(SyncJobError::Busy);
    }
    let mut start_stats = run.stats;
    let warnings_before = run.warnings.len();
    let outcome = execute_leased(syncing, queue, time, &sync, &mut run, &mut start_stats).await;
    describe_outcome(&run, &start_stats, warnings_before, clock.now_ms());
    if let Err(e) = store.release_sync(tenant, sync_id, &holder).await {
        // The lease expires on its own a minute after this invocation's deadline.
        tracing::warn!(error = %e, "could not release the sync's run lease");
    }
    outcome
}

/// What this invocation of `run` did, for its operation: the records it wrote (its counters less
/// those it started from), how it ended, and the warnings it added.
fn describe_outcome(run: &SyncRun, start: &RunStats, warnings_before: usize, now: EpochMillis) {
    operation::describe(|d| {
        let c = &mut d.op.counts;
        c.records_added = run.stats.added.saturating_sub(start.added);
        c.records_updated = run.stats.updated.saturating_sub(start.updated);
        c.records_deleted = run.stats.deleted.saturating_sub(start.deleted);
        c.records_unchanged = run.stats.unchanged.saturating_sub(start.unchanged);
        let state = match run.state {
            RunState::Succeeded => Some(OperationState::Succeeded),
            RunState::Failed => Some(OperationState::Failed),
            RunState::Cancelled => Some(OperationState::Cancelled),
            RunState::Stalled => Some(OperationState::Stalled),
            RunState::Continued if d.state == Some(OperationState::Deferred) => {
                Some(OperationState::Deferred)
            }
            RunState::Continued => Some(OperationState::Continued),
            // Still running: the invocation failed before the run was saved (the job comes back).
            RunState::Queued | RunState::Running => None,
        };
        d.state = state;
        if run.state.is_final() {
            d.op.error = run.error.as_ref().map(|e| OperationError {
                class: e.class.clone(),
                message: e.message.clone(),
            });
        }
    });
    for w in run.warnings.iter().skip(warnings_before) {
        operation::note(NoteKind::Warning, w, now);
    }
}

async fn execute_leased<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    time: &JobTime<'_>,
    sync: &SyncConfig,
    run: &mut SyncRun,
    start_stats: &mut RunStats,
) -> Result<(), SyncJobError>
where
    S: SyncStore + ConnectionStore + IntegrationStore,
    R: RecordStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let clock = time.clock;
    let now = clock.now_ms();
    if sync.status == SyncStatus::Deleting || run.cancel_requested {
        return finish(syncing, sync, run, RunState::Cancelled, None, now).await;
    }
    let feed = FeedKey {
        tenant_id: sync.tenant_id.clone(),
        connection_id: sync.connection_id.clone(),
        model: sync.model.clone(),
    };
    // Where to start: the run's saved position, or a later page of this run that committed its
    // own (the run stopped after committing it, before saving itself).
    let last = syncing.records.last_page(&feed).await?;
    let mut next_seq = last.as_ref().map_or(1, |p| p.seq + 1);
    if let Some(page) = last.filter(|p| p.run_id == run.id && p.seq > run.feed_seq)
        && page.run_position.is_some()
    {
        run.position = page.run_position;
        run.stats = page.run_stats;
        run.feed_seq = page.seq;
    }
    if run.started_at_ms.is_none() {
        run.started_at_ms = Some(now);
        run.start_seq = next_seq;
        run.start_checkpoint = match (sync.mode, run.full_resync) {
            (SyncMode::Incremental, false) => sync.checkpoint.clone(),
            _ => None,
        };
    }
    run.state = RunState::Running;
    save_run(store, run, now).await?;
    *start_stats = run.stats;
    let start_position = run.position.clone();

    let Some(spec) = catalog_spec(&sync.provider) else {
        let error = RunError {
            class: "config".into(),
            message: format!("provider `{}` is not in the catalog", sync.provider),
        };
        return finish(syncing, sync, run, RunState::Failed, Some(error), now).await;
    };
    let Some(connection) = store
        .get_connection(&sync.tenant_id, &sync.connection_id)
        .await?
    else {
        let error = RunError {
            class: "config".into(),
            message: "the connection was deleted".into(),
        };
        return finish(syncing, sync, run, RunState::Failed, Some(error), now).await;
    };
    let stop = if connection.status == ConnectionStatus::NeedsReauth {
        Stop::Reauth(RunError {
            class: "auth".into(),
            message: format!(
                "the connection needs to be authorized again: {}",
                connection
                    .status_reason
                    .as_deref()
                    .unwrap_or("refused by the provider")
            ),
        })
    } else if connection.status == ConnectionStatus::Disabled {
        Stop::Fail(RunError {
            class: "config".into(),
            message: "the connection is disabled".into(),
        })
    } else {
        match usable_connection(
            store,
            &syncing.vault,
            &syncing.engine,
            &syncing.origins,
            clock,
            &connection,
        )
        .await
        {
            Ok(usable) => {
                read(
                    syncing,
                    time,
                    sync,
                    run,
                    &feed,
                    &mut next_seq,
                    spec,
                    &usable,
                )
                .await?
            }
            Err(UseError::Refresh(RefreshError::NeedsReauth(reason))) => Stop::Reauth(RunError {
                class: "auth".into(),
                message: format!("the connection needs to be authorized again: {reason}"),
            }),
            Err(UseError::Refresh(
                RefreshError::Transient(_) | RefreshError::Busy | RefreshError::Store(_),
            )) => Stop::Defer(
                backoff(run.deferrals),
                RunError {
                    class: "auth".into(),
                    message: "the access token could not be refreshed for now".into(),
                },
            ),
            Err(e) => Stop::Fail(RunError {
                class: "config".into(),
                message: e.to_string(),
            }),
        }
    };
    let now = clock.now_ms();
    match stop {
        Stop::Done(checkpoint) => {
            run.position = None;
            if sync.mode == SyncMode::FullRefresh {
                detect_deletions(syncing, sync, run, &feed, &mut next_seq, now).await?;
            }
            // The pass's checkpoint is saved with the end of the run, in one write of the sync.
            let incremental = sync.mode == SyncMode::Incremental && checkpoint.is_some();
            finish_with(syncing, sync, run, RunState::Succeeded, None, now, |s| {
                if incremental {
                    s.checkpoint = checkpoint.clone();
                }
            })
            .await
            .map(drop)
        }
        Stop::Cancelled => finish(syncing, sync, run, RunState::Cancelled, None, now).await,
        Stop::Fail(error) => finish(syncing, sync, run, RunState::Failed, Some(error), now).await,
        Stop::Reauth(error) => {
            let reason = error.message.clone();
            let pause = |s: &mut SyncConfig| {
                s.status = SyncStatus::Paused;
                s.status_reason = Some(format!("needs_reauth: {reason}"));
                s.next_run_at_ms = None;
            };
            if let Some(paused) = finish_with(
                syncing,
                sync,
                run,
                RunState::Failed,
                Some(error),
                now,
                pause,
            )
            .await?
            {
                store
                    .record_sync_event(&sync_event(&paused, None, SyncEventType::Paused, now))
                    .await?;
            }
            Ok(())
        }
        Stop::Defer(delay, error) => {
            run.deferrals += 1;
            run.stats.retries += 1;
            if run.deferrals > MAX_DEFERRALS {
                return finish(syncing, sync, run, RunState::Failed, Some(error), now).await;
            }
            tracing::info!(run_id = %run.id, delay_s = delay.as_secs(), class = %error.class, "run deferred");
            operation::note(
                NoteKind::Deferred,
                &format!("deferred {} s: {}", delay.as_secs(), error.message),
                now,
            );
            operation::describe(|d| {
                d.state = Some(OperationState::Deferred);
                d.op.counts.deferred_ms += u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                d.op.error = Some(OperationError {
                    class: error.class.clone(),
                    message: error.message.clone(),
                });
            });
            run.warn(format!("deferred {}s: {}", delay.as_secs(), error.message));
            continue_later(syncing, queue, run, delay, now).await
        }
        Stop::Budget if run.position == start_position => {
            // A whole invocation without moving on: the provider keeps answering the same page,
            // or the budget is too small for one page.
            run.stalled_continuations += 1;
            if run.stalled_continuations >= MAX_STALLED_CONTINUATIONS {
                let error = RunError {
                    class: "stalled".into(),
                    message: format!(
                        "the run's position did not move in {} invocations in a row",
                        run.stalled_continuations
                    ),
                };
                return finish(syncing, sync, run, RunState::Stalled, Some(error), now).await;
            }
            continue_later(syncing, queue, run, Duration::ZERO, now).await
        }
        Stop::Budget => {
            run.stalled_continuations = 0;
            continue_later(syncing, queue, run, Duration::ZERO, now).await
        }
    }
}

/// Saves the run as `continued` and enqueues its continuation.
async fn continue_later<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    run: &mut SyncRun,
    delay: Duration,
    now: EpochMillis,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    run.state = RunState::Continued;
    run.continuations += 1;
    save_run(&syncing.store, run, now).await?;
    operation::note(
        NoteKind::Continuation,
        &format!(
            "continues in invocation {} after {} s",
            run.continuations + 1,
            delay.as_secs()
        ),
        SystemClock.now_ms(),
    );
    enqueue_run(queue, run, run.continuations, delay).await
}

/// Reads pages until the pass ends or something stops it.
#[allow(clippy::too_many_arguments)]
async fn read<S, R>(
    syncing: &Syncing<S, R>,
    time: &JobTime<'_>,
    sync: &SyncConfig,
    run: &mut SyncRun,
    feed: &FeedKey,
    next_seq: &mut u64,
    spec: &tributary_engine::ProviderSpec,
    connection: &tributary_engine::Connection,
) -> Result<Stop, SyncJobError>
where
    S: SyncStore,
    R: RecordStore,
{
    let clock = time.clock;
    let stop_at = time.stop_at(syncing.time_budget);
    let Some(stream) = spec.stream(&sync.stream) else {
        return Ok(Stop::Fail(RunError {
            class: "config".into(),
            message: format!("the `{}` spec has no stream `{}`", spec.id, sync.stream),
        }));
    };
    let keys: Vec<Selector> = match stream
        .primary_key
        .iter()
        .map(|k| Selector::parse(k))
        .collect::<Result<_, _>>()
    {
        Ok(keys) => keys,
        Err(e) => {
            return Ok(Stop::Fail(RunError {
                class: "config".into(),
                message: e.to_string(),
            }));
        }
    };
    let resume = match run
        .position
        .clone()
        .map(serde_json::from_value::<ResumePoint>)
    {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            // A position this build cannot read (written by another version): the pass starts
            // again; unchanged records are not rewritten, so this costs reads, not duplicates.
            run.warn(format!(
                "the saved position was unreadable ({e}); the pass restarted"
            ));
            None
        }
        None => None,
    };
    let state = run
        .start_checkpoint
        .clone()
        .and_then(|c| serde_json::from_value::<StreamState>(c).ok());
    let opts = ReadOptions {
        max_records: None,
        state,
        resume,
    };
    let expires_at_s = sync
        .retention_days
        .map(|d| clock.now_ms() / 1000 + i64::from(d) * 86_400);
    // The run's provider requests: those of earlier invocations plus this one's, from the
    // client's counter (one sync run at a time per execution environment).
    let client_stats = syncing.engine.client().stats();
    let requests_before = client_stats.requests.load(Ordering::Relaxed);
    let earlier_requests = run.stats.provider_requests;
    let count_requests = |run: &mut SyncRun| {
        run.stats.provider_requests = earlier_requests
            + client_stats
                .requests
                .load(Ordering::Relaxed)
                .saturating_sub(requests_before);
    };
    let mut pages = match syncing
        .engine
        .read(spec, &sync.stream, connection, opts.clone())
    {
        Ok(p) => p,
        Err(e) => return Ok(Stop::Fail(classify(&e))),
    };
    // A position the engine refuses (the spec's pagination changed since it was saved) restarts
    // the pass, once.
    let mut restarted = false;
    let mut last_check = clock.now_ms();
    // A full pass keeps the ids it found unchanged, for deletion detection at its end.
    let mut seen = SeenBuffer::new(sync.mode == SyncMode::FullRefresh);
    // This invocation's last writes: compared with what was written, not with a read that may
    // not see them yet (a record the provider lists twice in a pass, seconds apart).
    let mut recent = RecentWrites::new(RECENT_WRITES);
    let stop = loop {
        if clock.now_ms() >= stop_at {
            break Stop::Budget;
        }
        let page = match pages.next().await {
            None => break Stop::Done(None),
            Some(Ok(page)) => page,
            Some(Err(EngineError::Resume(why))) if !restarted && opts.resume.is_some() => {
                run.warn(format!(
                    "the saved position was refused ({why}); the pass restarted"
                ));
                restarted = true;
                let fresh = ReadOptions {
                    resume: None,
                    ..opts.clone()
                };
                pages = match syncing.engine.read(spec, &sync.stream, connection, fresh) {
                    Ok(p) => p,
                    Err(e) => break Stop::Fail(classify(&e)),
                };
                continue;
            }
            Some(Err(e)) => {
                let error = classify(&e);
                break match e.class() {
                    ErrorClass::RateLimited | ErrorClass::Transient => Stop::Defer(
                        e.retry_after().unwrap_or_else(|| backoff(run.deferrals)),
                        error,
                    ),
                    ErrorClass::Auth => Stop::Reauth(error),
                    _ => Stop::Fail(error),
                };
            }
        };
        run.deferrals = 0;
        let mut fetched = Vec::with_capacity(page.records.len());
        let mut page_stats = RunStats {
            pages: 1,
            ..RunStats::default()
        };
        for record in &page.records {
            match prepare(record, &keys, sync) {
                Ok(f) => fetched.push(f),
                Err(why) => {
                    page_stats.invalid += 1;
                    run.warn(why);
                }
            }
        }
        let staged = stage_page_after(
            &syncing.records,
            feed,
            &run.id,
            *next_seq,
            clock.now_ms(),
            expires_at_s,
            fetched,
            &mut recent,
        )
        .await?;
        page_stats.add(&staged.stats);
        run.stats.add(&page_stats);
        count_requests(run);
        seen.extend(staged.unchanged);
        if seen.is_full() {
            seen.flush(syncing, feed, run, clock).await?;
        }
        let position = page
            .resume
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok());
        // A page that changed nothing commits no feed page, so its position is only here.
        let uncommitted = staged.entries.is_empty();
        if !uncommitted {
            // What this page saw is durable before the position moves past it.
            seen.flush(syncing, feed, run, clock).await?;
            syncing
                .records
                .write_page(
                    feed,
                    &staged.writes,
                    &FeedPage {
                        seq: *next_seq,
                        run_id: run.id.clone(),
                        entries: staged.entries,
                        committed_at_ms: clock.now_ms(),
                        run_position: position.clone(),
                        run_stats: run.stats,
                        expires_at_s,
                    },
                )
                .await?;
            run.feed_seq = *next_seq;
            *next_seq += 1;
        }
        if page.last {
            break Stop::Done(page.checkpoint.and_then(|c| serde_json::to_value(c).ok()));
        }
        run.position = position;
        let now = clock.now_ms();
        if now - last_check >= CHECK_EVERY_MS {
            last_check = now;
            if let Some(stored) = syncing
                .store
                .get_run(&run.tenant_id, &run.sync_id, &run.id)
                .await?
                && stored.cancel_requested
            {
                run.cancel_requested = true;
                break Stop::Cancelled;
            }
            if uncommitted {
                seen.flush(syncing, feed, run, clock).await?;
                save_run(&syncing.store, run, now).await?;
            }
        }
    };
    seen.flush(syncing, feed, run, clock).await?;
    count_requests(run);
    Ok(stop)
}

/// Ids a full pass found unchanged and has not yet kept.
struct SeenBuffer {
    on: bool,
    ids: Vec<String>,
    bytes: usize,
}

/// How long seen chunks are kept: past any run's life.
const SEEN_RETENTION_S: i64 = 7 * 86_400;
/// A seen chunk's size: well under DynamoDB's 400 KB item limit.
const SEEN_CHUNK_BYTES: usize = 300_000;

impl SeenBuffer {
    fn new(on: bool) -> Self {
        Self {
            on,
            ids: Vec::new(),
            bytes: 0,
        }
    }

    fn extend(&mut self, ids: Vec<String>) {
        if self.on {
            self.bytes += ids.iter().map(|id| id.len() + 1).sum::<usize>();
            self.ids.extend(ids);
        }
    }

    fn is_full(&self) -> bool {
        self.bytes >= SEEN_CHUNK_BYTES
    }

    async fn flush<S, R: RecordStore>(
        &mut self,
        syncing: &Syncing<S, R>,
        feed: &FeedKey,
        run: &SyncRun,
        clock: &dyn Clock,
    ) -> Result<(), PortError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        syncing
            .records
            .put_seen(
                feed,
                &run.id,
                &self.ids,
                clock.now_ms() / 1000 + SEEN_RETENTION_S,
            )
            .await?;
        self.ids.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// A record id's 64-bit hash (the first 8 bytes of its SHA-256), for the seen set.
fn id_hash(id: &str) -> u64 {
    let digest = tributary_core::records::content_hash(id);
    u64::from_str_radix(&digest[..16], 16).unwrap_or(0)
}

/// Entries of one tombstone page.
const DELETIONS_PER_PAGE: usize = 500;

/// After a full pass that completed: the stored records the pass did not see are deleted
/// (tombstoned in the feed), unless they are more than the sync's guard allows, in which case
/// nothing is deleted and the run says why.
async fn detect_deletions<S, R: RecordStore>(
    syncing: &Syncing<S, R>,
    sync: &SyncConfig,
    run: &mut SyncRun,
    feed: &FeedKey,
    next_seq: &mut u64,
    now: EpochMillis,
) -> Result<(), PortError> {
    // What the pass saw, as 64-bit hashes of the ids, sorted (8 bytes an id however long the ids
    // are). A collision can only make a missing record look seen: it is then not deleted this
    // pass, never deleted wrongly.
    let mut seen: Vec<u64> = syncing
        .records
        .seen(feed, &run.id)
        .await?
        .iter()
        .map(|id| id_hash(id))
        .collect();
    let mut after = run.start_seq.checked_sub(1).filter(|s| *s > 0);
    loop {
        let pages = syncing.records.pages_after(feed, after, 50).await?;
        let Some(last) = pages.last() else { break };
        after = Some(last.seq);
        let fetched = pages.len();
        for page in pages.iter().filter(|p| p.run_id == run.id) {
            seen.extend(page.entries.iter().map(|id| id_hash(id)));
        }
        if fetched < 50 {
            break;
        }
    }
    seen.sort_unstable();
    seen.dedup();
    let mut live = 0u64;
    let mut missing = Vec::new();
    let mut position: Option<String> = None;
    loop {
        let (ids, next) = syncing
            .records
            .record_ids(feed, position.as_deref(), 1000)
            .await?;
        for (id, action) in ids {
            if action != RecordAction::Deleted {
                live += 1;
                if seen.binary_search(&id_hash(&id)).is_err() {
                    missing.push(id);
                }
            }
        }
        match next {
            Some(n) => position = Some(n),
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let share = missing.len() as u64 * 100 / live.max(1);
    if share > u64::from(sync.deletion_guard_percent) {
        let warning = format!(
            "deletion guard: the pass did not see {} of {live} records ({share}%), more than the \
             sync's guard of {}%; nothing was deleted (raise deletion_guard_percent if this is expected)",
            missing.len(),
            sync.deletion_guard_percent
        );
        tracing::warn!(run_id = %run.id, missing = missing.len(), live, "deletion guard refused the deletions");
        run.warn(warning);
        return Ok(());
    }
    let expires_at_s = sync
        .retention_days
        .map(|d| now / 1000 + i64::from(d) * 86_400);
    for chunk in missing.chunks(DELETIONS_PER_PAGE) {
        let staged = stage_deletions(
            &syncing.records,
            feed,
            &run.id,
            *next_seq,
            now,
            expires_at_s,
            chunk,
        )
        .await?;
        if staged.entries.is_empty() {
            continue;
        }
        run.stats.add(&staged.stats);
        syncing
            .records
            .write_page(
                feed,
                &staged.writes,
                &FeedPage {
                    seq: *next_seq,
                    run_id: run.id.clone(),
                    entries: staged.entries,
                    committed_at_ms: now,
                    run_position: None,
                    run_stats: run.stats,
                    expires_at_s,
                },
            )
            .await?;
        run.feed_seq = *next_seq;
        *next_seq += 1;
    }
    Ok(())
}

/// A fetched record's id and canonical JSON (mapped first when the sync maps).
fn prepare(
    record: &tributary_engine::Record,
    keys: &[Selector],
    sync: &SyncConfig,
) -> Result<Fetched, String> {
    let value = record
        .to_value()
        .map_err(|e| format!("a record is not JSON: {e}"))?;
    let parts: Option<Vec<String>> = keys.iter().map(|k| k.get_text(&value)).collect();
    let id = parts
        .map(|p| record_id(&p))
        .filter(|id| !id.is_empty() && id.len() <= MAX_RECORD_ID_LEN)
        .ok_or_else(|| "a record has no usable primary key; skipped".to_owned())?;
    let data = match &sync.mapping {
        None => record
            .canonical()
            .map_err(|e| format!("record `{id}`: {e}"))?,
        Some(mapping) => {
            let mapped = mapping
                .apply(&value)
                .map_err(|e| format!("record `{id}`: {e}"))?;
            let text = serde_json::to_string(&mapped).map_err(|e| format!("record `{id}`: {e}"))?;
            tributary_engine::canonical_json(&text).map_err(|e| format!("record `{id}`: {e}"))?
        }
    };
    Ok(Fetched { id, data })
}

/// Ends the run in `state`, clears the sync's active run and records the event.
async fn finish<S, R>(
    syncing: &Syncing<S, R>,
    sync: &SyncConfig,
    run: &mut SyncRun,
    state: RunState,
    error: Option<RunError>,
    now: EpochMillis,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
{
    finish_with(syncing, sync, run, state, error, now, |_| {})
        .await
        .map(drop)
}

/// [`finish`], with `change` applied to the sync in the same write (the pass's checkpoint, a
/// pause): the sync as saved, `None` when it is gone.
async fn finish_with<S, R>(
    syncing: &Syncing<S, R>,
    sync: &SyncConfig,
    run: &mut SyncRun,
    state: RunState,
    error: Option<RunError>,
    now: EpochMillis,
    change: impl Fn(&mut SyncConfig),
) -> Result<Option<SyncConfig>, SyncJobError>
where
    S: SyncStore,
{
    let store = &syncing.store;
    run.state = state;
    run.error = error;
    run.ended_at_ms = Some(now);
    save_run(store, run, now).await?;
    let run_id = run.id.clone();
    let saved = edit_sync(
        store,
        &sync.tenant_id,
        &sync.id,
        |s| {
            if s.active_run_id.as_ref() == Some(&run_id) {
                s.active_run_id = None;
            }
            s.last_run = Some(LastRun {
                run_id: run_id.clone(),
                state,
                ended_at_ms: now,
            });
            change(s);
        },
        now,
    )
    .await?;
    let kind = match state {
        RunState::Succeeded => SyncEventType::RunSucceeded,
        RunState::Cancelled => SyncEventType::RunCancelled,
        RunState::Stalled => SyncEventType::RunStalled,
        _ => SyncEventType::RunFailed,
    };
    store
        .record_sync_event(&sync_event(
            saved.as_ref().unwrap_or(sync),
            Some(run),
            kind,
            now,
        ))
        .await?;
    tracing::info!(
        run_id = %run.id,
        state = state.as_str(),
        pages = run.stats.pages,
        added = run.stats.added,
        updated = run.stats.updated,
        unchanged = run.stats.unchanged,
        invalid = run.stats.invalid,
        "sync run ended"
    );
    Ok(saved)
}

/// When the run last moved, if it is in progress and has not moved for [`RUN_IDLE_AFTER`] at
/// `now` (the monitor's bound).
fn idle_since(run: &SyncRun, now: EpochMillis) -> Option<EpochMillis> {
    let idle_ms = i64::try_from(RUN_IDLE_AFTER.as_millis()).unwrap_or(i64::MAX);
    run.active_at_ms()
        .filter(|at| *at < now.saturating_sub(idle_ms))
}

/// The monitor's check of a run it found idle: in progress, yet not saved for [`RUN_IDLE_AFTER`]
/// (its job was lost or dead-lettered, or every invocation crashes). Under the sync's run lease,
/// the run is resumed — a run job for its current continuation, which `execute` treats as any
/// delivery of that job (a duplicate waits for the lease, then finds the run moved on and is
/// acknowledged) — at most [`MAX_RESCUES`] times; the next check ends it `stalled` with its event,
/// which frees the sync. Resuming saves the run, which moves it out of the monitor's window, so a
/// run is checked again only if it stops again.
///
/// Nothing is done when the run is gone, over, or moved within [`RUN_IDLE_AFTER`], or when the
/// lease is held (an invocation is running it now: it saves the run when it stops).
pub async fn check_idle<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    time: &JobTime<'_>,
    tenant: &TenantId,
    sync_id: &SyncId,
    run_id: &SyncRunId,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let now = time.clock.now_ms();
    let run = store.get_run(tenant, sync_id, run_id).await?;
    if run.as_ref().and_then(|r| idle_since(r, now)).is_none() {
        tracing::info!(run_id = %run_id, "the run is over or moved; nothing to check");
        return Ok(());
    }
    let Some(sync) = store.get_sync(tenant, sync_id).await? else {
        // A deletion stopped before removing its runs: nothing will ever run or end this one.
        if let Some(mut run) = run {
            run.state = RunState::Stalled;
            run.error = Some(RunError {
                class: "stalled".into(),
                message: "the sync was deleted".into(),
            });
            run.ended_at_ms = Some(now);
            save_run(store, &mut run, now).await?;
        }
        return Ok(());
    };
    let holder = time.job_id.to_string();
    if !store
        .lease_sync(tenant, sync_id, &holder, now, time.deadline_ms + 60_000)
        .await?
    {
        tracing::info!(run_id = %run_id, "the sync's run lease is held: the run is executing");
        return Ok(());
    }
    let outcome = rescue_or_end(syncing, queue, &sync, run_id, now).await;
    if let Err(e) = store.release_sync(tenant, sync_id, &holder).await {
        tracing::warn!(error = %e, "could not release the sync's run lease");
    }
    outcome
}

/// [`check_idle`] under the lease: the run read again (an invocation may have saved or ended it
/// before the lease was free), then resumed or ended.
async fn rescue_or_end<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    sync: &SyncConfig,
    run_id: &SyncRunId,
    now: EpochMillis,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let Some(mut run) = store.get_run(&sync.tenant_id, &sync.id, run_id).await? else {
        return Ok(());
    };
    let Some(active_at) = idle_since(&run, now) else {
        return Ok(());
    };
    let idle_minutes = (now - active_at) / 60_000;
    if run.rescues < MAX_RESCUES {
        // The job first: if the save then fails, this check is retried and sends a duplicate,
        // which is harmless; the other way round, a lost job would wait for the next check.
        enqueue_run(queue, &run, run.continuations, Duration::ZERO).await?;
        run.rescues += 1;
        save_run(store, &mut run, now).await?;
        tracing::warn!(
            run_id = %run.id,
            state = run.state.as_str(),
            continuation = run.continuations,
            rescues = run.rescues,
            idle_minutes,
            "sync run stopped without ending; resumed"
        );
        return Ok(());
    }
    let error = RunError {
        class: "stalled".into(),
        message: format!(
            "no progress for {idle_minutes} minutes after {} resumptions",
            run.rescues
        ),
    };
    tracing::warn!(run_id = %run.id, rescues = run.rescues, idle_minutes, "sync run stalled");
    finish(syncing, sync, &mut run, RunState::Stalled, Some(error), now).await
}

/// Removes a deleted sync's records and feed in steps, then the sync; continues in a new job when
/// the invocation's budget runs out.
pub async fn purge<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    time: &JobTime<'_>,
    tenant: &TenantId,
    id: &SyncId,
) -> Result<(), SyncJobError>
where
    S: SyncStore,
    R: RecordStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let Some(sync) = store.get_sync(tenant, id).await? else {
        return Ok(());
    };
    if sync.status != SyncStatus::Deleting {
        tracing::warn!(sync_id = %id, "purge of a sync that is not being deleted; ignored");
        return Ok(());
    }
    let feed = FeedKey {
        tenant_id: sync.tenant_id.clone(),
        connection_id: sync.connection_id.clone(),
        model: sync.model.clone(),
    };
    let stop_at = time.stop_at(syncing.time_budget);
    loop {
        if syncing.records.purge(&feed, PURGE_STEP).await? {
            break;
        }
        if time.clock.now_ms() >= stop_at {
            queue
                .send(
                    &JobEnvelope::new(JobKind::PurgeSync {
                        tenant_id: tenant.clone(),
                        sync_id: id.clone(),
                    }),
                    Duration::ZERO,
                )
                .await?;
            return Ok(());
        }
    }
    let audit = AuditEvent::new(tenant, ACTOR, time.clock.now_ms(), "sync.deleted", id);
    store.delete_sync(tenant, id, &audit).await?;
    tracing::info!(sync_id = %id, "sync deleted with its records");
    Ok(())
}

#[cfg(test)]
mod tests;
