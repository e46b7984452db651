//! Outbound webhooks: events made into messages (`dispatch_events` jobs), and messages delivered
//! to tenants' endpoints (`deliver_webhook` jobs), after the Standard Webhooks specification.
//!
//! **Dispatch.** The monitor enqueues a dispatch of an outbox shard in which events wait. Each
//! event becomes one message per enabled endpoint of its tenant that wants its type; the message's
//! id is derived from the event and the endpoint, so a repeated dispatch finds the message it made
//! rather than a second one. The event leaves the outbox only once its messages and their delivery
//! jobs exist.
//!
//! **Delivery.** One attempt per job: the body signed under every secret of the endpoint that is
//! still signing, `POST`ed with a 15 s timeout; redirects are never followed (a 3xx is a failure),
//! the egress guard applies to every attempt. A 2xx ends the message `succeeded`; a 410 disables the
//! endpoint and ends it `failed`; anything else schedules the next attempt (immediately, 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h, 10 h, with jitter, and never sooner than a `Retry-After`), chained
//! through the queue's 15-minute delays, until the schedule ends: then the message is `exhausted`,
//! kept, and can be replayed. Every attempt is recorded with the message's update, in one write.
//! Delivery is at least once: an attempt whose answer was lost is sent again with the same
//! `webhook-id`, which receivers dedupe by.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use tributary_core::PortError;
use tributary_core::ids::{EventId, MessageId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::operation::{self, OperationError, OperationState};
use tributary_core::outbound::{
    DeliveryAttempt, EndpointEvent, MessageState, WebhookEndpoint, WebhookMessage,
    attempt_delay_ms, signature_header,
};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{EventOutbox, JobQueue, WebhookStore};
use tributary_core::time::{Clock, EpochMillis};
use tributary_core::vault::{Owner, Vault};
use tributary_http::classify::{Classifier, Classify, Failure};
use tributary_http::{HttpClient, HttpConfig, OutRequest};
use url::Url;

pub use tributary_core::outbound::SECRET_PURPOSE;
/// Events dispatched per job.
pub const DISPATCH_BATCH: usize = 100;
/// The longest delay SQS gives a message.
const MAX_QUEUE_DELAY_MS: EpochMillis = 900_000;
/// The longest `Retry-After` honoured (the schedule's longest wait).
const MAX_RETRY_AFTER_MS: EpochMillis = 36_000_000;

/// What deliveries need.
pub struct Delivering {
    /// Sends deliveries: one attempt, 15 s, no redirects, the egress guard.
    pub client: HttpClient,
    /// Opens endpoints' secrets.
    pub vault: Vault,
}

/// The HTTP settings of deliveries under `egress`.
pub fn delivery_http(egress: tributary_http::EgressPolicy) -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(tributary_core::outbound::ATTEMPT_TIMEOUT_SECS),
        max_attempts: 1,
        time_budget: Duration::from_secs(tributary_core::outbound::ATTEMPT_TIMEOUT_SECS),
        max_redirects: 0,
        max_response_bytes: 64 * 1024,
        require_https: true,
        egress,
        ..HttpConfig::default()
    }
}

/// Why a webhook job failed (the message is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum WebhookJobError {
    /// The store or the queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Makes the messages of up to [`DISPATCH_BATCH`] events waiting in `shard`, sends their delivery
