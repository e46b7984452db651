//! `/v1/syncs`: a tenant's scheduled imports of one stream of one connection into a model of the
//! records store, and their runs. A sync is checked against the connection's provider spec (the
//! stream exists, `incremental` only where the stream is); each (connection, model) has one sync.
//! A manual run is queued here and executed by the connector from a `sync_run` job; a deletion
//! marks the sync `deleting` and leaves the removal of its records to a `purge_sync` job. Every
//! write of a sync or a run is version-checked: the connector writes them too.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use tributary_core::PortError;
use tributary_core::ids::{ConnectionId, EventId, SyncId, SyncRunId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::pagination::PageRequest;
use tributary_core::sync::{
    DEFAULT_DELETION_GUARD_PERCENT, Frequency, FrequencyError, LastRun, Mapping, MappingError,
    RunError, RunState, RunStats, RunTrigger, SyncConfig, SyncEvent, SyncEventType, SyncFilter,
    SyncMode, SyncRun, SyncStatus, valid_model,
};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{EpochMillis, rfc3339};
use utoipa::ToSchema;

use crate::access::{SyncsRead, SyncsWrite, TenantCaller};
use crate::dto::PageOf;
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of, page_request};
use crate::problem::ApiError;
use crate::request::{Id, JsonBody, invalid, only_query, query_id};
use crate::response::{Accepted, AcceptedAt, Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Jobs, JobsQueue, Store};

/// The longest cron expression accepted.
const MAX_CRON_LEN: usize = 100;
/// The longest stream name looked up in a spec.
const MAX_STREAM_LEN: usize = 64;
/// The longest retention, in days (10 years).
const MAX_RETENTION_DAYS: u32 = 3650;
/// Reads and writes of a sync retried when another write got there first.
const RETRIES: u32 = 4;

/// How often a sync runs: exactly one of `every_seconds` and `cron`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"every_seconds": 3600}))]
pub struct FrequencyDto {
    /// Every so many seconds, from 60 to 2592000 (30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 2592000)]
    pub every_seconds: Option<u32>,
    /// At the times a five-field cron expression names, in UTC: minute, hour, day of month,
    /// month, day of week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100, example = "0 */6 * * *")]
    pub cron: Option<String>,
}

impl From<Frequency> for FrequencyDto {
    fn from(f: Frequency) -> Self {
        match f {
            Frequency::Interval { every_seconds } => Self {
                every_seconds: Some(every_seconds),
                cron: None,
            },
            Frequency::Cron { cron } => Self {
                every_seconds: None,
                cron: Some(cron),
            },
        }
    }
}

/// Whether runs read the whole stream or what changed since the last completed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncModeDto {
    /// Every run reads every record; records missing from a completed pass are deleted (within
    /// the deletion guard).
    FullRefresh,
    /// A run reads what changed since the checkpoint (the stream must be incremental);
    /// deletions are not detected.
    Incremental,
}

impl From<SyncModeDto> for SyncMode {
    fn from(m: SyncModeDto) -> Self {
        match m {
            SyncModeDto::FullRefresh => SyncMode::FullRefresh,
            SyncModeDto::Incremental => SyncMode::Incremental,
        }
    }
}

impl From<SyncMode> for SyncModeDto {
    fn from(m: SyncMode) -> Self {
        match m {
            SyncMode::FullRefresh => SyncModeDto::FullRefresh,
            SyncMode::Incremental => SyncModeDto::Incremental,
        }
    }
}

/// A status the tenant may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableSyncStatus {
    /// Runs on its schedule (the next run is computed from now).
    Active,
    /// Not scheduled; manual runs still work.
    Paused,
}

/// A sync's status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatusDto {
    /// Runs on its schedule.
    Active,
    /// Not scheduled (by the tenant, or by a run whose connection needs the end user:
    /// `status_reason` says).
    Paused,
    /// Being deleted with its records.
    Deleting,
}

impl From<SyncStatus> for SyncStatusDto {
    fn from(s: SyncStatus) -> Self {
        match s {
            SyncStatus::Active => SyncStatusDto::Active,
            SyncStatus::Paused => SyncStatusDto::Paused,
            SyncStatus::Deleting => SyncStatusDto::Deleting,
        }
    }
}

/// How provider records become the tenant's records (documentation of
/// `tributary_core::sync::Mapping`, which the API reads and writes as is).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"fields": [{"to": "email"}, {"to": "name", "from": "full_name"}, {"to": "address.city", "from": "addresses.0.city"}, {"to": "seats", "from": "quantity", "type": "integer", "default": 1}]}))]
pub struct MappingDoc {
    /// The fields of the tenant's record, 1 to 200; nothing else is kept.
    #[schema(min_items = 1, max_items = 200)]
    pub fields: Vec<FieldMapDoc>,
}

/// One field of the tenant's record.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldMapDoc {
    /// Where the field goes: a dotted path (`address.city`); no two fields write to the same
    /// place or inside one another.
    pub to: String,
    /// Where it comes from in the provider's record: a dotted path with array indexes
    /// (`addresses.0.city`); default: `to`.
    pub from: Option<String>,
    /// The value when the provider's record has none (absent or null).
    #[schema(value_type = Option<Object>)]
    pub default: Option<serde_json::Value>,
    /// What the value is converted to: `string`, `number`, `integer` or `boolean`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<String>, pattern = "^(string|number|integer|boolean)$")]
    pub kind: Option<String>,
}

