//! `/v1/integrations`: a tenant's configuration of a catalog provider — the auth mode its end users
//! connect with, the tenant's own OAuth client (the secret is sealed by the vault and never shown
//! again), the scopes it requests, the exact pages a connect session may return to, and the
//! provider's inbound webhooks (`POST /v1/webhooks/{integration_id}`): their signing secret
//! (write-only, sealed), a verification token the provider sent (Notion), shown to the tenant to
//! paste back into the provider and set as the webhook secret before it verifies anything, and
//! what verified events do. Every input is checked against the provider's spec; every change is audited.

use axum::http::StatusCode;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use tributary_core::PortError;
use tributary_core::auth::Principal;
use tributary_core::ids::{IntegrationId, TenantId};
use tributary_core::inbound::{VERIFICATION_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE, WebhookRouting};
use tributary_core::integration::{CLIENT_SECRET_PURPOSE, Integration};
use tributary_core::ports::QueueStats;
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{EpochMillis, rfc3339};
use tributary_core::vault::{Owner, Vault, VaultError};
use tributary_engine::spec::{AuthMode, ProviderSpec, WebhookSecret};
use utoipa::ToSchema;

use crate::access::{IntegrationsRead, IntegrationsWrite, TenantCaller};
use crate::dto::{PageOf, check_name};
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of};
use crate::problem::ApiError;
use crate::request::{Id, JsonBody, invalid};
use crate::response::{Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Secrets, Store};

/// Most return URLs an integration may list.
const MAX_RETURN_URLS: usize = 20;
/// Most scopes an integration may request.
const MAX_SCOPES: usize = 100;

/// An integration to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "hubspot", "oauth_client_id": "5f1c…", "oauth_client_secret": "…", "scopes": ["crm.objects.contacts.read"], "return_urls": ["https://app.example.com/integrations/done"]}))]
pub struct IntegrationIn {
    /// The catalog provider's id (`hubspot`, `stripe`).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub provider: String,
    /// The tenant's name for it (default: the provider's name).
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// The spec's auth mode end users connect with (default: the provider's first).
    #[schema(example = "oauth2_authorization_code")]
    pub auth_mode: Option<String>,
    /// The tenant's OAuth client id: required for `oauth2_authorization_code`, refused otherwise.
    #[schema(min_length = 1, max_length = 512)]
    pub oauth_client_id: Option<String>,
    /// The tenant's OAuth client secret: required with the client id; write-only.
    #[schema(min_length = 1, max_length = 4096, write_only)]
    pub oauth_client_secret: Option<String>,
    /// Scopes requested at authorization (OAuth modes; default: the spec's).
    #[schema(max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// Where a connect session may send the end user back to, compared exactly: https, or http on a
    /// loopback host for development.
    #[schema(max_items = 20)]
    pub return_urls: Option<Vec<String>>,
    /// Whether new connections may be made (default `true`).
    pub enabled: Option<bool>,
    /// The signing secret of the provider's webhooks (Stripe's endpoint secret `whsec_…`, a
    /// GitHub App's webhook secret, Slack's signing secret; Notion's verification token), for a
    /// provider whose spec verifies with it; write-only.
    #[schema(min_length = 1, max_length = 4096, write_only)]
    pub webhook_secret: Option<String>,
    /// What the provider's verified webhooks do for the connections they route to (default
    /// `both`).
    pub webhook_routing: Option<WebhookRoutingDto>,
}

/// What a provider's verified webhook does for each connection it routes to (the connections
/// of the integration whose `provider_account` tag is the event's account).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookRoutingDto {
    /// Start a run of each of the connection's active syncs that has none in progress.
    Sync,
    /// Forward it to the tenant's webhook endpoints as `provider.event`.
    Forward,
    /// Both.
    Both,
}

impl From<WebhookRoutingDto> for WebhookRouting {
    fn from(r: WebhookRoutingDto) -> Self {
        match r {
            WebhookRoutingDto::Sync => WebhookRouting::Sync,
            WebhookRoutingDto::Forward => WebhookRouting::Forward,
            WebhookRoutingDto::Both => WebhookRouting::Both,
        }
    }
}

impl From<WebhookRouting> for WebhookRoutingDto {
    fn from(r: WebhookRouting) -> Self {
        match r {
            WebhookRouting::Sync => WebhookRoutingDto::Sync,
            WebhookRouting::Forward => WebhookRoutingDto::Forward,
            WebhookRouting::Both => WebhookRoutingDto::Both,
        }
    }
}

