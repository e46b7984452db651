//! Webhook endpoints, messages and attempts in the control table, and the event outbox:
//!
//! | item | pk | sk |
//! |---|---|---|
//! | endpoint | `TENANT#<tenant id>` | `WHEP#<endpoint id>` |
//! | message | `TENANT#<tenant id>` | `WHMSG#<message id, digits inverted>` |
//! | attempt | `TENANT#<tenant id>` | `WHATT#<message id>#<n, 5 digits>` |
//!
//! Records are JSON in `doc` beside a checked `version`. A message's key inverts its id's hex
//! digits: ids sort by their event's time, so a forward read lists the newest first. A message
//! keeps `endpoint_id` and `state` for list filters; messages and attempts expire after
//! [`MESSAGE_RETENTION_DAYS`]. An attempt is written in the transaction of the message's update.
//!
//! **The outbox.** An event item (a connection's, a sync's, an action's, or a forwarded provider
//! event's, [`crate::inbound`]) of a type endpoints can receive is written with `outbox_shard`
//! (`OUTBOX#<n>`), `outbox_at` and `outbox_type`: the keys of the sparse `Outbox` index, in the
//! same write that records the event. The dispatcher reads the index, makes the messages, and
//! removes the attributes ([`EventOutbox::clear_outbox`]).

use aws_sdk_dynamodb::types::AttributeValue;
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{EndpointId, MessageId, TenantId};
use tributary_core::outbound::{
    DeliveryAttempt, ENDPOINT_DISABLED, EndpointEvent, EventType, MESSAGE_RETENTION_DAYS,
    OutboxEvent, WebhookEndpoint, WebhookMessage, outbox_data, outbox_shard,
};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{EventOutbox, MessageFilter, WebhookStore};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::EpochMillis;

use crate::dynamo::{DynamoTable, EXPIRES_AT, Item, PK, SK};
use crate::errors::classify;
use crate::tenancy::{
    DOC_ATTRIBUTE, ListFilter, VERSION, audit_item, conflict, decode, item, n, put, rejected, s,
    tenant_pk,
};

const ENDPOINT_SK: &str = "WHEP#";
const MESSAGE_SK: &str = "WHMSG#";
const ATTEMPT_SK: &str = "WHATT#";
/// An endpoint's event (its disabling).
const ENDPOINT_EVENT_SK: &str = "WHEVENT#";
/// The outbox index.
pub const OUTBOX_INDEX: &str = "Outbox";
const OUTBOX_SHARD: &str = "outbox_shard";
const OUTBOX_AT: &str = "outbox_at";
const OUTBOX_TYPE: &str = "outbox_type";

/// A string that sorts in the reverse order of `id` among ids of its kind.
pub(crate) fn invert(id: &str) -> String {
    id.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) if c.is_ascii_digit() || c.is_ascii_lowercase() => {
                char::from_digit(15 - d, 16).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}

fn endpoint_sk(id: &EndpointId) -> String {
    format!("{ENDPOINT_SK}{id}")
}

fn message_sk(id: &MessageId) -> String {
    // Only the digits after the prefix are inverted.
    let hex = id.as_str().trim_start_matches("msg_");
    format!("{MESSAGE_SK}{}", invert(hex))
}

fn attempt_prefix(id: &MessageId) -> String {
    format!("{ATTEMPT_SK}{id}#")
}

fn expiry(at_ms: EpochMillis) -> AttributeValue {
    n(at_ms / 1000 + MESSAGE_RETENTION_DAYS * 86_400)
}

fn endpoint_item(e: &WebhookEndpoint) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&e.tenant_id), endpoint_sk(&e.id), e)?;
    it.insert(VERSION.to_owned(), n(e.version));
    Ok(it)
}

fn message_item(m: &WebhookMessage) -> Result<Item, PortError> {
    let mut it = item(tenant_pk(&m.tenant_id), message_sk(&m.id), m)?;
    it.insert(VERSION.to_owned(), n(m.version));
    it.insert("endpoint_id".to_owned(), s(m.endpoint_id.as_str()));
    it.insert("state".to_owned(), s(m.state.as_str()));
    it.insert(EXPIRES_AT.to_owned(), expiry(m.created_at_ms));
    Ok(it)
}

fn attempt_item(a: &DeliveryAttempt) -> Result<Item, PortError> {
    let mut it = item(
        tenant_pk(&a.tenant_id),
        format!("{}{:05}", attempt_prefix(&a.message_id), a.n),
        a,
    )?;
    it.insert(EXPIRES_AT.to_owned(), expiry(a.at_ms));
    Ok(it)
}

/// Puts an event item in the outbox when endpoints can receive its type (`kind`).
pub(crate) fn with_outbox(it: &mut Item, tenant: &TenantId, kind: &str, at_ms: EpochMillis) {
    if EventType::parse(kind).is_none() {
        return;
    }
    it.insert(
        OUTBOX_SHARD.to_owned(),
        s(format!("OUTBOX#{}", outbox_shard(tenant))),
    );
    it.insert(OUTBOX_AT.to_owned(), n(at_ms));
    it.insert(OUTBOX_TYPE.to_owned(), s(kind));
}