/// A sync to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"connection_id": "conn_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d", "stream": "customers", "model": "customers", "frequency": {"every_seconds": 3600}}))]
pub struct SyncIn {
    /// The connection (`conn_…`) to read through.
    #[schema(pattern = "^conn_[0-9a-f]{32}$")]
    pub connection_id: String,
    /// A stream of the connection's provider (`customers`).
    #[schema(min_length = 1, max_length = 64)]
    pub stream: String,
    /// The model the records are stored as, unique per connection: 1 to 64 letters, digits,
    /// `_`, `-` or `.`, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
    pub model: String,
    /// How often it runs.
    pub frequency: FrequencyDto,
    /// Default: the stream's own mode; `incremental` only for an incremental stream.
    pub mode: Option<SyncModeDto>,
    /// How provider records become the tenant's; absent: stored as the provider sends them.
    #[schema(value_type = Option<MappingDoc>)]
    pub mapping: Option<Mapping>,
    /// The largest share (percent) of stored records one full pass may delete; a pass that would
    /// delete more deletes nothing and says so in its run (default 50).
    #[schema(minimum = 0, maximum = 100)]
    pub deletion_guard_percent: Option<u32>,
    /// Days records are kept after their last change; absent: kept.
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: Option<u32>,
    /// `active` (default) or `paused`.
    pub status: Option<SettableSyncStatus>,
}

/// A field that is absent (outer `None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a sync; absent fields stay as they are. The connection, stream, model and mode
/// are fixed at creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "paused"}))]
pub struct SyncPatch {
    /// A new frequency (an active sync's next run is computed from now).
    pub frequency: Option<FrequencyDto>,
    /// A new mapping; `null` removes it (records are then stored as the provider sends them).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MappingDoc>, nullable)]
    pub mapping: Option<Option<Mapping>>,
    /// `active` schedules the next run from now; `paused` unschedules it.
    pub status: Option<SettableSyncStatus>,
    /// A new deletion guard, 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub deletion_guard_percent: Option<u32>,
    /// A new retention in days (1 to 3650); `null` keeps records.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 3650)]
    pub retention_days: Option<Option<u32>>,
}

/// A run's state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStateDto {
    /// Waiting for the connector.
    Queued,
    /// Being read.
    Running,
    /// Stopped at its time budget or deferred by a rate limit; continues from its position.
    Continued,
    /// Read everything.
    Succeeded,
    /// Stopped by an error (`error` says).
    Failed,
    /// Cancelled by the tenant.
    Cancelled,
    /// Its position stopped moving across continuations.
    Stalled,
}

impl From<RunState> for RunStateDto {
    fn from(s: RunState) -> Self {
        match s {
            RunState::Queued => RunStateDto::Queued,
            RunState::Running => RunStateDto::Running,
            RunState::Continued => RunStateDto::Continued,
            RunState::Succeeded => RunStateDto::Succeeded,
            RunState::Failed => RunStateDto::Failed,
            RunState::Cancelled => RunStateDto::Cancelled,
            RunState::Stalled => RunStateDto::Stalled,
        }
    }
}

/// How a sync's last finished run ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastRunOut {
    /// The run (`run_…`).
    pub run_id: String,
    /// How it ended.
    pub state: RunStateDto,
    /// RFC 3339.
    pub ended_at: String,
}

impl From<LastRun> for LastRunOut {
    fn from(l: LastRun) -> Self {
        Self {
            run_id: l.run_id.to_string(),
            state: l.state.into(),
            ended_at: time(l.ended_at_ms),
        }
    }
}

/// A sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOut {
    /// Id (`sync_…`).
    pub id: String,
    /// The connection it reads through.
    pub connection_id: String,
    /// The connection's integration.
    pub integration_id: String,
    /// The catalog provider.
    pub provider: String,
    /// The provider's stream.
    pub stream: String,
    /// The model its records are stored as.
    pub model: String,
    /// How often it runs.
    pub frequency: FrequencyDto,
    /// `full_refresh` or `incremental`.
    pub mode: SyncModeDto,
    /// How records are mapped; `null`: stored as the provider sends them.
    #[schema(value_type = Option<MappingDoc>)]
    pub mapping: Option<Mapping>,
    /// `active`, `paused` or `deleting`.
    pub status: SyncStatusDto,
    /// Why it is paused, when a run paused it.
    pub status_reason: Option<String>,
    /// The largest share (percent) of stored records one full pass may delete.
    pub deletion_guard_percent: u8,
    /// Days records are kept after their last change; `null`: kept.
    pub retention_days: Option<u32>,
    /// Whether an incremental checkpoint is stored (the next incremental run reads from it).
    pub has_checkpoint: bool,
    /// RFC 3339: when it runs next; `null` when not scheduled.
    pub next_run_at: Option<String>,
    /// The run in progress (`run_…`), if any.
    pub active_run_id: Option<String>,
    /// The last finished run.
    pub last_run: Option<LastRunOut>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn time(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

impl From<SyncConfig> for SyncOut {
    fn from(s: SyncConfig) -> Self {
        Self {
            id: s.id.to_string(),
            connection_id: s.connection_id.to_string(),
            integration_id: s.integration_id.to_string(),
            provider: s.provider,
            stream: s.stream,
            model: s.model,
            frequency: s.frequency.into(),
            mode: s.mode.into(),
            mapping: s.mapping,
            status: s.status.into(),
            status_reason: s.status_reason,
            deletion_guard_percent: s.deletion_guard_percent,
            retention_days: s.retention_days,
            has_checkpoint: s.checkpoint.is_some(),
            next_run_at: s.next_run_at_ms.map(time),
            active_run_id: s.active_run_id.map(|r| r.to_string()),
            last_run: s.last_run.map(LastRunOut::from),
            created_at: time(s.created_at_ms),
            updated_at: time(s.updated_at_ms),
        }
    }
}

/// What to run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"full_resync": true}))]
pub struct RunIn {
    /// Read from the beginning, ignoring the stored checkpoint for this run (what a full
    /// refresh does anyway); the checkpoint stays for later runs unless this run completes a
    /// pass.
    #[serde(default)]
    pub full_resync: bool,
    /// Clear the sync's stored incremental checkpoint before the run: this and later runs start
    /// from the stream's beginning.
    #[serde(default)]
    pub reset_checkpoint: bool,
}

/// What started a run.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunTriggerDto {
    /// The schedule.
    Schedule,
    /// `POST /v1/syncs/{sync_id}/runs`.
    Manual,
    /// A verified provider webhook routed to the sync's connection (`POST /v1/webhooks/{integration_id}`).
    Webhook,
}

