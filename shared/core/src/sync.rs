//! Syncs: a tenant's scheduled import of one stream of one connection into a model of the records
//! store, and their runs.
//!
//! A sync names a connection, a stream of its provider, the model its records are stored as, how
//! often it runs ([`Frequency`]), whether it reads everything or only changes ([`SyncMode`]) and how
//! provider records become the tenant's records ([`Mapping`]). One connection's model is written
//! by exactly one sync (the store refuses a second), which makes each change feed single-writer.
//!
//! A run ([`SyncRun`]) is one execution: it reads page by page, stores what changed, and may stop
//! and continue in another invocation (`continued`) from its saved position.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConnectionId, IntegrationId, SyncId, SyncRunId, TenantId};
use crate::time::EpochMillis;

/// The shortest interval between two scheduled runs.
pub const MIN_INTERVAL_SECONDS: u32 = 60;
/// The longest interval between two scheduled runs (30 days).
pub const MAX_INTERVAL_SECONDS: u32 = 30 * 24 * 3600;
/// The largest spread of a sync's start after its scheduled time (see [`Frequency::jitter_ms`]).
pub const MAX_JITTER_MS: EpochMillis = 300_000;
/// How long a run that is not over may go without being saved before it counts as stopped (its
/// job lost, dead-lettered, or every invocation crashing): far more than one invocation (the
/// connector's 5-minute timeout) or the longest deferral (SQS's 15-minute delay).
pub const RUN_IDLE_AFTER: Duration = Duration::from_secs(30 * 60);

/// How often a sync runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frequency {
    /// Every so many seconds (at least [`MIN_INTERVAL_SECONDS`]).
    Interval {
        /// The interval.
        every_seconds: u32,
    },
    /// At the times a five-field cron expression names (UTC): minute, hour, day of month, month,
    /// day of week.
    Cron {
        /// The expression, e.g. `0 */6 * * *`.
        cron: String,
    },
}

/// Why a frequency is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrequencyError {
    /// An interval out of range.
    #[error(
        "every_seconds must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS}, got {0}"
    )]
    Interval(u32),
    /// A cron expression that does not parse, or that fires more than once a minute.
    #[error("`{expression}` is not a five-field cron expression: {reason}")]
    Cron {
        /// The expression.
        expression: String,
        /// Why.
        reason: String,
    },
    /// A cron expression that never fires (e.g. 31 February).
    #[error("`{0}` never fires")]
    Never(String),
}

fn parse_cron(expression: &str) -> Result<croner::Cron, FrequencyError> {
    let refuse = |reason: String| FrequencyError::Cron {
        expression: expression.chars().take(100).collect(),
        reason,
    };
    // Five fields only: a seconds field would allow runs more often than once a minute.
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(refuse(format!("expected 5 fields, found {fields}")));
    }
    croner::Cron::from_str(expression).map_err(|e| refuse(e.to_string()))
}

fn to_datetime(ms: EpochMillis) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
}

