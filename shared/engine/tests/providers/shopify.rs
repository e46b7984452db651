//! Shopify Admin: shop subdomain, `X-Shopify-Access-Token`, `Link` header `page_info` paging,
//! 429 with a fractional `Retry-After`, GraphQL connection reads, base64 HMAC webhooks.

use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{
    body_json, body_partial_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    conn, engine, headers, hmac_base64, mocked, read_all, real_base_url, spec, verified_event,
    verify_webhook,
};

const TOKEN: &[(&str, &str)] = &[("admin_api_token", "shpat_0123456789abcdef")];
const SHOP: &[(&str, &str)] = &[("shop", "acme-store")];
const API: &str = "/admin/api/2026-10";

#[test]
fn shopify_base_url_uses_the_shop_subdomain() {
    let spec = spec("shopify");

    assert_eq!(
        real_base_url(&spec, &conn(SHOP, TOKEN)),
        "https://acme-store.myshopify.com/admin/api/2026-10"
    );
    let evil = conn(&[("shop", "evil.com/x?")], TOKEN);
    assert!(tributary_engine::connection::Bound::new(&spec, &evil).is_err());
}

#[tokio::test]
async fn shopify_products_follow_page_info_link_and_honour_retry_after() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}{API}/products.json?limit=250&page_info=eyJsYXN0X2lkIjo0fQ>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{API}/products.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_param("limit", "250"))
        .and(query_param_is_missing("page_info"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .insert_header("x-shopify-shop-api-call-limit", "1/40")
                .set_body_json(json!({"products": [{"id": 632910392, "title": "IPod Nano"}, {"id": 921728736, "title": "IPod Touch"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/products.json")))
        .and(query_param("page_info", "eyJsYXN0X2lkIjo0fQ"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1.0")
                .set_body_json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let prev = format!(
        "<{}{API}/products.json?limit=250&page_info=eyJkaXJlY3Rpb24iOiJwcmV2In0>; rel=\"previous\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{API}/products.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_param("page_info", "eyJsYXN0X2lkIjo0fQ"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", prev.as_str())
                .set_body_json(json!({"products": [{"id": 1071559582, "title": "Burton Custom"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("shopify");
    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec,
        "products",
        &mocked(&server, API, SHOP, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["632910392", "921728736", "1071559582"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1.0 honoured"
    );
}

#[tokio::test]
async fn shopify_graphql_products_follow_end_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(body_partial_json(
            json!({"variables": {"first": 100, "after": null}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"products": {
                "pageInfo": {"hasNextPage": true, "endCursor": "eyJsYXN0X2lkIjoxfQ=="},
                "edges": [{"node": {"id": "gid://shopify/Product/1", "title": "A"}}]
            }}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(body_partial_json(
            json!({"variables": {"first": 100, "after": "eyJsYXN0X2lkIjoxfQ=="}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"products": {
                "pageInfo": {"hasNextPage": false, "endCursor": "eyJsYXN0X2lkIjoyfQ=="},
                "edges": [{"node": {"id": "gid://shopify/Product/2", "title": "B"}}]
            }}})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("shopify"),
        "products_graphql",
        &mocked(&server, API, SHOP, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("id"),
        ["gid://shopify/Product/1", "gid://shopify/Product/2"]
    );
}

#[tokio::test]
async fn shopify_create_product_wraps_fields_in_product_object() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/products.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(body_json(json!({"product": {"title": "Burton Custom Freestyle 151", "vendor": "Burton", "status": "draft"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "product": {"id": 1072481062, "title": "Burton Custom Freestyle 151", "status": "draft"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("shopify"),
            "create_product",
            &mocked(&server, API, SHOP, TOKEN),
            &json!({"title": "Burton Custom Freestyle 151", "vendor": "Burton", "status": "draft"}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], 1072481062);
}

#[test]
fn shopify_webhook_verifies_base64_hmac_and_routes_by_shop_domain() {
    let spec = spec("shopify");
    let hooks = spec.webhooks.as_ref().expect("shopify has webhooks");
    let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let sig = hmac_base64("hush", body);
    let h = headers(&[
        ("X-Shopify-Hmac-Sha256", sig.as_str()),
        ("X-Shopify-Topic", "orders/create"),
        ("X-Shopify-Shop-Domain", "acme-store.myshopify.com"),
        (
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
        ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
    ]);
    let got = verified_event(verify_webhook(
        hooks,
        "hush",
        &h,
        body,
        OffsetDateTime::now_utc(),
    ));

    // The event, not this subscription's webhook: two subscriptions to one topic share it.
    assert_eq!(
        got.event_id.as_deref(),
        Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
    );
    assert_eq!(got.event_type.as_deref(), Some("orders/create"));
    assert_eq!(
        got.connection_key.as_deref(),
        Some("acme-store.myshopify.com")
    );
}
