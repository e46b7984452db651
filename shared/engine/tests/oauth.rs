//! Token requests against a local mock of a token endpoint: success, a refused grant on 400 (read,
//! not retried), a server error (not retried: the grant may have been spent) and a rate limit.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tributary_engine::oauth::{
    ClientApp, Grant, OAuthError, TokenEndpoint, request_token, token_request,
};
use tributary_engine::spec::{OAuth2AuthorizationCode, TokenResponseFields};
use tributary_engine::{EgressPolicy, HttpClient, HttpConfig};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn http() -> HttpClient {
    HttpClient::new(HttpConfig {
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        max_inline_wait: Duration::from_secs(5),
        ..HttpConfig::default()
    })
    .unwrap()
}

fn spec(server: &MockServer) -> OAuth2AuthorizationCode {
    serde_norway::from_str(&format!(
        "authorization_url: {uri}/authorize\ntoken_url: {uri}/token\nrefresh_token_rotates: true\n",
        uri = server.uri()
    ))
    .unwrap()
}

fn app() -> ClientApp {
    ClientApp {
        client_id: "cid".into(),
        client_secret: SecretString::from("secret".to_owned()),
    }
}

async fn refresh(server: &MockServer) -> Result<tributary_engine::oauth::TokenSet, OAuthError> {
    let spec = spec(server);
    let stored = SecretString::from("r-old".to_owned());
    let request = token_request(
        &TokenEndpoint::from(&spec),
        &BTreeMap::new(),
        &app(),
        &Grant::RefreshToken {
            refresh_token: &stored,
        },
    )
    .unwrap();
    request_token(
        &http(),
        &request,
        &TokenResponseFields::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .map(|t| t.keeping_refresh_token(Some(&stored)))
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_refresh_returns_the_rotated_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=r-old"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "a-new", "refresh_token": "r-new", "expires_in": 3600, "token_type": "Bearer"
        })))
        .mount(&server)
        .await;
    let tokens = refresh(&server).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "a-new");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "r-new");
    assert!(tokens.expires_at.is_some());
}

#[tokio::test]
async fn invalid_grant_is_read_once_and_definitive() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant", "error_description": "Token has been expired or revoked."
        })))
        .mount(&server)
        .await;
    let err = refresh(&server).await.unwrap_err();
    assert!(
        matches!(&err, OAuthError::Refused { code, status: 400, .. } if code == "invalid_grant"),
        "{err:?}"
    );
    assert!(err.is_definitive());
    assert!(!err.to_string().contains("r-old"));
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test]
async fn a_server_error_is_not_retried_because_the_grant_may_be_spent() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = refresh(&server).await.unwrap_err();
    assert!(matches!(err, OAuthError::Http(_)), "{err:?}");
    assert!(!err.is_definitive());
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_the_wait_the_provider_asked_for() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "a"})),
        )
        .mount(&server)
        .await;
    let tokens = refresh(&server).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "a");
    assert_eq!(
        tokens.refresh_token.unwrap().expose_secret(),
        "r-old",
        "none returned: the stored one stays"
    );
    assert_eq!(calls(&server).await, 2);
}
