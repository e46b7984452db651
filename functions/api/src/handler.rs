//! The request handler: resolves the route, establishes the caller from the authorizer context, applies
//! the tenant's rate limit, the route's scope and idempotency, and renders every failure as RFC 9457
//! problem+json.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use sha2::{Digest, Sha256};
use tributary_core::ApiError;
use tributary_core::auth::Principal;
use tributary_core::ids::TenantId;
use tributary_core::ports::{
    CanaryStore, CredentialStore, IdempotencyBegin, IdempotencyStore, QueueStats, RateCounter,
    StoredResponse, TenantStore,
};
use tributary_core::scope::Scope;
use tributary_core::time::Clock;

use crate::config::Config;
use crate::ratelimit::{LimitCache, Limiter};
use crate::request::body_bytes;
use crate::response;
use crate::routes;
use crate::routes::health::HealthCache;

/// Everything the control-plane store must offer the API.
pub trait ControlStore:
    CanaryStore + TenantStore + CredentialStore + IdempotencyStore + RateCounter
{
}
impl<T> ControlStore for T where
    T: CanaryStore + TenantStore + CredentialStore + IdempotencyStore + RateCounter
{
}

/// What the handler needs.
pub struct Deps<S, Q> {
    /// The control-plane store.
    pub store: S,
    /// The jobs queue.
    pub jobs_queue: Q,
    /// The jobs dead-letter queue.
    pub dead_letter_queue: Q,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
    /// Rate-limit leases of this execution environment.
    pub limiter: Limiter,
    /// Tenants' rate limits, cached.
    pub limits: LimitCache,
    /// The last health report, cached.
    pub health: HealthCache,
}

/// A successful answer: status and JSON body (`None` for 204).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Option<serde_json::Value>,
    /// `Location` of a created resource.
    pub location: Option<String>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status: 200,
            body: Some(to_value(body)?),
            location: None,
        })
    }

    /// 201 with `body`, located at `location`.
    pub fn created(body: impl serde::Serialize, location: String) -> Result<Self, ApiError> {
        Ok(Self {
            status: 201,
            body: Some(to_value(body)?),
            location: Some(location),
        })
    }

    /// 202 with `body`: the work goes on.
    pub fn accepted(body: impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status: 202,
            body: Some(to_value(body)?),
            location: None,
        })
    }

    /// 204.
    pub fn no_content() -> Result<Self, ApiError> {
        Ok(Self {
            status: 204,
            body: None,
            location: None,
        })
    }
}

fn to_value(body: impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(body).map_err(|e| {
        tracing::error!(error = %e, "response serialization failed");
        ApiError::Internal
    })
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// Callers holding the scope.
    Scope(Scope),
    /// Tenant callers holding the scope; the operation acts on the caller's tenant.
    TenantScope(Scope),
}

/// The API's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET /v1/health`
    Health,
    /// `GET /v1/health/details`
    HealthDetails,
    /// `GET /v1/openapi.json`
    OpenApi,
    /// `GET /docs`
    Docs,
    /// `GET /v1/me`
    Me,
    /// `GET /v1/tenants`
    ListTenants,
    /// `POST /v1/tenants`
    CreateTenant,
    /// `GET /v1/tenants/{tenant_id}`
    GetTenant(String),
    /// `PATCH /v1/tenants/{tenant_id}`
    UpdateTenant(String),
    /// `DELETE /v1/tenants/{tenant_id}`
    DeleteTenant(String),
    /// `POST /v1/tenants/{tenant_id}/keys`
    CreateTenantKey(String),
    /// `GET /v1/keys`
    ListKeys,
    /// `POST /v1/keys`
    CreateKey,
    /// `GET /v1/keys/{key_id}`
    GetKey(String),
    /// `DELETE /v1/keys/{key_id}`
    RevokeKey(String),
    /// `GET /v1/oidc-issuers`
    ListIssuers,
    /// `POST /v1/oidc-issuers`
    CreateIssuer,
    /// `GET /v1/oidc-issuers/{issuer_id}`
    GetIssuer(String),
    /// `DELETE /v1/oidc-issuers/{issuer_id}`
    DeleteIssuer(String),
    /// `GET /v1/audit-events`
    ListAuditEvents,
}

