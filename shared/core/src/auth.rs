//! Who is calling: the principal the authorizer established, carried to the API function in the
//! authorizer context, and the constant-time comparison credentials are checked with.

use std::collections::HashMap;

use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::ids::TenantId;
use crate::scope::{Scope, parse_known};

/// The principal name of the deployment's admin API key.
pub const ADMIN_KEY_PRINCIPAL: &str = "admin-key";

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Who: an API key id, a JWT subject, or `admin-key`.
    pub principal: String,
    /// The tenant every read and write is scoped to; `None` for the deployment admin.
    pub tenant_id: Option<TenantId>,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
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
}

impl Principal {
    /// The deployment admin (the admin API key).
    pub fn deployment_admin() -> Self {
        Self {
            principal: ADMIN_KEY_PRINCIPAL.to_owned(),
            tenant_id: None,
            scopes: vec![Scope::Admin],
        }
    }

    /// Whether the caller holds `scope` (the admin scope holds every scope).
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
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
        let scopes = parse_known(text("scopes").ok_or(ContextError::Missing("scopes"))?);
        Ok(Self {
            principal: principal.to_owned(),
            tenant_id,
            scopes,
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
        };
        assert!(p.has_scope(Scope::ConnectionsRead));
        assert!(!p.has_scope(Scope::ConnectionsWrite));
        assert!(!p.has_scope(Scope::Admin));
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
