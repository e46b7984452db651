//! `/v1/records`: the records syncs store, read as a change feed per (connection, model). A read
//! returns the changes after a cursor, each record at its latest change (ADDED, UPDATED or
//! DELETED) exactly once; `next_cursor` resumes right after the last change the read examined,
//! so a client that polls with it sees every later change once.
//!
//! Records are answered as stored: their JSON is embedded as is, never parsed into values. An
//! answer stays well under Lambda's 6 MB response limit: records are added while the answer, as
//! it travels in the Lambda response (a JSON string, where every `"` and `\` is escaped), stays
//! within [`MAX_ANSWER_BYTES`]; the cursor then resumes after the last record returned, so nothing
//! is skipped.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::header::ACCEPT;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::value::RawValue;
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::records::{
    FeedFilter, FeedKey, FeedPosition, RecordAction, StoredRecord, read_feed,
};
use tributary_core::sync::{MAX_RECORD_ID_LEN, valid_model};
use tributary_core::time::{EpochMillis, rfc3339};
use utoipa::ToSchema;

use crate::access::{RecordsRead, TenantCaller};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::request::{invalid, only_query, path_id, path_segment};
use crate::response::{Json, raw};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, JobsQueue, Records, Store};

/// Records a JSON answer holds by default.
pub const DEFAULT_LIMIT: usize = 100;
/// Records a JSON answer holds at most.
pub const MAX_LIMIT: usize = 1000;
/// Records an NDJSON answer holds at most (and by default).
pub const MAX_NDJSON_LIMIT: usize = 10_000;
/// The most an answer's records take in the Lambda response (escaped as a JSON string): 5 MiB,
/// under Lambda's 6 MB with room for the rest of the answer.
pub const MAX_ANSWER_BYTES: usize = 5 * 1024 * 1024;
/// Records one feed read asks for: bounds what is held in memory besides the answer.
const READ_BATCH: usize = 100;

const NDJSON: &str = "application/x-ndjson";
/// The cursor after an NDJSON answer (absent when nothing was examined).
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("tributary-next-cursor");
/// Whether changes remain after it (`true` or `false`).
pub const HAS_MORE: HeaderName = HeaderName::from_static("tributary-has-more");

const CURSOR_VERSION: &str = "f1.";

/// A feed position as an opaque cursor.
pub fn encode_cursor(p: FeedPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}{}.{}", p.page, p.index))
}

fn decode_cursor(raw: &str) -> Option<FeedPosition> {
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let (page, index) = text.strip_prefix(CURSOR_VERSION)?.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(page) || !all_digits(index) {
        return None;
    }
    let position = FeedPosition {
        page: page.parse().ok()?,
        index: index.parse().ok()?,
    };
    (position.page >= 1).then_some(position)
}

/// A record's last change.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordActionDto {
    /// First stored (or stored again after a deletion).
    Added,
    /// Its content changed.
    Updated,
    /// No longer at the provider; `data` is its last content.
    Deleted,
}

impl From<RecordAction> for RecordActionDto {
    fn from(a: RecordAction) -> Self {
        match a {
            RecordAction::Added => RecordActionDto::Added,
            RecordAction::Updated => RecordActionDto::Updated,
            RecordAction::Deleted => RecordActionDto::Deleted,
        }
    }
}

/// A record at its latest change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "cus_NffrFeUfNV2Hib", "action": "UPDATED", "first_seen_at": "2026-01-05T10:00:00Z", "last_modified_at": "2026-01-06T09:30:00Z", "run_id": "run_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d", "cursor": "ZjEuMy40", "data": {"id": "cus_NffrFeUfNV2Hib", "email": "jenny@example.com"}}))]
pub struct RecordOut {
    /// The provider's id of the record.
    pub id: String,
    /// `ADDED`, `UPDATED` or `DELETED`.
    pub action: RecordActionDto,
    /// RFC 3339: when it was first stored.
    pub first_seen_at: String,
    /// RFC 3339: when it last changed.
    pub last_modified_at: String,
    /// The run that stored its last change.
    pub run_id: String,
    /// Its place in the feed: a `cursor` that resumes right after this record.
    pub cursor: String,
    /// The record (mapped when the sync maps), as stored.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

fn time(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

impl RecordOut {
    fn of(record: StoredRecord) -> Result<Self, ApiError> {
        // Validated (not parsed into values) so that a damaged item cannot break the answer.
        let data = RawValue::from_string(record.data).map_err(|e| {
            tracing::error!(record_id = %record.id, error = %e, "a stored record is not JSON");
            ApiError::Internal
        })?;
        Ok(Self {
            action: record.action.into(),
            first_seen_at: time(record.first_seen_ms),
            last_modified_at: time(record.last_modified_ms),
            run_id: record.run_id.to_string(),
            cursor: encode_cursor(record.position),
            data,
            id: record.id,
        })
    }
}

/// A page of a feed (documentation: the answer is written record by record).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsPage {
    /// Changes after the cursor, in feed order: each record once, at its latest change.
    pub records: Vec<RecordOut>,
    /// Pass as `cursor` to read on: present whenever the read examined anything, so a client
    /// polls with it for later changes; `null` only when nothing was read from an empty feed.
    pub next_cursor: Option<String>,
    /// Whether changes remain after `next_cursor` now (read on at once); `false`: poll later.
    pub has_more: bool,
}

/// Expired by the sync's retention (DynamoDB removes expired items lazily).
fn expired(record: &StoredRecord, now_ms: EpochMillis) -> bool {
    record.expires_at_s.is_some_and(|at| at <= now_ms / 1000)
}

/// What the Lambda response spends on these bytes inside its JSON string: `"` and `\` are
/// escaped (the API writes no raw control characters; serde_json escapes them in strings).
fn wire_len(json: &[u8]) -> usize {
    json.len() + json.iter().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// What a feed query asks.
pub struct FeedQuery {
    connection_id: ConnectionId,
    model: String,
    after: Option<FeedPosition>,
    limit: usize,
    filter: FeedFilter,
    ndjson: bool,
}

/// Whether the caller accepts newline-delimited JSON (any media range that names it).
fn wants_ndjson(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(NDJSON))
        })
}

