//! Inbound provider webhooks: a delivery the API verified (by the provider's scheme, with the
//! secret its spec names) and kept for the connector, which routes it to the integration's
//! connections: a sync run started, a `provider.event` forwarded to the tenant's endpoints, or
//! both, as the integration's [`WebhookRouting`] says.
//!
//! The API answers the provider within a second: it records the delivery (with the replay marker
//! of its event id, when the provider gives one) and queues a job that points at it; the job
//! carries no payload. A delivery and its marker are kept [`INBOUND_RETENTION_SECS`]: providers
//! retry a delivery they think failed for up to three days, and a repeated event id within that
//! time is acknowledged, never processed again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConnectionId, EventId, InboundId, IntegrationId, TenantId};
use crate::time::EpochMillis;

/// What the vault binds an integration's inbound webhook signing secret to (with the tenant and
/// the integration id).
pub const WEBHOOK_SECRET_PURPOSE: &str = "inbound_webhook_secret";
/// What the vault binds a verification token a provider sent (Notion's handshake) to, while it
/// waits for the tenant's confirmation.
pub const VERIFICATION_TOKEN_PURPOSE: &str = "webhook_verification_token";
/// The largest delivery accepted, in bytes of body.
pub const MAX_INBOUND_BODY_BYTES: usize = 256 * 1024;
/// The largest payload a delivery keeps, in bytes of its JSON: a text body's escaping can make
/// its JSON larger than the body, and a stored item is bounded (DynamoDB's 400 KB).
pub const MAX_STORED_PAYLOAD_BYTES: usize = 300 * 1024;
/// The largest provider payload a `provider.event` carries, in bytes of JSON; a larger one is
/// replaced by an [`OmittedPayload`] marker.
pub const MAX_FORWARDED_PAYLOAD_BYTES: usize = 64 * 1024;
/// How long a delivery and its replay marker are kept (3 days: how long providers retry).
pub const INBOUND_RETENTION_SECS: i64 = 3 * 86_400;
/// The connection tag whose value routes a provider's events to the connection: the event's
/// routing key (Stripe `acct_…`, a GitHub installation id, a Slack team id, a Shopify shop
/// domain, a HubSpot portal id, an Airtable webhook id).
pub const PROVIDER_ACCOUNT_TAG: &str = "provider_account";

/// What an integration's verified provider events do for each connection they route to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookRouting {
    /// Start a run of each of the connection's active syncs (one without a run in progress).
    Sync,
    /// Forward the event to the tenant's webhook endpoints as `provider.event`.
    Forward,
    /// Both.
    #[default]
    Both,
}

impl WebhookRouting {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookRouting::Sync => "sync",
            WebhookRouting::Forward => "forward",
            WebhookRouting::Both => "both",
        }
    }

    /// Whether events start syncs.
    pub fn syncs(self) -> bool {
        matches!(self, WebhookRouting::Sync | WebhookRouting::Both)
    }

    /// Whether events are forwarded.
    pub fn forwards(self) -> bool {
        matches!(self, WebhookRouting::Forward | WebhookRouting::Both)
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    /// Verified and queued; not routed yet.
    Received,
    /// Routed to its connections.
    Processed,
    /// No connection matched: kept until it expires, and counted.
    Unrouted,
}

impl InboundState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundState::Received => "received",
            InboundState::Processed => "processed",
            InboundState::Unrouted => "unrouted",
        }
    }
}

/// A verified provider webhook, kept for the connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    /// Id.
    pub id: InboundId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The integration whose URL it was sent to.
    pub integration_id: IntegrationId,
    /// The integration's provider.
    pub provider: String,
    /// The provider's event id, when its scheme gives one (the replay marker's key).
    pub event_id: Option<String>,
    /// The provider's event type.
    pub event_type: Option<String>,
    /// The verified routing key (compared with connections' `provider_account` tag).
    pub connection_key: Option<String>,
    /// The body: its JSON when it is JSON, else its text when it is UTF-8 ([`payload_of`]).
    pub payload: Option<Value>,
    /// Why `payload` is absent, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_omitted: Option<OmittedPayload>,
    /// Where it is.
    pub state: InboundState,
    /// The connections it was routed to, once processed.
    #[serde(default)]
    pub routed_to: Vec<ConnectionId>,
    /// When the API received it.
    pub received_at_ms: EpochMillis,
    /// When the connector routed it (or found no connection).
    pub processed_at_ms: Option<EpochMillis>,
    /// Incremented by every update.
    pub version: u64,
}

