//! Webhook dispatch and delivery over the in-memory store and a local receiver: messages made once
//! per event and subscribed endpoint, repeated dispatches, the signed request of the Standard
//! Webhooks specification, the retry schedule and its chained delays, 410, redirects, rate limits,
//! rotated secrets, the egress guard, and endpoints gone before delivery.

use std::sync::Arc;

use serde_json::{Value, json};
use tributary_core::connection::{ConnectionEvent, ConnectionEventType};
use tributary_core::ids::{ConnectionId, EndpointId, EventId, IntegrationId};
use tributary_core::outbound::{
    EndpointSecret, EventType, RETRY_SCHEDULE_SECS, new_secret, outbox_shard, sign,
};
use tributary_core::ports::{ConnectionStore, MessageFilter};
use tributary_core::tenancy::AuditEvent;
use tributary_http::EgressPolicy;
use tributary_testing::fixtures::oauth_connection;
use tributary_testing::{FakeQueue, ManualClock, MemStore, keyring};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

const T0: EpochMillis = 1_765_000_000_000;
const HOOK: &str = "/hook";

fn vault() -> Vault {
    Vault::new(Arc::new(Arc::new(keyring())))
}

/// Deliveries as the worker makes them, under `egress`.
fn delivering(egress: EgressPolicy) -> Delivering {
    Delivering {
        client: HttpClient::new(delivery_http(egress)).unwrap(),
        vault: vault(),
    }
}

fn all() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

/// `secret` sealed for the endpoint, as the API seals it.
async fn seal(tenant: &TenantId, endpoint: &EndpointId, secret: &SecretString) -> String {
    let owner = Owner {
        tenant: tenant.as_str(),
        object: endpoint.as_str(),
        purpose: SECRET_PURPOSE,
    };
    vault()
        .seal(&owner, secret.expose_secret().as_bytes())
        .await
        .unwrap()
}

/// An enabled endpoint of `tenant` at `url` for `types` (every type when empty), with no secret
/// yet.
fn endpoint(tenant: &TenantId, url: &str, types: &[EventType]) -> WebhookEndpoint {
    WebhookEndpoint {
        id: EndpointId::generate(),
        tenant_id: tenant.clone(),
        url: url.to_owned(),
        description: None,
        event_types: types.to_vec(),
        enabled: true,
        disabled_reason: None,
        secrets: Vec::new(),
        created_at_ms: T0,
        updated_at_ms: T0,
        version: 1,
    }
}

/// Adds a secret expiring at `expires_at_ms` (`None`: the current one) to `endpoint`.
async fn with_secret(
    mut endpoint: WebhookEndpoint,
    secret: &SecretString,
    expires_at_ms: Option<EpochMillis>,
) -> WebhookEndpoint {
    endpoint.secrets.push(EndpointSecret {
        sealed: seal(&endpoint.tenant_id, &endpoint.id, secret).await,
        created_at_ms: T0,
        expires_at_ms,
    });
    endpoint
}

async fn store_endpoint(store: &MemStore, endpoint: &WebhookEndpoint) {
    let audit = AuditEvent::new(
        &endpoint.tenant_id,
        "test",
        T0,
        "webhook_endpoint.created",
        &endpoint.id,
    );
    store.create_endpoint(endpoint, &audit).await.unwrap();
}

/// A `connection.created` event of a new connection of `tenant` at `at_ms`, in the store (and so
/// in the outbox).
async fn connection_created(
    store: &MemStore,
    tenant: &TenantId,
    at_ms: EpochMillis,
) -> ConnectionEvent {
    let connection = oauth_connection(
        tenant,
        &IntegrationId::generate(),
        &ConnectionId::generate(),
        "github",
        "sealed".into(),
    );
    let event = ConnectionEvent::of(&connection, ConnectionEventType::Created, None, at_ms);
    let audit = AuditEvent::new(tenant, "test", at_ms, "connection.created", &connection.id);
    store
        .create_connection(&connection, &event, &audit)
        .await
        .unwrap();
    event
}

