//! `/v1/connections`: end users' accounts at providers. A connection made with credentials (an API
//! key, Basic, or an app's client id and secret for the OAuth client-credentials grant, traded for
//! an access token first) is made directly: its configuration and credentials are checked against
//! the provider's spec and proven with the spec's verification request before anything is saved;
//! the credentials are then sealed by the vault and never shown again. Every change of a connection is recorded as an event
//! (kept for the tenant's webhooks) in the same write.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use tributary_core::PortError;
use tributary_core::auth::Principal;
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType, ConnectionFilter,
    ConnectionStatus,
};
use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};
use tributary_core::operation::OperationKind;
use tributary_core::ports::QueueStats;
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{EpochMillis, rfc3339};
use tributary_core::vault::{Owner, Vault};
use tributary_engine::connection::{FieldProblem, check_fields};
use tributary_engine::spec::{AuthMode, FieldSpec, ProviderSpec};
use tributary_engine::{Engine, EngineError, ErrorClass};
use utoipa::ToSchema;

use crate::access::{ConnectionsRead, ConnectionsWrite, TenantCaller};
use crate::config::Config;
use crate::dto::PageOf;
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{page_of, page_request};
use crate::problem::{ApiError, FieldError};
use crate::request::{Id, JsonBody, invalid, only_query, query_id};
use crate::response::{Created, Json};
use crate::router::{Api, operations};
use crate::routes::integrations::{provider, vault_failure};
use crate::routes::provider_call::token_busy;
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Providers, Secrets, Settings, Store};

/// Most tags a connection carries.
const MAX_TAGS: usize = 20;
/// Largest metadata object, in bytes of its JSON.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A connection to make with credentials: a key-based one, or an app's client id and secret (OAuth
/// client credentials). Providers whose end users sign in connect through a connect session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"integration_id": "int_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d", "end_user_id": "user-42", "credentials": {"api_key": "sk_test_…"}, "tags": {"workspace": "acme"}}))]
pub struct ConnectionIn {
    /// The integration (`int_…`) to connect through; its auth mode must take credentials (an API
    /// key, Basic, or OAuth client credentials).
    #[schema(pattern = "^int_[0-9a-f]{32}$")]
    pub integration_id: String,
    /// The tenant's id of the end user.
    #[schema(min_length = 1, max_length = 256)]
    pub end_user_id: String,
    /// Connection configuration: the provider's `connection_config` fields (a subdomain, …).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Credentials: the auth mode's fields (`api_key`, or `username` and `password`, or the app's
    /// `client_id` and `client_secret`); write-only.
    #[schema(write_only)]
    pub credentials: BTreeMap<String, String>,
    /// Tags: at most 20; keys of letters, digits and `_.:-`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The tenant's own data about the connection: a JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A status the tenant may set.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableStatus {
    /// Use it again: its credentials are verified first.
    Active,
    /// Stop using it.
    Disabled,
}

/// Changes to a connection; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tags": {"workspace": "acme", "plan": "pro"}}))]
pub struct ConnectionPatch {
    /// Replaces the tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Replaces the metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Replaces the connection configuration; the credentials are verified with it before it is
    /// saved.
    pub config: Option<BTreeMap<String, String>>,
    /// `disabled`, or `active` (after its credentials are verified).
    pub status: Option<SettableStatus>,
}

/// A connection. Its credentials are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionOut {
    /// Id (`conn_…`).
    pub id: String,
    /// The integration it was made through.
    pub integration_id: String,
    /// The catalog provider.
    pub provider: String,
    /// The auth mode in use.
    pub auth_mode: String,
    /// The tenant's id of the end user.
    pub end_user_id: String,
    /// Connection configuration.
    pub config: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The tenant's metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// `active`, `needs_reauth` or `disabled`.
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
    /// Why it is not `active`.
    pub status_reason: Option<String>,
    /// RFC 3339: when the status last changed.
    pub status_changed_at: String,
    /// RFC 3339: when the provider last accepted its credentials.
    pub last_verified_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn time(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

impl From<Connection> for ConnectionOut {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id.to_string(),
            integration_id: c.integration_id.to_string(),
            provider: c.provider,
            auth_mode: c.auth_mode,
            end_user_id: c.end_user_id,
            config: c.config,
            tags: c.tags,
            metadata: c.metadata,
            status: c.status.as_str(),
            status_reason: c.status_reason,
            status_changed_at: time(c.status_changed_at_ms),
            last_verified_at: c.last_verified_at_ms.map(time),
            created_at: time(c.created_at_ms),
            updated_at: time(c.updated_at_ms),
        }
    }
}

pub(crate) fn check_end_user(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
        return Err(invalid(
            "/end_user_id",
            "`end_user_id` must be 1 to 256 characters without control characters.",
        ));
    }
    Ok(id.to_owned())
}

fn valid_tag_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

pub(crate) fn check_tags(pointer: &str, tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(pointer, &format!("At most {MAX_TAGS} tags.")));
    }
    for (key, value) in tags {
        if !valid_tag_key(key) {
            return Err(invalid(
                &format!("{pointer}/{}", key.chars().take(64).collect::<String>()),
                "A tag key is 1 to 64 letters, digits or `_.:-`.",
            ));
        }
        if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(invalid(
                &format!("{pointer}/{key}"),
                "A tag value is 1 to 256 characters without control characters.",
            ));
        }
    }
    Ok(())
}

fn check_metadata(value: Option<serde_json::Value>) -> Result<serde_json::Value, ApiError> {
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    if !value.is_object() {
        return Err(invalid("/metadata", "`metadata` must be a JSON object."));
    }
    if value.to_string().len() > MAX_METADATA_BYTES {
        return Err(invalid(
            "/metadata",
            &format!("`metadata` must be at most {MAX_METADATA_BYTES} bytes of JSON."),
        ));
    }
    Ok(value)
}

