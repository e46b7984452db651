//! Connect sessions and the hosted connect page.
//!
//! - `POST /v1/connect/sessions` (tenant): a 30-minute, single-purpose link for one end user: the
//!   integrations it may connect, the return URL (in every one's allowlist), optionally the
//!   connection a reconnect updates in place.
//! - `GET /connect/{token}` (public): the page. Key-based and client-credentials providers get a
//!   form rendered from their spec's fields (a client-credentials mode: the end user's app's client
//!   id and secret); OAuth sign-in providers a button that starts the authorization-code flow.
//! - `POST /connect/{token}/{integration_id}` (public): the form; checked against the spec (as the
//!   browser did), a client-credentials token obtained, verified with the provider, then saved —
//!   the same code as `POST /v1/connections`.
//! - `GET /connect/{token}/{integration_id}/oauth` (public): leaves for the provider with PKCE (S256)
//!   and a single-use `state` bound to the session.
//! - `GET /connect/callback` (public): takes the `state` (once), exchanges the code, verifies the
//!   tokens, saves them sealed, and sends the end user back to the return URL with the outcome.
//!
//! A session completes with the first connection it makes; every failure shows a page that says
//! what happened and saves nothing.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tributary_core::connect::{
    ConnectSession, FLOW_TTL_MS, OAuthFlow, PKCE_PURPOSE, SESSION_TTL_MS, is_token, new_token,
    token_hash,
};
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType, ConnectionStatus,
};
use tributary_core::ids::{ConnectSessionId, ConnectionId, IntegrationId, TenantId};
use tributary_core::integration::Integration;
use tributary_core::operation::OperationKind;
use tributary_core::ports::QueueStats;
use tributary_core::tenancy::{AuditEvent, TenantStatus};
use tributary_core::time::{EpochMillis, rfc3339};
use tributary_core::vault::{Owner, Vault};
use tributary_engine::connection::check_fields;
use tributary_engine::grant::ClientError;
use tributary_engine::oauth::{self, AuthorizationRequest, Grant, OAuthError, Pkce};
use tributary_engine::spec::{AuthMode, FieldSpec, OAuth2AuthorizationCode, ProviderSpec};
use url::Url;
use utoipa::ToSchema;

use crate::access::{ConnectionsWrite, Public, TenantCaller};
use crate::config::Config;
use crate::connect_page::{Input, escape, inputs, notice, page};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::request::{JsonBody, invalid};
use crate::response::Created;
use crate::router::{Api, operations};
use crate::routes::connections::{Verdict, check_tags, given_fields, prove, verify};
use crate::routes::integrations::provider;
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Providers, Secrets, Settings, Store};

/// The prefix of a connect link's token.
const TOKEN_PREFIX: &str = "cst_";
/// The prefix of an OAuth `state`.
const STATE_PREFIX: &str = "st_";
/// Largest form body.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A connect session to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"end_user_id": "user-42", "integration_ids": ["int_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"], "return_url": "https://app.example.com/integrations/done"}))]
pub struct ConnectSessionIn {
    /// The tenant's id of the end user (set on the connection).
    #[schema(min_length = 1, max_length = 256)]
    pub end_user_id: String,
    /// The integrations (`int_…`) the end user may connect: 1 to 20, enabled.
    #[schema(min_items = 1, max_items = 20)]
    pub integration_ids: Vec<String>,
    /// Where the end user is sent back to; in the `return_urls` of every listed integration.
    #[schema(max_length = 512)]
    pub return_url: String,
    /// For a reconnect: the connection (`conn_…`) to update in place, keeping its id. Its
    /// integration must be listed and its end user must be `end_user_id`.
    #[schema(pattern = "^conn_[0-9a-f]{32}$")]
    pub connection_id: Option<String>,
    /// Tags for the connection it makes.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A connect session: send the end user to `connect_url`. The token is shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectSessionOut {
    /// Id (`cs_…`).
    pub id: String,
    /// The link's secret token (`cst_…`), shown once.
    pub token: String,
    /// The hosted connect page for the end user.
    pub connect_url: String,
    /// RFC 3339: when the link stops working (30 minutes).
    pub expires_at: String,
    /// The end user.
    pub end_user_id: String,
    /// The integrations it may connect.
    pub integration_ids: Vec<String>,
    /// Where the end user is sent back to.
    pub return_url: String,
    /// The connection a reconnect updates.
    pub connection_id: Option<String>,
}

/// The origin end users reach this API at: the configured public one, or the request's host
/// (https, but for loopback hosts in development).
pub(crate) fn public_origin(settings: &Config, headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = &settings.public_base_url {
        return Some(origin.clone());
    }
    let host = headers.get(HOST)?.to_str().ok()?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return None;
    }
    let loopback =
        host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("http") if loopback => "http",
        Some(_) => "https",
        None if loopback => "http",
        None => "https",
    };
    Some(format!("{scheme}://{host}"))
}

/// Creates a connect session: a 30-minute link for one end user.
#[utoipa::path(post, path = "/v1/connect/sessions", operation_id = "create_connect_session", tag = "Connect", request_body = ConnectSessionIn,
    responses((status = 201, description = "Created; `token` and `connect_url` are shown only now", body = ConnectSessionOut),
              (status = 400, description = "Invalid body: an unknown or disabled integration, a return URL outside an integration's allowlist, or a reconnect of a connection this session cannot reach", body = ProblemDoc),
              (status = 403, description = "Requires `connections:write`", body = ProblemDoc)))]
