//! The operations log: one entry per unit of work (a sync run's invocation, an action run, a
//! proxied call, an inbound webhook, an outbound delivery attempt, a token refresh, a connection
//! change) with what it was about, how it ended, its counters, and a bounded sample of what happened
//! inside it: provider requests (method, host, path without query values, status, duration,
//! attempt, error class) and notable events (rate limited, deferred, continued, warnings).
//!
//! An operation never holds a body, a header value or a credential: a request entry is built from
//! the method and URL alone, and the URL keeps only the names of its query parameters.
//!
//! **Recording.** The code doing the work runs inside [`recording`], which makes a [`Recorder`] the
//! task's current one; anything below it ([`note`], [`describe`], the HTTP client's request hook)
//! adds to it without being handed it, and outside a recording these calls do nothing. The recorder
//! keeps counts of everything and entries up to [`MAX_ENTRIES`], so a run of a million requests
//! costs a few kilobytes. The caller writes the finished [`Operation`] once, and a failure to write
//! it is logged, never the work's failure.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::ids::{ConnectionId, IntegrationId, OperationId, SyncId, TenantId};
use crate::time::EpochMillis;

/// The most entries an operation keeps; beyond it only counts grow.
pub const MAX_ENTRIES: usize = 60;
/// Of [`MAX_ENTRIES`], how many successful requests are kept (the first ones); failed requests and
/// notes take the rest, so what went wrong is kept in a long run.
pub const MAX_SUCCESS_SAMPLE: usize = 30;
/// The longest path an entry keeps.
pub const MAX_PATH_CHARS: usize = 256;
/// The longest message a note or an error keeps.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// How long operations are kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// The longest retention `OPERATIONS_RETENTION_DAYS` may set.
pub const MAX_RETENTION_DAYS: u32 = 365;

/// `OPERATIONS_RETENTION_DAYS`: how long operations are kept, 1 to [`MAX_RETENTION_DAYS`] days
/// (default [`DEFAULT_RETENTION_DAYS`]).
pub fn retention_days(env: &crate::config::Env) -> Result<u32, crate::config::ConfigError> {
    let days: u32 = env.parsed_or("OPERATIONS_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?;
    if !(1..=MAX_RETENTION_DAYS).contains(&days) {
        return Err(crate::config::ConfigError::Invalid {
            name: "OPERATIONS_RETENTION_DAYS",
            reason: format!("must be between 1 and {MAX_RETENTION_DAYS} days"),
        });
    }
    Ok(days)
}

/// The most provider request durations an operation keeps for latency metrics.
pub const MAX_LATENCY_SAMPLE: usize = 100;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$doc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every value, in a stable order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value of a wire name.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

wire_enum! {
    /// What kind of work an operation is.
    OperationKind {
        /// One invocation of a sync run (a run that continues has one per continuation).
        SyncRun => "sync_run",
        /// An action run's attempt (immediate or queued).
        ActionRun => "action_run",
        /// A proxied request.
        Proxy => "proxy",
        /// A provider's webhook, received or routed.
        InboundWebhook => "inbound_webhook",
        /// One delivery attempt of an outbound webhook message.
        WebhookDelivery => "webhook_delivery",
        /// A token refresh.
        TokenRefresh => "token_refresh",
        /// A connection made, changed, tested or deleted.
        ConnectionChange => "connection_change",
    }
}

wire_enum! {
    /// How an operation ended.
    OperationState {
        /// It did what it was for.
        Succeeded => "succeeded",
        /// It failed for good.
        Failed => "failed",
        /// It failed for now; the job comes back.
        Retrying => "retrying",
        /// A sync run stopped at its time budget and continues in a new invocation.
        Continued => "continued",
        /// Rate limited or the provider was down: rescheduled for later.
        Deferred => "deferred",
        /// Cancelled by the tenant.
        Cancelled => "cancelled",
        /// A sync run whose position stopped moving.
        Stalled => "stalled",
    }
}

wire_enum! {
    /// What a note says happened.
    NoteKind {
        /// The provider rate limited a request.
        RateLimited => "rate_limited",
        /// The work was rescheduled for later.
        Deferred => "deferred",
        /// A sync run continues in a new invocation.
        Continuation => "continuation",
        /// A request is retried.
        Retry => "retry",
        /// Something that did not fail the work (an invalid record, a refused deletion).
        Warning => "warning",
        /// A token refresh: `refreshed`, `needs_reauth: …` or `failed: …`.
        TokenRefresh => "token_refresh",
        /// Anything else worth knowing.
        Info => "info",
    }
}

/// One provider request (each attempt is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEntry {
    /// When it was sent.
    pub at_ms: EpochMillis,
    /// The method.
    pub method: String,
    /// The host.
    pub host: String,
    /// The path, with the names of its query parameters and none of their values
    /// (`/v1/customers?limit=&starting_after=`).
    pub path: String,
    /// The response status, when one came.
    pub status: Option<u16>,
    /// From sending to the end of the body.
    pub duration_ms: u64,
    /// 1 for the first attempt of a request, then one more per retry.
    pub attempt: u32,
    /// Why it failed (`rate_limited`, `transient`, `auth`, `client`, `timeout`, `network`,
    /// `egress`, …); `None` when it succeeded.
    pub error_class: Option<String>,
}

