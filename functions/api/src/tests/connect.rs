//! Connect sessions and the hosted connect page, against a local Airtable (OAuth with PKCE, a
//! single-use code) and a local Stripe (an API key): the whole flow, and every way it must refuse —
//! `state` missing, mismatched, expired or replayed, a code used twice, a return URL off the
//! allowlist, a denial, an expired or used link — with no connection created or overwritten.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tributary_core::connection::{ConnectionEventType, ConnectionStatus};
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore as _, QueueDepth};
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{as_tenant, is_problem, tenant};
use crate::testing::{GOOD_KEY, MemStore, Req, Res, TestApi, call, deps_with, stripe_mock};

const RETURN: &str = "https://app.example.com/connected";
const ORIGIN: &str = "https://abcdef123.execute-api.us-east-1.amazonaws.com";

/// A local Airtable: `/oauth2/v1/token` accepts each code it issued once (Basic client auth, the
/// PKCE verifier of the challenge it was sent) and `/v0/meta/whoami` accepts the access token.
struct Airtable {
    server: MockServer,
    /// The challenge the authorization URL carried, by code.
    issued: Arc<Mutex<Vec<String>>>,
    token_calls: Arc<Mutex<Vec<String>>>,
}

async fn airtable() -> Airtable {
    let server = MockServer::start().await;
    let used: Arc<Mutex<HashSet<String>>> = Arc::default();
    let token_calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = token_calls.clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("airtable-client:airtable-secret")
    );
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/token"))
        .and(header("authorization", basic.as_str()))
        .respond_with(move |req: &Request| {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            calls.lock().unwrap().push(body.clone());
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
            let code = form.get("code").cloned().unwrap_or_default();
            let fresh = used.lock().unwrap().insert(code.clone());
            if !fresh || !code.starts_with("code-") || !form.contains_key("code_verifier") {
                return ResponseTemplate::new(400).set_body_json(
                    json!({"error": "invalid_grant", "error_description": "code used or unknown"}),
                );
            }
            // The verifier must be the one whose S256 challenge the code was issued for.
            let verifier = &form["code_verifier"];
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if code != format!("code-{challenge}") {
                return ResponseTemplate::new(400)
                    .set_body_json(json!({"error": "invalid_grant", "error_description": "PKCE"}));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("at-{}", &challenge[..8]),
                "refresh_token": format!("rt-{}", &challenge[..8]),
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "data.records:read"
            }))
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/whoami"))
        .respond_with(|req: &Request| {
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if auth.starts_with("Bearer at-") {
                ResponseTemplate::new(200).set_body_json(json!({"id": "usrABC"}))
            } else {
                ResponseTemplate::new(401)
                    .set_body_json(json!({"error": {"type": "AUTHENTICATION_REQUIRED"}}))
            }
        })
        .mount(&server)
        .await;
    Airtable {
        server,
        issued: Arc::default(),
        token_calls,
    }
}

struct Flow {
    d: TestApi,
    t: TenantId,
    airtable: Airtable,
    oauth: String,
    stripe: String,
    _stripe_mock: MockServer,
}

async fn setup() -> Flow {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let airtable = airtable().await;
    let (stripe_mock, mut settings) = stripe_mock().await;
    settings
        .provider_origins
        .insert("airtable".into(), airtable.server.uri());
    let d = deps_with(store, Ok(QueueDepth::default()), settings);
    let create = |body: Value| {
        let d = &d;
        let t = &t;
        async move {
            let res = call(
                d,
                as_tenant(Req::new("POST", "/v1/integrations"), t).json(body),
            )
            .await;
            assert_eq!(res.status, 201, "{:?}", res.body);
            res.body["id"].as_str().unwrap().to_owned()
        }
    };
    let oauth = create(json!({
        "provider": "airtable", "oauth_client_id": "airtable-client",
        "oauth_client_secret": "airtable-secret", "return_urls": [RETURN]
    }))
    .await;
    let stripe = create(json!({"provider": "stripe", "return_urls": [RETURN]})).await;
    Flow {
        d,
        t,
        airtable,
        oauth,
        stripe,
        _stripe_mock: stripe_mock,
    }
}

