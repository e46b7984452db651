//! Pipedrive API v2: the API token in the `x-api-token` header (never the query), `cursor`/`limit`
//! paging by `additional_data.next_cursor`, 429 with `x-ratelimit-reset`, v2 person creation, and
//! verification on the v1 Users API (which has no v2).

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

fn creds() -> [(&'static str, &'static str); 1] {
    [("api_token", TOKEN)]
}

const DOMAIN: &[(&str, &str)] = &[("api_domain", "https://acme.pipedrive.com")];

#[tokio::test]
async fn pipedrive_persons_page_by_v2_cursor_with_the_token_in_a_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/persons"))
        .and(header("x-api-token", TOKEN))
        .and(query_exactly(&[("limit", "500")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
            "additional_data": {"next_cursor": "eyJmaWVsZCI6ImlkIiwiaWQiOjJ9"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/persons"))
        .and(query_exactly(&[
            ("cursor", "eyJmaWVsZCI6ImlkIiwiaWQiOjJ9"),
            ("limit", "500"),
        ]))
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
        .and(path("/api/v2/persons"))
        .and(header("x-api-token", TOKEN))
        .and(query_exactly(&[
            ("cursor", "eyJmaWVsZCI6ImlkIiwiaWQiOjJ9"),
            ("limit", "500"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true,
            "data": [{"id": 3, "name": "Barbara"}],
            "additional_data": {"next_cursor": null}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("pipedrive"),
        "persons",
        &mocked(&server, "/api", DOMAIN, &creds()),
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

/// Deals and organizations page like persons (v2 `cursor` + `limit`, the token in a header). Deals
/// are listed without a `status` filter: v2 lists every deal that is not deleted. The last page
/// says `next_cursor: null`.
#[tokio::test]
async fn pipedrive_deals_and_organizations_page_by_v2_cursor() {
    let cases = [
        (
            "deals",
            [
                json!({"id": 7, "title": "Renewal", "status": "won", "value": 1200, "currency": "EUR", "add_time": "2026-11-02T09:00:00Z", "update_time": "2026-11-30T10:00:00Z"}),
                json!({"id": 8, "title": "Upsell", "status": "open", "value": 300, "currency": "EUR", "add_time": "2026-11-03T09:00:00Z", "update_time": "2026-11-30T11:00:00Z"}),
                json!({"id": 11, "title": "Pilot", "status": "lost", "value": 50, "currency": "USD", "add_time": "2026-11-04T09:00:00Z", "update_time": "2026-11-30T12:00:00Z"}),
            ],
            ["7", "8", "11"],
            "eyJmaWVsZCI6ImlkIiwiaWQiOjh9",
        ),
        (
            "organizations",
            [
                json!({"id": 9, "name": "Acme", "owner_id": 1, "add_time": "2026-11-02T09:00:00Z", "update_time": "2026-11-30T10:00:00Z"}),
                json!({"id": 10, "name": "Globex", "owner_id": 1, "add_time": "2026-11-03T09:00:00Z", "update_time": "2026-11-30T11:00:00Z"}),
                json!({"id": 12, "name": "Initech", "owner_id": 2, "add_time": "2026-11-04T09:00:00Z", "update_time": "2026-11-30T12:00:00Z"}),
            ],
            ["9", "10", "12"],
            "eyJmaWVsZCI6ImlkIiwiaWQiOjEwfQ",
        ),
    ];
    for (stream, [first, second, third], ids, cursor) in cases {
        let server = MockServer::start().await;
        let list_path = format!("/api/v2/{stream}");
        Mock::given(method("GET"))
            .and(path(list_path.as_str()))
            .and(header("x-api-token", TOKEN))
            .and(query_exactly(&[("limit", "500")]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "success": true,
                "data": [first, second],
                "additional_data": {"next_cursor": cursor}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(list_path.as_str()))
            .and(header("x-api-token", TOKEN))
            .and(query_exactly(&[("cursor", cursor), ("limit", "500")]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "success": true,
                "data": [third],
                "additional_data": {"next_cursor": null}
            })))
            .expect(1)
            .mount(&server)
            .await;

        let got = read_all(
            &engine(),
            &spec("pipedrive"),
            stream,
            &mocked(&server, "/api", DOMAIN, &creds()),
        )
        .await
        .unwrap_or_else(|e| panic!("{stream}: {e}"));

        assert_eq!(got.ids("id"), ids, "{stream}");
        assert_eq!(got.pages, 2, "{stream}");
    }
}

#[tokio::test]
async fn pipedrive_create_person_posts_the_v2_body_with_the_token_in_a_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/persons"))
        .and(header("x-api-token", TOKEN))
        .and(query_exactly(&[]))
        .and(body_json(json!({
            "name": "Ada Lovelace",
            "emails": [{"value": "ada@example.com", "primary": true, "label": "work"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": {"id": 42, "name": "Ada Lovelace"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("pipedrive"),
            "create_person",
            &mocked(&server, "/api", DOMAIN, &creds()),
            &json!({"name": "Ada Lovelace", "emails": [{"value": "ada@example.com", "primary": true, "label": "work"}]}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], 42);
}

/// v2 refuses v1's shapes: a plain string where a list of labelled values is due is refused by the
/// input schema before any request.
#[tokio::test]
async fn pipedrive_create_person_refuses_v1_shaped_input() {
    let server = MockServer::start().await;
    let err = engine()
        .action(
            &spec("pipedrive"),
            "create_person",
            &mocked(&server, "/api", DOMAIN, &creds()),
            &json!({"name": "Ada", "email": "ada@example.com"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("email"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn pipedrive_verifies_on_the_v1_users_api_with_the_token_in_a_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/me"))
        .and(header("x-api-token", TOKEN))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": {"id": 1, "name": "Ada"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    engine()
        .verify(
            &spec("pipedrive"),
            &mocked(&server, "/api", DOMAIN, &creds()),
        )
        .await
        .unwrap();
}
