//! The operations log, usage and insights (`operations:read`):
//!
//! - `GET /v1/operations`: the tenant's operations, newest first, filtered by connection,
//!   integration, type, state and time; `GET /v1/operations/{operation_id}` with its entries.
//! - `GET /v1/usage`: counters per day, integration or provider over a range of days.
//! - `GET /v1/insights`: the slowest streams, the providers where time is lost to rate limits, the
//!   syncs that fail most and what to change, over a window of days.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tributary_core::ids::{ConnectionId, IntegrationId, OperationId};
use tributary_core::insights::{self, Insights};
use tributary_core::operation::{
    Entry, Operation, OperationFilter, OperationKind, OperationState, UsageCounts, day_of,
    day_start_ms,
};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::QueueStats;
use tributary_core::time::{EpochMillis, rfc3339};
use utoipa::ToSchema;

use crate::access::{OperationsRead, TenantCaller};
use crate::dto::PageOf;
use crate::openapi::ProblemDoc;
use crate::pagination::{page_of, page_request};
use crate::problem::ApiError;
use crate::request::{Id, invalid, only_query, query_id};
use crate::response::Json;
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Store};

/// The longest range of days `GET /v1/usage` and `GET /v1/insights` read.
pub const MAX_DAYS: i64 = 92;
/// The default range of `GET /v1/usage` (days, today included).
pub const DEFAULT_USAGE_DAYS: i64 = 30;
/// The default window of `GET /v1/insights` (days, today included).
pub const DEFAULT_INSIGHT_DAYS: i64 = 7;
const DAY_MS: EpochMillis = 86_400_000;

/// An operation's type.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationTypeDto {
    /// One invocation of a sync run.
    SyncRun,
    /// An action run's attempt.
    ActionRun,
    /// A proxied request.
    Proxy,
    /// A provider's webhook routed to connections.
    InboundWebhook,
    /// An outbound webhook delivery attempt.
    WebhookDelivery,
    /// A token refresh.
    TokenRefresh,
    /// A connection made, changed, tested or deleted.
    ConnectionChange,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStateDto {
    /// It did what it was for.
    Succeeded,
    /// It failed for good.
    Failed,
    /// It failed for now; its job comes back.
    Retrying,
    /// A sync run continues in a new invocation.
    Continued,
    /// Rescheduled by a rate limit or an outage.
    Deferred,
    /// Cancelled by the tenant.
    Cancelled,
    /// A sync run whose position stopped moving.
    Stalled,
}

/// An operation's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationCountsOut {
    /// Provider requests sent (every attempt).
    pub requests: u64,
    /// Of them, those that failed.
    pub failed_requests: u64,
    /// Of them, those the provider rate limited.
    pub rate_limited: u64,
    /// Time the work was rescheduled by (ms).
    pub deferred_ms: u64,
    /// Records stored for the first time.
    pub records_added: u64,
    /// Records changed.
    pub records_updated: u64,
    /// Records deleted.
    pub records_deleted: u64,
    /// Records read and found unchanged.
    pub records_unchanged: u64,
    /// Failed requests by error class.
    pub errors_by_class: BTreeMap<String, u64>,
}

/// Why an operation failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationErrorOut {
    /// A stable class (`auth`, `rate_limited`, `provider`, `stalled`, `needs_reauth`, …).
    pub class: String,
    /// What happened.
    pub message: String,
}

/// An operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationOut {
    /// Id (`op_…`).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: OperationTypeDto,
    /// How it ended.
    pub state: OperationStateDto,
    /// The connection it worked through.
    pub connection_id: Option<String>,
    /// The integration.
    pub integration_id: Option<String>,
    /// The provider.
    pub provider: Option<String>,
    /// The sync (sync runs).
    pub sync_id: Option<String>,
    /// The stream (sync runs), the action (action runs), the event type (webhooks), the method
    /// and path (proxied calls) or the change (connections).
    pub name: Option<String>,
    /// What it is about: a run, action run, message, inbound delivery or connection id.
    pub subject: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub ended_at: String,
    /// How long it took (ms).
    pub duration_ms: u64,
    /// Counters.
    pub counts: OperationCountsOut,
    /// Why it failed.
    pub error: Option<OperationErrorOut>,
}