/// Two tenants whose events wait in the same outbox shard.
fn tenants_in_one_shard() -> (TenantId, TenantId) {
    let a = TenantId::generate();
    loop {
        let b = TenantId::generate();
        if outbox_shard(&b) == outbox_shard(&a) {
            return (a, b);
        }
    }
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The `v1,…` entries of a request's `webhook-signature`.
fn signatures(request: &Request) -> Vec<String> {
    header(request, "webhook-signature")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// The signature `secret` makes of what `request` carries, computed here from the secret.
fn expected_signature(secret: &SecretString, request: &Request) -> String {
    let timestamp: i64 = header(request, "webhook-timestamp").parse().unwrap();
    sign(
        secret,
        header(request, "webhook-id"),
        timestamp,
        &request.body,
    )
    .unwrap()
}

fn deliveries_of(jobs: &[(JobEnvelope, Duration)]) -> Vec<(MessageId, Duration)> {
    jobs.iter()
        .filter_map(|(job, delay)| match &job.kind {
            JobKind::DeliverWebhook { message_id, .. } => Some((message_id.clone(), *delay)),
            _ => None,
        })
        .collect()
}

/// A pending message of `endpoint` carrying `event`, never attempted, due at `due`.
fn message_of(endpoint: &WebhookEndpoint, event: &EventId, due: EpochMillis) -> WebhookMessage {
    WebhookMessage {
        id: WebhookMessage::id_for(event, T0, &endpoint.id),
        tenant_id: endpoint.tenant_id.clone(),
        endpoint_id: endpoint.id.clone(),
        event_id: event.clone(),
        event_type: EventType::ConnectionCreated,
        body: json!({
            "type": "connection.created",
            "timestamp": "2025-12-06T05:46:40Z",
            "data": {"connection_id": "conn_0193", "status": "active"},
        })
        .to_string(),
        state: MessageState::Pending,
        attempts: 0,
        total_attempts: 0,
        next_attempt_at_ms: Some(due),
        last_status: None,
        last_error: None,
        created_at_ms: T0,
        updated_at_ms: T0,
        version: 1,
    }
}

/// One tenant, a receiver, the store, the queue and a clock at `T0`; deliveries allowed to
/// 127.0.0.1.
struct World {
    store: MemStore,
    queue: FakeQueue,
    clock: ManualClock,
    delivering: Delivering,
    tenant: TenantId,
    receiver: MockServer,
}

impl World {
    async fn new() -> Self {
        Self {
            store: MemStore::default(),
            queue: FakeQueue::default(),
            clock: ManualClock::at(T0),
            delivering: delivering(EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap()),
            tenant: TenantId::generate(),
            receiver: MockServer::start().await,
        }
    }

    fn url(&self) -> String {
        format!("{}{HOOK}", self.receiver.uri())
    }

    /// The receiver answers every delivery with `answer`.
    async fn answer(&self, answer: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(HOOK))
            .respond_with(answer)
            .mount(&self.receiver)
            .await;
    }

    /// A stored endpoint of the tenant at the receiver, for every type, with one secret.
    async fn endpoint(&self) -> (WebhookEndpoint, SecretString) {
        let secret = new_secret();
        let e = with_secret(endpoint(&self.tenant, &self.url(), &[]), &secret, None).await;
        store_endpoint(&self.store, &e).await;
        (e, secret)
    }

    /// A stored pending message of `endpoint`, never attempted, due at `due`.
    async fn message(&self, endpoint: &WebhookEndpoint, due: EpochMillis) -> WebhookMessage {
        let message = message_of(endpoint, &EventId::generate(), due);
        assert!(self.store.create_message(&message).await.unwrap());
        message
    }

    async fn deliver(&self, message: &WebhookMessage) {
        super::deliver(
            &self.store,
            &self.queue,
            &self.delivering,
            &self.clock,
            &message.tenant_id,
            &message.id,
        )
        .await
        .unwrap();
    }

    async fn dispatch(&self, shard: u32) -> Result<(), WebhookJobError> {
        super::dispatch(&self.store, &self.queue, &self.clock, shard).await
    }

    async fn stored(&self, message: &WebhookMessage) -> WebhookMessage {
        self.store
            .get_message(&message.tenant_id, &message.id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn attempts(&self, message: &WebhookMessage) -> Vec<DeliveryAttempt> {
        self.store
            .list_attempts(&message.tenant_id, &message.id, &all())
            .await
            .unwrap()
            .items
    }

    async fn messages_of(&self, tenant: &TenantId) -> Vec<WebhookMessage> {
        self.store
            .list_messages(tenant, &MessageFilter::default(), &all())
            .await
            .unwrap()
            .items
    }

    async fn received(&self) -> Vec<Request> {
        self.receiver.received_requests().await.unwrap_or_default()
    }

    /// The delivery jobs sent so far: message and delay.
    fn delivery_jobs(&self) -> Vec<(MessageId, Duration)> {
        deliveries_of(&self.queue.sent_with_delays())
    }
}

#[tokio::test]
async fn an_event_becomes_one_message_per_subscribed_enabled_endpoint_once() {
    // Arrange: three endpoints, of which only one both is enabled and wants the event.
    let w = World::new().await;
    let wants = endpoint(&w.tenant, &w.url(), &[EventType::ConnectionCreated]);
    let other_type = endpoint(&w.tenant, &w.url(), &[EventType::SyncRunFailed]);
    let disabled = WebhookEndpoint {
        enabled: false,
        ..endpoint(&w.tenant, &w.url(), &[])
    };
    for e in [&wants, &other_type, &disabled] {
        store_endpoint(&w.store, e).await;
    }
    let event = connection_created(&w.store, &w.tenant, T0 - 60_000).await;
    let shard = outbox_shard(&w.tenant);

    // Act
    w.dispatch(shard).await.unwrap();

    // Assert: one message, with the Standard Webhooks payload of the event.
    let messages = w.messages_of(&w.tenant).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.endpoint_id, wants.id);
    assert_eq!(message.event_id, event.id);
    assert_eq!(message.event_type, EventType::ConnectionCreated);
    assert_eq!(message.state, MessageState::Pending);
    assert_eq!(message.attempts, 0);
    let body: Value = serde_json::from_str(&message.body).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "{body}");
    assert_eq!(body["type"], "connection.created");
    assert_eq!(
        body["timestamp"].as_str(),
        tributary_core::time::rfc3339(event.at_ms).as_deref()
    );
    assert_eq!(body["data"]["id"], event.id.as_str());
    assert_eq!(body["data"]["connection_id"], event.connection_id.as_str());
    assert_eq!(body["data"]["status"], "active");
    assert!(body["data"].get("tenant_id").is_none(), "{body}");
    // One delivery job for it, and the event is out of the outbox.
    let jobs = w.queue.sent();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].kind,
        JobKind::DeliverWebhook {
            tenant_id: w.tenant.clone(),
            message_id: message.id.clone(),
        }
    );
    assert!(w.store.pending_events(shard, 100).await.unwrap().is_empty());

    // A second dispatch finds nothing to do.
    w.dispatch(shard).await.unwrap();
    assert_eq!(w.messages_of(&w.tenant).await, messages);
    assert_eq!(w.queue.sent().len(), 1);
}