/// Counters of a run (all its continuations together).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStatsOut {
    /// Pages read.
    pub pages: u64,
    /// Requests sent to the provider.
    pub provider_requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// Records stored for the first time.
    pub added: u64,
    /// Records whose content changed.
    pub updated: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Records read and found unchanged.
    pub unchanged: u64,
    /// Records refused (no primary key, or a mapping that cannot convert them).
    pub invalid: u64,
}

impl From<RunStats> for RunStatsOut {
    fn from(s: RunStats) -> Self {
        Self {
            pages: s.pages,
            provider_requests: s.provider_requests,
            retries: s.retries,
            added: s.added,
            updated: s.updated,
            deleted: s.deleted,
            unchanged: s.unchanged,
            invalid: s.invalid,
        }
    }
}

/// Why a run failed or stalled.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunErrorOut {
    /// A stable class: `auth`, `rate_limited`, `provider`, `network`, `malformed`, `config`,
    /// `internal`, `stalled`, `deletion_guard`.
    pub class: String,
    /// What happened.
    pub message: String,
}

/// One execution of a sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunOut {
    /// Id (`run_…`).
    pub id: String,
    /// The sync.
    pub sync_id: String,
    /// `schedule` or `manual`.
    pub trigger: RunTriggerDto,
    /// Whether it reads from the beginning although the sync has a checkpoint.
    pub full_resync: bool,
    /// Its state.
    pub state: RunStateDto,
    /// RFC 3339.
    pub queued_at: String,
    /// RFC 3339: when the connector first started it.
    pub started_at: Option<String>,
    /// RFC 3339: when it ended.
    pub ended_at: Option<String>,
    /// How many times it continued in a new invocation.
    pub continuations: u32,
    /// Counters.
    pub stats: RunStatsOut,
    /// Why it failed.
    pub error: Option<RunErrorOut>,
    /// Notes that did not fail it (a refused deletion, invalid records).
    pub warnings: Vec<String>,
    /// Whether a cancellation was requested (a running run stops at its next page).
    pub cancel_requested: bool,
}

impl From<SyncRun> for SyncRunOut {
    fn from(r: SyncRun) -> Self {
        Self {
            id: r.id.to_string(),
            sync_id: r.sync_id.to_string(),
            trigger: match r.trigger {
                RunTrigger::Schedule => RunTriggerDto::Schedule,
                RunTrigger::Manual => RunTriggerDto::Manual,
                RunTrigger::Webhook => RunTriggerDto::Webhook,
            },
            full_resync: r.full_resync,
            state: r.state.into(),
            queued_at: time(r.queued_at_ms),
            started_at: r.started_at_ms.map(time),
            ended_at: r.ended_at_ms.map(time),
            continuations: r.continuations,
            stats: r.stats.into(),
            error: r.error.map(|e| RunErrorOut {
                class: e.class,
                message: e.message,
            }),
            warnings: r.warnings,
            cancel_requested: r.cancel_requested,
        }
    }
}

/// The frequency, checked: exactly one form, in range, a cron expression that parses and fires.
fn check_frequency(pointer: &str, f: &FrequencyDto) -> Result<Frequency, ApiError> {
    let frequency = match (f.every_seconds, &f.cron) {
        (Some(every_seconds), None) => Frequency::Interval { every_seconds },
        (None, Some(cron)) if cron.len() > MAX_CRON_LEN => {
            return Err(invalid(
                &format!("{pointer}/cron"),
                &format!("A cron expression is at most {MAX_CRON_LEN} characters."),
            ));
        }
        (None, Some(cron)) => Frequency::Cron { cron: cron.clone() },
        _ => {
            return Err(invalid(
                pointer,
                "Give `frequency` as {\"every_seconds\": N} (60 to 2592000) or {\"cron\": \"0 */6 * * *\"} (five fields, UTC): exactly one of the two.",
            ));
        }
    };
    frequency.validate().map_err(|e| {
        let field = match e {
            FrequencyError::Interval(_) => "every_seconds",
            _ => "cron",
        };
        invalid(
            &format!("{pointer}/{field}"),
            &format!("Invalid frequency: {e}."),
        )
    })?;
    Ok(frequency)
}

