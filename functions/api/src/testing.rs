//! The API over the shared in-memory doubles (`tributary-testing`), and request builders for the
//! handler tests.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use lambda_http::Request;
use tower::ServiceExt as _;
use tributary_core::PortError;
use tributary_core::job::JobEnvelope;
use tributary_core::ports::{JobQueue, QueueDepth, QueueStats};
use tributary_testing::ManualClock;
pub use tributary_testing::{FakeQueue, MemStore};

use crate::config::Config;
use crate::state::Deps;

/// The test clock's time.
pub const NOW: i64 = 1_800_000_030_000;

/// The test settings.
pub fn config() -> Config {
    Config {
        stage: "test".into(),
        control_table: "t".into(),
        records_table: "r".into(),
        jobs_queue_url: "q".into(),
        jobs_dlq_url: "d".into(),
        canary_stale_after: Duration::from_secs(180),
        probe_timeout: Duration::from_millis(200),
        max_issuers_per_tenant: 20,
        keyring: tributary_core::vault::KeyringSettings {
            secret_id: "keyring".into(),
            ttl: Duration::from_secs(300),
        },
        egress: tributary_http::EgressPolicy::public_only(),
        provider_origins: Default::default(),
        public_base_url: None,
        operations_retention_days: 14,
    }
}

pub use tributary_testing::keyring;

/// A Stripe key the mock provider accepts.
pub const GOOD_KEY: &str = "sk_test_good4242";

/// A local Stripe (the catalog's documented verification request, `GET /v1/balance`, and
/// `POST /v1/customers`) that accepts [`GOOD_KEY`] and refuses any other key with Stripe's 401
/// body on the balance; and the settings that point the
/// API's `stripe` at it, through the deployment-only origin override and a loopback allowlist.
pub async fn stripe_mock() -> (wiremock::MockServer, Config) {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .and(header(
            "authorization",
            format!("Bearer {GOOD_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "object": "balance", "available": [{"amount": 0, "currency": "usd"}], "livemode": false
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    // Stripe's `POST /v1/customers` (the `create_customer` action), for the good key only.
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header(
            "authorization",
            format!("Bearer {GOOD_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": "cus_NffrFeUfNV2Hib", "object": "customer", "email": "ada@example.com"
        })))
        .mount(&server)
        .await;
    let mut settings = config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"])
        .expect("loopback is a valid allowlist entry");
    settings
        .provider_origins
        .insert("stripe".into(), server.uri());
    (server, settings)
}

/// The API over an in-memory store, built once like at cold start.
pub struct TestApi {
    /// The store (shared with the router; also its records table).
    pub store: MemStore,
    /// The jobs queue (shared with the router).
    pub jobs: Arc<FakeQueue>,
    /// The router's clock.
    pub clock: Arc<ManualClock>,
    router: Router,
}

/// A handle on a [`FakeQueue`] the test keeps too: the router owns its queue.
pub struct SharedQueue(pub Arc<FakeQueue>);

impl JobQueue for SharedQueue {
    async fn send(&self, job: &JobEnvelope, delay: Duration) -> Result<(), PortError> {
        self.0.send(job, delay).await
    }

    async fn send_batch(&self, jobs: &[JobEnvelope]) -> Result<(), PortError> {
        self.0.send_batch(jobs).await
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        self.0.retry_after(receipt_handle, delay).await
    }
}

impl QueueStats for SharedQueue {
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        self.0.depth().await
    }
}

/// The API over `store`, with a jobs queue of depth `queue` (`Err`: a queue that fails).
pub fn deps(store: MemStore, queue: Result<QueueDepth, ()>) -> TestApi {
    deps_with(store, queue, config())
}

/// The API over `store` whose vault reads `keyring`.
pub fn deps_with_keyring(
    store: MemStore,
    keyring: Arc<dyn tributary_core::vault::KeyringSource>,
) -> TestApi {
    build(store, Ok(QueueDepth::default()), config(), keyring)
}

/// The API over `store` with `config`.
pub fn deps_with(store: MemStore, queue: Result<QueueDepth, ()>, config: Config) -> TestApi {
    build(store, queue, config, Arc::new(Arc::new(keyring())))
}

fn build(
    store: MemStore,
    queue: Result<QueueDepth, ()>,
    config: Config,
    keyring: Arc<dyn tributary_core::vault::KeyringSource>,
) -> TestApi {
    let clock = Arc::new(ManualClock::at(NOW));
    let jobs = Arc::new(match queue {
        Ok(depth) => FakeQueue::with_depth(depth),
        Err(()) => FakeQueue::failing(),
    });
    TestApi {
        store: store.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        router: crate::router::app(Deps {
            records: store.clone(),
            store,
            jobs_queue: SharedQueue(jobs),
            dead_letter_queue: SharedQueue(Arc::new(FakeQueue::default())),
            keyring,
            engine: tributary_engine::Engine::new(config.provider_http())
                .expect("the test engine builds"),
            clock,
            config,
        }),
    }
}

/// A request built from the payload 2.0 fixture.
pub struct Req {
    event: serde_json::Value,
}

impl Req {
    /// `method path`, unauthenticated.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../events/http-request.json")).unwrap();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        event["rawPath"] = path.into();
        event["rawQueryString"] = query.into();
        let params: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        event["queryStringParameters"] = params.into();
        event["requestContext"]["http"]["method"] = method.into();
        event["requestContext"]["http"]["path"] = path.into();
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        Self { event }
    }

    /// As `principal` of `tenant` (empty for none) with `scopes`.
    pub fn auth(mut self, principal: &str, tenant: &str, scopes: &str) -> Self {
        self.event["requestContext"]["authorizer"] = serde_json::json!({
            "lambda": {"principal": principal, "tenant_id": tenant, "scopes": scopes}
        });
        self
    }

    /// With the credential expiring at `expires_at_ms`, as the authorizer puts it in the context.
    pub fn with_expiry(mut self, expires_at_ms: i64) -> Self {
        self.event["requestContext"]["authorizer"]["lambda"]["expires_at_ms"] =
            expires_at_ms.to_string().into();
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.event["body"] = body.to_string().into();
        self.event["headers"]["content-type"] = "application/json".into();
        self
    }

    /// With a raw body and content type.
    pub fn raw(mut self, body: &str, content_type: &str) -> Self {
        self.event["body"] = body.into();
        self.event["headers"]["content-type"] = content_type.into();
        self
    }

    /// With `bytes` as the body, base64-encoded in the event as API Gateway sends a binary body.
    pub fn binary(mut self, bytes: &[u8], content_type: &str) -> Self {
        use base64::Engine as _;
        self.event["body"] = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into();
        self.event["isBase64Encoded"] = true.into();
        self.event["headers"]["content-type"] = content_type.into();
        self
    }

    /// With a cookie (`name=value`), where API Gateway (payload 2.0) puts a request's cookies.
    pub fn cookie(mut self, cookie: &str) -> Self {
        match self.event["cookies"].as_array_mut() {
            Some(cookies) => cookies.push(cookie.into()),
            None => self.event["cookies"] = serde_json::json!([cookie]),
        }
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.event["headers"][name] = value.into();
        self
    }

    fn build(&self) -> Request {
        lambda_http::request::from_str(&self.event.to_string()).unwrap()
    }
}

/// What a call answered.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: serde_json::Value,
}

/// Sends the request through the router.
pub async fn call(api: &TestApi, req: Req) -> Res {
    let res = api.router.clone().oneshot(req.build()).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into(),
        ))
    };
    Res {
        status,
        headers,
        body,
    }
}