#[tokio::test]
async fn another_tenants_endpoints_never_get_a_tenants_event() {
    let w = World::new().await;
    let (a, b) = tenants_in_one_shard();
    let a_endpoint = endpoint(&a, &w.url(), &[]);
    let b_endpoint = endpoint(&b, &w.url(), &[]);
    store_endpoint(&w.store, &a_endpoint).await;
    store_endpoint(&w.store, &b_endpoint).await;
    let a_event = connection_created(&w.store, &a, T0 - 2).await;
    let b_event = connection_created(&w.store, &b, T0 - 1).await;

    w.dispatch(outbox_shard(&a)).await.unwrap();

    for (tenant, endpoint, event) in [(&a, &a_endpoint, &a_event), (&b, &b_endpoint, &b_event)] {
        let messages = w.messages_of(tenant).await;
        let made: Vec<(&EndpointId, &EventId)> = messages
            .iter()
            .map(|m| (&m.endpoint_id, &m.event_id))
            .collect();
        assert_eq!(made, vec![(&endpoint.id, &event.id)], "{tenant}");
    }
    assert_eq!(w.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_dispatch_after_a_crash_sends_the_delivery_job_again_without_a_second_message() {
    // Arrange: a dispatch made the message, then failed to send its job: the event stays.
    let w = World::new().await;
    let (subscribed, _) = w.endpoint().await;
    let event = connection_created(&w.store, &w.tenant, T0 - 1).await;
    let shard = outbox_shard(&w.tenant);
    w.queue.fail(true);
    assert!(w.dispatch(shard).await.is_err());
    w.queue.fail(false);
    let made = w.messages_of(&w.tenant).await;
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].state, made[0].attempts),
        (MessageState::Pending, 0)
    );
    assert_eq!(w.store.pending_events(shard, 100).await.unwrap().len(), 1);
    assert!(w.queue.sent().is_empty());

    // Act
    w.dispatch(shard).await.unwrap();

    // Assert
    assert_eq!(w.messages_of(&w.tenant).await, made, "no second message");
    assert_eq!(
        w.delivery_jobs(),
        vec![(made[0].id.clone(), Duration::ZERO)]
    );
    assert!(w.store.pending_events(shard, 100).await.unwrap().is_empty());
    assert_eq!(made[0].endpoint_id, subscribed.id);
    assert_eq!(made[0].event_id, event.id);
}