fn check_mapping(pointer: &str, m: &Mapping) -> Result<(), ApiError> {
    m.validate().map_err(|e| {
        let at = match &e {
            MappingError::Invalid { index, .. } => format!("{pointer}/fields/{index}"),
            _ => format!("{pointer}/fields"),
        };
        invalid(&at, &format!("Invalid mapping: {e}."))
    })
}

/// Refuses a mapping that reads a field the stream's records cannot have, where the stream
/// declares what they have (its `record_schema`).
fn check_mapping_fields(
    pointer: &str,
    m: &Mapping,
    stream: &tributary_engine::spec::Stream,
) -> Result<(), ApiError> {
    for (index, field) in m.fields.iter().enumerate() {
        let (from, name) = match &field.from {
            Some(from) => (from, "from"),
            None => (&field.to, "to"),
        };
        if let Some(why) = stream.cannot_have(from) {
            return Err(invalid(
                &format!("{pointer}/fields/{index}/{name}"),
                &format!("Invalid mapping: `{from}`: {why}."),
            ));
        }
    }
    Ok(())
}

fn check_model(model: &str) -> Result<(), ApiError> {
    if valid_model(model) {
        Ok(())
    } else {
        Err(invalid(
            "/model",
            "`model` is 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter (`customers`, `crm.contact`).",
        ))
    }
}

fn check_guard(pointer: &str, percent: u32) -> Result<u8, ApiError> {
    u8::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| invalid(pointer, "`deletion_guard_percent` is from 0 to 100."))
}

fn check_retention(pointer: &str, days: u32) -> Result<u32, ApiError> {
    if (1..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(invalid(
            pointer,
            &format!(
                "`retention_days` is from 1 to {MAX_RETENTION_DAYS}; leave it out (or null) to keep records."
            ),
        ))
    }
}

fn audit(
    tenant: &TenantId,
    caller: &str,
    at_ms: EpochMillis,
    action: &str,
    id: &SyncId,
) -> AuditEvent {
    AuditEvent::new(tenant, caller, at_ms, action, id)
}

fn concurrent() -> ApiError {
    ApiError::Conflict {
        detail:
            "The sync is being changed concurrently (a run may be updating it). Retry the request."
                .into(),
    }
}

fn being_deleted(id: &SyncId) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "Sync `{id}` is being deleted with its records and can no longer change or run. Create a new sync if needed."
        ),
    }
}

async fn load<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &SyncId,
) -> Result<SyncConfig, ApiError> {
    store
        .get_sync(tenant, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound { resource: "sync" })
}

async fn load_run<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    sync: &SyncId,
    id: &SyncRunId,
) -> Result<SyncRun, ApiError> {
    store
        .get_run(tenant, sync, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound { resource: "run" })
}

/// Reads the sync, lets `change` edit it and writes it back on the condition that it is still the
/// version read, reading again (up to [`RETRIES`] times) when another write came first: the
/// connector updates syncs while they run. `change` answers whether there is anything to write.
async fn change_sync<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &SyncId,
    now: EpochMillis,
    mut change: impl FnMut(&mut SyncConfig) -> Result<bool, ApiError>,
) -> Result<SyncConfig, ApiError> {
    let mut attempts = 0;
    loop {
        let mut sync = load(store, tenant, id).await?;
        let read_version = sync.version;
        if !change(&mut sync)? {
            return Ok(sync);
        }
        sync.updated_at_ms = now;
        sync.version = read_version.saturating_add(1);
        match store.update_sync(&sync, read_version).await {
            Ok(true) => return Ok(sync),
            Ok(false) => return Err(ApiError::NotFound { resource: "sync" }),
            Err(PortError::Conflict { .. }) if attempts < RETRIES => attempts += 1,
            Err(PortError::Conflict { .. }) => return Err(concurrent()),
            Err(e) => return Err(store_failure(e)),
        }
    }
}

/// The query of the list: `limit`, `cursor` and `connection_id`.
pub struct SyncListQuery {
    filter: SyncFilter,
    page: PageRequest,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for SyncListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let q = only_query(parts, &["limit", "cursor", "connection_id"])?;
        let page = page_request(
            q.get("limit").map(String::as_str),
            q.get("cursor").map(String::as_str),
        )?;
        let connection_id =
            query_id::<ConnectionId>(&q, "connection_id", "a connection id (`conn_…`)")?;
        Ok(Self {
            filter: SyncFilter { connection_id },
            page,
        })
    }
}

/// Lists the tenant's syncs, oldest first. A page may hold fewer than `limit` syncs and still
/// have a `next_cursor`: follow it until it is absent.
#[utoipa::path(get, path = "/v1/syncs", operation_id = "list_syncs", tag = "Syncs",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("connection_id" = Option<String>, Query, description = "Only the syncs of this connection", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 200, description = "A page of syncs", body = PageOf<SyncOut>),
              (status = 400, description = "Bad filter, `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `syncs:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<SyncsRead>,
    store: Store<S>,
    query: SyncListQuery,
) -> Result<Json<PageOf<SyncOut>>, ApiError> {
    let found = store
        .list_syncs(&caller.tenant, &query.filter, &query.page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, SyncOut::from)))
}