/// jobs, and takes the events out of the outbox. Another dispatch is queued when the shard may
/// hold more.
pub async fn dispatch<S, Q>(
    store: &S,
    queue: &Q,
    clock: &dyn Clock,
    shard: u32,
) -> Result<(), WebhookJobError>
where
    S: EventOutbox + WebhookStore,
    Q: JobQueue,
{
    let events = store.pending_events(shard, DISPATCH_BATCH).await?;
    let mut endpoints: HashMap<TenantId, Vec<WebhookEndpoint>> = HashMap::new();
    let now = clock.now_ms();
    let (mut made, mut found) = (0usize, 0usize);
    for event in &events {
        if !endpoints.contains_key(&event.tenant_id) {
            let all = all_endpoints(store, &event.tenant_id).await?;
            endpoints.insert(event.tenant_id.clone(), all);
        }
        let mut jobs = Vec::new();
        for endpoint in endpoints[&event.tenant_id]
            .iter()
            .filter(|e| e.wants(event.event_type))
        {
            let message = WebhookMessage {
                id: WebhookMessage::id_for(&event.event_id, event.at_ms, &endpoint.id),
                tenant_id: event.tenant_id.clone(),
                endpoint_id: endpoint.id.clone(),
                event_id: event.event_id.clone(),
                event_type: event.event_type,
                body: WebhookMessage::body_of(event.event_type, event.at_ms, &event.data),
                state: MessageState::Pending,
                attempts: 0,
                total_attempts: 0,
                next_attempt_at_ms: Some(now),
                last_status: None,
                last_error: None,
                created_at_ms: now,
                updated_at_ms: now,
                version: 1,
            };
            let send = if store.create_message(&message).await? {
                made += 1;
                true
            } else {
                // Made by an earlier dispatch that may have stopped before its job was sent.
                found += 1;
                store
                    .get_message(&event.tenant_id, &message.id)
                    .await?
                    .is_some_and(|m| m.state == MessageState::Pending && m.attempts == 0)
            };
            if send {
                jobs.push(JobEnvelope::new(JobKind::DeliverWebhook {
                    tenant_id: event.tenant_id.clone(),
                    message_id: message.id.clone(),
                }));
            }
        }
        if !jobs.is_empty() {
            queue.send_batch(&jobs).await?;
        }
        store.clear_outbox(&event.tenant_id, &event.key).await?;
    }
    tracing::info!(
        shard,
        events = events.len(),
        messages = made,
        found_made = found,
        "events dispatched"
    );
    if events.len() == DISPATCH_BATCH {
        queue
            .send(
                &JobEnvelope::new(JobKind::DispatchEvents { shard }),
                Duration::ZERO,
            )
            .await?;
    }
    Ok(())
}

async fn all_endpoints<S: WebhookStore>(
    store: &S,
    tenant: &TenantId,
) -> Result<Vec<WebhookEndpoint>, PortError> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        limit: 100,
        after: None,
    };
    loop {
        let found = store.list_endpoints(tenant, &page).await?;
        all.extend(found.items);
        match found.next_after {
            Some(next) => page.after = Some(next),
            None => return Ok(all),
        }
    }
}

/// Classifies nothing: the receiver's status is judged here.
struct Answered;

impl Classify for Answered {
    fn classify(&self, _: StatusCode, _: &HeaderMap, _: &[u8]) -> Option<Failure> {
        None
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        Classifier::default().retry_after(headers)
    }
}

/// What one attempt came to.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

