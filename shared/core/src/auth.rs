//! Who is calling: the principal the authorizer established, carried to the API function in the
//! authorizer context, and the constant-time comparison credentials are checked with.

use std::collections::HashMap;

use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::ids::TenantId;
use crate::scope::{Scope, parse_known};
use crate::time::EpochMillis;

/// The principal name of the deployment's admin API key.
pub const ADMIN_KEY_PRINCIPAL: &str = "admin-key";

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Who: an API key id, a JWT subject, or `admin-key`.
    pub principal: String,
    /// The tenant every read and write is scoped to; `None` for the deployment admin.
    pub tenant_id: Option<TenantId>,
    /// Granted scopes. A principal with a tenant never holds [`Scope::Admin`]: it is dropped when the
    /// principal is built from a context, and ignored by [`Principal::has_scope`] in any case.
    pub scopes: Vec<Scope>,
    /// When the credential stops being accepted (epoch ms, leeway included), if it expires. The API
    /// function refuses the request after it, whatever the authorizer cache still holds.
    pub expires_at_ms: Option<EpochMillis>,
}

/// Why an authorizer context could not be turned into a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// A required field is absent.
    #[error("authorizer context lacks `{0}`")]
    Missing(&'static str),
    /// The tenant id is malformed.
    #[error("authorizer context has a malformed tenant id")]
    BadTenant,
    /// The expiry is not a number.
    #[error("authorizer context has a malformed expiry")]
    BadExpiry,
}

impl Principal {
    /// The deployment admin (the admin API key).
    pub fn deployment_admin() -> Self {
        Self {
            principal: ADMIN_KEY_PRINCIPAL.to_owned(),
            tenant_id: None,
            scopes: vec![Scope::Admin],
            expires_at_ms: None,
        }
    }

    /// Whether the caller is the deployment admin: `admin` without a tenant. No credential that
    /// carries a tenant is ever the admin, whatever its stored scopes say.
    pub fn is_deployment_admin(&self) -> bool {
        self.tenant_id.is_none() && self.scopes.contains(&Scope::Admin)
    }

    /// Whether the caller holds `scope` (the deployment admin holds every scope; a tenant's principal
    /// holds exactly its scopes, never `admin`).
    pub fn has_scope(&self, scope: Scope) -> bool {
        if self.is_deployment_admin() {
            return true;
        }
        scope != Scope::Admin && self.scopes.contains(&scope)
    }

    /// Whether the credential is past its expiry at `now`.
    pub fn is_expired(&self, now: EpochMillis) -> bool {
        self.expires_at_ms.is_some_and(|exp| now >= exp)
    }

    /// The authorizer context to return from the authorizer: flat string values, as HTTP API simple
    /// responses pass them on.
    pub fn to_context(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("principal", self.principal.clone()),
            (
                "tenant_id",
                self.tenant_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            (
                "scopes",
                self.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            (
                "expires_at_ms",
                self.expires_at_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            ),
        ])
    }

    /// Reads the principal from the authorizer context the API function receives
    /// (`requestContext.authorizer.lambda`).
    pub fn from_context(
        context: &HashMap<String, serde_json::Value>,
    ) -> Result<Self, ContextError> {
        let text = |key: &'static str| context.get(key).and_then(serde_json::Value::as_str);
        let principal = text("principal")
            .filter(|p| !p.is_empty())
            .ok_or(ContextError::Missing("principal"))?;
        let tenant_id = match text("tenant_id") {
            None | Some("") => None,
            Some(raw) => Some(raw.parse().map_err(|_| ContextError::BadTenant)?),
        };
        let mut scopes = parse_known(text("scopes").ok_or(ContextError::Missing("scopes"))?);
        if tenant_id.is_some() {
            scopes.retain(|s| *s != Scope::Admin);
        }
        // A context without the field (an authorizer deployed before it existed) carries no expiry.
        let expires_at_ms = match text("expires_at_ms") {
            None | Some("") => None,
            Some(raw) => Some(raw.parse().map_err(|_| ContextError::BadExpiry)?),
        };
        Ok(Self {
            principal: principal.to_owned(),
            tenant_id,
            scopes,
            expires_at_ms,
        })
    }
}