/// Changes to an integration; absent fields stay as they are. The provider and the auth mode are
/// fixed at creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": false}))]
pub struct IntegrationPatch {
    /// New name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// New OAuth client id.
    #[schema(min_length = 1, max_length = 512)]
    pub oauth_client_id: Option<String>,
    /// New OAuth client secret (write-only).
    #[schema(min_length = 1, max_length = 4096, write_only)]
    pub oauth_client_secret: Option<String>,
    /// New scopes.
    #[schema(max_items = 100)]
    pub scopes: Option<Vec<String>>,
    /// New return URLs (replaces the list).
    #[schema(max_items = 20)]
    pub return_urls: Option<Vec<String>>,
    /// Whether new connections may be made.
    pub enabled: Option<bool>,
    /// New webhook signing secret (write-only). For Notion, the verification token it sent
    /// (`GET /v1/integrations/{integration_id}/webhook-verification-token`), once pasted into
    /// Notion: setting it confirms the token, which verifies nothing until then.
    #[schema(min_length = 1, max_length = 4096, write_only)]
    pub webhook_secret: Option<String>,
    /// New webhook routing.
    pub webhook_routing: Option<WebhookRoutingDto>,
}

/// An integration. Its secrets are never shown, only whether they are set.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationOut {
    /// Id (`int_…`).
    pub id: String,
    /// The catalog provider.
    pub provider: String,
    /// Name.
    pub name: String,
    /// The auth mode end users connect with.
    pub auth_mode: String,
    /// The OAuth client id.
    pub oauth_client_id: Option<String>,
    /// Whether an OAuth client secret is stored.
    pub has_oauth_client_secret: bool,
    /// Scopes requested at authorization.
    pub scopes: Vec<String>,
    /// Where connect sessions may return to.
    pub return_urls: Vec<String>,
    /// Whether new connections may be made.
    pub enabled: bool,
    /// Whether a webhook signing secret is stored.
    pub has_webhook_secret: bool,
    /// Whether the provider sent a verification token that waits for the tenant's confirmation
    /// (Notion): read it, paste it into the provider, then set it as the `webhook_secret`.
    pub has_pending_verification_token: bool,
    /// What the provider's verified webhooks do.
    pub webhook_routing: WebhookRoutingDto,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Integration> for IntegrationOut {
    fn from(i: Integration) -> Self {
        Self {
            id: i.id.to_string(),
            provider: i.provider,
            name: i.name,
            auth_mode: i.auth_mode,
            oauth_client_id: i.oauth_client_id,
            has_oauth_client_secret: i.oauth_client_secret.is_some(),
            scopes: i.scopes,
            return_urls: i.return_urls,
            enabled: i.enabled,
            has_webhook_secret: i.webhook_secret.is_some(),
            has_pending_verification_token: i.webhook_verification_token.is_some(),
            webhook_routing: i.webhook_routing.into(),
            created_at: rfc3339(i.created_at_ms).unwrap_or_default(),
            updated_at: rfc3339(i.updated_at_ms).unwrap_or_default(),
        }
    }
}

/// The catalog provider `id`.
pub(crate) fn provider(id: &str) -> Result<&'static ProviderSpec, ApiError> {
    let catalog = tributary_engine::catalog::shared().map_err(|e| {
        tracing::error!(error = %e, "the embedded catalog does not load");
        ApiError::Internal
    })?;
    catalog.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = catalog.iter().map(|s| s.id.as_str()).collect();
        invalid(
            "/provider",
            &format!(
                "Unknown provider `{}`. The catalog has: {}.",
                id.chars().take(64).collect::<String>(),
                known.join(", ")
            ),
        )
    })
}

/// The spec's auth mode `kind`, or its first.
fn auth_mode<'s>(spec: &'s ProviderSpec, kind: Option<&str>) -> Result<&'s AuthMode, ApiError> {
    let supported = || {
        spec.auth
            .iter()
            .map(AuthMode::kind)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        None => spec.auth.first().ok_or_else(|| {
            invalid(
                "/provider",
                "This provider declares no auth mode, so nothing can connect to it.",
            )
        }),
        Some(kind) => spec.auth.iter().find(|m| m.kind() == kind).ok_or_else(|| {
            invalid(
                "/auth_mode",
                &format!(
                    "`{}` does not support `{}`. Supported: {}.",
                    spec.id,
                    kind.chars().take(64).collect::<String>(),
                    supported()
                ),
            )
        }),
    }
}

