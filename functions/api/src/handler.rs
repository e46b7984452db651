//! The request handler: resolves the route, establishes the caller from the authorizer context, and
//! renders every failure as RFC 9457 problem+json.

use std::sync::Arc;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tributary_core::ApiError;
use tributary_core::auth::Principal;
use tributary_core::ports::{CanaryStore, QueueStats};
use tributary_core::time::Clock;

use crate::config::Config;
use crate::response;
use crate::routes;

/// What the handler needs.
pub struct Deps<C, Q> {
    /// Where the canary is recorded (also the store probe).
    pub canaries: C,
    /// The jobs queue.
    pub jobs_queue: Q,
    /// The jobs dead-letter queue.
    pub dead_letter_queue: Q,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
}

/// The routes the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Me,
}

impl Route {
    /// Whether the route is served without authentication (the template must agree: such routes
    /// have `Auth: Authorizer: NONE`).
    fn is_public(self) -> bool {
        matches!(self, Route::Health)
    }
}

/// Resolves a method and path to a route: 404 for an unknown path, 405 for a known path with another
/// method.
fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
    let (route, allowed): (Route, &[&'static str]) = match path {
        "/v1/health" => (Route::Health, &["GET"]),
        "/v1/me" => (Route::Me, &["GET"]),
        _ => {
            return Err(ApiError::RouteNotFound {
                path: path.to_owned(),
            });
        }
    };
    if allowed.contains(&method) || (method == "HEAD" && allowed.contains(&"GET")) {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed {
            method: method.to_owned(),
            allowed: allowed.to_vec(),
        })
    }
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

