//! Zendesk: subdomain base URL, Basic `{email}/token`, cursor pagination with `page[size]`,
//! `page[after]` and `meta.has_more`, the incremental export's `after_url` until `end_of_stream`,
//! 429 `Retry-After`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tributary_engine::{ReadOptions, StreamState};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, read_all, real_base_url, spec};

const CREDS: &[(&str, &str)] = &[
    ("email", "agent@acme.com"),
    ("api_token", "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"),
];
const SUB: &[(&str, &str)] = &[("subdomain", "acme")];
/// The `Authorization` header Zendesk expects for API-token auth.
fn basic() -> String {
    use base64::Engine as _;
    let raw = "agent@acme.com/token:6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv";
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[test]
fn zendesk_base_url_uses_the_subdomain() {
    assert_eq!(
        real_base_url(&spec("zendesk"), &conn(SUB, CREDS)),
        "https://acme.zendesk.com/api/v2"
    );
}

#[tokio::test]
async fn zendesk_tickets_follow_after_cursor_while_has_more() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_param("page[size]", "100"))
        .and(query_param_is_missing("page[after]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [{"id": 35436, "subject": "Help"}, {"id": 35437, "subject": "Printer"}],
            "meta": {"has_more": true, "after_cursor": "xxx", "before_cursor": "yyy"},
            "links": {"next": "https://acme.zendesk.com/api/v2/tickets.json?page%5Bafter%5D=xxx&page%5Bsize%5D=100", "prev": null}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(query_param("page[after]", "xxx"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_param("page[size]", "100"))
        .and(query_param("page[after]", "xxx"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [{"id": 35438, "subject": "Login"}],
            // Zendesk still returns a cursor on the last page; has_more decides.
            "meta": {"has_more": false, "after_cursor": "zzz", "before_cursor": "www"},
            "links": {"next": null, "prev": "https://acme.zendesk.com/api/v2/tickets.json?page%5Bbefore%5D=www"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("zendesk");
    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec,
        "tickets",
        &mocked(&server, "/api/v2", SUB, CREDS),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["35436", "35437", "35438"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn zendesk_incremental_export_starts_at_saved_cursor_and_stops_at_end_of_stream() {
    let server = MockServer::start().await;
    let after = |cursor: &str| {
        format!(
            "{}/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            server.uri()
        )
    };
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/tickets/cursor.json"))
        .and(query_param("start_time", "1700000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [{"id": 1, "generated_timestamp": 1700000100}, {"id": 2, "generated_timestamp": 1700000200}],
            "after_url": after("MTU3NjYxMzUzOS4wfHw0Njd8"),
            "after_cursor": "MTU3NjYxMzUzOS4wfHw0Njd8",
            "end_of_stream": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/tickets/cursor.json"))
        .and(query_param("cursor", "MTU3NjYxMzUzOS4wfHw0Njd8"))
        .and(query_param_is_missing("start_time"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [{"id": 3, "generated_timestamp": 1700000150}],
            "after_url": after("MTU3NjYxMzU0MC4wfHw0Njh8"),
            "after_cursor": "MTU3NjYxMzU0MC4wfHw0Njh8",
            "end_of_stream": true
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/tickets/cursor.json"))
        .and(query_param("cursor", "MTU3NjYxMzU0MC4wfHw0Njh8"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tickets": [], "after_url": null, "end_of_stream": true
        })))
        // `end_of_stream: true` ends the read: that page's `after_url` is not followed.
        .expect(0)
        .mount(&server)
        .await;

    let spec = spec("zendesk");
    let engine = engine();
    let conn = mocked(&server, "/api/v2", SUB, CREDS);
    let state = StreamState {
        cursor: Some("1700000060".into()),
    };
    let mut pages = engine
        .read(
            &spec,
            "ticket_changes",
            &conn,
            ReadOptions {
                state: Some(state),
                ..ReadOptions::default()
            },
        )
        .unwrap();
    let mut ids = Vec::new();
    let mut checkpoint = None;
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
        Some("1700000200")
    );
}

#[tokio::test]
async fn zendesk_create_ticket_nests_comment_in_ticket_object() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets.json"))
        .and(header("authorization", basic().as_str()))
        .and(body_json(json!({"ticket": {
            "subject": "My printer is on fire!",
            "comment": {"body": "The smoke is very colorful."},
            "priority": "urgent"
        }})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "ticket": {"id": 35436, "subject": "My printer is on fire!", "status": "new"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("zendesk"),
            "create_ticket",
            &mocked(&server, "/api/v2", SUB, CREDS),
            &json!({"subject": "My printer is on fire!", "body": "The smoke is very colorful.", "priority": "urgent"}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], 35436);
}
