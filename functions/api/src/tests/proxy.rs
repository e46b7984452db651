//! The proxy against a local Stripe: what passes (method, path, query, body, safe headers, the
//! provider's status and answer) and what never does (the caller's credentials and hop-by-hop
//! headers out; cookies and the connection's secrets back; a path out of the provider's base; the
//! credentials to another origin on a redirect), opt-in retries and size bounds.

use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::actions::{Setup, setup};
use super::{as_tenant, is_problem};
use crate::testing::{GOOD_KEY, Req, Res, call};

impl Setup {
    fn proxied(&self, verb: &str, path_and_query: &str) -> Req {
        as_tenant(
            Req::new(verb, &format!("/v1/proxy{path_and_query}")),
            &self.t,
        )
        .header("connection-id", &self.connection)
    }

    async fn requests(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap()
    }

    async fn proxy(&self, req: Req) -> Res {
        call(&self.d, req).await
    }
}

#[tokio::test]
async fn a_call_goes_out_with_the_connection_s_credentials_and_comes_back_as_answered() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("limit", "3"))
        .and(query_param("email", "a b@example.com"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "req_123")
                .insert_header("set-cookie", "__stripe_sid=abc; Secure")
                .insert_header("x-echo", format!("Bearer {GOOD_KEY}").as_str())
                .set_body_json(json!({"object": "list", "data": [], "echo": GOOD_KEY})),
        )
        .mount(&s.server)
        .await;
    let res = s
        .proxy(
            s.proxied("GET", "/customers?limit=3&email=a%20b%40example.com")
                .header("authorization", "Bearer sk_live_callers_own")
                .header("cookie", "session=caller")
                .header("x-forwarded-for", "10.0.0.1")
                .header("stripe-account", "acct_123")
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["object"], "list");
    // What the provider sent back, less its cookie, its echo of the secret redacted.
    assert_eq!(res.headers["request-id"], "req_123");
    assert!(res.headers.get("set-cookie").is_none());
    // The whole credential header value is a secret: it goes, scheme and all.
    assert_eq!(res.headers["x-echo"], "[REDACTED]");
    assert_eq!(res.body["echo"], "[REDACTED]");
    assert!(!format!("{:?} {}", res.headers, res.body).contains(GOOD_KEY));

    let sent: Vec<_> = s
        .requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/v1/customers")
        .collect();
    assert_eq!(sent.len(), 1);
    let h = &sent[0].headers;
    // The connection's credential replaced the caller's; the caller's cookie and the gateway's
    // headers stayed behind; the caller's own provider header and the spec's version went.
    assert_eq!(h["authorization"], format!("Bearer {GOOD_KEY}").as_str());
    assert!(h.get("cookie").is_none());
    assert!(h.get("x-forwarded-for").is_none());
    assert!(h.get("connection-id").is_none());
    assert_eq!(h["stripe-account"], "acct_123");
    assert!(h.get("stripe-version").is_some());
}

#[tokio::test]
async fn the_provider_s_errors_come_back_as_it_sent_them() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"message": "No such customer: 'cus_missing'", "type": "invalid_request_error"}}),
        ))
        .mount(&s.server)
        .await;
    let res = s.proxy(s.proxied("GET", "/customers/cus_missing")).await;
    assert_eq!(res.status, 404);
    assert_eq!(res.headers["content-type"], "application/json");
    assert_eq!(
        res.body["error"]["message"],
        "No such customer: 'cus_missing'"
    );
}