impl Flow {
    async fn session(&self, body: Value) -> Res {
        call(
            &self.d,
            as_tenant(Req::new("POST", "/v1/connect/sessions"), &self.t).json(body),
        )
        .await
    }

    /// A session for both integrations: its token.
    async fn token(&self, extra: Value) -> String {
        let mut body = json!({"end_user_id": "user-7", "integration_ids": [self.oauth, self.stripe], "return_url": RETURN});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = self.session(body).await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        assert_eq!(
            res.body["connect_url"],
            format!("{ORIGIN}/connect/{}", res.body["token"].as_str().unwrap())
        );
        res.body["token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path_and_query: &str) -> Res {
        call(&self.d, Req::new("GET", path_and_query)).await
    }

    /// Leaves for the provider: the authorization URL.
    async fn leave(&self, token: &str) -> Url {
        let res = self
            .get(&format!(
                "/connect/{token}/{}/oauth?config.base_id=appAAAABBBBCCCCDD&config.table=Contacts",
                self.oauth
            ))
            .await;
        assert_eq!(res.status, 303, "{:?}", res.body);
        Url::parse(res.headers["location"].to_str().unwrap()).unwrap()
    }

    /// What the provider does when the user approves: a code bound to the challenge, and the
    /// callback URL (path and query) it sends the browser to.
    fn approve(&self, authorization: &Url) -> String {
        let q: std::collections::HashMap<String, String> =
            authorization.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["client_id"], "airtable-client");
        assert_eq!(q["redirect_uri"], format!("{ORIGIN}/connect/callback"));
        self.airtable
            .issued
            .lock()
            .unwrap()
            .push(q["code_challenge"].clone());
        callback(&[
            ("code", &format!("code-{}", q["code_challenge"])),
            ("state", &q["state"]),
        ])
    }

