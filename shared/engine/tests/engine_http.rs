//! Engine behaviour against a local mock: pagination, retries, classification, caps, the egress
//! guard, redirects, templating errors and actions.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tributary_engine::egress::EgressDenied;
use tributary_engine::spec::load;
use tributary_engine::{
    Connection, EgressPolicy, Engine, EngineConfig, EngineError, ErrorClass, HttpConfig, Page,
    ProviderSpec, ReadOptions, StreamState,
};
use wiremock::matchers::{body_string, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SPEC: &str = r#"
spec_version: 1
id: testapi
name: Test API
docs_url: https://example.com/docs
connection_config:
  - {name: team, label: Team, required: false}
base_url: https://api.example.com/v1
auth:
  - type: api_key
    credentials: [{name: token, label: Token, secret: true}]
    in: header
    name: Authorization
    value: "Bearer {credentials.token}"
pagination:
  type: cursor
  cursor_path: meta.next
  param: cursor
  page_size: {param: limit, value: 2}
streams:
  - name: items
    request: {path: /items, query: {team: "{config.team}"}}
    records: data
    primary_key: [id]
  - name: pages
    request: {path: /pages}
    records: items
    primary_key: [id]
    pagination: {type: page_number, page_param: page, page_size: {param: per_page, value: 2}}
  - name: events
    request: {path: /events}
    records: data
    primary_key: [id]
    pagination: {type: none}
    sync: incremental
    incremental:
      cursor_field: updated
      format: unix_seconds
      param: {name: since}
      lookback_seconds: 60
  - name: linked
    request: {path: /linked}
    records: ""
    primary_key: [id]
    pagination: {type: next_url, source: {from: link_header}}
  - name: by_team
    request: {path: "/teams/{config.team}/items"}
    records: data
    primary_key: [id]
    pagination: {type: none}
actions:
  - name: create
    request: {method: POST, path: /things, body: {name: "{input.name}", meta: "{input.meta}"}}
    encoding: form
    input_schema:
      type: object
      required: [name]
      properties: {name: {type: string, minLength: 1}, meta: {type: object}}
    output: thing
"#;

fn spec() -> ProviderSpec {
    load(SPEC, "testapi.yaml").unwrap()
}

fn conn(server: &MockServer) -> Connection {
    Connection {
        credentials: [("token".to_owned(), "t0k".into())].into(),
        base_url: Some(format!("{}/v1", server.uri())),
        ..Connection::default()
    }
}

fn engine() -> Engine {
    Engine::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        request_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    })
    .unwrap()
}

async fn collect(
    engine: &Engine,
    spec: &ProviderSpec,
    stream: &str,
    conn: &Connection,
    opts: ReadOptions,
) -> Result<Vec<Page>, EngineError> {
    let mut s = engine.read(spec, stream, conn, opts)?;
    let mut pages = Vec::new();
    while let Some(p) = s.next().await {
        pages.push(p?);
    }
    Ok(pages)
}

fn ids(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| {
            p.records
                .iter()
                .map(|r| r.to_value().unwrap()["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn cursor_pagination_follows_cursor_until_absent_with_auth_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/items"))
        .and(header("authorization", "Bearer t0k"))
        .and(query_param("limit", "2"))
        .and(query_param_is_missing("cursor"))
        .and(query_param_is_missing("team"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"id": "a"}, {"id": "b"}], "meta": {"next": "c2"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/items"))
        .and(query_param("cursor", "c2"))
        .and(query_param("limit", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"id": "c"}], "meta": {"next": null}})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let pages = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(ids(&pages), ["a", "b", "c"]);
    assert!(pages[1].last);
}

