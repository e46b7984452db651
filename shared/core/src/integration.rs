//! Integrations: a tenant's configuration of a provider from the catalog — which auth mode its end
//! users connect with, the tenant's own OAuth client, the scopes it asks for and the pages end users
//! may be sent back to.

use serde::{Deserialize, Serialize};

use crate::ids::{IntegrationId, TenantId};
use crate::inbound::WebhookRouting;
use crate::time::EpochMillis;

/// What the vault binds an integration's OAuth client secret to (with the tenant and the
/// integration id).
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

/// A tenant's configuration of a provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    /// Id.
    pub id: IntegrationId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The catalog provider (`salesforce`).
    pub provider: String,
    /// The tenant's name for it.
    pub name: String,
    /// The spec's auth mode (`type`) end users connect with.
    pub auth_mode: String,
    /// The tenant's OAuth client id (OAuth authorization-code modes).
    pub oauth_client_id: Option<String>,
    /// The tenant's OAuth client secret, sealed by the vault (its stored form); never returned.
    pub oauth_client_secret: Option<String>,
    /// Scopes requested at authorization.
    pub scopes: Vec<String>,
    /// Where a connect session may send the end user back to (exact match).
    pub return_urls: Vec<String>,
    /// Whether new connections may be made.
    pub enabled: bool,
    /// The signing secret of the provider's webhooks to this integration (Stripe's endpoint
    /// secret, a GitHub App's webhook secret, Slack's signing secret; for Notion, the
    /// verification token the tenant confirmed), sealed by the vault; never returned.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// A verification token the provider sent to the webhook URL (Notion's handshake), sealed,
    /// waiting for the tenant to confirm it: nothing vouches for an unsigned request, so it
    /// verifies nothing until then.
    #[serde(default)]
    pub webhook_verification_token: Option<String>,
    /// What the provider's verified events do.
    #[serde(default)]
    pub webhook_routing: WebhookRouting,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When last changed.
    pub updated_at_ms: EpochMillis,
    /// Incremented by every update; an update applies only to the version it read.
    pub version: u64,
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("auth_mode", &self.auth_mode)
            .field("has_client_secret", &self.oauth_client_secret.is_some())
            .field("has_webhook_secret", &self.webhook_secret.is_some())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
