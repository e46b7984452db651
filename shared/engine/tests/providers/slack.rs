//! Slack Web API: Bearer bot token, `cursor` from `response_metadata.next_cursor`, 429 with
//! `Retry-After`, errors disguised as `200 {"ok": false}`, `v0` signed events.

use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use tributary_engine::ErrorClass;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    engine, headers, hmac_hex, mocked, query_exactly, read_all, spec, verified_event,
    verify_webhook,
};

const TOKEN: &[(&str, &str)] = &[("bot_token", "xoxb-1-abc")];

/// The query of a `conversations.list` page: archived channels included, the page size, and the
/// cursor if any.
fn channels_query(cursor: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut q = vec![
        ("types", "public_channel,private_channel"),
        ("exclude_archived", "false"),
        ("limit", "200"),
    ];
    q.extend(cursor.map(|c| ("cursor", c)));
    q
}

/// The query of a `users.list` page.
fn users_query(cursor: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut q = vec![("limit", "200")];
    q.extend(cursor.map(|c| ("cursor", c)));
    q
}

/// Whether a request's query is that of some `users.list` page, whatever its cursor: the page
/// size once, and at most one cursor.
fn is_a_users_page(request: &wiremock::Request) -> bool {
    let (cursors, rest): (Vec<_>, Vec<_>) = request
        .url
        .query_pairs()
        .partition(|(name, _)| name == "cursor");
    cursors.len() <= 1 && rest.len() == 1 && rest[0].0 == "limit" && rest[0].1 == "200"
}

#[tokio::test]
async fn slack_channels_follow_next_cursor_and_honour_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", "Bearer xoxb-1-abc"))
        .and(query_exactly(&channels_query(None)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C012AB3CD", "name": "general"}, {"id": "C061EG9T2", "name": "random"}],
            "response_metadata": {"next_cursor": "dGVhbTpDMDYxRkE1UEI="}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(query_exactly(&channels_query(Some("dGVhbTpDMDYxRkE1UEI="))))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations.list"))
        .and(header("authorization", "Bearer xoxb-1-abc"))
        .and(query_exactly(&channels_query(Some("dGVhbTpDMDYxRkE1UEI="))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "channels": [{"id": "C0G9QF9GW", "name": "projects"}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("slack");
    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec,
        "channels",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["C012AB3CD", "C061EG9T2", "C0G9QF9GW"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
}

#[tokio::test]
async fn slack_users_follow_next_cursor_until_it_is_empty() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(header("authorization", "Bearer xoxb-1-abc"))
        .and(query_exactly(&users_query(None)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "members": [
                {"id": "W012A3CDE", "team_id": "T012AB3C4", "name": "spengler", "deleted": false, "real_name": "spengler"},
                {"id": "W07QCRPA4", "team_id": "T0G9PQBBK", "name": "glinda", "deleted": false, "real_name": "Glinda Southgood"}
            ],
            "cache_ts": 1498777272,
            "response_metadata": {"next_cursor": "dXNlcjpVMEc5V0ZYTlo="}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(header("authorization", "Bearer xoxb-1-abc"))
        .and(query_exactly(&users_query(Some("dXNlcjpVMEc5V0ZYTlo="))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "members": [
                {"id": "U0G9WFXNZ", "team_id": "T012AB3C4", "name": "venkman", "deleted": true, "real_name": "Peter Venkman"}
            ],
            "cache_ts": 1498777272,
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("slack"),
        "users",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["W012A3CDE", "W07QCRPA4", "U0G9WFXNZ"]);
    assert_eq!(got.pages, 2);
}

#[tokio::test]
async fn slack_ok_false_with_invalid_auth_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(query_exactly(&users_query(None)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let err = read_all(
        &engine(),
        &spec("slack"),
        "users",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap_err();

    assert_eq!(err.class(), ErrorClass::Auth, "{err}");
}

#[tokio::test]
async fn slack_post_message_sends_json_with_bearer_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .and(header("authorization", "Bearer xoxb-1-abc"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"channel": "C012AB3CD", "text": "Hello", "thread_ts": "1503435956.000247"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C012AB3CD", "ts": "1503435957.000001",
            "message": {"text": "Hello", "type": "message"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("slack"),
            "post_message",
            &mocked(&server, "", &[], TOKEN),
            &json!({"channel": "C012AB3CD", "text": "Hello", "thread_ts": "1503435956.000247"}),
        )
        .await
        .unwrap();

    assert_eq!(out["ts"], "1503435957.000001");
}

#[test]
fn slack_event_signature_covers_version_timestamp_and_body() {
    let spec = spec("slack");
    let hooks = spec.webhooks.as_ref().expect("slack has webhooks");
    let now = OffsetDateTime::now_utc();
    let ts = now.unix_timestamp().to_string();
    let body = br#"{"token":"x","team_id":"T0001","event_id":"Ev0PV52K21","event":{"type":"app_mention"}}"#;
    let mut signed = format!("v0:{ts}:").into_bytes();
    signed.extend_from_slice(body);
    let sig = format!(
        "v0={}",
        hmac_hex("8f742231b10e8888abcd99yyyzzz85a5", &signed)
    );
    let h = headers(&[
        ("X-Slack-Signature", sig.as_str()),
        ("X-Slack-Request-Timestamp", ts.as_str()),
    ]);
    let got = verified_event(verify_webhook(
        hooks,
        "8f742231b10e8888abcd99yyyzzz85a5",
        &h,
        body,
        now,
    ));

    assert_eq!(got.event_id.as_deref(), Some("Ev0PV52K21"));
    assert_eq!(got.event_type.as_deref(), Some("app_mention"));
    assert_eq!(got.connection_key.as_deref(), Some("T0001"));
}

/// A filtered list may answer an empty page that still carries a cursor: the read follows it (up
/// to the spec's `follow_empty_pages` in a row), and fails rather than end short beyond that.
#[tokio::test]
async fn slack_follows_empty_pages_that_carry_a_cursor_up_to_the_bound() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(query_exactly(&users_query(None)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "members": [], "response_metadata": {"next_cursor": "c1"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(query_exactly(&users_query(Some("c1"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "members": [], "response_metadata": {"next_cursor": "c2"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(query_exactly(&users_query(Some("c2"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "members": [{"id": "W012A3CDE", "name": "spengler"}],
            "response_metadata": {"next_cursor": ""}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let got = read_all(
        &engine(),
        &spec("slack"),
        "users",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(got.ids("id"), ["W012A3CDE"]);
    assert_eq!(got.pages, 3);

    // Every page empty, every page with a new cursor: the bound fails the read.
    let endless = MockServer::start().await;
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = served.clone();
    Mock::given(method("GET"))
        .and(path("/users.list"))
        .and(is_a_users_page)
        .respond_with(move |_: &wiremock::Request| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": true, "members": [], "response_metadata": {"next_cursor": format!("c{n}")}
            }))
        })
        .mount(&endless)
        .await;
    let err = read_all(
        &engine(),
        &spec("slack"),
        "users",
        &mocked(&endless, "", &[], TOKEN),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("empty pages in a row"), "{err}");
    let bound = match spec("slack").pagination {
        Some(tributary_engine::spec::Pagination::Cursor(c)) => c.follow_empty_pages,
        _ => panic!("slack pages by cursor"),
    };
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), bound + 1);
}
