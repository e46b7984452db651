//! Domain objects for tests, with the fields a test rarely cares about filled in.

use std::collections::BTreeMap;

use tributary_core::connection::{Connection, ConnectionStatus};
use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};

/// An active OAuth (authorization-code) connection `id` of `provider`, with `credentials` in their
/// sealed form, created and last changed at 1 ms, version 1; no token expiry, tokens obtained at
/// 1 ms. Change what a test is about with struct update syntax.
pub fn oauth_connection(
    tenant: &TenantId,
    integration: &IntegrationId,
    id: &ConnectionId,
    provider: &str,
    credentials: String,
) -> Connection {
    Connection {
        id: id.clone(),
        tenant_id: tenant.clone(),
        integration_id: integration.clone(),
        provider: provider.into(),
        auth_mode: "oauth2_authorization_code".into(),
        end_user_id: "u".into(),
        config: BTreeMap::new(),
        credentials,
        tags: BTreeMap::new(),
        metadata: serde_json::json!({}),
        status: ConnectionStatus::Active,
        status_reason: None,
        status_changed_at_ms: 1,
        last_verified_at_ms: None,
        token_expires_at_ms: None,
        tokens_obtained_at_ms: Some(1),
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    }
}

/// An active sync of `stream` of a connection into `model`, every hour, in the stream's own
/// mode `mode`, next due at `next_run_at_ms`.
pub fn sync_config(
    tenant: &tributary_core::ids::TenantId,
    connection: &tributary_core::ids::ConnectionId,
    provider: &str,
    stream: &str,
    model: &str,
    mode: tributary_core::sync::SyncMode,
    next_run_at_ms: Option<i64>,
) -> tributary_core::sync::SyncConfig {
    use tributary_core::sync::{DEFAULT_DELETION_GUARD_PERCENT, Frequency, SyncConfig, SyncStatus};
    SyncConfig {
        id: tributary_core::ids::SyncId::generate(),
        tenant_id: tenant.clone(),
        connection_id: connection.clone(),
        integration_id: tributary_core::ids::IntegrationId::generate(),
        provider: provider.into(),
        stream: stream.into(),
        model: model.into(),
        frequency: Frequency::Interval {
            every_seconds: 3600,
        },
        mode,
        mapping: None,
        status: SyncStatus::Active,
        status_reason: None,
        deletion_guard_percent: DEFAULT_DELETION_GUARD_PERCENT,
        retention_days: None,
        checkpoint: None,
        next_run_at_ms,
        active_run_id: None,
        last_run: None,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    }
}