#[tokio::test]
async fn a_body_is_forwarded_and_bounded() {
    let s = setup().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "cus_1"})))
        .with_priority(1)
        .mount(&s.server)
        .await;
    let res = s
        .proxy(s.proxied("POST", "/customers").raw(
            "email=ada%40example.com",
            "application/x-www-form-urlencoded",
        ))
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let sent = s.requests().await;
    let post = sent.iter().find(|r| r.method.as_str() == "POST").unwrap();
    assert_eq!(post.body, b"email=ada%40example.com");
    assert_eq!(
        post.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let before = s.requests().await.len();
    let big = "x".repeat(crate::routes::proxy::MAX_REQUEST_BYTES + 1);
    let res = s
        .proxy(s.proxied("POST", "/customers").raw(&big, "text/plain"))
        .await;
    is_problem(&res, 413, "payload_too_large");
    assert_eq!(s.requests().await.len(), before);
}

#[tokio::test]
async fn paths_that_could_leave_the_provider_are_refused_before_anything_is_sent() {
    let s = setup().await;
    // Refused by the proxy's own check (400 naming the path), or, for the forms the Lambda
    // adapter normalizes before routing (`%2e%2e` is a dot segment to it), not even routed here.
    for bad in [
        "/%2e%2e/admin",
        "/.%2E/admin",
        "/%252e%252e/admin",
        "/customers%2f..%2fadmin",
        "/customers%2F%2E%2E%2Fadmin",
        "/a%5c..%5cadmin",
        "/https:%2f%2fevil.example/x",
        "/a%00b",
        "/a%0d%0aX-Injected:%201",
        "//evil.example/x",
        "/../admin",
        "/customers/..",
    ] {
        let res = s.proxy(s.proxied("GET", bad)).await;
        assert!(
            [400, 404].contains(&res.status),
            "{bad}: {} {:?}",
            res.status,
            res.body
        );
        assert_eq!(
            res.headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "{bad}: {} {:?}",
            res.status,
            res.body
        );
        if res.status == 400 {
            assert_eq!(res.body["errors"][0]["pointer"], "path.proxy_path", "{bad}");
        }
    }
    for refused_here in [
        "/%252e%252e/admin",
        "/customers%2f..%2fadmin",
        "/a%5c..%5cadmin",
    ] {
        let res = s.proxy(s.proxied("GET", refused_here)).await;
        is_problem(&res, 400, "validation_failed");
    }
    let to_stripe = s
        .requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() != "/v1/balance")
        .count();
    assert_eq!(
        to_stripe, 0,
        "nothing but the connection's verification was sent"
    );
    let res = s
        .proxy(as_tenant(Req::new("GET", "/v1/proxy/customers"), &s.t))
        .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "header.Connection-Id");
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_credentials() {
    let s = setup().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/landing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"landed": true})))
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/files/f_1/contents"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/landing", elsewhere.uri()).as_str()),
        )
        .mount(&s.server)
        .await;
    let res = s.proxy(s.proxied("GET", "/files/f_1/contents")).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["landed"], true);
    let landed = elsewhere.received_requests().await.unwrap();
    assert_eq!(landed.len(), 1);
    assert!(landed[0].headers.get("authorization").is_none());
    assert!(!format!("{:?}", landed[0]).contains(GOOD_KEY));
}

async fn events(s: &Setup) -> usize {
    s.requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/v1/events")
        .count()
}

#[tokio::test]
async fn retries_happen_only_when_asked_for() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list"})))
        .with_priority(2)
        .mount(&s.server)
        .await;
    // Not asked: the 503 comes back as it is.
    let res = s.proxy(s.proxied("GET", "/events")).await;
    assert_eq!(res.status, 503);
    assert_eq!(events(&s).await, 1);
    // Asked: the next 503 is retried (the mock answers 200 after its first).
    let s2 = setup().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s2.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list"})))
        .with_priority(2)
        .mount(&s2.server)
        .await;
    let res = s2
        .proxy(
            s2.proxied("GET", "/events")
                .header("tributary-proxy-retries", "2"),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(events(&s2).await, 2);
    let res = s2
        .proxy(
            s2.proxied("GET", "/events")
                .header("tributary-proxy-retries", "9"),
        )
        .await;
    is_problem(&res, 400, "validation_failed");
}
