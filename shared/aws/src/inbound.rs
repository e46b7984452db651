//! Verified provider webhooks, their replay markers and the provider events they forward, in the
//! control table:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | delivery | `TENANT#<tenant id>` | `INBOUND#<inbound id>` |
//! | replay marker | `TENANT#<tenant id>` | `INBOUNDSEEN#<integration id>#<SHA-256 of the event id>` |
//! | provider event | `TENANT#<tenant id>` | `PROVIDEREVENT#<event id>` |
//!
//! A delivery and its marker are one transaction, the marker on the condition that none exists
//! (or that the one found has expired: TTL removes items up to days late), and both expire after
//! three days ([`tributary_core::inbound::INBOUND_RETENTION_SECS`]). The event id is hashed into
//! the key: it is the provider's text, of any length. A provider event enters the outbox in the
//! write that records it (see [`crate::webhooks`]) and expires after [`MESSAGE_RETENTION_DAYS`],
//! like the messages made of it. Everything is under the tenant's partition, and expires, so a
//! tenant's purge leaves it to expire.

use sha2::{Digest, Sha256};
use tributary_core::PortError;
use tributary_core::ids::{InboundId, TenantId};
use tributary_core::inbound::{InboundEvent, PROVIDER_EVENT, ProviderEvent};
use tributary_core::outbound::MESSAGE_RETENTION_DAYS;
use tributary_core::ports::InboundStore;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item};
use crate::tenancy::{VERSION, conflict, delete, item, n, put, tenant_pk};

const INBOUND_SK: &str = "INBOUND#";
const SEEN_SK: &str = "INBOUNDSEEN#";
const PROVIDER_EVENT_SK: &str = "PROVIDEREVENT#";

fn inbound_sk(id: &InboundId) -> String {
    format!("{INBOUND_SK}{id}")
}

/// The replay marker's sort key, when the delivery has an event id.
fn seen_sk(inbound: &InboundEvent) -> Option<String> {
    let event_id = inbound.event_id.as_deref()?;
    let digest = Sha256::digest(event_id.as_bytes());
    Some(format!(
        "{SEEN_SK}{}#{}",
        inbound.integration_id,
        hex::encode(digest)
    ))
}

fn inbound_item(inbound: &InboundEvent) -> Result<Item, PortError> {
    let mut it = item(
        tenant_pk(&inbound.tenant_id),
        inbound_sk(&inbound.id),
        inbound,
    )?;
    it.insert(VERSION.to_owned(), n(inbound.version));
    it.insert(EXPIRES_AT.to_owned(), n(inbound.expires_at_s()));
    Ok(it)
}

fn provider_event_item(e: &ProviderEvent) -> Result<Item, PortError> {
    let mut it = item(
        tenant_pk(&e.tenant_id),
        format!("{PROVIDER_EVENT_SK}{}", e.id),
        e,
    )?;
    it.insert(
        EXPIRES_AT.to_owned(),
        n(e.at_ms / 1000 + MESSAGE_RETENTION_DAYS * 86_400),
    );
    crate::webhooks::with_outbox(&mut it, &e.tenant_id, PROVIDER_EVENT, e.at_ms);
    Ok(it)
}

impl InboundStore for DynamoTable {
    async fn record_inbound(&self, inbound: &InboundEvent) -> Result<bool, PortError> {
        let Some(seen) = seen_sk(inbound) else {
            return self.put_new(inbound_item(inbound)?).await.map(|()| true);
        };
        let mut marker = item(
            tenant_pk(&inbound.tenant_id),
            seen,
            &serde_json::json!({"inbound_id": inbound.id}),
        )?;
        marker.insert(EXPIRES_AT.to_owned(), n(inbound.expires_at_s()));
        let mut guarded = put(
            self.name(),
            marker,
            Some("attribute_not_exists(pk) OR expires_at < :now"),
        )?;
        if let Some(p) = guarded.put.as_mut() {
            p.expression_attribute_values
                .get_or_insert_with(Default::default)
                .insert(":now".into(), n(inbound.received_at_ms / 1000));
        }
        let items = vec![
            guarded,
            put(
                self.name(),
                inbound_item(inbound)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(true),
            Err(failed) if failed.first() == Some(&true) => Ok(false),
            Err(_) => Err(conflict("TransactWriteItems")),
        }
    }

    async fn forget_inbound(&self, inbound: &InboundEvent) -> Result<(), PortError> {
        let pk = tenant_pk(&inbound.tenant_id);
        let mut items = vec![delete(self.name(), pk.clone(), inbound_sk(&inbound.id))?];
        if let Some(seen) = seen_sk(inbound) {
            items.push(delete(self.name(), pk, seen)?);
        }
        self.transact(items).await
    }

    async fn get_inbound(
        &self,
        tenant: &TenantId,
        id: &InboundId,
    ) -> Result<Option<InboundEvent>, PortError> {
        let found: Option<InboundEvent> = self.get_doc(&tenant_pk(tenant), &inbound_sk(id)).await?;
        Ok(found.filter(|i| i.tenant_id == *tenant && i.id == *id))
    }

    async fn update_inbound(
        &self,
        inbound: &InboundEvent,
        expected_version: u64,
    ) -> Result<bool, PortError> {
        self.replace_versioned(inbound_item(inbound)?, expected_version, None)
            .await
    }

    async fn record_provider_event(&self, event: &ProviderEvent) -> Result<bool, PortError> {
        self.put_conditional(provider_event_item(event)?, "attribute_not_exists(pk)")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::ids::IntegrationId;
    use tributary_core::inbound::InboundState;

    fn inbound(event_id: Option<&str>, integration: &IntegrationId) -> InboundEvent {
        InboundEvent {
            id: InboundId::generate(),
            tenant_id: TenantId::generate(),
            integration_id: integration.clone(),
            provider: "stripe".into(),
            event_id: event_id.map(str::to_owned),
            event_type: None,
            connection_key: None,
            payload: None,
            payload_omitted: None,
            state: InboundState::Received,
            routed_to: Vec::new(),
            received_at_ms: 1,
            processed_at_ms: None,
            version: 1,
        }
    }

    #[test]
    fn replay_markers_are_per_integration_and_event_id_and_of_bounded_length() {
        let (a, b) = (IntegrationId::generate(), IntegrationId::generate());
        let long = "e".repeat(10_000);
        let marker = seen_sk(&inbound(Some(&long), &a)).unwrap();
        assert!(marker.len() < 150, "{marker}");
        assert_eq!(
            seen_sk(&inbound(Some("evt_1"), &a)),
            seen_sk(&inbound(Some("evt_1"), &a))
        );
        assert_ne!(
            seen_sk(&inbound(Some("evt_1"), &a)),
            seen_sk(&inbound(Some("evt_1"), &b))
        );
        assert_ne!(
            seen_sk(&inbound(Some("evt_1"), &a)),
            seen_sk(&inbound(Some("evt_2"), &a))
        );
        assert_eq!(seen_sk(&inbound(None, &a)), None);
    }
}
