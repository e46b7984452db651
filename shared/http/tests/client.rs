//! The client on its own, against a local mock: neutral defaults, a caller's classifier, retries,
//! and credentials kept to their origin.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tributary_http::{
    Classifier, Classify, EgressPolicy, ErrorClass, Failure, HttpClient, HttpConfig, HttpError,
    OutRequest,
};
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        max_inline_wait: Duration::from_secs(5),
        ..HttpConfig::default()
    })
    .unwrap()
}

fn url(server: &MockServer, p: &str) -> Url {
    Url::parse(&format!("{}{p}", server.uri())).unwrap()
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_plain_get_with_the_defaults_returns_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/doc"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"ok":true}"#))
        .mount(&server)
        .await;

    let resp = client()
        .send(&OutRequest::get(url(&server, "/doc")))
        .await
        .unwrap();

    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(&resp.body[..], br#"{"ok":true}"#);
}

/// Building the client builds no connection pool or TLS configuration; the first request does,
/// and clones share it.
#[tokio::test]
async fn the_pool_is_built_by_the_first_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let client = client();
    let clone = client.clone();
    assert!(!client.is_built());
    clone
        .send(&OutRequest::get(url(&server, "/first")))
        .await
        .unwrap();
    assert!(client.is_built());
}

#[tokio::test]
async fn when_not_found_should_fail_once_with_the_server_message() {
    let server = MockServer::start().await;
    Mock::given(path("/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_string(r#"{"message":"no such doc"}"#))
        .mount(&server)
        .await;

    let err = client()
        .send(&OutRequest::get(url(&server, "/gone")))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, HttpError::Upstream { status: 404, message: Some(m), .. } if m == "no such doc"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn when_rate_limited_should_wait_for_retry_after_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let started = Instant::now();

    let resp = client()
        .send(&OutRequest::get(url(&server, "/limited")))
        .await
        .unwrap();

    assert_eq!(resp.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_non_idempotent_request_is_not_retried_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(path("/create"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;

    let err = client()
        .send(&OutRequest::new(Method::POST, url(&server, "/create")))
        .await
        .unwrap_err();

    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(requests(&server).await, 1);
}

/// A server that reports failures inside a `200`.
struct OkFalse;

impl Classify for OkFalse {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
        if body == br#"{"ok":false}"# {
            return Some(Failure {
                class: ErrorClass::Auth,
                message: Some("ok is false".into()),
                retry_after: None,
            });
        }
        Classifier::default().classify(status, headers, body)
    }

    fn retry_after(&self, _headers: &HeaderMap) -> Option<Duration> {
        None
    }
}

#[tokio::test]
async fn a_callers_classifier_judges_the_response() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"ok":false}"#))
        .mount(&server)
        .await;

    let err = client()
        .send_with(&OutRequest::get(url(&server, "/api")), &OkFalse)
        .await
        .unwrap_err();

    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("ok is false"), "{err}");
}

/// A provider documented to want a fixed wait after a 429, without saying so in a header.
struct FixedWait;

impl Classify for FixedWait {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
        let failure = Classifier::default().classify(status, headers, body)?;
        Some(Failure {
            retry_after: (failure.class == ErrorClass::RateLimited)
                .then(|| Duration::from_secs(30)),
            ..failure
        })
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        Classifier::default().retry_after(headers)
    }
}

/// A classifier's known wait is the error's `retry_after` when the response has no header saying
/// otherwise (longer than the client sleeps, so it is handed back once); a `Retry-After` wins.
#[tokio::test]
async fn a_classifiers_known_wait_applies_unless_the_server_says_otherwise() {
    let server = MockServer::start().await;
    Mock::given(path("/quiet"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    Mock::given(path("/told"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/told"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let err = client()
        .send_with(&OutRequest::get(url(&server, "/quiet")), &FixedWait)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(requests(&server).await, 1);

    let started = Instant::now();
    let resp = client()
        .send_with(&OutRequest::get(url(&server, "/told")), &FixedWait)
        .await
        .unwrap();
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn credentials_stay_with_the_origin_across_a_redirect() {
    let other = MockServer::start().await;
    Mock::given(path("/landing"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&other)
        .await;
    let origin = MockServer::start().await;
    Mock::given(path("/start"))
        .and(header("authorization", "Bearer secret"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/landing", other.uri()).as_str()),
        )
        .mount(&origin)
        .await;
    let mut req = OutRequest::get(url(&origin, "/start"));
    let mut auth = HeaderValue::from_static("Bearer secret");
    auth.set_sensitive(true);
    req.auth.headers.insert(http::header::AUTHORIZATION, auth);

    let resp = client().send(&req).await.unwrap();

    assert_eq!(resp.url.path(), "/landing");
    let hops = other.received_requests().await.unwrap();
    assert_eq!(hops.len(), 1);
    assert!(!hops[0].headers.contains_key("authorization"));
    // The origin's mock answers only requests carrying the credential.
    assert_eq!(requests(&origin).await, 1);
}

#[tokio::test]
async fn a_loopback_destination_is_refused_by_the_default_policy() {
    let server = MockServer::start().await;
    let strict = HttpClient::new(HttpConfig::default()).unwrap();

    let err = strict
        .send(&OutRequest::get(url(&server, "/")))
        .await
        .unwrap_err();

    assert!(matches!(err, HttpError::Egress(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Config);
    assert_eq!(requests(&server).await, 0);
}