fn connection_param(
    q: &std::collections::HashMap<String, String>,
) -> Result<ConnectionId, ApiError> {
    let raw = q.get("connection_id").ok_or_else(|| {
        invalid(
            "query.connection_id",
            "`connection_id` is required: the connection (`conn_…`) whose records to read.",
        )
    })?;
    path_id::<ConnectionId>(raw, "connection_id").map_err(|_| {
        invalid(
            "query.connection_id",
            "`connection_id` is a connection id (`conn_…`).",
        )
    })
}

fn check_model(pointer: &str, model: &str) -> Result<(), ApiError> {
    if valid_model(model) {
        Ok(())
    } else {
        Err(invalid(
            pointer,
            "`model` is the model a sync stores records as: 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter.",
        ))
    }
}

impl<St: Send + Sync> FromRequestParts<St> for FeedQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let q = only_query(
            parts,
            &[
                "connection_id",
                "model",
                "cursor",
                "limit",
                "modified_after",
                "action",
            ],
        )?;
        let connection_id = connection_param(&q)?;
        let model = q
            .get("model")
            .ok_or_else(|| {
                invalid(
                    "query.model",
                    "`model` is required: the model a sync of the connection stores records as.",
                )
            })?
            .clone();
        check_model("query.model", &model)?;
        let ndjson = wants_ndjson(parts);
        let (default, max) = if ndjson {
            (MAX_NDJSON_LIMIT, MAX_NDJSON_LIMIT)
        } else {
            (DEFAULT_LIMIT, MAX_LIMIT)
        };
        let limit = match q.get("limit") {
            None => default,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) && !raw.starts_with('+') => n,
                _ => {
                    return Err(invalid(
                        "query.limit",
                        &format!(
                            "`limit` must be an integer from 1 to {max}{}.",
                            if ndjson { " (NDJSON)" } else { "" }
                        ),
                    ));
                }
            },
        };
        let after = q
            .get("cursor")
            .map(|raw| {
                decode_cursor(raw).ok_or_else(|| {
                    invalid(
                        "query.cursor",
                        "`cursor` is not a records cursor. Pass `next_cursor` (or a record's `cursor`) unchanged.",
                    )
                })
            })
            .transpose()?;
        let modified_after_ms = q
            .get("modified_after")
            .map(|raw| {
                time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .and_then(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok())
                    .ok_or_else(|| {
                        invalid(
                            "query.modified_after",
                            "`modified_after` is an RFC 3339 time such as 2026-01-31T00:00:00Z.",
                        )
                    })
            })
            .transpose()?;
        let mut actions = Vec::new();
        if let Some(raw) = q.get("action") {
            for name in raw.split(',') {
                let action = match name.trim() {
                    "ADDED" => RecordAction::Added,
                    "UPDATED" => RecordAction::Updated,
                    "DELETED" => RecordAction::Deleted,
                    _ => {
                        return Err(invalid(
                            "query.action",
                            "`action` is one or more of ADDED, UPDATED and DELETED, comma-separated.",
                        ));
                    }
                };
                if !actions.contains(&action) {
                    actions.push(action);
                }
            }
        }
        Ok(Self {
            connection_id,
            model,
            after,
            limit,
            filter: FeedFilter {
                modified_after_ms,
                actions,
            },
            ndjson,
        })
    }
}