/// Something notable that is not a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteEntry {
    /// When.
    pub at_ms: EpochMillis,
    /// What kind.
    pub kind: NoteKind,
    /// What happened, without secrets.
    pub message: String,
}

/// One entry of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// A provider request.
    Request(RequestEntry),
    /// A notable event.
    Note(NoteEntry),
}

/// The counters of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationCounts {
    /// Provider requests sent (every attempt).
    pub requests: u64,
    /// Of them, those that failed.
    pub failed_requests: u64,
    /// Of them, those the provider rate limited.
    pub rate_limited: u64,
    /// Time the work was rescheduled by (rate limits, outages).
    pub deferred_ms: u64,
    /// Records stored for the first time.
    pub records_added: u64,
    /// Records whose content changed.
    pub records_updated: u64,
    /// Records deleted.
    pub records_deleted: u64,
    /// Records read and found unchanged.
    pub records_unchanged: u64,
    /// Failed requests by error class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_class: BTreeMap<String, u64>,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationError {
    /// A stable class (the run's or action's error class, a provider error class).
    pub class: String,
    /// What happened, without secrets.
    pub message: String,
}

/// One logged unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Id (time-ordered).
    pub id: OperationId,
    /// Owner.
    pub tenant_id: TenantId,
    /// What kind of work.
    pub kind: OperationKind,
    /// How it ended.
    pub state: OperationState,
    /// The connection it worked through.
    pub connection_id: Option<ConnectionId>,
    /// The integration.
    pub integration_id: Option<IntegrationId>,
    /// The provider.
    pub provider: Option<String>,
    /// The sync (sync runs).
    pub sync_id: Option<SyncId>,
    /// The stream (sync runs) or action name (action runs).
    pub name: Option<String>,
    /// The object it is about: a run, action run, message, inbound delivery or connection id.
    pub subject: Option<String>,
    /// When it started.
    pub started_at_ms: EpochMillis,
    /// When it ended.
    pub ended_at_ms: EpochMillis,
    /// Counters.
    pub counts: OperationCounts,
    /// Why it failed.
    pub error: Option<OperationError>,
    /// A sample of its requests and notes, oldest first.
    pub entries: Vec<Entry>,
    /// Entries not kept (counted in `counts` all the same).
    pub entries_dropped: u64,
    /// Durations of a sample of its provider requests (for latency metrics; not shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies_ms: Vec<u64>,
}

impl Operation {
    /// How long it took.
    pub fn duration_ms(&self) -> u64 {
        u64::try_from(self.ended_at_ms.saturating_sub(self.started_at_ms)).unwrap_or(0)
    }

