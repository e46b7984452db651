//! Jira Cloud: site URL, Basic email + API token, `startAt`/`maxResults` offset paging with
//! `total`/`isLast`, `nextPageToken` JQL search, 429 `Retry-After` (webhooks: `webhooks.rs`).

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, read_all, real_base_url, spec};

const CREDS: &[(&str, &str)] = &[("email", "me@acme.com"), ("api_token", "ATATT3xFfGF0")];
const SITE: &[(&str, &str)] = &[("site", "acme")];
const API: &str = "/rest/api/3";

fn basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me@acme.com:ATATT3xFfGF0")
    )
}

#[test]
fn jira_base_url_is_the_cloud_site() {
    assert_eq!(
        real_base_url(&spec("jira"), &conn(SITE, CREDS)),
        "https://acme.atlassian.net/rest/api/3"
    );
}

#[tokio::test]
async fn jira_projects_page_by_start_at_until_is_last() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(query_param("startAt", "0"))
        .and(query_param("maxResults", "50"))
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
        .and(query_param("startAt", "2"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/project/search")))
        .and(header("authorization", basic().as_str()))
        .and(query_param("startAt", "2"))
        .and(query_param("maxResults", "50"))
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
        .and(query_param(
            "jql",
            "created >= \"1970-01-01\" ORDER BY updated ASC",
        ))
        .and(query_param("maxResults", "100"))
        .and(query_param_is_missing("nextPageToken"))
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
        .and(query_param("nextPageToken", "CAEaAggD"))
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