pub async fn create_session<S: ControlStore>(
    caller: TenantCaller<ConnectionsWrite>,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ConnectSessionIn>,
) -> Result<Created<ConnectSessionOut>, ApiError> {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    let end_user_id = crate::routes::connections::check_end_user(&input.end_user_id)?;
    if input.integration_ids.is_empty() || input.integration_ids.len() > 20 {
        return Err(invalid(
            "/integration_ids",
            "List 1 to 20 integrations the end user may connect.",
        ));
    }
    check_tags("/tags", &input.tags)?;
    let mut integrations: Vec<IntegrationId> = Vec::new();
    for (i, raw) in input.integration_ids.iter().enumerate() {
        let pointer = format!("/integration_ids/{i}");
        let unknown = || {
            invalid(
                &pointer,
                "No integration with this id exists for your tenant. List your integrations to find it.",
            )
        };
        let id: IntegrationId = raw.parse().map_err(|_| unknown())?;
        let integration = store
            .get_integration(&tenant, &id)
            .await
            .map_err(store_failure)?
            .ok_or_else(unknown)?;
        if !integration.enabled {
            return Err(invalid(&pointer, "This integration is disabled."));
        }
        if !integration.return_urls.contains(&input.return_url) {
            return Err(invalid(
                "/return_url",
                &format!(
                    "`return_url` is not among the return URLs of integration `{id}` (compared exactly). Add it there first."
                ),
            ));
        }
        if !integrations.contains(&id) {
            integrations.push(id);
        }
    }
    let connection_id = match &input.connection_id {
        None => None,
        Some(raw) => {
            let unknown = || {
                invalid(
                    "/connection_id",
                    "No connection with this id exists for your tenant.",
                )
            };
            let id: ConnectionId = raw.parse().map_err(|_| unknown())?;
            let connection = store
                .get_connection(&tenant, &id)
                .await
                .map_err(store_failure)?
                .ok_or_else(unknown)?;
            if !integrations.contains(&connection.integration_id) {
                return Err(invalid(
                    "/connection_id",
                    "A reconnect must list the connection's own integration in `integration_ids`.",
                ));
            }
            if connection.end_user_id != end_user_id {
                return Err(invalid(
                    "/connection_id",
                    "A reconnect is for the connection's own end user: `end_user_id` differs.",
                ));
            }
            Some(id)
        }
    };
    let origin = public_origin(&settings, &headers).ok_or_else(|| {
        tracing::error!("no public origin: set PUBLIC_BASE_URL or send a Host header");
        ApiError::Internal
    })?;
    let token = new_token(TOKEN_PREFIX);
    let now = clock.now_ms();
    let session = ConnectSession {
        id: ConnectSessionId::generate(),
        tenant_id: tenant,
        token_hash: token_hash(&token),
        end_user_id,
        integration_ids: integrations,
        return_url: input.return_url,
        connection_id,
        tags: input.tags,
        created_by: principal.principal.clone(),
        created_at_ms: now,
        expires_at_ms: now + SESSION_TTL_MS,
        completed_with: None,
    };
    store
        .create_session(&session)
        .await
        .map_err(store_failure)?;
    tracing::info!(session_id = %session.id, "connect session created");
    Ok(Created {
        location: format!("/connect/{token}"),
        body: ConnectSessionOut {
            id: session.id.to_string(),
            connect_url: format!("{origin}/connect/{token}"),
            token,
            expires_at: rfc3339(session.expires_at_ms).unwrap_or_default(),
            end_user_id: session.end_user_id,
            integration_ids: session
                .integration_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
            return_url: session.return_url,
            connection_id: session.connection_id.map(|c| c.to_string()),
        },
    })
}

/// `return_url` with the outcome in its query.
fn outcome_url(return_url: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(return_url) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => return_url.to_owned(),
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn store_page(e: tributary_core::PortError) -> Response {
    tracing::error!(error = %e, "store operation failed on the connect page");
    notice(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        "We could not load this page just now. Try again in a moment.",
        None,
    )
}

fn used_page(session: &ConnectSession) -> Response {
    notice(
        StatusCode::CONFLICT,
        "This link was already used",
        "An account was already connected with this link, and a link works only once. Go back to the app to connect another.",
        Some(&outcome_url(
            &session.return_url,
            &[("status", "already_used")],
        )),
    )
}

fn expired_page(session: &ConnectSession) -> Response {
    notice(
        StatusCode::GONE,
        "This link has expired",
        "Connect links work for 30 minutes. Go back to the app and start connecting again.",
        Some(&outcome_url(&session.return_url, &[("status", "expired")])),
    )
}

fn unknown_link() -> Response {
    notice(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "This connect link does not exist. Go back to the app you came from and start connecting again.",
        None,
    )
}

/// A usable session for `token`, or the page that says why not.
async fn usable_session<S: ControlStore>(
    store: &S,
    token: &str,
    now: EpochMillis,
) -> Result<ConnectSession, Response> {
    if !is_token(TOKEN_PREFIX, token) {
        return Err(unknown_link());
    }
    let session = store
        .session(&token_hash(token))
        .await
        .map_err(store_page)?
        .ok_or_else(unknown_link)?;
    let tenant = store
        .get_tenant(&session.tenant_id)
        .await
        .map_err(store_page)?;
    if !tenant.is_some_and(|t| t.status == TenantStatus::Active) {
        return Err(unknown_link());
    }
    if session.completed_with.is_some() {
        return Err(used_page(&session));
    }
    if now >= session.expires_at_ms {
        return Err(expired_page(&session));
    }
    Ok(session)
}

/// The session's integrations with their specs (those that still exist and are enabled).
async fn offered<S: ControlStore>(
    store: &S,
    session: &ConnectSession,
) -> Result<Vec<(Integration, &'static ProviderSpec)>, Response> {
    let mut out = Vec::new();
    for id in &session.integration_ids {
        let Some(integration) = store
            .get_integration(&session.tenant_id, id)
            .await
            .map_err(store_page)?
        else {
            continue;
        };
        if !integration.enabled {
            continue;
        }
        if let Ok(spec) = provider(&integration.provider) {
            out.push((integration, spec));
        }
    }
    Ok(out)
}

fn mode<'s>(spec: &'s ProviderSpec, integration: &Integration) -> Option<&'s AuthMode> {
    spec.auth.iter().find(|m| m.kind() == integration.auth_mode)
}