/// Creates a sync of one stream of one of the tenant's connections into a model, checked
/// against the connection's provider spec. An active sync's first run is scheduled at once.
#[utoipa::path(post, path = "/v1/syncs", operation_id = "create_sync", tag = "Syncs", request_body = SyncIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Created", body = SyncOut),
              (status = 400, description = "Invalid body: an unknown connection, a stream the provider does not have, `incremental` for a stream that is not, a bad model name, frequency, mapping, deletion guard or retention", body = ProblemDoc),
              (status = 403, description = "Requires `syncs:write`", body = ProblemDoc),
              (status = 409, description = "The connection already has a sync for this model, or the same Idempotency-Key is in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<SyncsWrite>,
    store: Store<S>,
    clock: Clock,
    Idempotent(input): Idempotent<SyncIn>,
) -> Result<Created<SyncOut>, ApiError> {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    // What needs no store first.
    check_model(&input.model)?;
    let frequency = check_frequency("/frequency", &input.frequency)?;
    if let Some(mapping) = &input.mapping {
        check_mapping("/mapping", mapping)?;
    }
    let deletion_guard_percent = match input.deletion_guard_percent {
        Some(p) => check_guard("/deletion_guard_percent", p)?,
        None => DEFAULT_DELETION_GUARD_PERCENT,
    };
    let retention_days = input
        .retention_days
        .map(|d| check_retention("/retention_days", d))
        .transpose()?;
    if input.stream.is_empty() || input.stream.len() > MAX_STREAM_LEN {
        return Err(invalid(
            "/stream",
            &format!(
                "`stream` is 1 to {MAX_STREAM_LEN} characters: a stream of the connection's provider."
            ),
        ));
    }

    // The connection is the tenant's; another tenant's is refused as an unknown one is.
    let unknown = || {
        invalid(
            "/connection_id",
            "No connection with this id exists for your tenant. List your connections to find it.",
        )
    };
    let connection_id: ConnectionId = input.connection_id.parse().map_err(|_| unknown())?;
    let connection = store
        .get_connection(&tenant, &connection_id)
        .await
        .map_err(store_failure)?
        .ok_or_else(unknown)?;
    let spec = tributary_engine::grant::catalog_spec(&connection.provider).ok_or_else(|| {
        tracing::error!(provider = %connection.provider, "a connection's provider is not in the catalog");
        ApiError::Internal
    })?;
    let stream = spec.stream(&input.stream).ok_or_else(|| {
        let streams: Vec<String> = spec
            .streams
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect();
        invalid(
            "/stream",
            &format!(
                "`{}` has no stream `{}`. Its streams: {}.",
                spec.id,
                input.stream,
                if streams.is_empty() {
                    "none".to_owned()
                } else {
                    streams.join(", ")
                }
            ),
        )
    })?;
    if let Some(mapping) = &input.mapping {
        check_mapping_fields("/mapping", mapping, stream)?;
    }
    let incremental_stream = stream.sync == tributary_engine::spec::SyncMode::Incremental;
    let mode = match input.mode {
        Some(SyncModeDto::Incremental) if !incremental_stream => {
            return Err(invalid(
                "/mode",
                &format!(
                    "`{}`'s stream `{}` is read whole on every run: it supports `full_refresh` only.",
                    spec.id, stream.name
                ),
            ));
        }
        Some(mode) => mode.into(),
        None if incremental_stream => SyncMode::Incremental,
        None => SyncMode::FullRefresh,
    };

    let now = clock.now_ms();
    let id = SyncId::generate();
    let status = match input.status {
        Some(SettableSyncStatus::Paused) => SyncStatus::Paused,
        _ => SyncStatus::Active,
    };
    let sync = SyncConfig {
        next_run_at_ms: (status == SyncStatus::Active)
            .then(|| frequency.next_run_ms(&id, now))
            .flatten(),
        id,
        tenant_id: tenant.clone(),
        connection_id: connection.id.clone(),
        integration_id: connection.integration_id.clone(),
        provider: connection.provider.clone(),
        stream: stream.name.clone(),
        model: input.model.clone(),
        frequency,
        mode,
        mapping: input.mapping,
        status,
        status_reason: None,
        deletion_guard_percent,
        retention_days,
        checkpoint: None,
        active_run_id: None,
        last_run: None,
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    let event = audit(&tenant, &principal.principal, now, "sync.created", &sync.id);
    match store.create_sync(&sync, &event).await {
        Ok(()) => {}
        Err(PortError::Conflict { .. }) => {
            return Err(ApiError::Conflict {
                detail: format!(
                    "Connection `{}` already has a sync for model `{}`: one sync writes each model of a connection. Choose another `model`, or change that sync (GET /v1/syncs?connection_id={}).",
                    connection.id, sync.model, connection.id
                ),
            });
        }
        Err(e) => return Err(store_failure(e)),
    }
    tracing::info!(sync_id = %sync.id, connection_id = %sync.connection_id, model = %sync.model, "sync created");
    Ok(Created {
        location: format!("/v1/syncs/{}", sync.id),
        body: SyncOut::from(sync),
    })
}

/// Reads one of the tenant's syncs.
#[utoipa::path(get, path = "/v1/syncs/{sync_id}", operation_id = "get_sync", tag = "Syncs",
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$")),
    responses((status = 200, description = "The sync", body = SyncOut),
              (status = 403, description = "Requires `syncs:read`", body = ProblemDoc),
              (status = 404, description = "No such sync for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<SyncsRead>,
    store: Store<S>,
    Id(id): Id<SyncId>,
) -> Result<Json<SyncOut>, ApiError> {
    Ok(Json(SyncOut::from(
        load(&*store, &caller.tenant, &id).await?,
    )))
}

/// Changes a sync's frequency, mapping, status, deletion guard or retention.
#[utoipa::path(patch, path = "/v1/syncs/{sync_id}", operation_id = "update_sync", tag = "Syncs", request_body = SyncPatch,
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$")),
    responses((status = 200, description = "The updated sync", body = SyncOut),
              (status = 400, description = "Invalid body", body = ProblemDoc),
              (status = 403, description = "Requires `syncs:write`", body = ProblemDoc),
              (status = 404, description = "No such sync for this tenant", body = ProblemDoc),
              (status = 409, description = "The sync is being deleted, or changed concurrently (retry)", body = ProblemDoc)))]