#[tokio::test]
async fn page_number_pagination_stops_on_short_page() {
    let server = MockServer::start().await;
    for (page, items) in [
        ("1", json!([{"id": "1"}, {"id": "2"}])),
        ("2", json!([{"id": "3"}])),
    ] {
        Mock::given(path("/v1/pages"))
            .and(query_param("page", page))
            .and(query_param("per_page", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": items})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let pages = collect(
        &engine(),
        &spec(),
        "pages",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages), ["1", "2", "3"]);
}

#[tokio::test]
async fn link_header_pagination_follows_rel_next() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}/v1/linked?page=2>; rel=\"next\", <{}/v1/linked?page=2>; rel=\"last\"",
        server.uri(),
        server.uri()
    );
    Mock::given(path("/v1/linked"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!([{"id": "x"}])),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v1/linked"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "y"}])))
        .mount(&server)
        .await;
    let pages = collect(
        &engine(),
        &spec(),
        "linked",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages), ["x", "y"]);
}

#[tokio::test]
async fn not_found_is_classified_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "no such list"})))
        .expect(1)
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert!(err.to_string().contains("no such list"), "{err}");
}

#[tokio::test]
async fn unauthorized_is_auth_class() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
}

#[tokio::test]
async fn rate_limited_response_waits_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "a"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let engine = engine();
    let started = Instant::now();

    let pages = collect(
        &engine,
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(ids(&pages), ["a"]);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        engine
            .client()
            .stats()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn long_retry_after_is_returned_for_deferral() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn server_errors_are_retried_until_attempts_run_out() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(503))
        .expect(5)
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, EngineError::Exhausted { attempts: 5, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn slow_response_times_out_as_transient() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let engine = Engine::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        request_timeout: Duration::from_millis(200),
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        ..HttpConfig::default()
    })
    .unwrap();
    let err = collect(
        &engine,
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(
        matches!(err, EngineError::Exhausted { ref last, .. } if matches!(**last, EngineError::Timeout(_))),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_body_and_missing_records_are_permanent() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"data\": [1,"))
        .mount(&server)
        .await;
    Mock::given(path("/v1/pages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Malformed { .. }), "{err}");
    let err = collect(
        &engine(),
        &spec(),
        "pages",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("no record array at `items`"),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let server = MockServer::start().await;
    let big: Vec<Value> = (0..2000)
        .map(|i| json!({"id": i.to_string(), "pad": "x".repeat(100)}))
        .collect();
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": big})))
        .mount(&server)
        .await;
    let engine = Engine::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        max_response_bytes: 64 * 1024,
        ..HttpConfig::default()
    })
    .unwrap();
    let err = collect(
        &engine,
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::ResponseTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"id": "a", "blob": "y".repeat(5000)}]})),
        )
        .mount(&server)
        .await;
    let engine = Engine::new(EngineConfig {
        http: HttpConfig {
            egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
            ..HttpConfig::default()
        },
        max_record_bytes: 1024,
    })
    .unwrap();
    let err = collect(
        &engine,
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, EngineError::RecordTooLarge { size, .. } if size > 5000),
        "{err}"
    );
}

#[tokio::test]
async fn egress_guard_refuses_loopback_without_allowlist() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let engine = Engine::new(HttpConfig::default()).unwrap();
    let err = collect(
        &engine,
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Egress(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Config);

    // The IPv4-mapped IPv6 spelling of the same address is refused too.
    let port = server.address().port();
    let mut mapped = conn(&server);
    mapped.base_url = Some(format!("http://[::ffff:127.0.0.1]:{port}/v1"));
    let err = collect(&engine, &spec(), "items", &mapped, ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Egress(_)), "{err}");

    // And a name resolving to loopback is refused by the resolver.
    let mut named = conn(&server);
    named.base_url = Some(format!("http://localhost:{port}/v1"));
    let err = collect(&engine, &spec(), "items", &named, ReadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Egress(_)), "{err}");
}

#[tokio::test]
async fn redirect_to_private_address_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "http://169.254.169.254/latest/meta-data/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Egress(_)), "{err}");

    let server2 = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", "http://[::ffff:10.0.0.1]/x"),
        )
        .mount(&server2)
        .await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server2),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Egress(_)), "{err}");
}

