//! Pipedrive: `api_token` query parameter, `start`/`limit` paging while
//! `additional_data.pagination.more_items_in_collection`, 429 with `x-ratelimit-reset`.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, read_all, spec};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

fn creds() -> [(&'static str, &'static str); 1] {
    [("api_token", TOKEN)]
}

const DOMAIN: &[(&str, &str)] = &[("api_domain", "https://acme.pipedrive.com")];

#[tokio::test]
async fn pipedrive_persons_page_by_start_while_more_items_in_collection() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/persons"))
        .and(query_param("api_token", TOKEN))
        .and(query_param("start", "0"))
        .and(query_param("limit", "500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
            "additional_data": {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": true, "next_start": 2}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/persons"))
        .and(query_param("start", "2"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-limit", "80")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1")
                .set_body_json(json!({"success": false, "error": "Request over limit"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/persons"))
        .and(query_param("api_token", TOKEN))
        .and(query_param("start", "2"))
        .and(query_param("limit", "500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": 3, "name": "Barbara"}],
            "additional_data": {"pagination": {"start": 2, "limit": 500, "more_items_in_collection": false}}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("pipedrive"),
        "persons",
        &mocked(&server, "/api/v1", DOMAIN, &creds()),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["1", "2", "3"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "x-ratelimit-reset honoured"
    );
}

#[tokio::test]
async fn pipedrive_create_person_posts_json_with_token_in_query() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/persons"))
        .and(query_param("api_token", TOKEN))
        .and(body_json(json!({
            "name": "Ada Lovelace",
            "email": [{"value": "ada@example.com", "primary": true, "label": "work"}]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "success": true, "data": {"id": 42, "name": "Ada Lovelace"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("pipedrive"),
            "create_person",
            &mocked(&server, "/api/v1", DOMAIN, &creds()),
            &json!({"name": "Ada Lovelace", "email": [{"value": "ada@example.com", "primary": true, "label": "work"}]}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], 42);
}