fn check_client_id(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > 512 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "/oauth_client_id",
            "`oauth_client_id` must be 1 to 512 printable ASCII characters without spaces.",
        ));
    }
    Ok(id.to_owned())
}

fn check_client_secret(secret: &str) -> Result<(), ApiError> {
    if secret.is_empty() || secret.len() > 4096 || secret.chars().any(char::is_control) {
        return Err(invalid(
            "/oauth_client_secret",
            "`oauth_client_secret` must be 1 to 4096 characters without control characters.",
        ));
    }
    Ok(())
}

fn check_scopes(scopes: &[String]) -> Result<Vec<String>, ApiError> {
    if scopes.len() > MAX_SCOPES {
        return Err(invalid("/scopes", &format!("At most {MAX_SCOPES} scopes.")));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.len() > 256 || !scope.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                &format!("/scopes/{i}"),
                "A scope is 1 to 256 printable ASCII characters without spaces.",
            ));
        }
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    Ok(out)
}

/// Return URLs by the issuer-URL policy (https, or http on a loopback host), without a fragment,
/// written as they will be compared: exactly.
fn check_return_urls(urls: &[String]) -> Result<Vec<String>, ApiError> {
    use tributary_http::issuer_url::validate_registration;
    if urls.len() > MAX_RETURN_URLS {
        return Err(invalid(
            "/return_urls",
            &format!("At most {MAX_RETURN_URLS} return URLs."),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(urls.len());
    for (i, raw) in urls.iter().enumerate() {
        let pointer = format!("/return_urls/{i}");
        let Ok(url) = validate_registration(raw) else {
            return Err(invalid(
                &pointer,
                "A return URL is an absolute https URL of at most 512 characters without credentials (http only on a loopback host, for development).",
            ));
        };
        if url.fragment().is_some() {
            return Err(invalid(&pointer, "A return URL has no fragment (`#…`)."));
        }
        if url.as_str() != raw {
            return Err(invalid(
                &pointer,
                &format!(
                    "Return URLs are compared exactly; write this one as `{}`.",
                    url.as_str()
                ),
            ));
        }
        if !out.contains(raw) {
            out.push(raw.clone());
        }
    }
    Ok(out)
}

/// Whether the mode is configured with the tenant's OAuth client (and scopes).
fn uses_client(mode: &AuthMode) -> bool {
    matches!(mode, AuthMode::OAuth2AuthorizationCode(_))
}

fn uses_scopes(mode: &AuthMode) -> bool {
    matches!(
        mode,
        AuthMode::OAuth2AuthorizationCode(_) | AuthMode::OAuth2ClientCredentials(_)
    )
}

fn spec_scopes(mode: &AuthMode) -> Vec<String> {
    match mode {
        AuthMode::OAuth2AuthorizationCode(o) => o.scopes.clone(),
        AuthMode::OAuth2ClientCredentials(o) => o.scopes.clone(),
        _ => Vec::new(),
    }
}

/// Checks what the mode demands of a (created or patched) integration.
fn check_against_mode(integration: &Integration, mode: &AuthMode) -> Result<(), ApiError> {
    if uses_client(mode) {
        if integration.oauth_client_id.is_none() {
            return Err(invalid(
                "/oauth_client_id",
                "OAuth integrations connect end users with the tenant's own OAuth app: give its `oauth_client_id` and `oauth_client_secret`.",
            ));
        }
        if integration.oauth_client_secret.is_none() {
            return Err(invalid(
                "/oauth_client_secret",
                "OAuth integrations need the OAuth app's `oauth_client_secret` with its client id.",
            ));
        }
    } else if integration.oauth_client_id.is_some() || integration.oauth_client_secret.is_some() {
        let pointer = if integration.oauth_client_id.is_some() {
            "/oauth_client_id"
        } else {
            "/oauth_client_secret"
        };
        return Err(invalid(
            pointer,
            &format!(
                "The `{}` mode does not use an OAuth client of the tenant; remove it.",
                mode.kind()
            ),
        ));
    }
    if !uses_scopes(mode) && !integration.scopes.is_empty() {
        return Err(invalid(
            "/scopes",
            &format!(
                "The `{}` mode requests no scopes; remove them.",
                mode.kind()
            ),
        ));
    }
    Ok(())
}

fn owner<'a>(tenant: &'a TenantId, id: &'a IntegrationId) -> Owner<'a> {
    sealed_for(tenant, id, CLIENT_SECRET_PURPOSE)
}

/// What one of an integration's sealed values is bound to.
pub(crate) fn sealed_for<'a>(
    tenant: &'a TenantId,
    id: &'a IntegrationId,
    purpose: &'a str,
) -> Owner<'a> {
    Owner {
        tenant: tenant.as_str(),
        object: id.as_str(),
        purpose,
    }
}

fn check_webhook_secret(secret: &str) -> Result<(), ApiError> {
    if secret.is_empty() || secret.len() > 4096 || secret.chars().any(char::is_control) {
        return Err(invalid(
            "/webhook_secret",
            "`webhook_secret` must be 1 to 4096 characters without control characters.",
        ));
    }
    Ok(())
}

/// Refuses webhook settings the provider's spec has no use for: a secret unless its webhooks are
/// verified with one the tenant configures (a Notion verification token included), routing
/// unless it sends webhooks at all.
fn check_webhook_settings(
    spec: &ProviderSpec,
    secret: bool,
    routing: bool,
) -> Result<(), ApiError> {
    let Some(webhooks) = &spec.webhooks else {
        if secret || routing {
            let pointer = if secret {
                "/webhook_secret"
            } else {
                "/webhook_routing"
            };
            return Err(invalid(
                pointer,
                &format!(
                    "`{}` sends no webhooks Tributary verifies; remove it.",
                    spec.id
                ),
            ));
        }
        return Ok(());
    };
    if secret
        && !matches!(
            webhooks.secret,
            WebhookSecret::WebhookSecret | WebhookSecret::Handshake
        )
    {
        let from = match &webhooks.secret {
            WebhookSecret::ClientSecret => {
                "with the integration's `oauth_client_secret`".to_owned()
            }
            WebhookSecret::Connection { name } => {
                format!("with each connection's `{name}` credential")
            }
            _ => "otherwise".to_owned(),
        };
        return Err(invalid(
            "/webhook_secret",
            &format!(
                "`{}` signs its webhooks {from}, not a separate webhook secret; remove it.",
                spec.id
            ),
        ));
    }
    Ok(())
}

/// A vault failure: 503 when the keyring could not be read (retry), else 500; logged without any
/// value.
pub(crate) fn vault_failure(e: VaultError) -> ApiError {
    tracing::error!(error = %e, "the credential vault failed");
    match e {
        VaultError::Source(p) if p.is_retryable() => ApiError::Unavailable,
        _ => ApiError::Internal,
    }
}

async fn seal(
    vault: &Vault,
    tenant: &TenantId,
    id: &IntegrationId,
    secret: &str,
) -> Result<String, ApiError> {
    check_client_secret(secret)?;
    vault
        .seal(&owner(tenant, id), secret.as_bytes())
        .await
        .map_err(vault_failure)
}

async fn seal_webhook_secret(
    vault: &Vault,
    tenant: &TenantId,
    id: &IntegrationId,
    secret: &str,
) -> Result<String, ApiError> {
    check_webhook_secret(secret)?;
    vault
        .seal(
            &sealed_for(tenant, id, WEBHOOK_SECRET_PURPOSE),
            secret.as_bytes(),
        )
        .await
        .map_err(vault_failure)
}

/// `stored` re-sealed under the active key when it was sealed under a retired one (rotation: a
/// value is re-sealed when its integration is next written).
async fn resealed(vault: &Vault, owner: &Owner<'_>, stored: &str) -> Result<String, ApiError> {
    let (plain, old) = vault.open(owner, stored).await.map_err(vault_failure)?;
    if !old {
        return Ok(stored.to_owned());
    }
    vault
        .seal(owner, plain.expose_secret())
        .await
        .map_err(vault_failure)
}

fn audit(
    tenant: &TenantId,
    actor: &Principal,
    at_ms: EpochMillis,
    action: &str,
    target: &IntegrationId,
) -> AuditEvent {
    AuditEvent::new(tenant, &actor.principal, at_ms, action, target)
}

/// Lists the tenant's integrations.
#[utoipa::path(get, path = "/v1/integrations", operation_id = "list_integrations", tag = "Integrations",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of integrations", body = PageOf<IntegrationOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `integrations:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<IntegrationsRead>,
    store: Store<S>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<IntegrationOut>>, ApiError> {
    let found = store
        .list_integrations(&caller.tenant, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, IntegrationOut::from)))
}

