//! Outbound webhooks to tenants, after the Standard Webhooks specification
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! endpoints and their secrets, the event types, messages (one event for one endpoint, whose id is
//! the stable `webhook-id` of every attempt), attempts, the retry schedule, and the signature.
//!
//! A message's body is fixed when it is made: `{"type", "timestamp", "data"}`, serialized once, so
//! every attempt and every replay sends the same bytes. Each attempt signs
//! `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under every secret the endpoint holds
//! (two while a rotated secret is still in its overlap), as `v1,<base64>` entries separated by
//! spaces in `webhook-signature`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::{EndpointId, EventId, MessageId, TenantId};
use crate::time::EpochMillis;

/// The purpose an endpoint's secrets are sealed for in the vault.
pub const SECRET_PURPOSE: &str = "webhook_secret";
/// The prefix of an endpoint's secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// How long a replaced secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: EpochMillis = 24 * 3600 * 1000;
/// The timeout of one delivery attempt.
pub const ATTEMPT_TIMEOUT_SECS: u64 = 15;
/// The waits before each attempt, from the message's creation or the previous attempt: at once,
/// then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about 27.6 h in all), each but the first with
/// up to 10 % of jitter either way.
pub const RETRY_SCHEDULE_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000];
/// The most endpoints a tenant may have.
pub const MAX_ENDPOINTS: usize = 20;
/// The largest body a message carries.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long messages and their attempts are kept.
pub const MESSAGE_RETENTION_DAYS: i64 = 30;

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// The events a tenant's endpoint can subscribe to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventType {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)*
        }

        impl EventType {
            /// Every type, in a stable order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $text,)*
                }
            }

            /// The type of a wire name.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    /// A connection was made.
    ConnectionCreated => "connection.created",
    /// A connection works again (its end user reconnected, or a test passed).
    ConnectionReauthorized => "connection.reauthorized",
    /// Refreshing a connection's token failed for good: it needs its end user.
    ConnectionRefreshFailed => "connection.refresh_failed",
    /// A connection was deleted.
    ConnectionDeleted => "connection.deleted",
    /// A sync run read everything.
    SyncRunSucceeded => "sync.run.succeeded",
    /// A sync run failed.
    SyncRunFailed => "sync.run.failed",
    /// A sync run stopped moving.
    SyncRunStalled => "sync.run.stalled",
    /// An asynchronous action run ended.
    ActionRunCompleted => "action.run.completed",
    /// A provider's webhook, verified and routed to a connection, forwarded.
    ProviderEvent => "provider.event",
    /// A webhook endpoint was disabled after its deliveries failed (it answered 410 Gone).
    WebhookEndpointDisabled => "webhook.endpoint.disabled",
}

/// The wire name of [`EventType::WebhookEndpointDisabled`].
pub const ENDPOINT_DISABLED: &str = "webhook.endpoint.disabled";

/// An endpoint's event: recorded with the change that caused it, and sent to the tenant's other
/// endpoints (a disabled endpoint receives nothing more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointEvent {
    /// Id.
    pub id: EventId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its URL (as the tenant registered it).
    pub url: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at_ms: EpochMillis,
}

impl EndpointEvent {
    /// The event as stored: its fields and its `type` (the outbox's data is this less `type`
    /// and `tenant_id`).
    pub fn doc(&self) -> serde_json::Value {
        let mut doc = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("type".into(), ENDPOINT_DISABLED.into());
        }
        doc
    }
}

