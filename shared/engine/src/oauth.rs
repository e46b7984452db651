//! OAuth 2.0 as a provider spec describes it (RFC 6749, RFC 7636): the authorization URL (scopes with
//! the spec's separator and parameter name, extra parameters, PKCE S256), token requests for the
//! authorization-code, refresh and client-credentials grants (`client_secret_post` or
//! `client_secret_basic`, form or JSON bodies, extra headers), and reading the token response by the
//! spec's paths, values kept as connection configuration included (Salesforce `instance_url`).
//!
//! Nothing here decides when to refresh or stores anything: the caller holds the single-flight lease
//! and the vault. Secrets stay in [`SecretString`]s, token requests are never repeated once sent (an
//! authorization code is single-use and a rotating refresh token may already have been spent), and
//! errors carry the provider's OAuth error code, never a token.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::utf8_percent_encode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tributary_http::{Classifier, Classify, Failure, HttpClient, HttpError, OutRequest};
use url::Url;

use crate::connection::{SEGMENT, form_encode};
use crate::selector::Selector;
use crate::spec::{
    ConfigRequest, FieldSpec, OAuth2AuthorizationCode, OAuth2ClientCredentials, Revoke,
    RevokeClientAuth, RevokeStyle, RevokedToken, TokenAuthMethod, TokenEncoding,
    TokenResponseFields,
};
use crate::template::{Context, Template};

/// The longest provider error description kept.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// Why an OAuth step failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A PKCE code verifier outside RFC 7636's 43–128 unreserved characters.
    #[error("PKCE code verifier: {0}")]
    Verifier(&'static str),
    /// The spec asks for PKCE and the caller gave none.
    #[error("this provider requires PKCE and no code verifier was given")]
    PkceRequired,
    /// An endpoint template did not render to a URL.
    #[error("`{field}`: {message}")]
    Endpoint {
        /// The spec field.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The provider refused the grant (`invalid_grant`, `invalid_client`, …).
    #[error("the provider refused the grant: `{code}`{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The OAuth error code.
        code: String,
        /// The provider's description, shortened.
        description: Option<String>,
        /// The HTTP status (200 for providers that answer errors with 200).
        status: u16,
    },
    /// The token response lacked a value the spec names, or was not JSON.
    #[error("token response: {0}")]
    Response(String),
    /// The request failed before the provider judged the grant (network, 5xx, rate limit, egress).
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl OAuthError {
    /// Whether retrying cannot help: the user must authorize again (or the integration's client
    /// credentials are wrong). A connection whose refresh fails this way needs reauthorization.
    pub fn is_definitive(&self) -> bool {
        match self {
            OAuthError::Refused { code, .. } => matches!(
                code.as_str(),
                "invalid_grant"
                    | "invalid_client"
                    | "unauthorized_client"
                    | "unsupported_grant_type"
                    | "invalid_scope"
                    | "access_denied"
            ),
            OAuthError::Verifier(_)
            | OAuthError::PkceRequired
            | OAuthError::Endpoint { .. }
            | OAuthError::Response(_) => true,
            OAuthError::Http(e) => !e.is_retryable(),
        }
    }
}

/// A PKCE code verifier (RFC 7636), kept secret; its S256 challenge goes on the authorization URL
/// and the verifier on the code exchange.
pub struct Pkce {
    verifier: SecretString,
}

impl Pkce {
    /// The verifier of 32 random octets (base64url without padding: 43 characters), as RFC 7636
    /// section 4.1 recommends. The caller draws the octets from a CSPRNG.
    pub fn from_random(octets: &[u8; 32]) -> Self {
        Self {
            verifier: SecretString::from(URL_SAFE_NO_PAD.encode(octets)),
        }
    }

    /// A verifier kept from the start of the flow.
    pub fn from_verifier(verifier: &str) -> Result<Self, OAuthError> {
        if !(43..=128).contains(&verifier.len()) {
            return Err(OAuthError::Verifier("it must be 43 to 128 characters long"));
        }
        if !verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(OAuthError::Verifier(
                "it may hold only letters, digits and `-._~`",
            ));
        }
        Ok(Self {
            verifier: SecretString::from(verifier.to_owned()),
        })
    }

    /// The verifier.
    pub fn verifier(&self) -> &SecretString {
        &self.verifier
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.expose_secret().as_bytes()))
    }
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkce(<redacted>)")
    }
}

