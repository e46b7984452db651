//! Who may call an operation, declared once: in the handler's first argument.
//!
//! - [`Public`]: anyone, without a credential.
//! - [`Caller`]: any authenticated caller.
//! - [`Scoped<R>`]: a caller holding `R`'s scope (`Scoped<Admin>`).
//! - [`TenantCaller<R>`]: a tenant's caller holding `R`'s scope; the operation acts on that tenant.
//!
//! The extractor enforces the rule; the router reads the same rule from the handler's type
//! ([`Declared`]) and writes it into the operation's OpenAPI `security` (`crate::router::Api`). A
//! handler whose first argument is no access rule does not compile as an operation.
//!
//! Every rule but `Public` first establishes the caller from the authorizer context: a credential past
//! its expiry is refused (401) whatever the gateway's authorizer cache still holds, then a tenant's
//! caller spends one request of the tenant's rate limit (429), then the scope is checked (403).

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tributary_core::auth::Principal;
use tributary_core::ids::TenantId;
use tributary_core::scope::Scope;
use utoipa::openapi::security::SecurityRequirement;

use crate::problem::ApiError;
use crate::state::{AppState, ControlStore};

/// Who may call an operation. Read where the document is built (test builds); in the release
/// binary the rules are enforced by the guards' extractors and documented by the checked-in
/// document, so nothing reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
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

#[cfg_attr(not(test), allow(dead_code))]
impl Access {
    /// The operation's OpenAPI `security`: none for public operations, else the bearer scheme with
    /// the scope it requires.
    pub fn security(self) -> Vec<SecurityRequirement> {
        match self {
            Access::Public => Vec::new(),
            Access::Authenticated => {
                vec![SecurityRequirement::new("bearer", Vec::<String>::new())]
            }
            Access::Scope(scope) | Access::TenantScope(scope) => {
                vec![SecurityRequirement::new("bearer", [scope.as_str()])]
            }
        }
    }
}

/// An access rule as a type: what a handler's first argument declares.
pub trait Guard {
    /// The rule.
    #[cfg_attr(not(test), allow(dead_code))]
    const ACCESS: Access;
}

/// A scope as a type, for [`Scoped`] and [`TenantCaller`].
pub trait ScopeRule: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

macro_rules! scope_rules {
    ($($(#[$doc:meta])* $name:ident => $scope:ident,)*) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl ScopeRule for $name {
                const SCOPE: Scope = Scope::$scope;
            }
        )*
    };
}

scope_rules! {
    /// `admin`: the deployment's operator.
    Admin => Admin,
    /// `keys:read`.
    KeysRead => KeysRead,
    /// `keys:write`.
    KeysWrite => KeysWrite,
    /// `integrations:read`.
    IntegrationsRead => IntegrationsRead,
    /// `integrations:write`.
    IntegrationsWrite => IntegrationsWrite,
    /// `connections:read`.
    ConnectionsRead => ConnectionsRead,
    /// `connections:write`.
    ConnectionsWrite => ConnectionsWrite,
    /// `syncs:read`.
    SyncsRead => SyncsRead,
    /// `syncs:write`.
    SyncsWrite => SyncsWrite,
    /// `records:read`.
    RecordsRead => RecordsRead,
    /// `actions:execute`.
    ActionsExecute => ActionsExecute,
    /// `proxy`.
    ProxyCalls => Proxy,
    /// `webhooks:read`.
    WebhooksRead => WebhooksRead,
    /// `webhooks:write`.
    WebhooksWrite => WebhooksWrite,
    /// `operations:read`.
    OperationsRead => OperationsRead,
}

/// Implemented for every handler whose first argument is an access rule ([`Guard`]): how the router
/// learns, from the handler's type, the rule its extractor enforces. `M` is the handler's argument
/// list, which keeps the implementations for each arity apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare who may call it",
    note = "an operation's first argument is its access rule: `Public`, `Caller`, `Scoped<R>` or `TenantCaller<R>`"
)]
pub trait Declared<M> {
    /// The rule.
    #[cfg_attr(not(test), allow(dead_code))]
    const ACCESS: Access;
}

macro_rules! declared {
    ($($arg:ident),*) => {
        impl<F, Fut, G, $($arg,)*> Declared<(G, $($arg,)*)> for F
        where
            F: FnOnce(G, $($arg,)*) -> Fut,
            G: Guard,
        {
            const ACCESS: Access = G::ACCESS;
        }
    };
}

