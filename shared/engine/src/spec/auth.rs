//! Auth modes: API key, HTTP Basic, OAuth 2.0 authorization code and client credentials.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FieldSpec;

/// One way to authenticate; a provider lists the ones it supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthMode {
    /// A static key or token placed in a header or query parameter.
    ApiKey(ApiKeyAuth),
    /// HTTP Basic with templated username and password.
    Basic(BasicAuth),
    /// OAuth 2.0 authorization code grant, optionally with PKCE.
    #[serde(rename = "oauth2_authorization_code")]
    OAuth2AuthorizationCode(OAuth2AuthorizationCode),
    /// OAuth 2.0 client credentials grant.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials(OAuth2ClientCredentials),
}

impl AuthMode {
    /// The `type` tag as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthMode::ApiKey(_) => "api_key",
            AuthMode::Basic(_) => "basic",
            AuthMode::OAuth2AuthorizationCode(_) => "oauth2_authorization_code",
            AuthMode::OAuth2ClientCredentials(_) => "oauth2_client_credentials",
        }
    }

    /// The mode's own base URL and the connection configuration value it depends on.
    pub(crate) fn base_parts(&self) -> (Option<&str>, Option<&str>) {
        let (url, when) = match self {
            AuthMode::ApiKey(a) => (&a.base_url, &a.base_url_when),
            AuthMode::Basic(b) => (&b.base_url, &b.base_url_when),
            AuthMode::OAuth2AuthorizationCode(o) => (&o.base_url, &o.base_url_when),
            AuthMode::OAuth2ClientCredentials(o) => (&o.base_url, &o.base_url_when),
        };
        (url.as_deref(), when.as_deref())
    }

    /// The base URL of every connection made with this mode, when the mode sets its own and does
    /// not make it depend on the connection configuration (`base_url_when`); see
    /// [`Self::base_url_for`] for a given connection.
    pub fn base_url(&self) -> Option<&str> {
        match self.base_parts() {
            (Some(url), None) => Some(url),
            _ => None,
        }
    }

    /// The base URL of a connection made with this mode and configuration, when the mode sets its
    /// own: its `base_url`, unless `base_url_when` names a configuration value the connection
    /// lacks (absent or empty). `None` means the spec's base URL.
    pub fn base_url_for(&self, config: &BTreeMap<String, String>) -> Option<&str> {
        match self.base_parts() {
            (Some(url), None) => Some(url),
            (Some(url), Some(name)) if config.get(name).is_some_and(|v| !v.is_empty()) => Some(url),
            _ => None,
        }
    }

    /// Credential fields this mode reads from `{credentials.*}`. OAuth modes yield the token
    /// fields the engine stores after the grant (`access_token`, and `refresh_token` when issued)
    /// plus the ones the spec declares.
    pub fn credential_names(&self) -> Vec<String> {
        match self {
            AuthMode::ApiKey(a) => a.credentials.iter().map(|f| f.name.clone()).collect(),
            AuthMode::Basic(b) => b.credentials.iter().map(|f| f.name.clone()).collect(),
            AuthMode::OAuth2AuthorizationCode(o) => {
                let mut v = vec!["access_token".to_owned(), "refresh_token".to_owned()];
                v.extend(o.extra_credentials.iter().map(|f| f.name.clone()));
                v
            }
            AuthMode::OAuth2ClientCredentials(o) => {
                let mut v = vec![
                    "client_id".to_owned(),
                    "client_secret".to_owned(),
                    "access_token".to_owned(),
                ];
                v.extend(o.extra_credentials.iter().map(|f| f.name.clone()));
                v
            }
        }
    }

    /// Credential fields shown in a form for this mode.
    pub fn credential_fields(&self) -> &[FieldSpec] {
        match self {
            AuthMode::ApiKey(a) => &a.credentials,
            AuthMode::Basic(b) => &b.credentials,
            AuthMode::OAuth2AuthorizationCode(o) => &o.extra_credentials,
            AuthMode::OAuth2ClientCredentials(o) => &o.extra_credentials,
        }
    }
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

/// A static key or token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuth {
    /// Credential fields the user supplies.
    pub credentials: Vec<FieldSpec>,
    /// Header or query parameter.
    #[serde(rename = "in")]
    pub location: ApiKeyLocation,
    /// Header or parameter name (e.g. `Authorization`).
    pub name: String,
    /// Templated value (e.g. `Bearer {credentials.api_key}`).
    pub value: String,
    /// The base URL of connections made with this mode, when it is not the spec's (templated
    /// from connection configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Use `base_url` only for connections whose configuration has this (optional) value, the
    /// spec's base URL otherwise: one mode, two bases (Jira's scoped API tokens, which work only
    /// through `https://api.atlassian.com/ex/jira/{cloud_id}`, chosen by a `cloud_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_when: Option<String>,
}

