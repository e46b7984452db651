//! The router. Operations are registered with their OpenAPI entries (utoipa-axum's `routes!`) through
//! [`operations!`], which also writes each operation's `security` from the access rule its handler
//! declares ([`crate::access`]) and keeps the rule in a table the tests walk. Around the operations:
//! the [`idempotency`] layer, the 404 fallback and the 405 answer, and the edge, which renders every
//! error as a problem about the request path.

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::header::{ALLOW, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use utoipa::openapi::path::HttpMethod;
use utoipa_axum::PathItemExt as _;

use crate::access::Declared;
use crate::idempotency;
use crate::problem::{Answered, ApiError};
use crate::state::{AppState, ControlStore, Deps, JobsQueue};

/// Operations: the axum routes and, in test builds, what documents them.
///
/// The API serves the checked-in `openapi.json` (embedded minified and gzip-encoded by the build
/// script; `crate::openapi::DOCUMENT` in tests), which a test holds equal to the document built
/// from these operations. So the release binary carries no document generation: utoipa's
/// generated code for every operation and schema is dead there and linked out, which keeps it out
/// of the cold start and the zip.
pub struct Api<St> {
    router: Router<St>,
    #[cfg(test)]
    documentation: Documentation<St>,
}

/// Registers handlers (of the calling module) as operations: `operations![list, create]`. Each
/// handler carries `#[utoipa::path]`, and its first argument declares who may call it. The route is
/// registered from the path and methods of its `#[utoipa::path]`; in test builds the entry itself
/// (utoipa-axum's `routes!`) is kept to build the document from.
#[cfg(not(test))]
macro_rules! operations {
    ($($handler:ident),+ $(,)?) => {
        $crate::router::Api::new()
            $(.operation(
                ::utoipa_axum::paste! { <[<__path_ $handler>] as ::utoipa::Path>::path() },
                ::utoipa_axum::paste! { <[<__path_ $handler>] as ::utoipa::Path>::methods() },
                $handler,
            ))+
    };
}
#[cfg(test)]
macro_rules! operations {
    ($($handler:ident),+ $(,)?) => {
        $crate::router::Api::new()
            $(.operation(
                ::utoipa_axum::paste! { <[<__path_ $handler>] as ::utoipa::Path>::path() },
                ::utoipa_axum::paste! { <[<__path_ $handler>] as ::utoipa::Path>::methods() },
                $handler,
                || ::utoipa_axum::routes!($handler),
            ))+
    };
}
pub(crate) use operations;

#[cfg(test)]
mod documentation;
#[cfg(test)]
pub use documentation::{Documentation, document};

impl<St: Clone + Send + Sync + 'static> Api<St> {
    /// No operations.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            #[cfg(test)]
            documentation: Documentation {
                operations: Vec::new(),
            },
        }
    }

    /// Adds `handler` at `path` for `methods`; its access rule is the one `handler` declares
    /// (enforced by its first argument, documented as its `security` from `entry`).
    pub fn operation<H, T, M>(
        mut self,
        path: String,
        methods: Vec<HttpMethod>,
        handler: H,
        #[cfg(test)] entry: documentation::Entry<St>,
    ) -> Self
    where
        H: Handler<T, St> + Declared<M>,
        T: 'static,
    {
        let method_router = methods.iter().fold(MethodRouter::new(), |router, method| {
            router.on(method.to_method_filter(), handler.clone())
        });
        // A last parameter named `proxy_path` takes the rest of the path, slashes included
        // (OpenAPI has no such parameter: it is documented as one string).
        let path = match path.strip_suffix("{proxy_path}") {
            Some(prefix) => format!("{prefix}{{*proxy_path}}"),
            None => path,
        };
        self.router = self.router.route(&path, method_router);
        #[cfg(test)]
        self.documentation
            .operations
            .push((entry, <H as Declared<M>>::ACCESS));
        self
    }

    /// Adds `other`'s operations.
    pub fn merge(mut self, other: Api<St>) -> Self {
        self.router = self.router.merge(other.router);
        #[cfg(test)]
        self.documentation
            .operations
            .extend(other.documentation.operations);
        self
    }

    /// The axum router.
    pub fn into_router(self) -> Router<St> {
        self.router
    }

    /// What documents the operations.
    #[cfg(test)]
    pub fn into_documentation(self) -> Documentation<St> {
        self.documentation
    }
}

/// The API: every operation over `deps`, built once per execution environment.
pub fn app<S: ControlStore, Q: JobsQueue>(deps: Deps<S, Q>) -> Router {
    let operations = crate::routes::api::<S, Q>().into_router();
    let state = AppState::new(deps);
    let operations = operations
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::complete::<S, Q>,
        ))
        .with_state(state);
    // Around the whole router, not each route: the edge sees a request before it is routed.
    Router::new()
        .fallback_service(operations)
        .layer(middleware::from_fn(edge))
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        path: uri.path().to_owned(),
    }
}

/// A known path with another method. The edge fills in the method and the path's methods, which
/// axum puts in `Allow` after this answer.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed {
        method: String::new(),
        allowed: Vec::new(),
    }
}

/// One span per request; every error rendered as a problem about the request path (5xx causes were
/// logged where they happened); `no-store` unless an answer says otherwise.
#[tracing::instrument(skip_all, fields(method = %request.method(), path = %loggable(request.uri().path())))]
async fn edge(mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    // No route has an empty segment, but axum would match `/v1/tenants//keys` with an empty id.
    if path.split('/').skip(1).any(str::is_empty) {
        return ApiError::RouteNotFound { path: path.clone() }.to_response(Some(&path));
    }
    // axum answers HEAD with the GET handler; this API serves no HEAD, so it routes HEAD as a method
    // no operation has: 404 for an unknown path, 405 for a known one, as for any other method.
    if request.method() == Method::HEAD
        && let Ok(unserved) = Method::from_bytes(b"HEAD-UNSERVED")
    {
        *request.method_mut() = unserved;
    }
    let mut response = next.run(request).await;
    if let Some(Answered(error)) = response.extensions_mut().remove::<Answered>() {
        let error = match error {
            ApiError::MethodNotAllowed { .. } => ApiError::MethodNotAllowed {
                method,
                allowed: allowed(response.headers()),
            },
            other => other,
        };
        if error.status() >= 500 {
            tracing::error!(error = %error, "request failed");
        }
        response = error.to_response(Some(&path));
    }
    response
        .headers_mut()
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The path as logs may hold it: a connect link's token (a bearer secret in the path) is replaced.
fn loggable(path: &str) -> String {
    // The tokens a path can carry: connect links, dashboard links.
    const TOKENS: [&str; 3] = ["cst_", "dsl_", "dsc_"];
    path.split('/')
        .map(
            |segment| match TOKENS.iter().find(|p| segment.starts_with(**p)) {
                Some(prefix) => format!("{prefix}<redacted>"),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods axum's `Allow` lists, but `HEAD`, which it adds for every `GET`.
fn allowed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get(ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "HEAD")
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_connect_link_s_token_never_reaches_the_logs() {
        let token = tributary_core::connect::new_token("cst_");
        let logged = super::loggable(&format!("/connect/{token}/int_1/oauth"));
        assert_eq!(logged, "/connect/cst_<redacted>/int_1/oauth");
        assert_eq!(super::loggable("/v1/keys/key_1"), "/v1/keys/key_1");
        let link = tributary_core::connect::new_token("dsl_");
        assert_eq!(
            super::loggable(&format!("/dashboard/{link}")),
            "/dashboard/dsl_<redacted>"
        );
    }
}