#[tokio::test]
async fn a_dispatch_does_not_resend_a_message_already_attempted() {
    // The message's own retry chain carries it; another job would only duplicate an attempt.
    let w = World::new().await;
    let (subscribed, _) = w.endpoint().await;
    let event = connection_created(&w.store, &w.tenant, T0 - 1).await;
    let shard = outbox_shard(&w.tenant);
    let tried = WebhookMessage {
        id: WebhookMessage::id_for(&event.id, event.at_ms, &subscribed.id),
        attempts: 1,
        total_attempts: 1,
        last_status: Some(500),
        ..message_of(&subscribed, &event.id, T0 + 5_000)
    };
    assert!(w.store.create_message(&tried).await.unwrap());

    w.dispatch(shard).await.unwrap();

    assert!(w.delivery_jobs().is_empty());
    assert_eq!(w.stored(&tried).await, tried);
    assert!(w.store.pending_events(shard, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_delivery_posts_the_signed_body_and_ends_succeeded() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    let (endpoint, secret) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    w.deliver(&message).await;

    let received = w.received().await;
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(header(request, "webhook-id"), message.id.as_str());
    assert_eq!(
        header(request, "webhook-timestamp"),
        (T0 / 1000).to_string()
    );
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(request.body, message.body.as_bytes());
    assert_eq!(
        signatures(request),
        vec![expected_signature(&secret, request)]
    );
    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Succeeded);
    assert_eq!((stored.attempts, stored.last_status), (1, Some(200)));
    assert_eq!(stored.next_attempt_at_ms, None);
    let attempts = w.attempts(&message).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].n, attempts[0].status), (1, Some(200)));
    assert!(attempts[0].succeeded);
    assert!(w.queue.sent().is_empty());
}

#[tokio::test]
async fn a_500_schedules_a_retry_in_5_s_which_sends_the_same_message() {
    // Arrange: the receiver fails once, then accepts.
    let w = World::new().await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&w.receiver)
        .await;
    w.answer(ResponseTemplate::new(200)).await;
    let (endpoint, secret) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    // Act: the first attempt.
    w.deliver(&message).await;

    // Assert: pending again, due in 5 s ± 10 %, with a job sent for then.
    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Pending);
    assert_eq!((stored.attempts, stored.last_status), (1, Some(500)));
    let wait = stored.next_attempt_at_ms.unwrap() - T0;
    assert!((4_500..=5_500).contains(&wait), "{wait}");
    let wait_s = u64::try_from(wait / 1000).unwrap();
    assert_eq!(
        w.delivery_jobs(),
        vec![(message.id.clone(), Duration::from_secs(wait_s))]
    );
    let attempts = w.attempts(&message).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(500));
    assert!(!attempts[0].succeeded);

    // Act: the retry, when it is due.
    w.clock.advance(wait);
    w.deliver(&message).await;

    // Assert
    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Succeeded);
    let statuses: Vec<Option<u16>> = w
        .attempts(&message)
        .await
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
    assert_eq!(w.queue.sent().len(), 1, "no job after the success");
    let received = w.received().await;
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(header(request, "webhook-id"), message.id.as_str());
        assert_eq!(request.body, message.body.as_bytes());
        assert_eq!(
            signatures(request),
            vec![expected_signature(&secret, request)]
        );
    }
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_fails_the_message() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(410)).await;
    let (endpoint, _) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    w.deliver(&message).await;

    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Failed);
    assert_eq!(
        (stored.last_status, stored.next_attempt_at_ms),
        (Some(410), None)
    );
    let now = w
        .store
        .get_endpoint(&w.tenant, &endpoint.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!now.enabled);
    assert!(now.disabled_reason.is_some());
    assert_eq!(now.version, endpoint.version + 1);
    assert_eq!(w.attempts(&message).await.len(), 1);
    assert!(w.queue.sent().is_empty());
    // The tenant hears of it through its other endpoints: an event waits in the outbox.
    let shard = tributary_core::outbound::outbox_shard(&w.tenant);
    let events = w.store.pending_events(shard, 100).await.unwrap();
    let disabled: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == tributary_core::outbound::EventType::WebhookEndpointDisabled)
        .collect();
    assert_eq!(disabled.len(), 1, "{events:?}");
    assert_eq!(disabled[0].data["endpoint_id"], endpoint.id.as_str());
    assert_eq!(disabled[0].data["reason"], "the endpoint answered 410 Gone");
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_never_followed() {
    // Arrange: the receiver redirects to another server.
    let w = World::new().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    w.answer(
        ResponseTemplate::new(302)
            .insert_header("location", format!("{}/landing", elsewhere.uri())),
    )
    .await;
    let (endpoint, _) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    // Act
    w.deliver(&message).await;

    // Assert: the target saw nothing, and the attempt failed (to be retried) saying why.
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(w.received().await.len(), 1);
    let attempts = w.attempts(&message).await;
    assert_eq!(attempts.len(), 1);
    assert!(!attempts[0].succeeded);
    let error = attempts[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("redirect"), "{error}");
    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Pending);
    assert_eq!(w.delivery_jobs().len(), 1);
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .await;
    let (endpoint, _) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    w.deliver(&message).await;

    let stored = w.stored(&message).await;
    assert_eq!(
        (stored.state, stored.last_status),
        (MessageState::Pending, Some(429))
    );
    let due = stored.next_attempt_at_ms.unwrap();
    assert!(due >= T0 + 120_000, "due in {} ms", due - T0);
    assert_eq!(
        w.delivery_jobs(),
        vec![(message.id.clone(), Duration::from_secs(120))]
    );
}