/// Handles one request.
#[tracing::instrument(skip_all, fields(method = %request.method(), path = %request.uri().path()))]
pub async fn handle<C, Q>(
    deps: &Deps<C, Q>,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    C: CanaryStore,
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

async fn route<C, Q>(deps: &Deps<C, Q>, request: &Request) -> Result<Response<Body>, ApiError>
where
    C: CanaryStore,
    Q: QueueStats,
{
    let route = resolve(request.method().as_str(), request.uri().path())?;
    let caller = if route.is_public() {
        None
    } else {
        let principal = principal(request)?;
        tracing::info!(principal = %principal.principal, "authenticated");
        Some(principal)
    };
    Ok(match (route, &caller) {
        (Route::Health, _) => routes::health::get(deps).await,
        (Route::Me, Some(principal)) => routes::me::get(principal),
        // Only public routes get here without a caller.
        (Route::Me, None) => return Err(ApiError::Unauthenticated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tributary_core::PortError;
    use tributary_core::canary::CanaryObservation;
    use tributary_core::error::Service;
    use tributary_core::ids::JobId;
    use tributary_core::ports::QueueDepth;
    use tributary_core::time::ManualClock;

    struct FakeCanaries(Option<CanaryObservation>, bool);
    impl CanaryStore for FakeCanaries {
        async fn record(&self, _: &CanaryObservation) -> Result<(), PortError> {
            Ok(())
        }
        async fn latest(&self) -> Result<Option<CanaryObservation>, PortError> {
            if self.1 {
                // Slower than the probe timeout.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok(self.0.clone())
        }
    }

    struct FakeQueue(Result<QueueDepth, ()>);
    impl QueueStats for FakeQueue {
        async fn depth(&self) -> Result<QueueDepth, PortError> {
            self.0.map_err(|()| PortError::Unavailable {
                service: Service::Queue,
                operation: "GetQueueAttributes",
                detail: "arn:aws:sqs:secret-internal-detail".into(),
            })
        }
    }

    const NOW: i64 = 1_764_000_060_000;

    fn config() -> Config {
        Config {
            stage: "test".into(),
            control_table: "t".into(),
            jobs_queue_url: "q".into(),
            jobs_dlq_url: "d".into(),
            canary_stale_after: Duration::from_secs(180),
            probe_timeout: Duration::from_millis(200),
        }
    }

    fn deps(canary_slow: bool, queue: Result<QueueDepth, ()>) -> Deps<FakeCanaries, FakeQueue> {
        Deps {
            canaries: FakeCanaries(
                Some(CanaryObservation {
                    job_id: JobId::generate(),
                    enqueued_at_ms: NOW - 30_400,
                    processed_at_ms: NOW - 30_000,
                }),
                canary_slow,
            ),
            jobs_queue: FakeQueue(queue),
            dead_letter_queue: FakeQueue(Ok(QueueDepth::default())),
            clock: Arc::new(ManualClock::at(NOW)),
            config: config(),
        }
    }

    /// The fixture request, with its method, path and authorizer context replaced.
    fn request(method: &str, path: &str, authorizer: Option<serde_json::Value>) -> Request {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../events/http-request.json")).unwrap();
        event["rawPath"] = path.into();
        event["requestContext"]["http"]["method"] = method.into();
        event["requestContext"]["http"]["path"] = path.into();
        match authorizer {
            Some(ctx) => {
                event["requestContext"]["authorizer"] = serde_json::json!({ "lambda": ctx })
            }
            None => {
                event["requestContext"]
                    .as_object_mut()
                    .unwrap()
                    .remove("authorizer");
            }
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn admin() -> Option<serde_json::Value> {
        Some(serde_json::json!({"principal": "admin-key", "tenant_id": "", "scopes": "admin"}))
    }

    async fn call(
        d: &Deps<FakeCanaries, FakeQueue>,
        req: Request,
    ) -> (u16, String, serde_json::Value) {
        let res = handle(d, req).await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = match res.body() {
            Body::Binary(b) => serde_json::from_slice(b).unwrap(),
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            Body::Empty => serde_json::Value::Null,
            _ => serde_json::Value::Null,
        };
        (status, content_type, body)
    }

    #[tokio::test]
    async fn health_reports_canary_and_queues_without_authentication() {
        let d = deps(false, Ok(QueueDepth::default()));
        let (status, ct, body) = call(&d, request("GET", "/v1/health", None)).await;
        assert_eq!(status, 200);
        assert_eq!(ct, "application/json");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["canary"]["last_round_trip_ms"], 400);
        assert_eq!(body["canary"]["age_seconds"], 30);
        assert_eq!(body["queues"]["dead_letter"]["visible"], 0);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }

    #[tokio::test]
    async fn when_store_is_slow_health_answers_503_within_the_probe_timeout() {
        let d = deps(true, Ok(QueueDepth::default()));
        let started = std::time::Instant::now();
        let (status, _, body) = call(&d, request("GET", "/v1/health", None)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(status, 503);
        assert_eq!(body["checks"]["dynamodb"]["error"], "timeout");
    }

    #[tokio::test]
    async fn when_queue_fails_health_reveals_no_internal_detail() {
        let d = deps(false, Err(()));
        let (status, _, body) = call(&d, request("GET", "/v1/health", None)).await;
        assert_eq!(status, 503);
        assert!(!body.to_string().contains("secret-internal-detail"));
        assert_eq!(body["checks"]["sqs"]["error"], "error");
    }

    #[tokio::test]
    async fn me_returns_the_principal_from_the_authorizer_context() {
        let d = deps(false, Ok(QueueDepth::default()));
        let (status, _, body) = call(&d, request("GET", "/v1/me", admin())).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            serde_json::json!({"principal": "admin-key", "tenant_id": null, "scopes": ["admin"]})
        );
    }

    #[tokio::test]
    async fn me_without_authorizer_context_is_401_problem() {
        let d = deps(false, Ok(QueueDepth::default()));
        let (status, ct, body) = call(&d, request("GET", "/v1/me", None)).await;
        assert_eq!(status, 401);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "unauthenticated");
    }

    #[tokio::test]
    async fn unknown_route_is_404_problem() {
        let d = deps(false, Ok(QueueDepth::default()));
        let (status, ct, body) = call(&d, request("GET", "/v1/nope", admin())).await;
        assert_eq!(status, 404);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "route_not_found");
        assert_eq!(body["instance"], "/v1/nope");
        assert_eq!(body["type"], "urn:tributary:problem:route_not_found");
    }

    #[tokio::test]
    async fn wrong_method_is_405_with_allow_header() {
        let d = deps(false, Ok(QueueDepth::default()));
        let res = handle(&d, request("DELETE", "/v1/health", None))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405);
        assert_eq!(res.headers()["allow"], "GET");
    }
}
