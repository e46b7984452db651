//! Mailchimp: data-center host, Basic `anystring:{api_key}`, `offset`/`count` paging until
//! `total_items` for audiences, members and campaigns, 429 on too many connections, member
//! creation.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{conn, engine, mocked, query_exactly, read_all, real_base_url, spec};

const KEY: &str = "0123456789abcdef0123456789abcdef-us6";
const CONFIG: &[(&str, &str)] = &[("dc", "us6"), ("list_id", "57afe96172")];

fn creds() -> [(&'static str, &'static str); 1] {
    [("api_key", KEY)]
}

fn basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("anystring:{KEY}"))
    )
}

#[test]
fn mailchimp_base_url_uses_the_data_center() {
    assert_eq!(
        real_base_url(&spec("mailchimp"), &conn(CONFIG, &creds())),
        "https://us6.api.mailchimp.com/3.0"
    );
}

#[tokio::test]
async fn mailchimp_members_page_by_offset_until_total_items() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists/57afe96172/members"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("count", "1000"), ("offset", "0")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "members": [{"id": "852aaa9532cb36adfb5e9fef7a4206a9", "email_address": "a@example.com"},
                        {"id": "f4cd3c4c5a3fa1ad3a46a4a6c3b3b47c", "email_address": "b@example.com"}],
            "list_id": "57afe96172",
            "total_items": 3
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists/57afe96172/members"))
        .and(query_exactly(&[("count", "1000"), ("offset", "2")]))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "You have exceeded the limit of 10 simultaneous connections.",
            "instance": "2d5d8e5a-0000-0000-0000-000000000000"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists/57afe96172/members"))
        .and(header("authorization", basic().as_str()))
        .and(query_exactly(&[("count", "1000"), ("offset", "2")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "members": [{"id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "email_address": "c@example.com"}],
            "list_id": "57afe96172",
            "total_items": 3
        })))
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("mailchimp"),
        "members",
        &mocked(&server, "/3.0", CONFIG, &creds()),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("email_address"),
        ["a@example.com", "b@example.com", "c@example.com"]
    );
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
}

/// A 403 with Mailchimp's error document is a refused credential; a 403 without one (Mailchimp's
/// answer at exceptionally high volumes) is throttling, retried, and the read goes on.
#[tokio::test]
async fn mailchimp_403_is_auth_only_with_an_error_document() {
    let refused = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Forbidden",
            "status": 403,
            "detail": "The API key provided is linked to a different datacenter",
            "instance": "2d5d8e5a-0000-0000-0000-000000000001"
        })))
        .expect(1)
        .mount(&refused)
        .await;
    let err = read_all(
        &engine(),
        &spec("mailchimp"),
        "lists",
        &mocked(&refused, "/3.0", CONFIG, &creds()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), tributary_engine::ErrorClass::Auth, "{err}");
    assert!(err.to_string().contains("different datacenter"), "{err}");

    let throttled = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "text/html")
                .set_body_string("<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD></HTML>"),
        )
        .up_to_n_times(1)
        .mount(&throttled)
        .await;
    Mock::given(method("GET"))
        .and(path("/3.0/lists"))
        .and(query_exactly(&[("count", "1000"), ("offset", "0")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "lists": [{"id": "57afe96172", "name": "Customers"}],
            "total_items": 1
        })))
        .expect(1)
        .mount(&throttled)
        .await;
    let got = read_all(
        &engine(),
        &spec("mailchimp"),
        "lists",
        &mocked(&throttled, "/3.0", CONFIG, &creds()),
    )
    .await
    .unwrap();
    assert_eq!(got.ids("id"), ["57afe96172"]);
    assert_eq!(got.retries, 1);
}