impl Frequency {
    /// Checks the frequency.
    pub fn validate(&self) -> Result<(), FrequencyError> {
        match self {
            Frequency::Interval { every_seconds } => {
                if (MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(every_seconds) {
                    Ok(())
                } else {
                    Err(FrequencyError::Interval(*every_seconds))
                }
            }
            Frequency::Cron { cron } => {
                let parsed = parse_cron(cron)?;
                // 2026-01-01T00:00:00Z: any valid expression fires within the next four years.
                let from = to_datetime(1_767_225_600_000)
                    .ok_or_else(|| FrequencyError::Never(cron.clone()))?;
                parsed
                    .find_next_occurrence(&from, false)
                    .map(|_| ())
                    .map_err(|_| FrequencyError::Never(cron.clone()))
            }
        }
    }

    /// The first scheduled time strictly after `after_ms`, before jitter; `None` for an invalid
    /// frequency.
    pub fn next_after(&self, after_ms: EpochMillis) -> Option<EpochMillis> {
        match self {
            Frequency::Interval { every_seconds } => {
                Some(after_ms.saturating_add(i64::from(*every_seconds) * 1000))
            }
            Frequency::Cron { cron } => {
                let parsed = parse_cron(cron).ok()?;
                let from = to_datetime(after_ms)?;
                parsed
                    .find_next_occurrence(&from, false)
                    .ok()
                    .map(|t| t.timestamp_millis())
            }
        }
    }

    /// The typical time between two runs.
    fn period_ms(&self, around_ms: EpochMillis) -> EpochMillis {
        match self {
            Frequency::Interval { every_seconds } => i64::from(*every_seconds) * 1000,
            Frequency::Cron { .. } => self
                .next_after(around_ms)
                .and_then(|a| self.next_after(a).map(|b| b - a))
                .unwrap_or(60_000),
        }
    }

    /// How long after its scheduled time this sync starts: a stable offset from the sync's id, up
    /// to a tenth of the period and at most [`MAX_JITTER_MS`], so that a thousand syncs on one
    /// schedule spread over minutes instead of starting in the same second, while each keeps a
    /// steady rhythm.
    pub fn jitter_ms(&self, id: &SyncId, around_ms: EpochMillis) -> EpochMillis {
        let spread = (self.period_ms(around_ms) / 10).clamp(1, MAX_JITTER_MS);
        let h = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        i64::try_from(h % u64::try_from(spread).unwrap_or(1)).unwrap_or(0)
    }

    /// When the sync runs next after `after_ms`: the next scheduled time plus the sync's jitter.
    pub fn next_run_ms(&self, id: &SyncId, after_ms: EpochMillis) -> Option<EpochMillis> {
        self.next_after(after_ms)
            .map(|t| t.saturating_add(self.jitter_ms(id, t)))
    }
}

/// Whether a run reads the whole stream or only what changed since the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every run reads every record; records missing from a completed pass are deleted (within
    /// the deletion guard).
    FullRefresh,
    /// A run reads what changed since the checkpoint of the last completed pass (the stream
    /// must be incremental); deletions are not detected.
    Incremental,
}

/// Whether a sync is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Runs on its schedule.
    Active,
    /// Not scheduled (paused by the tenant, or by a run that needs the end user).
    Paused,
    /// Being deleted with its records.
    Deleting,
}

impl SyncStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Active => "active",
            SyncStatus::Paused => "paused",
            SyncStatus::Deleting => "deleting",
        }
    }
}

/// The type a mapped field is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string; numbers and booleans are written as text.
    String,
    /// A number; numeric strings are parsed.
    Number,
    /// An integer; numeric strings and integral numbers are accepted.
    Integer,
    /// A boolean; `"true"`/`"false"` (any case), `1`/`0` accepted.
    Boolean,
}

/// One field of the tenant's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Where the field goes in the tenant's record: a dotted path (`address.city`).
    pub to: String,
    /// Where it comes from in the provider's record: a dotted path with array indexes
    /// (`billing_address.0.city`); defaults to `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The value when the provider's record has none (absent or null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The type the value is converted to.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<FieldType>,
}

/// How provider records become the tenant's records: the listed fields only, in the tenant's
/// names. Without a mapping, records are stored as the provider sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The fields, at least one.
    pub fields: Vec<FieldMap>,
}

/// The most fields a mapping may have.
pub const MAX_MAPPED_FIELDS: usize = 200;
const MAX_PATH_DEPTH: usize = 16;

/// Why a mapping is refused, or a record cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The mapping itself is wrong (a path, a duplicate, too many fields).
    #[error("fields[{index}]: {message}")]
    Invalid {
        /// Which field.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The mapping has no fields or too many.
    #[error("a mapping has between 1 and {MAX_MAPPED_FIELDS} fields")]
    Size,
    /// A record's value cannot be converted.
    #[error("field `{field}`: cannot convert {found} to {to:?}")]
    Coerce {
        /// The tenant's field.
        field: String,
        /// The JSON type found.
        found: &'static str,
        /// The wanted type.
        to: FieldType,
    },
    /// The record is not a JSON object.
    #[error("the record is not a JSON object")]
    NotAnObject,
}