/// A provider request of an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestEntryOut {
    /// When it was sent (RFC 3339).
    pub at: String,
    /// The method.
    pub method: String,
    /// The host.
    pub host: String,
    /// The path, with its query parameters' names and none of their values.
    pub path: String,
    /// The response status, when one came.
    pub status: Option<u16>,
    /// How long it took (ms).
    pub duration_ms: u64,
    /// 1 for a first attempt, then one more per retry.
    pub attempt: u32,
    /// Why it failed (`rate_limited`, `transient`, `auth`, `timeout`, `network`, …).
    pub error_class: Option<String>,
}

/// A notable event of an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteEntryOut {
    /// When (RFC 3339).
    pub at: String,
    /// `rate_limited`, `deferred`, `continuation`, `retry`, `warning` or `info`.
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// One entry of an operation: a provider request or a note.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryOut {
    /// A provider request.
    Request(RequestEntryOut),
    /// A notable event.
    Note(NoteEntryOut),
}

/// An operation with its entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationDetailOut {
    /// The operation.
    #[serde(flatten)]
    pub operation: OperationOut,
    /// A sample of its requests and notes, oldest first (never a body, a header value or a
    /// credential).
    pub entries: Vec<EntryOut>,
    /// Entries not kept (a long run keeps counts and a sample).
    pub entries_dropped: u64,
}

fn kind_dto(k: OperationKind) -> OperationTypeDto {
    match k {
        OperationKind::SyncRun => OperationTypeDto::SyncRun,
        OperationKind::ActionRun => OperationTypeDto::ActionRun,
        OperationKind::Proxy => OperationTypeDto::Proxy,
        OperationKind::InboundWebhook => OperationTypeDto::InboundWebhook,
        OperationKind::WebhookDelivery => OperationTypeDto::WebhookDelivery,
        OperationKind::TokenRefresh => OperationTypeDto::TokenRefresh,
        OperationKind::ConnectionChange => OperationTypeDto::ConnectionChange,
    }
}

fn state_dto(s: OperationState) -> OperationStateDto {
    match s {
        OperationState::Succeeded => OperationStateDto::Succeeded,
        OperationState::Failed => OperationStateDto::Failed,
        OperationState::Retrying => OperationStateDto::Retrying,
        OperationState::Continued => OperationStateDto::Continued,
        OperationState::Deferred => OperationStateDto::Deferred,
        OperationState::Cancelled => OperationStateDto::Cancelled,
        OperationState::Stalled => OperationStateDto::Stalled,
    }
}