/// The form fields of an integration (its connection configuration, and `credentials`: for a
/// key-based or client-credentials one the fields the end user gives), with what was given and
/// what was wrong.
fn form_inputs<'s>(
    spec: &'s ProviderSpec,
    auth: &'s AuthMode,
    credentials: &'s [FieldSpec],
    given: &'s BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
) -> Vec<Input<'s>> {
    let obtained: Vec<&str> = match auth {
        AuthMode::OAuth2AuthorizationCode(o) => o.obtained_config().collect(),
        _ => Vec::new(),
    };
    let fields = spec
        .connection_config
        .iter()
        .filter(|f| !obtained.contains(&f.name.as_str()))
        .map(|f| ("config", f))
        .chain(credentials.iter().map(|f| ("credentials", f)));
    fields
        .map(|(group, f)| {
            let name = format!("{group}.{}", f.name);
            Input {
                value: given.get(&name).map(String::as_str),
                error: errors.get(&name).cloned(),
                label: &f.label,
                help: f.description.as_deref(),
                required: f.required && f.default.is_none(),
                secret: f.secret || group == "credentials",
                pattern: f.pattern.as_deref(),
                name,
            }
        })
        .collect()
}

/// A submitted form: the integration, the values given, and what was wrong with them.
type Submitted<'a> = (
    &'a IntegrationId,
    &'a BTreeMap<String, String>,
    &'a BTreeMap<String, String>,
);

fn render_page(
    settings: &Config,
    token: &str,
    session: &ConnectSession,
    offered: &[(Integration, &ProviderSpec)],
    form: Option<Submitted<'_>>,
    status: StatusCode,
) -> Response {
    let mut body = String::from("<h1>Connect an account</h1>");
    if offered.is_empty() {
        return notice(
            StatusCode::CONFLICT,
            "Nothing to connect",
            "None of this link's integrations can be connected right now. Go back to the app.",
            Some(&outcome_url(
                &session.return_url,
                &[("status", "unavailable")],
            )),
        );
    }
    body.push_str(
        "<p class=\"lead\">Choose the account to connect. Your credentials are sent over an encrypted connection and stored encrypted; they are never shown again.</p>",
    );
    let empty = BTreeMap::new();
    for (i, (integration, spec)) in offered.iter().enumerate() {
        let Some(auth) = mode(spec, integration) else {
            continue;
        };
        let errors = match form {
            Some((id, _, errors)) if *id == integration.id => errors,
            _ => &empty,
        };
        let given = match form {
            Some((id, given, _)) if *id == integration.id => given,
            _ => &empty,
        };
        let heading = format!("h-{i}");
        body.push_str(&format!(
            "<section aria-labelledby=\"{heading}\"{}><h2 id=\"{heading}\">{}</h2>",
            if errors.is_empty() {
                ""
            } else {
                " class=\"errors\""
            },
            escape(&spec.name)
        ));
        match auth {
            AuthMode::OAuth2AuthorizationCode(_) => {
                if let Some(general) = errors.get("") {
                    body.push_str(&format!(
                        "<p class=\"error\" role=\"alert\">{}</p>",
                        escape(general)
                    ));
                }
                // A GET form: the configuration the endpoints need travels with the start.
                body.push_str(&format!(
                    "<p>You will sign in at {} and come back here.</p><form method=\"get\" action=\"/connect/{}/{}/oauth\">{}<button type=\"submit\">Connect {}</button></form>",
                    escape(&spec.name),
                    escape(token),
                    integration.id,
                    inputs(&format!("f{i}"), &form_inputs(spec, auth, &[], given, errors)),
                    escape(&spec.name)
                ));
            }
            AuthMode::ApiKey(_) | AuthMode::Basic(_) | AuthMode::OAuth2ClientCredentials(_) => {
                if let Some(general) = errors.get("") {
                    body.push_str(&format!(
                        "<p class=\"error\" role=\"alert\">{}</p>",
                        escape(general)
                    ));
                }
                if matches!(auth, AuthMode::OAuth2ClientCredentials(_)) {
                    body.push_str(&format!(
                        "<p>Enter the client ID and secret of your own {} app; a token is obtained with them and renewed when it expires.</p>",
                        escape(&spec.name)
                    ));
                }
                let credentials = given_fields(auth).unwrap_or_default();
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/connect/{}/{}\">{}<button type=\"submit\">Connect {}</button></form>",
                    escape(token),
                    integration.id,
                    inputs(
                        &format!("f{i}"),
                        &form_inputs(spec, auth, &credentials, given, errors)
                    ),
                    escape(&spec.name)
                ));
            }
        }
        body.push_str("</section>");
    }
    // A form's answer redirects: to the return URL (a credential form) or to a provider's sign-in
    // page (an OAuth start, on any https host, or one the deployment points a provider at).
    let mut origins: Vec<String> = vec!["https:".into()];
    origins.extend(
        Url::parse(&session.return_url)
            .map(|u| u.origin().ascii_serialization())
            .ok(),
    );
    origins.extend(settings.provider_origins.values().cloned());
    page(status, "Connect an account", &body, &origins)
}

