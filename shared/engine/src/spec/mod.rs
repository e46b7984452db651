//! The provider spec: a typed, versioned description of a third-party API.
//!
//! A spec is a YAML document (see `shared/engine/SPEC.md`) deserialized with `serde_norway`, so
//! syntax and shape errors carry a line and column. [`load`] adds the semantic checks that serde
//! cannot express (templates refer to declared fields, names are unique, selectors parse) and
//! reports them with the file and the line of the offending key.

mod auth;
pub mod dates;
mod http;
mod pagination;
mod stream;
mod validate;
mod webhook;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::{
    ApiKeyAuth, ApiKeyLocation, ApplyToken, AuthMode, BasicAuth, ConfigRequest,
    OAuth2AuthorizationCode, OAuth2ClientCredentials, Pick, Revoke, RevokeClientAuth, RevokeStyle,
    RevokedToken, TokenAuthMethod, TokenEncoding, TokenResponseFields,
};
pub use dates::Deprecation;
pub use http::{
    BodyMatch, ErrorClass, ErrorRule, HeaderMatch, Method, RateLimitHints, RequestTemplate,
    ResetFormat, VerifyRequest,
};
pub use pagination::{
    CursorPagination, LastIdPagination, NextUrlPagination, NextUrlSource, OffsetPagination,
    PageNumberPagination, PageSize, Pagination, ParamLocation, StopWhen,
};
pub use stream::{
    Action, BodyEncoding, CodeConnectorRef, CursorFormat, Incremental, IncrementalParam, Stream,
    SyncMode,
};
pub(crate) use validate::load_prebuilt;
pub use validate::{SpecError, SpecErrorKind, SpecErrors, load};
pub use webhook::{
    EventIdSource, Handshake, SecretEncoding, SignatureAlgorithm, SignatureEncoding,
    SignatureFormat, TimestampUnit, ValueSource, WebhookSecret, WebhookSpec,
};

/// The only spec format version this engine reads.
pub const SPEC_VERSION: u32 = 1;

/// A provider: identity, connection, auth, HTTP defaults, streams, actions and webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Format version; must be `1`.
    pub spec_version: u32,
    /// Stable identifier, lowercase ASCII letters, digits, `-` and `_` (e.g. `stripe`, `google-sheets`).
    pub id: String,
    /// Human name shown in the dashboard.
    pub name: String,
    /// Free-form categories (e.g. `crm`, `payments`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Link to the provider's API reference the spec was written from.
    pub docs_url: String,
    /// The day the spec was last read against the provider's documentation (`YYYY-MM-DD`); the
    /// header comment names the pages. See [`dates::is_stale`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
    /// Ends the provider has announced for what the spec uses (see [`dates::review`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deprecations: Vec<Deprecation>,
    /// Connection configuration an end user supplies (e.g. a subdomain or an instance URL).
    #[serde(default)]
    pub connection_config: Vec<FieldSpec>,
    /// Base URL of every request, templated from connection configuration
    /// (e.g. `https://{config.subdomain}.zendesk.com/api/v2`).
    pub base_url: String,
    /// Headers sent with every request (templated).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters sent with every request (templated).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Supported auth modes; the first is the default.
    pub auth: Vec<AuthMode>,
    /// A cheap request that proves the credentials work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyRequest>,
    /// Rate-limit headers the provider sends.
    #[serde(default)]
    pub rate_limit: RateLimitHints,
    /// Provider-specific error classification (e.g. a 403 whose body code means rate limited,
    /// or a 200 with `ok: false`). Checked before the status-based defaults.
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Default pagination for streams that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Readable collections.
    pub streams: Vec<Stream>,
    /// Writes and RPCs.
    pub actions: Vec<Action>,
    /// Inbound webhook signature verification and routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhookSpec>,
}

/// A field a user fills in: connection configuration or a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Name used in templates (`{config.subdomain}`, `{credentials.api_key}`).
    pub name: String,
    /// Label for forms.
    pub label: String,
    /// Help text for forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the field must be supplied (default `true`).
    #[serde(default = "default_true")]
    pub required: bool,
    /// Whether the value is secret (masked in forms, never logged).
    #[serde(default)]
    pub secret: bool,
    /// A regular expression the whole value must match (e.g. `^[a-z0-9-]+$` for a subdomain,
    /// which also stops a value from changing the host of a templated URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Value used when the field is optional and not supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

pub(crate) fn default_true() -> bool {
    true
}

impl ProviderSpec {
    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The action called `name`.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The base URL template of a connection made with `mode` (the default mode when `None`) and
    /// this configuration: the mode's own ([`AuthMode::base_url_for`]) or the spec's. The
    /// deployment's origin override ([`crate::origins::provider_url`]) applies to this template.
    pub fn base_url_for<'a>(
        &'a self,
        mode: Option<&'a AuthMode>,
        config: &BTreeMap<String, String>,
    ) -> &'a str {
        mode.and_then(|m| m.base_url_for(config))
            .unwrap_or(&self.base_url)
    }

    /// The pagination a stream uses: its own, else the provider default, else none.
    pub fn pagination_for<'a>(&'a self, stream: &'a Stream) -> Option<&'a Pagination> {
        stream.pagination.as_ref().or(self.pagination.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_example_loads() {
        let spec = load(
            include_str!("../../catalog/stripe.yaml"),
            "catalog/stripe.yaml",
        )
        .unwrap();
        assert_eq!(spec.id, "stripe");
        assert!(spec.stream("customers").is_some());
    }

    #[test]
    fn unknown_key_reports_file_line_and_column() {
        let text = include_str!("../../catalog/stripe.yaml").replacen(
            "    records: data\n    primary_key: [id]\n",
            "    records: data\n    primary_kee: [id]\n",
            1,
        );
        let err = load(&text, "stripe.yaml").unwrap_err().to_string();
        assert!(err.starts_with("stripe.yaml:"), "{err}");
        assert!(err.contains("unknown field `primary_kee`"), "{err}");
        let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
        assert_eq!(
            text.lines().nth(line - 1).unwrap().trim(),
            "primary_kee: [id]"
        );
    }

    #[test]
    fn undeclared_placeholder_names_spec_field_and_line() {
        let text = include_str!("../../catalog/stripe.yaml").replace(
            "      path: /charges\n",
            "      path: /charges\n      query:\n        expand: \"{config.nope}\"\n",
        );
        let err = load(&text, "stripe.yaml").unwrap_err();
        let e = &err.0[0];
        assert_eq!(e.spec_id.as_deref(), Some("stripe"));
        assert_eq!(e.field, "streams[1].request.query.expand");
        let line = e.line.unwrap();
        assert!(
            text.lines().nth(line - 1).unwrap().contains("expand:"),
            "line {line}"
        );
        assert!(
            e.message.contains("not a declared connection_config field"),
            "{}",
            e.message
        );
    }
}
