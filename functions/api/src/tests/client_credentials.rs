//! Shopify Dev Dashboard apps (`oauth2_client_credentials`) against a local shop: a connection
//! (through the API or the connect page) trades the app's client id and secret for a day's token
//! with exactly the documented form, seals the three with the token's expiry and never shows or
//! logs the secret; a refused grant is a 400 that names the credentials; an expired token is
//! granted again, once, when the connection is used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use tracing::instrument::WithSubscriber as _;
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEventType, ConnectionStatus,
};
use tributary_core::ids::TenantId;
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore as _, QueueDepth};
use tributary_core::vault::{Owner, Sealed};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{as_tenant, is_problem, tenant};
use crate::testing::{MemStore, NOW, Req, Res, TestApi, call, deps_with, keyring};

const CLIENT_ID: &str = "3f7a6b0d2c";
const SECRET: &str = "shpss_9b1c0ffee5ecre7";
const TOKEN_PATH: &str = "/admin/oauth/access_token";
const SHOP_PATH: &str = "/admin/api/2026-10/shop.json";
const DAY_MS: i64 = 86_399_000;
const RETURN: &str = "https://app.example.com/connected";

/// A token request's form fields, sorted.
type Form = Vec<(String, String)>;

/// A local shop: the token endpoint grants `shpat_<n>` (n = 1, 2, …) for exactly the documented
/// client-credentials form of [`CLIENT_ID`] and [`SECRET`] (Shopify's 400 otherwise), after
/// `delay`; `/shop.json` accepts any token it granted.
struct Shop {
    server: MockServer,
    grants: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<Form>>>,
    /// While set, the token endpoint refuses every request as Shopify refuses a wrong secret.
    refusing: Arc<AtomicBool>,
}

async fn shop(delay: Duration) -> Shop {
    let server = MockServer::start().await;
    let grants = Arc::new(AtomicUsize::new(0));
    let forms: Arc<Mutex<Vec<Form>>> = Arc::default();
    let refusing: Arc<AtomicBool> = Arc::default();
    let (counted, seen, refuse) = (grants.clone(), forms.clone(), refusing.clone());
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(move |r: &Request| {
            let mut form: Form = url::form_urlencoded::parse(&r.body).into_owned().collect();
            form.sort();
            seen.lock().unwrap().push(form.clone());
            let typed = r
                .headers
                .get("content-type")
                .is_some_and(|v| v == "application/x-www-form-urlencoded");
            let documented = [
                ("client_id".to_owned(), CLIENT_ID.to_owned()),
                ("client_secret".to_owned(), SECRET.to_owned()),
                ("grant_type".to_owned(), "client_credentials".to_owned()),
            ];
            if !typed || form != documented || refuse.load(Ordering::SeqCst) {
                return ResponseTemplate::new(400).set_body_json(json!({
                    "error": "invalid_client",
                    "error_description": "Client credentials are invalid"
                }));
            }
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_delay(delay)
                .set_body_json(json!({
                    "access_token": format!("shpat_{n}"),
                    "scope": "read_products,read_customers,read_orders",
                    "expires_in": 86399
                }))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(SHOP_PATH))
        .respond_with(|r: &Request| {
            let token = r
                .headers
                .get("x-shopify-access-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if token.starts_with("shpat_") {
                ResponseTemplate::new(200).set_body_json(json!({"shop": {"name": "Acme"}}))
            } else {
                ResponseTemplate::new(401)
                    .set_body_json(json!({"errors": "[API] Invalid API key or access token"}))
            }
        })
        .mount(&server)
        .await;
    Shop {
        server,
        grants,
        forms,
        refusing,
    }
}

struct Setup {
    d: TestApi,
    t: TenantId,
    shop: Shop,
    integration: String,
}

async fn setup(delay: Duration) -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let shop = shop(delay).await;
    let mut settings = crate::testing::config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
    settings
        .provider_origins
        .insert("shopify".into(), shop.server.uri());
    let d = deps_with(store, Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({
            "provider": "shopify", "auth_mode": "oauth2_client_credentials", "return_urls": [RETURN]
        })),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    Setup {
        integration: res.body["id"].as_str().unwrap().to_owned(),
        d,
        t,
        shop,
    }
}