/// Configures a provider for the caller's tenant, checked against the provider's spec.
#[utoipa::path(post, path = "/v1/integrations", operation_id = "create_integration", tag = "Integrations", request_body = IntegrationIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Created", body = IntegrationOut),
              (status = 400, description = "Unknown provider, an auth mode it does not support, OAuth client credentials missing (or given to a mode that does not use them), or a bad scope or return URL", body = ProblemDoc),
              (status = 403, description = "Requires `integrations:write`", body = ProblemDoc),
              (status = 409, description = "Same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<IntegrationsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    Idempotent(input): Idempotent<IntegrationIn>,
) -> Result<Created<IntegrationOut>, ApiError> {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    let spec = provider(&input.provider)?;
    let mode = auth_mode(spec, input.auth_mode.as_deref())?;
    let now = clock.now_ms();
    let id = IntegrationId::generate();
    let oauth_client_secret = match &input.oauth_client_secret {
        Some(secret) => Some(seal(&vault, &tenant, &id, secret).await?),
        None => None,
    };
    check_webhook_settings(
        spec,
        input.webhook_secret.is_some(),
        input.webhook_routing.is_some(),
    )?;
    let webhook_secret = match &input.webhook_secret {
        Some(secret) => Some(seal_webhook_secret(&vault, &tenant, &id, secret).await?),
        None => None,
    };
    let integration = Integration {
        name: match &input.name {
            Some(name) => check_name("/name", name)?,
            None => spec.name.clone(),
        },
        provider: spec.id.clone(),
        auth_mode: mode.kind().to_owned(),
        oauth_client_id: input
            .oauth_client_id
            .as_deref()
            .map(check_client_id)
            .transpose()?,
        oauth_client_secret,
        scopes: match &input.scopes {
            Some(scopes) => check_scopes(scopes)?,
            None => spec_scopes(mode),
        },
        return_urls: check_return_urls(input.return_urls.as_deref().unwrap_or_default())?,
        enabled: input.enabled.unwrap_or(true),
        webhook_secret,
        webhook_verification_token: None,
        webhook_routing: input.webhook_routing.map(Into::into).unwrap_or_default(),
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
        tenant_id: tenant.clone(),
        id,
    };
    check_against_mode(&integration, mode)?;
    store
        .create_integration(
            &integration,
            &audit(
                &tenant,
                &principal,
                now,
                "integration.created",
                &integration.id,
            ),
        )
        .await
        .map_err(store_failure)?;
    tracing::info!(integration_id = %integration.id, provider = %integration.provider, "integration created");
    Ok(Created {
        location: format!("/v1/integrations/{}", integration.id),
        body: IntegrationOut::from(integration),
    })
}

