//! Asana: Bearer token, `limit` and `offset` from `next_page.offset`, 429 `Retry-After`,
//! request bodies wrapped in `data`, full-permission (`default`) or granular OAuth scopes.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("personal_access_token", "2/1200/1200:abc")];
const WS: &[(&str, &str)] = &[("workspace", "12345")];
const PROJECT_FIELDS: &str = "name,archived,created_at,modified_at,owner,team";
const OFFSET: &str = "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9";

#[tokio::test]
async fn asana_projects_follow_next_page_offset() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/projects"))
        .and(header("authorization", "Bearer 2/1200/1200:abc"))
        .and(query_exactly(&[
            ("workspace", "12345"),
            ("opt_fields", PROJECT_FIELDS),
            ("limit", "100"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"gid": "1001", "name": "Roadmap"}, {"gid": "1002", "name": "Launch"}],
            "next_page": {"offset": "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9", "path": "/projects?limit=100&offset=eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9", "uri": "https://app.asana.com/api/1.0/projects?limit=100&offset=eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/projects"))
        .and(query_exactly(&[
            ("workspace", "12345"),
            ("opt_fields", PROJECT_FIELDS),
            ("limit", "100"),
            ("offset", OFFSET),
        ]))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"errors": [{"message": "You have made too many requests recently. Please, be chill."}]})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/projects"))
        .and(header("authorization", "Bearer 2/1200/1200:abc"))
        .and(query_exactly(&[
            ("workspace", "12345"),
            ("opt_fields", PROJECT_FIELDS),
            ("limit", "100"),
            ("offset", OFFSET),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"gid": "1003", "name": "Hiring"}],
            "next_page": null
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("asana"),
        "projects",
        &mocked(&server, "/api/1.0", WS, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("gid"), ["1001", "1002", "1003"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
}

/// `GET /users` filtered to the workspace pages like the other lists (Asana's
/// `/workspaces/{gid}/users` is unpaged and stops at 2000 users); `opt_fields` adds the email
/// the compact user lacks, on every page.
#[tokio::test]
async fn asana_users_page_by_next_page_offset_with_their_email() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/users"))
        .and(header("authorization", "Bearer 2/1200/1200:abc"))
        .and(query_exactly(&[
            ("workspace", "12345"),
            ("opt_fields", "name,email"),
            ("limit", "100"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"gid": "12345678", "resource_type": "user", "name": "Greg Sanchez", "email": "gsanchez@example.com"},
                {"gid": "12345679", "resource_type": "user", "name": "Tim Bizarro", "email": "tbizarro@example.com"}
            ],
            "next_page": {
                "offset": OFFSET,
                "path": format!("/users?workspace=12345&limit=100&offset={OFFSET}"),
                "uri": format!("https://app.asana.com/api/1.0/users?workspace=12345&limit=100&offset={OFFSET}")
            }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/1.0/users"))
        .and(header("authorization", "Bearer 2/1200/1200:abc"))
        .and(query_exactly(&[
            ("workspace", "12345"),
            ("opt_fields", "name,email"),
            ("limit", "100"),
            ("offset", OFFSET),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"gid": "12345680", "resource_type": "user", "name": "Ann Ng", "email": "ang@example.com"}],
            "next_page": null
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("asana"),
        "users",
        &mocked(&server, "/api/1.0", WS, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("gid"), ["12345678", "12345679", "12345680"]);
    assert_eq!(
        got.ids("email"),
        [
            "gsanchez@example.com",
            "tbizarro@example.com",
            "ang@example.com"
        ]
    );
    assert_eq!(got.pages, 2);
}

#[tokio::test]
async fn asana_create_task_wraps_body_in_data_with_workspace() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/1.0/tasks"))
        .and(header("authorization", "Bearer 2/1200/1200:abc"))
        .and(body_json(
            json!({"data": {"workspace": "12345", "name": "Buy catnip", "projects": ["1001"]}}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "data": {"gid": "12001", "resource_type": "task", "name": "Buy catnip"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("asana"),
            "create_task",
            &mocked(&server, "/api/1.0", WS, TOKEN),
            &json!({"name": "Buy catnip", "projects": ["1001"]}),
        )
        .await
        .unwrap();

    assert_eq!(out["gid"], "12001");
}

/// A full-permission app asks for `default`; an app registered for granular scopes asks for
/// exactly its integration's scopes, never `default` beside them (Asana refuses the mix).
#[test]
fn asana_authorization_asks_for_default_or_the_integrations_granular_scopes() {
    use tributary_engine::oauth::{AuthorizationRequest, Pkce, authorization_url};
    use tributary_engine::spec::AuthMode;

    let spec = spec("asana");
    let Some(AuthMode::OAuth2AuthorizationCode(oauth)) = spec.auth.first() else {
        panic!("asana's first mode is OAuth");
    };
    let config = WS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let redirect = url::Url::parse("https://tributary.example.com/connect/callback").unwrap();
    let pkce = Pkce::from_random(&[3; 32]);
    let scope_of = |scopes: Option<&[String]>| {
        let url = authorization_url(
            oauth,
            &config,
            &AuthorizationRequest {
                client_id: "cid",
                redirect_uri: &redirect,
                state: "st",
                scopes,
                pkce: Some(&pkce),
            },
        )
        .unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(scope_of(None).as_deref(), Some("default"));
    let granular = [
        "projects:read".to_owned(),
        "users:read".to_owned(),
        "tasks:write".to_owned(),
        "workspaces:read".to_owned(),
    ];
    assert_eq!(
        scope_of(Some(&granular)).as_deref(),
        Some("projects:read users:read tasks:write workspaces:read")
    );
}