/// A new secret: `whsec_` and the base64 of [`SECRET_BYTES`] random bytes.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64")]
pub struct BadSecret;

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under `secret` (`whsec_…`).
pub fn sign(
    secret: &SecretString,
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let key = secret
        .expose_secret()
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| STANDARD.decode(k).ok())
        .ok_or(BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` value: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[SecretString],
    msg_id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let signed: Result<Vec<String>, BadSecret> = secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp_s, body))
        .collect();
    Ok(signed?.join(" "))
}

/// The wait before attempt `n` (1-based) of a message, `jitter` in `[0, 1)`; `None` after the last.
pub fn attempt_delay_ms(n: u32, jitter: f64) -> Option<EpochMillis> {
    let base = *RETRY_SCHEDULE_SECS.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
    let base_ms = i64::try_from(base).ok()? * 1000;
    // ±10 %: a burst of failures does not come back at once.
    let spread = (base_ms as f64 * 0.2 * (jitter.clamp(0.0, 1.0) - 0.5)) as i64;
    Some(base_ms + spread)
}

/// One of an endpoint's secrets, sealed in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSecret {
    /// The sealed `whsec_…`.
    pub sealed: String,
    /// When it was made.
    pub created_at_ms: EpochMillis,
    /// When it stops signing (a rotated-out secret); `None` for the current one.
    pub expires_at_ms: Option<EpochMillis>,
}

/// A tenant's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// Id.
    pub id: EndpointId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Where messages are posted (https, unless the deployment's allowlist opens the host).
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// The event types it receives; empty for every type.
    pub event_types: Vec<EventType>,
    /// Whether messages are made for it.
    pub enabled: bool,
    /// Why it was disabled, when a delivery disabled it (its receiver answered 410).
    pub disabled_reason: Option<String>,
    /// The current secret first, then any rotated-out secret still in its overlap.
    pub secrets: Vec<EndpointSecret>,
    /// When it was made.
    pub created_at_ms: EpochMillis,
    /// When it last changed.
    pub updated_at_ms: EpochMillis,
    /// Optimistic concurrency version.
    pub version: u64,
}

impl WebhookEndpoint {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.enabled && (self.event_types.is_empty() || self.event_types.contains(&kind))
    }

    /// The secrets that sign at `now`.
    pub fn signing_secrets(&self, now: EpochMillis) -> impl Iterator<Item = &EndpointSecret> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at_ms.is_none_or(|at| at > now))
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// An attempt is due (or in progress).
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every scheduled attempt failed; kept for a replay.
    Exhausted,
    /// Not sent: its endpoint was disabled or deleted, or answered 410.
    Failed,
}

impl MessageState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Succeeded => "succeeded",
            MessageState::Exhausted => "exhausted",
            MessageState::Failed => "failed",
        }
    }
}

/// One event for one endpoint: what is delivered, with the same id and body on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    /// Id: the `webhook-id`.
    pub id: MessageId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The event it carries.
    pub event_id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// The exact body sent.
    pub body: String,
    /// Where it is.
    pub state: MessageState,
    /// Attempts made since it was made or last replayed.
    pub attempts: u32,
    /// Attempts made in all.
    pub total_attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at_ms: Option<EpochMillis>,
    /// The last attempt's HTTP status, when the receiver answered.
    pub last_status: Option<u16>,
    /// The last attempt's failure, when it failed.
    pub last_error: Option<String>,
    /// When it was made.
    pub created_at_ms: EpochMillis,
    /// When it last changed.
    pub updated_at_ms: EpochMillis,
    /// Optimistic concurrency version.
    pub version: u64,
}

impl WebhookMessage {
    /// The message of `event_id` for `endpoint`: its id is derived from both, so that making it
    /// again (a repeated dispatch) finds the same message rather than a second one.
    pub fn id_for(event_id: &EventId, at_ms: EpochMillis, endpoint: &EndpointId) -> MessageId {
        use sha2::Digest;
        let digest = Sha256::digest(format!("{event_id}/{endpoint}").as_bytes());
        // 32 hex digits, as every id: the event's time first (48 bits, so that ids sort by when
        // their events happened, like the UUIDv7 of other ids), then 80 bits of the digest.
        let millis = u64::try_from(at_ms).unwrap_or_default() & 0xffff_ffff_ffff;
        let text = format!("msg_{millis:012x}{}", &hex::encode(digest)[..20]);
        text.parse().unwrap_or_else(|_| MessageId::generate())
    }

    /// The body of an event: `{"type", "timestamp", "data"}` (Standard Webhooks' payload).
    pub fn body_of(kind: EventType, at_ms: EpochMillis, data: &serde_json::Value) -> String {
        serde_json::json!({
            "type": kind.as_str(),
            "timestamp": crate::time::rfc3339(at_ms).unwrap_or_default(),
            "data": data,
        })
        .to_string()
    }
}

/// One delivery attempt of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// The message.
    pub message_id: MessageId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its number among the message's attempts in all (1-based).
    pub n: u32,
    /// When it was made.
    pub at_ms: EpochMillis,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed (no answer, a redirect, a refusal), without secrets.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it succeeded.
    pub succeeded: bool,
}

/// An event waiting in the outbox to be made into messages for the tenant's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Owner.
    pub tenant_id: TenantId,
    /// The event item's key in the tenant's partition (to clear it from the outbox).
    pub key: String,
    /// The event.
    pub event_id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// When it happened.
    pub at_ms: EpochMillis,
    /// What it says (no secrets: events never carry any).
    pub data: serde_json::Value,
}

/// The outbox data of an event, when its type is one endpoints can receive.
pub fn outbox_data<E: Serialize>(kind: &str, event: &E) -> Option<(EventType, serde_json::Value)> {
    let kind = EventType::parse(kind)?;
    let mut data = serde_json::to_value(event).ok()?;
    if let Some(obj) = data.as_object_mut() {
        // The envelope says these.
        obj.remove("type");
        obj.remove("tenant_id");
    }
    Some((kind, data))
}

/// The outbox partition of a tenant's events (of [`crate::ports::OUTBOX_SHARDS`]).
pub fn outbox_shard(tenant: &TenantId) -> u32 {
    use sha2::Digest;
    let digest = Sha256::digest(tenant.as_str().as_bytes());
    u32::from(digest[0]) % crate::ports::OUTBOX_SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example, which its reference libraries test against.
    #[test]
    fn the_standard_webhooks_known_answer() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_sign() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        let key = STANDARD
            .decode(&a.expose_secret()[SECRET_PREFIX.len()..])
            .unwrap();
        assert_eq!(key.len(), SECRET_BYTES);
        let two = signature_header(&[a, b], "msg_1", 1, b"{}").unwrap();
        assert_eq!(two.split(' ').count(), 2);
        assert!(sign(&SecretString::from("nope".to_owned()), "m", 1, b"").is_err());
    }

    #[test]
    fn the_schedule_has_eight_attempts_with_bounded_jitter() {
        assert_eq!(attempt_delay_ms(1, 0.9), Some(0));
        assert_eq!(attempt_delay_ms(2, 0.5), Some(5_000));
        let low = attempt_delay_ms(3, 0.0).unwrap();
        let high = attempt_delay_ms(3, 0.999).unwrap();
        assert!((270_000..=300_000).contains(&low) && (300_000..=330_000).contains(&high));
        assert_eq!(attempt_delay_ms(8, 0.5), Some(36_000_000));
        assert_eq!(attempt_delay_ms(9, 0.5), None);
        assert_eq!(attempt_delay_ms(0, 0.5), None);
    }

    #[test]
    fn a_message_id_is_stable_per_event_and_endpoint() {
        let e = EventId::generate();
        let (a, b) = (EndpointId::generate(), EndpointId::generate());
        let at = 1_765_000_000_000;
        let id = WebhookMessage::id_for(&e, at, &a);
        assert_eq!(id, WebhookMessage::id_for(&e, at, &a));
        assert_ne!(id, WebhookMessage::id_for(&e, at, &b));
        assert!(id.as_str().starts_with("msg_"), "{id}");
        assert_eq!(id.as_str().len(), 4 + 32);
        // Later events sort after.
        assert!(WebhookMessage::id_for(&e, at + 1, &a).as_str() > id.as_str());
    }
}