fn time_of(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

impl From<&Operation> for OperationOut {
    fn from(op: &Operation) -> Self {
        Self {
            id: op.id.to_string(),
            kind: kind_dto(op.kind),
            state: state_dto(op.state),
            connection_id: op.connection_id.as_ref().map(ToString::to_string),
            integration_id: op.integration_id.as_ref().map(ToString::to_string),
            provider: op.provider.clone(),
            sync_id: op.sync_id.as_ref().map(ToString::to_string),
            name: op.name.clone(),
            subject: op.subject.clone(),
            started_at: time_of(op.started_at_ms),
            ended_at: time_of(op.ended_at_ms),
            duration_ms: op.duration_ms(),
            counts: OperationCountsOut {
                requests: op.counts.requests,
                failed_requests: op.counts.failed_requests,
                rate_limited: op.counts.rate_limited,
                deferred_ms: op.counts.deferred_ms,
                records_added: op.counts.records_added,
                records_updated: op.counts.records_updated,
                records_deleted: op.counts.records_deleted,
                records_unchanged: op.counts.records_unchanged,
                errors_by_class: op.counts.errors_by_class.clone(),
            },
            error: op.error.as_ref().map(|e| OperationErrorOut {
                class: e.class.clone(),
                message: e.message.clone(),
            }),
        }
    }
}

impl From<&Operation> for OperationDetailOut {
    fn from(op: &Operation) -> Self {
        Self {
            operation: OperationOut::from(op),
            entries: op
                .entries
                .iter()
                .map(|e| match e {
                    Entry::Request(r) => EntryOut::Request(RequestEntryOut {
                        at: time_of(r.at_ms),
                        method: r.method.clone(),
                        host: r.host.clone(),
                        path: r.path.clone(),
                        status: r.status,
                        duration_ms: r.duration_ms,
                        attempt: r.attempt,
                        error_class: r.error_class.clone(),
                    }),
                    Entry::Note(n) => EntryOut::Note(NoteEntryOut {
                        at: time_of(n.at_ms),
                        kind: n.kind.as_str().into(),
                        message: n.message.clone(),
                    }),
                })
                .collect(),
            entries_dropped: op.entries_dropped,
        }
    }
}

fn instant(raw: &str, name: &str) -> Result<EpochMillis, ApiError> {
    let t = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        invalid(
            &format!("query.{name}"),
            &format!("`{name}` is an RFC 3339 time such as 2026-12-01T00:00:00Z."),
        )
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| {
        invalid(
            &format!("query.{name}"),
            &format!("`{name}` is out of range."),
        )
    })
}

/// The query of the operations list.
pub struct OperationListQuery {
    filter: OperationFilter,
    page: PageRequest,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for OperationListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let q = only_query(
            parts,
            &[
                "limit",
                "cursor",
                "connection_id",
                "integration_id",
                "type",
                "state",
                "from",
                "to",
            ],
        )?;
        let page = page_request(
            q.get("limit").map(String::as_str),
            q.get("cursor").map(String::as_str),
        )?;
        let connection_id =
            query_id::<ConnectionId>(&q, "connection_id", "a connection id (`conn_…`)")?;
        let integration_id =
            query_id::<IntegrationId>(&q, "integration_id", "an integration id (`int_…`)")?;
        let kind = q
            .get("type")
            .map(|raw| {
                OperationKind::parse(raw).ok_or_else(|| {
                    invalid(
                        "query.type",
                        "`type` is one of sync_run, action_run, proxy, inbound_webhook, webhook_delivery, token_refresh, connection_change.",
                    )
                })
            })
            .transpose()?;
        let state = q
            .get("state")
            .map(|raw| {
                OperationState::parse(raw).ok_or_else(|| {
                    invalid(
                        "query.state",
                        "`state` is one of succeeded, failed, retrying, continued, deferred, cancelled, stalled.",
                    )
                })
            })
            .transpose()?;
        let from_ms = q.get("from").map(|r| instant(r, "from")).transpose()?;
        let to_ms = q.get("to").map(|r| instant(r, "to")).transpose()?;
        if let (Some(f), Some(t)) = (from_ms, to_ms)
            && f >= t
        {
            return Err(invalid("query.from", "`from` must be before `to`."));
        }
        Ok(Self {
            filter: OperationFilter {
                connection_id,
                integration_id,
                kind,
                state,
                from_ms,
                to_ms,
            },
            page,
        })
    }
}

