//! Notion: Bearer token, `Notion-Version`, POST search with `start_cursor`/`page_size` in the
//! JSON body while `has_more`, GET lists with them in the query, 429 `Retry-After`.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{
    body_json, body_partial_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("integration_secret", "secret_abc123")];

#[tokio::test]
async fn notion_search_sends_start_cursor_in_body_until_has_more_is_false() {
    let server = MockServer::start().await;
    let filter = json!({"property": "object", "value": "page"});
    let sort = json!({"direction": "ascending", "timestamp": "last_edited_time"});
    Mock::given(method("POST"))
        .and(path("/search"))
        .and(header("authorization", "Bearer secret_abc123"))
        .and(header("notion-version", "2025-09-03"))
        .and(body_json(
            json!({"filter": filter, "sort": sort, "page_size": 100}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "results": [{"object": "page", "id": "p-1"}, {"object": "page", "id": "p-2"}],
            "next_cursor": "fe2cc560-036c-44cd-90e8-294d5a74cebc",
            "has_more": true,
            "type": "page_or_database"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/search"))
        .and(body_partial_json(json!({"start_cursor": "fe2cc560-036c-44cd-90e8-294d5a74cebc"})))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"object": "error", "status": 429, "code": "rate_limited", "message": "You have been rate limited. Please try again in a few minutes."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/search"))
        .and(header("authorization", "Bearer secret_abc123"))
        .and(body_json(json!({
            "filter": filter, "sort": sort, "page_size": 100,
            "start_cursor": "fe2cc560-036c-44cd-90e8-294d5a74cebc"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "results": [{"object": "page", "id": "p-3"}],
            "next_cursor": null,
            "has_more": false
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("notion"),
        "pages",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["p-1", "p-2", "p-3"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn notion_users_send_start_cursor_in_query() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .and(query_param("page_size", "100"))
        .and(query_param_is_missing("start_cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "results": [{"object": "user", "id": "u-1"}],
            "next_cursor": "u-2", "has_more": true
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .and(query_param("page_size", "100"))
        .and(query_param("start_cursor", "u-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "results": [{"object": "user", "id": "u-2"}],
            "next_cursor": null, "has_more": false
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("notion"),
        "users",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["u-1", "u-2"]);
}

#[tokio::test]
async fn notion_create_page_posts_parent_and_properties() {
    let server = MockServer::start().await;
    let properties = json!({"Name": {"title": [{"text": {"content": "Tuscan kale"}}]}});
    Mock::given(method("POST"))
        .and(path("/pages"))
        .and(header("notion-version", "2025-09-03"))
        .and(body_json(json!({
            "parent": {"data_source_id": "d9824bdc84454327be8b5b47500af6ce"},
            "properties": properties
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "page", "id": "59833787-2cf9-4fdf-8782-e53db20768a5"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("notion"),
            "create_page",
            &mocked(&server, "", &[], TOKEN),
            &json!({"parent": {"data_source_id": "d9824bdc84454327be8b5b47500af6ce"}, "properties": properties}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], "59833787-2cf9-4fdf-8782-e53db20768a5");
}
