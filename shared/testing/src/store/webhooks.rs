//! [`MemStore`]'s webhook endpoints, messages and attempts, and the event outbox, with the
//! adapter's semantics: version-checked updates, a message made once per id, newest-first message
//! lists, and every forwardable event (connection, sync and action events of a webhook type, and
//! forwarded provider events) waiting in its tenant's outbox shard until cleared.

use std::collections::{BTreeMap, HashSet};

use tributary_core::PortError;
use tributary_core::action::ACTION_RUN_COMPLETED;
use tributary_core::ids::{EndpointId, MessageId, TenantId};
use tributary_core::inbound::PROVIDER_EVENT;
use tributary_core::outbound::{
    DeliveryAttempt, ENDPOINT_DISABLED, EndpointEvent, OutboxEvent, WebhookEndpoint,
    WebhookMessage, outbox_data, outbox_shard,
};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{EventOutbox, MessageFilter, WebhookStore};
use tributary_core::tenancy::AuditEvent;

use super::{Access, MemStore, Tables, conflict, page};

pub(super) const ENDPOINT_SK: &str = "WHEP#";
const MESSAGE_SK: &str = "WHMSG#";
const ATTEMPT_SK: &str = "WHATT#";

/// The items of webhooks.
#[derive(Debug, Default)]
pub(super) struct WebhookTables {
    endpoints: BTreeMap<String, WebhookEndpoint>,
    messages: BTreeMap<String, WebhookMessage>,
    /// Attempts by `<message id>#<n>`.
    attempts: BTreeMap<String, DeliveryAttempt>,
    /// Event keys taken out of the outbox.
    cleared: HashSet<String>,
    /// Endpoints' events (their disabling), by id.
    endpoint_events: BTreeMap<String, EndpointEvent>,
}

impl WebhookTables {
    pub(super) fn ids_of(&self, tenant: &TenantId) -> Vec<String> {
        self.endpoints
            .values()
            .filter(|e| e.tenant_id == *tenant)
            .map(|e| e.id.to_string())
            .collect()
    }

    pub(super) fn remove(&mut self, id: &str) {
        self.endpoints.remove(id);
        self.messages.retain(|_, m| m.endpoint_id.as_str() != id);
    }
}

/// Every event of the store that a webhook can carry, as the adapter's outbox holds them.
fn outbox(t: &Tables) -> Vec<OutboxEvent> {
    let mut all = Vec::new();
    let mut push =
        |tenant: &TenantId, key: String, id, at_ms, kind: &str, doc: serde_json::Value| {
            if let Some((event_type, data)) = outbox_data(kind, &doc) {
                all.push(OutboxEvent {
                    tenant_id: tenant.clone(),
                    key,
                    event_id: id,
                    event_type,
                    at_ms,
                    data,
                });
            }
        };
    for e in t.events.values() {
        let doc = serde_json::to_value(e).unwrap_or_default();
        push(
            &e.tenant_id,
            format!("EVENT#{}", e.id),
            e.id.clone(),
            e.at_ms,
            e.kind.as_str(),
            doc,
        );
    }
    for e in t.syncs.events() {
        let doc = serde_json::to_value(e).unwrap_or_default();
        let kind = doc["type"].as_str().unwrap_or_default().to_owned();
        push(
            &e.tenant_id,
            format!("SYNCEVENT#{}", e.id),
            e.id.clone(),
            e.at_ms,
            &kind,
            doc,
        );
    }
    for e in t.actions.events() {
        let doc = serde_json::to_value(e).unwrap_or_default();
        push(
            &e.tenant_id,
            format!("ACTIONEVENT#{}", e.id),
            e.id.clone(),
            e.at_ms,
            ACTION_RUN_COMPLETED,
            doc,
        );
    }
    for e in t.webhooks.endpoint_events.values() {
        push(
            &e.tenant_id,
            format!("WHEVENT#{}", e.id),
            e.id.clone(),
            e.at_ms,
            ENDPOINT_DISABLED,
            e.doc(),
        );
    }
    for e in t.inbound.provider_events() {
        let doc = serde_json::to_value(e).unwrap_or_default();
        push(
            &e.tenant_id,
            format!("PROVIDEREVENT#{}", e.id),
            e.id.clone(),
            e.at_ms,
            PROVIDER_EVENT,
            doc,
        );
    }
    all.retain(|e| {
        !t.webhooks
            .cleared
            .contains(&format!("{}#{}", e.tenant_id, e.key))
    });
    all.sort_by(|a, b| (a.at_ms, &a.key).cmp(&(b.at_ms, &b.key)));
    all
}

impl EventOutbox for MemStore {
    async fn pending_events(
        &self,
        shard: u32,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, PortError> {
        self.port("pending_events", Access::Read, "Query", |t| {
            outbox(t)
                .into_iter()
                .filter(|e| outbox_shard(&e.tenant_id) == shard)
                .take(limit)
                .collect()
        })
        .await
    }

    async fn clear_outbox(&self, tenant: &TenantId, key: &str) -> Result<(), PortError> {
        self.port("clear_outbox", Access::Write, "UpdateItem", |t| {
            t.webhooks.cleared.insert(format!("{tenant}#{key}"));
        })
        .await
    }
}

impl WebhookStore for MemStore {
    async fn create_endpoint(&self, e: &WebhookEndpoint, a: &AuditEvent) -> Result<(), PortError> {
        self.port(
            "create_endpoint",
            Access::Write,
            "TransactWriteItems",
            |t| {
                if t.webhooks.endpoints.contains_key(e.id.as_str()) {
                    return Err(conflict("TransactWriteItems"));
                }
                t.webhooks.endpoints.insert(e.id.to_string(), e.clone());
                t.audit.insert(a.id.to_string(), a.clone());
                Ok(())
            },
        )
        .await?
    }

