//! Routing verified provider webhooks over the in-memory store: the `provider_account` tag, the only
//! connection of an integration, unrouted events kept and counted, `provider.event` in the outbox
//! with its (bounded) payload, one sync run started, and redelivered jobs that change nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tributary_core::connection::{Connection, ConnectionStatus};
use tributary_core::ids::{InboundId, SyncId};
use tributary_core::inbound::{MAX_FORWARDED_PAYLOAD_BYTES, WebhookRouting};
use tributary_core::integration::Integration;
use tributary_core::job::JobKind;
use tributary_core::outbound::{EventType, outbox_shard};
use tributary_core::ports::EventOutbox;
use tributary_core::sync::{RunState, RunTrigger, SyncMode, SyncRun};
use tributary_core::time::EpochMillis;
use tributary_engine::Engine;
use tributary_engine::origins::ProviderOrigins;
use tributary_testing::fixtures::{oauth_connection, sync_config};
use tributary_testing::{FakeQueue, ManualClock, MemStore, keyring};

use super::*;

const T0: EpochMillis = 1_765_000_000_000;

struct World {
    store: MemStore,
    queue: FakeQueue,
    clock: ManualClock,
    syncing: Syncing<MemStore, MemStore>,
    tenant: TenantId,
    integration: Integration,
}

impl World {
    fn new(routing: WebhookRouting) -> Self {
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let integration = Integration {
            id: IntegrationId::generate(),
            tenant_id: tenant.clone(),
            provider: "stripe".into(),
            name: "Stripe".into(),
            auth_mode: "api_key".into(),
            oauth_client_id: None,
            oauth_client_secret: None,
            scopes: vec![],
            return_urls: vec![],
            enabled: true,
            webhook_secret: Some("sealed".into()),
            webhook_verification_token: None,
            webhook_routing: routing,
            created_at_ms: T0,
            updated_at_ms: T0,
            version: 1,
        };
        store.put_integration(&integration);
        let syncing = Syncing {
            records: store.clone(),
            store: store.clone(),
            vault: tributary_core::vault::Vault::new(Arc::new(Arc::new(keyring()))),
            engine: Engine::new(tributary_engine::HttpConfig::default()).unwrap(),
            origins: ProviderOrigins::new(),
            time_budget: None,
        };
        Self {
            store,
            queue: FakeQueue::default(),
            clock: ManualClock::at(T0 + 1_000),
            syncing,
            tenant,
            integration,
        }
    }

    /// A connection of the integration tagged `provider_account=<account>` (untagged: `None`).
    fn connection(&self, account: Option<&str>) -> Connection {
        let mut c = oauth_connection(
            &self.tenant,
            &self.integration.id,
            &ConnectionId::generate(),
            "stripe",
            "sealed".into(),
        );
        c.auth_mode = "api_key".into();
        if let Some(a) = account {
            c.tags = BTreeMap::from([(PROVIDER_ACCOUNT_TAG.to_owned(), a.to_owned())]);
        }
        self.store.put_connection(&c);
        c
    }

    /// An active sync of `connection`.
    fn sync(&self, connection: &Connection) -> tributary_core::sync::SyncConfig {
        let mut s = sync_config(
            &self.tenant,
            &connection.id,
            "stripe",
            "customers",
            "customers",
            SyncMode::FullRefresh,
            Some(T0 + 3_600_000),
        );
        s.integration_id = self.integration.id.clone();
        self.store.put_sync(&s);
        s
    }

    /// A stored delivery of a Stripe event for `account`.
    fn delivery(&self, account: Option<&str>, payload: Value) -> InboundEvent {
        let inbound = InboundEvent {
            id: InboundId::generate(),
            tenant_id: self.tenant.clone(),
            integration_id: self.integration.id.clone(),
            provider: "stripe".into(),
            event_id: Some("evt_1".into()),
            event_type: Some("customer.updated".into()),
            connection_key: account.map(str::to_owned),
            payload: Some(payload),
            payload_omitted: None,
            state: InboundState::Received,
            routed_to: Vec::new(),
            received_at_ms: T0,
            processed_at_ms: None,
            version: 1,
        };
        self.store.put_inbound(&inbound);
        inbound
    }

    async fn route(&self, inbound: &InboundEvent) {
        route(
            &self.syncing,
            &self.queue,
            &self.clock,
            &self.tenant,
            &self.integration.id,
            &inbound.id,
        )
        .await
        .unwrap();
    }

    fn stored(&self, inbound: &InboundEvent) -> InboundEvent {
        self.store
            .inbound_of(&self.tenant)
            .into_iter()
            .find(|i| i.id == inbound.id)
            .unwrap()
    }

