//! Connect sessions: a short-lived, single-purpose link a tenant gives one of its end users to
//! connect (or reconnect) an account, and the single-use `state` of an OAuth flow started from one.
//!
//! The link's token is shown once; only its SHA-256 is stored, and it is looked up by that hash on
//! the public connect routes (no other credential is involved there). A session completes with the
//! first connection it makes and cannot be used again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ConnectSessionId, ConnectionId, IntegrationId, TenantId};
use crate::time::EpochMillis;

/// How long a connect session is valid.
pub const SESSION_TTL_MS: EpochMillis = 30 * 60 * 1000;
/// How long an OAuth flow may take between leaving for the provider and coming back.
pub const FLOW_TTL_MS: EpochMillis = 10 * 60 * 1000;
/// What the vault binds a flow's PKCE verifier to (with the tenant and the session id).
pub const PKCE_PURPOSE: &str = "pkce_verifier";

/// The hex SHA-256 of a token (a session token or an OAuth `state`): what is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A connect session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSession {
    /// Id.
    pub id: ConnectSessionId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The hex SHA-256 of the link's token.
    pub token_hash: String,
    /// The end user it is for (set on the connection it makes).
    pub end_user_id: String,
    /// The integrations the end user may connect.
    pub integration_ids: Vec<IntegrationId>,
    /// Where the end user is sent back to (from every allowed integration's allowlist).
    pub return_url: String,
    /// For a reconnect: the connection to update in place.
    pub connection_id: Option<ConnectionId>,
    /// Tags given to the connection it makes.
    pub tags: BTreeMap<String, String>,
    /// Who created it.
    pub created_by: String,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When it stops working.
    pub expires_at_ms: EpochMillis,
    /// The connection it made, once it has.
    pub completed_with: Option<ConnectionId>,
}

/// An OAuth flow between leaving for the provider and coming back: found by its `state`, taken
/// once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthFlow {
    /// The hex SHA-256 of the `state` sent to the provider.
    pub state_hash: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// The session it was started from.
    pub session_id: ConnectSessionId,
    /// The session's token hash (to find it again).
    pub session_token_hash: String,
    /// The integration being connected.
    pub integration_id: IntegrationId,
    /// The redirect URI the authorization request carried (the code exchange repeats it).
    pub redirect_uri: String,
    /// The PKCE verifier, sealed by the vault, when the spec uses PKCE.
    pub pkce_verifier: Option<String>,
    /// Connection configuration given before leaving (a subdomain the endpoints need).
    pub config: BTreeMap<String, String>,
    /// When it stops being accepted.
    pub expires_at_ms: EpochMillis,
}

/// A new random token: `prefix` and 32 random bytes, base64url (43 characters).
pub fn new_token(prefix: &str) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Whether `token` is shaped like a token of `prefix` (before any lookup).
pub fn is_token(prefix: &str, token: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_shaped_and_stored_only_as_hashes() {
        let (a, b) = (new_token("cst_"), new_token("cst_"));
        assert_ne!(a, b);
        assert!(is_token("cst_", &a));
        assert!(!is_token("cst_", &a[..a.len() - 1]));
        assert!(!is_token("cst_", &format!("{}!", &a[..a.len() - 1])));
        assert!(!is_token("key_", &a));
        let hash = token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a[4..]));
        assert_eq!(hash, token_hash(&a));
    }
}
