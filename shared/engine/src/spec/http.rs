//! Request templates, verification, rate-limit hints and error classification rules.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    #[default]
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// As an `http` method.
    pub fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        }
    }
}

/// A templated request relative to the provider's base URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// Method (default GET).
    #[serde(default)]
    pub method: Method,
    /// Path appended to the base URL; templated values are percent-encoded as one segment.
    pub path: String,
    /// Query parameters (templated). A parameter whose template resolves to nothing is omitted.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (templated).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body template: every string leaf is templated; a leaf that is exactly one
    /// placeholder (`"{input.amount}"`) takes the value with its JSON type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// A request that proves credentials work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The request.
    #[serde(flatten)]
    pub request: RequestTemplate,
    /// Statuses that mean success (default any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

/// How a reset header expresses time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetFormat {
    /// Seconds until the window resets (e.g. `RateLimit-Reset: 30`).
    #[default]
    Seconds,
    /// Unix time in seconds at which the window resets (GitHub `x-ratelimit-reset`).
    EpochSeconds,
    /// Unix time in milliseconds.
    EpochMillis,
}

/// Rate-limit headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitHints {
    /// Header with a delay in seconds or an HTTP date (default `Retry-After`).
    #[serde(default = "d_retry_after")]
    pub retry_after_header: String,
    /// Header telling when the window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_header: Option<String>,
    /// Format of the reset header.
    #[serde(default)]
    pub reset_format: ResetFormat,
    /// Header with the calls left in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_header: Option<String>,
    /// Documented requests per second, a hint for shared rate budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
}

fn d_retry_after() -> String {
    "Retry-After".into()
}

impl Default for RateLimitHints {
    fn default() -> Self {
        Self {
            retry_after_header: d_retry_after(),
            reset_header: None,
            reset_format: ResetFormat::default(),
            remaining_header: None,
            requests_per_second: None,
        }
    }
}

/// What a failed (or disguised-as-success) response means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retry soon (5xx, timeouts, resets).
    Transient,
    /// Retry after the provider's delay.
    RateLimited,
    /// Credentials are invalid or expired: refresh or re-authorize.
    Auth,
    /// The connection configuration or spec is wrong; retrying will not help.
    Config,
    /// The resource does not exist.
    NotFound,
    /// Any other definitive failure.
    Permanent,
}

/// A header condition: the header is present, and equals a value when one is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// Value it must equal (trimmed, case-sensitive); without it, any value (GitHub's secondary
    /// rate limits are a 403 that carries `retry-after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
}

/// A body condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyMatch {
    /// Selector into the JSON body (e.g. `errors.0.code`).
    pub path: String,
    /// The value must equal one of these.
    pub equals: Vec<serde_json::Value>,
}

/// A provider-specific classification: all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// Status the response must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Header condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatch>,
    /// Body condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyMatch>,
    /// The resulting class.
    pub class: ErrorClass,
    /// Selector of a human message in the body, for error reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_path: Option<String>,
    /// A fixed message for error reports, saying what the failure means and what to do (the
    /// provider's own message, when there is one, follows it in parentheses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds to wait before trying again, where the provider documents a fixed wait and sends no
    /// `Retry-After` (Airtable asks for 30 seconds after a 429). Only for `rate_limited` and
    /// `transient`, at most 3600; a `Retry-After` or reset header the provider sends comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}