    async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<WebhookEndpoint>, PortError> {
        self.port("get_endpoint", Access::Read, "GetItem", |t| {
            t.webhooks
                .endpoints
                .get(id.as_str())
                .filter(|e| e.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_endpoints(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>, PortError> {
        self.port("list_endpoints", Access::Read, "Query", |t| {
            let mine = t
                .webhooks
                .endpoints
                .iter()
                .filter(|(_, e)| e.tenant_id == *tenant)
                .map(|(id, e)| (format!("{ENDPOINT_SK}{id}"), e.clone()))
                .collect();
            page(mine, ENDPOINT_SK, req)
        })
        .await?
    }

    async fn update_endpoint(&self, e: &WebhookEndpoint, expected: u64) -> Result<bool, PortError> {
        self.port("update_endpoint", Access::Write, "PutItem", |t| {
            match t
                .webhooks
                .endpoints
                .get_mut(e.id.as_str())
                .filter(|x| x.tenant_id == e.tenant_id)
            {
                None => Ok(false),
                Some(x) if x.version != expected => Err(conflict("PutItem")),
                Some(x) => {
                    *x = e.clone();
                    Ok(true)
                }
            }
        })
        .await?
    }

    async fn disable_endpoint(
        &self,
        e: &WebhookEndpoint,
        expected: u64,
        event: &EndpointEvent,
    ) -> Result<bool, PortError> {
        self.port(
            "disable_endpoint",
            Access::Write,
            "TransactWriteItems",
            |t| match t
                .webhooks
                .endpoints
                .get_mut(e.id.as_str())
                .filter(|x| x.tenant_id == e.tenant_id)
            {
                None => Ok(false),
                Some(x) if x.version != expected => Err(conflict("TransactWriteItems")),
                Some(x) => {
                    *x = e.clone();
                    t.webhooks
                        .endpoint_events
                        .insert(event.id.to_string(), event.clone());
                    Ok(true)
                }
            },
        )
        .await?
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port(
            "delete_endpoint",
            Access::Write,
            "TransactWriteItems",
            |t| {
                let found = t
                    .webhooks
                    .endpoints
                    .get(id.as_str())
                    .is_some_and(|e| e.tenant_id == *tenant);
                if found {
                    t.webhooks.endpoints.remove(id.as_str());
                    t.audit.insert(a.id.to_string(), a.clone());
                }
                found
            },
        )
        .await
    }

    async fn create_message(&self, m: &WebhookMessage) -> Result<bool, PortError> {
        self.port("create_message", Access::Write, "PutItem", |t| {
            if t.webhooks.messages.contains_key(m.id.as_str()) {
                return false;
            }
            t.webhooks.messages.insert(m.id.to_string(), m.clone());
            true
        })
        .await
    }

    async fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> Result<Option<WebhookMessage>, PortError> {
        self.port("get_message", Access::Read, "GetItem", |t| {
            t.webhooks
                .messages
                .get(id.as_str())
                .filter(|m| m.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        req: &PageRequest,
    ) -> Result<Page<WebhookMessage>, PortError> {
        self.port("list_messages", Access::Read, "Query", |t| {
            // Newest first: keys made to sort backwards, as a backwards query reads.
            let mine = t
                .webhooks
                .messages
                .iter()
                .filter(|(_, m)| m.tenant_id == *tenant)
                .filter(|(_, m)| {
                    filter
                        .endpoint_id
                        .as_ref()
                        .is_none_or(|e| *e == m.endpoint_id)
                })
                .filter(|(_, m)| filter.state.is_none_or(|s| s == m.state))
                .map(|(id, m)| {
                    (
                        format!("{MESSAGE_SK}{}", super::syncs::invert(id)),
                        m.clone(),
                    )
                })
                .collect();
            page(mine, MESSAGE_SK, req)
        })
        .await?
    }

    async fn update_message(
        &self,
        m: &WebhookMessage,
        expected: u64,
        attempt: Option<&DeliveryAttempt>,
    ) -> Result<bool, PortError> {
        self.port(
            "update_message",
            Access::Write,
            "TransactWriteItems",
            |t| match t
                .webhooks
                .messages
                .get_mut(m.id.as_str())
                .filter(|x| x.tenant_id == m.tenant_id)
            {
                None => Ok(false),
                Some(x) if x.version != expected => Err(conflict("TransactWriteItems")),
                Some(x) => {
                    *x = m.clone();
                    if let Some(a) = attempt {
                        t.webhooks
                            .attempts
                            .insert(format!("{}#{:05}", a.message_id, a.n), a.clone());
                    }
                    Ok(true)
                }
            },
        )
        .await?
    }

    async fn list_attempts(
        &self,
        tenant: &TenantId,
        message: &MessageId,
        req: &PageRequest,
    ) -> Result<Page<DeliveryAttempt>, PortError> {
        self.port("list_attempts", Access::Read, "Query", |t| {
            let prefix = format!("{ATTEMPT_SK}{message}#");
            let mine = t
                .webhooks
                .attempts
                .iter()
                .filter(|(_, a)| a.tenant_id == *tenant && a.message_id == *message)
                .map(|(k, a)| (format!("{ATTEMPT_SK}{k}"), a.clone()))
                .collect();
            page(mine, &prefix, req)
        })
        .await?
    }
}
