//! The REQUEST authorizer (HTTP API payload 2.0, simple responses).
//!
//! It reads the event as untyped JSON so that no input, however malformed, makes it fail: bad input is
//! denied. Only an infrastructure failure (the secret store not answering) is an error, which API Gateway
//! turns into a 500 rather than a misleading 403.

use std::collections::HashMap;

use lambda_runtime::LambdaEvent;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use tributary_core::auth::{Principal, bearer_token, secrets_equal};
use tributary_core::ports::SecretSource;

/// What the handler needs.
pub struct Deps<S> {
    /// Platform secrets.
    pub secrets: S,
    /// The admin API key's secret id.
    pub admin_key_secret_id: String,
}

/// The simple response format of HTTP API Lambda authorizers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SimpleResponse {
    /// Whether API Gateway lets the request through.
    #[serde(rename = "isAuthorized")]
    pub is_authorized: bool,
    /// Passed to the integration as `requestContext.authorizer.lambda`.
    pub context: HashMap<&'static str, String>,
}

impl SimpleResponse {
    fn deny() -> Self {
        Self {
            is_authorized: false,
            context: HashMap::new(),
        }
    }

    fn allow(principal: &Principal) -> Self {
        Self {
            is_authorized: true,
            context: principal.to_context(),
        }
    }
}

/// Longest credential we look at; anything longer is denied without work.
const MAX_CREDENTIAL_LEN: usize = 4096;

/// Authorizes one request.
#[tracing::instrument(skip_all, fields(route = tracing::field::Empty))]
pub async fn handle<S: SecretSource>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<SimpleResponse, lambda_runtime::Error> {
    let event = event.payload;
    if let Some(route) = event.get("routeKey").and_then(Value::as_str) {
        tracing::Span::current().record("route", route);
    }
    let Some(token) = authorization_header(&event).and_then(bearer_token) else {
        tracing::info!(reason = "no bearer credential", "denied");
        return Ok(SimpleResponse::deny());
    };
    if token.len() > MAX_CREDENTIAL_LEN {
        tracing::info!(reason = "credential too long", "denied");
        return Ok(SimpleResponse::deny());
    }
    let admin_key = deps.secrets.secret(&deps.admin_key_secret_id).await?;
    if secrets_equal(token.as_bytes(), admin_key.expose_secret().as_bytes()) {
        let principal = Principal::deployment_admin();
        tracing::info!(principal = %principal.principal, "allowed");
        return Ok(SimpleResponse::allow(&principal));
    }
    tracing::info!(reason = "unknown credential", "denied");
    Ok(SimpleResponse::deny())
}

/// The `Authorization` header, whatever its case (payload 2.0 lowercases names, tools may not).
fn authorization_header(event: &Value) -> Option<&str> {
    event
        .get("headers")?
        .as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tributary_core::PortError;
    use tributary_core::error::Service;

    const KEY: &str = "k3y0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

    struct FakeSecrets {
        reads: AtomicUsize,
        down: bool,
    }
    impl SecretSource for FakeSecrets {
        async fn secret(&self, id: &str) -> Result<SecretString, PortError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            assert_eq!(id, "admin-secret");
            if self.down {
                return Err(PortError::Unavailable {
                    service: Service::Secrets,
                    operation: "GetSecretValue",
                    detail: "down".into(),
                });
            }
            Ok(SecretString::from(KEY))
        }
    }

    fn deps(down: bool) -> Deps<FakeSecrets> {
        Deps {
            secrets: FakeSecrets {
                reads: AtomicUsize::new(0),
                down,
            },
            admin_key_secret_id: "admin-secret".into(),
        }
    }

    fn fixture_with_authorization(value: Option<&str>) -> LambdaEvent<Value> {
        let mut event: Value =
            serde_json::from_str(include_str!("../events/authorizer-request.json")).unwrap();
        let headers = event["headers"].as_object_mut().unwrap();
        headers.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
        if let Some(v) = value {
            headers.insert("authorization".into(), Value::String(v.into()));
        }
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn when_admin_key_matches_should_allow_with_admin_context() {
        let out = handle(
            &deps(false),
            fixture_with_authorization(Some(&format!("Bearer {KEY}"))),
        )
        .await
        .unwrap();
        assert!(out.is_authorized);
        assert_eq!(out.context["principal"], "admin-key");
        assert_eq!(out.context["scopes"], "admin");
        assert_eq!(out.context["tenant_id"], "");
    }

    #[tokio::test]
    async fn when_credential_differs_should_deny() {
        for bad in [
            format!("Bearer {KEY}x"),
            format!("Bearer {}", &KEY[..KEY.len() - 1]),
            "Bearer wrong".to_owned(),
            format!("Basic {KEY}"),
            KEY.to_owned(),
            format!("Bearer {}", "a".repeat(10_000)),
        ] {
            let out = handle(&deps(false), fixture_with_authorization(Some(&bad)))
                .await
                .unwrap();
            assert!(!out.is_authorized, "{bad:.40} should be denied");
            assert!(out.context.is_empty());
        }
    }

    #[tokio::test]
    async fn when_header_is_missing_should_deny_without_reading_secrets() {
        let d = deps(false);
        let out = handle(&d, fixture_with_authorization(None)).await.unwrap();
        assert!(!out.is_authorized);
        assert_eq!(d.secrets.reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn when_event_is_garbage_should_deny_not_fail() {
        for garbage in [
            serde_json::json!(null),
            serde_json::json!("x"),
            serde_json::json!({"headers": "nope"}),
            serde_json::json!({"headers": {"authorization": 5}}),
            serde_json::json!([1, 2, 3]),
        ] {
            let out = handle(
                &deps(false),
                LambdaEvent::new(garbage, lambda_runtime::Context::default()),
            )
            .await
            .unwrap();
            assert!(!out.is_authorized);
        }
    }

    #[tokio::test]
    async fn when_secret_store_is_down_should_error_not_deny() {
        let result = handle(
            &deps(true),
            fixture_with_authorization(Some(&format!("Bearer {KEY}"))),
        )
        .await;
        assert!(result.is_err());
    }

    #[test]
    fn simple_response_serializes_as_api_gateway_expects() {
        let json = serde_json::to_value(SimpleResponse::deny()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"isAuthorized": false, "context": {}})
        );
    }
}
