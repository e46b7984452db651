//! `/v1/oidc-issuers`: identity providers whose JWTs the authorizer accepts for the caller's tenant.

use axum::http::StatusCode;
use tributary_core::auth::Principal;
use tributary_core::ids::{IssuerId, TenantId};
use tributary_core::ports::QueueStats;
use tributary_core::tenancy::{AuditEvent, IssuerCreated, OidcIssuer};

use crate::access::{KeysRead, KeysWrite, TenantCaller};
use crate::dto::{OidcIssuerIn, OidcIssuerOut, PageOf, bounded_expiry};
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of};
use crate::problem::ApiError;
use crate::request::Id;
use crate::response::{Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Settings, Store};

fn audit(
    tenant: &TenantId,
    actor: &Principal,
    at_ms: i64,
    action: &str,
    target: &IssuerId,
) -> AuditEvent {
    AuditEvent::new(tenant, &actor.principal, at_ms, action, target)
}

/// Lists the tenant's issuers.
#[utoipa::path(get, path = "/v1/oidc-issuers", operation_id = "list_oidc_issuers", tag = "Identity providers",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of issuers", body = PageOf<OidcIssuerOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<KeysRead>,
    store: Store<S>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<OidcIssuerOut>>, ApiError> {
    let found = store
        .list_issuers(&caller.tenant, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, OidcIssuerOut::from)))
}

/// Registers an issuer for the caller's tenant. Its tokens can hold at most `allowed_scopes`, which
/// must be scopes the caller holds: registering an issuer never grants more than the registrant has.
#[utoipa::path(post, path = "/v1/oidc-issuers", operation_id = "create_oidc_issuer", tag = "Identity providers", request_body = OidcIssuerIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Registered", body = OidcIssuerOut),
              (status = 400, description = "Invalid body: no allowed scopes, `admin` requested, or an expiry after the caller's own", body = ProblemDoc),
              (status = 403, description = "Requires `keys:write`; `allowed_scopes` cannot exceed the caller's scopes", body = ProblemDoc),
              (status = 409, description = "Issuer and audience already registered, the tenant's registration limit reached, or same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    caller: TenantCaller<KeysWrite>,
    store: Store<S>,
    clock: Clock,
    settings: Settings,
    Idempotent(input): Idempotent<OidcIssuerIn>,
) -> Result<Created<OidcIssuerOut>, ApiError> {
    let TenantCaller {
        principal, tenant, ..
    } = caller;
    let now = clock.now_ms();
    let valid = input.validate(now)?;
    let expires_at_ms = bounded_expiry("/expires_at", valid.expires_at_ms, &principal)?;
    if let Some(lacking) = valid
        .allowed_scopes
        .iter()
        .find(|s| !principal.has_scope(**s))
    {
        return Err(ApiError::ScopeEscalation {
            scope: lacking.as_str(),
        });
    }
    let record = OidcIssuer {
        id: IssuerId::generate(),
        tenant_id: tenant.clone(),
        issuer: valid.issuer,
        audience: valid.audience,
        jwks_uri: valid.jwks_uri,
        scopes_claim: valid.scopes_claim,
        allowed_scopes: valid.allowed_scopes,
        created_at_ms: now,
        expires_at_ms,
        created_by: principal.principal.clone(),
    };
    let limit = settings.max_issuers_per_tenant;
    // The store writes the (issuer, audience) pair as its own item, on the condition that it does
    // not exist: a pair identifies one tenant, or tokens would be ambiguous and one tenant could
    // claim another's tokens.
    match store
        .create_issuer(
            &record,
            &audit(&tenant, &principal, now, "oidc_issuer.created", &record.id),
            limit,
        )
        .await
        .map_err(store_failure)?
    {
        IssuerCreated::Created => {}
        IssuerCreated::PairTaken => return Err(ApiError::Conflict {
            detail: "This issuer and audience are already registered. Use a distinct audience for each tenant, or remove the existing registration.".into(),
        }),
        IssuerCreated::LimitReached => return Err(ApiError::Conflict {
            detail: format!("A tenant may register at most {limit} identity providers. Remove one you no longer use, then retry."),
        }),
    }
    Ok(Created {
        location: format!("/v1/oidc-issuers/{}", record.id),
        body: OidcIssuerOut::from(record),
    })
}

/// Reads one of the tenant's issuers.
#[utoipa::path(get, path = "/v1/oidc-issuers/{issuer_id}", operation_id = "get_oidc_issuer", tag = "Identity providers",
    params(("issuer_id" = String, Path, description = "Issuer id (`iss_…`)", pattern = "^iss_[0-9a-f]{32}$")),
    responses((status = 200, description = "The issuer", body = OidcIssuerOut),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc),
              (status = 404, description = "No such issuer for this tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    caller: TenantCaller<KeysRead>,
    store: Store<S>,
    Id(id): Id<IssuerId>,
) -> Result<Json<OidcIssuerOut>, ApiError> {
    match store
        .get_issuer(&caller.tenant, &id)
        .await
        .map_err(store_failure)?
    {
        Some(issuer) => Ok(Json(OidcIssuerOut::from(issuer))),
        None => Err(ApiError::NotFound {
            resource: "OIDC issuer",
        }),
    }
}

/// Removes one of the tenant's issuers; its tokens stop working within the authorizer cache TTL.
#[utoipa::path(delete, path = "/v1/oidc-issuers/{issuer_id}", operation_id = "delete_oidc_issuer", tag = "Identity providers",
    params(("issuer_id" = String, Path, description = "Issuer id (`iss_…`)", pattern = "^iss_[0-9a-f]{32}$")),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "Requires `keys:write`", body = ProblemDoc),
              (status = 404, description = "No such issuer for this tenant", body = ProblemDoc)))]
pub async fn delete<S: ControlStore>(
    caller: TenantCaller<KeysWrite>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<IssuerId>,
) -> Result<StatusCode, ApiError> {
    let event = audit(
        &caller.tenant,
        &caller.principal,
        clock.now_ms(),
        "oidc_issuer.deleted",
        &id,
    );
    if store
        .delete_issuer(&caller.tenant, &id, &event)
        .await
        .map_err(store_failure)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            resource: "OIDC issuer",
        })
    }
}

/// The identity provider operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list, create, get, delete]
}