/// An integration's OAuth client at the provider.
pub struct ClientApp {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: SecretString,
}

impl fmt::Debug for ClientApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientApp")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The credential fields a connection made with the client-credentials grant is given: the end
/// user's own app (`client_id`, `client_secret`), then the mode's `extra_credentials`. The access
/// token is obtained, never given.
pub fn client_credentials_fields(mode: &OAuth2ClientCredentials) -> Vec<FieldSpec> {
    let field = |name: &str, label: &str, description: &str, secret| FieldSpec {
        name: name.to_owned(),
        label: label.to_owned(),
        description: Some(description.to_owned()),
        required: true,
        secret,
        pattern: None,
        default: None,
    };
    let mut fields = vec![
        field(
            "client_id",
            "Client ID",
            "The client ID of your app at the provider.",
            false,
        ),
        field(
            "client_secret",
            "Client secret",
            "The client secret of the same app.",
            true,
        ),
    ];
    fields.extend(mode.extra_credentials.iter().cloned());
    fields
}

/// What the authorization URL carries besides the spec's settings.
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    /// The integration's client id.
    pub client_id: &'a str,
    /// Where the provider sends the user back (registered with the provider).
    pub redirect_uri: &'a Url,
    /// The single-use `state` bound to the connect session.
    pub state: &'a str,
    /// Scopes to ask for; the spec's defaults when `None`.
    pub scopes: Option<&'a [String]>,
    /// The PKCE verifier, whose challenge is sent; required when the spec sets `pkce`.
    pub pkce: Option<&'a Pkce>,
}

/// The URL to send the user to: the spec's `authorization_url` (rendered with the connection
/// configuration, whose values cannot change its host or path structure) with `response_type`,
/// `client_id`, `redirect_uri`, the scopes, `state`, the PKCE challenge and the spec's
/// `authorization_params`.
pub fn authorization_url(
    spec: &OAuth2AuthorizationCode,
    config: &BTreeMap<String, String>,
    req: &AuthorizationRequest<'_>,
) -> Result<Url, OAuthError> {
    if spec.pkce && req.pkce.is_none() {
        return Err(OAuthError::PkceRequired);
    }
    let mut url = render_endpoint("authorization_url", &spec.authorization_url, config)?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("response_type", "code");
        query.append_pair("client_id", req.client_id);
        query.append_pair("redirect_uri", req.redirect_uri.as_str());
        let scopes = req.scopes.unwrap_or(&spec.scopes);
        if !scopes.is_empty() {
            query.append_pair(&spec.scope_param, &scopes.join(&spec.scope_separator));
        }
        query.append_pair("state", req.state);
        if let Some(pkce) = req.pkce {
            query.append_pair("code_challenge", &pkce.challenge());
            query.append_pair("code_challenge_method", "S256");
        }
        for (name, value) in &spec.authorization_params {
            query.append_pair(name, value);
        }
    }
    Ok(url)
}

/// How a token request body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenBody {
    /// `application/x-www-form-urlencoded` (RFC 6749).
    #[default]
    Form,
    /// `application/json` (Notion, some others).
    Json,
}

/// A token endpoint as the spec describes it.
#[derive(Debug, Clone, Copy)]
pub struct TokenEndpoint<'a> {
    /// The `token_url` template.
    pub url: &'a str,
    /// How the client authenticates.
    pub auth_method: TokenAuthMethod,
    /// Extra body parameters.
    pub params: &'a BTreeMap<String, String>,
    /// The scope separator.
    pub scope_separator: &'a str,
    /// The body encoding.
    pub body: TokenBody,
    /// Extra headers (for example `Notion-Version`).
    pub headers: &'a BTreeMap<String, String>,
}

impl From<TokenEncoding> for TokenBody {
    fn from(encoding: TokenEncoding) -> Self {
        match encoding {
            TokenEncoding::Form => TokenBody::Form,
            TokenEncoding::Json => TokenBody::Json,
        }
    }
}

impl<'a> From<&'a OAuth2AuthorizationCode> for TokenEndpoint<'a> {
    fn from(spec: &'a OAuth2AuthorizationCode) -> Self {
        Self {
            url: &spec.token_url,
            auth_method: spec.token_auth_method,
            params: &spec.token_params,
            scope_separator: &spec.scope_separator,
            body: spec.token_body.into(),
            headers: &spec.token_headers,
        }
    }
}

