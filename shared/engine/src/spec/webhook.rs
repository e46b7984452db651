//! Inbound webhook signature schemes, event ids and routing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// MAC algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlgorithm {
    /// HMAC-SHA256.
    #[default]
    HmacSha256,
}

/// Encoding of the signature in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lowercase or uppercase hex.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// How the signature header is laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureFormat {
    /// The header is the signature, after an optional prefix (GitHub `sha256=`, Slack `v0=`).
    Plain {
        /// Prefix to strip.
        #[serde(default)]
        prefix: String,
    },
    /// Comma-separated `key=value` pairs carrying the timestamp and one or more signatures
    /// (Stripe `t=…,v1=…,v1=…`).
    KeyValue {
        /// Key of the timestamp.
        timestamp_key: String,
        /// Key of a signature; several may be present during secret rotation.
        signature_key: String,
    },
}

/// Where a value (event id, routing key) is found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueSource {
    /// A request header.
    Header {
        /// Header name.
        name: String,
    },
    /// A selector into the JSON body.
    Body {
        /// Selector.
        path: String,
    },
}

/// Alias kept for readability in the event id field.
pub type EventIdSource = ValueSource;

/// Inbound webhook verification and routing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// MAC algorithm.
    #[serde(default)]
    pub algorithm: SignatureAlgorithm,
    /// Header that carries the signature.
    pub signature_header: String,
    /// Layout of that header.
    pub format: SignatureFormat,
    /// Signature encoding.
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Header that carries the timestamp, when not inside the signature header
    /// (Slack `X-Slack-Request-Timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed, with `{timestamp}` and `{body}` (the exact raw bytes),
    /// e.g. `{timestamp}.{body}` (Stripe), `v0:{timestamp}:{body}` (Slack), `{body}` (GitHub).
    pub signed_payload: String,
    /// Maximum age of the timestamp in seconds (default 300); ignored without a timestamp.
    #[serde(default = "d_tolerance")]
    pub tolerance_seconds: u64,
    /// Where the provider's event id is (for dedupe).
    pub event_id: EventIdSource,
    /// The value that routes an event to a connection (e.g. Stripe `account`, GitHub
    /// `installation.id`, Slack `team_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_key: Option<ValueSource>,
    /// Where the event type is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<ValueSource>,
}

fn d_tolerance() -> u64 {
    300
}