/// Makes one attempt of the tenant's message `id`, or waits for its time.
pub async fn deliver<S, Q>(
    store: &S,
    queue: &Q,
    delivering: &Delivering,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &MessageId,
) -> Result<(), WebhookJobError>
where
    S: WebhookStore,
    Q: JobQueue,
{
    let Some(mut message) = store.get_message(tenant, id).await? else {
        tracing::info!(message_id = %id, "the message is gone; nothing to deliver");
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    if message.state != MessageState::Pending {
        tracing::info!(message_id = %id, state = message.state.as_str(), "the message is not pending; nothing to deliver");
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    let now = clock.now_ms();
    if let Some(due) = message.next_attempt_at_ms
        && due > now + 1000
    {
        // Not yet: the queue's delays are 15 minutes at most, so longer waits are chained.
        let wait = (due - now).min(MAX_QUEUE_DELAY_MS);
        later(queue, &message, wait).await?;
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    operation::describe(|d| d.op.name = Some(message.event_type.as_str().to_owned()));
    let read_version = message.version;
    let endpoint = store.get_endpoint(tenant, &message.endpoint_id).await?;
    let Some(endpoint) = endpoint.filter(|e| e.enabled) else {
        message.state = MessageState::Failed;
        message.next_attempt_at_ms = None;
        message.last_error = Some("its endpoint was disabled or deleted".into());
        message.updated_at_ms = now;
        message.version += 1;
        if let Err(e) = store.update_message(&message, read_version, None).await
            && !matches!(e, PortError::Conflict { .. })
        {
            return Err(e.into());
        }
        return Ok(());
    };
    let started = Instant::now();
    let outcome = attempt(delivering, &endpoint, &message, now).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = clock.now_ms();
    message.attempts += 1;
    message.total_attempts += 1;
    message.last_status = outcome.status;
    message.last_error = outcome.error.clone();
    message.updated_at_ms = now;
    message.version += 1;
    let succeeded = outcome.status.is_some_and(|s| (200..300).contains(&s));
    let gone = outcome.status == Some(410);
    let mut next_wait = None;
    if succeeded {
        message.state = MessageState::Succeeded;
        message.next_attempt_at_ms = None;
    } else if gone {
        message.state = MessageState::Failed;
        message.next_attempt_at_ms = None;
    } else {
        let jitter = rand::rng().random::<f64>();
        match attempt_delay_ms(message.attempts + 1, jitter) {
            Some(delay) => {
                let asked = outcome.retry_after.map_or(0, |d| {
                    i64::try_from(d.as_millis())
                        .unwrap_or(i64::MAX)
                        .min(MAX_RETRY_AFTER_MS)
                });
                let wait = delay.max(asked);
                message.next_attempt_at_ms = Some(now + wait);
                next_wait = Some(wait);
            }
            None => {
                message.state = MessageState::Exhausted;
                message.next_attempt_at_ms = None;
            }
        }
    }
    let record = DeliveryAttempt {
        message_id: message.id.clone(),
        tenant_id: message.tenant_id.clone(),
        endpoint_id: message.endpoint_id.clone(),
        n: message.total_attempts,
        at_ms: now,
        status: outcome.status,
        error: outcome.error,
        duration_ms,
        succeeded,
    };
    match store
        .update_message(&message, read_version, Some(&record))
        .await
    {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        // Another delivery of the message recorded its attempt first; its write stands.
        Err(PortError::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(message_id = %message.id, endpoint_id = %endpoint.id, attempt = message.total_attempts, status = ?record.status, state = message.state.as_str(), duration_ms, "webhook attempt");
    // Every attempt is `succeeded` or `failed` (the alarm's failure rate); a message that ran out
    // of attempts and an endpoint disabled by a 410 are counted besides, as what they are.
    let (state, end) = match message.state {
        MessageState::Succeeded => (OperationState::Succeeded, None),
        MessageState::Exhausted => (OperationState::Failed, Some("exhausted")),
        _ if gone => (OperationState::Failed, Some("disabled")),
        _ => (OperationState::Retrying, None),
    };
    tributary_aws::metrics::webhook_delivery(if succeeded { "succeeded" } else { "failed" });
    if let Some(end) = end {
        tributary_aws::metrics::webhook_delivery(end);
    }
    operation::describe(|d| {
        d.state = Some(state);
        if !succeeded {
            d.op.error = Some(OperationError {
                class: if gone { "gone" } else { "delivery_failed" }.into(),
                message: match (record.status, &record.error) {
                    (Some(status), _) => format!("the endpoint answered HTTP {status}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "the delivery failed".into(),
                },
            });
        }
    });
    if gone {
        disable(store, endpoint, now).await?;
    }
    if let Some(wait) = next_wait {
        later(queue, &message, wait.min(MAX_QUEUE_DELAY_MS)).await?;
    }
    Ok(())
}

/// Sends the message's delivery job again after `wait_ms`.
async fn later<Q: JobQueue>(
    queue: &Q,
    message: &WebhookMessage,
    wait_ms: EpochMillis,
) -> Result<(), PortError> {
    let job = JobEnvelope::new(JobKind::DeliverWebhook {
        tenant_id: message.tenant_id.clone(),
        message_id: message.id.clone(),
    });
    queue
        .send(
            &job,
            Duration::from_millis(u64::try_from(wait_ms.max(0)).unwrap_or(0)),
        )
        .await
}

/// The receiver answered 410 Gone: the endpoint is disabled, with the reason, and a
/// `webhook.endpoint.disabled` event (in the same write) tells the tenant's other endpoints.
async fn disable<S: WebhookStore>(
    store: &S,
    mut endpoint: WebhookEndpoint,
    now: EpochMillis,
) -> Result<(), PortError> {
    let read_version = endpoint.version;
    let reason = "the endpoint answered 410 Gone";
    endpoint.enabled = false;
    endpoint.disabled_reason = Some(reason.into());
    endpoint.updated_at_ms = now;
    endpoint.version += 1;
    let event = EndpointEvent {
        id: EventId::generate(),
        tenant_id: endpoint.tenant_id.clone(),
        endpoint_id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        reason: reason.into(),
        at_ms: now,
    };
    match store
        .disable_endpoint(&endpoint, read_version, &event)
        .await
    {
        Ok(_) | Err(PortError::Conflict { .. }) => {
            tracing::warn!(endpoint_id = %endpoint.id, "endpoint disabled: it answered 410");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// One signed `POST` of the message to the endpoint.
async fn attempt(
    delivering: &Delivering,
    endpoint: &WebhookEndpoint,
    message: &WebhookMessage,
    now: EpochMillis,
) -> Outcome {
    let failed = |error: String| Outcome {
        status: None,
        error: Some(error),
        retry_after: None,
    };
    let mut secrets: Vec<SecretString> = Vec::new();
    for secret in endpoint.signing_secrets(now) {
        let owner = Owner {
            tenant: endpoint.tenant_id.as_str(),
            object: endpoint.id.as_str(),
            purpose: SECRET_PURPOSE,
        };
        match delivering.vault.open(&owner, &secret.sealed).await {
            Ok((plain, _)) => match std::str::from_utf8(plain.expose_secret()) {
                Ok(text) => secrets.push(SecretString::from(text.to_owned())),
                Err(_) => return failed("an endpoint secret is not text".into()),
            },
            Err(e) => {
                tracing::error!(endpoint_id = %endpoint.id, error = %e, "an endpoint secret could not be opened");
                return failed("its secret could not be opened".into());
            }
        }
    }
    if secrets.is_empty() {
        // Never an unsigned message: a receiver could not tell it from a forgery.
        return failed("the endpoint has no signing secret".into());
    }
    let timestamp = now / 1000;
    let Ok(signature) = signature_header(
        &secrets,
        message.id.as_str(),
        timestamp,
        message.body.as_bytes(),
    ) else {
        return failed("an endpoint secret is malformed".into());
    };
    let Ok(url) = Url::parse(&endpoint.url) else {
        return failed("the endpoint's URL is not valid".into());
    };
    let mut request = OutRequest::new(Method::POST, url);
    request.idempotent = false;
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("webhook-id", message.id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    for (name, value) in headers {
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                request.headers.insert(name, v);
            }
            Err(_) => return failed(format!("{name} is not a header value")),
        }
    }
    request.body = Some(bytes::Bytes::from(message.body.clone()));
    match delivering.client.send_with(&request, &Answered).await {
        Ok(answer) => {
            let status = answer.status.as_u16();
            let retry_after = matches!(status, 429 | 503)
                .then(|| Answered.retry_after(&answer.headers))
                .flatten();
            Outcome {
                status: Some(status),
                error: (!answer.status.is_success()).then(|| match status {
                    300..=399 => format!("HTTP {status}: redirects are not followed"),
                    _ => format!("HTTP {status}"),
                }),
                retry_after,
            }
        }
        Err(tributary_http::HttpError::Redirect(_)) => Outcome {
            status: None,
            error: Some("a redirect: redirects are not followed".into()),
            retry_after: None,
        },
        Err(e) => failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
