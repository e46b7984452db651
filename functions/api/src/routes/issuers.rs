//! `/v1/oidc-issuers`: identity providers whose JWTs the authorizer accepts for the caller's tenant.

use lambda_http::Request;
use tributary_core::ApiError;
use tributary_core::ids::{AuditEventId, IssuerId, TenantId};
use tributary_core::tenancy::{AuditEvent, IssuerCreated, OidcIssuer};

use crate::dto::{OidcIssuerIn, OidcIssuerOut, PageOf, bounded_expiry};
use crate::handler::{Caller, ControlStore, Deps, Reply};
use crate::request::{json_body, path_id};
use crate::routes::docs::ProblemDoc;
use crate::routes::{page_of, page_request, store_failure};

fn audit(
    tenant: &TenantId,
    caller: &Caller,
    at_ms: i64,
    action: &str,
    target: &IssuerId,
) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: tenant.clone(),
        at_ms,
        actor: caller.principal.principal.clone(),
        action: action.into(),
        target: target.to_string(),
    }
}

/// Lists the tenant's issuers.
#[utoipa::path(get, path = "/v1/oidc-issuers", tag = "Identity providers",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of issuers", body = PageOf<OidcIssuerOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc)),
    security(("bearer" = ["keys:read"])))]
pub async fn list<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    request: &Request,
    tenant: &TenantId,
) -> Result<Reply, ApiError> {
    let page = page_request(request)?;
    let found = deps
        .store
        .list_issuers(tenant, &page)
        .await
        .map_err(store_failure)?;
    Reply::ok(page_of(found, OidcIssuerOut::from))
}

/// Registers an issuer for the caller's tenant. Its tokens can hold at most `allowed_scopes`, which
/// must be scopes the caller holds: registering an issuer never grants more than the registrant has.
#[utoipa::path(post, path = "/v1/oidc-issuers", tag = "Identity providers", request_body = OidcIssuerIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Registered", body = OidcIssuerOut),
              (status = 400, description = "Invalid body: no allowed scopes, `admin` requested, or an expiry after the caller's own", body = ProblemDoc),
              (status = 403, description = "Requires `keys:write`; `allowed_scopes` cannot exceed the caller's scopes", body = ProblemDoc),
              (status = 409, description = "Issuer and audience already registered, the tenant's registration limit reached, or same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)),
    security(("bearer" = ["keys:write"])))]
pub async fn create<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    request: &Request,
    caller: &Caller,
    tenant: &TenantId,
) -> Result<Reply, ApiError> {
    let input: OidcIssuerIn = json_body(request)?;
    let now = deps.clock.now_ms();
    let valid = input.validate(now)?;
    let expires_at_ms = bounded_expiry("/expires_at", valid.expires_at_ms, &caller.principal)?;
    if let Some(lacking) = valid
        .allowed_scopes
        .iter()
        .find(|s| !caller.principal.has_scope(**s))
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
        created_by: caller.principal.principal.clone(),
    };
    let limit = deps.config.max_issuers_per_tenant;
    // The store writes the (issuer, audience) pair as its own item, on the condition that it does
    // not exist: a pair identifies one tenant, or tokens would be ambiguous and one tenant could
    // claim another's tokens.
    match deps
        .store
        .create_issuer(
            &record,
            &audit(tenant, caller, now, "oidc_issuer.created", &record.id),
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
    let location = format!("/v1/oidc-issuers/{}", record.id);
    Reply::created(OidcIssuerOut::from(record), location)
}

/// Reads one of the tenant's issuers.
#[utoipa::path(get, path = "/v1/oidc-issuers/{issuer_id}", tag = "Identity providers",
    params(("issuer_id" = String, Path, description = "Issuer id (`iss_…`)", pattern = "^iss_[0-9a-f]{32}$")),
    responses((status = 200, description = "The issuer", body = OidcIssuerOut),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc),
              (status = 404, description = "No such issuer for this tenant", body = ProblemDoc)),
    security(("bearer" = ["keys:read"])))]
pub async fn get<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    tenant: &TenantId,
    raw: &str,
) -> Result<Reply, ApiError> {
    let id: IssuerId = path_id(raw, "issuer_id")?;
    match deps
        .store
        .get_issuer(tenant, &id)
        .await
        .map_err(store_failure)?
    {
        Some(issuer) => Reply::ok(OidcIssuerOut::from(issuer)),
        None => Err(ApiError::NotFound {
            resource: "OIDC issuer",
        }),
    }
}

/// Removes one of the tenant's issuers; its tokens stop working within the authorizer cache TTL.
#[utoipa::path(delete, path = "/v1/oidc-issuers/{issuer_id}", tag = "Identity providers",
    params(("issuer_id" = String, Path, description = "Issuer id (`iss_…`)", pattern = "^iss_[0-9a-f]{32}$")),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "Requires `keys:write`", body = ProblemDoc),
              (status = 404, description = "No such issuer for this tenant", body = ProblemDoc)),
    security(("bearer" = ["keys:write"])))]
pub async fn delete<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    caller: &Caller,
    tenant: &TenantId,
    raw: &str,
) -> Result<Reply, ApiError> {
    let id: IssuerId = path_id(raw, "issuer_id")?;
    let event = audit(
        tenant,
        caller,
        deps.clock.now_ms(),
        "oidc_issuer.deleted",
        &id,
    );
    if deps
        .store
        .delete_issuer(tenant, &id, &event)
        .await
        .map_err(store_failure)?
    {
        Reply::no_content()
    } else {
        Err(ApiError::NotFound {
            resource: "OIDC issuer",
        })
    }
}