/// Lists the tenant's operations, newest first (kept 14 days by default). A page may hold fewer
/// than `limit` and still have a `next_cursor`: follow it until it is absent.
#[utoipa::path(get, path = "/v1/operations", operation_id = "list_operations", tag = "Operations",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("connection_id" = Option<String>, Query, description = "Only this connection's operations", pattern = "^conn_[0-9a-f]{32}$"),
           ("integration_id" = Option<String>, Query, description = "Only this integration's operations", pattern = "^int_[0-9a-f]{32}$"),
           ("type" = Option<OperationTypeDto>, Query, description = "Only operations of this type"),
           ("state" = Option<OperationStateDto>, Query, description = "Only operations that ended so"),
           ("from" = Option<String>, Query, description = "Only operations started at or after this time (RFC 3339)", format = DateTime),
           ("to" = Option<String>, Query, description = "Only operations started before this time (RFC 3339)", format = DateTime)),
    responses((status = 200, description = "A page of operations", body = PageOf<OperationOut>),
              (status = 400, description = "Bad filter, `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `operations:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<OperationsRead>,
    store: Store<S>,
    query: OperationListQuery,
) -> Result<Json<PageOf<OperationOut>>, ApiError> {
    let found = store
        .list_operations(&caller.tenant, &query.filter, &query.page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, |op| OperationOut::from(&op))))
}

/// Reads one operation with its entries: its provider requests (method, host, path without query
/// values, status, duration, attempt, error class) and notes.
#[utoipa::path(get, path = "/v1/operations/{operation_id}", operation_id = "get_operation", tag = "Operations",
    params(("operation_id" = String, Path, description = "Operation id (`op_…`)", pattern = "^op_[0-9a-f]{32}$")),
    responses((status = 200, description = "The operation", body = OperationDetailOut),
              (status = 403, description = "Requires `operations:read`", body = ProblemDoc),
              (status = 404, description = "No such operation for this tenant (or it expired)", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<OperationsRead>,
    store: Store<S>,
    Id(id): Id<OperationId>,
) -> Result<Json<OperationDetailOut>, ApiError> {
    let op = store
        .get_operation(&caller.tenant, &id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound {
            resource: "operation",
        })?;
    Ok(Json(OperationDetailOut::from(&op)))
}

/// Counters of usage.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UsageCountsOut {
    /// Records stored for the first time.
    pub records_added: u64,
    /// Records changed.
    pub records_updated: u64,
    /// Records deleted.
    pub records_deleted: u64,
    /// Requests sent to providers.
    pub provider_requests: u64,
    /// Calls to this API (counted per execution environment and written every 50 calls or
    /// minute: a close lower bound).
    pub api_calls: u64,
    /// Action runs that ended.
    pub action_runs: u64,
    /// Proxied calls.
    pub proxy_calls: u64,
    /// Outbound webhook delivery attempts.
    pub webhook_deliveries: u64,
    /// Of them, those that failed.
    pub webhook_failures: u64,
    /// Provider webhooks routed.
    pub inbound_webhooks: u64,
    /// Lambda time spent on the tenant's work (ms).
    pub compute_ms: u64,
}

impl From<&UsageCounts> for UsageCountsOut {
    fn from(c: &UsageCounts) -> Self {
        Self {
            records_added: c.records_added,
            records_updated: c.records_updated,
            records_deleted: c.records_deleted,
            provider_requests: c.provider_requests,
            api_calls: c.api_calls,
            action_runs: c.action_runs,
            proxy_calls: c.proxy_calls,
            webhook_deliveries: c.webhook_deliveries,
            webhook_failures: c.webhook_failures,
            inbound_webhooks: c.inbound_webhooks,
            compute_ms: c.compute_ms,
        }
    }
}

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    /// One group per day of the range (every day, zeros included), oldest first.
    Day,
    /// One group per integration (`null`: work of no integration, such as API calls).
    Integration,
    /// One group per provider (`null`: work of no provider).
    Provider,
}

/// One group of usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageGroupOut {
    /// The day (`YYYY-MM-DD`), integration id or provider; `null` for work of none.
    pub key: Option<String>,
    /// The counters.
    pub counts: UsageCountsOut,
}

/// Usage over a range of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    /// The first day (UTC, `YYYY-MM-DD`).
    pub from: String,
    /// The last day, included.
    pub to: String,
    /// What `groups` are.
    pub group_by: UsageGroup,
    /// The whole range.
    pub totals: UsageCountsOut,
    /// The groups.
    pub groups: Vec<UsageGroupOut>,
}