impl<'a> From<&'a OAuth2ClientCredentials> for TokenEndpoint<'a> {
    fn from(spec: &'a OAuth2ClientCredentials) -> Self {
        Self {
            url: &spec.token_url,
            auth_method: spec.token_auth_method,
            params: &spec.token_params,
            scope_separator: &spec.scope_separator,
            body: spec.token_body.into(),
            headers: &spec.token_headers,
        }
    }
}

/// The grant a token request asks for.
#[derive(Debug)]
pub enum Grant<'a> {
    /// The code the provider sent back, with the redirect URI and verifier of the same flow.
    AuthorizationCode {
        /// The code.
        code: &'a SecretString,
        /// The redirect URI the authorization URL carried.
        redirect_uri: &'a Url,
        /// The flow's PKCE verifier.
        pkce: Option<&'a Pkce>,
    },
    /// A refresh.
    RefreshToken {
        /// The stored refresh token.
        refresh_token: &'a SecretString,
    },
    /// The client-credentials grant.
    ClientCredentials {
        /// Scopes to ask for.
        scopes: &'a [String],
    },
}

/// The token request for `grant`: a POST, never retried once sent.
pub fn token_request(
    endpoint: &TokenEndpoint<'_>,
    config: &BTreeMap<String, String>,
    app: &ClientApp,
    grant: &Grant<'_>,
) -> Result<OutRequest, OAuthError> {
    let url = render_endpoint("token_url", endpoint.url, config)?;
    let mut fields = Map::new();
    let mut put = |name: &str, value: &str| {
        fields.insert(name.to_owned(), Value::String(value.to_owned()));
    };
    match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            pkce,
        } => {
            put("grant_type", "authorization_code");
            put("code", code.expose_secret());
            put("redirect_uri", redirect_uri.as_str());
            if let Some(pkce) = pkce {
                put("code_verifier", pkce.verifier().expose_secret());
            }
        }
        Grant::RefreshToken { refresh_token } => {
            put("grant_type", "refresh_token");
            put("refresh_token", refresh_token.expose_secret());
        }
        Grant::ClientCredentials { scopes } => {
            put("grant_type", "client_credentials");
            if !scopes.is_empty() {
                put("scope", &scopes.join(endpoint.scope_separator));
            }
        }
    }
    for (name, value) in endpoint.params {
        put(name, value);
    }
    let mut auth = tributary_http::AuthParts::default();
    match endpoint.auth_method {
        TokenAuthMethod::ClientSecretPost => {
            put("client_id", &app.client_id);
            put("client_secret", app.client_secret.expose_secret());
        }
        TokenAuthMethod::ClientSecretBasic => {
            // RFC 6749 section 2.3.1: each part form-urlencoded before the Basic encoding.
            let id = form_component(&app.client_id);
            let secret = form_component(app.client_secret.expose_secret());
            let mut value = HeaderValue::try_from(format!(
                "Basic {}",
                STANDARD.encode(format!("{id}:{secret}"))
            ))
            .map_err(|_| OAuthError::Response("client credentials are not header-safe".into()))?;
            value.set_sensitive(true);
            auth.headers.insert(AUTHORIZATION, value);
        }
    }
    let fields = Value::Object(fields);
    let (content_type, body) = match endpoint.body {
        TokenBody::Form => (
            "application/x-www-form-urlencoded",
            Bytes::from(form_encode(&fields)),
        ),
        TokenBody::Json => ("application/json", Bytes::from(fields.to_string())),
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // GitHub answers form-encoded unless asked for JSON.
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    for (name, value) in endpoint.headers {
        let name = HeaderName::try_from(name.as_str()).map_err(|e| OAuthError::Endpoint {
            field: "token_headers",
            message: format!("`{name}`: {e}"),
        })?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|e| OAuthError::Endpoint {
            field: "token_headers",
            message: format!("`{name}`: {e}"),
        })?;
        headers.insert(name, value);
    }
    let mut request = OutRequest::new(Method::POST, url);
    request.headers = headers;
    request.auth = auth;
    request.body = Some(body);
    request.idempotent = false;
    Ok(request)
}

/// Tokens read from a token response.
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when the response carried one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires, when the response said.
    pub expires_at: Option<OffsetDateTime>,
    /// The granted scopes, when the response said.
    pub scope: Option<String>,
    /// Values the spec keeps as connection configuration.
    pub connection_config: BTreeMap<String, String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("connection_config", &self.connection_config)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// After a refresh: a response without a refresh token leaves the stored one in force
    /// (Salesforce without rotation, Google), so it is kept; a new one replaces it.
    pub fn keeping_refresh_token(mut self, stored: Option<&SecretString>) -> Self {
        if self.refresh_token.is_none() {
            self.refresh_token = stored.cloned();
        }
        self
    }
}