/// The path's segments after `/connect/`.
fn segments(uri: &Uri) -> Vec<&str> {
    uri.path()
        .trim_start_matches("/connect/")
        .split('/')
        .collect()
}

/// The hosted connect page.
#[utoipa::path(get, path = "/connect/{token}", operation_id = "connect_page", tag = "Connect",
    params(("token" = String, Path, description = "The connect link's token (`cst_…`)")),
    responses((status = 200, description = "The page: the integrations the end user may connect", content_type = "text/html", body = String),
              (status = 404, description = "Unknown link", content_type = "text/html", body = String),
              (status = 409, description = "The link was already used, or nothing can be connected", content_type = "text/html", body = String),
              (status = 410, description = "The link expired", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
pub async fn connect_page<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    uri: Uri,
) -> Response {
    let token = segments(&uri)[0].to_owned();
    let session = match usable_session(&*store, &token, clock.now_ms()).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    match offered(&*store, &session).await {
        Ok(offered) => render_page(&settings, &token, &session, &offered, None, StatusCode::OK),
        Err(page) => page,
    }
}

fn sealed_owner<'a>(tenant: &'a TenantId, object: &'a str, purpose: &'a str) -> Owner<'a> {
    Owner {
        tenant: tenant.as_str(),
        object,
        purpose,
    }
}

/// What the flow ends with: a new connection, or an existing one updated in place.
struct Made {
    config: BTreeMap<String, String>,
    credentials: BTreeMap<String, String>,
    token_expires_at_ms: Option<EpochMillis>,
    /// When the tokens were obtained, if they include a refresh token.
    tokens_obtained_at_ms: Option<EpochMillis>,
    verified: bool,
}

/// Saves what a session made (claiming the session first, so that it makes one connection) and
/// sends the end user back with the outcome.
async fn finish<S: ControlStore>(
    store: &S,
    vault: &Vault,
    session: &ConnectSession,
    integration: &Integration,
    made: Made,
    now: EpochMillis,
    retention_days: u32,
) -> Response {
    let id = session
        .connection_id
        .clone()
        .unwrap_or_else(ConnectionId::generate);
    let failed = |what: &str| {
        notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong",
            what,
            Some(&outcome_url(&session.return_url, &[("status", "error")])),
        )
    };
    let existing = match &session.connection_id {
        None => None,
        Some(id) => match store.get_connection(&session.tenant_id, id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                return notice(
                    StatusCode::CONFLICT,
                    "This connection no longer exists",
                    "The connection this link was to renew was deleted. Go back to the app and connect again.",
                    Some(&outcome_url(&session.return_url, &[("status", "error")])),
                );
            }
            Err(e) => return store_page(e),
        },
    };
    let plain = match serde_json::to_vec(&made.credentials) {
        Ok(p) => p,
        Err(_) => return failed("The account could not be saved. Try again."),
    };
    let sealed = match vault
        .seal(
            &sealed_owner(&session.tenant_id, id.as_str(), CREDENTIALS_PURPOSE),
            &plain,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "sealing a connection's credentials failed");
            return failed("The account could not be saved. Try again.");
        }
    };
    match store.complete_session(&session.token_hash, &id).await {
        Ok(true) => {}
        Ok(false) => {
            return used_page(session);
        }
        Err(e) => return store_page(e),
    }
    let verified_at = made.verified.then_some(now);
    let written = match existing {
        Some(mut connection) => {
            let read_version = connection.version;
            connection.config = made.config;
            connection.credentials = sealed;
            connection.token_expires_at_ms = made.token_expires_at_ms;
            connection.tokens_obtained_at_ms = made.tokens_obtained_at_ms;
            connection.last_verified_at_ms = verified_at.or(connection.last_verified_at_ms);
            connection.status = ConnectionStatus::Active;
            connection.status_reason = None;
            connection.status_changed_at_ms = now;
            connection.updated_at_ms = now;
            connection.version = read_version.saturating_add(1);
            let event =
                ConnectionEvent::of(&connection, ConnectionEventType::Reauthorized, None, now);
            store
                .update_connection(&connection, read_version, Some(&event))
                .await
                .map(|_| connection.id)
        }
        None => {
            let connection = Connection {
                id: id.clone(),
                tenant_id: session.tenant_id.clone(),
                integration_id: integration.id.clone(),
                provider: integration.provider.clone(),
                auth_mode: integration.auth_mode.clone(),
                end_user_id: session.end_user_id.clone(),
                config: made.config,
                credentials: sealed,
                tags: session.tags.clone(),
                metadata: serde_json::json!({}),
                status: ConnectionStatus::Active,
                status_reason: None,
                status_changed_at_ms: now,
                last_verified_at_ms: verified_at,
                token_expires_at_ms: made.token_expires_at_ms,
                tokens_obtained_at_ms: made.tokens_obtained_at_ms,
                created_at_ms: now,
                updated_at_ms: now,
                version: 1,
            };
            let event = ConnectionEvent::of(&connection, ConnectionEventType::Created, None, now);
            let audit = AuditEvent::new(
                &session.tenant_id,
                &format!("connect_session:{}", session.id),
                now,
                "connection.created",
                &id,
            );
            store
                .create_connection(&connection, &event, &audit)
                .await
                .map(|()| connection.id)
        }
    };
    match written {
        Ok(id) => {
            tracing::info!(connection_id = %id, session_id = %session.id, "connected through a connect session");
            let change = if session.connection_id.is_some() {
                "reconnect"
            } else {
                "connect"
            };
            crate::oplog::log_done(
                store,
                retention_days,
                &session.tenant_id,
                OperationKind::ConnectionChange,
                now,
                |d| {
                    d.op.connection_id = Some(id.clone());
                    d.op.integration_id = Some(integration.id.clone());
                    d.op.provider = Some(integration.provider.clone());
                    d.op.name = Some(change.into());
                    d.op.subject = Some(session.id.to_string());
                },
            )
            .await;
            redirect(&outcome_url(
                &session.return_url,
                &[("status", "connected"), ("connection_id", id.as_str())],
            ))
        }
        Err(e) => store_page(e),
    }
}

