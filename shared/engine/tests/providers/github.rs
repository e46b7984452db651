//! GitHub REST: Bearer token, pinned API version, `Link` header paging, primary rate limit as a
//! 403 with `x-ratelimit-remaining: 0` and an epoch reset, `X-Hub-Signature-256` webhooks.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    engine, headers, hmac_hex, mocked, read_all, spec, verified_event, verify_webhook,
};

const TOKEN: &[(&str, &str)] = &[("token", "ghp_testtoken")];

#[tokio::test]
async fn github_repositories_follow_link_header_and_wait_for_rate_limit_reset() {
    let server = MockServer::start().await;
    let next = format!(
        "<{0}/user/repos?sort=updated&per_page=100&page=2>; rel=\"next\", <{0}/user/repos?sort=updated&per_page=100&page=2>; rel=\"last\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/user/repos"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(query_param("per_page", "100"))
        .and(query_param("sort", "updated"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(
                    json!([{"id": 1, "full_name": "o/a"}, {"id": 2, "full_name": "o/b"}]),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    Mock::given(method("GET"))
        .and(path("/user/repos"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let prev = format!(
        "<{}/user/repos?sort=updated&per_page=100&page=1>; rel=\"prev\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/user/repos"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", prev.as_str())
                .set_body_json(json!([{"id": 3, "full_name": "o/c"}])),
        )
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("github");
    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec,
        "repositories",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["1", "2", "3"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for x-ratelimit-reset, not the test's millisecond backoff"
    );
}

#[tokio::test]
async fn github_create_issue_posts_json_to_repo_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/octo-org/hello-world/issues"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(body_json(
            json!({"title": "Found a bug", "labels": ["bug"]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 1, "number": 1347, "title": "Found a bug", "state": "open"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("github"),
            "create_issue",
            &mocked(&server, "", &[], TOKEN),
            &json!({"owner": "octo-org", "repo": "hello-world", "title": "Found a bug", "labels": ["bug"]}),
        )
        .await
        .unwrap();

    assert_eq!(out["number"], 1347);
}

#[test]
fn github_webhook_verifies_sha256_signature_and_reads_delivery_id() {
    let spec = spec("github");
    let hooks = spec.webhooks.as_ref().expect("github has webhooks");
    let body = br#"{"action":"opened","installation":{"id":42},"issue":{"number":1}}"#;
    let sig = format!("sha256={}", hmac_hex("It's a Secret to Everybody", body));
    let h = headers(&[
        ("X-Hub-Signature-256", sig.as_str()),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "issues"),
    ]);
    let secret = "It's a Secret to Everybody";

    let got = verified_event(verify_webhook(
        hooks,
        secret,
        &h,
        body,
        OffsetDateTime::now_utc(),
    ));

    assert_eq!(
        got.event_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(got.event_type.as_deref(), Some("issues"));
    assert_eq!(got.connection_key.as_deref(), Some("42"));
    let tampered = br#"{"action":"opened","installation":{"id":43},"issue":{"number":1}}"#;
    assert!(verify_webhook(hooks, secret, &h, tampered, OffsetDateTime::now_utc()).is_err());
}