/// The spec's fields checked against the given values, every problem pointed at; values are
/// never echoed (credentials are among them).
fn check_against(
    spec: &ProviderSpec,
    pointer: &str,
    what: &str,
    fields: &[FieldSpec],
    values: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let problems = check_fields(fields, values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if problems.is_empty() {
        return Ok(());
    }
    let names = fields
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ");
    let errors: Vec<FieldError> = problems
        .into_iter()
        .map(|(name, problem)| {
            let label = fields
                .iter()
                .find(|f| f.name == name)
                .map_or(name.as_str(), |f| f.label.as_str());
            let detail = match problem {
                FieldProblem::Missing => format!("{label} (`{name}`) is required."),
                FieldProblem::Unknown => format!(
                    "`{}` has no {what} field `{}`; its fields are: {}.",
                    spec.id,
                    name.chars().take(64).collect::<String>(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.clone()
                    }
                ),
                FieldProblem::Mismatch(pattern) => {
                    format!("{label} (`{name}`) must match `{pattern}`.")
                }
                FieldProblem::Malformed => format!(
                    "{label} (`{name}`) must be 1 to 4096 characters without control characters."
                ),
            };
            FieldError {
                pointer: format!("{pointer}/{}", name.chars().take(64).collect::<String>()),
                detail,
            }
        })
        .collect();
    Err(ApiError::Validation {
        detail: format!("The {what} does not fit `{}`: see `errors`.", spec.id),
        errors,
    })
}

/// What the provider said of the credentials.
pub(crate) enum Verdict {
    /// It accepted them.
    Accepted,
    /// It refused them, with this HTTP status.
    Refused(u16),
}

/// Sends the spec's verification request with these values; `None` when the spec declares none.
pub(crate) async fn verify(
    engine: &Engine,
    settings: &Config,
    spec: &ProviderSpec,
    auth_mode: &str,
    config: &BTreeMap<String, String>,
    credentials: BTreeMap<String, SecretString>,
) -> Result<Option<Verdict>, ApiError> {
    if spec.verify.is_none() {
        return Ok(None);
    }
    let connection = tributary_engine::Connection {
        config: config.clone(),
        credentials,
        auth_mode: Some(auth_mode.to_owned()),
        base_url: settings.provider_origins.contains_key(&spec.id).then(|| {
            let mode = spec.auth.iter().find(|m| m.kind() == auth_mode);
            settings.provider_url(&spec.id, spec.base_url_for(mode, config))
        }),
    };
    match engine.verify(spec, &connection).await {
        Ok(()) => Ok(Some(Verdict::Accepted)),
        Err(EngineError::Exhausted { last, .. }) => judge(spec, *last).map(Some),
        Err(e) => judge(spec, e).map(Some),
    }
}

/// What a failed verification means for the caller.
fn judge(spec: &ProviderSpec, e: EngineError) -> Result<Verdict, ApiError> {
    match e {
        EngineError::Upstream { class, status, .. }
            if class == ErrorClass::Auth
                || (status != 429
                    && (400..500).contains(&status)
                    && !matches!(class, ErrorClass::RateLimited | ErrorClass::Transient)) =>
        {
            tracing::info!(provider = %spec.id, status, ?class, "the provider refused the credentials");
            Ok(Verdict::Refused(status))
        }
        EngineError::Egress(denied) => {
            tracing::info!(provider = %spec.id, reason = %denied, "verification refused by the egress guard");
            Err(invalid(
                "/config",
                "This connection's provider address is not one this deployment may reach (a private, loopback or link-local address).",
            ))
        }
        EngineError::Connection { message, .. } => Err(invalid("/config", &message)),
        e @ (EngineError::Upstream { .. }
        | EngineError::Timeout(_)
        | EngineError::Transport(_)
        | EngineError::ResponseTooLarge { .. }
        | EngineError::Malformed { .. }
        | EngineError::Redirect(_)) => {
            // The class and status only: a provider's message may quote what it was sent.
            let (class, status) = match &e {
                EngineError::Upstream { class, status, .. } => (Some(*class), Some(*status)),
                _ => (None, None),
            };
            tracing::warn!(provider = %spec.id, ?class, ?status, kind = error_kind(&e), "verification failed upstream");
            Err(ApiError::ProviderUnavailable {
                provider: spec.name.clone(),
            })
        }
        e => {
            tracing::error!(provider = %spec.id, kind = error_kind(&e), "verification could not be sent");
            Err(ApiError::Internal)
        }
    }
}

fn error_kind(e: &EngineError) -> &'static str {
    match e {
        EngineError::Timeout(_) => "timeout",
        EngineError::Transport(_) => "transport",
        EngineError::ResponseTooLarge { .. } => "response_too_large",
        EngineError::Upstream { .. } => "upstream",
        EngineError::Spec { .. } => "spec",
        EngineError::Template { .. } => "template",
        EngineError::Malformed { .. } => "malformed",
        EngineError::Redirect(_) => "redirect",
        _ => "other",
    }
}

fn secrets(values: &BTreeMap<String, String>) -> BTreeMap<String, SecretString> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
        .collect()
}

fn owner<'a>(tenant: &'a TenantId, id: &'a ConnectionId) -> Owner<'a> {
    Owner {
        tenant: tenant.as_str(),
        object: id.as_str(),
        purpose: CREDENTIALS_PURPOSE,
    }
}