/// What is wrong with the values of a form group, by form field name, in words for the end user.
fn field_errors(
    group: &str,
    fields: &[tributary_engine::spec::FieldSpec],
    values: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    use tributary_engine::connection::FieldProblem;
    let mut errors = BTreeMap::new();
    for (name, problem) in
        check_fields(fields, values.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        let label = fields
            .iter()
            .find(|f| f.name == name)
            .map_or(name.as_str(), |f| f.label.as_str());
        let text = match problem {
            FieldProblem::Missing => format!("{label} is required."),
            // Not a field of this form: ignored, as the browser would not send it.
            FieldProblem::Unknown => continue,
            FieldProblem::Mismatch(_) => format!("{label} does not have the expected format."),
            FieldProblem::Malformed => format!("{label} is too long or has control characters."),
        };
        errors.insert(format!("{group}.{name}"), text);
    }
    errors
}

/// The non-empty values of a form group (`config.`, `credentials.`), by field name.
fn group(given: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    given
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|name| (name.to_owned(), v.clone()))
        })
        .collect()
}

/// A form's (or a query's) fields, trimmed, empty ones dropped.
fn form_fields(bytes: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The session's integration named in the path, if the session offers it.
fn chosen<'a>(
    offered: &'a [(Integration, &'static ProviderSpec)],
    raw: &str,
) -> Option<&'a (Integration, &'static ProviderSpec)> {
    let id: IntegrationId = raw.parse().ok()?;
    offered.iter().find(|(i, _)| i.id == id)
}

