//! Connections: one end user's authorized account at a provider, made through one of the tenant's
//! integrations — connection configuration, credentials sealed by the vault, tags, metadata, and a
//! status whose every change is recorded as an event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ConnectionId, EventId, IntegrationId, TenantId};
use crate::time::EpochMillis;

/// What the vault binds a connection's credentials to (with the tenant and the connection id).
pub const CREDENTIALS_PURPOSE: &str = "credentials";

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Its credentials work (as last seen).
    Active,
    /// The provider refused its credentials: the end user must connect again.
    NeedsReauth,
    /// Turned off by the tenant.
    Disabled,
}

impl ConnectionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::NeedsReauth => "needs_reauth",
            ConnectionStatus::Disabled => "disabled",
        }
    }
}

/// One end user's account at a provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The integration it was made through.
    pub integration_id: IntegrationId,
    /// The catalog provider.
    pub provider: String,
    /// The spec's auth mode in use.
    pub auth_mode: String,
    /// The tenant's id of its end user.
    pub end_user_id: String,
    /// Connection configuration (`{config.*}`), not secret.
    pub config: BTreeMap<String, String>,
    /// The credentials as a JSON object, sealed by the vault (its stored form); never returned.
    pub credentials: String,
    /// Tags that identify the end user or the connection in the tenant's product.
    pub tags: BTreeMap<String, String>,
    /// The tenant's own data about the connection (a JSON object).
    pub metadata: serde_json::Value,
    /// Whether it can be used.
    pub status: ConnectionStatus,
    /// Why the status is what it is, when it is not `active`.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at_ms: EpochMillis,
    /// When the provider last accepted its credentials, if ever checked.
    pub last_verified_at_ms: Option<EpochMillis>,
    /// When its OAuth access token expires, when the provider said (the refresher's schedule).
    #[serde(default)]
    pub token_expires_at_ms: Option<EpochMillis>,
    /// When its OAuth tokens were last obtained (connected, reconnected or refreshed), for a
    /// connection that holds a refresh token; `None` for credentials that are never refreshed.
    /// The monitor refreshes an idle connection's tokens again after
    /// [`IDLE_REFRESH_AFTER_MS`] (see [`Connection::idle_refresh_due_ms`]).
    #[serde(default)]
    pub tokens_obtained_at_ms: Option<EpochMillis>,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When last changed.
    pub updated_at_ms: EpochMillis,
    /// Incremented by every update; an update applies only to the version it read.
    pub version: u64,
}

/// How long an active connection's refreshable OAuth tokens go without a refresh before the
/// monitor refreshes them (20 hours): whatever uses a connection refreshes it on demand, and an idle
/// one is still refreshed at least daily (a provider that expires unused refresh tokens, or a
/// rotation that must keep moving, never finds it stale), with room for retries within the day.
pub const IDLE_REFRESH_AFTER_MS: EpochMillis = 20 * 3600 * 1000;

impl Connection {
    /// When the monitor is to refresh this connection's tokens if nothing else did: `None` when it
    /// holds no refresh token or is not active.
    pub fn idle_refresh_due_ms(&self) -> Option<EpochMillis> {
        if self.status != ConnectionStatus::Active {
            return None;
        }
        self.tokens_obtained_at_ms
            .map(|at| at.saturating_add(IDLE_REFRESH_AFTER_MS))
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Which of a tenant's connections a list returns; absent fields match every connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFilter {
    /// Made through this integration.
    pub integration_id: Option<IntegrationId>,
    /// Of this provider.
    pub provider: Option<String>,
    /// Of this end user.
    pub end_user_id: Option<String>,
    /// Carrying this tag with this value.
    pub tag: Option<(String, String)>,
    /// In this status.
    pub status: Option<ConnectionStatus>,
}

impl ConnectionFilter {
    /// Whether `c` passes the filter.
    pub fn matches(&self, c: &Connection) -> bool {
        self.integration_id
            .as_ref()
            .is_none_or(|i| *i == c.integration_id)
            && self.provider.as_ref().is_none_or(|p| *p == c.provider)
            && self
                .end_user_id
                .as_ref()
                .is_none_or(|u| *u == c.end_user_id)
            && self
                .tag
                .as_ref()
                .is_none_or(|(k, v)| c.tags.get(k) == Some(v))
            && self.status.is_none_or(|s| s == c.status)
    }
}

/// The stable types of connection events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionEventType {
    /// A connection was made.
    #[serde(rename = "connection.created")]
    Created,
    /// Its tags, metadata, configuration or status were changed by the tenant.
    #[serde(rename = "connection.updated")]
    Updated,
    /// The end user connected again (a reconnect session), or a test proved it works again.
    #[serde(rename = "connection.reauthorized")]
    Reauthorized,
    /// Its access token was refreshed.
    #[serde(rename = "connection.refreshed")]
    Refreshed,
    /// Refreshing its token failed for good: it needs the end user again.
    #[serde(rename = "connection.refresh_failed")]
    RefreshFailed,
    /// The provider refused its credentials when it was tested.
    #[serde(rename = "connection.verification_failed")]
    VerificationFailed,
    /// It was deleted, with its credentials.
    #[serde(rename = "connection.deleted")]
    Deleted,
}

impl ConnectionEventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionEventType::Created => "connection.created",
            ConnectionEventType::Updated => "connection.updated",
            ConnectionEventType::Reauthorized => "connection.reauthorized",
            ConnectionEventType::Refreshed => "connection.refreshed",
            ConnectionEventType::RefreshFailed => "connection.refresh_failed",
            ConnectionEventType::VerificationFailed => "connection.verification_failed",
            ConnectionEventType::Deleted => "connection.deleted",
        }
    }
}

/// Something that happened to a connection, kept for the tenant's webhooks. Never carries
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    /// Id.
    pub id: EventId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ConnectionEventType,
    /// The connection's status after it.
    pub status: ConnectionStatus,
    /// Why, when it is a failure or a status change.
    pub reason: Option<String>,
    /// When.
    pub at_ms: EpochMillis,
}

impl ConnectionEvent {
    /// What happened to `connection` (in the status it has now) at `at_ms`.
    pub fn of(
        connection: &Connection,
        kind: ConnectionEventType,
        reason: Option<String>,
        at_ms: EpochMillis,
    ) -> Self {
        Self {
            id: EventId::generate(),
            tenant_id: connection.tenant_id.clone(),
            connection_id: connection.id.clone(),
            kind,
            status: connection.status,
            reason,
            at_ms,
        }
    }
}