/// A range of whole UTC days from the query's `from` and `to` (`YYYY-MM-DD`), at most
/// [`MAX_DAYS`] long; `default_days` up to today when absent.
fn day_range(
    from: Option<&String>,
    to: Option<&String>,
    today_ms: EpochMillis,
    default_days: i64,
) -> Result<(String, String), ApiError> {
    let parse = |raw: &String, name: &str| {
        day_start_ms(raw).ok_or_else(|| {
            invalid(
                &format!("query.{name}"),
                &format!("`{name}` is a UTC day such as 2026-12-01."),
            )
        })
    };
    let to_ms = match to {
        Some(raw) => parse(raw, "to")?,
        None => today_ms.div_euclid(DAY_MS) * DAY_MS,
    };
    let from_ms = match from {
        Some(raw) => parse(raw, "from")?,
        None => to_ms - (default_days - 1) * DAY_MS,
    };
    if from_ms > to_ms {
        return Err(invalid("query.from", "`from` must not be after `to`."));
    }
    if (to_ms - from_ms) / DAY_MS + 1 > MAX_DAYS {
        return Err(invalid(
            "query.from",
            &format!("A range holds at most {MAX_DAYS} days."),
        ));
    }
    Ok((day_of(from_ms), day_of(to_ms)))
}

fn days_between(from: &str, to: &str) -> Vec<String> {
    let (Some(mut at), Some(end)) = (day_start_ms(from), day_start_ms(to)) else {
        return Vec::new();
    };
    let mut days = Vec::new();
    while at <= end {
        days.push(day_of(at));
        at += DAY_MS;
    }
    days
}

/// Reads the tenant's usage over days `from` to `to` (default: the last 30 days, today included),
/// grouped by day, integration or provider. Counters are written once per operation (a sync run's
/// invocation, an action, a delivery), so a run's records show once it ends or continues.
#[utoipa::path(get, path = "/v1/usage", operation_id = "get_usage", tag = "Operations",
    params(("from" = Option<String>, Query, description = "First UTC day (`YYYY-MM-DD`); default 29 days before `to`", format = Date),
           ("to" = Option<String>, Query, description = "Last UTC day, included (`YYYY-MM-DD`); default today", format = Date),
           ("group_by" = Option<UsageGroup>, Query, description = "`day` (default), `integration` or `provider`")),
    responses((status = 200, description = "Usage", body = UsageOut),
              (status = 400, description = "A bad day, a range of more than 92 days, or an unknown `group_by`", body = ProblemDoc),
              (status = 403, description = "Requires `operations:read`", body = ProblemDoc)))]
pub async fn usage<S: ControlStore>(
    caller: TenantCaller<OperationsRead>,
    store: Store<S>,
    clock: Clock,
    query: UsageQuery,
) -> Result<Json<UsageOut>, ApiError> {
    let (from, to) = day_range(
        query.from.as_ref(),
        query.to.as_ref(),
        clock.now_ms(),
        DEFAULT_USAGE_DAYS,
    )?;
    let rows = store
        .list_usage(&caller.tenant, &from, &to)
        .await
        .map_err(store_failure)?;
    let mut totals = UsageCounts::default();
    let mut groups: BTreeMap<Option<String>, UsageCounts> = BTreeMap::new();
    if query.group_by == UsageGroup::Day {
        for day in days_between(&from, &to) {
            groups.insert(Some(day), UsageCounts::default());
        }
    }
    for row in &rows {
        totals.add(&row.counts);
        let key = match query.group_by {
            UsageGroup::Day => Some(row.key.day.clone()),
            UsageGroup::Integration => row.key.integration_id.as_ref().map(ToString::to_string),
            UsageGroup::Provider => row.key.provider.clone(),
        };
        groups.entry(key).or_default().add(&row.counts);
    }
    Ok(Json(UsageOut {
        from,
        to,
        group_by: query.group_by,
        totals: UsageCountsOut::from(&totals),
        groups: groups
            .into_iter()
            .map(|(key, counts)| UsageGroupOut {
                key,
                counts: UsageCountsOut::from(&counts),
            })
            .collect(),
    }))
}

