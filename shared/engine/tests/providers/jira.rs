//! Jira Cloud: site URL for classic API tokens, Atlassian's gateway for scoped ones (chosen by the
//! connection's cloud id), Basic email + API token, `startAt`/`maxResults` offset paging with
//! `total`/`isLast`, `nextPageToken` JQL search, 429 `Retry-After` (webhooks: `webhooks.rs`).

use std::time::{Duration, Instant};

use serde_json::json;
use tributary_engine::ProviderSpec;
use tributary_engine::origins::{self, provider_url};
use tributary_engine::spec::AuthMode;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, query_exactly, read_all, real_base_url, spec};

const CREDS: &[(&str, &str)] = &[("email", "me@acme.com"), ("api_token", "ATATT3xFfGF0")];
const SITE: &[(&str, &str)] = &[("site", "acme")];
const CLOUD_ID: &str = "1324a887-45db-1bf4-1e99-ef0ff456d421";
const SCOPED: &[(&str, &str)] = &[("site", "acme"), ("cloud_id", CLOUD_ID)];
const API: &str = "/rest/api/3";
const JQL: &str = "created >= \"1970-01-01\" ORDER BY updated ASC";

fn basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me@acme.com:ATATT3xFfGF0")
    )
}

/// The Jira spec with every base URL sent to `server`, keeping its path, as the deployment's
/// provider-origin override does: the site base becomes `{server}/rest/api/3`, the gateway base
/// `{server}/ex/jira/{cloud_id}/rest/api/3`.
fn jira_at(server: &MockServer) -> ProviderSpec {
    let overrides = origins::parse(&format!("jira={}", server.uri())).unwrap();
    let mut spec = spec("jira");
    spec.base_url = provider_url(&overrides, "jira", &spec.base_url);
    for mode in &mut spec.auth {
        let own = match mode {
            AuthMode::Basic(b) => &mut b.base_url,
            AuthMode::OAuth2AuthorizationCode(o) => &mut o.base_url,
            AuthMode::ApiKey(a) => &mut a.base_url,
            AuthMode::OAuth2ClientCredentials(o) => &mut o.base_url,
        };
        if let Some(url) = own {
            *url = provider_url(&overrides, "jira", url);
        }
    }
    spec
}

#[test]
fn jira_base_url_is_the_cloud_site() {
    assert_eq!(
        real_base_url(&spec("jira"), &conn(SITE, CREDS)),
        "https://acme.atlassian.net/rest/api/3"
    );
}

#[test]
fn jira_scoped_api_tokens_go_through_the_gateway_of_the_cloud_id() {
    assert_eq!(
        real_base_url(&spec("jira"), &conn(SCOPED, CREDS)),
        format!("https://api.atlassian.com/ex/jira/{CLOUD_ID}/rest/api/3")
    );
}

/// One Basic mode, two bases: a classic token reads from the site, a scoped token (the
/// connection has a cloud id) from the gateway, which the site would refuse with 401.
#[tokio::test]
async fn jira_classic_and_scoped_tokens_each_reach_their_own_base() {
    let server = MockServer::start().await;
    let gateway = format!("/ex/jira/{CLOUD_ID}{API}");
    let page = |key: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "maxResults": 50, "startAt": 0, "total": 1, "isLast": true,
            "values": [{"id": "10000", "key": key}]
        }))
    };
    let first_page = [
        ("expand", "description,lead"),
        ("maxResults", "50"),
        ("startAt", "0"),
    ];
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&first_page))
        .respond_with(page("SITE"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{gateway}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&first_page))
        .respond_with(page("GATEWAY"))
        .expect(1)
        .mount(&server)
        .await;
    let spec = jira_at(&server);
    let engine = engine();

    let classic = read_all(&engine, &spec, "projects", &conn(SITE, CREDS))
        .await
        .unwrap();
    let scoped = read_all(&engine, &spec, "projects", &conn(SCOPED, CREDS))
        .await
        .unwrap();

    assert_eq!(classic.ids("key"), ["SITE"]);
    assert_eq!(scoped.ids("key"), ["GATEWAY"]);
}

#[tokio::test]
async fn jira_projects_page_by_start_at_until_is_last() {
    let server = MockServer::start().await;
    let page = |start: &'static str| {
        query_exactly(&[
            ("expand", "description,lead"),
            ("maxResults", "50"),
            ("startAt", start),
        ])
    };
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(page("0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "self": "https://acme.atlassian.net/rest/api/3/project/search?startAt=0&maxResults=50",
            "maxResults": 50, "startAt": 0, "total": 3, "isLast": false,
            "values": [{"id": "10000", "key": "EX"}, {"id": "10001", "key": "ABC"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(page("2"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(page("2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "maxResults": 50, "startAt": 2, "total": 3, "isLast": true,
            "values": [{"id": "10002", "key": "OPS"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("jira"),
        "projects",
        &mocked(&server, API, SITE, CREDS),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("key"), ["EX", "ABC", "OPS"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn jira_issue_search_follows_next_page_token_until_is_last() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/search/jql")))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[
            ("jql", JQL),
            ("fields", "*navigable"),
            ("maxResults", "100"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"id": "10001", "key": "EX-1"}],
            "nextPageToken": "CAEaAggD",
            "isLast": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/search/jql")))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[
            ("jql", JQL),
            ("fields", "*navigable"),
            ("maxResults", "100"),
            ("nextPageToken", "CAEaAggD"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issues": [{"id": "10002", "key": "EX-2"}],
            "nextPageToken": "CAEaAggE",
            "isLast": true
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("jira"),
        "issues",
        &mocked(&server, API, SITE, CREDS),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("key"), ["EX-1", "EX-2"]);
}

#[tokio::test]
async fn jira_create_issue_nests_fields() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/issue")))
        .and(header("authorization", basic().as_str()))
        .and(body_json(json!({"fields": {
            "project": {"key": "EX"},
            "issuetype": {"name": "Bug"},
            "summary": "Login fails"
        }})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "10000", "key": "EX-24", "self": "https://acme.atlassian.net/rest/api/3/issue/10000"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("jira"),
            "create_issue",
            &mocked(&server, API, SITE, CREDS),
            &json!({"project_key": "EX", "issue_type": "Bug", "summary": "Login fails"}),
        )
        .await
        .unwrap();

    assert_eq!(out["key"], "EX-24");
}