pub async fn update<S: ControlStore>(
    caller: TenantCaller<SyncsWrite>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<SyncId>,
    JsonBody(patch): JsonBody<SyncPatch>,
) -> Result<Json<SyncOut>, ApiError> {
    // Checked before any store access.
    let frequency = patch
        .frequency
        .as_ref()
        .map(|f| check_frequency("/frequency", f))
        .transpose()?;
    if let Some(Some(mapping)) = &patch.mapping {
        check_mapping("/mapping", mapping)?;
    }
    let guard = patch
        .deletion_guard_percent
        .map(|p| check_guard("/deletion_guard_percent", p))
        .transpose()?;
    let retention = match patch.retention_days {
        Some(Some(days)) => Some(Some(check_retention("/retention_days", days)?)),
        other => other,
    };
    let now = clock.now_ms();
    let sync = change_sync(&*store, &caller.tenant, &id, now, |sync| {
        if sync.status == SyncStatus::Deleting {
            return Err(being_deleted(&sync.id));
        }
        if let Some(f) = &frequency {
            sync.frequency = f.clone();
        }
        if let Some(mapping) = &patch.mapping {
            if let Some(m) = mapping
                && let Some(stream) = tributary_engine::grant::catalog_spec(&sync.provider)
                    .and_then(|spec| spec.stream(&sync.stream))
            {
                check_mapping_fields("/mapping", m, stream)?;
            }
            sync.mapping = mapping.clone();
        }
        if let Some(p) = guard {
            sync.deletion_guard_percent = p;
        }
        if let Some(days) = retention {
            sync.retention_days = days;
        }
        match patch.status {
            Some(SettableSyncStatus::Active) => {
                sync.status = SyncStatus::Active;
                sync.status_reason = None;
            }
            Some(SettableSyncStatus::Paused) => {
                sync.status = SyncStatus::Paused;
                sync.status_reason = None;
            }
            None => {}
        }
        // Resumed, or rescheduled: the next run counts from now.
        if sync.status == SyncStatus::Active && (patch.status.is_some() || frequency.is_some()) {
            sync.next_run_at_ms = sync.frequency.next_run_ms(&sync.id, now);
        }
        if sync.status == SyncStatus::Paused {
            sync.next_run_at_ms = None;
        }
        Ok(true)
    })
    .await?;
    tracing::info!(sync_id = %id, status = sync.status.as_str(), "sync updated");
    Ok(Json(SyncOut::from(sync)))
}

/// Deletes a sync with its records: the sync is `deleting` at once (unscheduled, refusing runs
/// and changes), and a job removes its records, then the sync. Calling it again for a sync
/// being deleted sends the job again.
#[utoipa::path(delete, path = "/v1/syncs/{sync_id}", operation_id = "delete_sync", tag = "Syncs",
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$")),
    responses((status = 202, description = "Being deleted: the sync as it is now (`deleting`); it disappears once its records are removed", body = SyncOut),
              (status = 403, description = "Requires `syncs:write`", body = ProblemDoc),
              (status = 404, description = "No such sync for this tenant", body = ProblemDoc),
              (status = 409, description = "Changed concurrently; retry", body = ProblemDoc)))]
pub async fn delete<S: ControlStore, Q: JobsQueue>(
    caller: TenantCaller<SyncsWrite>,
    store: Store<S>,
    jobs: Jobs<Q>,
    clock: Clock,
    Id(id): Id<SyncId>,
) -> Result<Accepted<SyncOut>, ApiError> {
    let now = clock.now_ms();
    let sync = change_sync(&*store, &caller.tenant, &id, now, |sync| {
        if sync.status == SyncStatus::Deleting {
            return Ok(false);
        }
        sync.status = SyncStatus::Deleting;
        sync.status_reason = None;
        sync.next_run_at_ms = None;
        Ok(true)
    })
    .await?;
    let job = JobEnvelope::new(JobKind::PurgeSync {
        tenant_id: caller.tenant.clone(),
        sync_id: id.clone(),
    });
    jobs.send(&job, Duration::ZERO).await.map_err(|e| {
        // The sync stays `deleting`: DELETE again sends the job again.
        tracing::error!(sync_id = %id, error = %e, "the purge job could not be sent");
        if e.is_retryable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        }
    })?;
    tracing::info!(sync_id = %id, job_id = %job.id, "sync deletion started");
    Ok(Accepted(SyncOut::from(sync)))
}

/// Fails a run that will not be executed (its job was never sent), so nothing waits for it.
async fn abandon_run<S: ControlStore>(store: &S, mut run: SyncRun, now: EpochMillis, why: &str) {
    let read_version = run.version;
    run.state = RunState::Failed;
    run.ended_at_ms = Some(now);
    run.error = Some(RunError {
        class: "internal".into(),
        message: format!("The run was not started: {why}."),
    });
    run.version = read_version.saturating_add(1);
    if let Err(e) = store.update_run(&run, read_version).await {
        tracing::error!(run_id = %run.id, error = %e, "an abandoned run could not be marked failed");
    }
}