/// Compares two secrets in time that depends only on their lengths, never on where they differ.
pub fn secrets_equal(presented: &[u8], expected: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false without comparing contents; the length of a
    // generated key is not a secret.
    presented.ct_eq(expected).into()
}

/// Extracts the credential from an `Authorization` header value: `Bearer <token>` (case-insensitive
/// scheme), trimmed. Returns `None` for any other scheme or an empty token.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, rest) = header_value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_round_trips() {
        let p = Principal {
            principal: "key_1".into(),
            tenant_id: Some(TenantId::generate()),
            scopes: vec![Scope::ConnectionsRead, Scope::SyncsWrite],
            expires_at_ms: Some(1_800_000_000_000),
        };
        let ctx: HashMap<String, serde_json::Value> = p
            .to_context()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
            .collect();
        assert_eq!(Principal::from_context(&ctx).unwrap(), p);
    }

    #[test]
    fn admin_context_has_no_tenant() {
        let ctx: HashMap<String, serde_json::Value> = Principal::deployment_admin()
            .to_context()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
            .collect();
        let p = Principal::from_context(&ctx).unwrap();
        assert!(p.tenant_id.is_none());
        assert!(p.has_scope(Scope::ConnectionsWrite));
    }

    #[test]
    fn empty_or_bad_context_is_refused() {
        assert_eq!(
            Principal::from_context(&HashMap::new()),
            Err(ContextError::Missing("principal"))
        );
        let ctx = HashMap::from([
            ("principal".to_owned(), serde_json::json!("x")),
            ("tenant_id".to_owned(), serde_json::json!("ten_nope")),
            ("scopes".to_owned(), serde_json::json!("")),
        ]);
        assert_eq!(Principal::from_context(&ctx), Err(ContextError::BadTenant));
    }

    #[test]
    fn scopes_are_exact() {
        let p = Principal {
            principal: "k".into(),
            tenant_id: None,
            scopes: vec![Scope::ConnectionsRead],
            expires_at_ms: None,
        };
        assert!(p.has_scope(Scope::ConnectionsRead));
        assert!(!p.has_scope(Scope::ConnectionsWrite));
        assert!(!p.has_scope(Scope::Admin));
    }

    fn context(pairs: &[(&str, &str)]) -> HashMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect()
    }

    #[test]
    fn a_principal_with_a_tenant_is_never_admin_whatever_its_context_says() {
        let tenant = TenantId::generate().to_string();
        let p = Principal::from_context(&context(&[
            ("principal", "key_1"),
            ("tenant_id", &tenant),
            ("scopes", "admin keys:read"),
        ]))
        .unwrap();
        assert_eq!(p.scopes, vec![Scope::KeysRead]);
        assert!(!p.is_deployment_admin());
        assert!(!p.has_scope(Scope::Admin));
        assert!(!p.has_scope(Scope::ConnectionsWrite));
        // Even a principal built by hand with `admin` and a tenant does not hold it.
        let forged = Principal {
            principal: "key_1".into(),
            tenant_id: Some(TenantId::generate()),
            scopes: vec![Scope::Admin],
            expires_at_ms: None,
        };
        assert!(!forged.has_scope(Scope::Admin));
        assert!(!forged.has_scope(Scope::KeysWrite));
    }

    #[test]
    fn expiry_is_read_from_the_context_and_checked() {
        let p = Principal::from_context(&context(&[
            ("principal", "key_1"),
            ("scopes", ""),
            ("expires_at_ms", "1000"),
        ]))
        .unwrap();
        assert_eq!(p.expires_at_ms, Some(1000));
        assert!(!p.is_expired(999));
        assert!(p.is_expired(1000));
        let bad = context(&[
            ("principal", "k"),
            ("scopes", ""),
            ("expires_at_ms", "soon"),
        ]);
        assert_eq!(Principal::from_context(&bad), Err(ContextError::BadExpiry));
    }

    #[test]
    fn secrets_compare_by_value_and_length() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