impl InboundEvent {
    /// When it and its replay marker expire (epoch seconds).
    pub fn expires_at_s(&self) -> i64 {
        self.received_at_ms / 1000 + INBOUND_RETENTION_SECS
    }
}

/// The payload of a delivery as it is kept: its JSON, else its text, up to
/// [`MAX_STORED_PAYLOAD_BYTES`]; else why it is not kept.
pub fn payload_of(body: &[u8]) -> Result<Value, OmittedPayload> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(json) => json,
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) if !text.is_empty() => Value::String(text.to_owned()),
            _ => {
                return Err(OmittedPayload {
                    reason: "not_text".into(),
                    size_bytes: Some(body.len()),
                });
            }
        },
    };
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |b| b.len());
    if size > MAX_STORED_PAYLOAD_BYTES {
        return Err(OmittedPayload {
            reason: "too_large".into(),
            size_bytes: Some(size),
        });
    }
    Ok(value)
}

/// Why a `provider.event` carries no payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmittedPayload {
    /// `too_large` (over [`MAX_FORWARDED_PAYLOAD_BYTES`] forwarded, or
    /// [`MAX_STORED_PAYLOAD_BYTES`] kept) or `not_text` (neither JSON nor UTF-8 text, or empty).
    pub reason: String,
    /// The payload's size in bytes (of its JSON), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<usize>,
}

/// The event type forwarded events are recorded with.
pub const PROVIDER_EVENT: &str = "provider.event";

/// A provider's event routed to one connection and forwarded to the tenant's endpoints (it enters
/// the event outbox as `provider.event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderEvent {
    /// Id, derived from the delivery and the connection ([`ProviderEvent::id_for`]): a
    /// redelivered job records the same event, not a second one.
    pub id: EventId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The integration.
    pub integration_id: IntegrationId,
    /// The connection it was routed to.
    pub connection_id: ConnectionId,
    /// The provider.
    pub provider: String,
    /// The provider's event type.
    pub provider_event_type: Option<String>,
    /// The provider's event id.
    pub provider_event_id: Option<String>,
    /// The delivery it came in.
    pub inbound_id: InboundId,
    /// The provider's payload, up to [`MAX_FORWARDED_PAYLOAD_BYTES`].
    pub payload: Option<Value>,
    /// Why `payload` is absent, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_omitted: Option<OmittedPayload>,
    /// When it was recorded.
    pub at_ms: EpochMillis,
}

impl ProviderEvent {
    /// The id of the event of `inbound` routed to `connection`.
    pub fn id_for(inbound: &InboundEvent, connection: &ConnectionId) -> EventId {
        EventId::derive(
            inbound.received_at_ms,
            &format!("{}/{connection}", inbound.id),
        )
    }