/// HTTP Basic auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// Credential fields the user supplies.
    pub credentials: Vec<FieldSpec>,
    /// Templated username (e.g. `{credentials.email}/token` for Zendesk).
    pub username: String,
    /// Templated password; may be empty (Stripe sends the key as username).
    #[serde(default)]
    pub password: String,
    /// The base URL of connections made with this mode, when it is not the spec's (templated
    /// from connection configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Use `base_url` only for connections whose configuration has this (optional) value, the
    /// spec's base URL otherwise: one mode, two bases (Jira's scoped API tokens, which work only
    /// through `https://api.atlassian.com/ex/jira/{cloud_id}`, chosen by a `cloud_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_when: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with `client_id:client_secret`.
    ClientSecretBasic,
}

/// Names of the fields in the token endpoint's JSON response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponseFields {
    /// Access token path (default `access_token`).
    #[serde(default = "d_access_token")]
    pub access_token: String,
    /// Refresh token path (default `refresh_token`).
    #[serde(default = "d_refresh_token")]
    pub refresh_token: String,
    /// Lifetime in seconds path (default `expires_in`).
    #[serde(default = "d_expires_in")]
    pub expires_in: String,
    /// Granted scopes path (default `scope`).
    #[serde(default = "d_scope")]
    pub scope: String,
    /// Extra values to keep as connection configuration, by name → response path
    /// (e.g. Salesforce `instance_url`).
    #[serde(default)]
    pub connection_config: BTreeMap<String, String>,
}

fn d_access_token() -> String {
    "access_token".into()
}
fn d_refresh_token() -> String {
    "refresh_token".into()
}
fn d_expires_in() -> String {
    "expires_in".into()
}
fn d_scope() -> String {
    "scope".into()
}

impl Default for TokenResponseFields {
    fn default() -> Self {
        Self {
            access_token: d_access_token(),
            refresh_token: d_refresh_token(),
            expires_in: d_expires_in(),
            scope: d_scope(),
            connection_config: BTreeMap::new(),
        }
    }
}

/// How an obtained token is put on requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyToken {
    /// Header or query parameter.
    #[serde(rename = "in")]
    pub location: ApiKeyLocation,
    /// Header or parameter name.
    pub name: String,
    /// Templated value.
    pub value: String,
}

impl Default for ApplyToken {
    fn default() -> Self {
        Self {
            location: ApiKeyLocation::Header,
            name: "Authorization".into(),
            value: "Bearer {credentials.access_token}".into(),
        }
    }
}

/// How a token request's body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEncoding {
    /// `application/x-www-form-urlencoded` (RFC 6749).
    #[default]
    Form,
    /// `application/json`.
    Json,
}

/// OAuth 2.0 authorization code grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2AuthorizationCode {
    /// Authorization endpoint (templated from connection configuration).
    pub authorization_url: String,
    /// Token endpoint (templated from connection configuration).
    pub token_url: String,
    /// Whether to send a PKCE S256 challenge.
    #[serde(default)]
    pub pkce: bool,
    /// Default scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Separator between scopes (default a space; some providers use `,`).
    #[serde(default = "d_space")]
    pub scope_separator: String,
    /// Name of the scope parameter (default `scope`; Slack uses `user_scope` for user tokens).
    #[serde(default = "d_scope")]
    pub scope_param: String,
    /// Client authentication at the token endpoint.
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// Extra parameters on the authorization URL (e.g. `access_type: offline`).
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Extra parameters on token requests.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// How token requests are encoded (default `form`, RFC 6749; Notion takes `json`).
    #[serde(default)]
    pub token_body: TokenEncoding,
    /// Extra headers on token requests (for example a version header).
    #[serde(default)]
    pub token_headers: BTreeMap<String, String>,
    /// Where fields are in the token response.
    #[serde(default)]
    pub token_response: TokenResponseFields,
    /// Whether each refresh returns a new refresh token and revokes the old one
    /// (Salesforce, Xero): the refresher must store it atomically and never reuse the old one.
    #[serde(default)]
    pub refresh_token_rotates: bool,
    /// Whether the provider issues refresh tokens at all.
    #[serde(default = "super::default_true")]
    pub refreshable: bool,
    /// Refresh this many seconds before expiry (default 900).
    #[serde(default = "d_margin")]
    pub refresh_margin_seconds: u64,
    /// How the access token is put on requests (default `Authorization: Bearer …`).
    #[serde(default)]
    pub apply: ApplyToken,
    /// Extra credential fields kept with the token.
    #[serde(default)]
    pub extra_credentials: Vec<FieldSpec>,
    /// Requests sent with the new access token after the code exchange, whose answers add
    /// connection configuration (Mailchimp's data center from its metadata endpoint, Jira's cloud
    /// id from its accessible resources). The end user is not asked for what they provide.
    #[serde(default)]
    pub config_requests: Vec<ConfigRequest>,
    /// The base URL of connections made with this mode, when it is not the spec's (Jira's OAuth
    /// tokens work only through `https://api.atlassian.com/ex/jira/{config.cloud_id}`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Use `base_url` only for connections whose configuration has this (optional) value, the
    /// spec's base URL otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_when: Option<String>,
    /// How a token is revoked at the provider when its connection is deleted.
    #[serde(default)]
    pub revoke: Option<Revoke>,
}