    async fn connections(&self) -> Vec<tributary_core::connection::Connection> {
        self.d
            .store
            .list_connections(
                &self.t,
                &Default::default(),
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .items
    }
}

fn callback(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("https://x/connect/callback").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    format!("/connect/callback?{}", url.query().unwrap())
}

fn html(res: &Res) -> &str {
    res.body.as_str().unwrap_or_default()
}

fn is_page(res: &Res, status: u16, needle: &str) {
    assert_eq!(res.status, status, "{}", html(res));
    assert_eq!(res.headers["content-type"], "text/html; charset=utf-8");
    assert!(html(res).contains(needle), "{needle} not in {}", html(res));
    let csp = res.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(res.headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn an_oauth_connect_with_pkce_creates_an_active_connection_and_returns_the_user() {
    let f = setup().await;
    let token = f.token(json!({"tags": {"workspace": "w1"}})).await;
    let page = f.get(&format!("/connect/{token}")).await;
    is_page(&page, 200, "Connect Airtable");
    assert!(html(&page).contains(&format!("action=\"/connect/{token}/{}/oauth\"", f.oauth)));
    // The configuration Airtable's endpoints need is asked before leaving, and checked.
    assert!(html(&page).contains("name=\"config.base_id\""));
    let res = f
        .get(&format!(
            "/connect/{token}/{}/oauth?config.base_id=nope",
            f.oauth
        ))
        .await;
    is_page(&res, 400, "does not have the expected format");
    // The key-based provider's form, from its spec's fields.
    assert!(html(&page).contains("name=\"credentials.api_key\""));
    assert!(html(&page).contains("type=\"password\""));

    let authorization = f.leave(&token).await;
    assert!(
        authorization
            .as_str()
            .starts_with(&format!("{}/oauth2/v1/authorize?", f.airtable.server.uri()))
    );
    let back = f.get(&f.approve(&authorization)).await;
    assert_eq!(back.status, 303, "{:?}", back.body);
    let location = Url::parse(back.headers["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(RETURN));
    let outcome: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(outcome["status"], "connected");

    let id = &outcome["connection_id"];
    let res = call(
        &f.d,
        as_tenant(Req::new("GET", &format!("/v1/connections/{id}")), &f.t),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "active");
    assert_eq!(res.body["provider"], "airtable");
    assert_eq!(res.body["end_user_id"], "user-7");
    assert_eq!(res.body["tags"], json!({"workspace": "w1"}));
    assert_eq!(res.body["config"]["base_id"], "appAAAABBBBCCCCDD");
    assert!(res.body["last_verified_at"].is_string());
    assert!(!res.body.to_string().contains("at-") && !res.body.to_string().contains("rt-"));
    let stored = &f.connections().await[0];
    assert!(stored.credentials.starts_with("v1.k1."));
    assert!(stored.token_expires_at_ms.is_some());
    // One token request, with the verifier and the same redirect URI.
    let calls = f.airtable.token_calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].contains("grant_type=authorization_code"));
    assert!(calls[0].contains("code_verifier="));

    // The link worked once.
    is_page(
        &f.get(&format!("/connect/{token}")).await,
        409,
        "already used",
    );
}

#[tokio::test]
async fn a_bad_state_a_replayed_callback_and_a_code_used_twice_create_nothing() {
    let f = setup().await;
    let token = f.token(json!({})).await;
    let authorization = f.leave(&token).await;
    let approved = f.approve(&authorization);
    let code = Url::parse(&format!("https://x{approved}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();

    // Missing, malformed and unknown (mismatched) states.
    for bad in [
        callback(&[("code", &code)]),
        callback(&[("code", &code), ("state", "nope")]),
        callback(&[
            ("code", &code),
            ("state", &tributary_core::connect::new_token("st_")),
        ]),
    ] {
        is_page(&f.get(&bad).await, 400, "cannot be completed");
    }
    assert!(f.airtable.token_calls.lock().unwrap().is_empty());

    // The real one works once; replayed, the state is gone.
    assert_eq!(f.get(&approved).await.status, 303);
    is_page(&f.get(&approved).await, 400, "cannot be completed");
    assert_eq!(f.connections().await.len(), 1);

    // A new session whose flow presents an already used code: the provider refuses it.
    let other = f.token(json!({})).await;
    let authorization = f.leave(&other).await;
    let state = authorization
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let res = f
        .get(&callback(&[("code", &code), ("state", &state)]))
        .await;
    is_page(&res, 502, "Nothing was saved");
    assert_eq!(f.connections().await.len(), 1);
    // And the flow is spent: the same state cannot be tried again.
    is_page(
        &f.get(&callback(&[("code", "code-x"), ("state", &state)]))
            .await,
        400,
        "cannot be completed",
    );
}

#[tokio::test]
async fn an_expired_flow_an_expired_link_and_a_denial_are_clear_pages_and_save_nothing() {
    let f = setup().await;
    let token = f.token(json!({})).await;
    let authorization = f.leave(&token).await;
    let approved = f.approve(&authorization);
    // Back after the flow's 10 minutes.
    f.d.clock.advance(tributary_core::connect::FLOW_TTL_MS);
    is_page(&f.get(&approved).await, 400, "cannot be completed");

    // Declined at the provider.
    let authorization = f.leave(&token).await;
    let state = authorization
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let res = f
        .get(&callback(&[("error", "access_denied"), ("state", &state)]))
        .await;
    is_page(&res, 403, "declined");
    assert!(html(&res).contains("status=denied"));

    // The link's 30 minutes are over.
    f.d.clock.advance(tributary_core::connect::SESSION_TTL_MS);
    is_page(&f.get(&format!("/connect/{token}")).await, 410, "expired");
    let start = format!(
        "/connect/{token}/{}/oauth?config.base_id=appAAAABBBBCCCCDD",
        f.oauth
    );
    assert_eq!(f.get(&start).await.status, 410);
    // An unknown link.
    is_page(
        &f.get(&format!(
            "/connect/{}",
            tributary_core::connect::new_token("cst_")
        ))
        .await,
        404,
        "not valid",
    );
    is_page(&f.get("/connect/not-a-token").await, 404, "not valid");
    assert!(f.connections().await.is_empty());
    assert!(f.airtable.token_calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn sessions_accept_only_allowlisted_return_urls_and_the_tenant_s_own_objects() {
    let f = setup().await;
    for (body, pointer) in [
        (
            json!({"end_user_id": "u", "integration_ids": [f.oauth], "return_url": "https://evil.example.com/"}),
            "/return_url",
        ),
        (
            json!({"end_user_id": "u", "integration_ids": [f.oauth], "return_url": format!("{RETURN}/")}),
            "/return_url",
        ),
        (
            json!({"end_user_id": "u", "integration_ids": [], "return_url": RETURN}),
            "/integration_ids",
        ),
        (
            json!({"end_user_id": "u", "integration_ids": [tributary_core::ids::IntegrationId::generate().to_string()], "return_url": RETURN}),
            "/integration_ids/0",
        ),
        (
            json!({"end_user_id": "u", "integration_ids": [f.oauth], "return_url": RETURN, "connection_id": ConnectionId::generate().to_string()}),
            "/connection_id",
        ),
    ] {
        let res = f.session(body.clone()).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{body}");
    }
    // Another tenant's integration is refused as an unknown one is.
    let other = tenant(&f.d.store, 100_000);
    let res = call(
        &f.d,
        as_tenant(Req::new("POST", "/v1/connect/sessions"), &other)
            .json(json!({"end_user_id": "u", "integration_ids": [f.oauth], "return_url": RETURN})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/integration_ids/0");
}

#[tokio::test]
async fn the_key_form_is_checked_verified_and_saved_and_shows_errors_without_the_secret() {
    let f = setup().await;
    let token = f.token(json!({})).await;
    let post = |body: &str| {
        let token = token.clone();
        let stripe = f.stripe.clone();
        let body = body.to_owned();
        let d = &f.d;
        async move {
            call(
                d,
                Req::new("POST", &format!("/connect/{token}/{stripe}"))
                    .raw(&body, "application/x-www-form-urlencoded"),
            )
            .await
        }
    };
    // Wrong format: the form again, with the error, without the value.
    let res = post("credentials.api_key=pk_live_nope").await;
    is_page(&res, 400, "does not have the expected format");
    assert!(!html(&res).contains("pk_live_nope"));
    // The provider refuses the key.
    let res = post("credentials.api_key=sk_test_revoked1").await;
    is_page(&res, 400, "did not accept");
    assert!(!html(&res).contains("sk_test_revoked1"));
    assert!(f.connections().await.is_empty());

    let res = post(&format!("credentials.api_key={GOOD_KEY}")).await;
    assert_eq!(res.status, 303, "{:?}", res.body);
    let location = res.headers["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{RETURN}?status=connected&connection_id=conn_")));
    let made = f.connections().await;
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].provider, "stripe");
    assert_eq!(made[0].status, ConnectionStatus::Active);
    // Once only.
    is_page(
        &post(&format!("credentials.api_key={GOOD_KEY}")).await,
        409,
        "already used",
    );
    assert_eq!(f.connections().await.len(), 1);
}

#[tokio::test]
async fn a_reconnect_updates_the_connection_in_place_keeping_its_id() {
    let f = setup().await;
    let token = f.token(json!({})).await;
    let back = f.get(&f.approve(&f.leave(&token).await)).await;
    assert_eq!(back.status, 303);
    let first = f.connections().await.remove(0);
    // It went bad at the provider.
    let mut bad = first.clone();
    bad.status = ConnectionStatus::NeedsReauth;
    bad.version += 1;
    assert!(
        f.d.store
            .update_connection(&bad, first.version, None)
            .await
            .unwrap()
    );

    let token = f
        .token(json!({"integration_ids": [f.oauth], "connection_id": first.id.to_string()}))
        .await;
    let back = f.get(&f.approve(&f.leave(&token).await)).await;
    assert_eq!(back.status, 303, "{:?}", back.body);
    assert!(
        back.headers["location"]
            .to_str()
            .unwrap()
            .contains(first.id.as_str())
    );
    let now = f.connections().await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].id, first.id);
    assert_eq!(now[0].status, ConnectionStatus::Active);
    assert_ne!(now[0].credentials, first.credentials);
    let kinds: Vec<ConnectionEventType> =
        f.d.store
            .list_connection_events(
                &f.t,
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.kind)
            .collect();
    assert_eq!(
        kinds,
        [
            ConnectionEventType::Created,
            ConnectionEventType::Reauthorized
        ]
    );
    // Both are connection changes in the operations log.
    let changes: Vec<(String, Option<String>)> =
        f.d.store
            .operations()
            .into_iter()
            .filter(|o| o.kind == tributary_core::operation::OperationKind::ConnectionChange)
            .map(|o| {
                (
                    o.name.unwrap_or_default(),
                    o.connection_id.map(|c| c.to_string()),
                )
            })
            .collect();
    let id = Some(first.id.to_string());
    assert_eq!(
        changes,
        [
            ("connect".to_owned(), id.clone()),
            ("reconnect".to_owned(), id)
        ]
    );
}

#[tokio::test]
async fn mailchimp_s_data_center_is_read_after_the_exchange_not_asked() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(wiremock::matchers::body_string_contains("code=mc-code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-mailchimp", "expires_in": 0, "scope": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/oauth2/metadata"))
        .and(header("authorization", "OAuth at-mailchimp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "dc": "us19", "role": "owner", "accountname": "Acme",
            "api_endpoint": "https://us19.api.mailchimp.com"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/3.0/ping"))
        .and(header("authorization", "Bearer at-mailchimp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "health_status": "Everything's Chimpy!"
        })))
        .mount(&server)
        .await;
    let mut settings = crate::testing::config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
    settings
        .provider_origins
        .insert("mailchimp".into(), server.uri());
    let d = deps_with(store, Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({
            "provider": "mailchimp", "auth_mode": "oauth2_authorization_code",
            "oauth_client_id": "mc-client", "oauth_client_secret": "mc-secret",
            "return_urls": [RETURN]
        })),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let integration = res.body["id"].as_str().unwrap().to_owned();
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/connect/sessions"), &t).json(json!({
            "end_user_id": "u-9", "integration_ids": [integration], "return_url": RETURN
        })),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let token = res.body["token"].as_str().unwrap().to_owned();
    let page = call(&d, Req::new("GET", &format!("/connect/{token}"))).await;
    is_page(&page, 200, "Connect Mailchimp");
    assert!(
        !html(&page).contains("name=\"config.dc\""),
        "the data center is not asked"
    );
    let res = call(
        &d,
        Req::new("GET", &format!("/connect/{token}/{integration}/oauth")),
    )
    .await;
    assert_eq!(res.status, 303, "{:?}", res.body);
    let authorization = Url::parse(res.headers["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> =
        authorization.query_pairs().into_owned().collect();
    let back = call(
        &d,
        Req::new(
            "GET",
            &callback(&[("code", "mc-code"), ("state", &q["state"])]),
        ),
    )
    .await;
    assert_eq!(back.status, 303, "{:?}", back.body);
    let location = Url::parse(back.headers["location"].to_str().unwrap()).unwrap();
    let outcome: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(outcome["status"], "connected", "{location}");
    let res = call(
        &d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/connections/{}", outcome["connection_id"]),
            ),
            &t,
        ),
    )
    .await;
    assert_eq!(res.body["config"]["dc"], "us19");
    assert_eq!(res.body["status"], "active");
    assert!(
        res.body["last_verified_at"].is_string(),
        "verified on the account's data center"
    );
}