    /// Records written (added, updated, deleted).
    pub fn records_written(&self) -> u64 {
        self.counts.records_added + self.counts.records_updated + self.counts.records_deleted
    }

    /// The usage it adds to its tenant's counters.
    pub fn usage(&self) -> UsageCounts {
        let delivery = self.kind == OperationKind::WebhookDelivery;
        UsageCounts {
            records_added: self.counts.records_added,
            records_updated: self.counts.records_updated,
            records_deleted: self.counts.records_deleted,
            provider_requests: self.counts.requests,
            api_calls: 0,
            action_runs: u64::from(
                self.kind == OperationKind::ActionRun && self.state != OperationState::Retrying,
            ),
            proxy_calls: u64::from(self.kind == OperationKind::Proxy),
            webhook_deliveries: u64::from(delivery),
            webhook_failures: u64::from(delivery && self.state != OperationState::Succeeded),
            inbound_webhooks: u64::from(self.kind == OperationKind::InboundWebhook),
            compute_ms: self.duration_ms(),
        }
    }

    /// Its usage key (its day, integration and provider).
    pub fn usage_key(&self) -> UsageKey {
        UsageKey {
            day: day_of(self.started_at_ms),
            integration_id: self.integration_id.clone(),
            provider: self.provider.clone(),
        }
    }

    /// The request durations of its entries and latency sample, for metrics.
    pub fn request_latencies(&self) -> &[u64] {
        &self.latencies_ms
    }
}

/// The request hook's view of one attempt (what the HTTP client knows).
#[derive(Debug, Clone)]
pub struct ObservedRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The host.
    pub host: &'a str,
    /// The path.
    pub path: &'a str,
    /// The query string, if any (only its names are kept).
    pub query: Option<&'a str>,
    /// The status, when a response came.
    pub status: Option<u16>,
    /// How long it took.
    pub duration_ms: u64,
    /// The attempt number.
    pub attempt: u32,
    /// Why it failed.
    pub error_class: Option<&'a str>,
}