/// The connection's credentials, opened.
async fn open_credentials(
    vault: &Vault,
    c: &Connection,
) -> Result<BTreeMap<String, SecretString>, ApiError> {
    let (plain, _) = vault
        .open(&owner(&c.tenant_id, &c.id), &c.credentials)
        .await
        .map_err(vault_failure)?;
    let values: BTreeMap<String, String> =
        serde_json::from_slice(plain.expose_secret()).map_err(|_| {
            tracing::error!(connection_id = %c.id, "sealed credentials are not a JSON object of strings");
            ApiError::Internal
        })?;
    Ok(secrets(&values))
}

fn audit(c: &Connection, actor: &Principal, at_ms: EpochMillis, action: &str) -> AuditEvent {
    AuditEvent::new(&c.tenant_id, &actor.principal, at_ms, action, &c.id)
}

fn auth_mode<'s>(spec: &'s ProviderSpec, kind: &str) -> Result<&'s AuthMode, ApiError> {
    spec.auth.iter().find(|m| m.kind() == kind).ok_or_else(|| {
        tracing::error!(provider = %spec.id, auth_mode = kind, "a stored auth mode is no longer in the spec");
        ApiError::Internal
    })
}

/// The credential fields an end user gives for `mode`: a key-based mode's own, the app's client id
/// and secret (and the mode's extra fields) for client credentials; `None` for a mode whose end
/// users sign in at the provider (a connect session).
pub(crate) fn given_fields(mode: &AuthMode) -> Option<Vec<FieldSpec>> {
    match mode {
        AuthMode::ApiKey(_) | AuthMode::Basic(_) => Some(mode.credential_fields().to_vec()),
        AuthMode::OAuth2ClientCredentials(o) => {
            Some(tributary_engine::oauth::client_credentials_fields(o))
        }
        AuthMode::OAuth2AuthorizationCode(_) => None,
    }
}

/// Credentials an end user gave, proven: what to seal, when its token expires, and whether the
/// provider's verification request accepted them.
pub(crate) struct Proven {
    /// The credentials to seal (a client-credentials connection's with its access token).
    pub credentials: BTreeMap<String, String>,
    /// When the access token expires, for a client-credentials connection.
    pub token_expires_at_ms: Option<EpochMillis>,
    /// Whether the spec's verification request accepted them (`false`: the spec declares none).
    pub verified: bool,
}

/// Proves the credentials an end user gave for `mode` (already checked against its fields): a
/// client-credentials mode first trades the app's client id and secret for an access token (with
/// `scopes`, the integration's), then the spec's verification request runs with them. The same
/// for the API and the connect page.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prove(
    engine: &Engine,
    settings: &Config,
    now_ms: EpochMillis,
    spec: &ProviderSpec,
    mode: &AuthMode,
    scopes: &[String],
    config: &BTreeMap<String, String>,
    given: BTreeMap<String, String>,
) -> Result<Proven, ApiError> {
    let mut credentials = given;
    let mut token_expires_at_ms = None;
    if let AuthMode::OAuth2ClientCredentials(o) = mode {
        let app = tributary_engine::oauth::ClientApp {
            client_id: credentials.get("client_id").cloned().unwrap_or_default(),
            client_secret: SecretString::from(
                credentials
                    .get("client_secret")
                    .cloned()
                    .unwrap_or_default(),
            ),
        };
        let tokens = tributary_engine::grant::client_credentials_token(
            engine,
            &settings.provider_origins,
            spec,
            o,
            config,
            &app,
            scopes,
            now_ms,
        )
        .await
        .map_err(|e| grant_failure(spec, e))?;
        credentials.insert(
            "access_token".into(),
            tokens.access_token.expose_secret().to_owned(),
        );
        token_expires_at_ms = tokens.expires_at.map(tributary_engine::grant::epoch_ms);
    }
    let verified = match verify(
        engine,
        settings,
        spec,
        mode.kind(),
        config,
        secrets(&credentials),
    )
    .await?
    {
        Some(Verdict::Accepted) => true,
        Some(Verdict::Refused(status)) => return Err(refused(spec, status)),
        None => false,
    };
    Ok(Proven {
        credentials,
        token_expires_at_ms,
        verified,
    })
}

/// What a failed client-credentials grant means for the caller: the provider's refusal names the
/// app's credentials (never their values); an unreachable provider is a 502.
fn grant_failure(spec: &ProviderSpec, e: tributary_engine::oauth::OAuthError) -> ApiError {
    use tributary_engine::oauth::OAuthError;
    use tributary_http::HttpError;
    let refused = |status: u16, code: &str| {
        tracing::info!(provider = %spec.id, status, code, "the provider refused the client credentials");
        let detail = format!(
            "{} refused this client ID and secret (`{code}`, HTTP {status}); nothing was saved. Check `client_id` and `client_secret` against the app's settings at {}, and that the app is installed where this connection points (its configuration), then retry.",
            spec.name, spec.name
        );
        ApiError::Validation {
            errors: ["client_id", "client_secret"]
                .into_iter()
                .map(|name| FieldError {
                    pointer: format!("/credentials/{name}"),
                    detail: format!("{} did not accept this `{name}`.", spec.name),
                })
                .collect(),
            detail,
        }
    };
    match e {
        OAuthError::Refused { code, status, .. } => refused(status, &code),
        OAuthError::Http(HttpError::Upstream { status, .. })
            if matches!(status, 400 | 401 | 403) =>
        {
            refused(status, "refused")
        }
        OAuthError::Http(HttpError::Egress(denied)) => {
            tracing::info!(provider = %spec.id, reason = %denied, "the token request was refused by the egress guard");
            invalid(
                "/config",
                "This connection's provider address is not one this deployment may reach (a private, loopback or link-local address).",
            )
        }
        OAuthError::Endpoint { field, .. } => {
            tracing::info!(provider = %spec.id, field, "the token endpoint cannot be rendered");
            invalid(
                "/config",
                &format!(
                    "The configuration does not make a usable {} address: check its values.",
                    spec.name
                ),
            )
        }
        e => {
            // The kind only: a provider's answer may quote what it was sent.
            let kind = match &e {
                OAuthError::Response(_) => "malformed token response",
                OAuthError::Http(_) => "http",
                _ => "other",
            };
            tracing::warn!(provider = %spec.id, kind, "the client-credentials grant failed upstream");
            ApiError::ProviderUnavailable {
                provider: spec.name.clone(),
            }
        }
    }
}

