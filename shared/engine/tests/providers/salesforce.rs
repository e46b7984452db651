//! Salesforce REST: instance URL from the connection, SOQL `query` paged by the relative
//! `nextRecordsUrl`, `403 REQUEST_LIMIT_EXCEEDED` as a rate limit, sObject create, verification
//! with the version's resource list.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, read_all, real_base_url, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "00Dxx0000001gPL!AR8AQJXg")];
const API: &str = "/services/data/v61.0";

fn instance() -> [(&'static str, &'static str); 1] {
    [("instance_url", "https://acme.my.salesforce.com")]
}

#[test]
fn salesforce_base_url_is_the_connection_instance_url() {
    let spec = spec("salesforce");

    let base = real_base_url(&spec, &conn(&instance(), TOKEN));

    assert_eq!(base, "https://acme.my.salesforce.com/services/data/v61.0");
    let foreign = conn(&[("instance_url", "https://attacker.example.com")], TOKEN);
    assert!(
        tributary_engine::connection::Bound::new(&spec, &foreign).is_err(),
        "an instance URL outside Salesforce's domains is refused"
    );
}

#[tokio::test]
async fn salesforce_soql_query_follows_next_records_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .and(header("sforce-query-options", "batchSize=2000"))
        .and(query_param(
            "q",
            "SELECT Id, FirstName, LastName, Email, Phone, AccountId, CreatedDate, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 3,
            "done": false,
            "nextRecordsUrl": format!("{API}/query/01gRO0000016PIAYA2-2000"),
            "records": [
                {"attributes": {"type": "Contact"}, "Id": "003RO0000001", "LastName": "Lovelace"},
                {"attributes": {"type": "Contact"}, "Id": "003RO0000002", "LastName": "Hopper"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query/01gRO0000016PIAYA2-2000")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/query/01gRO0000016PIAYA2-2000")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 3,
            "done": true,
            "records": [{"attributes": {"type": "Contact"}, "Id": "003RO0000003", "LastName": "Liskov"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("salesforce");
    let got = read_all(
        &engine(),
        &spec,
        "contacts",
        &mocked(&server, API, &instance(), TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("Id"),
        ["003RO0000001", "003RO0000002", "003RO0000003"]
    );
    assert_eq!(got.pages, 2);
    assert_eq!(
        got.retries, 1,
        "REQUEST_LIMIT_EXCEEDED is retried as a rate limit"
    );
}

#[tokio::test]
async fn salesforce_create_contact_posts_sobject_fields_and_returns_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/sobjects/Contact")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .and(body_json(
            json!({"LastName": "Lovelace", "Email": "ada@example.com"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "003RO0000009xyzAAA", "success": true, "errors": []
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("salesforce"),
            "create_contact",
            &mocked(&server, API, &instance(), TOKEN),
            &json!({"last_name": "Lovelace", "email": "ada@example.com"}),
        )
        .await
        .unwrap();

    assert_eq!(out, "003RO0000009xyzAAA");
}

/// Verification reads `GET /services/data/v61.0/`, which every user with API access may (not
/// `/limits`, which needs "View Setup and Configuration"); an invalid session is refused.
#[tokio::test]
async fn salesforce_verifies_with_the_version_resource_list() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/")))
        .and(header("authorization", "Bearer 00Dxx0000001gPL!AR8AQJXg"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sobjects": format!("{API}/sobjects"),
            "query": format!("{API}/query"),
            "limits": format!("{API}/limits")
        })))
        .expect(1)
        .mount(&server)
        .await;
    let spec = spec("salesforce");
    let connection = mocked(&server, API, &instance(), TOKEN);
    engine().verify(&spec, &connection).await.unwrap();

    let refused = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!([
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ])))
        .mount(&refused)
        .await;
    let err = engine()
        .verify(&spec, &mocked(&refused, API, &instance(), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(err.class(), tributary_engine::ErrorClass::Auth, "{err}");
}