/// The path an entry keeps: `path`, then `?` and each query parameter's name followed by `=`.
pub fn loggable_path(path: &str, query: Option<&str>) -> String {
    let mut out: String = path.chars().take(MAX_PATH_CHARS).collect();
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let names: Vec<&str> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
            .collect();
        if !names.is_empty() {
            out.push('?');
            out.push_str(
                &names
                    .iter()
                    .map(|k| format!("{}=", truncate(k, 64)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
    }
    truncate(&out, MAX_PATH_CHARS + 200)
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// What the recorder keeps while the work runs.
#[derive(Debug)]
pub struct Draft {
    /// The operation so far (its state is set when it ends).
    pub op: Operation,
    kept_successes: usize,
    /// Whether the work decided it is not worth logging (a duplicate delivery, a job that had
    /// nothing to do).
    pub skip: bool,
    /// A state the work set; the caller's default otherwise.
    pub state: Option<OperationState>,
}

/// Collects one operation while its work runs. Shared by the work and the HTTP client's hook.
#[derive(Debug)]
pub struct Recorder {
    draft: Mutex<Draft>,
}

impl Recorder {
    /// A recorder for an operation of `tenant` of `kind` starting at `now`, with id `id`.
    pub fn new(id: OperationId, tenant: TenantId, kind: OperationKind, now: EpochMillis) -> Self {
        Self {
            draft: Mutex::new(Draft {
                op: Operation {
                    id,
                    tenant_id: tenant,
                    kind,
                    state: OperationState::Succeeded,
                    connection_id: None,
                    integration_id: None,
                    provider: None,
                    sync_id: None,
                    name: None,
                    subject: None,
                    started_at_ms: now,
                    ended_at_ms: now,
                    counts: OperationCounts::default(),
                    error: None,
                    entries: Vec::new(),
                    entries_dropped: 0,
                    latencies_ms: Vec::new(),
                },
                kept_successes: 0,
                skip: false,
                state: None,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Draft) -> R) -> R {
        let mut d = self.draft.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut d)
    }

    /// Changes the draft.
    pub fn describe(&self, f: impl FnOnce(&mut Draft)) {
        self.with(f);
    }

    /// Counts a request and keeps it while the sample has room.
    pub fn request(&self, r: &ObservedRequest<'_>, at_ms: EpochMillis) {
        self.with(|d| {
            let c = &mut d.op.counts;
            c.requests += 1;
            if let Some(class) = r.error_class {
                c.failed_requests += 1;
                if class == "rate_limited" {
                    c.rate_limited += 1;
                }
                *c.errors_by_class.entry(truncate(class, 32)).or_default() += 1;
            }
            if d.op.latencies_ms.len() < MAX_LATENCY_SAMPLE {
                d.op.latencies_ms.push(r.duration_ms);
            }
            let success = r.error_class.is_none();
            let room = d.op.entries.len() < MAX_ENTRIES
                && (!success || d.kept_successes < MAX_SUCCESS_SAMPLE);
            if !room {
                d.op.entries_dropped += 1;
                return;
            }
            if success {
                d.kept_successes += 1;
            }
            d.op.entries.push(Entry::Request(RequestEntry {
                at_ms,
                method: truncate(r.method, 16),
                host: truncate(r.host, 253),
                path: loggable_path(r.path, r.query),
                status: r.status,
                duration_ms: r.duration_ms,
                attempt: r.attempt,
                error_class: r.error_class.map(|c| truncate(c, 32)),
            }));
        });
    }

    /// Keeps a note while there is room.
    pub fn note(&self, kind: NoteKind, message: &str, at_ms: EpochMillis) {
        self.with(|d| {
            if d.op.entries.len() >= MAX_ENTRIES {
                d.op.entries_dropped += 1;
                return;
            }
            d.op.entries.push(Entry::Note(NoteEntry {
                at_ms,
                kind,
                message: truncate(message, MAX_MESSAGE_CHARS),
            }));
        });
    }

    /// The finished operation: the state the work set (or `default`), ended at `now`; `None` when
    /// the work asked not to log it.
    pub fn finish(&self, default: OperationState, now: EpochMillis) -> Option<Operation> {
        self.with(|d| {
            if d.skip {
                return None;
            }
            let mut op = d.op.clone();
            op.state = d.state.unwrap_or(default);
            op.ended_at_ms = now.max(op.started_at_ms);
            if let Some(e) = &mut op.error {
                e.message = truncate(&e.message, MAX_MESSAGE_CHARS);
            }
            Some(op)
        })
    }
}

tokio::task_local! {
    static CURRENT: Arc<Recorder>;
}

/// Runs `work` with `recorder` as the current one.
pub async fn recording<F: Future>(recorder: Arc<Recorder>, work: F) -> F::Output {
    CURRENT.scope(recorder, work).await
}

/// Changes the current operation's draft (nothing outside a recording).
pub fn describe(f: impl FnOnce(&mut Draft)) {
    let _ = CURRENT.try_with(|r| r.describe(f));
}

/// Adds a note to the current operation (nothing outside a recording).
pub fn note(kind: NoteKind, message: &str, at_ms: EpochMillis) {
    let _ = CURRENT.try_with(|r| r.note(kind, message, at_ms));
}

/// Adds a request to the current operation (nothing outside a recording): the HTTP client's hook.
pub fn observe_request(r: &ObservedRequest<'_>, at_ms: EpochMillis) {
    let _ = CURRENT.try_with(|rec| rec.request(r, at_ms));
}

/// Which of a tenant's operations a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Through this connection.
    pub connection_id: Option<ConnectionId>,
    /// Of this integration.
    pub integration_id: Option<IntegrationId>,
    /// Of this kind.
    pub kind: Option<OperationKind>,
    /// That ended so.
    pub state: Option<OperationState>,
    /// Started at or after.
    pub from_ms: Option<EpochMillis>,
    /// Started before.
    pub to_ms: Option<EpochMillis>,
}

impl OperationFilter {
    /// Whether `op` passes.
    pub fn matches(&self, op: &Operation) -> bool {
        self.connection_id
            .as_ref()
            .is_none_or(|c| op.connection_id.as_ref() == Some(c))
            && self
                .integration_id
                .as_ref()
                .is_none_or(|i| op.integration_id.as_ref() == Some(i))
            && self.kind.is_none_or(|k| op.kind == k)
            && self.state.is_none_or(|s| op.state == s)
            && self.from_ms.is_none_or(|f| op.started_at_ms >= f)
            && self.to_ms.is_none_or(|t| op.started_at_ms < t)
    }
}

/// The UTC day (`YYYY-MM-DD`) of `ms`.
pub fn day_of(ms: EpochMillis) -> String {
    let days = ms.div_euclid(86_400_000);
    let date = time::Date::from_julian_day(i32::try_from(days + 2_440_588).unwrap_or(2_440_588))
        .unwrap_or(time::Date::MIN);
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The start (epoch ms) of a `YYYY-MM-DD` day, `None` when it is not one.
pub fn day_start_ms(day: &str) -> Option<EpochMillis> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format).ok()?;
    Some((i64::from(date.to_julian_day()) - 2_440_588) * 86_400_000)
}

/// What a tenant used, on one day, through one integration and provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounts {
    /// Records stored for the first time.
    pub records_added: u64,
    /// Records changed.
    pub records_updated: u64,
    /// Records deleted.
    pub records_deleted: u64,
    /// Requests sent to providers.
    pub provider_requests: u64,
    /// Calls to the API.
    pub api_calls: u64,
    /// Action runs that ended.
    pub action_runs: u64,
    /// Proxied calls.
    pub proxy_calls: u64,
    /// Outbound webhook delivery attempts.
    pub webhook_deliveries: u64,
    /// Of them, those that failed.
    pub webhook_failures: u64,
    /// Provider webhooks received.
    pub inbound_webhooks: u64,
    /// Lambda time spent on the tenant's work (ms).
    pub compute_ms: u64,
}

impl UsageCounts {
    /// Adds `other`.
    pub fn add(&mut self, o: &UsageCounts) {
        self.records_added += o.records_added;
        self.records_updated += o.records_updated;
        self.records_deleted += o.records_deleted;
        self.provider_requests += o.provider_requests;
        self.api_calls += o.api_calls;
        self.action_runs += o.action_runs;
        self.proxy_calls += o.proxy_calls;
        self.webhook_deliveries += o.webhook_deliveries;
        self.webhook_failures += o.webhook_failures;
        self.inbound_webhooks += o.inbound_webhooks;
        self.compute_ms += o.compute_ms;
    }

    /// Each counter with its wire name, in a stable order (the adapter's attributes).
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("records_added", self.records_added),
            ("records_updated", self.records_updated),
            ("records_deleted", self.records_deleted),
            ("provider_requests", self.provider_requests),
            ("api_calls", self.api_calls),
            ("action_runs", self.action_runs),
            ("proxy_calls", self.proxy_calls),
            ("webhook_deliveries", self.webhook_deliveries),
            ("webhook_failures", self.webhook_failures),
            ("inbound_webhooks", self.inbound_webhooks),
            ("compute_ms", self.compute_ms),
        ]
    }

    /// Sets the counter named `name` (from [`UsageCounts::fields`]); unknown names are ignored.
    pub fn set(&mut self, name: &str, v: u64) {
        match name {
            "records_added" => self.records_added = v,
            "records_updated" => self.records_updated = v,
            "records_deleted" => self.records_deleted = v,
            "provider_requests" => self.provider_requests = v,
            "api_calls" => self.api_calls = v,
            "action_runs" => self.action_runs = v,
            "proxy_calls" => self.proxy_calls = v,
            "webhook_deliveries" => self.webhook_deliveries = v,
            "webhook_failures" => self.webhook_failures = v,
            "inbound_webhooks" => self.inbound_webhooks = v,
            "compute_ms" => self.compute_ms = v,
            _ => {}
        }
    }

    /// Whether every counter is zero.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| *v == 0)
    }
}