fn refused(spec: &ProviderSpec, status: u16) -> ApiError {
    ApiError::CredentialsRejected {
        provider: spec.name.clone(),
        status,
    }
}

/// Makes a connection with credentials: checked against the spec, for OAuth client credentials
/// traded for an access token (renewed by the same grant when it expires), verified with the
/// provider, then saved with its credentials sealed.
#[utoipa::path(post, path = "/v1/connections", operation_id = "create_connection", tag = "Connections", request_body = ConnectionIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Created and verified", body = ConnectionOut),
              (status = 400, description = "Invalid body: an unknown or disabled integration, an OAuth sign-in integration (connect those through a connect session), configuration or credentials that do not fit the provider's spec, a client id and secret the provider's token endpoint refused (`validation_failed`, pointing at them), or credentials the provider refused (`credentials_rejected`)", body = ProblemDoc),
              (status = 403, description = "Requires `connections:write`", body = ProblemDoc),
              (status = 409, description = "Same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc),
              (status = 502, description = "The provider did not answer usably; nothing was saved", body = ProblemDoc)))]
#[allow(clippy::too_many_arguments)]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<ConnectionsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    Idempotent(input): Idempotent<ConnectionIn>,
) -> Result<Created<ConnectionOut>, ApiError> {
    let (log, time, tenant) = (store.0.clone(), clock.0.clone(), caller.tenant.clone());
    let retention = settings.operations_retention_days;
    crate::oplog::recorded(
        &*log,
        &*time,
        retention,
        &tenant,
        OperationKind::ConnectionChange,
        |d| d.op.name = Some("create".into()),
        |made: &Created<ConnectionOut>, d| {
            d.op.connection_id = made.body.id.parse().ok();
            d.op.integration_id = made.body.integration_id.parse().ok();
            d.op.provider = Some(made.body.provider.clone());
        },
        async move {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    let no_integration = || {
        invalid(
            "/integration_id",
            "No integration with this id exists for your tenant. List your integrations to find it.",
        )
    };
    let integration_id: IntegrationId = input
        .integration_id
        .parse()
        .map_err(|e| invalid("/integration_id", &format!("{e}.")))?;
    let integration = store
        .get_integration(&tenant, &integration_id)
        .await
        .map_err(store_failure)?
        .ok_or_else(no_integration)?;
    if !integration.enabled {
        return Err(invalid(
            "/integration_id",
            "This integration is disabled: enable it before making connections through it.",
        ));
    }
    let spec = provider(&integration.provider)?;
    let mode = auth_mode(spec, &integration.auth_mode)?;
    let Some(fields) = given_fields(mode) else {
        return Err(invalid(
            "/integration_id",
            &format!(
                "This integration connects with `{}`: end users connect it through a connect session (POST /v1/connect/sessions), not with credentials sent here.",
                mode.kind()
            ),
        ));
    };
    let end_user_id = check_end_user(&input.end_user_id)?;
    check_tags("/tags", &input.tags)?;
    let metadata = check_metadata(input.metadata)?;
    check_against(
        spec,
        "/config",
        "configuration",
        &spec.connection_config,
        &input.config,
    )?;
    check_against(
        spec,
        "/credentials",
        "credential",
        &fields,
        &input.credentials,
    )?;

    let proven = prove(
        &engine,
        &settings,
        clock.now_ms(),
        spec,
        mode,
        &integration.scopes,
        &input.config,
        input.credentials,
    )
    .await?;
    let verified = proven.verified;

    let now = clock.now_ms();
    let id = ConnectionId::generate();
    let plain = serde_json::to_vec(&proven.credentials).map_err(|_| ApiError::Internal)?;
    let sealed = vault
        .seal(&owner(&tenant, &id), &plain)
        .await
        .map_err(vault_failure)?;
    let connection = Connection {
        id,
        tenant_id: tenant,
        integration_id,
        provider: spec.id.clone(),
        auth_mode: mode.kind().to_owned(),
        end_user_id,
        config: input.config,
        credentials: sealed,
        tags: input.tags,
        metadata,
        status: ConnectionStatus::Active,
        status_reason: None,
        status_changed_at_ms: now,
        last_verified_at_ms: verified.then_some(now),
        token_expires_at_ms: proven.token_expires_at_ms,
        // No refresh token to keep alive: a client-credentials token is granted again on use.
        tokens_obtained_at_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    store
        .create_connection(
            &connection,
            &ConnectionEvent::of(&connection, ConnectionEventType::Created, None, now),
            &audit(&connection, &principal, now, "connection.created"),
        )
        .await
        .map_err(store_failure)?;
    tracing::info!(connection_id = %connection.id, provider = %connection.provider, verified, "connection created");
    Ok(Created {
        location: format!("/v1/connections/{}", connection.id),
        body: ConnectionOut::from(connection),
    })
},
    )
    .await
}

/// The list's filters, from the query string.
pub struct ListQuery {
    filter: ConnectionFilter,
    page: tributary_core::pagination::PageRequest,
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &St,
    ) -> Result<Self, ApiError> {
        let q = only_query(
            parts,
            &[
                "limit",
                "cursor",
                "integration_id",
                "provider",
                "end_user_id",
                "tag",
                "status",
            ],
        )?;
        let page = page_request(
            q.get("limit").map(String::as_str),
            q.get("cursor").map(String::as_str),
        )?;
        let integration_id =
            query_id::<IntegrationId>(&q, "integration_id", "an integration id (`int_…`)")?;
        let tag = q
            .get("tag")
            .map(|raw| {
                raw.split_once(':')
                    .filter(|(k, v)| valid_tag_key(k) && !v.is_empty())
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| {
                        invalid(
                            "query.tag",
                            "`tag` is `key:value`, the key of letters, digits or `_.:-`.",
                        )
                    })
            })
            .transpose()?;
        let status = q
            .get("status")
            .map(|raw| match raw.as_str() {
                "active" => Ok(ConnectionStatus::Active),
                "needs_reauth" => Ok(ConnectionStatus::NeedsReauth),
                "disabled" => Ok(ConnectionStatus::Disabled),
                _ => Err(invalid(
                    "query.status",
                    "`status` is `active`, `needs_reauth` or `disabled`.",
                )),
            })
            .transpose()?;
        for (name, value) in [
            ("provider", q.get("provider")),
            ("end_user_id", q.get("end_user_id")),
        ] {
            if value.is_some_and(|v| v.is_empty() || v.chars().count() > 256) {
                return Err(invalid(
                    &format!("query.{name}"),
                    &format!("`{name}` is 1 to 256 characters."),
                ));
            }
        }
        Ok(Self {
            filter: ConnectionFilter {
                integration_id,
                provider: q.get("provider").cloned(),
                end_user_id: q.get("end_user_id").cloned(),
                tag,
                status,
            },
            page,
        })
    }
}

