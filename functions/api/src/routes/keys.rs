//! `/v1/keys`: the caller's tenant's API keys; `/v1/tenants/{id}/keys`: an admin issues a tenant's
//! first key. Secrets are shown once, stored as hashes, and every creation and revocation is audited.

use secrecy::ExposeSecret;
use tributary_core::apikey;
use tributary_core::auth::Principal;
use tributary_core::ids::{ApiKeyId, AuditEventId, TenantId};
use tributary_core::ports::QueueStats;
use tributary_core::tenancy::{ApiKeyRecord, AuditEvent};

use crate::access::{Admin, KeysRead, KeysWrite, Scoped, TenantCaller};
use crate::dto::{ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, PageOf, bounded_expiry};
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of};
use crate::problem::ApiError;
use crate::request::Id;
use crate::response::{Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Store};

/// Lists the tenant's keys (without secrets).
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "API keys",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of keys", body = PageOf<ApiKeyOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `keys:read` and a tenant credential", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<KeysRead>,
    store: Store<S>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<ApiKeyOut>>, ApiError> {
    let found = store
        .list_keys(&caller.tenant, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, ApiKeyOut::from)))
}

/// Creates a key for the caller's tenant.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "API keys", request_body = ApiKeyIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h (without the secret)")),
    responses((status = 201, description = "Created; `secret` is shown only now", body = ApiKeyCreatedOut),
              (status = 400, description = "Invalid body: no scopes, `admin` requested, or an expiry after the caller's own", body = ProblemDoc),
              (status = 403, description = "Requires `keys:write`; cannot grant scopes the caller lacks", body = ProblemDoc),
              (status = 409, description = "Same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<KeysWrite>,
    store: Store<S>,
    clock: Clock,
    Idempotent(input): Idempotent<ApiKeyIn>,
) -> Result<Created<ApiKeyCreatedOut>, ApiError> {
    issue(&*store, &clock, &caller.principal, caller.tenant, input).await
}

/// Creates a key for a tenant (deployment admin).
#[utoipa::path(post, path = "/v1/tenants/{tenant_id}/keys", operation_id = "create_tenant_key", tag = "Tenants", request_body = ApiKeyIn,
    params(("tenant_id" = String, Path, description = "Tenant id (`ten_…`)", pattern = "^ten_[0-9a-f]{32}$"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h (without the secret)")),
    responses((status = 201, description = "Created; `secret` is shown only now", body = ApiKeyCreatedOut),
              (status = 400, description = "Invalid body; `admin` cannot be granted to a tenant's key", body = ProblemDoc),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc),
              (status = 404, description = "No such tenant", body = ProblemDoc)))]
pub async fn create_for_tenant<S: ControlStore>(
    caller: Scoped<Admin>,
    store: Store<S>,
    clock: Clock,
    Id(tenant): Id<TenantId>,
    Idempotent(input): Idempotent<ApiKeyIn>,
) -> Result<Created<ApiKeyCreatedOut>, ApiError> {
    if store
        .get_tenant(&tenant)
        .await
        .map_err(store_failure)?
        .is_none()
    {
        return Err(ApiError::NotFound { resource: "tenant" });
    }
    issue(&*store, &clock, &caller.principal, tenant, input).await
}

async fn issue<S: ControlStore>(
    store: &S,
    clock: &Clock,
    creator: &Principal,
    tenant: TenantId,
    input: ApiKeyIn,
) -> Result<Created<ApiKeyCreatedOut>, ApiError> {
    let now = clock.now_ms();
    let (name, scopes, requested_expiry) = input.validate(now)?;
    let expires_at_ms = bounded_expiry("/expires_at", requested_expiry, creator)?;
    if let Some(lacking) = scopes.iter().find(|s| !creator.has_scope(**s)) {
        return Err(ApiError::ScopeEscalation {
            scope: lacking.as_str(),
        });
    }
    let generated = apikey::generate();
    let record = ApiKeyRecord {
        id: generated.id.clone(),
        tenant_id: tenant.clone(),
        name,
        scopes,
        secret_hash: generated.secret_hash,
        created_at_ms: now,
        expires_at_ms,
        revoked_at_ms: None,
        created_by: creator.principal.clone(),
    };
    let audit = AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: tenant,
        at_ms: now,
        actor: creator.principal.clone(),
        action: "api_key.created".into(),
        target: record.id.to_string(),
    };
    store
        .create_key(&record, &audit)
        .await
        .map_err(store_failure)?;
    tracing::info!(key_id = %record.id, tenant_id = %record.tenant_id, "API key created");
    Ok(Created {
        location: format!("/v1/keys/{}", record.id),
        body: ApiKeyCreatedOut {
            key: ApiKeyOut::from(record),
            secret: Some(generated.token.expose_secret().to_owned()),
        },
    })
}

/// Reads one of the tenant's keys.
#[utoipa::path(get, path = "/v1/keys/{key_id}", operation_id = "get_key", tag = "API keys",
    params(("key_id" = String, Path, description = "Key id (`key_…`)", pattern = "^key_[0-9a-f]{32}$")),
    responses((status = 200, description = "The key", body = ApiKeyOut),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc),
              (status = 404, description = "No such key for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<KeysRead>,
    store: Store<S>,
    Id(id): Id<ApiKeyId>,
) -> Result<Json<ApiKeyOut>, ApiError> {
    match store.get_key(&id).await.map_err(store_failure)? {
        Some(key) if key.tenant_id == caller.tenant => Ok(Json(ApiKeyOut::from(key))),
        _ => Err(ApiError::NotFound {
            resource: "API key",
        }),
    }
}

/// Revokes one of the tenant's keys (idempotent: revoking twice keeps the first time).
#[utoipa::path(delete, path = "/v1/keys/{key_id}", operation_id = "revoke_key", tag = "API keys",
    params(("key_id" = String, Path, description = "Key id (`key_…`)", pattern = "^key_[0-9a-f]{32}$")),
    responses((status = 200, description = "The revoked key", body = ApiKeyOut),
              (status = 403, description = "Requires `keys:write`", body = ProblemDoc),
              (status = 404, description = "No such key for this tenant", body = ProblemDoc)))]
pub async fn revoke<S: ControlStore>(
    caller: TenantCaller<KeysWrite>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<ApiKeyId>,
) -> Result<Json<ApiKeyOut>, ApiError> {
    let now = clock.now_ms();
    let audit = AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: caller.tenant.clone(),
        at_ms: now,
        actor: caller.principal.principal.clone(),
        action: "api_key.revoked".into(),
        target: id.to_string(),
    };
    match store
        .revoke_key(&caller.tenant, &id, now, &audit)
        .await
        .map_err(store_failure)?
    {
        Some(key) => {
            tracing::info!(key_id = %id, "API key revoked");
            Ok(Json(ApiKeyOut::from(key)))
        }
        None => Err(ApiError::NotFound {
            resource: "API key",
        }),
    }
}

/// The API key operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![create_for_tenant, list, create, get, revoke]
}