impl Op {
    /// Who may call it.
    pub fn access(&self) -> Access {
        match self {
            Op::Health | Op::OpenApi | Op::Docs => Access::Public,
            Op::Me => Access::Authenticated,
            // Queue depths and the canary are deployment-wide: not for tenants.
            Op::HealthDetails
            | Op::ListTenants
            | Op::CreateTenant
            | Op::GetTenant(_)
            | Op::UpdateTenant(_)
            | Op::DeleteTenant(_)
            | Op::CreateTenantKey(_) => Access::Scope(Scope::Admin),
            Op::ListKeys
            | Op::GetKey(_)
            | Op::ListIssuers
            | Op::GetIssuer(_)
            | Op::ListAuditEvents => Access::TenantScope(Scope::KeysRead),
            Op::CreateKey | Op::RevokeKey(_) | Op::CreateIssuer | Op::DeleteIssuer(_) => {
                Access::TenantScope(Scope::KeysWrite)
            }
        }
    }

    /// Whether it honours `Idempotency-Key`.
    pub fn idempotent(&self) -> bool {
        matches!(
            self,
            Op::CreateTenant | Op::CreateTenantKey(_) | Op::CreateKey | Op::CreateIssuer
        )
    }
}

/// Resolves a method and path to an operation: 404 for an unknown path, 405 for a known path with
/// another method.
pub fn resolve(method: &str, path: &str) -> Result<Op, ApiError> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let id = |s: &str| s.to_owned();
    let (allowed, op): (&[&'static str], Option<Op>) = match (segments.as_slice(), method) {
        (["docs"], m) => (&["GET"], (m == "GET").then_some(Op::Docs)),
        (["v1", "health"], m) => (&["GET"], (m == "GET").then_some(Op::Health)),
        (["v1", "health", "details"], m) => (&["GET"], (m == "GET").then_some(Op::HealthDetails)),
        (["v1", "openapi.json"], m) => (&["GET"], (m == "GET").then_some(Op::OpenApi)),
        (["v1", "me"], m) => (&["GET"], (m == "GET").then_some(Op::Me)),
        (["v1", "tenants"], m) => (
            &["GET", "POST"],
            match m {
                "GET" => Some(Op::ListTenants),
                "POST" => Some(Op::CreateTenant),
                _ => None,
            },
        ),
        (["v1", "tenants", t], m) if !t.is_empty() => (
            &["GET", "PATCH", "DELETE"],
            match m {
                "GET" => Some(Op::GetTenant(id(t))),
                "PATCH" => Some(Op::UpdateTenant(id(t))),
                "DELETE" => Some(Op::DeleteTenant(id(t))),
                _ => None,
            },
        ),
        (["v1", "tenants", t, "keys"], m) if !t.is_empty() => {
            (&["POST"], (m == "POST").then(|| Op::CreateTenantKey(id(t))))
        }
        (["v1", "keys"], m) => (
            &["GET", "POST"],
            match m {
                "GET" => Some(Op::ListKeys),
                "POST" => Some(Op::CreateKey),
                _ => None,
            },
        ),
        (["v1", "keys", k], m) if !k.is_empty() => (
            &["GET", "DELETE"],
            match m {
                "GET" => Some(Op::GetKey(id(k))),
                "DELETE" => Some(Op::RevokeKey(id(k))),
                _ => None,
            },
        ),
        (["v1", "oidc-issuers"], m) => (
            &["GET", "POST"],
            match m {
                "GET" => Some(Op::ListIssuers),
                "POST" => Some(Op::CreateIssuer),
                _ => None,
            },
        ),
        (["v1", "oidc-issuers", i], m) if !i.is_empty() => (
            &["GET", "DELETE"],
            match m {
                "GET" => Some(Op::GetIssuer(id(i))),
                "DELETE" => Some(Op::DeleteIssuer(id(i))),
                _ => None,
            },
        ),
        (["v1", "audit-events"], m) => (&["GET"], (m == "GET").then_some(Op::ListAuditEvents)),
        _ => {
            return Err(ApiError::RouteNotFound {
                path: path.to_owned(),
            });
        }
    };
    op.ok_or_else(|| ApiError::MethodNotAllowed {
        method: method.to_owned(),
        allowed: allowed.to_vec(),
    })
}

/// The caller, from the authorizer context API Gateway attached to the request.
fn principal(request: &Request) -> Result<Principal, ApiError> {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let authorizer = context
        .authorizer
        .as_ref()
        .ok_or(ApiError::Unauthenticated)?;
    Principal::from_context(&authorizer.fields).map_err(|e| {
        tracing::warn!(error = %e, "request reached the API without a usable authorizer context");
        ApiError::Unauthenticated
    })
}