/// Gives a sync back its run slot after `run_id` was abandoned, restoring the checkpoint its
/// trigger cleared; best effort (a later trigger treats a final active run as none).
async fn release_sync<S: ControlStore>(
    store: &S,
    sync: &SyncConfig,
    run_id: &SyncRunId,
    checkpoint: Option<serde_json::Value>,
    now: EpochMillis,
) {
    let released = change_sync(store, &sync.tenant_id, &sync.id, now, |s| {
        if s.active_run_id.as_ref() != Some(run_id) {
            return Ok(false);
        }
        s.active_run_id = None;
        if s.checkpoint.is_none() {
            s.checkpoint = checkpoint.clone();
        }
        Ok(true)
    })
    .await;
    if let Err(e) = released {
        tracing::error!(sync_id = %sync.id, run_id = %run_id, error = %e, "a sync's abandoned run could not be released");
    }
}

/// Starts a run now: queued here, executed by the connector. One run of a sync is in progress at
/// a time.
#[utoipa::path(post, path = "/v1/syncs/{sync_id}/runs", operation_id = "trigger_sync_run", tag = "Syncs", request_body(content = Option<RunIn>, description = "Optional: an empty body is a plain run"),
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 202, description = "Queued", body = SyncRunOut,
                   headers(("Location" = String, description = "The run (absent when the response is an idempotent replay)"))),
              (status = 403, description = "Requires `syncs:write`", body = ProblemDoc),
              (status = 404, description = "No such sync for this tenant", body = ProblemDoc),
              (status = 409, description = "A run of the sync is in progress (the detail names it), the sync is being deleted or changed concurrently, or the same Idempotency-Key is in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn trigger<S: ControlStore, Q: JobsQueue>(
    caller: TenantCaller<SyncsWrite>,
    store: Store<S>,
    jobs: Jobs<Q>,
    clock: Clock,
    Id(id): Id<SyncId>,
    Idempotent(input): Idempotent<Option<RunIn>>,
) -> Result<AcceptedAt<SyncRunOut>, ApiError> {
    let input = input.unwrap_or_default();
    let tenant = caller.tenant;
    let mut sync = load(&*store, &tenant, &id).await?;
    if sync.status == SyncStatus::Deleting {
        return Err(being_deleted(&id));
    }
    if let Some(active) = &sync.active_run_id
        && let Some(run) = store
            .get_run(&tenant, &id, active)
            .await
            .map_err(store_failure)?
        && !run.state.is_final()
    {
        return Err(ApiError::Conflict {
            detail: format!(
                "Run `{active}` of this sync is still {}: one run of a sync at a time. Wait for it to end, or cancel it (POST /v1/syncs/{id}/runs/{active}/cancel).",
                run.state.as_str()
            ),
        });
    }
    let now = clock.now_ms();
    let run = SyncRun::queued(&sync, RunTrigger::Manual, input.full_resync, now);
    store.create_run(&run).await.map_err(store_failure)?;
    // The run takes the sync's slot on the condition that nothing changed since it was read (a
    // scheduled run may have started meanwhile).
    let read_version = sync.version;
    let checkpoint = sync.checkpoint.clone();
    if input.reset_checkpoint {
        sync.checkpoint = None;
    }
    sync.active_run_id = Some(run.id.clone());
    sync.updated_at_ms = now;
    sync.version = read_version.saturating_add(1);
    let taken = store.update_sync(&sync, read_version).await;
    if !matches!(taken, Ok(true)) {
        abandon_run(
            &*store,
            run,
            now,
            "the sync changed while it was being started",
        )
        .await;
        return Err(match taken {
            Ok(_) => ApiError::NotFound { resource: "sync" },
            Err(PortError::Conflict { .. }) => ApiError::Conflict {
                detail: "The sync changed while the run was being started (a scheduled run may have begun). Check its runs, then retry.".into(),
            },
            Err(e) => store_failure(e),
        });
    }
    let job = JobEnvelope::new(JobKind::SyncRun {
        tenant_id: tenant.clone(),
        sync_id: id.clone(),
        run_id: run.id.clone(),
        continuation: 0,
    });
    if let Err(e) = jobs.send(&job, Duration::ZERO).await {
        tracing::error!(sync_id = %id, run_id = %run.id, error = %e, "the run's job could not be sent");
        let run_id = run.id.clone();
        abandon_run(&*store, run, now, "its job could not be queued").await;
        release_sync(&*store, &sync, &run_id, checkpoint, now).await;
        return Err(if e.is_retryable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        });
    }
    tracing::info!(sync_id = %id, run_id = %run.id, job_id = %job.id, full_resync = run.full_resync, reset_checkpoint = input.reset_checkpoint, "sync run queued");
    Ok(AcceptedAt {
        location: format!("/v1/syncs/{id}/runs/{}", run.id),
        body: SyncRunOut::from(run),
    })
}

/// Lists a sync's runs, newest first.
#[utoipa::path(get, path = "/v1/syncs/{sync_id}/runs", operation_id = "list_sync_runs", tag = "Syncs",
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$"),
           ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of runs, newest first", body = PageOf<SyncRunOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `syncs:read`", body = ProblemDoc),
              (status = 404, description = "No such sync for this tenant", body = ProblemDoc)))]
