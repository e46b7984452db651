//! Notion: Bearer token, `Notion-Version`, POST search with `start_cursor`/`page_size` in the
//! JSON body (and nothing in the query) while `has_more`, GET lists with them in the query, 429
//! `Retry-After`, and webhooks as `notion.yaml` configures them.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use time::OffsetDateTime;
use tributary_engine::webhook::{Inbound, WebhookError};
use wiremock::matchers::{body_json, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    HOOK_URL, engine, headers, hmac_hex, mocked, query_exactly, read_all, spec, verified_event,
    verify_webhook,
};

const TOKEN: &[(&str, &str)] = &[("integration_secret", "secret_abc123")];

#[tokio::test]
async fn notion_search_sends_start_cursor_in_body_until_has_more_is_false() {
    let server = MockServer::start().await;
    let filter = json!({"property": "object", "value": "page"});
    let sort = json!({"direction": "ascending", "timestamp": "last_edited_time"});
    Mock::given(method("POST"))
        .and(path("/search"))
        .and(query_exactly(&[]))
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
        .and(query_exactly(&[]))
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
        .and(query_exactly(&[]))
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
        .and(header("authorization", "Bearer secret_abc123"))
        .and(header("notion-version", "2025-09-03"))
        .and(query_exactly(&[("page_size", "100")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "results": [{"object": "user", "id": "u-1"}],
            "next_cursor": "u-2", "has_more": true
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .and(header("authorization", "Bearer secret_abc123"))
        .and(query_exactly(&[
            ("page_size", "100"),
            ("start_cursor", "u-2"),
        ]))
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
    assert_eq!(got.pages, 2);
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

/// Notion's subscription handshake, then an event, as `notion.yaml` configures them
/// (https://developers.notion.com/reference/webhooks, steps 2 and 3): creating a subscription sends
/// one unsigned POST whose body is `{"verification_token": "…"}`, which the route keeps as the secret;
/// every event after it carries `X-Notion-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed
/// with that token.
#[test]
fn notion_webhook_handshake_then_signed_event_verify_as_the_catalog_configures_it() {
    let spec = spec("notion");
    let hooks = spec.webhooks.as_ref().expect("notion has webhooks");
    let now = OffsetDateTime::now_utc();
    let token = "secret_Lz7KxUq8tYwVb3NcR2mP5aJ9dF4gH6sE1oI0uT8yQwZ";

    // The handshake: unsigned, before any secret is stored.
    let handshake = format!(r#"{{"verification_token":"{token}"}}"#);
    let request = tributary_engine::webhook::WebhookRequest {
        method: &http::Method::POST,
        url: HOOK_URL,
        headers: &headers(&[("Content-Type", "application/json")]),
        body: handshake.as_bytes(),
    };
    match tributary_engine::webhook::verify(hooks, None, &request, now) {
        Ok(Inbound::VerificationToken(got)) => assert_eq!(got.expose_secret(), token),
        other => panic!("expected the verification token, got {other:?}"),
    }

    // An event signed with that token, as Notion sends it.
    let body = br#"{"id":"0c5b7a1e-5f4e-4a42-9b2e-2f7c4d9a6b10","timestamp":"2026-12-07T09:15:02.412Z","workspace_id":"7c2f0d8e-1b3a-4c5d-9e6f-0a1b2c3d4e5f","workspace_name":"Acme","subscription_id":"1f8e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b","integration_id":"2a3b4c5d-6e7f-8091-a2b3-c4d5e6f7a8b9","authors":[{"id":"c7f1e2d3-b4a5-4968-8776-5a4b3c2d1e0f","type":"person"}],"attempt_number":1,"type":"page.properties_updated","entity":{"id":"153104cd-477e-809d-8dc4-ff2d96ae3090","type":"page"},"data":{"parent":{"id":"13950b26-c203-4f3b-b97d-93ec06319565","type":"space"},"updated_properties":["title"]}}"#;
    let signature = format!("sha256={}", hmac_hex(token, body));
    let signed = headers(&[
        ("Content-Type", "application/json"),
        ("X-Notion-Signature", signature.as_str()),
    ]);
    let got = verified_event(verify_webhook(hooks, token, &signed, body, now));
    assert_eq!(
        got.event_id.as_deref(),
        Some("0c5b7a1e-5f4e-4a42-9b2e-2f7c4d9a6b10")
    );
    assert_eq!(got.event_type.as_deref(), Some("page.properties_updated"));
    assert_eq!(
        got.connection_key.as_deref(),
        Some("7c2f0d8e-1b3a-4c5d-9e6f-0a1b2c3d4e5f")
    );

    // Another token, a changed body, the bare hex without `sha256=`, or no signature: refused.
    assert_eq!(
        verify_webhook(hooks, "secret_other", &signed, body, now).unwrap_err(),
        WebhookError::Mismatch
    );
    let mut changed = body.to_vec();
    changed.extend_from_slice(b" ");
    assert_eq!(
        verify_webhook(hooks, token, &signed, &changed, now).unwrap_err(),
        WebhookError::Mismatch
    );
    let bare = hmac_hex(token, body);
    assert!(
        verify_webhook(
            hooks,
            token,
            &headers(&[("X-Notion-Signature", bare.as_str())]),
            body,
            now
        )
        .is_err(),
        "the `sha256=` prefix is part of the header"
    );
    assert_eq!(
        verify_webhook(hooks, token, &headers(&[]), body, now).unwrap_err(),
        WebhookError::MissingHeader("X-Notion-Signature".into())
    );
}