/// Reads a successful token response by the spec's paths. `now` dates `expires_in`.
pub fn read_token_response(
    fields: &TokenResponseFields,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<TokenSet, OAuthError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| OAuthError::Response("the body is not JSON".into()))?;
    // Some providers answer a refused grant with 200 (GitHub's `error`, Slack's `ok: false`).
    if let Some(refused) = refusal(&json, StatusCode::OK) {
        return Err(refused);
    }
    let text = |field: &str, path: &str| -> Result<Option<String>, OAuthError> {
        let selector = Selector::parse(path)
            .map_err(|e| OAuthError::Response(format!("the path of `{field}`: {e}")))?;
        Ok(selector.get_text(&json))
    };
    let access_token = text("access_token", &fields.access_token)?.ok_or_else(|| {
        OAuthError::Response(format!("no access token at `{}`", fields.access_token))
    })?;
    let refresh_token = text("refresh_token", &fields.refresh_token)?.map(SecretString::from);
    let expires_at = match text("expires_in", &fields.expires_in)? {
        None => None,
        Some(seconds) => {
            let seconds: f64 = seconds.parse().map_err(|_| {
                OAuthError::Response(format!(
                    "`{}` is not a number of seconds",
                    fields.expires_in
                ))
            })?;
            if !(0.0..=1e10).contains(&seconds) {
                return Err(OAuthError::Response(format!(
                    "`{}` is out of range",
                    fields.expires_in
                )));
            }
            Some(now + time::Duration::seconds_f64(seconds))
        }
    };
    let scope = text("scope", &fields.scope)?;
    let mut connection_config = BTreeMap::new();
    for (name, path) in &fields.connection_config {
        let value = text(name, path)?.ok_or_else(|| {
            OAuthError::Response(format!(
                "no `{name}` at `{path}` (kept as connection configuration)"
            ))
        })?;
        connection_config.insert(name.clone(), value);
    }
    Ok(TokenSet {
        access_token: SecretString::from(access_token),
        refresh_token,
        expires_at,
        scope,
        connection_config,
    })
}

/// Sends a token request and reads the answer: the provider's refusals (an OAuth error object, on
/// 400 or 401 or on 200) become [`OAuthError::Refused`]; other failures are the HTTP client's.
pub async fn request_token(
    http: &HttpClient,
    request: &OutRequest,
    fields: &TokenResponseFields,
    now: OffsetDateTime,
) -> Result<TokenSet, OAuthError> {
    let response = http.send_with(request, &TokenClassifier).await?;
    if !response.status.is_success() {
        let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        return Err(
            refusal(&json, response.status).unwrap_or_else(|| OAuthError::Refused {
                code: "invalid_request".into(),
                description: None,
                status: response.status.as_u16(),
            }),
        );
    }
    read_token_response(fields, &response.body, now)
}

/// Lets an OAuth error object on 400 or 401 through to be read; judges everything else as the
/// default classifier does.
struct TokenClassifier;

impl Classify for TokenClassifier {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
        if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
            && serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|json| refusal(&json, status))
                .is_some()
        {
            return None;
        }
        Classifier::default().classify(status, headers, body)
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<std::time::Duration> {
        Classifier::default().retry_after(headers)
    }
}

/// The refusal an OAuth error object (`{"error": …}`, or Slack's `{"ok": false, "error": …}`)
/// describes.
fn refusal(json: &Value, status: StatusCode) -> Option<OAuthError> {
    let code = json.get("error")?.as_str()?;
    if json.get("ok").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| d.chars().take(MAX_DESCRIPTION_CHARS).collect());
    Some(OAuthError::Refused {
        code: code.chars().take(64).collect(),
        description,
        status: status.as_u16(),
    })
}

