//! The REQUEST authorizer (HTTP API payload 2.0, simple responses).
//!
//! It reads the event as untyped JSON so that no input, however malformed, makes it fail: bad input is
//! denied. Only an infrastructure failure (the secret store or the control table not answering) is an
//! error, which API Gateway turns into a 500 rather than a misleading 403.
//!
//! The credential's shape picks the check: `trb_live_…` is a tenant API key, three base64url segments
//! a JWT, anything else is compared with the deployment admin key — which is read from the secret
//! store only then, as the read costs money and latency.

use std::collections::HashMap;
use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use tributary_core::auth::{Principal, bearer_token, secrets_equal};
use tributary_core::ports::{CredentialStore, SecretSource, TenantStore};
use tributary_core::time::Clock;

use crate::apikey;
use crate::denial::{Denial, Verdict};
use crate::jwks::FetchJson;
use crate::jwt::{JwtVerifier, looks_like_jwt};

/// What the handler needs.
pub struct Deps<S, D, F> {
    /// Platform secrets.
    pub secrets: S,
    /// The admin API key's secret id.
    pub admin_key_secret_id: String,
    /// Tenants, API keys and registered issuers.
    pub store: D,
    /// JWT verification with the issuers' cached keys.
    pub jwt: JwtVerifier<F>,
    /// The time credentials are checked at.
    pub clock: Arc<dyn Clock>,
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
    /// Refuses the request.
    pub fn deny() -> Self {
        Self {
            is_authorized: false,
            context: HashMap::new(),
        }
    }

    /// Lets the request through as `principal`.
    pub fn allow(principal: &Principal) -> Self {
        Self {
            is_authorized: true,
            context: principal.to_context(),
        }
    }

    fn from_verdict(verdict: &Verdict) -> Self {
        verdict.as_ref().map_or_else(|_| Self::deny(), Self::allow)
    }
}

/// Longest credential we look at; anything longer is denied without work. JWTs of identity providers
/// with many claims run to a few kilobytes.
pub const MAX_CREDENTIAL_LEN: usize = 8192;

/// Authorizes one request, and counts the outcome (`Authorizations` by `Outcome`).
#[tracing::instrument(skip_all, fields(route = tracing::field::Empty))]
pub async fn handle<S, D, F>(
    deps: &Deps<S, D, F>,
    event: LambdaEvent<Value>,
) -> Result<SimpleResponse, lambda_runtime::Error>
where
    S: SecretSource,
    D: TenantStore + CredentialStore,
    F: FetchJson,
{
    let answer = decide(deps, event).await;
    tributary_aws::metrics::authorization(match &answer {
        Ok(r) if r.is_authorized => "allowed",
        Ok(_) => "denied",
        Err(_) => "error",
    });
    answer
}

async fn decide<S, D, F>(
    deps: &Deps<S, D, F>,
    event: LambdaEvent<Value>,
) -> Result<SimpleResponse, lambda_runtime::Error>
where
    S: SecretSource,
    D: TenantStore + CredentialStore,
    F: FetchJson,
{
    let event = event.payload;
    if let Some(route) = event.get("routeKey").and_then(Value::as_str) {
        tracing::Span::current().record("route", route);
    }
    let Some(token) = authorization_header(&event).and_then(bearer_token) else {
        tracing::info!(reason = %Denial::NoCredential, "denied");
        return Ok(SimpleResponse::deny());
    };
    if token.len() > MAX_CREDENTIAL_LEN {
        tracing::info!(reason = %Denial::TooLong, "denied");
        return Ok(SimpleResponse::deny());
    }
    let now = deps.clock.now_ms();
    let verdict = if apikey::looks_like_key(token) {
        apikey::authorize(&deps.store, now, token).await?
    } else if looks_like_jwt(token) {
        deps.jwt.authorize(&deps.store, now, token).await?
    } else {
        admin_key(deps, token).await?
    };
    Ok(SimpleResponse::from_verdict(&verdict))
}

async fn admin_key<S, D, F>(
    deps: &Deps<S, D, F>,
    token: &str,
) -> Result<Verdict, lambda_runtime::Error>
where
    S: SecretSource,
{
    let admin_key = deps.secrets.secret(&deps.admin_key_secret_id).await?;
    if secrets_equal(token.as_bytes(), admin_key.expose_secret().as_bytes()) {
        let principal = Principal::deployment_admin();
        tracing::info!(principal = %principal.principal, "allowed");
        return Ok(Ok(principal));
    }
    tracing::info!(reason = %Denial::Unknown, "denied");
    Ok(Err(Denial::Unknown))
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

    #[test]
    fn simple_response_serializes_as_api_gateway_expects() {
        let json = serde_json::to_value(SimpleResponse::deny()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"isAuthorized": false, "context": {}})
        );
    }

    #[test]
    fn authorization_header_is_found_in_any_case_and_only_as_text() {
        let event = serde_json::json!({"headers": {"Authorization": "Bearer x"}});
        assert_eq!(authorization_header(&event), Some("Bearer x"));
        let event = serde_json::json!({"headers": {"authorization": ["Bearer x"]}});
        assert_eq!(authorization_header(&event), None);
    }
}