/// The query of `GET /v1/usage`.
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: UsageGroup,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for UsageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let mut q = only_query(parts, &["from", "to", "group_by"])?;
        let group_by = match q.get("group_by").map(String::as_str) {
            None | Some("day") => UsageGroup::Day,
            Some("integration") => UsageGroup::Integration,
            Some("provider") => UsageGroup::Provider,
            Some(_) => {
                return Err(invalid(
                    "query.group_by",
                    "`group_by` is one of day, integration, provider.",
                ));
            }
        };
        Ok(Self {
            from: q.remove("from"),
            to: q.remove("to"),
            group_by,
        })
    }
}

/// A stream's reading speed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamSpeedOut {
    /// The sync.
    pub sync_id: Option<String>,
    /// Its connection.
    pub connection_id: Option<String>,
    /// Its provider.
    pub provider: Option<String>,
    /// Its stream.
    pub stream: Option<String>,
    /// Records read in the window.
    pub records: u64,
    /// Time spent reading (ms).
    pub busy_ms: u64,
    /// Time per thousand records (ms).
    pub ms_per_1000_records: u64,
}

/// Time lost to a provider's rate limits and outages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderDeferralOut {
    /// The provider.
    pub provider: String,
    /// Time spent reading (ms).
    pub busy_ms: u64,
    /// Time rescheduled (ms).
    pub deferred_ms: u64,
    /// Share of run time spent waiting (percent).
    pub deferred_share_percent: u64,
    /// Requests sent.
    pub requests: u64,
    /// Of them, rate limited.
    pub rate_limited: u64,
}

/// A sync that failed in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailingSyncOut {
    /// The sync.
    pub sync_id: Option<String>,
    /// Its connection.
    pub connection_id: Option<String>,
    /// Its provider.
    pub provider: Option<String>,
    /// Its stream.
    pub stream: Option<String>,
    /// Runs that ended.
    pub runs: u64,
    /// Of them, failed or stalled.
    pub failures: u64,
    /// Failures by error class.
    pub error_classes: BTreeMap<String, u64>,
}

/// What to change.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationOut {
    /// `reconnect`, `lower_frequency`, `provider_budget`, `incremental_or_page_size` or
    /// `investigate`.
    pub kind: String,
    /// A sync id or a provider.
    pub subject: String,
    /// What to do.
    pub message: String,
}

/// Bottlenecks over a window of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsOut {
    /// The first day (UTC).
    pub from: String,
    /// The last day, included.
    pub to: String,
    /// The slowest streams (time per thousand records), slowest first.
    pub slowest_streams: Vec<StreamSpeedOut>,
    /// Providers where run time is lost to rate limits and outages, most first.
    pub deferred_providers: Vec<ProviderDeferralOut>,
    /// The syncs that failed most, with their error classes.
    pub failing_syncs: Vec<FailingSyncOut>,
    /// What to change.
    pub recommendations: Vec<RecommendationOut>,
}

fn id_text<T: ToString>(id: &Option<T>) -> Option<String> {
    id.as_ref().map(ToString::to_string)
}