    async fn runs(&self, sync: &SyncId) -> Vec<SyncRun> {
        self.store
            .list_runs(
                &self.tenant,
                sync,
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .items
    }

    fn run_jobs(&self) -> usize {
        self.queue
            .sent()
            .iter()
            .filter(|j| matches!(j.kind, JobKind::SyncRun { .. }))
            .count()
    }
}

#[tokio::test]
async fn an_event_goes_to_the_connections_tagged_with_its_account_only() {
    let w = World::new(WebhookRouting::Forward);
    let tagged = w.connection(Some("acct_1"));
    let twin = w.connection(Some("acct_1"));
    let other = w.connection(Some("acct_2"));
    let untagged = w.connection(None);
    let disabled = Connection {
        status: ConnectionStatus::Disabled,
        ..w.connection(Some("acct_1"))
    };
    w.store.put_connection(&disabled);
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1", "account": "acct_1"}));

    w.route(&inbound).await;

    let stored = w.stored(&inbound);
    assert_eq!(stored.state, InboundState::Processed);
    let mut routed = stored.routed_to.clone();
    routed.sort();
    let mut expected = vec![tagged.id.clone(), twin.id.clone()];
    expected.sort();
    assert_eq!(routed, expected);
    let forwarded: Vec<ConnectionId> = w
        .store
        .provider_events_of(&w.tenant)
        .into_iter()
        .map(|e| e.connection_id)
        .collect();
    assert_eq!(forwarded.len(), 2);
    for not in [&other.id, &untagged.id, &disabled.id] {
        assert!(
            !forwarded.contains(not),
            "{not} must not receive acct_1's event"
        );
    }
}

#[tokio::test]
async fn an_event_without_an_account_goes_to_the_only_connection_or_nowhere() {
    let w = World::new(WebhookRouting::Forward);
    let only = w.connection(None);
    let inbound = w.delivery(None, json!({"id": "evt_1"}));
    w.route(&inbound).await;
    assert_eq!(w.stored(&inbound).routed_to, vec![only.id.clone()]);

    w.connection(None);
    let second = w.delivery(None, json!({"id": "evt_2"}));
    w.route(&second).await;
    assert_eq!(w.stored(&second).state, InboundState::Unrouted);
}

/// Captures what the routing logs, as the function's JSON logs would carry it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn an_event_no_connection_matches_is_kept_unrouted_and_counted_never_dropped() {
    let w = World::new(WebhookRouting::Both);
    let c = w.connection(Some("acct_2"));
    let s = w.sync(&c);
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1", "account": "acct_1"}));

    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(logs.clone())
        .finish();
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        w.route(&inbound).await;
    }

    let stored = w.stored(&inbound);
    assert_eq!(stored.state, InboundState::Unrouted);
    assert_eq!(
        stored.payload, inbound.payload,
        "kept whole until it expires"
    );
    assert!(stored.routed_to.is_empty());
    assert!(w.store.provider_events_of(&w.tenant).is_empty());
    assert!(w.runs(&s.id).await.is_empty());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let counted: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["metric"] == "inbound_unrouted")
        .collect();
    assert_eq!(counted.len(), 1, "{text}");
    assert_eq!(counted[0]["level"], "WARN");
    assert_eq!(counted[0]["fields"]["count"], 1);
    assert_eq!(
        counted[0]["fields"]["inbound_id"],
        inbound.id.as_str(),
        "{text}"
    );
}

#[tokio::test]
async fn forward_records_a_provider_event_in_the_outbox_with_the_payload() {
    let w = World::new(WebhookRouting::Forward);
    let c = w.connection(Some("acct_1"));
    let s = w.sync(&c);
    let payload = json!({"id": "evt_1", "type": "customer.updated", "account": "acct_1", "data": {"object": {"id": "cus_1"}}});
    let inbound = w.delivery(Some("acct_1"), payload.clone());

    w.route(&inbound).await;

    let outbox = w
        .store
        .pending_events(outbox_shard(&w.tenant), 100)
        .await
        .unwrap();
    let [event] = &outbox[..] else {
        panic!("one event in the outbox: {outbox:?}");
    };
    assert_eq!(event.event_type, EventType::ProviderEvent);
    assert_eq!(event.data["payload"], payload);
    assert_eq!(event.data["connection_id"], c.id.as_str());
    assert_eq!(event.data["integration_id"], w.integration.id.as_str());
    assert_eq!(event.data["provider"], "stripe");
    assert_eq!(event.data["provider_event_type"], "customer.updated");
    assert_eq!(event.data["provider_event_id"], "evt_1");
    assert!(event.data.get("tenant_id").is_none());
    assert!(w.runs(&s.id).await.is_empty(), "forward starts no sync");
}

#[tokio::test]
async fn a_payload_over_64_kib_is_forwarded_as_a_marker() {
    let w = World::new(WebhookRouting::Forward);
    w.connection(Some("acct_1"));
    let big = json!({"id": "evt_1", "blob": "x".repeat(MAX_FORWARDED_PAYLOAD_BYTES)});
    let inbound = w.delivery(Some("acct_1"), big);

    w.route(&inbound).await;

    let [event] = &w.store.provider_events_of(&w.tenant)[..] else {
        panic!("one provider event");
    };
    assert_eq!(event.payload, None);
    let marker = event.payload_omitted.as_ref().unwrap();
    assert_eq!(marker.reason, "too_large");
    assert!(marker.size_bytes.unwrap() > MAX_FORWARDED_PAYLOAD_BYTES);
}

