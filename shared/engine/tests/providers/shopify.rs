//! Shopify Admin: shop subdomain, `X-Shopify-Access-Token` (a legacy custom app's token, or one
//! from the client credentials grant of a Dev Dashboard app), products read and created through
//! GraphQL (`THROTTLED` waited out, `userErrors` refused), customers and orders through REST with
//! `Link` header `page_info` paging and a fractional `Retry-After`, base64 HMAC webhooks.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tributary_engine::oauth::{ClientApp, Grant, TokenEndpoint, request_token, token_request};
use tributary_engine::origins::{self, provider_url};
use tributary_engine::spec::{AuthMode, OAuth2ClientCredentials};
use tributary_engine::{Connection, ErrorClass};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{
    conn, engine, headers, hmac_base64, mocked, query_exactly, read_all, real_base_url, spec,
    verified_event, verify_webhook,
};

const TOKEN: &[(&str, &str)] = &[("admin_api_token", "shpat_0123456789abcdef")];
const SHOP: &[(&str, &str)] = &[("shop", "acme-store")];
const API: &str = "/admin/api/2026-10";

/// Matches a GraphQL request whose `query` contains `needle`.
fn graphql_query_contains(needle: &'static str) -> impl Fn(&Request) -> bool {
    move |r: &Request| {
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|b| b["query"].as_str().map(|q| q.contains(needle)))
            .unwrap_or(false)
    }
}

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