#[tokio::test]
async fn a_wait_longer_than_the_queues_delay_is_chained_in_15_minute_hops() {
    // Arrange: the next attempt is 2 hours away.
    let w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    let (endpoint, _) = w.endpoint().await;
    let message = w.message(&endpoint, T0 + 7_200_000).await;

    // Act and assert: each job only re-queues itself 15 minutes later, until it is due.
    for hop in 1..=8 {
        w.deliver(&message).await;
        assert!(w.received().await.is_empty(), "hop {hop}");
        assert_eq!(w.stored(&message).await, message, "hop {hop}");
        let jobs = w.delivery_jobs();
        assert_eq!(jobs.len(), hop);
        assert_eq!(
            jobs[hop - 1],
            (message.id.clone(), Duration::from_secs(900))
        );
        w.clock.advance(900_000);
    }
    w.deliver(&message).await;
    assert_eq!(w.received().await.len(), 1);
    assert_eq!(w.stored(&message).await.state, MessageState::Succeeded);
    assert_eq!(w.delivery_jobs().len(), 8);
}

#[tokio::test]
async fn after_eight_failed_attempts_the_message_is_exhausted() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(500)).await;
    let (endpoint, _) = w.endpoint().await;
    let message = w.message(&endpoint, T0).await;

    // The schedule's wait after each attempt; none after the last.
    let waits = RETRY_SCHEDULE_SECS[1..]
        .iter()
        .map(|&s| Some(s))
        .chain([None]);
    for (n, scheduled_s) in (1u32..).zip(waits) {
        w.deliver(&message).await;
        let stored = w.stored(&message).await;
        assert_eq!(stored.attempts, n);
        let Some(scheduled_s) = scheduled_s else {
            break;
        };
        let due = stored
            .next_attempt_at_ms
            .unwrap_or_else(|| panic!("ended after {n} attempts"));
        // The schedule's wait before the next attempt, ± 10 %.
        let wait = due - w.clock.now_ms();
        let base = i64::try_from(scheduled_s).unwrap() * 1000;
        assert!(
            (base * 9 / 10..=base * 11 / 10).contains(&wait),
            "attempt {n}: {wait}"
        );
        let (id, delay) = w.delivery_jobs().pop().unwrap();
        assert_eq!(id, message.id);
        assert_eq!(
            delay.as_secs(),
            u64::try_from(wait.min(900_000) / 1000).unwrap()
        );
        w.clock.advance(wait);
    }

    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Exhausted);
    assert_eq!(stored.next_attempt_at_ms, None);
    let attempts = w.attempts(&message).await;
    let numbers: Vec<u32> = attempts.iter().map(|a| a.n).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<u32>>());
    assert_eq!(w.received().await.len(), 8);
    assert_eq!(w.delivery_jobs().len(), 7, "no job after the last attempt");
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_new_one_until_it_expires() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    let (current, old) = (new_secret(), new_secret());
    let base = endpoint(&w.tenant, &w.url(), &[]);
    let base = with_secret(base, &current, None).await;
    let overlapping = with_secret(base.clone(), &old, Some(T0 + 3_600_000)).await;
    store_endpoint(&w.store, &overlapping).await;
    let first = w.message(&overlapping, T0).await;

    // In the overlap: both sign.
    w.deliver(&first).await;
    let received = w.received().await;
    let request = &received[0];
    let mut got = signatures(request);
    got.sort();
    let mut expected = vec![
        expected_signature(&current, request),
        expected_signature(&old, request),
    ];
    expected.sort();
    assert_eq!(got, expected);
    assert!(got.iter().all(|s| s.starts_with("v1,")));

    // Once the old one has expired: the current one alone.
    let expired = WebhookEndpoint {
        version: overlapping.version + 1,
        ..with_secret(base, &old, Some(T0 - 1)).await
    };
    assert!(
        w.store
            .update_endpoint(&expired, overlapping.version)
            .await
            .unwrap()
    );
    let second = w.message(&expired, T0).await;
    w.deliver(&second).await;
    let received = w.received().await;
    let request = &received[1];
    assert_eq!(header(request, "webhook-id"), second.id.as_str());
    assert_eq!(
        signatures(request),
        vec![expected_signature(&current, request)]
    );
}