pub async fn list_runs<S: ControlStore>(
    caller: TenantCaller<SyncsRead>,
    store: Store<S>,
    Id(id): Id<SyncId>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<SyncRunOut>>, ApiError> {
    load(&*store, &caller.tenant, &id).await?;
    let found = store
        .list_runs(&caller.tenant, &id, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, SyncRunOut::from)))
}

/// Reads one run of a sync.
#[utoipa::path(get, path = "/v1/syncs/{sync_id}/runs/{run_id}", operation_id = "get_sync_run", tag = "Syncs",
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$"),
           ("run_id" = String, Path, description = "Run id (`run_…`)", pattern = "^run_[0-9a-f]{32}$")),
    responses((status = 200, description = "The run", body = SyncRunOut),
              (status = 403, description = "Requires `syncs:read`", body = ProblemDoc),
              (status = 404, description = "No such run of this sync for this tenant", body = ProblemDoc)))]
pub async fn get_run<S: ControlStore>(
    caller: TenantCaller<SyncsRead>,
    store: Store<S>,
    Id(sync_id): Id<SyncId>,
    Id(id): Id<SyncRunId>,
) -> Result<Json<SyncRunOut>, ApiError> {
    Ok(Json(SyncRunOut::from(
        load_run(&*store, &caller.tenant, &sync_id, &id).await?,
    )))
}

/// Cancels a run: a queued run is cancelled at once; a running one stops at its next page (the
/// answer shows `cancel_requested`, and its state becomes `cancelled` then).
#[utoipa::path(post, path = "/v1/syncs/{sync_id}/runs/{run_id}/cancel", operation_id = "cancel_sync_run", tag = "Syncs",
    params(("sync_id" = String, Path, description = "Sync id (`sync_…`)", pattern = "^sync_[0-9a-f]{32}$"),
           ("run_id" = String, Path, description = "Run id (`run_…`)", pattern = "^run_[0-9a-f]{32}$")),
    responses((status = 202, description = "Cancelled (a queued run) or cancellation requested (a running one)", body = SyncRunOut),
              (status = 403, description = "Requires `syncs:write`", body = ProblemDoc),
              (status = 404, description = "No such run of this sync for this tenant", body = ProblemDoc),
              (status = 409, description = "The run has already ended (`run_finished`), or changed concurrently (retry)", body = ProblemDoc)))]
pub async fn cancel<S: ControlStore>(
    caller: TenantCaller<SyncsWrite>,
    store: Store<S>,
    clock: Clock,
    Id(sync_id): Id<SyncId>,
    Id(id): Id<SyncRunId>,
) -> Result<Accepted<SyncRunOut>, ApiError> {
    let tenant = caller.tenant;
    let now = clock.now_ms();
    let mut attempts = 0;
    let (run, ended_now) = loop {
        let mut run = load_run(&*store, &tenant, &sync_id, &id).await?;
        if run.state.is_final() {
            return Err(ApiError::RunFinished {
                run_id: id.to_string(),
                state: run.state.as_str(),
            });
        }
        let ended_now = run.state == RunState::Queued;
        if !ended_now && run.cancel_requested {
            break (run, false);
        }
        let read_version = run.version;
        if ended_now {
            run.state = RunState::Cancelled;
            run.ended_at_ms = Some(now);
        }
        run.cancel_requested = true;
        run.version = read_version.saturating_add(1);
        match store.update_run(&run, read_version).await {
            Ok(true) => break (run, ended_now),
            Ok(false) => return Err(ApiError::NotFound { resource: "run" }),
            // The connector may have just started it: read again and cancel what it is now.
            Err(PortError::Conflict { .. }) if attempts < RETRIES => attempts += 1,
            Err(PortError::Conflict { .. }) => {
                return Err(ApiError::Conflict {
                    detail: "The run is changing quickly (the connector is working on it). Retry the request.".into(),
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
    };
    if ended_now {
        // Ended here, not by the connector: the sync's slot is free again and the end recorded.
        let freed = change_sync(&*store, &tenant, &sync_id, now, |s| {
            if s.active_run_id.as_ref() != Some(&run.id) {
                return Ok(false);
            }
            s.active_run_id = None;
            s.last_run = Some(LastRun {
                run_id: run.id.clone(),
                state: RunState::Cancelled,
                ended_at_ms: now,
            });
            Ok(true)
        })
        .await;
        if let Err(e) = freed {
            // A later trigger treats a final active run as none.
            tracing::warn!(sync_id = %sync_id, run_id = %id, error = %e, "the cancelled run's sync was not released");
        }
        let event = SyncEvent {
            id: EventId::generate(),
            tenant_id: tenant.clone(),
            sync_id: sync_id.clone(),
            run_id: Some(run.id.clone()),
            kind: SyncEventType::RunCancelled,
            stats: Some(run.stats),
            error: None,
            at_ms: now,
        };
        if let Err(e) = store.record_sync_event(&event).await {
            tracing::error!(sync_id = %sync_id, run_id = %id, error = %e, "the cancellation event was not recorded");
        }
    }
    tracing::info!(sync_id = %sync_id, run_id = %id, state = run.state.as_str(), "sync run cancellation");
    Ok(Accepted(SyncRunOut::from(run)))
}

/// The sync operations.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![
        list, create, get, update, delete, trigger, list_runs, get_run, cancel
    ]
}