/// Reads one of the tenant's integrations.
#[utoipa::path(get, path = "/v1/integrations/{integration_id}", operation_id = "get_integration", tag = "Integrations",
    params(("integration_id" = String, Path, description = "Integration id (`int_…`)", pattern = "^int_[0-9a-f]{32}$")),
    responses((status = 200, description = "The integration", body = IntegrationOut),
              (status = 403, description = "Requires `integrations:read`", body = ProblemDoc),
              (status = 404, description = "No such integration for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<IntegrationsRead>,
    store: Store<S>,
    Id(id): Id<IntegrationId>,
) -> Result<Json<IntegrationOut>, ApiError> {
    Ok(Json(IntegrationOut::from(
        load(&*store, &caller.tenant, &id).await?,
    )))
}

async fn load<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &IntegrationId,
) -> Result<Integration, ApiError> {
    store
        .get_integration(tenant, id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound {
            resource: "integration",
        })
}

/// Changes one of the tenant's integrations; the result is checked against the provider's spec
/// as a new one would be.
#[utoipa::path(patch, path = "/v1/integrations/{integration_id}", operation_id = "update_integration", tag = "Integrations", request_body = IntegrationPatch,
    params(("integration_id" = String, Path, description = "Integration id (`int_…`)", pattern = "^int_[0-9a-f]{32}$")),
    responses((status = 200, description = "The updated integration", body = IntegrationOut),
              (status = 400, description = "Invalid body, or a change the provider's auth mode does not allow", body = ProblemDoc),
              (status = 403, description = "Requires `integrations:write`", body = ProblemDoc),
              (status = 404, description = "No such integration for this tenant", body = ProblemDoc),
              (status = 409, description = "Changed concurrently; retry", body = ProblemDoc)))]