/// Everything logged while `f` ran, as text (levels, messages and fields).
async fn logged<F: std::future::Future>(f: F) -> (F::Output, String) {
    let log = Arc::new(Mutex::new(String::new()));
    let out = f
        .with_subscriber(Capture {
            log: log.clone(),
            next: AtomicUsize::new(1),
        })
        .await;
    let text = log.lock().unwrap().clone();
    (out, text)
}

struct Capture {
    log: Arc<Mutex<String>>,
    next: AtomicUsize,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {}:", span.metadata().name());
        span.record(&mut Fields(&mut line));
        self.log.lock().unwrap().push_str(&(line + "\n"));
        tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) as u64)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record:");
        values.record(&mut Fields(&mut line));
        self.log.lock().unwrap().push_str(&(line + "\n"));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{}:", event.metadata().level());
        event.record(&mut Fields(&mut line));
        self.log.lock().unwrap().push_str(&(line + "\n"));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

impl Setup {
    async fn connect(&self, credentials: Value) -> Res {
        call(
            &self.d,
            as_tenant(Req::new("POST", "/v1/connections"), &self.t).json(json!({
                "integration_id": self.integration, "end_user_id": "merchant-1",
                "config": {"shop": "acme-store"}, "credentials": credentials
            })),
        )
        .await
    }

    async fn connections(&self) -> Vec<Connection> {
        self.d
            .store
            .list_connections(&self.t, &Default::default(), &ALL)
            .await
            .unwrap()
            .items
    }

    fn opened(&self, c: &Connection) -> BTreeMap<String, String> {
        let plain = keyring()
            .open(
                &Owner {
                    tenant: self.t.as_str(),
                    object: c.id.as_str(),
                    purpose: CREDENTIALS_PURPOSE,
                },
                &Sealed::decode(&c.credentials).unwrap(),
            )
            .unwrap();
        serde_json::from_slice(plain.expose_secret()).unwrap()
    }

    fn proxied(&self, connection: &str) -> Req {
        as_tenant(Req::new("GET", "/v1/proxy/shop.json"), &self.t)
            .header("connection-id", connection)
    }

