//! The JWT corpus: tokens of a local OIDC issuer (a wiremock server publishing discovery and JWKS)
//! through the whole handler. Only the valid RS256 and ES256 tokens pass, and the handler denies —
//! never fails — everything else.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::sign;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use support::{NOW, Seed as _, World};
use tributary_auth::denial::Denial;
use tributary_core::ids::TenantId;
use tributary_core::time::Clock;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RSA_DER: &[u8] = include_bytes!("fixtures/rsa_private.der");
const RSA_OTHER_DER: &[u8] = include_bytes!("fixtures/rsa_other_private.der");
const EC_DER: &[u8] = include_bytes!("fixtures/ec_private.der");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("fixtures/rsa_public.pem");

const AUDIENCE: &str = "tributary-api";
const JWKS_PATH: &str = "/jwks";

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_DER)
}

fn rsa_other() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_OTHER_DER)
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_der(EC_DER)
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_value(jwk).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A compact JWS over `header` and `claims`, signed with `key` under `alg`.
fn jws(header: Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(&header), b64(claims));
    let signature = sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// A local issuer publishing discovery and a JWKS with `rsa-1` (RS256) and `ec-1` (ES256).
async fn start_issuer() -> MockServer {
    let server = MockServer::start().await;
    let url = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": url,
            "jwks_uri": format!("{url}{JWKS_PATH}"),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            public_jwk(&rsa(), Algorithm::RS256, "rsa-1"),
            public_jwk(&ec(), Algorithm::ES256, "ec-1"),
        ]})))
        .mount(&server)
        .await;
    server
}

struct Setup {
    world: World,
    issuer: MockServer,
    tenant: TenantId,
}

impl Setup {
    async fn new() -> Self {
        let issuer = start_issuer().await;
        let world = World::new(&["127.0.0.1"]);
        let tenant = world.store().add_tenant();
        world
            .store()
            .add_issuer(&tenant, &issuer.uri(), AUDIENCE, "scope");
        Self {
            world,
            issuer,
            tenant,
        }
    }

    fn claims(&self) -> Value {
        let now = NOW / 1000;
        json!({
            "iss": self.issuer.uri(),
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "scope": "openid connections:read records:read admin",
        })
    }

    fn rs256(&self, claims: &Value) -> String {
        jws(
            json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}),
            claims,
            &rsa(),
            Algorithm::RS256,
        )
    }

    async fn allowed(&self, token: &str) -> bool {
        self.world
            .authorize(Some(&format!("Bearer {token}")))
            .await
            .is_authorized
    }

    /// Asserts the handler denies `token` and returns the verifier's reason.
    async fn denial(&self, token: &str) -> Denial {
        assert!(!self.allowed(token).await, "{token:.60} should be denied");
        let deps = &self.world.deps;
        deps.jwt
            .authorize(&deps.store, self.world.clock.now_ms(), token)
            .await
            .expect("the verifier must deny, not fail")
            .expect_err("the verifier must deny")
    }

    async fn requests_to(&self, server: &MockServer, p: &str) -> usize {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }
}

#[tokio::test]
async fn valid_rs256_token_is_allowed_with_tenant_subject_and_known_scopes() {
    let s = Setup::new().await;
    let token = s.rs256(&s.claims());

    let out = s.world.authorize(Some(&format!("Bearer {token}"))).await;

    assert!(out.is_authorized);
    assert_eq!(out.context["principal"], "jwt:user-1");
    assert_eq!(out.context["tenant_id"], s.tenant.to_string());
    // `openid` is unknown and `admin` is never granted by a token.
    assert_eq!(out.context["scopes"], "connections:read records:read");
}