/// The authenticated caller of an operation, with its tenant when the operation is tenant-scoped.
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The tenant the operation acts on (tenant-scoped operations only).
    pub tenant: Option<TenantId>,
}

/// Handles one request.
#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
pub async fn handle<S, Q>(
    deps: &Deps<S, Q>,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    S: ControlStore,
    Q: QueueStats,
{
    let path = request.uri().path().to_owned();
    let response = match route(deps, &request).await {
        Ok(response) => response,
        Err(error) => {
            if error.status() >= 500 {
                tracing::error!(error = %error, "request failed");
            }
            response::problem(&error, Some(&path))
        }
    };
    Ok(response)
}

async fn route<S, Q>(deps: &Deps<S, Q>, request: &Request) -> Result<Response<Body>, ApiError>
where
    S: ControlStore,
    Q: QueueStats,
{
    let op = resolve(request.method().as_str(), request.uri().path())?;
    let caller = match op.access() {
        Access::Public => {
            return match op {
                Op::Health => Ok(routes::health::get(deps).await),
                Op::OpenApi => Ok(routes::docs::openapi()),
                _ => Ok(routes::docs::page()),
            };
        }
        access => authorize(deps, request, access).await?,
    };
    if !op.idempotent() {
        return Ok(render(dispatch(deps, request, &op, &caller).await?));
    }
    let Some(key) = idempotency_key(request)? else {
        return Ok(render(dispatch(deps, request, &op, &caller).await?));
    };
    idempotent(deps, request, &op, &caller, &key).await
}

async fn authorize<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    request: &Request,
    access: Access,
) -> Result<Caller, ApiError> {
    let principal = principal(request)?;
    // The authorizer cache may hold an allow past the credential's expiry; the expiry travels in the
    // context, so the API refuses it here, whatever the cache says.
    if principal.is_expired(deps.clock.now_ms()) {
        tracing::info!(principal = %principal.principal, "credential expired (cached by the gateway)");
        return Err(ApiError::Unauthenticated);
    }
    tracing::info!(principal = %principal.principal, "authenticated");
    if let Some(tenant) = &principal.tenant_id {
        rate_limit(deps, tenant).await?;
    }
    let tenant = match access {
        Access::Public | Access::Authenticated => None,
        Access::Scope(scope) => {
            require(&principal, scope)?;
            None
        }
        Access::TenantScope(scope) => {
            require(&principal, scope)?;
            Some(
                principal
                    .tenant_id
                    .clone()
                    .ok_or(ApiError::TenantRequired)?,
            )
        }
    };
    Ok(Caller { principal, tenant })
}

fn require(principal: &Principal, scope: Scope) -> Result<(), ApiError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::MissingScope {
            scope: scope.as_str(),
        })
    }
}

async fn rate_limit<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    tenant: &TenantId,
) -> Result<(), ApiError> {
    let now = deps.clock.now_ms();
    let limit = match deps.limits.get(tenant.as_str(), now) {
        Some(limit) => limit,
        None => match deps.store.get_tenant(tenant).await {
            Ok(Some(t)) => {
                deps.limits
                    .put(tenant.as_str(), t.rate_limit_per_minute, now);
                t.rate_limit_per_minute
            }
            // The authorizer let a deleted tenant through (cached): nothing of it is reachable.
            Ok(None) => return Err(ApiError::Unauthenticated),
            Err(e) => {
                tracing::error!(error = %e, "tenant lookup failed");
                return Err(ApiError::Unavailable);
            }
        },
    };
    deps.limiter
        .admit(&deps.store, tenant.as_str(), limit, now)
        .await
}