declared!();
declared!(T1);
declared!(T1, T2);
declared!(T1, T2, T3);
declared!(T1, T2, T3, T4);
declared!(T1, T2, T3, T4, T5);
declared!(T1, T2, T3, T4, T5, T6);
declared!(T1, T2, T3, T4, T5, T6, T7);
declared!(T1, T2, T3, T4, T5, T6, T7, T8);
declared!(T1, T2, T3, T4, T5, T6, T7, T8, T9);
declared!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10);
declared!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11);

/// Anyone may call the operation; no credential is looked at.
pub struct Public;

impl Guard for Public {
    const ACCESS: Access = Access::Public;
}

impl<St: Send + Sync> FromRequestParts<St> for Public {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(Public)
    }
}

/// Any authenticated caller.
pub struct Caller {
    /// Who.
    pub principal: Principal,
}

impl Guard for Caller {
    const ACCESS: Access = Access::Authenticated;
}

impl<S: ControlStore, Q: Send + Sync> FromRequestParts<AppState<S, Q>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, Q>,
    ) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        Ok(Caller { principal })
    }
}

/// A caller holding `R`'s scope.
pub struct Scoped<R> {
    /// Who.
    pub principal: Principal,
    rule: PhantomData<R>,
}

impl<R: ScopeRule> Guard for Scoped<R> {
    const ACCESS: Access = Access::Scope(R::SCOPE);
}

impl<S: ControlStore, Q: Send + Sync, R: ScopeRule> FromRequestParts<AppState<S, Q>> for Scoped<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, Q>,
    ) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        require(&principal, R::SCOPE)?;
        Ok(Scoped {
            principal,
            rule: PhantomData,
        })
    }
}

/// A tenant's caller holding `R`'s scope: the operation acts on `tenant`.
pub struct TenantCaller<R> {
    /// Who.
    pub principal: Principal,
    /// The caller's tenant.
    pub tenant: TenantId,
    rule: PhantomData<R>,
}

impl<R: ScopeRule> Guard for TenantCaller<R> {
    const ACCESS: Access = Access::TenantScope(R::SCOPE);
}

impl<S: ControlStore, Q: Send + Sync, R: ScopeRule> FromRequestParts<AppState<S, Q>>
    for TenantCaller<R>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S, Q>,
    ) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        require(&principal, R::SCOPE)?;
        let tenant = principal
            .tenant_id
            .clone()
            .ok_or(ApiError::TenantRequired)?;
        Ok(TenantCaller {
            principal,
            tenant,
            rule: PhantomData,
        })
    }
}

/// The authenticated principal of this request, for extractors that run after the access rule
/// (`Idempotent` scopes its keys to it).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Establishes the caller once per request: principal, expiry, rate limit.
async fn authenticate<S: ControlStore, Q>(
    parts: &mut Parts,
    state: &AppState<S, Q>,
) -> Result<Principal, ApiError> {
    if let Some(Authenticated(principal)) = parts.extensions.get::<Authenticated>() {
        return Ok(principal.clone());
    }
    let principal = principal(parts)?;
    let now = state.clock.now_ms();
    // The authorizer cache may hold an allow past the credential's expiry; the expiry travels in the
    // context, so the API refuses it here, whatever the cache says.
    if principal.is_expired(now) {
        tracing::info!(principal = %principal.principal, "credential expired (cached by the gateway)");
        return Err(ApiError::Unauthenticated);
    }
    tracing::info!(principal = %principal.principal, "authenticated");
    if let Some(tenant) = &principal.tenant_id {
        state.rate_limit.admit(&*state.store, tenant, now).await?;
        state.api_calls.record(&*state.store, tenant, now).await;
    }
    parts.extensions.insert(Authenticated(principal.clone()));
    Ok(principal)
}

/// The caller, from the authorizer context API Gateway attached to the request.
fn principal(parts: &Parts) -> Result<Principal, ApiError> {
    let Some(RequestContext::ApiGatewayV2(context)) = parts.request_context_ref() else {
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

fn require(principal: &Principal, scope: Scope) -> Result<(), ApiError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::MissingScope {
            scope: scope.as_str(),
        })
    }
}