#[tokio::test]
async fn valid_es256_token_is_allowed() {
    let s = Setup::new().await;
    let mut claims = s.claims();
    claims["aud"] = json!(["something-else", AUDIENCE]);
    let token = jws(
        json!({"alg": "ES256", "kid": "ec-1"}),
        &claims,
        &ec(),
        Algorithm::ES256,
    );
    assert!(s.allowed(&token).await);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_denied() {
    let s = Setup::new().await;
    let now = NOW / 1000;
    let mut expired = s.claims();
    expired["exp"] = json!(now - 120);
    let mut early = s.claims();
    early["nbf"] = json!(now + 300);
    early["exp"] = json!(now + 600);
    let mut future_iat = s.claims();
    future_iat["iat"] = json!(now + 300);

    assert_eq!(s.denial(&s.rs256(&expired)).await, Denial::Expired);
    assert_eq!(s.denial(&s.rs256(&early)).await, Denial::NotYetValid);
    assert_eq!(
        s.denial(&s.rs256(&future_iat)).await,
        Denial::IssuedInFuture
    );
    // Within the leeway the token still passes.
    let mut just_expired = s.claims();
    just_expired["exp"] = json!(now - 30);
    assert!(s.allowed(&s.rs256(&just_expired)).await);
}

#[tokio::test]
async fn wrong_issuer_and_wrong_audience_are_denied() {
    let s = Setup::new().await;
    let mut trailing_slash = s.claims();
    trailing_slash["iss"] = json!(format!("{}/", s.issuer.uri()));
    let mut other_issuer = s.claims();
    other_issuer["iss"] = json!("https://accounts.example.com");
    let mut wrong_aud = s.claims();
    wrong_aud["aud"] = json!("another-api");
    let mut no_aud = s.claims();
    no_aud.as_object_mut().unwrap().remove("aud");

    for (claims, reason) in [
        (trailing_slash, Denial::IssuerNotRegistered),
        (other_issuer, Denial::IssuerNotRegistered),
        (wrong_aud, Denial::IssuerNotRegistered),
        (no_aud, Denial::MissingClaim("aud")),
    ] {
        assert_eq!(s.denial(&s.rs256(&claims)).await, reason, "{claims}");
    }
}

#[tokio::test]
async fn unregistered_issuer_is_denied_without_being_contacted() {
    let s = Setup::new().await;
    let stranger = start_issuer().await;
    let mut claims = s.claims();
    claims["iss"] = json!(stranger.uri());

    assert_eq!(
        s.denial(&s.rs256(&claims)).await,
        Denial::IssuerNotRegistered
    );
    assert!(
        stranger
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_minute() {
    let s = Setup::new().await;
    assert!(s.allowed(&s.rs256(&s.claims())).await);
    assert_eq!(s.requests_to(&s.issuer, JWKS_PATH).await, 1);

    let garbage_kid = |i: usize| {
        jws(
            json!({"alg": "RS256", "kid": format!("garbage-{i}")}),
            &s.claims(),
            &rsa(),
            Algorithm::RS256,
        )
    };
    for i in 0..20 {
        assert_eq!(s.denial(&garbage_kid(i)).await, Denial::UnknownKid);
    }
    assert_eq!(s.requests_to(&s.issuer, JWKS_PATH).await, 1);

    s.world.clock.advance(61_000);
    for i in 20..40 {
        assert_eq!(s.denial(&garbage_kid(i)).await, Denial::UnknownKid);
    }
    assert_eq!(s.requests_to(&s.issuer, JWKS_PATH).await, 2);
    assert_eq!(
        s.requests_to(&s.issuer, "/.well-known/openid-configuration")
            .await,
        1
    );
}

#[tokio::test]
async fn a_rotated_in_key_is_found_by_the_bounded_refetch() {
    let s = Setup::new().await;
    assert!(s.allowed(&s.rs256(&s.claims())).await);
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [
            public_jwk(&rsa(), Algorithm::RS256, "rsa-1"),
            public_jwk(&rsa_other(), Algorithm::RS256, "rsa-2"),
        ]})))
        .with_priority(1)
        .mount(&s.issuer)
        .await;
    let rotated_early = jws(
        json!({"alg": "RS256", "kid": "rsa-2"}),
        &s.claims(),
        &rsa_other(),
        Algorithm::RS256,
    );
    // Within the minute after the last fetch the new kid is not looked for yet.
    assert_eq!(s.denial(&rotated_early).await, Denial::UnknownKid);
    s.world.clock.advance(61_000);
    let rotated = jws(
        json!({"alg": "RS256", "kid": "rsa-2"}),
        &s.claims(),
        &rsa_other(),
        Algorithm::RS256,
    );
    assert!(s.allowed(&rotated).await);
}

#[tokio::test]
async fn unsigned_and_key_confusion_tokens_are_denied() {
    let s = Setup::new().await;
    let claims = s.claims();
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "rsa-1"})),
        b64(&claims)
    );
    let hs256_with_public_key = jws(
        json!({"alg": "HS256", "kid": "rsa-1"}),
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM),
        Algorithm::HS256,
    );
    let es256_header_on_rsa_kid = jws(
        json!({"alg": "ES256", "kid": "rsa-1"}),
        &claims,
        &ec(),
        Algorithm::ES256,
    );
    let signed_by_another_key = jws(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        &claims,
        &rsa_other(),
        Algorithm::RS256,
    );
    assert_eq!(s.denial(&none).await, Denial::AlgorithmNotAllowed);
    assert_eq!(
        s.denial(&hs256_with_public_key).await,
        Denial::AlgorithmNotAllowed
    );
    assert_eq!(
        s.denial(&es256_header_on_rsa_kid).await,
        Denial::KeyMismatch
    );
    assert_eq!(s.denial(&signed_by_another_key).await, Denial::BadSignature);
}

