//! GitHub REST: Bearer token, pinned API version and its recorded end, `Link` header paging,
//! issues read incrementally with `since`, primary rate limit as a 403 with
//! `x-ratelimit-remaining: 0` and an epoch reset, `X-Hub-Signature-256` webhooks.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::json;
use time::OffsetDateTime;
use tributary_engine::spec::dates::{Severity, review};
use tributary_engine::{ReadOptions, StreamState};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    engine, headers, hmac_hex, mocked, query_exactly, read_all, spec, verified_event,
    verify_webhook,
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
        .and(query_exactly(&[("sort", "updated"), ("per_page", "100")]))
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
        .and(query_exactly(&[
            ("sort", "updated"),
            ("per_page", "100"),
            ("page", "2"),
        ]))
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
        .and(query_exactly(&[
            ("sort", "updated"),
            ("per_page", "100"),
            ("page", "2"),
        ]))
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

/// A secondary rate limit is a 403 with `retry-after` while the primary limit has requests left:
/// the read waits and goes on, rather than taking it for refused credentials.
#[tokio::test]
async fn github_secondary_rate_limit_is_waited_out_not_taken_for_an_auth_failure() {
    let server = MockServer::start().await;
    let first = || {
        Mock::given(method("GET"))
            .and(path("/user/repos"))
            .and(query_exactly(&[("sort", "updated"), ("per_page", "100")]))
    };
    first()
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .insert_header("x-ratelimit-remaining", "4990")
                .set_body_json(json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    first()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1}])))
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
    assert_eq!(got.ids("id"), ["1"]);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for retry-after"
    );
}

/// `GET /issues` lists every issue and pull request the user can see (`filter=all`, `state=all`),
/// oldest change first, from the saved cursor less the lookback (`since`). The `Link` next URL
/// carries every parameter, and is followed as given.
#[tokio::test]
async fn github_issues_read_changes_since_the_cursor_and_follow_the_link_header() {
    let server = MockServer::start().await;
    let first = [
        ("filter", "all"),
        ("state", "all"),
        ("sort", "updated"),
        ("direction", "asc"),
        ("since", "2024-05-01T11:59:00Z"),
        ("per_page", "100"),
    ];
    let next = format!(
        "<{0}/issues?filter=all&state=all&sort=updated&direction=asc&since=2024-05-01T11%3A59%3A00Z&per_page=100&page=2>; rel=\"next\", \
         <{0}/issues?filter=all&state=all&sort=updated&direction=asc&since=2024-05-01T11%3A59%3A00Z&per_page=100&page=2>; rel=\"last\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/issues"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(query_exactly(&first))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!([
                    {"id": 1, "number": 1347, "title": "Found a bug", "state": "open",
                     "updated_at": "2024-05-01T12:30:00Z", "repository": {"full_name": "octocat/Hello-World"}},
                    {"id": 2, "number": 12, "title": "Add docs", "state": "closed",
                     "updated_at": "2024-05-02T08:00:00Z", "pull_request": {"url": "https://api.github.com/repos/octocat/Hello-World/pulls/12"}}
                ])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut second = first.to_vec();
    second.push(("page", "2"));
    Mock::given(method("GET"))
        .and(path("/issues"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(query_exactly(&second))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 3, "number": 1348, "title": "Crash on start", "state": "open",
             "updated_at": "2024-05-03T09:15:00Z"}
        ])))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("github");
    let conn = mocked(&server, "", &[], TOKEN);
    let options = ReadOptions {
        state: Some(StreamState {
            cursor: Some("2024-05-01T12:00:00Z".into()),
        }),
        ..ReadOptions::default()
    };
    let engine = engine();
    let mut pages = engine.read(&spec, "issues", &conn, options).unwrap();
    let (mut ids, mut checkpoint) = (Vec::new(), None);
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        ids.extend(
            page.records
                .iter()
                .map(|r| r.to_value().unwrap()["id"].clone()),
        );
        checkpoint = page.checkpoint.or(checkpoint);
    }

    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    assert_eq!(
        checkpoint.and_then(|c| c.cursor).as_deref(),
        Some("2024-05-03T09:15:00Z")
    );
}

/// A REST version stays supported for 24 months after the next one is released; 2026-03-10 was,
/// so the pinned 2022-11-28 has an earliest end, which the catalog warns about ahead of time.
#[test]
fn github_pinned_api_version_has_its_earliest_end_recorded() {
    let spec = spec("github");
    let pinned = spec.headers["X-GitHub-Api-Version"].clone();
    let end = spec
        .deprecations
        .iter()
        .find(|d| d.endpoint.contains(pinned.as_str()))
        .unwrap_or_else(|| panic!("no recorded end for API version {pinned}"));
    assert_eq!(end.sunset, "2028-03-10");
    assert!(
        end.replacement.contains("2026-03-10"),
        "{}",
        end.replacement
    );

    let near = review(&spec, time::macros::date!(2028 - 01 - 15));
    assert!(
        near.iter()
            .any(|f| f.severity == Severity::Warning && f.message.contains(pinned.as_str())),
        "{near:?}"
    );
    assert!(review(&spec, time::macros::date!(2026 - 12 - 07)).is_empty());
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