fn https_only_engine() -> Engine {
    Engine::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        request_timeout: Duration::from_millis(500),
        require_https: true,
        ..HttpConfig::default()
    })
    .unwrap()
}

/// An origin whose `/v1/items` redirects to `location`.
async fn redirecting_to(location: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", location))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn when_https_is_required_a_redirect_to_plain_http_is_refused_before_connecting() {
    // `.invalid` never resolves (RFC 6761): refused for its scheme, the error is Egress; had the
    // hop been attempted, it would be a transport (DNS) error instead.
    for location in ["http://issuer.invalid/jwks", "http://93.184.216.34/jwks"] {
        let server = redirecting_to(location).await;

        let err = collect(
            &https_only_engine(),
            &spec(),
            "items",
            &conn(&server),
            ReadOptions::default(),
        )
        .await
        .unwrap_err();

        assert!(
            matches!(
                err,
                EngineError::Egress(EgressDenied::InsecureScheme { .. })
            ),
            "{location}: {err}"
        );
        // Not retried either: a refused destination is configuration, not a transient failure.
        assert_eq!(err.class(), ErrorClass::Config);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn when_https_is_required_https_hops_and_allowlisted_http_hops_still_go() {
    // An https hop is let through the scheme check (and then fails on DNS, as `.invalid` must).
    let server = redirecting_to("https://issuer.invalid/jwks").await;
    let err = collect(
        &https_only_engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        !matches!(
            err,
            EngineError::Egress(EgressDenied::InsecureScheme { .. })
        ),
        "{err}"
    );

    // A plain-http hop to a loopback mock the allowlist opens is followed.
    let other = MockServer::start().await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "r"}]})))
        .expect(1)
        .mount(&other)
        .await;
    let server = redirecting_to(&format!("{}/elsewhere", other.uri())).await;
    let pages = collect(
        &https_only_engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages), ["r"]);
}

#[tokio::test]
async fn by_default_plain_http_redirects_are_left_to_the_egress_guard() {
    let server = redirecting_to("http://issuer.invalid/jwks").await;
    let err = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(!matches!(err, EngineError::Egress(_)), "{err}");
}

#[tokio::test]
async fn credentials_are_not_forwarded_to_another_origin() {
    let origin = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/elsewhere", other.uri()).as_str()),
        )
        .mount(&origin)
        .await;
    Mock::given(path("/elsewhere"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "r"}]})))
        .expect(1)
        .mount(&other)
        .await;

    let pages = collect(
        &engine(),
        &spec(),
        "items",
        &conn(&origin),
        ReadOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(ids(&pages), ["r"]);
    let received: Vec<Request> = other.received_requests().await.unwrap();
    assert!(
        received[0].headers.get("authorization").is_none(),
        "credentials leaked across origins"
    );
}

#[tokio::test]
async fn a_body_is_not_forwarded_by_a_redirect_to_another_origin() {
    for status in [307, 308] {
        let origin = MockServer::start().await;
        let other = MockServer::start().await;
        Mock::given(path("/v1/things"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/things", other.uri()).as_str()),
            )
            .expect(1)
            .mount(&origin)
            .await;
        Mock::given(path("/things"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"thing": {}})))
            .expect(0)
            .mount(&other)
            .await;

        let err = engine()
            .action(&spec(), "create", &conn(&origin), &json!({"name": "n"}))
            .await
            .unwrap_err();

        assert!(matches!(err, EngineError::Redirect(_)), "{status}: {err}");
        assert!(!err.is_retryable(), "{status}: {err}");
        assert!(other.received_requests().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_same_origin_307_keeps_method_and_body() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/things"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/v2/things"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/things"))
        .and(header("authorization", "Bearer t0k"))
        .and(body_string("meta%5Bk%5D=v&name=n"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"thing": {"id": "t"}})))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec(),
            "create",
            &conn(&server),
            &json!({"name": "n", "meta": {"k": "v"}}),
        )
        .await
        .unwrap();

    assert_eq!(out, json!({"id": "t"}));
}