#[tokio::test]
async fn tampered_payload_is_denied() {
    let s = Setup::new().await;
    let token = s.rs256(&s.claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = s.claims();
    claims["sub"] = json!("someone-else");
    parts[1] = b64(&claims);

    assert_eq!(s.denial(&parts.join(".")).await, Denial::BadSignature);
}

#[tokio::test]
async fn tokens_naming_or_embedding_their_own_keys_are_denied_without_fetching_them() {
    let s = Setup::new().await;
    let attacker = start_issuer().await;
    let attacker_jwks = format!("{}{JWKS_PATH}", attacker.uri());
    let embedded = public_jwk(&rsa_other(), Algorithm::RS256, "rsa-1");
    let headers = [
        json!({"alg": "RS256", "kid": "rsa-1", "jku": attacker_jwks}),
        json!({"alg": "RS256", "kid": "rsa-1", "x5u": format!("{}/cert.pem", attacker.uri())}),
        json!({"alg": "RS256", "kid": "rsa-1", "jwk": embedded}),
        json!({"alg": "RS256", "kid": "rsa-1", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    for (header, name) in headers.into_iter().zip(["jku", "x5u", "jwk", "x5c"]) {
        let token = jws(header.clone(), &s.claims(), &rsa_other(), Algorithm::RS256);
        assert_eq!(s.denial(&token).await, Denial::ForbiddenHeader(name));
        // Even signed with the registered key, such headers are refused.
        let token = jws(header, &s.claims(), &rsa(), Algorithm::RS256);
        assert_eq!(s.denial(&token).await, Denial::ForbiddenHeader(name));
    }
    assert!(
        attacker
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn garbage_is_denied_never_an_error() {
    let s = Setup::new().await;
    let valid = s.rs256(&s.claims());
    let cut = &valid[..valid.len() - 10];
    for token in [
        "a.b.c",
        "..",
        "eyJ.eyJ.eyJ",
        "e30.e30.e30",
        "bnVsbA.bnVsbA.bnVsbA",
        "W10.W10.",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.x",
        cut,
        &valid.replace('.', ".."),
        "\u{0}\u{1}\u{2}",
        "Bearer",
    ] {
        assert!(!s.allowed(token).await, "{token:.60}");
    }
}

#[tokio::test]
async fn disabled_tenant_is_denied() {
    let s = Setup::new().await;
    s.world.store().disable(&s.tenant);
    assert_eq!(
        s.denial(&s.rs256(&s.claims())).await,
        Denial::TenantDisabled
    );
}

#[tokio::test]
async fn an_issuer_that_is_down_means_denial_not_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let world = World::new(&["127.0.0.1"]);
    let tenant = world.store().add_tenant();
    world
        .store()
        .add_issuer(&tenant, &server.uri(), AUDIENCE, "scope");
    let now = NOW / 1000;
    let claims = json!({"iss": server.uri(), "aud": AUDIENCE, "sub": "u", "exp": now + 300});
    let token = jws(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        &claims,
        &rsa(),
        Algorithm::RS256,
    );

    for _ in 0..5 {
        let out = world.authorize(Some(&format!("Bearer {token}"))).await;
        assert!(!out.is_authorized);
    }
    // Two attempts by the client's retry on the first token, then the refetch interval holds.
    let hits = server.received_requests().await.unwrap_or_default().len();
    assert!((1..=2).contains(&hits), "{hits} requests to a down issuer");
    let deps = &world.deps;
    let verdict = deps
        .jwt
        .authorize(&deps.store, world.clock.now_ms(), &token)
        .await
        .unwrap();
    assert!(
        matches!(verdict, Err(Denial::KeysUnavailable(_))),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_public_issuer_over_plain_http_is_refused() {
    let s = Setup::new().await;
    // Without the allowlist, the loopback issuer is neither https nor opened: no fetch, denial.
    let world = World::new(&[]);
    world.store().add_issuer(
        &world.store().add_tenant(),
        &s.issuer.uri(),
        AUDIENCE,
        "scope",
    );
    let out = world
        .authorize(Some(&format!("Bearer {}", s.rs256(&s.claims()))))
        .await;
    assert!(!out.is_authorized);
    assert_eq!(s.requests_to(&s.issuer, JWKS_PATH).await, 0);
}

#[tokio::test]
async fn a_token_holds_only_the_scopes_its_registration_allows_and_its_expiry_travels() {
    use tributary_core::scope::Scope;
    let issuer = start_issuer().await;
    let world = World::new(&["127.0.0.1"]);
    let tenant = world.store().add_tenant();
    let registration_expiry = NOW + 120_000;
    world.store().add_issuer_allowing(
        &tenant,
        &issuer.uri(),
        AUDIENCE,
        "scope",
        vec![Scope::RecordsRead, Scope::SyncsRead],
        Some(registration_expiry),
    );
    let now = NOW / 1000;
    let claims = json!({
        "iss": issuer.uri(), "aud": AUDIENCE, "sub": "ci", "exp": now + 60,
        "scope": "connections:write records:read keys:write admin",
    });
    let token = jws(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        &claims,
        &rsa(),
        Algorithm::RS256,
    );
    let out = world.authorize(Some(&format!("Bearer {token}"))).await;
    assert!(out.is_authorized);
    // The token claims four scopes; its registration allows two, of which it claims one.
    assert_eq!(out.context["scopes"], "records:read");
    // exp + leeway (60 s), as it is earlier than the registration's expiry.
    assert_eq!(
        out.context["expires_at_ms"],
        ((now + 60 + 60) * 1000).to_string()
    );

    // A token outliving its registration is accepted only until the registration's expiry.
    let long = json!({"iss": issuer.uri(), "aud": AUDIENCE, "sub": "ci", "exp": now + 3600, "scope": "records:read"});
    let token = jws(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        &long,
        &rsa(),
        Algorithm::RS256,
    );
    let out = world.authorize(Some(&format!("Bearer {token}"))).await;
    assert_eq!(
        out.context["expires_at_ms"],
        registration_expiry.to_string()
    );
    // Past the registration's expiry, its tokens are refused.
    world.clock.advance(120_000);
    assert!(
        !world
            .authorize(Some(&format!("Bearer {token}")))
            .await
            .is_authorized
    );
}

/// The leeway today: `exp`, `nbf` and `iat` are compared in whole seconds (the clock's milliseconds
/// truncated), inclusively, with 60 s of skew either way.
const LEEWAY_S: i64 = 60;

#[test]
fn the_leeway_is_sixty_seconds() {
    assert_eq!(
        tributary_auth::jwt::LEEWAY,
        std::time::Duration::from_secs(60)
    );
}

#[tokio::test]
async fn exp_is_accepted_until_exactly_the_leeway_has_passed() {
    let s = Setup::new().await;
    let now = NOW / 1000;
    let expiring_at = |exp: i64| {
        let mut claims = s.claims();
        claims["exp"] = json!(exp);
        s.rs256(&claims)
    };

    assert!(s.allowed(&expiring_at(now - LEEWAY_S)).await);
    assert_eq!(
        s.denial(&expiring_at(now - LEEWAY_S - 1)).await,
        Denial::Expired
    );

    // Milliseconds of the clock do not count: 999 ms later the same second is still in.
    s.world.clock.advance(999);
    assert!(s.allowed(&expiring_at(now - LEEWAY_S)).await);
    s.world.clock.advance(1);
    assert_eq!(
        s.denial(&expiring_at(now - LEEWAY_S)).await,
        Denial::Expired
    );
}

#[tokio::test]
async fn nbf_is_accepted_up_to_exactly_the_leeway_ahead() {
    let s = Setup::new().await;
    let now = NOW / 1000;
    let valid_from = |nbf: i64| {
        let mut claims = s.claims();
        claims["nbf"] = json!(nbf);
        s.rs256(&claims)
    };

    assert!(s.allowed(&valid_from(now + LEEWAY_S)).await);
    assert_eq!(
        s.denial(&valid_from(now + LEEWAY_S + 1)).await,
        Denial::NotYetValid
    );
}

#[tokio::test]
async fn iat_is_accepted_up_to_exactly_the_leeway_ahead() {
    let s = Setup::new().await;
    let now = NOW / 1000;
    let issued_at = |iat: i64| {
        let mut claims = s.claims();
        claims["iat"] = json!(iat);
        s.rs256(&claims)
    };

    assert!(s.allowed(&issued_at(now + LEEWAY_S)).await);
    assert_eq!(
        s.denial(&issued_at(now + LEEWAY_S + 1)).await,
        Denial::IssuedInFuture
    );
}