/// Lists the tenant's connections, filtered. A page may hold fewer than `limit` connections and
/// still have a `next_cursor`: follow it until it is absent.
#[utoipa::path(get, path = "/v1/connections", operation_id = "list_connections", tag = "Connections",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("integration_id" = Option<String>, Query, description = "Only connections made through this integration", pattern = "^int_[0-9a-f]{32}$"),
           ("provider" = Option<String>, Query, description = "Only connections to this provider"),
           ("end_user_id" = Option<String>, Query, description = "Only this end user's connections"),
           ("tag" = Option<String>, Query, description = "Only connections carrying this tag: `key:value`"),
           ("status" = Option<String>, Query, description = "`active`, `needs_reauth` or `disabled`")),
    responses((status = 200, description = "A page of connections", body = PageOf<ConnectionOut>),
              (status = 400, description = "Bad filter, `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `connections:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<ConnectionsRead>,
    store: Store<S>,
    query: ListQuery,
) -> Result<Json<PageOf<ConnectionOut>>, ApiError> {
    let found = store
        .list_connections(&caller.tenant, &query.filter, &query.page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, ConnectionOut::from)))
}

pub(crate) async fn load<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &ConnectionId,
) -> Result<Connection, ApiError> {
    let connection = store
        .get_connection(tenant, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound {
            resource: "connection",
        })?;
    // The operation being recorded (if any) works through it.
    tributary_core::operation::describe(|d| {
        d.op.connection_id = Some(connection.id.clone());
        d.op.integration_id = Some(connection.integration_id.clone());
        d.op.provider = Some(connection.provider.clone());
    });
    Ok(connection)
}

/// Reads one of the tenant's connections (never its credentials).
#[utoipa::path(get, path = "/v1/connections/{connection_id}", operation_id = "get_connection", tag = "Connections",
    params(("connection_id" = String, Path, description = "Connection id (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 200, description = "The connection", body = ConnectionOut),
              (status = 403, description = "Requires `connections:read`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<ConnectionsRead>,
    store: Store<S>,
    Id(id): Id<ConnectionId>,
) -> Result<Json<ConnectionOut>, ApiError> {
    Ok(Json(ConnectionOut::from(
        load(&*store, &caller.tenant, &id).await?,
    )))
}

fn concurrent() -> ApiError {
    ApiError::Conflict {
        detail: "The connection changed while this request ran (a refresh or another update). Retry the request.".into(),
    }
}

async fn save<S: ControlStore>(
    store: &S,
    connection: &Connection,
    read_version: u64,
    event: Option<&ConnectionEvent>,
) -> Result<(), ApiError> {
    match store
        .update_connection(connection, read_version, event)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::NotFound {
            resource: "connection",
        }),
        Err(PortError::Conflict { .. }) => Err(concurrent()),
        Err(e) => Err(store_failure(e)),
    }
}

/// Changes a connection's tags, metadata, configuration or status. A new configuration, and
/// turning a connection back on, are verified with the provider first; nothing changes when the
/// provider refuses. A client-credentials connection's token is granted for its configuration (a
/// Shopify token for one shop): a new configuration is granted a new token with the connection's
/// client id and secret, and verified with it.
#[utoipa::path(patch, path = "/v1/connections/{connection_id}", operation_id = "update_connection", tag = "Connections", request_body = ConnectionPatch,
    params(("connection_id" = String, Path, description = "Connection id (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 200, description = "The updated connection", body = ConnectionOut),
              (status = 400, description = "Invalid body, or a configuration the provider refused with these credentials (`credentials_rejected`)", body = ProblemDoc),
              (status = 403, description = "Requires `connections:write`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant", body = ProblemDoc),
              (status = 409, description = "Changed concurrently, or its token is being refreshed; retry", body = ProblemDoc),
              (status = 502, description = "The provider did not answer usably; nothing changed", body = ProblemDoc)))]