fn path_steps(path: &str) -> Option<Vec<&str>> {
    let path = path.strip_prefix("$.").unwrap_or(path);
    let steps: Vec<&str> = path.split('.').collect();
    (!path.is_empty()
        && steps.len() <= MAX_PATH_DEPTH
        && steps.iter().all(|s| !s.is_empty() && s.len() <= 200))
    .then_some(steps)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn coerce(field: &str, v: Value, to: FieldType) -> Result<Value, MappingError> {
    let refuse = |v: &Value| MappingError::Coerce {
        field: field.to_owned(),
        found: json_type(v),
        to,
    };
    Ok(match (to, v) {
        (_, Value::Null) => Value::Null,
        (FieldType::String, Value::String(s)) => Value::String(s),
        (FieldType::String, Value::Number(n)) => Value::String(n.to_string()),
        (FieldType::String, Value::Bool(b)) => Value::String(b.to_string()),
        (FieldType::Number, Value::Number(n)) => Value::Number(n),
        (FieldType::Number, Value::String(s)) => match s.trim().parse::<serde_json::Number>() {
            Ok(n) => Value::Number(n),
            Err(_) => return Err(refuse(&Value::String(s))),
        },
        (FieldType::Integer, Value::Number(n)) => {
            if n.is_i64() || n.is_u64() {
                Value::Number(n)
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                    _ => return Err(refuse(&Value::Number(n))),
                }
            }
        }
        (FieldType::Integer, Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => return Err(refuse(&Value::String(s))),
        },
        (FieldType::Boolean, Value::Bool(b)) => Value::Bool(b),
        (FieldType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(refuse(&Value::String(s))),
        },
        (FieldType::Boolean, Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(0), _) => Value::Bool(false),
            (Some(1), _) => Value::Bool(true),
            _ => return Err(refuse(&Value::Number(n))),
        },
        (_, other) => return Err(refuse(&other)),
    })
}