    /// The tokens the shop was read with, in order.
    async fn tokens_used(&self) -> Vec<String> {
        self.shop
            .server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == SHOP_PATH)
            .map(|r| {
                r.headers["x-shopify-access-token"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    async fn token_calls(&self) -> usize {
        self.shop
            .server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == TOKEN_PATH)
            .count()
    }

    async fn events(&self) -> Vec<ConnectionEventType> {
        self.d
            .store
            .list_connection_events(&self.t, &ALL)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

const ALL: PageRequest = PageRequest {
    limit: 100,
    after: None,
};

fn documented_form() -> Form {
    vec![
        ("client_id".to_owned(), CLIENT_ID.to_owned()),
        ("client_secret".to_owned(), SECRET.to_owned()),
        ("grant_type".to_owned(), "client_credentials".to_owned()),
    ]
}

#[tokio::test]
async fn a_client_credentials_connection_seals_a_day_s_token_and_never_shows_the_secret() {
    let s = setup(Duration::ZERO).await;

    let (res, log) =
        logged(s.connect(json!({"client_id": CLIENT_ID, "client_secret": SECRET}))).await;

    assert_eq!(res.status, 201, "{:?}", res.body);
    assert_eq!(res.body["auth_mode"], "oauth2_client_credentials");
    assert_eq!(res.body["status"], "active");
    assert!(res.body["last_verified_at"].is_string(), "verified");
    let shown = res.body.to_string();
    assert!(
        !shown.contains(SECRET) && !shown.contains("shpat_1"),
        "{shown}"
    );
    assert!(!log.is_empty(), "the capture works");
    assert!(!log.contains(SECRET) && !log.contains("shpat_1"), "{log}");
    // Exactly the documented form, once; the shop was read with the token it granted.
    assert_eq!(*s.shop.forms.lock().unwrap(), vec![documented_form()]);
    assert_eq!(s.tokens_used().await, ["shpat_1"]);
    // Sealed: the app's credentials and the token, with the token's expiry; no idle refresh.
    let made = s.connections().await;
    assert_eq!(made.len(), 1);
    assert!(!made[0].credentials.contains(SECRET));
    assert_eq!(
        s.opened(&made[0]),
        BTreeMap::from([
            ("access_token".to_owned(), "shpat_1".to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("client_secret".to_owned(), SECRET.to_owned()),
        ])
    );
    assert_eq!(made[0].token_expires_at_ms, Some(NOW + DAY_MS));
    assert_eq!(made[0].tokens_obtained_at_ms, None);
    assert_eq!(made[0].idle_refresh_due_ms(), None);
}

#[tokio::test]
async fn client_credentials_are_checked_against_the_mode_s_fields_before_anything_is_sent() {
    let s = setup(Duration::ZERO).await;

    let missing = s.connect(json!({"client_id": CLIENT_ID})).await;
    let given_token = s
        .connect(
            json!({"client_id": CLIENT_ID, "client_secret": SECRET, "access_token": "shpat_x"}),
        )
        .await;

    is_problem(&missing, 400, "validation_failed");
    assert_eq!(
        missing.body["errors"][0]["pointer"],
        "/credentials/client_secret"
    );
    is_problem(&given_token, 400, "validation_failed");
    assert_eq!(
        given_token.body["errors"][0]["pointer"],
        "/credentials/access_token"
    );
    assert_eq!(s.token_calls().await, 0);
    assert!(s.connections().await.is_empty());
}

#[tokio::test]
async fn a_refused_grant_is_a_400_naming_the_credentials_and_saves_nothing() {
    let s = setup(Duration::ZERO).await;
    let wrong = "shpss_wrong_secret_42";

    let (res, log) =
        logged(s.connect(json!({"client_id": CLIENT_ID, "client_secret": wrong}))).await;

    is_problem(&res, 400, "validation_failed");
    let pointers: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["/credentials/client_id", "/credentials/client_secret"]
    );
    let detail = res.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("client_secret") && detail.contains("invalid_client"),
        "{detail}"
    );
    assert!(!res.body.to_string().contains(wrong));
    assert!(!log.contains(wrong), "{log}");
    assert!(s.connections().await.is_empty());
    assert_eq!(s.token_calls().await, 1);
}

/// A token endpoint that refuses without an OAuth error object (a bare 401) is a refusal too.
#[tokio::test]
async fn a_bare_401_from_the_token_endpoint_is_a_refusal_not_an_outage() {
    let s = setup(Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_string("Unauthorized"))
        .with_priority(1)
        .mount(&s.shop.server)
        .await;

    let res = s
        .connect(json!({"client_id": CLIENT_ID, "client_secret": SECRET}))
        .await;

    is_problem(&res, 400, "validation_failed");
    assert_eq!(
        res.body["errors"][1]["pointer"],
        "/credentials/client_secret"
    );
    assert!(s.connections().await.is_empty());
}

async fn connected(s: &Setup) -> String {
    let res = s
        .connect(json!({"client_id": CLIENT_ID, "client_secret": SECRET}))
        .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    res.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_expired_token_is_granted_again_when_the_connection_is_used() {
    let s = setup(Duration::ZERO).await;
    let id = connected(&s).await;
    let used = call(&s.d, s.proxied(&id)).await;
    assert_eq!(used.status, 200, "{:?}", used.body);
    assert_eq!(s.token_calls().await, 1, "a valid token is used as stored");

    // A day later the token has expired.
    s.d.clock.advance(DAY_MS + 1_000);
    let res = call(&s.d, s.proxied(&id)).await;

    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(s.tokens_used().await, ["shpat_1", "shpat_1", "shpat_2"]);
    assert_eq!(
        s.shop.forms.lock().unwrap().clone(),
        vec![documented_form(), documented_form()],
        "the same grant with the connection's own client id and secret"
    );
    let stored = &s.connections().await[0];
    assert_eq!(s.opened(stored)["access_token"], "shpat_2");
    assert_eq!(s.opened(stored)["client_secret"], SECRET);
    assert_eq!(
        stored.token_expires_at_ms,
        Some(NOW + DAY_MS + 1_000 + DAY_MS)
    );
    assert_eq!(stored.tokens_obtained_at_ms, None, "no idle refresh");
    assert!(s.events().await.contains(&ConnectionEventType::Refreshed));
}

#[tokio::test]
async fn testing_a_connection_with_an_expired_token_grants_a_new_one_first() {
    let s = setup(Duration::ZERO).await;
    let id = connected(&s).await;
    s.d.clock.advance(DAY_MS + 1_000);

    let res = call(
        &s.d,
        as_tenant(
            Req::new("POST", &format!("/v1/connections/{id}/test")),
            &s.t,
        ),
    )
    .await;

    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "active");
    assert_eq!(s.tokens_used().await, ["shpat_1", "shpat_2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_of_an_expired_token_make_one_grant() {
    // Slow enough for every caller to arrive while the one grant is in flight.
    let s = setup(Duration::from_millis(300)).await;
    let id = connected(&s).await;
    s.d.clock.advance(DAY_MS + 1_000);

    let calls = (0..20).map(|_| call(&s.d, s.proxied(&id)));
    let answers = futures::future::join_all(calls).await;

    for res in &answers {
        assert_eq!(res.status, 200, "{:?}", res.body);
    }
    let used = s.tokens_used().await;
    assert_eq!(used.len(), 21);
    assert!(used[1..].iter().all(|t| t == "shpat_2"), "{used:?}");
    assert_eq!(
        s.shop.grants.load(Ordering::SeqCst),
        2,
        "one at connect, one renewal"
    );
    assert_eq!(s.token_calls().await, 2);
}

#[tokio::test]
async fn a_grant_refused_on_renewal_moves_the_connection_to_needs_reauth() {
    let s = setup(Duration::ZERO).await;
    let id = connected(&s).await;
    // The merchant rotated the app's secret.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})))
        .with_priority(1)
        .mount(&s.shop.server)
        .await;
    s.d.clock.advance(DAY_MS + 1_000);

    let res = call(&s.d, s.proxied(&id)).await;

    is_problem(&res, 409, "needs_reauth");
    let stored = &s.connections().await[0];
    assert_eq!(stored.status, ConnectionStatus::NeedsReauth);
    assert!(
        stored
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("credentials") && r.contains("invalid_client")),
        "{:?}",
        stored.status_reason
    );
}

#[tokio::test]
async fn the_connect_page_asks_for_the_app_s_credentials_and_connects_with_them() {
    let s = setup(Duration::ZERO).await;
    let session = call(
        &s.d,
        as_tenant(Req::new("POST", "/v1/connect/sessions"), &s.t).json(json!({
            "end_user_id": "merchant-1", "integration_ids": [s.integration], "return_url": RETURN
        })),
    )
    .await;
    assert_eq!(session.status, 201, "{:?}", session.body);
    let token = session.body["token"].as_str().unwrap().to_owned();

    let page = call(&s.d, Req::new("GET", &format!("/connect/{token}"))).await;
    let html = page.body.as_str().unwrap_or_default();
    assert_eq!(page.status, 200, "{html}");
    assert!(!html.contains("cannot be connected"), "{html}");
    for field in [
        "config.shop",
        "credentials.client_id",
        "credentials.client_secret",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "{field} in {html}"
        );
    }
    assert!(html.contains(&format!("action=\"/connect/{token}/{}\"", s.integration)));

    let post = |body: String| {
        let path = format!("/connect/{token}/{}", s.integration);
        let d = &s.d;
        async move {
            call(
                d,
                Req::new("POST", &path).raw(&body, "application/x-www-form-urlencoded"),
            )
            .await
        }
    };
    // A wrong secret: the form again, saying so, without the value.
    let res = post(format!(
        "config.shop=acme-store&credentials.client_id={CLIENT_ID}&credentials.client_secret=shpss_nope"
    ))
    .await;
    let again = res.body.as_str().unwrap_or_default();
    assert_eq!(res.status, 400, "{again}");
    assert!(
        again.contains("refused this client ID and secret"),
        "{again}"
    );
    assert!(!again.contains("shpss_nope"));
    assert!(s.connections().await.is_empty());

    let res = post(format!(
        "config.shop=acme-store&credentials.client_id={CLIENT_ID}&credentials.client_secret={SECRET}"
    ))
    .await;

    assert_eq!(res.status, 303, "{:?}", res.body);
    let location = res.headers["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{RETURN}?status=connected&connection_id=conn_")));
    let made = s.connections().await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].auth_mode, "oauth2_client_credentials");
    assert_eq!(made[0].config["shop"], "acme-store");
    assert_eq!(made[0].status, ConnectionStatus::Active);
    assert_eq!(made[0].token_expires_at_ms, Some(NOW + DAY_MS));
    assert_eq!(s.opened(&made[0])["access_token"], "shpat_1");
    assert_eq!(s.opened(&made[0])["client_secret"], SECRET);
}

