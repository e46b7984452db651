//! End to end through the local stack: a tenant registers its OIDC issuer (a local identity provider
//! publishing discovery and JWKS on loopback, which the local stack's egress allowlist opens), and
//! tokens from it authenticate through API Gateway's authorizer — valid ones with their scopes, forged
//! and expired ones denied.
//!
//! Needs the function binaries in `target/debug` (`make build`) and moto (`make tools`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::sign;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tributary_tests::{Stack, StackOptions, stack_logs};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RSA_DER: &[u8] = include_bytes!("../../functions/auth/tests/fixtures/rsa_private.der");
const RSA_OTHER_DER: &[u8] =
    include_bytes!("../../functions/auth/tests/fixtures/rsa_other_private.der");
const AUDIENCE: &str = "tributary-e2e";

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

fn token(issuer: &str, key: &[u8], exp_offset: i64) -> String {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time");
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"});
    let claims = json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "user-42", "iat": now,
        "exp": now + exp_offset, "scope": "openid keys:read records:read",
    });
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let signature = sign(
        message.as_bytes(),
        &EncodingKey::from_rsa_der(key),
        Algorithm::RS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

async fn identity_provider() -> MockServer {
    let server = MockServer::start().await;
    let url = server.uri();
    let mut jwk =
        Jwk::from_encoding_key(&EncodingKey::from_rsa_der(RSA_DER), Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("rsa-1".into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": url, "jwks_uri": format!("{url}/jwks")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk]})))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_registered_issuer_authenticate_with_their_scopes() {
    let idp = identity_provider().await;
    let stack = Stack::start(StackOptions {
        schedule_every: Some(Duration::from_secs(60)),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let http = tributary_http::tls::reqwest_builder()
        .timeout(Duration::from_secs(35))
        .build()
        .expect("client");
    let api = stack.api_url().to_owned();
    let admin = stack.admin_key().to_owned();

    // Arrange: a tenant, a key that may register issuers, and the issuer.
    let tenant: Value = http
        .post(format!("{api}/v1/tenants"))
        .bearer_auth(&admin)
        .json(&json!({"name": "jwt"}))
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    let key: Value = http
        .post(format!("{api}/v1/tenants/{tenant_id}/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "idp-admin", "scopes": ["keys:write", "keys:read", "records:read"]}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let key = key["secret"].as_str().expect("secret").to_owned();
    let registered = http
        .post(format!("{api}/v1/oidc-issuers"))
        .bearer_auth(&key)
        .json(&json!({"issuer": idp.uri(), "audience": AUDIENCE, "allowed_scopes": ["records:read", "keys:read"]}))
        .send()
        .await
        .expect("issuer");
    assert_eq!(registered.status(), 201);

    // Act and assert: a valid token is the tenant's caller with the scopes this deployment knows.
    let me = http
        .get(format!("{api}/v1/me"))
        .bearer_auth(token(&idp.uri(), RSA_DER, 300))
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200, "{}", stack_logs(&stack));
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["principal"], "jwt:user-42");
    assert_eq!(me["tenant_id"], tenant_id.as_str());
    assert_eq!(me["scopes"], json!(["records:read", "keys:read"]));

    // A token signed by another key, and an expired one, are denied by the authorizer.
    for (what, bad) in [
        ("forged", token(&idp.uri(), RSA_OTHER_DER, 300)),
        ("expired", token(&idp.uri(), RSA_DER, -600)),
    ] {
        let response = http
            .get(format!("{api}/v1/me"))
            .bearer_auth(bad)
            .send()
            .await
            .expect("me");
        assert_eq!(response.status(), 403, "{what} token must be denied");
    }
}