/// Submits a credential form (a key-based or client-credentials provider's).
#[utoipa::path(post, path = "/connect/{token}/{integration_id}", operation_id = "connect_with_credentials", tag = "Connect",
    params(("token" = String, Path, description = "The connect link's token (`cst_…`)"),
           ("integration_id" = String, Path, description = "The integration (`int_…`) the form is for")),
    request_body(content_type = "application/x-www-form-urlencoded", content = BTreeMap<String, String>, description = "`config.<field>` and `credentials.<field>` of the provider's spec"),
    responses((status = 303, description = "Connected: back to the return URL with `status=connected` and `connection_id`"),
              (status = 400, description = "The form again, with what is wrong (values the provider refused included)", content_type = "text/html", body = String),
              (status = 404, description = "Unknown link or integration", content_type = "text/html", body = String),
              (status = 409, description = "The link was already used", content_type = "text/html", body = String),
              (status = 410, description = "The link expired", content_type = "text/html", body = String),
              (status = 502, description = "The provider did not answer; nothing was saved", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
#[allow(clippy::too_many_arguments)]
pub async fn submit_credentials<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts = segments(&uri);
    let (token, integration_raw) = (parts[0].to_owned(), parts[1].to_owned());
    let session = match usable_session(&*store, &token, clock.now_ms()).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let offered = match offered(&*store, &session).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let Some((integration, spec)) = chosen(&offered, &integration_raw) else {
        return unknown_link();
    };
    let Some((auth, fields)) =
        mode(spec, integration).and_then(|auth| Some((auth, given_fields(auth)?)))
    else {
        return unknown_link();
    };
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form || body.len() > MAX_FORM_BYTES {
        return notice(
            StatusCode::BAD_REQUEST,
            "This form could not be read",
            "Send the form from the connect page.",
            None,
        );
    }
    let given = form_fields(&body);
    let (config, credentials) = (group(&given, "config."), group(&given, "credentials."));
    let mut errors = field_errors("config", &spec.connection_config, &config);
    errors.extend(field_errors("credentials", &fields, &credentials));
    let now = clock.now_ms();
    let again = |errors: BTreeMap<String, String>, status| {
        render_page(
            &settings,
            &token,
            &session,
            &offered,
            Some((&integration.id, &given, &errors)),
            status,
        )
    };
    if !errors.is_empty() {
        return again(errors, StatusCode::BAD_REQUEST);
    }
    let proven = match prove(
        &engine,
        &settings,
        now,
        spec,
        auth,
        &integration.scopes,
        &config,
        credentials,
    )
    .await
    {
        Ok(proven) => proven,
        Err(ApiError::CredentialsRejected { status, .. }) => {
            errors.insert(
                String::new(),
                format!(
                    "{} did not accept these details (HTTP {status}). Check them and try again.",
                    spec.name
                ),
            );
            return again(errors, StatusCode::BAD_REQUEST);
        }
        Err(ApiError::Validation { detail, .. }) => {
            errors.insert(String::new(), detail);
            return again(errors, StatusCode::BAD_REQUEST);
        }
        Err(_) => {
            errors.insert(
                String::new(),
                format!(
                    "{} could not be reached. Nothing was saved; try again in a moment.",
                    spec.name
                ),
            );
            return again(errors, StatusCode::BAD_GATEWAY);
        }
    };
    let made = Made {
        config,
        credentials: proven.credentials,
        token_expires_at_ms: proven.token_expires_at_ms,
        // No refresh token to keep alive: a client-credentials token is granted again on use.
        tokens_obtained_at_ms: None,
        verified: proven.verified,
    };
    finish(
        &*store,
        &vault,
        &session,
        integration,
        made,
        now,
        settings.operations_retention_days,
    )
    .await
}

/// The OAuth endpoints of `spec` as this deployment reaches them (its origin overrides applied).
fn endpoints(
    settings: &Config,
    spec: &ProviderSpec,
    oauth: &OAuth2AuthorizationCode,
) -> OAuth2AuthorizationCode {
    let mut local = oauth.clone();
    local.authorization_url = settings.provider_url(&spec.id, &oauth.authorization_url);
    local.token_url = settings.provider_url(&spec.id, &oauth.token_url);
    for request in &mut local.config_requests {
        request.url = settings.provider_url(&spec.id, &request.url);
    }
    if let Some(revoke) = &mut local.revoke {
        revoke.url = settings.provider_url(&spec.id, &revoke.url);
    }
    local
}

/// The connection configuration an end user is asked for with `auth`: all of the spec's, except
/// what an OAuth mode obtains itself (from the token response or its config requests).
pub(crate) fn asked_config(spec: &ProviderSpec, auth: &AuthMode) -> Vec<FieldSpec> {
    let obtained: Vec<&str> = match auth {
        AuthMode::OAuth2AuthorizationCode(o) => o.obtained_config().collect(),
        _ => Vec::new(),
    };
    spec.connection_config
        .iter()
        .filter(|f| !obtained.contains(&f.name.as_str()))
        .cloned()
        .collect()
}

/// Leaves for the provider's authorization page.
#[utoipa::path(get, path = "/connect/{token}/{integration_id}/oauth", operation_id = "connect_with_oauth", tag = "Connect",
    params(("token" = String, Path, description = "The connect link's token (`cst_…`)"),
           ("integration_id" = String, Path, description = "The OAuth integration (`int_…`) to connect")),
    responses((status = 303, description = "To the provider's authorization page (PKCE S256, a single-use `state`)"),
              (status = 400, description = "The page again: the connection configuration the provider needs is missing or malformed", content_type = "text/html", body = String),
              (status = 404, description = "Unknown link or integration", content_type = "text/html", body = String),
              (status = 409, description = "The link was already used", content_type = "text/html", body = String),
              (status = 410, description = "The link expired", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
pub async fn start_oauth<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    settings: Settings,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parts = segments(&uri);
    let (token, integration_raw) = (parts[0].to_owned(), parts[1].to_owned());
    let now = clock.now_ms();
    let session = match usable_session(&*store, &token, now).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let offered = match offered(&*store, &session).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let Some((integration, spec)) = chosen(&offered, &integration_raw) else {
        return unknown_link();
    };
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) = mode(spec, integration) else {
        return unknown_link();
    };
    let Some(client_id) = &integration.oauth_client_id else {
        return unknown_link();
    };
    let given = form_fields(uri.query().unwrap_or_default().as_bytes());
    let config = group(&given, "config.");
    let errors = field_errors(
        "config",
        &asked_config(spec, &AuthMode::OAuth2AuthorizationCode(oauth.clone())),
        &config,
    );
    if !errors.is_empty() {
        return render_page(
            &settings,
            &token,
            &session,
            &offered,
            Some((&integration.id, &given, &errors)),
            StatusCode::BAD_REQUEST,
        );
    }
    let Some(origin) = public_origin(&settings, &headers) else {
        tracing::error!("no public origin for the OAuth redirect URI");
        return store_page(tributary_core::PortError::Rejected {
            service: tributary_core::error::Service::Store,
            operation: "origin",
            detail: "no public origin".into(),
        });
    };
    let Ok(redirect_uri) = Url::parse(&format!("{origin}/connect/callback")) else {
        return unknown_link();
    };
    let state = new_token(STATE_PREFIX);
    let mut octets = [0u8; 32];
    {
        use rand::RngCore as _;
        rand::rng().fill_bytes(&mut octets);
    }
    let pkce = Pkce::from_random(&octets);
    let sealed_verifier = if oauth.pkce {
        match vault
            .seal(
                &sealed_owner(&session.tenant_id, session.id.as_str(), PKCE_PURPOSE),
                pkce.verifier().expose_secret().as_bytes(),
            )
            .await
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "sealing a PKCE verifier failed");
                return notice(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Something went wrong",
                    "We could not start connecting. Try again in a moment.",
                    None,
                );
            }
        }
    } else {
        None
    };
    let local = endpoints(&settings, spec, oauth);
    let scopes = (!integration.scopes.is_empty()).then_some(integration.scopes.as_slice());
    let url = match oauth::authorization_url(
        &local,
        &config,
        &AuthorizationRequest {
            client_id,
            redirect_uri: &redirect_uri,
            state: &state,
            scopes,
            pkce: oauth.pkce.then_some(&pkce),
        },
    ) {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(provider = %spec.id, error = %e, "the authorization URL cannot be built");
            return notice(
                StatusCode::CONFLICT,
                "This provider cannot be connected here",
                "Its sign-in address needs details this page does not ask for. Go back to the app.",
                Some(&outcome_url(&session.return_url, &[("status", "error")])),
            );
        }
    };
    let flow = OAuthFlow {
        state_hash: token_hash(&state),
        tenant_id: session.tenant_id.clone(),
        session_id: session.id.clone(),
        session_token_hash: session.token_hash.clone(),
        integration_id: integration.id.clone(),
        redirect_uri: redirect_uri.to_string(),
        pkce_verifier: sealed_verifier,
        config,
        expires_at_ms: now + FLOW_TTL_MS,
    };
    if let Err(e) = store.put_flow(&flow).await {
        return store_page(e);
    }
    tracing::info!(session_id = %session.id, provider = %spec.id, "leaving for the provider's authorization page");
    redirect(url.as_str())
}