fn get<'a>(record: &'a Value, steps: &[&str]) -> Option<&'a Value> {
    steps.iter().try_fold(record, |v, step| match v {
        Value::Object(m) => m.get(*step),
        Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

impl Mapping {
    /// Checks the mapping: 1 to [`MAX_MAPPED_FIELDS`] fields, valid dotted paths, no two fields
    /// written to the same place (nor one inside another), defaults of the field's type.
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.fields.is_empty() || self.fields.len() > MAX_MAPPED_FIELDS {
            return Err(MappingError::Size);
        }
        let mut targets: Vec<(usize, Vec<&str>)> = Vec::new();
        for (index, f) in self.fields.iter().enumerate() {
            let invalid = |message: String| MappingError::Invalid { index, message };
            let to = path_steps(&f.to).ok_or_else(|| {
                invalid(format!(
                    "`to` must be a dotted path of 1 to {MAX_PATH_DEPTH} non-empty names"
                ))
            })?;
            if let Some(from) = &f.from {
                path_steps(from).ok_or_else(|| {
                    invalid(format!(
                        "`from` must be a dotted path of 1 to {MAX_PATH_DEPTH} non-empty names"
                    ))
                })?;
            }
            if let Some((other, _)) = targets.iter().find(|(_, t)| {
                let n = t.len().min(to.len());
                t[..n] == to[..n]
            }) {
                return Err(invalid(format!(
                    "`to` overlaps fields[{other}].to: two fields cannot be written to the same place"
                )));
            }
            if let (Some(default), Some(kind)) = (&f.default, f.kind) {
                coerce(&f.to, default.clone(), kind)
                    .map_err(|e| invalid(format!("`default`: {e}")))?;
            }
            targets.push((index, to));
        }
        Ok(())
    }

    /// The provider fields the mapping reads (the first step of each `from`).
    pub fn source_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().filter_map(|f| {
            let from = f.from.as_deref().unwrap_or(&f.to);
            path_steps(from).and_then(|s| s.first().copied())
        })
    }

    /// Maps one provider record to the tenant's record. Absent values are null unless the field
    /// has a default.
    pub fn apply(&self, record: &Value) -> Result<Value, MappingError> {
        if !record.is_object() {
            return Err(MappingError::NotAnObject);
        }
        let mut out = Value::Object(serde_json::Map::new());
        for f in &self.fields {
            let from = path_steps(f.from.as_deref().unwrap_or(&f.to)).unwrap_or_default();
            let found = get(record, &from).filter(|v| !v.is_null()).cloned();
            let value = found.or_else(|| f.default.clone()).unwrap_or(Value::Null);
            let value = match f.kind {
                Some(kind) => coerce(&f.to, value, kind)?,
                None => value,
            };
            let to = path_steps(&f.to).unwrap_or_default();
            let mut slot = &mut out;
            for (i, step) in to.iter().enumerate() {
                let Value::Object(map) = slot else {
                    break;
                };
                if i + 1 == to.len() {
                    map.insert((*step).to_owned(), value);
                    break;
                }
                slot = map
                    .entry((*step).to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
            }
        }
        Ok(out)
    }
}

/// A tenant's import of one stream of one connection into a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncConfig {
    /// Id.
    pub id: SyncId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The connection it reads through.
    pub connection_id: ConnectionId,
    /// The connection's integration.
    pub integration_id: IntegrationId,
    /// The connection's provider.
    pub provider: String,
    /// The provider's stream.
    pub stream: String,
    /// The model its records are stored as (unique per connection).
    pub model: String,
    /// How often it runs.
    pub frequency: Frequency,
    /// Full refresh or incremental.
    pub mode: SyncMode,
    /// How records are mapped; `None` stores them as the provider sent them.
    pub mapping: Option<Mapping>,
    /// Scheduled or not.
    pub status: SyncStatus,
    /// Why it is paused, when a run paused it (`needs_reauth`).
    pub status_reason: Option<String>,
    /// The largest share (percent) of stored records a full pass may delete; a pass that would
    /// delete more deletes nothing and says so.
    pub deletion_guard_percent: u8,
    /// How long records are kept after their last change (days); `None` keeps them.
    pub retention_days: Option<u32>,
    /// The incremental checkpoint of the last completed pass (the engine's stream state).
    pub checkpoint: Option<Value>,
    /// When it runs next (scheduled time plus jitter); `None` when not scheduled.
    pub next_run_at_ms: Option<EpochMillis>,
    /// The run in progress, if any.
    pub active_run_id: Option<SyncRunId>,
    /// The last finished run.
    pub last_run: Option<LastRun>,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When last changed.
    pub updated_at_ms: EpochMillis,
    /// Incremented by every update.
    pub version: u64,
}

/// The outcome of a sync's last finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The run.
    pub run_id: SyncRunId,
    /// How it ended.
    pub state: RunState,
    /// When.
    pub ended_at_ms: EpochMillis,
}

/// The states of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for the connector.
    Queued,
    /// Being read.
    Running,
    /// Stopped at its time budget or deferred by a rate limit; continues from its checkpoint.
    Continued,
    /// Read everything.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Cancelled by the tenant.
    Cancelled,
    /// Its checkpoint stopped moving across continuations.
    Stalled,
}

impl RunState {
    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled | RunState::Stalled
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Continued => "continued",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Stalled => "stalled",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// The schedule.
    Schedule,
    /// `POST /v1/syncs/{id}/runs`.
    Manual,
    /// A verified provider webhook routed to the sync's connection.
    Webhook,
}

/// Counters of a run (all continuations together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStats {
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
    /// Records deleted (tombstoned).
    pub deleted: u64,
    /// Records read and found unchanged (not rewritten).
    pub unchanged: u64,
    /// Records refused (no primary key, or a mapping that cannot convert them).
    pub invalid: u64,
}

impl RunStats {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &RunStats) {
        self.pages += other.pages;
        self.provider_requests += other.provider_requests;
        self.retries += other.retries;
        self.added += other.added;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
        self.invalid += other.invalid;
    }
}

/// Why a run failed, stalled or was paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// A stable class: `auth`, `rate_limited`, `provider`, `network`, `malformed`, `config`,
    /// `internal`, `stalled`, `deletion_guard`.
    pub class: String,
    /// What happened, without secrets.
    pub message: String,
}