impl Setup {
    /// A connection made with the app's credentials: its id.
    async fn connected(&self) -> String {
        let res = self
            .connect(json!({"client_id": CLIENT_ID, "client_secret": SECRET}))
            .await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        res.body["id"].as_str().unwrap().to_owned()
    }

    async fn patch(&self, connection: &str, body: Value) -> Res {
        call(
            &self.d,
            as_tenant(
                Req::new("PATCH", &format!("/v1/connections/{connection}")),
                &self.t,
            )
            .json(body),
        )
        .await
    }
}

#[tokio::test]
async fn a_new_shop_is_granted_its_own_token_and_verified_with_it() {
    let s = setup(Duration::ZERO).await;
    let id = s.connected().await;

    let res = s
        .patch(
            &id,
            json!({"config": {"shop": "acme-outlet"}, "tags": {"stage": "moved"}}),
        )
        .await;

    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["config"]["shop"], "acme-outlet");
    assert_eq!(res.body["tags"], json!({"stage": "moved"}));
    assert!(!res.body.to_string().contains("shpat_"), "{:?}", res.body);
    // A second grant with the same app credentials, and the shop verified with its token.
    assert_eq!(
        *s.shop.forms.lock().unwrap(),
        vec![documented_form(), documented_form()]
    );
    assert_eq!(s.tokens_used().await, ["shpat_1", "shpat_2"]);
    let stored = &s.connections().await[0];
    assert_eq!(stored.config["shop"], "acme-outlet");
    assert_eq!(s.opened(stored)["access_token"], "shpat_2");
    assert_eq!(s.opened(stored)["client_secret"], SECRET);
    assert_eq!(stored.token_expires_at_ms, Some(NOW + DAY_MS));
    assert_eq!(
        s.events().await,
        [ConnectionEventType::Created, ConnectionEventType::Updated]
    );
    // The lease is given back: the connection is used with the new token at once.
    let res = call(&s.d, s.proxied(&id)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(s.tokens_used().await, ["shpat_1", "shpat_2", "shpat_2"]);
    // The same shop again is not a new grant.
    let res = s
        .patch(&id, json!({"config": {"shop": "acme-outlet"}}))
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(s.token_calls().await, 2);
}