/// Insights as the API shows them.
pub fn insights_out(from: String, to: String, i: Insights) -> InsightsOut {
    InsightsOut {
        from,
        to,
        slowest_streams: i
            .slowest_streams
            .into_iter()
            .map(|s| StreamSpeedOut {
                sync_id: id_text(&s.sync_id),
                connection_id: id_text(&s.connection_id),
                provider: s.provider,
                stream: s.stream,
                records: s.records,
                busy_ms: s.busy_ms,
                ms_per_1000_records: s.ms_per_1000_records,
            })
            .collect(),
        deferred_providers: i
            .deferred_providers
            .into_iter()
            .map(|p| ProviderDeferralOut {
                provider: p.provider,
                busy_ms: p.busy_ms,
                deferred_ms: p.deferred_ms,
                deferred_share_percent: p.deferred_share_percent,
                requests: p.requests,
                rate_limited: p.rate_limited,
            })
            .collect(),
        failing_syncs: i
            .failing_syncs
            .into_iter()
            .map(|f| FailingSyncOut {
                sync_id: id_text(&f.sync_id),
                connection_id: id_text(&f.connection_id),
                provider: f.provider,
                stream: f.stream,
                runs: f.runs,
                failures: f.failures,
                error_classes: f.error_classes,
            })
            .collect(),
        recommendations: i
            .recommendations
            .into_iter()
            .map(|r| RecommendationOut {
                kind: r.kind.into(),
                subject: r.subject,
                message: r.message,
            })
            .collect(),
    }
}

/// The query of `GET /v1/insights`.
pub struct InsightsQuery {
    from: Option<String>,
    to: Option<String>,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for InsightsQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let mut q = only_query(parts, &["from", "to"])?;
        Ok(Self {
            from: q.remove("from"),
            to: q.remove("to"),
        })
    }
}

/// Reads the tenant's bottlenecks over days `from` to `to` (default: the last 7 days): the slowest
/// streams, the providers where run time is lost to rate limits and outages, the syncs that fail
/// most and their error classes, and what to change. Computed from per-sync day counters the
/// operations log keeps, never from a scan of the log.
#[utoipa::path(get, path = "/v1/insights", operation_id = "get_insights", tag = "Operations",
    params(("from" = Option<String>, Query, description = "First UTC day (`YYYY-MM-DD`); default 6 days before `to`", format = Date),
           ("to" = Option<String>, Query, description = "Last UTC day, included (`YYYY-MM-DD`); default today", format = Date)),
    responses((status = 200, description = "Insights", body = InsightsOut),
              (status = 400, description = "A bad day or a range of more than 92 days", body = ProblemDoc),
              (status = 403, description = "Requires `operations:read`", body = ProblemDoc)))]
pub async fn get_insights<S: ControlStore>(
    caller: TenantCaller<OperationsRead>,
    store: Store<S>,
    clock: Clock,
    query: InsightsQuery,
) -> Result<Json<InsightsOut>, ApiError> {
    let (from, to) = day_range(
        query.from.as_ref(),
        query.to.as_ref(),
        clock.now_ms(),
        DEFAULT_INSIGHT_DAYS,
    )?;
    let days = store
        .list_sync_stats(&caller.tenant, &from, &to)
        .await
        .map_err(store_failure)?;
    Ok(Json(insights_out(from, to, insights::compute(&days))))
}

/// The operations log, usage and insights.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list, get, usage, get_insights]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_range_defaults_to_the_last_days_and_refuses_long_or_reversed_ones() {
        let now = day_start_ms("2026-12-07").unwrap() + 5_000;
        assert_eq!(
            day_range(None, None, now, 30).unwrap(),
            ("2026-11-08".to_owned(), "2026-12-07".to_owned())
        );
        let d = |s: &str| Some(s.to_owned());
        assert_eq!(
            day_range(d("2026-12-01").as_ref(), None, now, 30).unwrap(),
            ("2026-12-01".to_owned(), "2026-12-07".to_owned())
        );
        assert!(day_range(d("2026-12-08").as_ref(), None, now, 30).is_err());
        assert!(day_range(d("2026-01-01").as_ref(), d("2026-12-01").as_ref(), now, 30).is_err());
        assert!(day_range(d("2026-09-01").as_ref(), d("2026-12-01").as_ref(), now, 30).is_ok());
        assert!(day_range(d("12/01/2026").as_ref(), None, now, 30).is_err());
        assert_eq!(days_between("2026-11-30", "2026-12-02").len(), 3);
    }
}