async fn dispatch<S: ControlStore, Q: QueueStats>(
    deps: &Deps<S, Q>,
    request: &Request,
    op: &Op,
    caller: &Caller,
) -> Result<Reply, ApiError> {
    use routes::{audit, health, issuers, keys, me, tenants};
    let tenant = || caller.tenant.as_ref().ok_or(ApiError::TenantRequired);
    match op {
        Op::Me => me::get(&caller.principal),
        Op::HealthDetails => health::details(deps).await,
        Op::ListTenants => tenants::list(deps, request).await,
        Op::CreateTenant => tenants::create(deps, request).await,
        Op::GetTenant(id) => tenants::get(deps, id).await,
        Op::UpdateTenant(id) => tenants::update(deps, request, id).await,
        Op::DeleteTenant(id) => tenants::delete(deps, id).await,
        Op::CreateTenantKey(id) => keys::create_for_tenant(deps, request, caller, id).await,
        Op::ListKeys => keys::list(deps, request, tenant()?).await,
        Op::CreateKey => keys::create(deps, request, caller, tenant()?).await,
        Op::GetKey(id) => keys::get(deps, tenant()?, id).await,
        Op::RevokeKey(id) => keys::revoke(deps, caller, tenant()?, id).await,
        Op::ListIssuers => issuers::list(deps, request, tenant()?).await,
        Op::CreateIssuer => issuers::create(deps, request, caller, tenant()?).await,
        Op::GetIssuer(id) => issuers::get(deps, tenant()?, id).await,
        Op::DeleteIssuer(id) => issuers::delete(deps, caller, tenant()?, id).await,
        Op::ListAuditEvents => audit::list(deps, request, tenant()?).await,
        Op::Health | Op::OpenApi | Op::Docs => Err(ApiError::Internal),
    }
}

fn render(reply: Reply) -> Response<Body> {
    response::reply(
        reply.status,
        reply.body.as_ref(),
        reply.location.as_deref(),
        false,
    )
}

/// The `Idempotency-Key` header, validated: 1 to 255 visible ASCII characters.
fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    let Some(raw) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(crate::request::invalid(
            "header.Idempotency-Key",
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters, e.g. a UUID.",
        ));
    }
    Ok(Some(key.to_owned()))
}

const IDEMPOTENCY_LEASE: Duration = Duration::from_secs(30);
const IDEMPOTENCY_KEEP: Duration = Duration::from_secs(24 * 3600);

async fn idempotent<S: ControlStore, Q: QueueStats>(
    deps: &Deps<S, Q>,
    request: &Request,
    op: &Op,
    caller: &Caller,
    key: &str,
) -> Result<Response<Body>, ApiError> {
    // Keys are scoped to the principal within its tenant: another credential of the same tenant
    // using the same key gets its own request, never this one's stored response.
    let scope = match &caller.principal.tenant_id {
        Some(tenant) => format!("{tenant}#{}", caller.principal.principal),
        None => format!("principal:{}", caller.principal.principal),
    };
    let mut hasher = Sha256::new();
    hasher.update(request.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(request.uri().path().as_bytes());
    hasher.update(b"\n");
    hasher.update(body_bytes(request));
    let fingerprint = hex::encode(hasher.finalize());
    let begun = deps
        .store
        .begin(
            &scope,
            key,
            &fingerprint,
            deps.clock.now_ms(),
            IDEMPOTENCY_LEASE,
            IDEMPOTENCY_KEEP,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "idempotency store failed");
            ApiError::Unavailable
        })?;
    match begun {
        IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReused),
        IdempotencyBegin::InProgress => Err(ApiError::IdempotencyInProgress),
        IdempotencyBegin::Replay(stored) => {
            let body: Option<serde_json::Value> = serde_json::from_str(&stored.body).ok();
            Ok(response::reply(stored.status, body.as_ref(), None, true))
        }
        IdempotencyBegin::Started => {
            let outcome = dispatch(deps, request, op, caller).await;
            let stored = match &outcome {
                Ok(reply) => Some(StoredResponse {
                    status: reply.status,
                    body: replay_body(reply.body.as_ref()),
                }),
                // A refusal that depends on who asks (authentication, scopes) or on the moment
                // (rate limits) is not the request's outcome: a retry with the key may succeed.
                Err(e) if matches!(e.status(), 401 | 403 | 429) => None,
                Err(e) if e.status() < 500 => Some(StoredResponse {
                    status: e.status(),
                    body: serde_json::to_string(&e.to_problem(Some(request.uri().path())))
                        .unwrap_or_default(),
                }),
                Err(_) => None,
            };
            let saved = match &stored {
                Some(s) => deps.store.complete(&scope, key, s).await,
                None => deps.store.abandon(&scope, key).await,
            };
            if let Err(e) = saved {
                tracing::error!(error = %e, "could not record the idempotent response");
            }
            match outcome {
                Ok(reply) => Ok(render(reply)),
                Err(e) => Err(e),
            }
        }
    }
}

/// The body kept for replays: never a created key's secret, which is shown once and not stored.
fn replay_body(body: Option<&serde_json::Value>) -> String {
    match body {
        Some(serde_json::Value::Object(map)) => {
            let mut map = map.clone();
            map.remove("secret");
            serde_json::Value::Object(map).to_string()
        }
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