/// The callback's query.
#[derive(Debug, Default, Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn bad_return() -> Response {
    notice(
        StatusCode::BAD_REQUEST,
        "This sign-in cannot be completed",
        "The provider sent you back with a link that was already used, has expired or does not belong to a sign-in started here. Go back to the app and start connecting again.",
        None,
    )
}

/// Where the provider sends the end user back.
#[utoipa::path(get, path = "/connect/callback", operation_id = "connect_callback", tag = "Connect",
    params(("state" = Option<String>, Query, description = "The `state` sent to the provider"),
           ("code" = Option<String>, Query, description = "The authorization code"),
           ("error" = Option<String>, Query, description = "The provider's error (`access_denied`)"),
           ("error_description" = Option<String>, Query, description = "The provider's explanation")),
    responses((status = 303, description = "Connected: back to the return URL with `status=connected` and `connection_id`"),
              (status = 400, description = "A `state` missing, unknown, expired or already used", content_type = "text/html", body = String),
              (status = 403, description = "The end user declined", content_type = "text/html", body = String),
              (status = 409, description = "The link was already used", content_type = "text/html", body = String),
              (status = 410, description = "The link expired", content_type = "text/html", body = String),
              (status = 502, description = "The provider refused the code or the tokens; nothing was saved", content_type = "text/html", body = String),
              (status = 503, description = "Try again", content_type = "text/html", body = String)))]