    /// The event of `inbound` routed to `connection`, recorded at `at_ms`, its payload bounded.
    pub fn of(inbound: &InboundEvent, connection: &ConnectionId, at_ms: EpochMillis) -> Self {
        let (payload, payload_omitted) = match &inbound.payload {
            None => (
                None,
                Some(
                    inbound
                        .payload_omitted
                        .clone()
                        .unwrap_or_else(|| OmittedPayload {
                            reason: "not_text".into(),
                            size_bytes: None,
                        }),
                ),
            ),
            Some(p) => {
                let size = serde_json::to_vec(p).map(|b| b.len()).unwrap_or(usize::MAX);
                if size > MAX_FORWARDED_PAYLOAD_BYTES {
                    (
                        None,
                        Some(OmittedPayload {
                            reason: "too_large".into(),
                            size_bytes: Some(size),
                        }),
                    )
                } else {
                    (Some(p.clone()), None)
                }
            }
        };
        Self {
            id: Self::id_for(inbound, connection),
            tenant_id: inbound.tenant_id.clone(),
            integration_id: inbound.integration_id.clone(),
            connection_id: connection.clone(),
            provider: inbound.provider.clone(),
            provider_event_type: inbound.event_type.clone(),
            provider_event_id: inbound.event_id.clone(),
            inbound_id: inbound.id.clone(),
            payload,
            payload_omitted,
            at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(payload: Option<Value>) -> InboundEvent {
        InboundEvent {
            id: InboundId::generate(),
            tenant_id: TenantId::generate(),
            integration_id: IntegrationId::generate(),
            provider: "stripe".into(),
            event_id: Some("evt_1".into()),
            event_type: Some("customer.created".into()),
            connection_key: Some("acct_1".into()),
            payload,
            payload_omitted: None,
            state: InboundState::Received,
            routed_to: Vec::new(),
            received_at_ms: 1_765_000_000_000,
            processed_at_ms: None,
            version: 1,
        }
    }

    #[test]
    fn a_forwarded_payload_is_bounded_and_its_event_id_is_stable() {
        let small = inbound(Some(serde_json::json!({"id": "evt_1"})));
        let c = ConnectionId::generate();
        let e = ProviderEvent::of(&small, &c, 5);
        assert_eq!(e.payload, small.payload);
        assert_eq!(e.payload_omitted, None);
        assert_eq!(e.id, ProviderEvent::of(&small, &c, 9).id);
        assert_ne!(
            e.id,
            ProviderEvent::of(&small, &ConnectionId::generate(), 5).id
        );

        let exactly = "x".repeat(MAX_FORWARDED_PAYLOAD_BYTES - 2);
        let e = ProviderEvent::of(&inbound(Some(Value::String(exactly))), &c, 5);
        assert!(e.payload.is_some(), "the limit itself is kept");
        let over = "x".repeat(MAX_FORWARDED_PAYLOAD_BYTES - 1);
        let e = ProviderEvent::of(&inbound(Some(Value::String(over))), &c, 5);
        assert_eq!(e.payload, None);
        assert_eq!(
            e.payload_omitted,
            Some(OmittedPayload {
                reason: "too_large".into(),
                size_bytes: Some(MAX_FORWARDED_PAYLOAD_BYTES + 1)
            })
        );
        // A payload the delivery could not keep says why it is absent.
        let unkept = InboundEvent {
            payload_omitted: Some(OmittedPayload {
                reason: "too_large".into(),
                size_bytes: Some(400_000),
            }),
            ..inbound(None)
        };
        let e = ProviderEvent::of(&unkept, &c, 5);
        assert_eq!(e.payload, None);
        assert_eq!(e.payload_omitted, unkept.payload_omitted);
    }

    #[test]
    fn payloads_are_json_else_text_else_nothing_and_bounded_as_stored() {
        assert_eq!(payload_of(br#"{"a":1}"#), Ok(serde_json::json!({"a": 1})));
        assert_eq!(
            payload_of(b"token=x&team_id=T1"),
            Ok(Value::String("token=x&team_id=T1".into()))
        );
        assert_eq!(payload_of(&[0xff, 0xfe]).unwrap_err().reason, "not_text");
        assert_eq!(payload_of(b"").unwrap_err().reason, "not_text");
        // 200 KiB of quotes is 400 KiB once escaped: not kept, and said so.
        let quotes = vec![b'"'; 200 * 1024];
        let omitted = payload_of(&quotes).unwrap_err();
        assert_eq!(omitted.reason, "too_large");
        assert_eq!(omitted.size_bytes, Some(2 * 200 * 1024 + 2));
        let kept = vec![b'a'; 200 * 1024];
        assert!(payload_of(&kept).is_ok());
    }
}