pub async fn update<S: ControlStore>(
    caller: TenantCaller<IntegrationsWrite>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    Id(id): Id<IntegrationId>,
    JsonBody(patch): JsonBody<IntegrationPatch>,
) -> Result<Json<IntegrationOut>, ApiError> {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    // Sealed once, outside the retry loop: the same ciphertext is written whichever attempt wins.
    let sealed = match &patch.oauth_client_secret {
        Some(secret) => Some(seal(&vault, &tenant, &id, secret).await?),
        None => None,
    };
    let sealed_webhook_secret = match &patch.webhook_secret {
        Some(secret) => Some(seal_webhook_secret(&vault, &tenant, &id, secret).await?),
        None => None,
    };
    let mut attempts = 0;
    let integration = loop {
        let mut integration = load(&*store, &tenant, &id).await?;
        let read_version = integration.version;
        let spec = provider(&integration.provider)?;
        let mode = auth_mode(spec, Some(&integration.auth_mode))?;
        if let Some(name) = &patch.name {
            integration.name = check_name("/name", name)?;
        }
        if let Some(client_id) = &patch.oauth_client_id {
            integration.oauth_client_id = Some(check_client_id(client_id)?);
        }
        match (&sealed, &integration.oauth_client_secret) {
            (Some(sealed), _) => integration.oauth_client_secret = Some(sealed.clone()),
            // Rotation: a secret sealed under a retired key is re-sealed under the active one
            // when the integration is next written.
            (None, Some(stored)) => {
                let (plain, old) = vault
                    .open(&owner(&tenant, &id), stored)
                    .await
                    .map_err(vault_failure)?;
                if old {
                    integration.oauth_client_secret = Some(
                        vault
                            .seal(&owner(&tenant, &id), plain.expose_secret())
                            .await
                            .map_err(vault_failure)?,
                    );
                }
            }
            (None, None) => {}
        }
        if let Some(scopes) = &patch.scopes {
            integration.scopes = check_scopes(scopes)?;
        }
        if let Some(urls) = &patch.return_urls {
            integration.return_urls = check_return_urls(urls)?;
        }
        if let Some(enabled) = patch.enabled {
            integration.enabled = enabled;
        }
        check_webhook_settings(
            spec,
            patch.webhook_secret.is_some(),
            patch.webhook_routing.is_some(),
        )?;
        if let Some(routing) = patch.webhook_routing {
            integration.webhook_routing = routing.into();
        }
        let secret_owner = sealed_for(&tenant, &id, WEBHOOK_SECRET_PURPOSE);
        let token_owner = sealed_for(&tenant, &id, VERIFICATION_TOKEN_PURPOSE);
        match (&sealed_webhook_secret, &integration.webhook_secret) {
            // The tenant's secret settles a pending token: it is the token they checked in the
            // provider (or a new secret altogether).
            (Some(sealed), _) => {
                integration.webhook_secret = Some(sealed.clone());
                integration.webhook_verification_token = None;
            }
            (None, Some(stored)) => {
                integration.webhook_secret = Some(resealed(&vault, &secret_owner, stored).await?);
            }
            (None, None) => {}
        }
        if let Some(pending) = &integration.webhook_verification_token {
            integration.webhook_verification_token =
                Some(resealed(&vault, &token_owner, pending).await?);
        }
        check_against_mode(&integration, mode)?;
        let now = clock.now_ms();
        integration.updated_at_ms = now;
        integration.version = read_version.saturating_add(1);
        let event = audit(&tenant, &principal, now, "integration.updated", &id);
        match store
            .update_integration(&integration, read_version, &event)
            .await
        {
            Ok(true) => break integration,
            Ok(false) => {
                return Err(ApiError::NotFound {
                    resource: "integration",
                });
            }
            Err(PortError::Conflict { .. }) if attempts < 4 => attempts += 1,
            Err(PortError::Conflict { .. }) => {
                return Err(ApiError::Conflict {
                    detail: "The integration is being changed concurrently. Retry the request."
                        .into(),
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
    };
    tracing::info!(integration_id = %integration.id, "integration updated");
    Ok(Json(IntegrationOut::from(integration)))
}

/// Deletes one of the tenant's integrations, with its sealed client secret.
#[utoipa::path(delete, path = "/v1/integrations/{integration_id}", operation_id = "delete_integration", tag = "Integrations",
    params(("integration_id" = String, Path, description = "Integration id (`int_…`)", pattern = "^int_[0-9a-f]{32}$")),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "Requires `integrations:write`", body = ProblemDoc),
              (status = 404, description = "No such integration for this tenant", body = ProblemDoc),
              (status = 409, description = "Connections were made through it: delete them first", body = ProblemDoc)))]
