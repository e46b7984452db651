//! Inbound provider webhooks (`inbound_webhook` jobs): a delivery the API verified and stored is
//! routed to the integration's connections.
//!
//! **Routing.** The event's verified routing key (Stripe's `account`, a GitHub installation id, a
//! Slack team id, a Shopify shop domain, …) names the connections of the integration whose
//! `provider_account` tag holds it: the tenant sets that tag on each connection. Without a key (the
//! spec has none, or the event carries none) the event goes to the integration's only connection
//! when it has exactly one, else nowhere. Disabled connections receive nothing. Finding them is a
//! filtered list of the tenant's connections: it reads the tenant's connection items (a
//! DynamoDB `Query` of the partition, billed for what it reads, not what matches), so its cost grows
//! with the tenant's connections; bounded by [`MAX_ROUTED`] matches.
//!
//! **Effects**, per connection, as the integration's `webhook_routing` says: `sync` starts a run of
//! each of its active syncs without one in progress ([`crate::sync::start_for_webhook`]);
//! `forward` records a `provider.event` in the event outbox, which the dispatch makes into the
//! tenant's webhook messages; `both` does both.
//!
//! **No connection**: the delivery is marked `unrouted` (kept until it expires, three days after it
//! arrived) and counted in a structured log line (`metric = "inbound_unrouted"`), never dropped
//! silently.
//!
//! **Idempotent.** The run's id and the provider event's id are derived from the delivery (and the
//! sync or connection), so a redelivered job finds what the first made instead of making it again;
//! the delivery is marked processed (version-checked) once every effect exists, and a job that
//! finds it processed does nothing.

use tributary_core::PortError;
use tributary_core::connection::{Connection, ConnectionFilter, ConnectionStatus};
use tributary_core::ids::{ConnectionId, InboundId, IntegrationId, SyncRunId, TenantId};
use tributary_core::inbound::{InboundEvent, InboundState, PROVIDER_ACCOUNT_TAG, ProviderEvent};
use tributary_core::operation::{self, NoteKind, OperationError, OperationState};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore, InboundStore, IntegrationStore, JobQueue, SyncStore};
use tributary_core::sync::SyncFilter;
use tributary_core::time::Clock;

use crate::sync::{SyncJobError, Syncing, WebhookStart};

/// The most connections one event is routed to.
pub const MAX_ROUTED: usize = 50;
/// The most syncs of one connection a webhook starts.
const MAX_SYNCS: usize = 100;

/// Why an inbound job failed (the message is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum InboundJobError {
    /// The store or the queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Starting a sync's run failed for now.
    #[error(transparent)]
    Sync(#[from] SyncJobError),
}