impl OAuth2AuthorizationCode {
    /// Connection configuration this mode obtains itself (from the token response and the
    /// config requests), which the end user is not asked for.
    pub fn obtained_config(&self) -> impl Iterator<Item = &str> {
        self.token_response
            .connection_config
            .keys()
            .chain(self.config_requests.iter().flat_map(|r| r.config.keys()))
            .map(String::as_str)
    }
}

/// A GET sent with a new access token whose JSON answer adds connection configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// The URL (templated from connection configuration).
    pub url: String,
    /// Headers, templated from the connection configuration and `{credentials.access_token}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When the answer is an array: the element to read is the one whose value at `path` equals
    /// `equals` (templated from connection configuration); without it, the answer itself is read.
    #[serde(default)]
    pub pick: Option<Pick>,
    /// Connection configuration to set: name → path in the answer (or the picked element).
    pub config: BTreeMap<String, String>,
}

/// Which element of an array answer a [`ConfigRequest`] reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    /// The path in each element.
    pub path: String,
    /// The value it must have (templated from connection configuration).
    pub equals: String,
}

/// Token revocation at the provider (RFC 7009 or the provider's own endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// The endpoint (templated from connection configuration).
    pub url: String,
    /// The HTTP method (default POST).
    #[serde(default = "d_post")]
    pub method: String,
    /// Which token is revoked (default the refresh token, which providers revoke with the access
    /// tokens issued from it; the access token when the connection has none).
    #[serde(default)]
    pub token: RevokedToken,
    /// How the token is sent.
    #[serde(default)]
    pub send: RevokeStyle,
    /// How the client authenticates (default not at all).
    #[serde(default)]
    pub client_auth: RevokeClientAuth,
}

fn d_post() -> String {
    "POST".into()
}

/// Which token a revocation names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokedToken {
    /// The refresh token (or the access token without one).
    #[default]
    RefreshToken,
    /// The access token.
    AccessToken,
}

/// How a revocation sends the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokeStyle {
    /// A form body `token=…&token_type_hint=…` (RFC 7009).
    #[default]
    Form,
    /// `Authorization: Bearer <token>`, no body (Slack's `auth.revoke`, Zendesk's
    /// `DELETE /oauth/tokens/current`).
    Bearer,
}

/// How a revocation authenticates the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokeClientAuth {
    /// Not at all (the token is enough: Salesforce, Google).
    #[default]
    None,
    /// HTTP Basic with `client_id:client_secret` (Pipedrive).
    Basic,
    /// `client_id` and `client_secret` in the form body (Asana).
    Post,
}

/// OAuth 2.0 client credentials grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2ClientCredentials {
    /// Token endpoint (templated from connection configuration).
    pub token_url: String,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Separator between scopes.
    #[serde(default = "d_space")]
    pub scope_separator: String,
    /// Client authentication at the token endpoint.
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// Extra parameters on token requests (e.g. `audience`).
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// How token requests are encoded (default `form`).
    #[serde(default)]
    pub token_body: TokenEncoding,
    /// Extra headers on token requests.
    #[serde(default)]
    pub token_headers: BTreeMap<String, String>,
    /// Where fields are in the token response.
    #[serde(default)]
    pub token_response: TokenResponseFields,
    /// How the access token is put on requests.
    #[serde(default)]
    pub apply: ApplyToken,
    /// Extra credential fields.
    #[serde(default)]
    pub extra_credentials: Vec<FieldSpec>,
    /// The base URL of connections made with this mode, when it is not the spec's (templated
    /// from connection configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Use `base_url` only for connections whose configuration has this (optional) value, the
    /// spec's base URL otherwise: one mode, two bases (Jira's scoped API tokens, which work only
    /// through `https://api.atlassian.com/ex/jira/{cloud_id}`, chosen by a `cloud_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_when: Option<String>,
}

fn d_space() -> String {
    " ".into()
}
fn d_margin() -> u64 {
    900
}