/// Reads `stream` from a mock answering `/3.0/{stream}` with two documented pages (offsets 0 and
/// 2, `total_items` 3, each with the exact query), and returns the ids read.
async fn two_offset_pages(
    stream: &str,
    first: serde_json::Value,
    second: serde_json::Value,
) -> Vec<String> {
    let server = MockServer::start().await;
    for (offset, body) in [("0", first), ("2", second)] {
        Mock::given(method("GET"))
            .and(path(format!("/3.0/{stream}")))
            .and(header("authorization", basic().as_str()))
            .and(query_exactly(&[("count", "1000"), ("offset", offset)]))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let got = read_all(
        &engine(),
        &spec("mailchimp"),
        stream,
        &mocked(&server, "/3.0", CONFIG, &creds()),
    )
    .await
    .unwrap();
    assert_eq!(got.pages, 2);
    got.ids("id")
}

/// Audiences page like every collection: `count` and `offset` on each request, `lists` in the
/// answer, until the offset reaches `total_items`.
#[tokio::test]
async fn mailchimp_lists_page_by_offset_until_total_items() {
    let constraints = json!({"may_create": true, "max_instances": 5, "current_total_instances": 3});
    let ids = two_offset_pages(
        "lists",
        json!({
            "lists": [
                {"id": "57afe96172", "web_id": 123456, "name": "Freddie's Favorite Hats",
                 "stats": {"member_count": 2}, "date_created": "2015-10-21T15:41:36+00:00"},
                {"id": "a1b2c3d4e5", "web_id": 123457, "name": "Monthly Newsletter",
                 "stats": {"member_count": 5}, "date_created": "2016-01-02T10:00:00+00:00"}
            ],
            "total_items": 3, "constraints": constraints, "_links": []
        }),
        json!({
            "lists": [
                {"id": "f6e5d4c3b2", "web_id": 123458, "name": "Product Updates",
                 "stats": {"member_count": 9}, "date_created": "2017-03-04T08:30:00+00:00"}
            ],
            "total_items": 3, "constraints": constraints, "_links": []
        }),
    )
    .await;
    assert_eq!(ids, ["57afe96172", "a1b2c3d4e5", "f6e5d4c3b2"]);
}

/// Campaigns page the same way, answered under `campaigns`.
#[tokio::test]
async fn mailchimp_campaigns_page_by_offset_until_total_items() {
    let ids = two_offset_pages(
        "campaigns",
        json!({
            "campaigns": [
                {"id": "42694e9e57", "web_id": 101, "type": "regular", "status": "sent",
                 "create_time": "2024-01-10T09:00:00+00:00", "recipients": {"list_id": "57afe96172"}},
                {"id": "b03bfc273a", "web_id": 102, "type": "regular", "status": "save",
                 "create_time": "2024-02-11T09:00:00+00:00", "recipients": {"list_id": "57afe96172"}}
            ],
            "total_items": 3, "_links": []
        }),
        json!({
            "campaigns": [
                {"id": "7f3b2e1a90", "web_id": 103, "type": "plaintext", "status": "schedule",
                 "create_time": "2024-03-12T09:00:00+00:00", "recipients": {"list_id": "a1b2c3d4e5"}}
            ],
            "total_items": 3, "_links": []
        }),
    )
    .await;
    assert_eq!(ids, ["42694e9e57", "b03bfc273a", "7f3b2e1a90"]);
}

#[tokio::test]
async fn mailchimp_add_member_posts_email_and_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/3.0/lists/57afe96172/members"))
        .and(header("authorization", basic().as_str()))
        .and(body_json(json!({
            "email_address": "urist.mcvankab@freddiesjokes.com",
            "status": "subscribed",
            "merge_fields": {"FNAME": "Urist", "LNAME": "McVankab"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "852aaa9532cb36adfb5e9fef7a4206a9", "status": "subscribed"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("mailchimp"),
            "add_member",
            &mocked(&server, "/3.0", CONFIG, &creds()),
            &json!({
                "list_id": "57afe96172",
                "email_address": "urist.mcvankab@freddiesjokes.com",
                "status": "subscribed",
                "merge_fields": {"FNAME": "Urist", "LNAME": "McVankab"}
            }),
        )
        .await
        .unwrap();

    assert_eq!(out["status"], "subscribed");
}
