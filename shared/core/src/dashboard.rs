//! The dashboard's access: a tenant's key makes a short-lived, single-use link (like a connect
//! session); opening it trades the link for a session cookie, so the page's URL holds no credential
//! once loaded and the link cannot be replayed from history or logs.

use serde::{Deserialize, Serialize};

use crate::ids::{DashboardSessionId, TenantId};
use crate::time::EpochMillis;

/// How long a link can be opened.
pub const LINK_TTL_MS: EpochMillis = 5 * 60 * 1000;
/// How long the session a link opens lasts.
pub const SESSION_TTL_MS: EpochMillis = 60 * 60 * 1000;
/// The prefix of a link's token.
pub const LINK_PREFIX: &str = "dsl_";
/// The prefix of a session cookie's token.
pub const SESSION_PREFIX: &str = "dsc_";

/// What a link or session token grants (stored under the token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardGrant {
    /// The session (shared by a link and the cookie it became).
    pub id: DashboardSessionId,
    /// Whose dashboard.
    pub tenant_id: TenantId,
    /// A link (single use) or a session.
    pub kind: GrantKind,
    /// The SHA-256 (hex) of the token.
    pub token_hash: String,
    /// When it stops working.
    pub expires_at_ms: EpochMillis,
}

/// What a grant's token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// The link a tenant hands out: opened once.
    Link,
    /// The session cookie the link became.
    Session,
}

impl DashboardGrant {
    /// Whether it still works at `now`.
    pub fn is_live(&self, now: EpochMillis) -> bool {
        now < self.expires_at_ms
    }
}
