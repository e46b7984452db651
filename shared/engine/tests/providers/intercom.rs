//! Intercom: Bearer token, the pinned `Intercom-Version` (2.15), `starting_after` from
//! `pages.next.starting_after` with `per_page` for contacts and conversations, 429 with the epoch
//! `X-RateLimit-Reset`, companies through the scroll API until an empty page.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "dG9rOmE2ZjQ=")];
/// The API version the spec pins: the newest the API reference presents as current.
const VERSION: &str = "2.15";

#[tokio::test]
async fn intercom_contacts_follow_starting_after_and_wait_for_reset() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[("per_page", "150")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list",
            "data": [{"type": "contact", "id": "6657a1"}, {"type": "contact", "id": "6657a2"}],
            "total_count": 3,
            "pages": {"type": "pages", "page": 1, "per_page": 150, "total_pages": 2,
                      "next": {"page": 2, "starting_after": "WzE3MTY5MDAwMDAwMDAsMl0="}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(query_exactly(&[
            ("per_page", "150"),
            ("starting_after", "WzE3MTY5MDAwMDAwMDAsMl0="),
        ]))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Limit", "10000")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
                .set_body_json(json!({"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}]})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[
            ("per_page", "150"),
            ("starting_after", "WzE3MTY5MDAwMDAwMDAsMl0="),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list",
            "data": [{"type": "contact", "id": "6657a3"}],
            "total_count": 3,
            "pages": {"type": "pages", "page": 2, "per_page": 150, "total_pages": 2}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("intercom"),
        "contacts",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["6657a1", "6657a2", "6657a3"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "X-RateLimit-Reset honoured"
    );
}

#[test]
fn intercom_pins_the_current_api_version_on_every_request() {
    assert_eq!(spec("intercom").headers["Intercom-Version"], VERSION);
}

/// Conversations (2.15 `conversation_list`): `conversations` plus the same cursor paging as the
/// contacts, `per_page` up to 150.
#[tokio::test]
async fn intercom_conversations_follow_starting_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/conversations"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[("per_page", "150")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "conversation.list",
            "conversations": [
                {"type": "conversation", "id": "1295", "state": "open", "company": null},
                {"type": "conversation", "id": "1296", "state": "closed"}
            ],
            "total_count": 3,
            "pages": {"type": "pages", "page": 1, "per_page": 150, "total_pages": 2,
                      "next": {"page": 2, "starting_after": "WzE3MzQ1MzcxNDUwMDAsMTI5Nl0="}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/conversations"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[
            ("per_page", "150"),
            ("starting_after", "WzE3MzQ1MzcxNDUwMDAsMTI5Nl0="),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "conversation.list",
            "conversations": [{"type": "conversation", "id": "1297", "state": "snoozed"}],
            "total_count": 3,
            "pages": {"type": "pages", "page": 2, "per_page": 150, "total_pages": 2}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("intercom"),
        "conversations",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["1295", "1296", "1297"]);
    assert_eq!(got.pages, 2);
}

#[tokio::test]
async fn intercom_create_contact_posts_role_and_email() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/contacts"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(body_json(
            json!({"role": "user", "email": "joe@bloggs.com", "name": "Joe"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "contact", "id": "6657b9", "role": "user", "email": "joe@bloggs.com"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("intercom"),
            "create_contact",
            &mocked(&server, "", &[], TOKEN),
            &json!({"role": "user", "email": "joe@bloggs.com", "name": "Joe"}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], "6657b9");
}

#[tokio::test]
async fn intercom_create_contact_without_email_or_external_id_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let err = engine()
        .action(
            &spec("intercom"),
            "create_contact",
            &mocked(&server, "", &[], TOKEN),
            &json!({"role": "lead", "name": "Anonymous"}),
        )
        .await
        .unwrap_err();

    assert!(err.to_string().contains("invalid input"), "{err}");
}

/// Companies scroll: the first request has no `scroll_param`, each next one sends the previous
/// answer's, and the page with no companies ends the read (its parameter has expired).
#[tokio::test]
async fn intercom_companies_scroll_until_an_empty_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/companies/scroll"))
        .and(header("authorization", "Bearer dG9rOmE2ZjQ="))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list",
            "data": [{"type": "company", "id": "531ee472cce572a6ec000006"}],
            "pages": null, "total_count": null,
            "scroll_param": "25b649f7-4d33-4ef6-88f5-60e5b8244309"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies/scroll"))
        .and(header("intercom-version", VERSION))
        .and(query_exactly(&[(
            "scroll_param",
            "25b649f7-4d33-4ef6-88f5-60e5b8244309",
        )]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list",
            "data": [{"type": "company", "id": "531ee472cce572a6ec000007"}],
            "pages": null, "total_count": null,
            "scroll_param": "9b0f0c5a-2a7e-4f1e-8c33-0a3b8b2a1d10"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/companies/scroll"))
        .and(query_exactly(&[(
            "scroll_param",
            "9b0f0c5a-2a7e-4f1e-8c33-0a3b8b2a1d10",
        )]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": [], "pages": null, "total_count": null,
            "scroll_param": "9b0f0c5a-2a7e-4f1e-8c33-0a3b8b2a1d10"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("intercom"),
        "companies",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(
        got.ids("id"),
        ["531ee472cce572a6ec000006", "531ee472cce572a6ec000007"]
    );
    assert_eq!(got.pages, 3);
}