#[allow(clippy::too_many_arguments)]
pub async fn callback<S: ControlStore>(
    _: Public,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    uri: Uri,
) -> Response {
    let query: Callback = uri
        .query()
        .and_then(serde_urlencoded_lite)
        .unwrap_or_default();
    let Some(state) = query.state.filter(|s| is_token(STATE_PREFIX, s)) else {
        return bad_return();
    };
    // Taken once: a replayed callback (the same code and state) finds nothing.
    let flow = match store.take_flow(&token_hash(&state)).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return bad_return(),
        Err(e) => return store_page(e),
    };
    let now = clock.now_ms();
    if now >= flow.expires_at_ms {
        return bad_return();
    }
    let session = match store.session(&flow.session_token_hash).await {
        Ok(Some(s)) if s.id == flow.session_id && s.tenant_id == flow.tenant_id => s,
        Ok(_) => return bad_return(),
        Err(e) => return store_page(e),
    };
    if session.completed_with.is_some() {
        return used_page(&session);
    }
    if now >= session.expires_at_ms {
        return expired_page(&session);
    }
    let integration = match store
        .get_integration(&session.tenant_id, &flow.integration_id)
        .await
    {
        Ok(Some(i)) if i.enabled => i,
        Ok(_) => return bad_return(),
        Err(e) => return store_page(e),
    };
    let back = |status: &str| outcome_url(&session.return_url, &[("status", status)]);
    let Ok(spec) = provider(&integration.provider) else {
        return bad_return();
    };
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) = mode(spec, &integration) else {
        return bad_return();
    };
    if let Some(error) = query.error {
        let declined = error == "access_denied";
        tracing::info!(provider = %spec.id, error = %error.chars().take(64).collect::<String>(), "the provider sent the end user back with an error");
        return if declined {
            notice(
                StatusCode::FORBIDDEN,
                "You did not connect your account",
                &format!(
                    "{} was not connected because the request was declined. You can go back to the app and try again.",
                    spec.name
                ),
                Some(&back("denied")),
            )
        } else {
            let description = query
                .error_description
                .map(|d| d.chars().take(200).collect::<String>())
                .unwrap_or_default();
            notice(
                StatusCode::BAD_GATEWAY,
                "The provider reported a problem",
                &format!(
                    "{} answered `{}`{}{}. Nothing was saved.",
                    spec.name,
                    error.chars().take(64).collect::<String>(),
                    if description.is_empty() { "" } else { ": " },
                    description
                ),
                Some(&back("error")),
            )
        };
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return bad_return();
    };
    let provider_error = |what: &str| {
        notice(
            StatusCode::BAD_GATEWAY,
            "The account could not be connected",
            &format!(
                "{} {what} Nothing was saved. Go back to the app and try again.",
                spec.name
            ),
            Some(&back("error")),
        )
    };
    let app = match tributary_engine::grant::client_app(&vault, &integration).await {
        Ok(app) => app,
        Err(ClientError::Missing) => {
            return provider_error("is not configured with an OAuth client.");
        }
        Err(ClientError::Unreadable(why)) => {
            tracing::error!(why, "the integration's OAuth client could not be read");
            return provider_error("could not be reached from here just now.");
        }
    };
    let pkce = match &flow.pkce_verifier {
        None => None,
        Some(sealed) => match vault
            .open(
                &sealed_owner(&flow.tenant_id, flow.session_id.as_str(), PKCE_PURPOSE),
                sealed,
            )
            .await
            .ok()
            .and_then(|(plain, _)| String::from_utf8(plain.expose_secret().to_vec()).ok())
            .and_then(|v| Pkce::from_verifier(&v).ok())
        {
            Some(p) => Some(p),
            None => return bad_return(),
        },
    };
    let Ok(redirect_uri) = Url::parse(&flow.redirect_uri) else {
        return bad_return();
    };
    let local = endpoints(&settings, spec, oauth);
    let code = SecretString::from(code);
    let request = match oauth::token_request(
        &(&local).into(),
        &flow.config,
        &app,
        &Grant::AuthorizationCode {
            code: &code,
            redirect_uri: &redirect_uri,
            pkce: pkce.as_ref(),
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(provider = %spec.id, error = %e, "the token request cannot be built");
            return provider_error("cannot be connected from this page.");
        }
    };
    let now_time = time::OffsetDateTime::from_unix_timestamp(now / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let tokens = match oauth::request_token(
        engine.client(),
        &request,
        &oauth.token_response,
        now_time,
    )
    .await
    {
        Ok(t) => t,
        Err(OAuthError::Refused { code, status, .. }) => {
            tracing::info!(provider = %spec.id, %code, status, "the provider refused the code");
            return provider_error(
                "refused the sign-in (it may have been used already or expired).",
            );
        }
        Err(e) => {
            tracing::warn!(provider = %spec.id, definitive = e.is_definitive(), "the code exchange failed");
            return provider_error("could not be reached to finish signing in.");
        }
    };
    let mut config = flow.config.clone();
    config.extend(tokens.connection_config.clone());
    match oauth::obtain_config(
        engine.client(),
        &local.config_requests,
        &config,
        &tokens.access_token,
    )
    .await
    {
        Ok(obtained) => config.extend(obtained),
        Err(e) => {
            tracing::info!(provider = %spec.id, error = %e, "the connection's configuration could not be obtained");
            return provider_error(
                "did not say which account to connect (check the account name you entered).",
            );
        }
    }
    let mut credentials = BTreeMap::from([(
        "access_token".to_owned(),
        tokens.access_token.expose_secret().to_owned(),
    )]);
    if let Some(refresh) = &tokens.refresh_token {
        credentials.insert("refresh_token".into(), refresh.expose_secret().to_owned());
    }
    let secrets = credentials
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
        .collect();
    let verified = match verify(&engine, &settings, spec, oauth_kind(), &config, secrets).await {
        Ok(Some(Verdict::Accepted)) => true,
        Ok(None) => false,
        Ok(Some(Verdict::Refused(status))) => {
            return provider_error(&format!("did not accept the new tokens (HTTP {status})."));
        }
        Err(ApiError::Validation { detail, .. }) => {
            tracing::info!(provider = %spec.id, "the new tokens do not fit the connection");
            return provider_error(&format!("could not be used as connected: {detail}"));
        }
        Err(_) => return provider_error("could not be reached to check the new tokens."),
    };
    let tokens_obtained_at_ms = credentials.contains_key("refresh_token").then_some(now);
    let made = Made {
        config,
        credentials,
        token_expires_at_ms: tokens
            .expires_at
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)),
        tokens_obtained_at_ms,
        verified,
    };
    finish(
        &*store,
        &vault,
        &session,
        &integration,
        made,
        now,
        settings.operations_retention_days,
    )
    .await
}

fn oauth_kind() -> &'static str {
    "oauth2_authorization_code"
}

/// The callback's query parameters (first value of each).
fn serde_urlencoded_lite(query: &str) -> Option<Callback> {
    let mut out = Callback::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "state" => &mut out.state,
            "code" => &mut out.code,
            "error" => &mut out.error,
            "error_description" => &mut out.error_description,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    Some(out)
}

/// The connect operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![
        create_session,
        connect_page,
        submit_credentials,
        start_oauth,
        callback
    ]
}