#[allow(clippy::too_many_arguments)]
pub async fn update<S: ControlStore>(
    caller: TenantCaller<ConnectionsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    Id(id): Id<ConnectionId>,
    JsonBody(patch): JsonBody<ConnectionPatch>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let (log, time, tenant) = (store.0.clone(), clock.0.clone(), caller.tenant.clone());
    let retention = settings.operations_retention_days;
    crate::oplog::recorded(
        &*log,
        &*time,
        retention,
        &tenant,
        OperationKind::ConnectionChange,
        |d| d.op.name = Some("update".into()),
        |_: &Json<ConnectionOut>, _| {},
        async move {
            let mut connection = load(&*store, &caller.tenant, &id).await?;
            let read_version = connection.version;
            let spec = provider(&connection.provider)?;
            if let Some(tags) = patch.tags {
                check_tags("/tags", &tags)?;
                connection.tags = tags;
            }
            if let Some(metadata) = patch.metadata {
                connection.metadata = check_metadata(Some(metadata))?;
            }
            if let Some(config) = &patch.config {
                check_against(
                    spec,
                    "/config",
                    "configuration",
                    &spec.connection_config,
                    config,
                )?;
            }
            let now = clock.now_ms();
            let reactivate = matches!(patch.status, Some(SettableStatus::Active))
                && connection.status != ConnectionStatus::Active;
            let mut kind = ConnectionEventType::Updated;
            // The refresh lease this update holds while it writes a newly granted token.
            let mut lease = None;
            let new_config = patch.config.as_ref().filter(|c| **c != connection.config);
            let mode = spec.auth.iter().find(|m| m.kind() == connection.auth_mode);
            if let (Some(config), Some(mode @ AuthMode::OAuth2ClientCredentials(_))) =
                (new_config, mode)
            {
                // A client-credentials token is granted for the configuration (Shopify's, for
                // one shop): a new one is granted for the new configuration and verified with it.
                // Under the refresh lease, so that no refresh of the old token writes over it.
                let holder = regrant(
                    &*store,
                    &vault,
                    &engine,
                    &settings,
                    spec,
                    mode,
                    &mut connection,
                    config,
                    now,
                )
                .await?;
                lease = Some(holder);
            } else if patch.config.is_some() || reactivate {
                let config = patch.config.as_ref().unwrap_or(&connection.config);
                let credentials = open_credentials(&vault, &connection).await?;
                match verify(
                    &engine,
                    &settings,
                    spec,
                    &connection.auth_mode,
                    config,
                    credentials,
                )
                .await?
                {
                    Some(Verdict::Refused(status)) => return Err(refused(spec, status)),
                    Some(Verdict::Accepted) => connection.last_verified_at_ms = Some(now),
                    None => {}
                }
            }
            if reactivate && connection.status == ConnectionStatus::NeedsReauth {
                kind = ConnectionEventType::Reauthorized;
            }
            if let Some(config) = patch.config {
                connection.config = config;
            }
            match patch.status {
                Some(SettableStatus::Disabled)
                    if connection.status != ConnectionStatus::Disabled =>
                {
                    connection.status = ConnectionStatus::Disabled;
                    connection.status_reason = Some("disabled by the tenant".into());
                    connection.status_changed_at_ms = now;
                }
                Some(SettableStatus::Active) if reactivate => {
                    connection.status = ConnectionStatus::Active;
                    connection.status_reason = None;
                    connection.status_changed_at_ms = now;
                }
                _ => {}
            }
            connection.updated_at_ms = now;
            connection.version = read_version.saturating_add(1);
            let recorded =
                ConnectionEvent::of(&connection, kind, connection.status_reason.clone(), now);
            match lease {
                Some(holder) => {
                    swap_regranted(&*store, &connection, read_version, &holder, &recorded).await?
                }
                None => save(&*store, &connection, read_version, Some(&recorded)).await?,
            }
            tracing::info!(connection_id = %id, event = kind.as_str(), "connection updated");
            Ok(Json(ConnectionOut::from(connection)))
        },
    )
    .await
}

/// Takes the refresh lease of a client-credentials `connection`, grants it a token for the new
/// `config` with its client id and secret, proves it (the spec's verification request) and puts
/// the sealed credentials and the token's expiry into `connection`; nothing is written to the
/// store, and the caller sets the configuration. Returns the lease's holder, which the caller's
/// [`swap_regranted`] releases; on an error the lease is given back here.
#[allow(clippy::too_many_arguments)]
async fn regrant<S: ControlStore>(
    store: &S,
    vault: &Vault,
    engine: &Engine,
    settings: &Config,
    spec: &ProviderSpec,
    mode: &AuthMode,
    connection: &mut Connection,
    config: &BTreeMap<String, String>,
    now: EpochMillis,
) -> Result<String, ApiError> {
    let (tenant, id) = (connection.tenant_id.clone(), connection.id.clone());
    let holder = tributary_core::ids::EventId::generate().to_string();
    let lease = tributary_engine::grant::policy(spec).lease;
    let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let taken = store
        .lease_refresh(&tenant, &id, &holder, now, until)
        .await
        .map_err(store_failure)?;
    if !taken {
        return Err(token_busy());
    }
    let granted = async {
        let integration = store
            .get_integration(&tenant, &connection.integration_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| ApiError::Conflict {
                detail:
                    "The connection's integration no longer exists: connect again through another."
                        .into(),
            })?;
        let mut given: BTreeMap<String, String> = open_credentials(vault, connection)
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.expose_secret().to_owned()))
            .collect();
        given.remove("access_token");
        let proven = prove(
            engine,
            settings,
            now,
            spec,
            mode,
            &integration.scopes,
            config,
            given,
        )
        .await?;
        let plain = serde_json::to_vec(&proven.credentials).map_err(|_| ApiError::Internal)?;
        let sealed = vault
            .seal(&owner(&tenant, &id), &plain)
            .await
            .map_err(vault_failure)?;
        connection.credentials = sealed;
        connection.token_expires_at_ms = proven.token_expires_at_ms;
        if proven.verified {
            connection.last_verified_at_ms = Some(now);
        }
        Ok(())
    }
    .await;
    match granted {
        Ok(()) => Ok(holder),
        Err(e) => {
            give_back(store, connection, &holder).await;
            Err(e)
        }
    }
}

