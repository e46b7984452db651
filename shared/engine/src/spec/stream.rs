//! Streams (readable collections) and actions (writes and RPCs).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ErrorRule, Pagination, RequestTemplate};

/// Full refresh or incremental.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Read everything on every run.
    #[default]
    FullRefresh,
    /// Read what changed since the saved cursor.
    Incremental,
}

/// A readable collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Name, unique within the provider (e.g. `customers`).
    pub name: String,
    /// What the records are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The first-page request.
    pub request: RequestTemplate,
    /// Selector of the record array in the body (`""` for a body that is the array).
    pub records: String,
    /// Selectors of the fields that identify a record.
    pub primary_key: Vec<String>,
    /// Pagination; defaults to the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Sync mode (default full refresh).
    #[serde(default)]
    pub sync: SyncMode,
    /// Incremental settings; required when `sync: incremental`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// A code connector that reads this stream instead of the declarative engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<CodeConnectorRef>,
    /// Error rules for this stream's requests, checked before the provider's `errors` and the
    /// status defaults: an endpoint whose failures mean something else than the provider's
    /// (Zendesk's incremental export answers 403 to a token that is not an admin's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
    /// The fields its records can have, as the provider documents them: a JSON Schema of which
    /// `type`, `properties`, `items` and `additionalProperties: false` are read. A sync's mapping
    /// that names a field an object closed by `additionalProperties: false` does not list, or a
    /// field inside a scalar, is refused ([`Stream::cannot_have`]); an open object may have any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub record_schema: Option<serde_json::Value>,
}

impl Stream {
    /// Why a record of this stream cannot have a value at `path` (dotted, array indexes as
    /// numbers: `address.city`, `tax_ids.data.0.value`), as its `record_schema` says; `None` when
    /// it may (or when the stream declares no schema).
    pub fn cannot_have(&self, path: &str) -> Option<String> {
        let mut node = self.record_schema.as_ref()?;
        let mut walked = String::new();
        for segment in path.split('.') {
            // `type: [string, "null"]` is a string that may be null.
            let kind = match node.get("type") {
                Some(serde_json::Value::String(t)) => Some(t.as_str()),
                Some(serde_json::Value::Array(ts)) => {
                    let mut named = ts
                        .iter()
                        .filter_map(|t| t.as_str())
                        .filter(|t| *t != "null");
                    match (named.next(), named.next()) {
                        (Some(t), None) => Some(t),
                        _ => None,
                    }
                }
                _ => None,
            };
            let next = if segment.bytes().all(|b| b.is_ascii_digit()) && kind == Some("array") {
                node.get("items")
            } else if let Some(field) = node.get("properties").and_then(|p| p.get(segment)) {
                Some(field)
            } else if matches!(
                kind,
                Some("string" | "number" | "integer" | "boolean" | "null")
            ) {
                let at = if walked.is_empty() {
                    "the record"
                } else {
                    walked.as_str()
                };
                return Some(format!(
                    "`{at}` is a {} in `{}` records: it has no `{segment}`",
                    kind.unwrap_or_default(),
                    self.name
                ));
            } else if node.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
                let at = if walked.is_empty() {
                    "a record"
                } else {
                    walked.as_str()
                };
                return Some(format!(
                    "{at} of the `{}` stream has no field `{segment}`",
                    self.name
                ));
            } else {
                // An open object (or an unknown shape): anything may be below.
                return None;
            };
            match next {
                Some(n) => node = n,
                None => return None,
            }
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(segment);
        }
        None
    }
}

/// Format of an incremental cursor value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CursorFormat {
    /// RFC 3339 timestamp (`2024-05-01T12:00:00Z`).
    #[default]
    Rfc3339,
    /// Unix seconds (number or numeric string).
    UnixSeconds,
    /// Unix milliseconds (HubSpot `hs_lastmodifieddate` filters).
    UnixMillis,
}

/// How the cursor is sent as a query parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalParam {
    /// Parameter name (e.g. `created[gte]`, `updated_since`).
    pub name: String,
    /// Template of the value (default `{cursor}`), e.g. `updated>={cursor}` in a search query.
    #[serde(default = "d_cursor_tpl")]
    pub value: String,
}

fn d_cursor_tpl() -> String {
    "{cursor}".into()
}

/// Incremental settings. The saved cursor minus `lookback_seconds` is available to templates as
/// `{cursor}`; without saved state it is `start` (default the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Selector of the record field that orders changes (e.g. `updated_at`).
    pub cursor_field: String,
    /// Format of that field and of `{cursor}`.
    #[serde(default)]
    pub format: CursorFormat,
    /// A query parameter that carries the cursor; alternatively reference `{cursor}` in the
    /// request's query or body templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<IncrementalParam>,
    /// Re-read this many seconds before the saved cursor, for late-arriving changes.
    #[serde(default)]
    pub lookback_seconds: u64,
    /// Cursor used when there is no saved state, in `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// Selects a Rust connector registered in the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeConnectorRef {
    /// Registered connector kind (e.g. `salesforce_soql`, `graphql_cursor`).
    pub kind: String,
    /// Options the connector parses itself.
    #[serde(default)]
    pub options: serde_json::Value,
}

/// How an action body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested objects as `a[b]=c` (Stripe).
    Form,
}

/// A write or RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Name, unique within the provider (e.g. `create_customer`).
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The request; its body template reads `{input.*}`.
    pub request: RequestTemplate,
    /// Body encoding.
    #[serde(default)]
    pub encoding: BodyEncoding,
    /// JSON Schema the input must satisfy before anything is sent.
    pub input_schema: serde_json::Value,
    /// Selector of the output in the response body (`""` for the whole body).
    #[serde(default)]
    pub output: String,
    /// Extra per-action headers such as an idempotency key template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
