//! Airtable: Bearer token, base and table in the path, `pageSize` and the `offset` token until
//! it is absent, a 429 handed back with Airtable's 30-second wait, the base schema read unpaged, batch record creation. A table name
//! is one percent-encoded segment.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tributary_engine::{ErrorClass, ReadOptions};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("personal_access_token", "patAbC.123")];
const CONFIG: &[(&str, &str)] = &[("base_id", "appAbCdEfGhIjKlMn"), ("table", "Tasks list")];

#[tokio::test]
async fn airtable_records_follow_offset_until_absent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(query_exactly(&[("pageSize", "100")]))
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
        .and(query_exactly(&[
            ("pageSize", "100"),
            ("offset", "itrHt0Ts3ioklL1Nt/rec3lbPRG4aVqkeOQ"),
        ]))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appAbCdEfGhIjKlMn/Tasks%20list"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(query_exactly(&[
            ("pageSize", "100"),
            ("offset", "itrHt0Ts3ioklL1Nt/rec3lbPRG4aVqkeOQ"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records": [{"id": "recZ9", "createdTime": "2022-09-13T10:00:00.000Z", "fields": {"Name": "C"}}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    // Airtable asks for 30 seconds after a 429 and sends no `Retry-After`: the read hands the
    // error back with that wait (longer than the engine sleeps), for the sync to defer.
    let engine = engine();
    let spec = spec("airtable");
    let connection = mocked(&server, "/v0", CONFIG, TOKEN);
    let mut pages = engine
        .read(&spec, "records", &connection, ReadOptions::default())
        .unwrap();
    let first = pages.next().await.unwrap().unwrap();
    assert_eq!(first.records.len(), 2);
    let err = pages.next().await.unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)), "{err}");
    assert!(err.to_string().contains("Rate limit exceeded"), "{err}");

    // Read again from the page that was refused, it goes on.
    let resume = first.resume.expect("a resume point after the first page");
    let got = engine
        .read(
            &spec,
            "records",
            &connection,
            ReadOptions {
                resume: Some(resume),
                ..ReadOptions::default()
            },
        )
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.records.len(), 1);
}

/// The base schema answers every table in one response with no `offset`: the read sends no page
/// parameter (Airtable documents none for this endpoint) and stops after it.
#[tokio::test]
async fn airtable_tables_read_the_base_schema_in_one_unpaged_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases/appAbCdEfGhIjKlMn/tables"))
        .and(header("authorization", "Bearer patAbC.123"))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tables": [
                {
                    "description": "Apartments to track.",
                    "fields": [
                        {"description": "Name of the apartment", "id": "fld1VnoyuotSTyxW1", "name": "Name", "type": "singleLineText"},
                        {"id": "fldumZe00w09RYTW6", "name": "District", "type": "multipleRecordLinks",
                         "options": {"inverseLinkFieldId": "fldWnCJlo2z6ttT8Y", "isReversed": false, "linkedTableId": "tblK6MZHez0ZvBChZ", "prefersSingleRecordLink": true}}
                    ],
                    "id": "tbltp8DGLhqbUmjK1",
                    "name": "Apartments",
                    "primaryFieldId": "fld1VnoyuotSTyxW1",
                    "views": [{"id": "viwQpsuEDqHFqegkp", "name": "Grid view", "type": "grid"}]
                },
                {
                    "fields": [{"id": "fldEVzvQOoULO38yl", "name": "Name", "type": "singleLineText"}],
                    "id": "tblK6MZHez0ZvBChZ",
                    "name": "Districts",
                    "primaryFieldId": "fldEVzvQOoULO38yl",
                    "views": [{"id": "viwi3KXvrKug2mIBS", "name": "Grid view", "type": "grid"}]
                }
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("airtable"),
        "tables",
        &mocked(&server, "/v0", CONFIG, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["tbltp8DGLhqbUmjK1", "tblK6MZHez0ZvBChZ"]);
    assert_eq!(got.pages, 1);
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