/// One execution of a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    /// Id.
    pub id: SyncRunId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The sync.
    pub sync_id: SyncId,
    /// What started it.
    pub trigger: RunTrigger,
    /// Whether it read from the beginning although the sync has a checkpoint.
    pub full_resync: bool,
    /// Its state.
    pub state: RunState,
    /// When queued.
    pub queued_at_ms: EpochMillis,
    /// When the connector first started it.
    pub started_at_ms: Option<EpochMillis>,
    /// When it ended.
    pub ended_at_ms: Option<EpochMillis>,
    /// How many times it continued in a new invocation.
    pub continuations: u32,
    /// Continuations in a row that did not move the position.
    pub stalled_continuations: u32,
    /// Counters.
    pub stats: RunStats,
    /// Why it failed (or what a deletion guard refused).
    pub error: Option<RunError>,
    /// Notes that do not fail the run (e.g. a refused deletion, invalid records).
    pub warnings: Vec<String>,
    /// The engine's position after the last durable page (an opaque JSON value).
    pub position: Option<Value>,
    /// The last feed page committed when `position` and `stats` were saved here: a later page of
    /// this run carries a newer position (a run saves its position in each page it commits, and
    /// here only when it stops).
    #[serde(default)]
    pub feed_seq: u64,
    /// Deferrals in a row (rate limits, outages) without a page read in between.
    #[serde(default)]
    pub deferrals: u32,
    /// The first feed page this run may commit (the feed's next page when it started): its
    /// changes are the pages from here with its id.
    #[serde(default)]
    pub start_seq: u64,
    /// The incremental checkpoint the pass started from.
    pub start_checkpoint: Option<Value>,
    /// Set by a cancellation; the connector stops at its next page.
    pub cancel_requested: bool,
    /// How many times it was resumed after it stopped making progress without ending.
    #[serde(default)]
    pub rescues: u32,
    /// When the connector last saved it (started, continued, deferred, resumed); its creation
    /// until then.
    #[serde(default)]
    pub saved_at_ms: EpochMillis,
    /// Incremented by every update.
    pub version: u64,
}

/// The most warnings a run keeps.
pub const MAX_RUN_WARNINGS: usize = 10;

impl SyncRun {
    /// A run of `sync` queued at `at_ms`.
    pub fn queued(
        sync: &SyncConfig,
        trigger: RunTrigger,
        full_resync: bool,
        at_ms: EpochMillis,
    ) -> Self {
        Self {
            id: SyncRunId::generate(),
            tenant_id: sync.tenant_id.clone(),
            sync_id: sync.id.clone(),
            trigger,
            full_resync,
            state: RunState::Queued,
            queued_at_ms: at_ms,
            started_at_ms: None,
            ended_at_ms: None,
            continuations: 0,
            stalled_continuations: 0,
            stats: RunStats::default(),
            error: None,
            warnings: Vec::new(),
            position: None,
            feed_seq: 0,
            deferrals: 0,
            start_seq: 0,
            start_checkpoint: None,
            cancel_requested: false,
            rescues: 0,
            saved_at_ms: at_ms,
            version: 1,
        }
    }

    /// When a run that is not over last moved (its last save, else its creation or start); `None`
    /// once it is over. A run whose time is [`RUN_IDLE_AFTER`] old has stopped making progress.
    pub fn active_at_ms(&self) -> Option<EpochMillis> {
        (!self.state.is_final()).then(|| {
            self.saved_at_ms
                .max(self.queued_at_ms)
                .max(self.started_at_ms.unwrap_or(0))
        })
    }

    /// Keeps a warning, up to [`MAX_RUN_WARNINGS`].
    pub fn warn(&mut self, warning: String) {
        if self.warnings.len() < MAX_RUN_WARNINGS {
            self.warnings.push(warning);
        }
    }
}

/// Which of a tenant's syncs a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncFilter {
    /// Of this connection.
    pub connection_id: Option<ConnectionId>,
}

impl SyncFilter {
    /// Whether `s` passes.
    pub fn matches(&self, s: &SyncConfig) -> bool {
        self.connection_id
            .as_ref()
            .is_none_or(|c| *c == s.connection_id)
    }
}

