//! Inbound webhook signature schemes, the secret that verifies them, handshakes, event ids and
//! routing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BodyMatch;

/// MAC algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlgorithm {
    /// HMAC-SHA256 (also the only algorithm a `jwt` format accepts: HS256).
    #[default]
    HmacSha256,
    /// HMAC-SHA1 (Intercom), hex only.
    HmacSha1,
}

/// Encoding of the signature in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lowercase hex, as every provider in the catalog sends it; uppercase digits are refused, so
    /// that one MAC has exactly one accepted spelling.
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// How the signature header is laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureFormat {
    /// The header is the signature, after an optional prefix (GitHub `sha256=`, Slack `v0=`).
    Plain {
        /// Prefix to strip (case-sensitive).
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
    /// The header carries a JWT signed with HS256 under the secret (Jira Cloud's webhooks for
    /// OAuth 2.0 apps: `Authorization: Bearer <jwt>`). The token must carry `exp`; `exp`, `nbf`
    /// and `iat` are checked against the clock with `tolerance_seconds` of leeway. The token
    /// does not cover the body.
    Jwt {
        /// Prefix to strip (case-sensitive), e.g. `Bearer `.
        #[serde(default)]
        prefix: String,
    },
}

/// Unit of a timestamp the provider sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimestampUnit {
    /// Unix seconds (Stripe, Slack).
    #[default]
    Seconds,
    /// Unix milliseconds (HubSpot `X-HubSpot-Request-Timestamp`).
    Milliseconds,
}

/// How the secret's text becomes the MAC key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The secret's UTF-8 bytes.
    #[default]
    Utf8,
    /// The secret is standard base64 and the key is the decoded bytes (Airtable's
    /// `macSecretBase64`).
    Base64,
}

/// Which secret verifies a provider's webhooks, so that the route knows where to look it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookSecret {
    /// The OAuth client secret of the tenant's app registration for the provider (HubSpot,
    /// Intercom, Shopify, Jira OAuth 2.0 apps).
    ClientSecret,
    /// A signing secret the tenant configures on the integration, separate from any OAuth
    /// credential (Stripe endpoint secret, GitHub App webhook secret, Slack signing secret).
    WebhookSecret,
    /// A secret stored on one connection, found through the event's `connection_key` (read with
    /// [`crate::webhook::connection_key`] before verifying). Airtable returns `macSecretBase64`
    /// once, when the webhook is created for a base.
    Connection {
        /// Name under which the connection stores it (a credential, so never logged).
        name: String,
    },
    /// The token the provider sent in its `verification_token` handshake, which the route
    /// stored on the integration (Notion: one subscription per integration, signed with that
    /// token).
    Handshake,
}

/// A request that sets up a subscription rather than carrying an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Handshake {
    /// A signed request whose body matches `when` and must be answered with a value from it
    /// (Slack `url_verification`). Answered only once the signature verifies.
    Challenge {
        /// What makes the body a challenge (e.g. `{path: type, equals: [url_verification]}`).
        when: BodyMatch,
        /// Selector of the string to send back (e.g. `challenge`).
        echo: String,
        /// Content type of the reply (default `text/plain`).
        #[serde(default = "d_text_plain")]
        content_type: String,
    },
    /// An unsigned request whose JSON body is an object with this one key, a token the route
    /// stores as the secret (`secret: {from: handshake}`) and never echoes (Notion
    /// `verification_token`). A request carrying the signature header is never taken for it.
    VerificationToken {
        /// The body's only key.
        field: String,
    },
}

fn d_text_plain() -> String {
    "text/plain".to_owned()
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
    /// Which secret verifies the webhooks; the route resolves it.
    pub secret: WebhookSecret,
    /// How the secret's text becomes the key (default `utf8`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub secret_encoding: SecretEncoding,
    /// MAC algorithm.
    #[serde(default)]
    pub algorithm: SignatureAlgorithm,
    /// Header that carries the signature (or the token, for `jwt`).
    pub signature_header: String,
    /// Layout of that header.
    pub format: SignatureFormat,
    /// Signature encoding (default `hex`); not used by `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SignatureEncoding>,
    /// Header that carries the timestamp, when not inside the signature header
    /// (Slack `X-Slack-Request-Timestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Unit of the timestamp (default `seconds`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub timestamp_unit: TimestampUnit,
    /// What is signed, with `{body}` (the exact raw bytes), `{timestamp}` (as sent),
    /// `{method}` (the request method, e.g. `POST`) and `{url}` (the public URL the provider
    /// called, with `url_unescape` applied): `{timestamp}.{body}` (Stripe),
    /// `v0:{timestamp}:{body}` (Slack), `{body}` (GitHub), `{method}{url}{body}{timestamp}`
    /// (HubSpot v3). Required for `plain` and `key_value`; absent for `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
    /// Characters whose percent-encodings (either hex case) `{url}` decodes before signing
    /// (HubSpot v3 lists `:/?@!$'()*,;`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub url_unescape: Vec<String>,
    /// Maximum age (and future skew) of the timestamp in seconds, default 300; the leeway on a
    /// JWT's `exp`, `nbf` and `iat`. Ignored without a timestamp.
    #[serde(default = "d_tolerance")]
    pub tolerance_seconds: u64,
    /// Requests that set up the subscription instead of carrying an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<Handshake>,
    /// Where the provider's event id is (for dedupe); absent when a request carries none
    /// (HubSpot sends a batch, each event with its own `eventId`; Airtable's ping only says that
    /// changes wait to be read by cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventIdSource>,
    /// The value that routes an event to a connection (e.g. Stripe `account`, GitHub
    /// `installation.id`, Slack `team_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_key: Option<ValueSource>,
    /// Where the event type is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<ValueSource>,
}

impl WebhookSpec {
    /// The signature encoding in effect.
    pub fn encoding(&self) -> SignatureEncoding {
        self.encoding.unwrap_or_default()
    }

    /// Whether the scheme carries a timestamp (a header or a key of the signature header).
    pub fn has_timestamp(&self) -> bool {
        self.timestamp_header.is_some() || matches!(self.format, SignatureFormat::KeyValue { .. })
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn d_tolerance() -> u64 {
    300
}