/// Records read for one answer, serialized.
struct Collected {
    /// Each record's JSON object.
    records: Vec<Vec<u8>>,
    next: Option<FeedPosition>,
    more: bool,
}

/// Reads the feed after `after`, a batch at a time, until `limit` changes were read, the answer
/// is full, or the feed says to stop (its end, or a read that examined its maximum of entries).
async fn collect<S: ControlStore>(
    records: &S,
    feed: &FeedKey,
    after: Option<FeedPosition>,
    limit: usize,
    filter: &FeedFilter,
    now_ms: EpochMillis,
) -> Result<Collected, ApiError> {
    let mut out = Collected {
        records: Vec::new(),
        next: after,
        more: false,
    };
    let mut spent = 0usize;
    let mut read_count = 0usize;
    let mut cursor = after;
    loop {
        let want = (limit - read_count).min(READ_BATCH);
        let read = read_feed(records, feed, cursor, want, filter)
            .await
            .map_err(store_failure)?;
        let got = read.records.len();
        read_count += got;
        for record in read.records {
            if expired(&record, now_ms) {
                continue;
            }
            let position = record.position;
            let json = serde_json::to_vec(&RecordOut::of(record)?).map_err(|e| {
                tracing::error!(error = %e, "a record could not be serialized");
                ApiError::Internal
            })?;
            let cost = wire_len(&json) + 1;
            if !out.records.is_empty() && spent + cost > MAX_ANSWER_BYTES {
                // Full: resume right after the last record returned.
                out.more = true;
                return Ok(out);
            }
            spent += cost;
            out.records.push(json);
            out.next = Some(position);
        }
        out.next = read.next.or(out.next);
        cursor = read.next;
        // Fewer than asked with more to come: the read examined its most entries (filtered or
        // superseded ones); the client reads on from `next`.
        if !read.more || got < want || read_count >= limit {
            out.more = read.more;
            return Ok(out);
        }
    }
}

fn page_json(c: &Collected) -> Vec<u8> {
    let size: usize = c.records.iter().map(|r| r.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 128);
    body.extend_from_slice(b"{\"records\":[");
    for (i, record) in c.records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(record);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    match c.next {
        // Base64url: no character that needs escaping.
        Some(p) => {
            body.push(b'"');
            body.extend_from_slice(encode_cursor(p).as_bytes());
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(if c.more {
        b",\"has_more\":true}"
    } else {
        b",\"has_more\":false}"
    });
    body
}

fn page_ndjson(c: Collected) -> Response {
    let size: usize = c.records.iter().map(|r| r.len() + 1).sum();
    let mut body = Vec::with_capacity(size);
    for record in &c.records {
        body.extend_from_slice(record);
        body.push(b'\n');
    }
    let mut response = raw(StatusCode::OK, NDJSON, body, None);
    let headers = response.headers_mut();
    if let Some(p) = c.next
        && let Ok(value) = HeaderValue::from_str(&encode_cursor(p))
    {
        headers.insert(NEXT_CURSOR, value);
    }
    headers.insert(
        HAS_MORE,
        HeaderValue::from_static(if c.more { "true" } else { "false" }),
    );
    response
}

/// The tenant's connection, or a 404 as for one that does not exist.
async fn own_connection<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &ConnectionId,
) -> Result<(), ApiError> {
    store
        .get_connection(tenant, id)
        .await
        .map_err(store_failure)?
        .map(|_| ())
        .ok_or(ApiError::NotFound {
            resource: "connection",
        })
}

/// Reads a connection's model as a change feed: the changes after `cursor`, each record at its
/// latest change, in feed order. Poll with `next_cursor` for later changes. With
/// `Accept: application/x-ndjson` the answer is one record object per line (up to 10,000, and at
/// most 5 MiB), with the next cursor and whether more changes wait in the `Tributary-Next-Cursor`
/// and `Tributary-Has-More` headers.
#[utoipa::path(get, path = "/v1/records", operation_id = "list_records", tag = "Records",
    params(("connection_id" = String, Query, description = "The connection (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$"),
           ("model" = String, Query, description = "The model a sync of the connection stores records as", pattern = "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous answer, or a record's `cursor`: the changes after it (default: from the beginning)"),
           ("limit" = Option<u32>, Query, description = "Records to read: 1 to 1000 (default 100); with NDJSON 1 to 10000 (default 10000). An answer also stops at 5 MiB of records, and may hold fewer than `limit` with `has_more`", minimum = 1, maximum = 10000),
           ("modified_after" = Option<String>, Query, description = "Only records changed after this RFC 3339 time", format = DateTime),
           ("action" = Option<String>, Query, description = "Only these changes: one or more of ADDED, UPDATED and DELETED, comma-separated", example = "ADDED,UPDATED")),
    responses((status = 200, description = "Changes after the cursor. As NDJSON: one `RecordOut` object a line (a text OpenAPI 3.1 can only call a string)",
                   content((RecordsPage = "application/json"), (String = "application/x-ndjson")),
                   headers(("Tributary-Next-Cursor" = String, description = "NDJSON answers: the next cursor (absent when nothing was read from an empty feed)"),
                           ("Tributary-Has-More" = bool, description = "NDJSON answers: whether changes remain after it"))),
              (status = 400, description = "A missing or bad `connection_id` or `model`, or a bad `cursor`, `limit`, `modified_after` or `action`", body = ProblemDoc),
              (status = 403, description = "Requires `records:read`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<RecordsRead>,
    store: Store<S>,
    records: Records<S>,
    clock: Clock,
    query: FeedQuery,
) -> Result<Response, ApiError> {
    own_connection(&*store, &caller.tenant, &query.connection_id).await?;
    let feed = FeedKey {
        tenant_id: caller.tenant,
        connection_id: query.connection_id,
        model: query.model,
    };
    let collected = collect(
        &*records,
        &feed,
        query.after,
        query.limit,
        &query.filter,
        clock.now_ms(),
    )
    .await?;
    tracing::info!(connection_id = %feed.connection_id, model = %feed.model, records = collected.records.len(), more = collected.more, ndjson = query.ndjson, "records read");
    Ok(if query.ndjson {
        page_ndjson(collected)
    } else {
        raw(
            StatusCode::OK,
            "application/json",
            page_json(&collected),
            None,
        )
    })
}

/// The record id of the path, percent-decoded.
pub struct RecordPath {
    model: String,
    id: String,
}

impl<St: Send + Sync> FromRequestParts<St> for RecordPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let model = path_segment(parts, "model")?.to_owned();
        check_model("path.model", &model)?;
        let raw = path_segment(parts, "record_id")?;
        let id = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()
            .filter(|id| !id.is_empty() && id.len() <= MAX_RECORD_ID_LEN)
            .map(Cow::into_owned)
            .ok_or_else(|| {
                invalid(
                    "path.record_id",
                    &format!(
                        "`record_id` is the provider's id of the record, percent-encoded UTF-8 of 1 to {MAX_RECORD_ID_LEN} bytes."
                    ),
                )
            })?;
        Ok(Self { model, id })
    }
}