/// Which counters a usage row holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    /// The UTC day.
    pub day: String,
    /// The integration (`None`: work of no integration, such as API calls).
    pub integration_id: Option<IntegrationId>,
    /// The provider.
    pub provider: Option<String>,
}

/// One row of usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// What it counts.
    pub key: UsageKey,
    /// The counters.
    pub counts: UsageCounts,
}

/// A sync's runs on one day: what insights are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDayStats {
    /// The UTC day.
    pub day: String,
    /// The sync.
    pub sync_id: Option<SyncId>,
    /// Its connection.
    pub connection_id: Option<ConnectionId>,
    /// Its provider.
    pub provider: Option<String>,
    /// Its stream.
    pub stream: Option<String>,
    /// Invocations (continuations count).
    pub invocations: u64,
    /// Runs that ended (succeeded, failed, stalled, cancelled).
    pub runs_ended: u64,
    /// Of them, those that failed or stalled.
    pub runs_failed: u64,
    /// Time spent reading (ms).
    pub busy_ms: u64,
    /// Time rescheduled by rate limits and outages (ms).
    pub deferred_ms: u64,
    /// Records read (written and unchanged).
    pub records: u64,
    /// Provider requests.
    pub requests: u64,
    /// Of them, rate limited.
    pub rate_limited: u64,
    /// Failures by error class.
    pub errors_by_class: BTreeMap<String, u64>,
}

