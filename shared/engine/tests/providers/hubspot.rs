//! HubSpot CRM v3: Bearer token, `limit` + `after` from `paging.next.after`, the same `properties`
//! on every page, `RATE_LIMIT` 429s.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{engine, mocked, query_exactly, read_all, spec};

const TOKEN: &[(&str, &str)] = &[("access_token", "pat-na1-11111111")];

const CONTACT_PROPERTIES: &str =
    "email,firstname,lastname,phone,company,lifecyclestage,lastmodifieddate";

#[tokio::test]
async fn hubspot_contacts_follow_after_cursor_across_pages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/objects/contacts"))
        .and(header("authorization", "Bearer pat-na1-11111111"))
        .and(query_exactly(&[
            ("properties", CONTACT_PROPERTIES),
            ("archived", "false"),
            ("limit", "100"),
        ]))
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
        .and(query_exactly(&[
            ("properties", CONTACT_PROPERTIES),
            ("archived", "false"),
            ("limit", "100"),
            ("after", "NTI1Cg%3D%3D"),
        ]))
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
        .and(query_exactly(&[
            ("properties", CONTACT_PROPERTIES),
            ("archived", "false"),
            ("limit", "100"),
            ("after", "NTI1Cg%3D%3D"),
        ]))
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

/// Companies and deals page like contacts, each with its own `properties` list on every page
/// (HubSpot returns only the default properties of an object without one).
#[tokio::test]
async fn hubspot_companies_and_deals_follow_after_cursor_with_their_properties() {
    let cases = [
        (
            "companies",
            "name,domain,industry,hs_lastmodifieddate",
            [
                json!({"id": "7001", "properties": {"name": "Acme", "domain": "acme.example"}, "createdAt": "2026-11-02T09:00:00.000Z", "updatedAt": "2026-11-30T10:00:00.000Z", "archived": false}),
                json!({"id": "7002", "properties": {"name": "Globex", "domain": "globex.example"}, "createdAt": "2026-11-03T09:00:00.000Z", "updatedAt": "2026-11-30T11:00:00.000Z", "archived": false}),
                json!({"id": "7003", "properties": {"name": "Initech", "domain": "initech.example"}, "createdAt": "2026-11-04T09:00:00.000Z", "updatedAt": "2026-11-30T12:00:00.000Z", "archived": false}),
            ],
            ["7001", "7002", "7003"],
        ),
        (
            "deals",
            "dealname,amount,dealstage,pipeline,closedate,hs_lastmodifieddate",
            [
                json!({"id": "9001", "properties": {"dealname": "Renewal", "amount": "1200", "dealstage": "closedwon", "pipeline": "default"}, "createdAt": "2026-10-01T09:00:00.000Z", "updatedAt": "2026-11-30T10:00:00.000Z", "archived": false}),
                json!({"id": "9002", "properties": {"dealname": "Upsell", "amount": "300", "dealstage": "appointmentscheduled", "pipeline": "default"}, "createdAt": "2026-10-02T09:00:00.000Z", "updatedAt": "2026-11-30T11:00:00.000Z", "archived": false}),
                json!({"id": "9003", "properties": {"dealname": "Pilot", "amount": "50", "dealstage": "qualifiedtobuy", "pipeline": "default"}, "createdAt": "2026-10-03T09:00:00.000Z", "updatedAt": "2026-11-30T12:00:00.000Z", "archived": false}),
            ],
            ["9001", "9002", "9003"],
        ),
    ];
    for (stream, properties, [first, second, third], ids) in cases {
        let server = MockServer::start().await;
        let object_path = format!("/crm/v3/objects/{stream}");
        Mock::given(method("GET"))
            .and(path(object_path.as_str()))
            .and(header("authorization", "Bearer pat-na1-11111111"))
            .and(query_exactly(&[
                ("properties", properties),
                ("limit", "100"),
            ]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "results": [first, second],
                "paging": {"next": {
                    "after": "7002",
                    "link": format!("https://api.hubapi.com{object_path}?after=7002")
                }}
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(object_path.as_str()))
            .and(header("authorization", "Bearer pat-na1-11111111"))
            .and(query_exactly(&[
                ("properties", properties),
                ("limit", "100"),
                ("after", "7002"),
            ]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [third]})))
            .expect(1)
            .mount(&server)
            .await;

        let got = read_all(
            &engine(),
            &spec("hubspot"),
            stream,
            &mocked(&server, "", &[], TOKEN),
        )
        .await
        .unwrap_or_else(|e| panic!("{stream}: {e}"));

        assert_eq!(got.ids("id"), ids, "{stream}");
        assert_eq!(got.pages, 2, "{stream}");
    }
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