/// Products come from the GraphQL Admin API (the REST product endpoints are deprecated): one
/// connection page after another by `endCursor`, a `THROTTLED` answer waited out and retried.
#[tokio::test]
async fn shopify_products_are_read_through_graphql_and_wait_out_throttling() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[]))
        .and(graphql_query_contains(
            "products(first: $first, after: $after)",
        ))
        .and(body_partial_json(
            json!({"variables": {"first": 100, "after": null}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"products": {
                "pageInfo": {"hasNextPage": true, "endCursor": "eyJsYXN0X2lkIjoxfQ=="},
                "nodes": [{"id": "gid://shopify/Product/632910392", "legacyResourceId": "632910392",
                           "title": "IPod Nano - 8GB", "status": "ACTIVE", "tags": ["Emotive"]}]
            }}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(query_exactly(&[]))
        .and(body_partial_json(
            json!({"variables": {"first": 100, "after": "eyJsYXN0X2lkIjoxfQ=="}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 102, "throttleStatus": {"currentlyAvailable": 40}}}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[]))
        .and(body_partial_json(
            json!({"variables": {"first": 100, "after": "eyJsYXN0X2lkIjoxfQ=="}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"products": {
                "pageInfo": {"hasNextPage": false, "endCursor": "eyJsYXN0X2lkIjoyfQ=="},
                "nodes": [{"id": "gid://shopify/Product/921728736", "legacyResourceId": "921728736",
                           "title": "IPod Touch 8GB", "status": "DRAFT", "tags": []}]
            }}})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("shopify");
    assert!(
        spec.streams
            .iter()
            .all(|s| !s.request.path.starts_with("/products")),
        "no stream reads the deprecated REST product endpoints"
    );
    let got = read_all(
        &engine(),
        &spec,
        "products",
        &mocked(&server, API, SHOP, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(
        got.ids("id"),
        [
            "gid://shopify/Product/632910392",
            "gid://shopify/Product/921728736"
        ]
    );
    assert_eq!(got.ids("legacyResourceId"), ["632910392", "921728736"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1, "the throttled page was asked again");
}

#[tokio::test]
async fn shopify_customers_follow_page_info_link_and_honour_retry_after() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}{API}/customers.json?limit=250&page_info=eyJsYXN0X2lkIjoyMDd9>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{API}/customers.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[("limit", "250")]))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .insert_header("x-shopify-shop-api-call-limit", "1/40")
                .set_body_json(json!({"customers": [
                    {"id": 207119551, "email": "bob.norman@mail.example.com"},
                    {"id": 1073339460, "email": "steve.lastnameson@example.com"}
                ]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let second = [("limit", "250"), ("page_info", "eyJsYXN0X2lkIjoyMDd9")];
    Mock::given(method("GET"))
        .and(path(format!("{API}/customers.json")))
        .and(query_exactly(&second))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1.0")
                .set_body_json(json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let previous = format!(
        "<{}{API}/customers.json?limit=250&page_info=eyJkaXJlY3Rpb24iOiJwcmV2In0>; rel=\"previous\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{API}/customers.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&second))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", previous.as_str())
                .set_body_json(
                    json!({"customers": [{"id": 1073339461, "email": "jane@example.com"}]}),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let got = read_all(
        &engine(),
        &spec("shopify"),
        "customers",
        &mocked(&server, API, SHOP, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("id"), ["207119551", "1073339460", "1073339461"]);
    assert_eq!(got.pages, 2);
    assert_eq!(got.retries, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1.0 honoured"
    );
}

/// Orders of any status; the next page's URL carries `page_info` and `limit` only (Shopify
/// refuses other filters beside `page_info`), and is followed as given.
#[tokio::test]
async fn shopify_orders_of_any_status_follow_page_info_link() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}{API}/orders.json?limit=250&page_info=eyJzdGF0dXMiOiJhbnkifQ>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("{API}/orders.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[("limit", "250"), ("status", "any")]))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!({"orders": [
                    {"id": 450789469, "name": "#1001", "financial_status": "paid"},
                    {"id": 1073459962, "name": "#1002", "cancelled_at": "2026-11-02T10:00:00-05:00"}
                ]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/orders.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[
            ("limit", "250"),
            ("page_info", "eyJzdGF0dXMiOiJhbnkifQ"),
        ]))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"orders": [{"id": 1073459963, "name": "#1003"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let got = read_all(
        &engine(),
        &spec("shopify"),
        "orders",
        &mocked(&server, API, SHOP, TOKEN),
    )
    .await
    .unwrap();

    assert_eq!(got.ids("name"), ["#1001", "#1002", "#1003"]);
    assert_eq!(got.pages, 2);
}

/// The client credentials mode of the spec, its token URL sent to `server` as the deployment's
/// origin override would.
fn client_credentials_at(server: &MockServer) -> OAuth2ClientCredentials {
    let spec = spec("shopify");
    let Some(AuthMode::OAuth2ClientCredentials(mode)) = spec
        .auth
        .iter()
        .find(|m| m.kind() == "oauth2_client_credentials")
    else {
        panic!("shopify has a client credentials mode");
    };
    let overrides = origins::parse(&format!("shopify={}", server.uri())).unwrap();
    OAuth2ClientCredentials {
        token_url: provider_url(&overrides, "shopify", &mode.token_url),
        ..mode.clone()
    }
}

/// A Dev Dashboard app trades its client id and secret for a day's token at the shop's
/// `/admin/oauth/access_token` (form body, no scope), then reads with it as
/// `X-Shopify-Access-Token`.
#[tokio::test]
async fn shopify_client_credentials_token_is_asked_of_the_shop_and_applied_as_access_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(|r: &Request| {
            let mut form: Vec<(String, String)> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            form.sort();
            form == [
                ("client_id".to_owned(), "3f7a6b0d2c".to_owned()),
                ("client_secret".to_owned(), "shpss_9b1c".to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
            ]
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "shpat_f85632530bf277ec9ac6",
            "scope": "read_products,read_customers,read_orders",
            "expires_in": 86399
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/customers.json")))
        .and(header(
            "x-shopify-access-token",
            "shpat_f85632530bf277ec9ac6",
        ))
        .and(query_exactly(&[("limit", "250")]))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"customers": [{"id": 207119551}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mode = client_credentials_at(&server);
    let app = ClientApp {
        client_id: "3f7a6b0d2c".into(),
        client_secret: SecretString::from("shpss_9b1c".to_owned()),
    };
    let config = SHOP
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let now = OffsetDateTime::now_utc();
    let engine = engine();

    let request = token_request(
        &TokenEndpoint::from(&mode),
        &config,
        &app,
        &Grant::ClientCredentials {
            scopes: &mode.scopes,
        },
    )
    .unwrap();
    let tokens = request_token(engine.client(), &request, &mode.token_response, now)
        .await
        .unwrap();
    let mut connection: Connection = mocked(
        &server,
        API,
        SHOP,
        &[
            ("client_id", "3f7a6b0d2c"),
            ("client_secret", "shpss_9b1c"),
            ("access_token", tokens.access_token.expose_secret()),
        ],
    );
    connection.auth_mode = Some("oauth2_client_credentials".into());
    let got = read_all(&engine, &spec("shopify"), "customers", &connection)
        .await
        .unwrap();

    assert_eq!(
        tokens.expires_at,
        Some(now + time::Duration::seconds(86399))
    );
    assert!(
        tokens.refresh_token.is_none(),
        "asked again when it expires"
    );
    assert_eq!(got.ids("id"), ["207119551"]);
}

#[tokio::test]
async fn shopify_create_product_runs_the_product_create_mutation() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(header("x-shopify-access-token", "shpat_0123456789abcdef"))
        .and(query_exactly(&[]))
        .and(graphql_query_contains(
            "productCreate(product: $product) { product { id legacyResourceId",
        ))
        .and(body_partial_json(json!({"variables": {"product": {
            "title": "Burton Custom Freestyle 151",
            "vendor": "Burton",
            "tags": ["snowboard", "winter"],
            "status": "DRAFT"
        }}})))
        .and(|r: &Request| {
            serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| {
                b["variables"]["product"]
                    .as_object()
                    .is_some_and(|p| p.len() == 4)
            })
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"productCreate": {
            "product": {"id": "gid://shopify/Product/1072481062", "legacyResourceId": "1072481062",
                        "title": "Burton Custom Freestyle 151", "status": "DRAFT"},
            "userErrors": []
        }}})))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("shopify"),
            "create_product",
            &mocked(&server, API, SHOP, TOKEN),
            &json!({"title": "Burton Custom Freestyle 151", "vendor": "Burton",
                    "tags": ["snowboard", "winter"], "status": "DRAFT"}),
        )
        .await
        .unwrap();

    assert_eq!(out["id"], "gid://shopify/Product/1072481062");
    assert_eq!(out["legacyResourceId"], "1072481062");
}

/// GraphQL answers a refused mutation with 200, no product and `userErrors`: the action fails
/// with Shopify's message instead of returning nothing.
#[tokio::test]
async fn shopify_create_product_refused_with_user_errors_fails() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/graphql.json")))
        .and(query_exactly(&[]))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"productCreate": {
                "product": null,
                "userErrors": [{"field": ["title"], "message": "Title can't be blank"}]
            }}})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let err = engine()
        .action(
            &spec("shopify"),
            "create_product",
            &mocked(&server, API, SHOP, TOKEN),
            &json!({"title": " "}),
        )
        .await
        .unwrap_err();

    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert!(err.to_string().contains("Title can't be blank"), "{err}");
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
