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
use tributary_core::ports::QueueStats;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::{Components, OpenApi};
use utoipa_axum::PathItemExt as _;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::access::{Access, Declared};
use crate::idempotency;
use crate::problem::{Answered, ApiError};
use crate::state::{AppState, ControlStore, Deps};

/// Operations: the axum routes, and what documents them (built only when the document is asked for).
pub struct Api<St> {
    router: Router<St>,
    documentation: Documentation<St>,
}

/// How to build the OpenAPI document of an [`Api`]: the base document and, per operation, its
/// utoipa entry and declared access rule. Building runs utoipa's generated code for every operation
/// and schema, which is most of what the router costs, so it happens on the first request for the
/// document ([`crate::openapi::LazyDocument`]) rather than at cold start.
pub struct Documentation<St> {
    base: fn() -> OpenApi,
    operations: Vec<(Entry<St>, Access)>,
}

/// Builds one operation's utoipa entry (`routes!(handler)`).
type Entry<St> = fn() -> UtoipaMethodRouter<St>;

/// The access rule one operation declares (read by the test that walks every operation).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Declaration {
    /// The operation's method.
    pub method: Method,
    /// Its path, as documented (`/v1/keys/{key_id}`).
    pub path: String,
    /// Who may call it.
    pub access: Access,
    /// Whether its `#[utoipa::path]` writes a `security` of its own (it should not: the handler
    /// declares it).
    pub security_by_hand: bool,
}

/// Registers handlers (of the calling module) as operations: `operations![list, create]`. Each
/// handler carries `#[utoipa::path]`, and its first argument declares who may call it. The route is
/// registered from the path and methods of its `#[utoipa::path]`; the entry itself is built from
/// the same attribute (utoipa-axum's `routes!`) when the document is.
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

impl<St: Clone + Send + Sync + 'static> Api<St> {
    /// No operations, documented into `base` (info, tags, shared components).
    pub fn with_openapi(base: fn() -> OpenApi) -> Self {
        Self {
            router: Router::new(),
            documentation: Documentation {
                base,
                operations: Vec::new(),
            },
        }
    }

    /// No operations.
    pub fn new() -> Self {
        Self::with_openapi(OpenApi::default)
    }

    /// Adds `handler` at `path` for `methods`, documented by `entry` (`routes!(handler)`) with the
    /// access rule `handler` declares as its `security`.
    pub fn operation<H, T, M>(
        mut self,
        path: String,
        methods: Vec<HttpMethod>,
        handler: H,
        entry: Entry<St>,
    ) -> Self
    where
        H: Handler<T, St> + Declared<M>,
        T: 'static,
    {
        let method_router = methods.iter().fold(MethodRouter::new(), |router, method| {
            router.on(method.to_method_filter(), handler.clone())
        });
        self.router = self.router.route(&path, method_router);
        self.documentation
            .operations
            .push((entry, <H as Declared<M>>::ACCESS));
        self
    }

    /// Adds `other`'s operations.
    pub fn merge(mut self, other: Api<St>) -> Self {
        self.router = self.router.merge(other.router);
        self.documentation
            .operations
            .extend(other.documentation.operations);
        self
    }

    /// The axum router and what documents it.
    pub fn into_parts(self) -> (Router<St>, Documentation<St>) {
        (self.router, self.documentation)
    }
}

impl<St: Clone + Send + Sync + 'static> Documentation<St> {
    /// The OpenAPI document: the base, and every operation with its access rule as its `security`
    /// (unless its `#[utoipa::path]` writes one, which the tests refuse).
    pub fn build(&self) -> OpenApi {
        self.walk().0
    }

    /// The access rule of every operation, as documented.
    #[cfg(test)]
    pub fn declarations(&self) -> Vec<Declaration> {
        self.walk().1
    }

    fn walk(&self) -> (OpenApi, Vec<Declaration>) {
        let mut document = (self.base)();
        let mut declared = Vec::new();
        for (entry, access) in &self.operations {
            let (schemas, paths, _) = entry();
            for (path, mut item) in paths.paths {
                for (method, operation) in operations_mut(&mut item) {
                    let security_by_hand = operation.security.is_some();
                    operation.security.get_or_insert_with(|| access.security());
                    declared.push(Declaration {
                        method,
                        path: path.clone(),
                        access: *access,
                        security_by_hand,
                    });
                }
                if let Some(known) = document.paths.paths.get_mut(&path) {
                    known.merge_operations(item);
                } else {
                    document.paths.paths.insert(path, item);
                }
            }
            document
                .components
                .get_or_insert_with(Components::new)
                .schemas
                .extend(schemas);
        }
        (document, declared)
    }
}

/// The operations of a path item, with their methods.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|op| (method, op)))
}

/// The OpenAPI document of every operation, as served and checked in.
#[cfg(test)]
pub fn document<S: ControlStore, Q: QueueStats + 'static>() -> String {
    let (_, documentation) = crate::routes::api::<S, Q>().into_parts();
    crate::openapi::render(documentation.build())
}

/// The API: every operation over `deps`, built once per execution environment.
pub fn app<S: ControlStore, Q: QueueStats + 'static>(deps: Deps<S, Q>) -> Router {
    let (operations, documentation) = crate::routes::api::<S, Q>().into_parts();
    let state = AppState::new(deps, move || documentation.build());
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
#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
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