/// The query of a record's read: its connection.
pub struct ConnectionQuery(ConnectionId);

impl<St: Send + Sync> FromRequestParts<St> for ConnectionQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let q = only_query(parts, &["connection_id"])?;
        connection_param(&q).map(Self)
    }
}

/// Reads one record of a connection's model at its latest change (a deleted record answers
/// with `DELETED` and its last content until it expires).
#[utoipa::path(get, path = "/v1/records/{model}/{record_id}", operation_id = "get_record", tag = "Records",
    params(("model" = String, Path, description = "The model", pattern = "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"),
           ("record_id" = String, Path, description = "The provider's id of the record, percent-encoded (at most 512 bytes)"),
           ("connection_id" = String, Query, description = "The connection (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 200, description = "The record", body = RecordOut),
              (status = 400, description = "A bad model, record id or `connection_id`", body = ProblemDoc),
              (status = 403, description = "Requires `records:read`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant, or no such record", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<RecordsRead>,
    store: Store<S>,
    records: Records<S>,
    clock: Clock,
    path: RecordPath,
    ConnectionQuery(connection_id): ConnectionQuery,
) -> Result<Json<RecordOut>, ApiError> {
    own_connection(&*store, &caller.tenant, &connection_id).await?;
    let feed = FeedKey {
        tenant_id: caller.tenant,
        connection_id,
        model: path.model,
    };
    let now = clock.now_ms();
    let found = records
        .get_records(&feed, std::slice::from_ref(&path.id))
        .await
        .map_err(store_failure)?
        .into_iter()
        .find(|r| r.id == path.id && !expired(r, now))
        .ok_or(ApiError::NotFound { resource: "record" })?;
    Ok(Json(RecordOut::of(found)?))
}

/// The records operations.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![list, get]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let p = FeedPosition { page: 12, index: 3 };
        assert_eq!(decode_cursor(&encode_cursor(p)), Some(p));
        let forged = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "!!!".into(),
            forged("f1.0.1"),
            forged("f1.1"),
            forged("f1.1.-1"),
            forged("f1.+1.1"),
            forged("v1:KEY#x"),
            forged("f1.1.99999999999"),
            "a".repeat(100),
        ] {
            assert_eq!(decode_cursor(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_wire_length_counts_what_the_lambda_response_escapes() {
        assert_eq!(wire_len(br#"{"a":"b\\c"}"#), 12 + 4 + 2);
        assert_eq!(wire_len(b"[1,2]"), 5);
    }
}