/// Renders an endpoint template with the connection configuration; values are percent-encoded so
/// that they cannot change the host or path structure, unless the template is a sole value (a whole
/// URL the deployment configured).
fn render_endpoint(
    field: &'static str,
    template: &str,
    config: &BTreeMap<String, String>,
) -> Result<Url, OAuthError> {
    let endpoint = |message: String| OAuthError::Endpoint { field, message };
    let parsed = Template::parse(template).map_err(|e| endpoint(e.to_string()))?;
    let ctx = Context {
        config: Some(config),
        ..Context::default()
    };
    let raw = if template.starts_with('{') {
        parsed.render(&ctx)
    } else {
        parsed.render_with(&ctx, |v, out| out.extend(utf8_percent_encode(v, SEGMENT)))
    }
    .map_err(|e| endpoint(e.to_string()))?;
    Url::parse(&raw).map_err(|e| endpoint(format!("`{raw}`: {e}")))
}

/// The largest answer a config request reads.
const MAX_CONFIG_ANSWER_BYTES: usize = 256 * 1024;

/// Sends a mode's config requests with a new access token (in order, each seeing the configuration
/// the ones before it added) and returns the configuration they add.
pub async fn obtain_config(
    http: &HttpClient,
    requests: &[ConfigRequest],
    config: &BTreeMap<String, String>,
    access_token: &SecretString,
) -> Result<BTreeMap<String, String>, OAuthError> {
    let mut known = config.clone();
    let mut added = BTreeMap::new();
    let credentials = BTreeMap::from([("access_token".to_owned(), access_token.clone())]);
    for request in requests {
        let url = render_endpoint("config_requests.url", &request.url, &known)?;
        let ctx = Context {
            config: Some(&known),
            credentials: Some(&credentials),
            ..Context::default()
        };
        let mut out = OutRequest::new(Method::GET, url);
        out.headers
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, template) in &request.headers {
            let endpoint = |message: String| OAuthError::Endpoint {
                field: "config_requests.headers",
                message,
            };
            let value = Template::parse(template)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| endpoint(e.to_string()))?;
            let name = HeaderName::try_from(name.as_str())
                .map_err(|e| endpoint(format!("`{name}`: {e}")))?;
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| endpoint(format!("`{name}` is not header-safe")))?;
            value.set_sensitive(true);
            // Credentials travel in the auth parts, which the client never logs.
            out.auth.headers.insert(name, value);
        }
        let response = http.send(&out).await?;
        if response.body.len() > MAX_CONFIG_ANSWER_BYTES {
            return Err(OAuthError::Response(
                "the config answer is too large".into(),
            ));
        }
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|_| OAuthError::Response("the config answer is not JSON".into()))?;
        let element = match &request.pick {
            None => &answer,
            Some(pick) => {
                let wanted = Template::parse(&pick.equals)
                    .and_then(|t| t.render(&ctx))
                    .map_err(|e| OAuthError::Endpoint {
                        field: "config_requests.pick.equals",
                        message: e.to_string(),
                    })?;
                let path = selector("config_requests.pick.path", &pick.path)?;
                answer
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .find(|item| path.get_text(item).as_deref() == Some(wanted.as_str()))
                    })
                    .ok_or_else(|| {
                        OAuthError::Response(format!(
                            "no element of the config answer has `{}` = `{wanted}`",
                            pick.path
                        ))
                    })?
            }
        };
        for (name, path) in &request.config {
            let value = selector("config_requests.config", path)?
                .get_text(element)
                .ok_or_else(|| {
                    OAuthError::Response(format!("the config answer has no `{path}`"))
                })?;
            known.insert(name.clone(), value.clone());
            added.insert(name.clone(), value);
        }
    }
    Ok(added)
}

fn selector(field: &'static str, path: &str) -> Result<Selector, OAuthError> {
    Selector::parse(path).map_err(|e| OAuthError::Endpoint {
        field,
        message: e.0,
    })
}

