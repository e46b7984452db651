//! Zendesk: subdomain base URL, Basic `{email}/token`, cursor pagination with `page[size]`,
//! `page[after]` and `meta.has_more`, the incremental export's `after_url` until `end_of_stream`
//! and its 403 for a non-admin token, 429 `Retry-After`, expiring OAuth tokens.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tributary_engine::{ErrorClass, ReadOptions, StreamState};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, query_exactly, read_all, real_base_url, spec};

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
        .and(query_exactly(&[("page[size]", "100")]))
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
        .and(query_exactly(&[
            ("page[size]", "100"),
            ("page[after]", "xxx"),
        ]))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("page[size]", "100"), ("page[after]", "xxx")]))
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
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("start_time", "1700000000")]))
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
        .and(query_exactly(&[("cursor", "MTU3NjYxMzUzOS4wfHw0Njd8")]))
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
        .and(query_exactly(&[("cursor", "MTU3NjYxMzU0MC4wfHw0Njh8")]))
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
async fn zendesk_users_follow_after_cursor_while_has_more() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("page[size]", "100")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": [
                {"id": 223443, "name": "Johnny Agent", "role": "agent"},
                {"id": 8678530, "name": "James A. Rosen", "role": "end-user"}
            ],
            "meta": {"has_more": true, "after_cursor": "eyJvIjoibmljZV9pZCIsInYiOiJhUjA9In0=", "before_cursor": "eyJvIjoiaWQifQ=="},
            "links": {"next": "https://acme.zendesk.com/api/v2/users.json?page%5Bafter%5D=eyJvIjoibmljZV9pZCIsInYiOiJhUjA9In0%3D&page%5Bsize%5D=100", "prev": null}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[
            ("page[size]", "100"),
            ("page[after]", "eyJvIjoibmljZV9pZCIsInYiOiJhUjA9In0="),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "users": [{"id": 9873843, "name": "Sam Admin", "role": "admin"}],
            "meta": {"has_more": false, "after_cursor": "eyJvIjoiZW5kIn0=", "before_cursor": "eyJvIjoic3RhcnQifQ=="},
            "links": {"next": null, "prev": null}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("zendesk"),
        "users",
        &mocked(&server, "/api/v2", SUB, CREDS),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["223443", "8678530", "9873843"]);
    assert_eq!(got.pages, 2);
}

/// The incremental export is for admins: an agent's (valid) token gets 403 there, which must say
/// so and must not ask for the connection to be authorized again, as a 403 elsewhere does.
#[tokio::test]
async fn zendesk_ticket_export_refused_to_an_agent_asks_for_an_admin_not_reauth() {
    let server = MockServer::start().await;
    let forbidden = ResponseTemplate::new(403).set_body_json(json!({"error": {
        "title": "Forbidden",
        "message": "You do not have access to this page. Please contact the account owner of this help desk for further help."
    }}));
    Mock::given(method("GET"))
        .and(path("/api/v2/incremental/tickets/cursor.json"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("start_time", "0")]))
        .respond_with(forbidden.clone())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets.json"))
        .and(query_exactly(&[("page[size]", "100")]))
        .respond_with(forbidden)
        .expect(1)
        .mount(&server)
        .await;
    let spec = spec("zendesk");
    let conn = mocked(&server, "/api/v2", SUB, CREDS);

    let export = read_all(&engine(), &spec, "ticket_changes", &conn)
        .await
        .unwrap_err();
    let tickets = read_all(&engine(), &spec, "tickets", &conn)
        .await
        .unwrap_err();

    assert_eq!(export.class(), ErrorClass::Config, "{export}");
    let text = export.to_string();
    assert!(text.contains("admins only"), "{text}");
    assert!(
        text.contains("You do not have access to this page"),
        "{text}"
    );
    assert_eq!(tickets.class(), ErrorClass::Auth, "{tickets}");
}

/// Zendesk gives a refresh token (and an expiring access token) to an OAuth client created before
/// refresh tokens existed only when the token request asks for lifetimes; every refresh asks again.
#[test]
fn zendesk_oauth_token_requests_ask_for_expiring_tokens() {
    use secrecy::SecretString;
    use tributary_engine::oauth::{ClientApp, Grant, TokenEndpoint, token_request};
    use tributary_engine::spec::AuthMode;

    let spec = spec("zendesk");
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) = spec
        .auth
        .iter()
        .find(|m| m.kind() == "oauth2_authorization_code")
    else {
        panic!("zendesk has an OAuth mode");
    };
    let app = ClientApp {
        client_id: "tributary".into(),
        client_secret: SecretString::from("s3cret".to_owned()),
    };
    let config = SUB
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let refresh_token = SecretString::from("rt-1".to_owned());

    let request = token_request(
        &TokenEndpoint::from(oauth),
        &config,
        &app,
        &Grant::RefreshToken {
            refresh_token: &refresh_token,
        },
    )
    .unwrap();

    assert_eq!(
        request.url.as_str(),
        "https://acme.zendesk.com/oauth/tokens"
    );
    let mut form: Vec<(String, String)> =
        url::form_urlencoded::parse(request.body.as_deref().unwrap_or_default())
            .into_owned()
            .collect();
    form.sort();
    let want: Vec<(String, String)> = [
        ("client_id", "tributary"),
        ("client_secret", "s3cret"),
        ("expires_in", "1800"),
        ("grant_type", "refresh_token"),
        ("refresh_token", "rt-1"),
        ("refresh_token_expires_in", "2592000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(form, want);
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