/// Routes the stored delivery `inbound_id` to the integration's connections (see the module
/// documentation).
pub async fn route<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    clock: &dyn Clock,
    tenant: &TenantId,
    integration_id: &IntegrationId,
    inbound_id: &InboundId,
) -> Result<(), InboundJobError>
where
    S: InboundStore + IntegrationStore + ConnectionStore + SyncStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let Some(inbound) = store.get_inbound(tenant, inbound_id).await? else {
        tracing::warn!(inbound_id = %inbound_id, "the webhook delivery is gone (expired); nothing to route");
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    if inbound.integration_id != *integration_id {
        tracing::error!(inbound_id = %inbound_id, integration_id = %integration_id, "the job names another integration than its delivery; acknowledged");
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    if inbound.state != InboundState::Received {
        tracing::info!(inbound_id = %inbound_id, state = inbound.state.as_str(), "the webhook delivery was routed already");
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    operation::describe(|d| {
        d.op.integration_id = Some(inbound.integration_id.clone());
        d.op.provider = Some(inbound.provider.clone());
        d.op.name = inbound.event_type.clone();
    });
    let Some(integration) = store.get_integration(tenant, integration_id).await? else {
        unrouted(store, inbound, clock, "the integration was deleted").await?;
        return Ok(());
    };
    let connections = connections(store, &inbound).await?;
    if connections.is_empty() {
        let why = match &inbound.connection_key {
            Some(_) => "no connection of the integration has this provider_account tag",
            None => "the event names no account and the integration has not exactly one connection",
        };
        unrouted(store, inbound, clock, why).await?;
        return Ok(());
    }
    let routing = integration.webhook_routing;
    for connection in &connections {
        if routing.forwards() {
            let event = ProviderEvent::of(&inbound, &connection.id, clock.now_ms());
            if store.record_provider_event(&event).await? {
                tracing::info!(inbound_id = %inbound.id, connection_id = %connection.id, event_id = %event.id, "provider event forwarded");
            }
        }
        if routing.syncs() {
            start_syncs(syncing, queue, clock, &inbound, &connection.id).await?;
        }
    }
    let routed: Vec<ConnectionId> = connections.into_iter().map(|c| c.id).collect();
    operation::describe(|d| {
        // The connection when there is one; several are named in a note.
        if let [only] = routed.as_slice() {
            d.op.connection_id = Some(only.clone());
        }
    });
    if routed.len() > 1 {
        operation::note(
            NoteKind::Info,
            &format!("routed to {} connections", routed.len()),
            clock.now_ms(),
        );
    }
    tracing::info!(
        inbound_id = %inbound.id,
        integration_id = %integration_id,
        connections = routed.len(),
        routing = routing.as_str(),
        "webhook routed"
    );
    settle(store, inbound, clock, InboundState::Processed, routed).await
}

/// The connections the event routes to (see the module documentation).
async fn connections<S: ConnectionStore>(
    store: &S,
    inbound: &InboundEvent,
) -> Result<Vec<Connection>, PortError> {
    let filter = ConnectionFilter {
        integration_id: Some(inbound.integration_id.clone()),
        tag: inbound
            .connection_key
            .as_ref()
            .map(|key| (PROVIDER_ACCOUNT_TAG.to_owned(), key.clone())),
        ..ConnectionFilter::default()
    };
    // Without a key, a second connection is enough to know that none is the only one.
    let enough = if inbound.connection_key.is_some() {
        MAX_ROUTED
    } else {
        2
    };
    let mut found = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let listed = store
            .list_connections(&inbound.tenant_id, &filter, &page)
            .await?;
        found.extend(
            listed
                .items
                .into_iter()
                .filter(|c| c.status != ConnectionStatus::Disabled),
        );
        match listed.next_after {
            Some(next) if found.len() < enough => page.after = Some(next),
            _ => break,
        }
    }
    if inbound.connection_key.is_none() && found.len() != 1 {
        return Ok(Vec::new());
    }
    found.truncate(MAX_ROUTED);
    Ok(found)
}

/// Starts a run of each of the connection's syncs, each with an id derived from the delivery.
async fn start_syncs<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    clock: &dyn Clock,
    inbound: &InboundEvent,
    connection: &ConnectionId,
) -> Result<(), InboundJobError>
where
    S: SyncStore,
    Q: JobQueue,
{
    let filter = SyncFilter {
        connection_id: Some(connection.clone()),
    };
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    let mut seen = 0;
    loop {
        let listed = syncing
            .store
            .list_syncs(&inbound.tenant_id, &filter, &page)
            .await?;
        for sync in listed.items {
            seen += 1;
            let run_id = SyncRunId::derive(
                inbound.received_at_ms,
                &format!("{}/{}", inbound.id, sync.id),
            );
            match crate::sync::start_for_webhook(
                syncing,
                queue,
                clock,
                &inbound.tenant_id,
                &sync.id,
                &run_id,
            )
            .await?
            {
                WebhookStart::Started(_) | WebhookStart::Inactive => {}
                WebhookStart::InProgress(active) => {
                    tracing::info!(sync_id = %sync.id, run_id = %active, inbound_id = %inbound.id, "a run is in progress; the webhook starts none");
                }
            }
        }
        match listed.next_after {
            Some(next) if seen < MAX_SYNCS => page.after = Some(next),
            _ => return Ok(()),
        }
    }
}

/// Marks the delivery unrouted and counts it.
async fn unrouted<S: InboundStore>(
    store: &S,
    inbound: InboundEvent,
    clock: &dyn Clock,
    why: &str,
) -> Result<(), InboundJobError> {
    operation::describe(|d| {
        d.state = Some(OperationState::Failed);
        d.op.error = Some(OperationError {
            class: "unrouted".into(),
            message: why.to_owned(),
        });
    });
    tracing::warn!(
        metric = "inbound_unrouted",
        count = 1,
        tenant_id = %inbound.tenant_id,
        integration_id = %inbound.integration_id,
        provider = %inbound.provider,
        inbound_id = %inbound.id,
        has_connection_key = inbound.connection_key.is_some(),
        reason = why,
        "a verified webhook routes to no connection; kept as unrouted until it expires"
    );
    settle(store, inbound, clock, InboundState::Unrouted, Vec::new()).await
}

/// Records where the delivery ended, on the version read (re-read on a concurrent write: a
/// delivery another job settled first stays as it settled it).
async fn settle<S: InboundStore>(
    store: &S,
    mut inbound: InboundEvent,
    clock: &dyn Clock,
    state: InboundState,
    routed: Vec<ConnectionId>,
) -> Result<(), InboundJobError> {
    for _ in 0..5 {
        let read = inbound.version;
        inbound.state = state;
        inbound.routed_to = routed.clone();
        inbound.processed_at_ms = Some(clock.now_ms());
        inbound.version = read + 1;
        match store.update_inbound(&inbound, read).await {
            Ok(_) => return Ok(()),
            Err(PortError::Conflict { .. }) => {
                match store.get_inbound(&inbound.tenant_id, &inbound.id).await? {
                    Some(stored) if stored.state == InboundState::Received => inbound = stored,
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(InboundJobError::Port(PortError::Conflict {
        service: tributary_core::error::Service::Store,
        operation: "PutItem",
    }))
}

#[cfg(test)]
mod tests;