pub async fn delete<S: ControlStore>(
    caller: TenantCaller<IntegrationsWrite>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<IntegrationId>,
) -> Result<StatusCode, ApiError> {
    // Its connections' refreshes and revocations need its OAuth client: they go first.
    if has_connections(&*store, &caller.tenant, &id).await? {
        return Err(ApiError::Conflict {
            detail: format!(
                "Connections were made through integration `{id}`. Delete them first \
                 (GET /v1/connections?integration_id={id})."
            ),
        });
    }
    let event = audit(
        &caller.tenant,
        &caller.principal,
        clock.now_ms(),
        "integration.deleted",
        &id,
    );
    if store
        .delete_integration(&caller.tenant, &id, &event)
        .await
        .map_err(store_failure)?
    {
        tracing::info!(integration_id = %id, "integration deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            resource: "integration",
        })
    }
}

/// Whether any of the tenant's connections was made through `id` (reading the tenant's
/// connections page by page until one is found).
async fn has_connections<S: ControlStore>(
    store: &S,
    tenant: &TenantId,
    id: &IntegrationId,
) -> Result<bool, ApiError> {
    let filter = tributary_core::connection::ConnectionFilter {
        integration_id: Some(id.clone()),
        ..Default::default()
    };
    crate::routes::any_listed(|page| {
        let filter = filter.clone();
        async move { store.list_connections(tenant, &filter, &page).await }
    })
    .await
}

/// A verification token the provider sent, to paste into the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationTokenOut {
    /// The token, exactly as the provider sent it.
    pub verification_token: String,
}

/// Reads the verification token the provider sent to the integration's webhook URL (Notion's
/// subscription handshake), which the provider asks for back in its own settings. It verifies
/// nothing until the tenant sets it as the integration's `webhook_secret` (`PATCH`): the request
/// that carried it was not signed, so anyone could have sent it; the provider accepting it back
/// is the check, and the tenant confirms the very value it pasted.
#[utoipa::path(get, path = "/v1/integrations/{integration_id}/webhook-verification-token", operation_id = "get_webhook_verification_token", tag = "Integrations",
    params(("integration_id" = String, Path, description = "Integration id (`int_…`)", pattern = "^int_[0-9a-f]{32}$")),
    responses((status = 200, description = "The pending token", body = VerificationTokenOut),
              (status = 403, description = "Requires `integrations:write`", body = ProblemDoc),
              (status = 404, description = "No such integration for this tenant", body = ProblemDoc),
              (status = 409, description = "No verification token is pending", body = ProblemDoc)))]
pub async fn verification_token<S: ControlStore>(
    caller: TenantCaller<IntegrationsWrite>,
    store: Store<S>,
    vault: Secrets,
    Id(id): Id<IntegrationId>,
) -> Result<Json<VerificationTokenOut>, ApiError> {
    let integration = load(&*store, &caller.tenant, &id).await?;
    let Some(pending) = &integration.webhook_verification_token else {
        return Err(ApiError::Conflict {
            detail: format!(
                "No verification token is pending for integration `{id}`: the provider has not sent one to POST /v1/webhooks/{id} yet, or a `webhook_secret` was set since."
            ),
        });
    };
    let (token, _) = vault
        .open(
            &sealed_for(&caller.tenant, &id, VERIFICATION_TOKEN_PURPOSE),
            pending,
        )
        .await
        .map_err(vault_failure)?;
    let token = String::from_utf8(token.expose_secret().to_vec()).map_err(|_| {
        tracing::error!(integration_id = %id, "a stored verification token is not text");
        ApiError::Internal
    })?;
    tracing::info!(integration_id = %id, principal = %caller.principal.principal, "pending webhook verification token read");
    Ok(Json(VerificationTokenOut {
        verification_token: token,
    }))
}

/// The integration operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list, create, get, update, delete, verification_token]
}