/// The revocation request of a connection's token: the refresh token (or the access token) as the
/// spec's `revoke` sends it, with the client's credentials where it asks for them. `credentials`
/// are the connection's (`access_token`, `refresh_token`).
pub fn revoke_request(
    revoke: &Revoke,
    config: &BTreeMap<String, String>,
    app: Option<&ClientApp>,
    credentials: &BTreeMap<String, SecretString>,
) -> Result<OutRequest, OAuthError> {
    let client =
        || app.ok_or_else(|| OAuthError::Response("the revocation needs the OAuth client".into()));
    let url = render_endpoint("revoke.url", &revoke.url, config)?;
    let method =
        Method::from_bytes(revoke.method.as_bytes()).map_err(|_| OAuthError::Endpoint {
            field: "revoke.method",
            message: format!("`{}` is not a method", revoke.method),
        })?;
    let (kind, token) = match revoke.token {
        RevokedToken::RefreshToken => credentials
            .get("refresh_token")
            .map(|t| ("refresh_token", t))
            .or_else(|| credentials.get("access_token").map(|t| ("access_token", t))),
        RevokedToken::AccessToken => credentials.get("access_token").map(|t| ("access_token", t)),
    }
    .ok_or_else(|| OAuthError::Response("the connection holds no token to revoke".into()))?;
    let mut request = OutRequest::new(method, url);
    let sensitive = |text: String| {
        HeaderValue::try_from(text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| OAuthError::Response("a credential is not header-safe".into()))
    };
    let mut form = Map::new();
    match revoke.send {
        RevokeStyle::Form => {
            form.insert(
                "token".into(),
                Value::String(token.expose_secret().to_owned()),
            );
            form.insert("token_type_hint".into(), Value::String(kind.to_owned()));
        }
        RevokeStyle::Bearer => {
            request.auth.headers.insert(
                AUTHORIZATION,
                sensitive(format!("Bearer {}", token.expose_secret()))?,
            );
        }
    }
    match revoke.client_auth {
        RevokeClientAuth::None => {}
        RevokeClientAuth::Post => {
            let app = client()?;
            form.insert("client_id".into(), Value::String(app.client_id.clone()));
            form.insert(
                "client_secret".into(),
                Value::String(app.client_secret.expose_secret().to_owned()),
            );
        }
        RevokeClientAuth::Basic => {
            let app = client()?;
            let id = form_component(&app.client_id);
            let secret = form_component(app.client_secret.expose_secret());
            request.auth.headers.insert(
                AUTHORIZATION,
                sensitive(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{id}:{secret}"))
                ))?,
            );
        }
    }
    if !form.is_empty() {
        request.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        request.body = Some(Bytes::from(form_encode(&Value::Object(form))));
    }
    request
        .headers
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    // A revocation is safe to repeat (RFC 7009: an invalid token is answered 200 too).
    request.idempotent = true;
    Ok(request)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_component(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_spec() -> OAuth2AuthorizationCode {
        serde_norway::from_str(
            r#"
authorization_url: "https://{config.subdomain}.example.com/oauth/authorize?audience=api"
token_url: "https://{config.subdomain}.example.com/oauth/token"
pkce: true
scopes: [read, write]
scope_separator: ","
scope_param: user_scope
authorization_params: { access_type: offline, prompt: consent }
token_params: { audience: api }
token_response:
  access_token: authed_user.access_token
  connection_config: { instance_url: instance_url }
"#,
        )
        .unwrap()
    }

    fn config(subdomain: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("subdomain".to_owned(), subdomain.to_owned())])
    }

    fn app() -> ClientApp {
        ClientApp {
            client_id: "client id/1".into(),
            client_secret: SecretString::from("s3cr:t+".to_owned()),
        }
    }

    /// RFC 7636 Appendix B.
    #[test]
    fn pkce_matches_the_rfc_7636_appendix_b_vector() {
        let octets = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let pkce = Pkce::from_random(&octets);
        assert_eq!(
            pkce.verifier().expose_secret(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let kept = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(kept.challenge(), pkce.challenge());
        assert_eq!(format!("{kept:?}"), "Pkce(<redacted>)");
    }

    #[test]
    fn verifiers_outside_rfc_7636_are_refused() {
        for bad in ["short", &"a".repeat(129), &format!("{}+", "a".repeat(43))] {
            assert!(
                matches!(Pkce::from_verifier(bad), Err(OAuthError::Verifier(_))),
                "{bad}"
            );
        }
        assert!(Pkce::from_verifier(&"a-._~".repeat(9)).is_ok());
    }

    #[test]
    fn the_authorization_url_carries_what_the_spec_and_the_flow_say() {
        let spec = code_spec();
        let pkce = Pkce::from_random(&[7; 32]);
        let redirect = Url::parse("https://tributary.example/connect/callback").unwrap();
        let url = authorization_url(
            &spec,
            &config("acme"),
            &AuthorizationRequest {
                client_id: "cid",
                redirect_uri: &redirect,
                state: "st4te",
                scopes: None,
                pkce: Some(&pkce),
            },
        )
        .unwrap();
        assert_eq!(url.host_str(), Some("acme.example.com"));
        assert_eq!(url.path(), "/oauth/authorize");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            query
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("audience"),
            Some("api"),
            "the template's own query is kept"
        );
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("client_id"), Some("cid"));
        assert_eq!(get("redirect_uri"), Some(redirect.as_str()));
        assert_eq!(get("user_scope"), Some("read,write"));
        assert_eq!(get("scope"), None);
        assert_eq!(get("state"), Some("st4te"));
        assert_eq!(get("code_challenge"), Some(pkce.challenge().as_str()));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("access_type"), Some("offline"));
        assert_eq!(get("prompt"), Some("consent"));

        let asked = ["files:read".to_owned()];
        let url = authorization_url(
            &spec,
            &config("acme"),
            &AuthorizationRequest {
                client_id: "cid",
                redirect_uri: &redirect,
                state: "s",
                scopes: Some(&asked),
                pkce: Some(&pkce),
            },
        )
        .unwrap();
        assert!(
            url.query_pairs()
                .any(|(k, v)| k == "user_scope" && v == "files:read")
        );
    }

    #[test]
    fn configuration_cannot_move_the_authorization_host_and_pkce_is_required_when_declared() {
        let spec = code_spec();
        let redirect = Url::parse("https://tributary.example/cb").unwrap();
        let pkce = Pkce::from_random(&[1; 32]);
        let req = |pkce| AuthorizationRequest {
            client_id: "cid",
            redirect_uri: &redirect,
            state: "s",
            scopes: None,
            pkce,
        };
        // Escaped, the value is no longer a host name: refused rather than sent elsewhere.
        for evil in ["evil.com/x?", "evil.com#", "a@evil.com"] {
            assert!(
                matches!(
                    authorization_url(&spec, &config(evil), &req(Some(&pkce))),
                    Err(OAuthError::Endpoint {
                        field: "authorization_url",
                        ..
                    })
                ),
                "{evil}"
            );
        }
        assert!(matches!(
            authorization_url(&spec, &config("acme"), &req(None)),
            Err(OAuthError::PkceRequired)
        ));
    }

    fn body_fields(request: &OutRequest) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(request.body.as_ref().unwrap())
            .into_owned()
            .collect()
    }

    #[test]
    fn a_code_exchange_posts_the_code_verifier_and_client_secret_once() {
        let spec = code_spec();
        let pkce = Pkce::from_random(&[9; 32]);
        let redirect = Url::parse("https://tributary.example/cb").unwrap();
        let code = SecretString::from("c0de".to_owned());
        let request = token_request(
            &TokenEndpoint::from(&spec),
            &config("acme"),
            &app(),
            &Grant::AuthorizationCode {
                code: &code,
                redirect_uri: &redirect,
                pkce: Some(&pkce),
            },
        )
        .unwrap();
        assert_eq!(request.method, Method::POST);
        assert!(!request.idempotent, "a code is single-use: never resent");
        assert_eq!(request.url.as_str(), "https://acme.example.com/oauth/token");
        assert_eq!(
            request.headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(request.headers[ACCEPT], "application/json");
        let fields = body_fields(&request);
        assert_eq!(fields["grant_type"], "authorization_code");
        assert_eq!(fields["code"], "c0de");
        assert_eq!(fields["redirect_uri"], redirect.as_str());
        assert_eq!(fields["code_verifier"], pkce.verifier().expose_secret());
        assert_eq!(fields["audience"], "api");
        assert_eq!(fields["client_id"], "client id/1");
        assert_eq!(fields["client_secret"], "s3cr:t+");
        assert!(request.auth.headers.is_empty());
    }

    #[test]
    fn client_secret_basic_encodes_the_client_as_rfc_6749_says() {
        let mut spec = code_spec();
        spec.token_auth_method = TokenAuthMethod::ClientSecretBasic;
        let refresh = SecretString::from("r1".to_owned());
        let request = token_request(
            &TokenEndpoint::from(&spec),
            &config("acme"),
            &app(),
            &Grant::RefreshToken {
                refresh_token: &refresh,
            },
        )
        .unwrap();
        let header = &request.auth.headers[AUTHORIZATION];
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "client+id%2F1:s3cr%3At%2B");
        let fields = body_fields(&request);
        assert_eq!(fields["grant_type"], "refresh_token");
        assert_eq!(fields["refresh_token"], "r1");
        assert!(!fields.contains_key("client_secret"));
        assert!(!fields.contains_key("client_id"));
    }

    #[test]
    fn json_bodies_and_extra_headers_are_sent_as_declared() {
        let spec = code_spec();
        let headers = BTreeMap::from([("Notion-Version".to_owned(), "2022-06-28".to_owned())]);
        let endpoint = TokenEndpoint {
            body: TokenBody::Json,
            headers: &headers,
            auth_method: TokenAuthMethod::ClientSecretBasic,
            ..TokenEndpoint::from(&spec)
        };
        let scopes = ["a".to_owned(), "b".to_owned()];
        let request = token_request(
            &endpoint,
            &config("acme"),
            &app(),
            &Grant::ClientCredentials { scopes: &scopes },
        )
        .unwrap();
        assert_eq!(request.headers[CONTENT_TYPE], "application/json");
        assert_eq!(request.headers["notion-version"], "2022-06-28");
        let body: Value = serde_json::from_slice(request.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["grant_type"], "client_credentials");
        assert_eq!(body["scope"], "a,b");
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_token_response_is_read_by_the_spec_paths() {
        let spec = code_spec();
        let body = br#"{"ok":true,"authed_user":{"access_token":"xoxp-1"},"refresh_token":"r2",
            "expires_in":"3600","scope":"read","instance_url":"https://na1.example.com"}"#;
        let tokens = read_token_response(&spec.token_response, body, now()).unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "xoxp-1");
        assert_eq!(tokens.refresh_token.as_ref().unwrap().expose_secret(), "r2");
        assert_eq!(tokens.expires_at, Some(now() + time::Duration::hours(1)));
        assert_eq!(tokens.scope.as_deref(), Some("read"));
        assert_eq!(
            tokens.connection_config["instance_url"],
            "https://na1.example.com"
        );
        assert!(!format!("{tokens:?}").contains("xoxp-1"));
        assert!(!format!("{tokens:?}").contains("r2"));
    }

    #[test]
    fn a_refresh_without_a_refresh_token_keeps_the_stored_one() {
        let fields = TokenResponseFields::default();
        let stored = SecretString::from("old".to_owned());
        let tokens =
            read_token_response(&fields, br#"{"access_token":"a","expires_in":60}"#, now())
                .unwrap()
                .keeping_refresh_token(Some(&stored));
        assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "old");
        let rotated = read_token_response(
            &fields,
            br#"{"access_token":"a","refresh_token":"new"}"#,
            now(),
        )
        .unwrap()
        .keeping_refresh_token(Some(&stored));
        assert_eq!(rotated.refresh_token.unwrap().expose_secret(), "new");
    }

    #[test]
    fn refusals_and_incomplete_responses_are_errors() {
        let spec = code_spec();
        let fields = TokenResponseFields::default();
        for (body, code) in [
            (
                &br#"{"error":"bad_verification_code","error_description":"The code is wrong"}"#[..],
                "bad_verification_code",
            ),
            (br#"{"ok":false,"error":"invalid_code"}"#, "invalid_code"),
        ] {
            match read_token_response(&fields, body, now()) {
                Err(OAuthError::Refused {
                    code: got, status, ..
                }) => {
                    assert_eq!(got, code);
                    assert_eq!(status, 200);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            read_token_response(&fields, br#"{"token":"x"}"#, now()),
            Err(OAuthError::Response(_))
        ));
        assert!(matches!(
            read_token_response(&fields, b"access_token=x", now()),
            Err(OAuthError::Response(_))
        ));
        assert!(matches!(
            read_token_response(
                &fields,
                br#"{"access_token":"a","expires_in":"soon"}"#,
                now()
            ),
            Err(OAuthError::Response(_))
        ));
        // Salesforce without `instance_url` cannot be used: refused, not half-saved.
        assert!(matches!(
            read_token_response(
                &spec.token_response,
                br#"{"authed_user":{"access_token":"a"}}"#,
                now()
            ),
            Err(OAuthError::Response(m)) if m.contains("instance_url")
        ));
    }

    #[test]
    fn only_grant_refusals_are_definitive() {
        let refused = |code: &str| OAuthError::Refused {
            code: code.into(),
            description: None,
            status: 400,
        };
        assert!(refused("invalid_grant").is_definitive());
        assert!(refused("invalid_client").is_definitive());
        assert!(!refused("temporarily_unavailable").is_definitive());
        assert!(
            !OAuthError::Http(HttpError::Timeout(std::time::Duration::from_secs(1)))
                .is_definitive()
        );
    }
}