/// The stable types of sync events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncEventType {
    /// A run read everything.
    #[serde(rename = "sync.run.succeeded")]
    RunSucceeded,
    /// A run failed.
    #[serde(rename = "sync.run.failed")]
    RunFailed,
    /// A run's checkpoint stopped moving.
    #[serde(rename = "sync.run.stalled")]
    RunStalled,
    /// A run was cancelled.
    #[serde(rename = "sync.run.cancelled")]
    RunCancelled,
    /// The sync was paused by a run (the connection needs the end user).
    #[serde(rename = "sync.paused")]
    Paused,
}

/// Something that happened to a sync, kept for the tenant's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEvent {
    /// Id.
    pub id: crate::ids::EventId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The sync.
    pub sync_id: SyncId,
    /// The run, for run events.
    pub run_id: Option<SyncRunId>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: SyncEventType,
    /// Counters of the run.
    pub stats: Option<RunStats>,
    /// Why, for failures.
    pub error: Option<RunError>,
    /// When.
    pub at_ms: EpochMillis,
}

/// A model name: 1–64 letters, digits, `_`, `-` or `.`, starting with a letter.
pub fn valid_model(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Bounds of a deletion guard.
pub const DEFAULT_DELETION_GUARD_PERCENT: u8 = 50;

/// A tenant's record ids are provider ids: at most this long.
pub const MAX_RECORD_ID_LEN: usize = 512;

/// Labels by which a record id is built from its primary-key values.
pub fn record_id(values: &[String]) -> String {
    if values.len() == 1 {
        values[0].clone()
    } else {
        // Each part escaped so that ("a|b", "c") and ("a", "b|c") differ.
        values
            .iter()
            .map(|v| v.replace('\\', "\\\\").replace('|', "\\|"))
            .collect::<Vec<_>>()
            .join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intervals_below_a_minute_are_refused() {
        assert!(
            Frequency::Interval { every_seconds: 59 }
                .validate()
                .is_err()
        );
        assert!(Frequency::Interval { every_seconds: 60 }.validate().is_ok());
    }

    #[test]
    fn cron_needs_five_fields_and_a_time_that_exists() {
        let cron = |c: &str| Frequency::Cron { cron: c.into() };
        assert!(cron("0 */6 * * *").validate().is_ok());
        assert!(cron("*/5 * * * * *").validate().is_err(), "a seconds field");
        assert!(cron("61 * * * *").validate().is_err());
        assert!(
            cron("0 0 31 2 *").validate().is_err(),
            "31 February never fires"
        );
    }

    #[test]
    fn cron_next_is_the_next_matching_minute_in_utc() {
        let f = Frequency::Cron {
            cron: "30 6 * * *".into(),
        };
        // 2026-01-01T00:00:00Z -> 06:30 the same day.
        assert_eq!(
            f.next_after(1_767_225_600_000),
            Some(1_767_225_600_000 + 6 * 3_600_000 + 1_800_000)
        );
    }

    #[test]
    fn jitter_is_stable_bounded_and_spreads_syncs() {
        let f = Frequency::Interval {
            every_seconds: 3600,
        };
        let ids: Vec<SyncId> = (0..1000).map(|_| SyncId::generate()).collect();
        let offsets: Vec<i64> = ids.iter().map(|id| f.jitter_ms(id, 0)).collect();
        assert!(offsets.iter().all(|o| (0..300_000).contains(o)));
        assert_eq!(f.jitter_ms(&ids[0], 0), offsets[0], "stable per sync");
        let mut seconds: Vec<i64> = offsets.iter().map(|o| o / 1000).collect();
        seconds.sort_unstable();
        seconds.dedup();
        assert!(
            seconds.len() > 200,
            "a thousand syncs spread over many seconds: {}",
            seconds.len()
        );
        // A one-minute interval spreads over at most six seconds.
        let minute = Frequency::Interval { every_seconds: 60 };
        assert!(ids.iter().all(|id| minute.jitter_ms(id, 0) < 6_000));
    }

    fn mapping(fields: serde_json::Value) -> Mapping {
        serde_json::from_value(json!({ "fields": fields })).unwrap()
    }

    #[test]
    fn mapping_selects_renames_nests_defaults_and_coerces() {
        let m = mapping(json!([
            {"to": "email"},
            {"to": "name", "from": "full_name"},
            {"to": "address.city", "from": "addresses.0.city"},
            {"to": "plan", "default": "free"},
            {"to": "seats", "from": "quantity", "type": "integer"},
            {"to": "vip", "type": "boolean"},
        ]));
        m.validate().unwrap();
        let out = m
            .apply(&json!({
                "email": "a@example.com", "full_name": "Ada", "secret": "x",
                "addresses": [{"city": "Paris"}], "quantity": "12", "vip": "TRUE"
            }))
            .unwrap();
        assert_eq!(
            out,
            json!({"email": "a@example.com", "name": "Ada", "address": {"city": "Paris"},
                   "plan": "free", "seats": 12, "vip": true})
        );
    }

    #[test]
    fn a_value_that_cannot_be_converted_is_an_error_naming_the_field() {
        let m = mapping(json!([{"to": "seats", "type": "integer"}]));
        let err = m.apply(&json!({"seats": "twelve"})).unwrap_err();
        assert!(err.to_string().contains("seats"), "{err}");
    }

    #[test]
    fn overlapping_or_malformed_targets_are_refused() {
        assert!(
            mapping(json!([{"to": "a"}, {"to": "a.b"}]))
                .validate()
                .is_err()
        );
        assert!(
            mapping(json!([{"to": "a"}, {"to": "a"}]))
                .validate()
                .is_err()
        );
        assert!(mapping(json!([{"to": "a..b"}])).validate().is_err());
        assert!(mapping(json!([])).validate().is_err());
        assert!(
            mapping(json!([{"to": "n", "type": "integer", "default": "x"}]))
                .validate()
                .is_err()
        );
        assert!(
            serde_json::from_value::<Mapping>(json!({"fields": [{"to": "a", "bogus": 1}]}))
                .is_err()
        );
    }

    #[test]
    fn model_names_are_bounded() {
        assert!(valid_model("customers"));
        assert!(valid_model("crm.contact_v2"));
        assert!(!valid_model(""));
        assert!(!valid_model("1x"));
        assert!(!valid_model("a/b"));
        assert!(!valid_model(&"a".repeat(65)));
    }

    #[test]
    fn composite_record_ids_do_not_collide() {
        assert_ne!(
            record_id(&["a|b".into(), "c".into()]),
            record_id(&["a".into(), "b|c".into()])
        );
        assert_eq!(record_id(&["cus_1".into()]), "cus_1");
    }

    /// A run stored before runs counted rescues and save times reads with neither, and moves from
    /// its start; a save moves it on; an ended run has no time.
    #[test]
    fn a_run_moves_at_its_last_save_until_it_ends() {
        let mut run: SyncRun = serde_json::from_value(json!({
            "id": "run_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d",
            "tenant_id": "ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d",
            "sync_id": "sync_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d",
            "trigger": "manual", "full_resync": false, "state": "running",
            "queued_at_ms": 1_000, "started_at_ms": 2_000, "ended_at_ms": null,
            "continuations": 0, "stalled_continuations": 0, "stats": RunStats::default(), "error": null,
            "warnings": [], "position": null, "start_checkpoint": null,
            "cancel_requested": false, "version": 3
        }))
        .unwrap();
        assert_eq!((run.rescues, run.saved_at_ms), (0, 0));
        assert_eq!(run.active_at_ms(), Some(2_000));
        run.saved_at_ms = 9_000;
        assert_eq!(run.active_at_ms(), Some(9_000));
        run.state = RunState::Continued;
        assert_eq!(run.active_at_ms(), Some(9_000));
        for state in [
            RunState::Succeeded,
            RunState::Failed,
            RunState::Cancelled,
            RunState::Stalled,
        ] {
            run.state = state;
            assert_eq!(run.active_at_ms(), None, "{state:?}");
        }
    }
}
