//! A slow issuer through the real guarded client and the authorizer's default settings: discovery
//! and JWKS fetches, retries included, end within one `FETCH_DEADLINE`, inside the Lambda timeout.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{NOW, Seed as _, World};
use tributary_auth::denial::Denial;
use tributary_auth::jwks::FETCH_DEADLINE;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AUDIENCE: &str = "tributary-api";
const SLOW: Duration = Duration::from_millis(2500);

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// Keys are looked up before the signature is checked, so any signature reaches the issuer.
fn token(iss: &str) -> String {
    let now = NOW / 1000;
    let header = json!({"alg": "RS256", "kid": "rsa-1"});
    let claims = json!({"iss": iss, "aud": AUDIENCE, "sub": "u", "exp": now + 300});
    format!("{}.{}.c2ln", b64(&header), b64(&claims))
}

#[tokio::test]
async fn a_slow_issuer_cannot_hold_an_authorization_past_the_fetch_deadline() {
    // Every answer takes 2.5 s (under the 3 s request timeout, so each one counts), and the JWKS
    // fails once, so the client retries: 2.5 + 2.5 + backoff + 2.5 s, past both the deadline and
    // the 10 s Lambda timeout less the store's share.
    let server = MockServer::start().await;
    let url = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}))
                .set_delay(SLOW),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(503).set_delay(SLOW))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"keys": []}))
                .set_delay(SLOW),
        )
        .mount(&server)
        .await;
    let world = World::new(&["127.0.0.1"]);
    let tenant = world.store().add_tenant();
    world.store().add_issuer(&tenant, &url, AUDIENCE, "scope");
    let started = Instant::now();

    let verdict = world
        .deps
        .jwt
        .authorize(&world.deps.store, NOW, &token(&url))
        .await
        .unwrap();

    let elapsed = started.elapsed();
    assert!(
        elapsed < FETCH_DEADLINE + Duration::from_millis(500),
        "the fetch chain took {elapsed:?}"
    );
    assert!(
        matches!(&verdict, Err(Denial::KeysUnavailable(m)) if m.contains("deadline")),
        "{verdict:?}"
    );
}