#[tokio::test]
async fn a_receiver_on_loopback_is_refused_without_an_allowlist() {
    let mut w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    w.delivering = delivering(EgressPolicy::public_only());
    let port = w.receiver.address().port();
    // An address literal, and a name that resolves to loopback.
    for url in [
        format!("http://127.0.0.1:{port}{HOOK}"),
        format!("https://localhost:{port}{HOOK}"),
    ] {
        let e = with_secret(endpoint(&w.tenant, &url, &[]), &new_secret(), None).await;
        store_endpoint(&w.store, &e).await;
        let message = w.message(&e, T0).await;

        w.deliver(&message).await;

        let attempts = w.attempts(&message).await;
        assert_eq!(attempts.len(), 1, "{url}");
        assert_eq!(attempts[0].status, None, "{url}");
        let error = attempts[0].error.as_deref().unwrap_or_default();
        assert!(
            error.contains("egress") && error.contains("forbidden"),
            "{url}: {error}"
        );
    }
    assert!(w.received().await.is_empty());
}

#[tokio::test]
async fn an_endpoint_disabled_or_deleted_before_delivery_fails_the_message_unsent() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    let (disabled, _) = w.endpoint().await;
    let off = WebhookEndpoint {
        enabled: false,
        version: disabled.version + 1,
        ..disabled.clone()
    };
    assert!(
        w.store
            .update_endpoint(&off, disabled.version)
            .await
            .unwrap()
    );
    let (deleted, _) = w.endpoint().await;
    let audit = AuditEvent::new(
        &w.tenant,
        "test",
        T0,
        "webhook_endpoint.deleted",
        &deleted.id,
    );
    assert!(
        w.store
            .delete_endpoint(&w.tenant, &deleted.id, &audit)
            .await
            .unwrap()
    );

    for endpoint in [&disabled, &deleted] {
        let message = w.message(endpoint, T0).await;

        w.deliver(&message).await;

        let stored = w.stored(&message).await;
        assert_eq!(stored.state, MessageState::Failed, "{}", endpoint.id);
        assert_eq!(stored.next_attempt_at_ms, None);
        assert!(stored.last_error.is_some());
        assert!(w.attempts(&message).await.is_empty());
    }
    assert!(w.received().await.is_empty());
    assert!(w.queue.sent().is_empty());
}

/// An endpoint with no secret still signing never gets an unsigned message: the attempt fails
/// before anything is sent.
#[tokio::test]
async fn a_message_is_never_sent_unsigned() {
    let w = World::new().await;
    w.answer(ResponseTemplate::new(200)).await;
    let unsigned = endpoint(&w.tenant, &w.url(), &[]);
    assert!(unsigned.secrets.is_empty());
    store_endpoint(&w.store, &unsigned).await;
    let message = w.message(&unsigned, T0).await;

    w.deliver(&message).await;

    assert!(w.received().await.is_empty(), "nothing sent");
    let stored = w.stored(&message).await;
    assert_eq!(stored.state, MessageState::Pending, "retried on schedule");
    assert!(
        stored
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no signing secret")),
        "{stored:?}"
    );
}
