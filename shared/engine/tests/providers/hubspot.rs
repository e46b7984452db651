//! HubSpot CRM v3: Bearer token, `limit` + `after` from `paging.next.after`, `RATE_LIMIT` 429s.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "pat-na1-11111111")];

#[tokio::test]
async fn hubspot_contacts_follow_after_cursor_across_pages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .and(header("authorization", "Bearer pat-na1-11111111"))
        .and(query_param("limit", "100"))
        .and(query_param("archived", "false"))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [
                {"id": "51", "properties": {"email": "a@example.com"}, "archived": false},
                {"id": "52", "properties": {"email": "b@example.com"}, "archived": false}
            ],
            "paging": {"next": {"after": "NTI1Cg%3D%3D", "link": "https://api.hubapi.com/crm/v3/objects/contacts?after=NTI1Cg%3D%3D"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    // The second page is rate limited once, the way HubSpot answers a burst.
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .and(query_param("after", "NTI1Cg%3D%3D"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-HubSpot-RateLimit-Remaining", "0")
                .set_body_json(json!({
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": "c0ffee00-0000-0000-0000-000000000000",
                    "policyName": "TEN_SECONDLY_ROLLING"
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .and(header("authorization", "Bearer pat-na1-11111111"))
        .and(query_param("limit", "100"))
        .and(query_param("after", "NTI1Cg%3D%3D"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"id": "53", "properties": {"email": "c@example.com"}, "archived": false}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("hubspot");
    let got = read_all(
        &engine(),
        &spec,
        "contacts",
        &mocked(&server, "", &[], TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["51", "52", "53"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1, "the RATE_LIMIT 429 is retried once");
}

#[tokio::test]
async fn hubspot_create_contact_posts_properties_object() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .and(header("authorization", "Bearer pat-na1-11111111"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "properties": {"email": "ada@example.com", "firstname": "Ada"}
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "901",
            "properties": {"email": "ada@example.com", "firstname": "Ada"},
            "archived": false
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("hubspot"),
            "create_contact",
            &mocked(&server, "", &[], TOKEN),
            &json!({"email": "ada@example.com", "firstname": "Ada"}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], "901");
}