#[tokio::test]
async fn a_new_shop_waits_for_a_refresh_in_progress_and_a_refused_grant_changes_nothing() {
    let s = setup(Duration::ZERO).await;
    let id = s.connected().await;
    let before = s.connections().await[0].clone();

    // Another environment is renewing the token: the update is refused, nothing is granted.
    assert!(
        s.d.store
            .lease_refresh(&s.t, &before.id, "someone-else", NOW, NOW + 60_000)
            .await
            .unwrap()
    );
    let res = s
        .patch(&id, json!({"config": {"shop": "acme-outlet"}}))
        .await;
    is_problem(&res, 409, "conflict");
    assert_eq!(s.token_calls().await, 1);
    s.d.store
        .release_refresh(&s.t, &before.id, "someone-else")
        .await
        .unwrap();

    // The shop refuses the app's credentials: a 400, the connection and its token unchanged, and
    // the lease given back (a later update goes through).
    s.shop.refusing.store(true, Ordering::SeqCst);
    let res = s
        .patch(&id, json!({"config": {"shop": "acme-outlet"}}))
        .await;
    assert_eq!(res.status, 400, "{:?}", res.body);
    assert_eq!(s.token_calls().await, 2);
    s.shop.refusing.store(false, Ordering::SeqCst);
    let after = s.connections().await[0].clone();
    assert_eq!(after.config, before.config);
    assert_eq!(after.credentials, before.credentials);
    assert_eq!(after.version, before.version);
    let res = s
        .patch(&id, json!({"config": {"shop": "acme-outlet"}}))
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(
        s.opened(&s.connections().await[0])["access_token"],
        "shpat_2"
    );
}
