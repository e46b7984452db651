//! The attempt hook: every attempt is reported once, with its status, attempt number and error
//! class, and with the URL as asked for (query credentials are never in it).

use std::sync::Mutex;
use std::time::Duration;

use http::Method;
use secrecy::SecretString;
use tributary_http::observe::{self, Attempt};
use tributary_http::{EgressPolicy, HttpClient, HttpConfig, OutRequest};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What a test checks of an attempt: (query, status, attempt, class).
type Seen = (Option<String>, Option<u16>, u32, Option<&'static str>);

/// The path and what is checked of every reported attempt, in this test binary.
static SEEN: Mutex<Vec<(String, Seen)>> = Mutex::new(Vec::new());

fn hook(a: &Attempt<'_>) {
    assert_eq!(a.method, &Method::GET);
    assert!(a.duration < Duration::from_secs(10));
    SEEN.lock().unwrap().push((
        a.url.path().to_owned(),
        (
            a.url.query().map(str::to_owned),
            a.status,
            a.attempt,
            a.error_class,
        ),
    ));
}

fn seen(p: &str) -> Vec<Seen> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == p)
        .map(|(_, seen)| seen.clone())
        .collect()
}

fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..HttpConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn each_attempt_is_reported_with_its_outcome_and_no_query_credential() {
    observe::install(hook);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut req = OutRequest::get(Url::parse(&format!("{}/limited?page=2", server.uri())).unwrap());
    req.auth
        .query
        .push(("api_key".into(), SecretString::from("sk_secret_in_query")));
    client().send(&req).await.unwrap();
    assert_eq!(
        seen("/limited"),
        [
            (Some("page=2".into()), Some(429), 1, Some("rate_limited")),
            (Some("page=2".into()), Some(200), 2, None),
        ]
    );
}

#[tokio::test]
async fn a_refused_destination_is_reported_as_egress() {
    observe::install(hook);
    let refusing = HttpClient::new(HttpConfig::default()).unwrap();
    let _ = refusing
        .send(&OutRequest::get(
            Url::parse("http://127.0.0.1:9/refused").unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(seen("/refused"), [(None, None, 1, Some("egress"))]);
}