/// Releases the refresh lease `holder` took; one not given back expires by itself.
async fn give_back<S: ControlStore>(store: &S, connection: &Connection, holder: &str) {
    let (tenant, id) = (&connection.tenant_id, &connection.id);
    if let Err(e) = store.release_refresh(tenant, id, holder).await {
        tracing::warn!(connection_id = %id, error = %e, "a refresh lease was not given back; it expires by itself");
    }
}

/// Writes a connection [`regrant`] renewed and releases its lease, on the condition that the
/// connection is still at `read_version` and the lease still this update's.
async fn swap_regranted<S: ControlStore>(
    store: &S,
    connection: &Connection,
    read_version: u64,
    holder: &str,
    event: &ConnectionEvent,
) -> Result<(), ApiError> {
    let outcome = store
        .swap_refreshed(connection, read_version, holder, event)
        .await;
    match outcome {
        Ok(tributary_core::ports::RefreshSwap::Swapped) => Ok(()),
        Ok(tributary_core::ports::RefreshSwap::LeaseLost) => Err(concurrent()),
        Err(e) => {
            give_back(store, connection, holder).await;
            match e {
                PortError::Conflict { .. } => Err(concurrent()),
                e => Err(store_failure(e)),
            }
        }
    }
}

/// Checks a connection's credentials with the provider's verification request. Accepted: its
/// verification time is recorded, and a connection that needed re-authorization is active again.
/// Refused: it moves to `needs_reauth` with the reason (an event records it). A provider that does
/// not answer usably changes nothing (502).
#[utoipa::path(post, path = "/v1/connections/{connection_id}/test", operation_id = "test_connection", tag = "Connections",
    params(("connection_id" = String, Path, description = "Connection id (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 200, description = "Tested: the connection with its status after the test", body = ConnectionOut),
              (status = 403, description = "Requires `connections:write`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant", body = ProblemDoc),
              (status = 409, description = "The provider's spec declares no verification request, or the connection changed concurrently", body = ProblemDoc),
              (status = 502, description = "The provider did not answer usably; nothing changed", body = ProblemDoc)))]
pub async fn test<S: ControlStore>(
    caller: TenantCaller<ConnectionsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    Id(id): Id<ConnectionId>,
) -> Result<Json<ConnectionOut>, ApiError> {
    let (log, time, tenant) = (store.0.clone(), clock.0.clone(), caller.tenant.clone());
    let retention = settings.operations_retention_days;
    crate::oplog::recorded(
        &*log,
        &*time,
        retention,
        &tenant,
        OperationKind::ConnectionChange,
        |d| d.op.name = Some("test".into()),
        |_: &Json<ConnectionOut>, _| {},
        async move {
    let mut connection = load(&*store, &caller.tenant, &id).await?;
    let spec = provider(&connection.provider)?;
    let mut fresh_token = None;
    if matches!(
        spec.auth.iter().find(|m| m.kind() == connection.auth_mode),
        Some(AuthMode::OAuth2AuthorizationCode(_) | AuthMode::OAuth2ClientCredentials(_))
    ) {
        // An OAuth token is tested as its users would get it: refreshed (or granted again) first
        // when it expires within the margin (one at a time across every environment).
        let grant = tributary_engine::grant::EngineGrant {
            store: &*store,
            vault: &vault,
            engine: &engine,
            origins: &settings.provider_origins,
            clock: &*clock,
        };
        let refresher = tributary_core::refresh::Refresher {
            store: &*store,
            vault: &vault,
            grant: &grant,
            clock: &*clock,
            policy: tributary_engine::grant::policy(spec),
        };
        match refresher.access_token(&caller.tenant, &id).await {
            Ok(token) => fresh_token = Some(token),
            Err(tributary_core::refresh::RefreshError::NeedsReauth(_)) => {
                let connection = load(&*store, &caller.tenant, &id).await?;
                return Ok(Json(ConnectionOut::from(connection)));
            }
            Err(tributary_core::refresh::RefreshError::Transient(_)) => {
                return Err(ApiError::ProviderUnavailable {
                    provider: spec.name.clone(),
                });
            }
            Err(tributary_core::refresh::RefreshError::Busy) => return Err(concurrent()),
            Err(tributary_core::refresh::RefreshError::NotFound) => {
                return Err(ApiError::NotFound {
                    resource: "connection",
                });
            }
            Err(e) => {
                tracing::error!(connection_id = %id, error = %e, "getting an access token failed");
                return Err(ApiError::Internal);
            }
        }
        // The refresh may have written the connection: test what is stored now.
        connection = load(&*store, &caller.tenant, &id).await?;
    }
    let mut credentials = open_credentials(&vault, &connection).await?;
    if let Some(token) = fresh_token {
        // The token the refresher handed out, also when a reconnect replaced the stored one.
        credentials.insert("access_token".into(), token);
    }
    let read_version = connection.version;
    let config = connection.config.clone();
    let verdict = verify(
        &engine,
        &settings,
        spec,
        &connection.auth_mode,
        &config,
        credentials,
    )
    .await?
    .ok_or_else(|| ApiError::Conflict {
        detail: format!(
            "The `{}` spec declares no verification request, so its connections cannot be tested.",
            spec.id
        ),
    })?;
    let now = clock.now_ms();
    let kind = match verdict {
        Verdict::Accepted => {
            connection.last_verified_at_ms = Some(now);
            (connection.status == ConnectionStatus::NeedsReauth).then(|| {
                connection.status = ConnectionStatus::Active;
                connection.status_reason = None;
                connection.status_changed_at_ms = now;
                ConnectionEventType::Reauthorized
            })
        }
        Verdict::Refused(status) => {
            let reason = format!(
                "{} refused the credentials (HTTP {status}) when they were tested",
                spec.name
            );
            if connection.status == ConnectionStatus::Active {
                connection.status = ConnectionStatus::NeedsReauth;
                connection.status_changed_at_ms = now;
            }
            connection.status_reason = Some(reason);
            Some(ConnectionEventType::VerificationFailed)
        }
    };
    connection.updated_at_ms = now;
    connection.version = read_version.saturating_add(1);
    let recorded =
        kind.map(|k| ConnectionEvent::of(&connection, k, connection.status_reason.clone(), now));
    save(&*store, &connection, read_version, recorded.as_ref()).await?;
    tracing::info!(connection_id = %id, status = connection.status.as_str(), "connection tested");
    Ok(Json(ConnectionOut::from(connection)))
},
    )
    .await
}