impl SyncDayStats {
    /// The stats one sync-run operation adds (`None` for other operations).
    pub fn of(op: &Operation) -> Option<SyncDayStats> {
        if op.kind != OperationKind::SyncRun {
            return None;
        }
        let ended = matches!(
            op.state,
            OperationState::Succeeded
                | OperationState::Failed
                | OperationState::Stalled
                | OperationState::Cancelled
        );
        let failed = matches!(op.state, OperationState::Failed | OperationState::Stalled);
        let mut errors_by_class = BTreeMap::new();
        if failed {
            let class = op.error.as_ref().map_or("unknown", |e| e.class.as_str());
            errors_by_class.insert(truncate(class, 32), 1);
        }
        Some(SyncDayStats {
            day: day_of(op.started_at_ms),
            sync_id: op.sync_id.clone(),
            connection_id: op.connection_id.clone(),
            provider: op.provider.clone(),
            stream: op.name.clone(),
            invocations: 1,
            runs_ended: u64::from(ended),
            runs_failed: u64::from(failed),
            busy_ms: op.duration_ms(),
            deferred_ms: op.counts.deferred_ms,
            records: op.records_written() + op.counts.records_unchanged,
            requests: op.counts.requests,
            rate_limited: op.counts.rate_limited,
            errors_by_class,
        })
    }

    /// Adds `other` (of the same sync) to these.
    pub fn add(&mut self, o: &SyncDayStats) {
        self.invocations += o.invocations;
        self.runs_ended += o.runs_ended;
        self.runs_failed += o.runs_failed;
        self.busy_ms += o.busy_ms;
        self.deferred_ms += o.deferred_ms;
        self.records += o.records;
        self.requests += o.requests;
        self.rate_limited += o.rate_limited;
        for (k, v) in &o.errors_by_class {
            *self.errors_by_class.entry(k.clone()).or_default() += v;
        }
        if self.sync_id.is_none() {
            self.sync_id = o.sync_id.clone();
        }
        if self.connection_id.is_none() {
            self.connection_id = o.connection_id.clone();
        }
        if self.provider.is_none() {
            self.provider = o.provider.clone();
        }
        if self.stream.is_none() {
            self.stream = o.stream.clone();
        }
    }
}

#[cfg(test)]
mod tests;