impl EventOutbox for DynamoTable {
    async fn pending_events(
        &self,
        shard: u32,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, PortError> {
        let out = self
            .client()
            .query()
            .table_name(self.name())
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("#shard = :shard")
            .expression_attribute_names("#shard", OUTBOX_SHARD)
            .expression_attribute_values(":shard", s(format!("OUTBOX#{shard}")))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(100))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
        let mut events = Vec::new();
        for it in out.items.unwrap_or_default() {
            let text = |name: &str| match it.get(name) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            let (Some(pk), Some(key), Some(kind), Some(doc)) =
                (text(PK), text(SK), text(OUTBOX_TYPE), text(DOC_ATTRIBUTE))
            else {
                continue;
            };
            let Some(Ok(tenant_id)) = pk.strip_prefix("TENANT#").map(str::parse::<TenantId>) else {
                continue;
            };
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(&doc) else {
                tracing::error!(key = %key, "an outbox event is not JSON; left in the outbox");
                continue;
            };
            let (Some((event_type, data)), Some(Ok(event_id)), Some(Ok(at_ms))) = (
                outbox_data(&kind, &doc),
                doc["id"].as_str().map(str::parse),
                it.get(OUTBOX_AT).map(|v| match v {
                    AttributeValue::N(v) => v.parse::<EpochMillis>().map_err(drop),
                    _ => Err(()),
                }),
            ) else {
                continue;
            };
            events.push(OutboxEvent {
                tenant_id,
                key,
                event_id,
                event_type,
                at_ms,
                data,
            });
        }
        Ok(events)
    }

    async fn clear_outbox(&self, tenant: &TenantId, key: &str) -> Result<(), PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(key))
            .update_expression(format!("REMOVE {OUTBOX_SHARD}, {OUTBOX_AT}, {OUTBOX_TYPE}"))
            // An event that expired meanwhile is not made again as an empty item.
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        crate::tenancy::applied(result).map(drop)
    }
}

impl WebhookStore for DynamoTable {
    async fn create_endpoint(
        &self,
        e: &WebhookEndpoint,
        audit: &AuditEvent,
    ) -> Result<(), PortError> {
        let items = vec![
            put(
                self.name(),
                endpoint_item(e)?,
                Some("attribute_not_exists(pk)"),
            )?,
            put(self.name(), audit_item(audit)?, None)?,
        ];
        match self.transact_checked(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(conflict("TransactWriteItems")),
        }
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<WebhookEndpoint>, PortError> {
        let found: Option<WebhookEndpoint> =
            self.get_doc(&tenant_pk(tenant), &endpoint_sk(id)).await?;
        Ok(found.filter(|e| e.tenant_id == *tenant && e.id == *id))
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, PortError> {
        self.query_docs(&tenant_pk(tenant), ENDPOINT_SK, page).await
    }

    async fn update_endpoint(&self, e: &WebhookEndpoint, expected: u64) -> Result<bool, PortError> {
        self.replace_versioned(endpoint_item(e)?, expected, None)
            .await
    }

    async fn disable_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected: u64,
        event: &EndpointEvent,
    ) -> Result<bool, PortError> {
        let mut it = item(
            tenant_pk(&event.tenant_id),
            format!("{ENDPOINT_EVENT_SK}{}", event.id),
            &event.doc(),
        )?;
        it.insert(EXPIRES_AT.to_owned(), expiry(event.at_ms));
        with_outbox(&mut it, &event.tenant_id, ENDPOINT_DISABLED, event.at_ms);
        self.replace_versioned(endpoint_item(e)?, expected, Some(it))
            .await
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        audit: &AuditEvent,
    ) -> Result<bool, PortError> {
        let remove = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.name())
            .key(PK, s(tenant_pk(tenant)))
            .key(SK, s(endpoint_sk(id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| rejected("TransactWriteItems", e.to_string()))?;
        let items = vec![
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .delete(remove)
                .build(),
            put(self.name(), audit_item(audit)?, None)?,
        ];
        Ok(self.transact_checked(items).await?.is_ok())
    }

    async fn create_message(&self, m: &WebhookMessage) -> Result<bool, PortError> {
        self.put_conditional(message_item(m)?, "attribute_not_exists(pk)")
            .await
    }

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<WebhookMessage>, PortError> {
        let found: Option<WebhookMessage> =
            self.get_doc(&tenant_pk(tenant), &message_sk(id)).await?;
        Ok(found.filter(|m| m.tenant_id == *tenant && m.id == *id))
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookMessage>, PortError> {
        let mut list = ListFilter::default();
        if let Some(e) = &filter.endpoint_id {
            list.eq("endpoint_id", e.as_str());
        }
        if let Some(state) = filter.state {
            list.eq("state", state.as_str());
        }
        self.query_filtered(&tenant_pk(tenant), MESSAGE_SK, &list, page, |it| {
            decode(it, "Query")
        })
        .await
    }

    async fn update_message(
        &self,
        m: &WebhookMessage,
        expected: u64,
        attempt: Option<&DeliveryAttempt>,
    ) -> Result<bool, PortError> {
        let attempt = attempt.map(attempt_item).transpose()?;
        self.replace_versioned(message_item(m)?, expected, attempt)
            .await
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        message: &MessageId,
        page: &PageRequest,
    ) -> Result<Page<DeliveryAttempt>, PortError> {
        self.query_docs(&tenant_pk(tenant), &attempt_prefix(message), page)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_sort_newest_first() {
        let older: MessageId = "msg_0000000000010000000000000000000a".parse().unwrap();
        let newer: MessageId = "msg_0000000000020000000000000000000a".parse().unwrap();
        assert!(message_sk(&newer) < message_sk(&older));
    }
}