/// Revokes the connection's token at the provider where its auth mode declares a revocation
/// endpoint. Best effort: the connection is deleted whatever the provider answers. What happened,
/// for the deletion's event; `None` when there is nothing to revoke.
async fn revoke_at_provider<S: ControlStore>(
    store: &S,
    vault: &Vault,
    engine: &Engine,
    settings: &Config,
    connection: &Connection,
) -> Option<String> {
    let spec = provider(&connection.provider).ok()?;
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) =
        spec.auth.iter().find(|m| m.kind() == connection.auth_mode)
    else {
        return None;
    };
    let revoke = oauth.revoke.as_ref()?;
    let outcome: Result<(), &str> = async {
        let app = match revoke.client_auth {
            tributary_engine::spec::RevokeClientAuth::None => None,
            _ => {
                let integration = store
                    .get_integration(&connection.tenant_id, &connection.integration_id)
                    .await
                    .map_err(|_| "its integration could not be read")?
                    .ok_or("its integration is gone")?;
                Some(
                    tributary_engine::grant::client_app(vault, &integration)
                        .await
                        .map_err(|_| "the OAuth client could not be read")?,
                )
            }
        };
        let credentials = open_credentials(vault, connection)
            .await
            .map_err(|_| "its credentials could not be opened")?;
        let mut local = revoke.clone();
        local.url = settings.provider_url(&spec.id, &revoke.url);
        let request = tributary_engine::oauth::revoke_request(
            &local,
            &connection.config,
            app.as_ref(),
            &credentials,
        )
        .map_err(|_| "the revocation request cannot be built")?;
        engine
            .client()
            .send(&request)
            .await
            .map_err(|_| "the provider did not accept the revocation")?;
        Ok(())
    }
    .await;
    Some(match outcome {
        Ok(()) => {
            tracing::info!(connection_id = %connection.id, provider = %spec.id, "token revoked at the provider");
            "revoked at the provider".to_owned()
        }
        Err(why) => {
            tracing::warn!(connection_id = %connection.id, provider = %spec.id, why, "token not revoked at the provider");
            format!("not revoked at the provider: {why}")
        }
    })
}

/// Deletes a connection with its credentials, revoking its token at the provider first where the
/// provider's spec declares how (best effort: the deletion event says whether it worked).
#[utoipa::path(delete, path = "/v1/connections/{connection_id}", operation_id = "delete_connection", tag = "Connections",
    params(("connection_id" = String, Path, description = "Connection id (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$")),
    responses((status = 204, description = "Deleted, with its credentials"),
              (status = 403, description = "Requires `connections:write`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant", body = ProblemDoc),
              (status = 409, description = "Syncs read through the connection: delete them first", body = ProblemDoc)))]
pub async fn delete<S: ControlStore>(
    caller: TenantCaller<ConnectionsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    Id(id): Id<ConnectionId>,
) -> Result<StatusCode, ApiError> {
    let (log, time, tenant) = (store.0.clone(), clock.0.clone(), caller.tenant.clone());
    let retention = settings.operations_retention_days;
    crate::oplog::recorded(
        &*log,
        &*time,
        retention,
        &tenant,
        OperationKind::ConnectionChange,
        |d| d.op.name = Some("delete".into()),
        |_: &StatusCode, _| {},
        async move {
    let connection = load(&*store, &caller.tenant, &id).await?;
    // Its syncs' records belong to it: deleting them is the tenant's decision, not a side effect.
    if has_syncs(&*store, &caller.tenant, &id).await? {
        return Err(ApiError::Conflict {
            detail: format!(
                "Syncs read through connection `{id}`. Delete them first, with their records \
                 (GET /v1/syncs?connection_id={id})."
            ),
        });
    }
    let revoked = revoke_at_provider(&*store, &vault, &engine, &settings, &connection).await;
    let now = clock.now_ms();
    if store
        .delete_connection(
            &caller.tenant,
            &id,
            &ConnectionEvent::of(&connection, ConnectionEventType::Deleted, revoked, now),
            &audit(&connection, &caller.principal, now, "connection.deleted"),
        )
        .await
        .map_err(store_failure)?
    {
        tracing::info!(connection_id = %id, "connection deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            resource: "connection",
        })
    }
},
    )
    .await
}

async fn has_syncs<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &ConnectionId,
) -> Result<bool, ApiError> {
    let filter = tributary_core::sync::SyncFilter {
        connection_id: Some(id.clone()),
    };
    crate::routes::any_listed(|page| {
        let filter = filter.clone();
        async move { store.list_syncs(tenant, &filter, &page).await }
    })
    .await
}

/// The connection operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list, create, get, update, test, delete]
}
