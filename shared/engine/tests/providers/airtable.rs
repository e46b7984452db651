//! Airtable: Bearer token, base and table in the path, `pageSize` and the `offset` token until
//! it is absent, 429 retried, batch record creation. A table name is one percent-encoded segment.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("personal_access_token", "patAbC.123")];
const CONFIG: &[(&str, &str)] = &[("base_id", "appAbCdEfGhIjKlMn"), ("table", "Tasks list")];

#[tokio::test]
async fn airtable_records_follow_offset_until_absent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(query_param("pageSize", "100"))
        .and(query_param_is_missing("offset"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [
                {"id": "rec560UJdUtocSouk", "createdTime": "2022-09-12T21:03:48.000Z", "fields": {"Name": "A"}},
                {"id": "rec3lbPRG4aVqkeOQ", "createdTime": "2022-09-12T21:03:48.000Z", "fields": {"Name": "B"}}
            ],
            "offset": "itrHt0Ts3ioklL1Nt/rec3lbPRG4aVqkeOQ"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(query_param("offset", "itrHt0Ts3ioklL1Nt/rec3lbPRG4aVqkeOQ"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(query_param("pageSize", "100"))
        .and(query_param("offset", "itrHt0Ts3ioklL1Nt/rec3lbPRG4aVqkeOQ"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [{"id": "recZ9", "createdTime": "2022-09-13T10:00:00.000Z", "fields": {"Name": "C"}}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("airtable"),
        "records",
        &mocked(&server, "/v0", CONFIG, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("id"),
        ["rec560UJdUtocSouk", "rec3lbPRG4aVqkeOQ", "recZ9"]
    );
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
}

#[tokio::test]
async fn airtable_create_records_posts_records_array() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(body_json(json!({"records": [{"fields": {"Name": "Write docs"}}], "typecast": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [{"id": "recNew1", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {"Name": "Write docs"}}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("airtable"),
            "create_records",
            &mocked(&server, "/v0", CONFIG, TOKEN),
            &json!({"records": [{"fields": {"Name": "Write docs"}}], "typecast": true}),
        )
        .await
        .unwrap();

    assert_eq!(out[0]["id"], "recNew1");
}