#[tokio::test]
async fn a_303_to_another_origin_drops_the_body_and_is_followed() {
    let origin = MockServer::start().await;
    let other = MockServer::start().await;
    Mock::given(path("/v1/things"))
        .respond_with(
            ResponseTemplate::new(303)
                .insert_header("location", format!("{}/done", other.uri()).as_str()),
        )
        .mount(&origin)
        .await;
    Mock::given(method("GET"))
        .and(path("/done"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"thing": {"id": "t"}})))
        .expect(1)
        .mount(&other)
        .await;

    engine()
        .action(&spec(), "create", &conn(&origin), &json!({"name": "n"}))
        .await
        .unwrap();

    let received = other.received_requests().await.unwrap();
    assert!(received[0].body.is_empty());
    assert!(received[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn missing_credential_and_path_value_are_named() {
    let server = MockServer::start().await;
    let mut c = conn(&server);
    c.credentials.clear();
    let err = engine()
        .read(&spec(), "items", &c, ReadOptions::default())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("missing credential `token`"),
        "{err}"
    );

    let err = collect(
        &engine(),
        &spec(),
        "by_team",
        &conn(&server),
        ReadOptions::default(),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("[testapi]")
            && msg.contains("streams[by_team].request.path")
            && msg.contains("{config.team}"),
        "{msg}"
    );
}

#[tokio::test]
async fn path_values_are_encoded_as_one_segment() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/teams/a%2F..%2Fadmin/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;
    let mut c = conn(&server);
    c.config.insert("team".into(), "a/../admin".into());
    let pages = collect(&engine(), &spec(), "by_team", &c, ReadOptions::default())
        .await
        .unwrap();
    assert!(pages[0].records.is_empty());
}

#[tokio::test]
async fn incremental_read_sends_cursor_minus_lookback_and_checkpoints_max() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/events")).and(query_param("since", "1700000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "1", "updated": 1700000500}, {"id": "2", "updated": 1700000300}]})))
        .expect(1).mount(&server).await;
    let opts = ReadOptions {
        state: Some(StreamState {
            cursor: Some("1700000060".into()),
        }),
        ..ReadOptions::default()
    };
    let pages = collect(&engine(), &spec(), "events", &conn(&server), opts)
        .await
        .unwrap();
    assert_eq!(
        pages.last().unwrap().checkpoint,
        Some(StreamState {
            cursor: Some("1700000500".into())
        })
    );
}

#[tokio::test]
async fn max_records_truncates_and_stops() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"id": "a"}, {"id": "b"}], "meta": {"next": "n"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let opts = ReadOptions {
        max_records: Some(1),
        ..ReadOptions::default()
    };
    let pages = collect(&engine(), &spec(), "items", &conn(&server), opts)
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["a"]);
}

#[tokio::test]
async fn action_sends_form_body_and_selects_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/things"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("meta%5Bk%5D=v&name=widget"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"thing": {"id": "t1"}})))
        .expect(1)
        .mount(&server)
        .await;
    let out = engine()
        .action(
            &spec(),
            "create",
            &conn(&server),
            &json!({"name": "widget", "meta": {"k": "v"}}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"id": "t1"}));
}

#[tokio::test]
async fn action_input_is_validated_before_sending() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/things"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let err = engine()
        .action(&spec(), "create", &conn(&server), &json!({"name": ""}))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Input { .. }), "{err}");
    assert!(err.to_string().contains("/name"), "{err}");
}

#[tokio::test]
async fn failed_post_is_not_retried_unless_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/things"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&server)
        .await;
    let err = engine()
        .action(&spec(), "create", &conn(&server), &json!({"name": "w"}))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
}
