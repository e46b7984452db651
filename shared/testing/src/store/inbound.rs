//! [`MemStore`]'s verified provider webhooks, replay markers and provider events, with the
//! adapter's semantics: a delivery recorded with its event id's marker in one write unless the
//! marker exists (per integration, until it expires), version-checked updates, a provider event
//! recorded once per id and waiting in the outbox (`store/webhooks.rs`).

use std::collections::{BTreeMap, HashMap};

use tributary_core::PortError;
use tributary_core::ids::{InboundId, IntegrationId, TenantId};
use tributary_core::inbound::{InboundEvent, ProviderEvent};
use tributary_core::ports::InboundStore;

use super::{Access, MemStore, conflict};

/// The items of inbound webhooks.
#[derive(Debug, Default)]
pub(super) struct InboundTables {
    deliveries: BTreeMap<String, InboundEvent>,
    /// Replay markers by (integration, event id): the delivery and when the marker expires.
    seen: HashMap<(IntegrationId, String), (InboundId, i64)>,
    provider_events: BTreeMap<String, ProviderEvent>,
}

impl InboundTables {
    /// Every provider event.
    pub(super) fn provider_events(&self) -> impl Iterator<Item = &ProviderEvent> {
        self.provider_events.values()
    }
}

impl MemStore {
    /// The tenant's deliveries, oldest first (inspection).
    pub fn inbound_of(&self, tenant: &TenantId) -> Vec<InboundEvent> {
        self.tables()
            .inbound
            .deliveries
            .values()
            .filter(|i| i.tenant_id == *tenant)
            .cloned()
            .collect()
    }

    /// The tenant's provider events, oldest first (inspection).
    pub fn provider_events_of(&self, tenant: &TenantId) -> Vec<ProviderEvent> {
        let mut all: Vec<ProviderEvent> = self
            .tables()
            .inbound
            .provider_events
            .values()
            .filter(|e| e.tenant_id == *tenant)
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        all
    }

    /// Seeds a delivery (no marker).
    pub fn put_inbound(&self, inbound: &InboundEvent) {
        self.tables()
            .inbound
            .deliveries
            .insert(inbound.id.to_string(), inbound.clone());
    }
}

impl InboundStore for MemStore {
    async fn record_inbound(&self, inbound: &InboundEvent) -> Result<bool, PortError> {
        self.port("record_inbound", Access::Write, "TransactWriteItems", |t| {
            let marker = inbound
                .event_id
                .as_ref()
                .map(|e| (inbound.integration_id.clone(), e.clone()));
            if let Some(key) = &marker
                && t.inbound
                    .seen
                    .get(key)
                    .is_some_and(|(_, expires)| *expires >= inbound.received_at_ms / 1000)
            {
                return Ok(false);
            }
            if t.inbound.deliveries.contains_key(inbound.id.as_str()) {
                return Err(conflict("TransactWriteItems"));
            }
            if let Some(key) = marker {
                t.inbound
                    .seen
                    .insert(key, (inbound.id.clone(), inbound.expires_at_s()));
            }
            t.inbound
                .deliveries
                .insert(inbound.id.to_string(), inbound.clone());
            Ok(true)
        })
        .await?
    }

    async fn forget_inbound(&self, inbound: &InboundEvent) -> Result<(), PortError> {
        self.port("forget_inbound", Access::Write, "TransactWriteItems", |t| {
            t.inbound.deliveries.remove(inbound.id.as_str());
            if let Some(e) = &inbound.event_id {
                t.inbound
                    .seen
                    .remove(&(inbound.integration_id.clone(), e.clone()));
            }
        })
        .await
    }

    async fn get_inbound(
        &self,
        tenant: &TenantId,
        id: &InboundId,
    ) -> Result<Option<InboundEvent>, PortError> {
        self.port("get_inbound", Access::Read, "GetItem", |t| {
            t.inbound
                .deliveries
                .get(id.as_str())
                .filter(|i| i.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn update_inbound(
        &self,
        inbound: &InboundEvent,
        expected_version: u64,
    ) -> Result<bool, PortError> {
        self.port("update_inbound", Access::Write, "PutItem", |t| {
            match t
                .inbound
                .deliveries
                .get_mut(inbound.id.as_str())
                .filter(|i| i.tenant_id == inbound.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected_version => Err(conflict("PutItem")),
                Some(stored) => {
                    *stored = inbound.clone();
                    Ok(true)
                }
            }
        })
        .await?
    }

    async fn record_provider_event(&self, event: &ProviderEvent) -> Result<bool, PortError> {
        self.port("record_provider_event", Access::Write, "PutItem", |t| {
            if t.inbound.provider_events.contains_key(event.id.as_str()) {
                return false;
            }
            t.inbound
                .provider_events
                .insert(event.id.to_string(), event.clone());
            true
        })
        .await
    }
}