#[tokio::test]
async fn sync_starts_one_webhook_run_of_each_active_sync_and_forwards_nothing() {
    let w = World::new(WebhookRouting::Sync);
    let c = w.connection(Some("acct_1"));
    let s = w.sync(&c);
    let paused = tributary_core::sync::SyncConfig {
        status: tributary_core::sync::SyncStatus::Paused,
        ..w.sync(&c)
    };
    w.store.put_sync(&paused);
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1"}));

    w.route(&inbound).await;

    let runs = w.runs(&s.id).await;
    let [run] = &runs[..] else {
        panic!("one run: {runs:?}");
    };
    assert_eq!(run.trigger, RunTrigger::Webhook);
    assert_eq!(run.state, RunState::Queued);
    let synced = w.store.get_sync(&w.tenant, &s.id).await.unwrap().unwrap();
    assert_eq!(synced.active_run_id.as_ref(), Some(&run.id));
    let sent = w.queue.sent();
    assert!(
        sent.iter().any(|j| matches!(&j.kind, JobKind::SyncRun { run_id, continuation: 0, .. } if *run_id == run.id)),
        "{sent:?}"
    );
    assert_eq!(w.run_jobs(), 1);
    assert!(
        w.runs(&paused.id).await.is_empty(),
        "a paused sync is not started"
    );
    assert!(w.store.provider_events_of(&w.tenant).is_empty());
}

#[tokio::test]
async fn a_sync_with_a_run_in_progress_gets_no_second_run() {
    let w = World::new(WebhookRouting::Sync);
    let c = w.connection(Some("acct_1"));
    let mut s = w.sync(&c);
    let running = SyncRun {
        state: RunState::Running,
        ..SyncRun::queued(&s, RunTrigger::Schedule, false, T0)
    };
    w.store.create_run(&running).await.unwrap();
    s.active_run_id = Some(running.id.clone());
    w.store.put_sync(&s);
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1"}));

    w.route(&inbound).await;

    assert_eq!(w.runs(&s.id).await.len(), 1);
    assert_eq!(w.run_jobs(), 0);
    assert_eq!(w.stored(&inbound).state, InboundState::Processed);
}

#[tokio::test]
async fn a_redelivered_job_starts_no_second_run_and_records_no_second_event() {
    let w = World::new(WebhookRouting::Both);
    let c = w.connection(Some("acct_1"));
    let s = w.sync(&c);
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1"}));

    w.route(&inbound).await;
    // The run ended before the job came back: the sync's slot is free again.
    let [run] = &w.runs(&s.id).await[..] else {
        panic!("one run");
    };
    let ended = SyncRun {
        state: RunState::Succeeded,
        version: run.version + 1,
        ..run.clone()
    };
    assert!(w.store.update_run(&ended, run.version).await.unwrap());
    let mut freed = w.store.get_sync(&w.tenant, &s.id).await.unwrap().unwrap();
    freed.active_run_id = None;
    w.store.put_sync(&freed);
    // A redelivery of a job whose first delivery stopped before it marked the delivery processed.
    w.store.put_inbound(&inbound);
    w.route(&inbound).await;
    // And one that finds it processed.
    w.route(&inbound).await;

    assert_eq!(w.runs(&s.id).await.len(), 1, "one delivery, one run");
    assert_eq!(w.run_jobs(), 1);
    let events = w.store.provider_events_of(&w.tenant);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].id,
        ProviderEvent::id_for(&inbound, &c.id),
        "the event's id is derived from the delivery"
    );
    assert_eq!(w.stored(&inbound).state, InboundState::Processed);
}

#[tokio::test]
async fn a_delivery_gone_or_of_another_integration_is_acknowledged_without_effect() {
    let w = World::new(WebhookRouting::Both);
    w.connection(Some("acct_1"));
    route(
        &w.syncing,
        &w.queue,
        &w.clock,
        &w.tenant,
        &w.integration.id,
        &InboundId::generate(),
    )
    .await
    .unwrap();
    let inbound = w.delivery(Some("acct_1"), json!({}));
    route(
        &w.syncing,
        &w.queue,
        &w.clock,
        &w.tenant,
        &IntegrationId::generate(),
        &inbound.id,
    )
    .await
    .unwrap();
    assert_eq!(w.stored(&inbound).state, InboundState::Received);
    assert!(w.store.provider_events_of(&w.tenant).is_empty());
}

#[tokio::test]
async fn a_processed_delivery_is_not_routed_again() {
    let w = World::new(WebhookRouting::Forward);
    w.connection(Some("acct_1"));
    let inbound = w.delivery(Some("acct_1"), json!({"id": "evt_1"}));
    w.route(&inbound).await;
    // A connection tagged since: a redelivered job must not reach it.
    let later = w.connection(Some("acct_1"));

    w.route(&inbound).await;

    let events = w.store.provider_events_of(&w.tenant);
    assert_eq!(events.len(), 1);
    assert_ne!(events[0].connection_id, later.id);
}
