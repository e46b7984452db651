//! The operations log as the handler writes it: a sync run's invocations through a local Stripe,
//! each one operation with its provider requests (and no credential), its usage and day counters
//! written a fixed number of times whatever the records, deferrals with their 429s, redeliveries
//! logged once, and a log that cannot be written never failing the work.

use tributary_core::connection::{CREDENTIALS_PURPOSE, Connection};
use tributary_core::ids::{ConnectionId, IntegrationId, SyncRunId};
use tributary_core::operation::{Entry, OperationKind, OperationState, day_of};
use tributary_core::ports::SyncStore as _;
use tributary_core::sync::{RunState, RunTrigger, SyncConfig, SyncMode, SyncRun};
use tributary_core::time::Clock as _;
use tributary_core::vault::Owner;
use tributary_testing::fixtures::{oauth_connection, sync_config};
use tributary_testing::provider::{LocalStripe, STRIPE_KEY};
use wiremock::MockServer;

use super::*;

const NOW: i64 = 1_764_000_000_750;

struct Env {
    stripe: LocalStripe,
    _server: MockServer,
    store: MemStore,
    deps: TestDeps,
    clock: Arc<ManualClock>,
    tenant: TenantId,
    connection: Connection,
    sync: SyncConfig,
}

async fn env(customers: usize) -> Env {
    let stripe = LocalStripe::with_customers(customers);
    let server = stripe.start().await;
    let store = MemStore::default();
    let tenant = TenantId::generate();
    let id = ConnectionId::generate();
    let credentials = tributary_testing::keyring()
        .seal(
            &Owner {
                tenant: tenant.as_str(),
                object: id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            format!(r#"{{"api_key":"{STRIPE_KEY}"}}"#).as_bytes(),
        )
        .unwrap()
        .encode();
    let connection = Connection {
        auth_mode: "api_key".into(),
        tokens_obtained_at_ms: None,
        ..oauth_connection(
            &tenant,
            &IntegrationId::generate(),
            &id,
            "stripe",
            credentials,
        )
    };
    store.put_connection(&connection);
    let sync = SyncConfig {
        integration_id: connection.integration_id.clone(),
        ..sync_config(
            &tenant,
            &id,
            "stripe",
            "customers",
            "customers",
            SyncMode::FullRefresh,
            None,
        )
    };
    store.put_sync(&sync);
    let origins = ProviderOrigins::from([("stripe".to_owned(), server.uri())]);
    let mut deps = deps(store.clone());
    deps.ledger = store.clone();
    let clock = Arc::new(ManualClock::at(NOW));
    deps.clock = clock.clone();
    deps.refreshing = refreshing(store.clone(), origins.clone());
    deps.syncing = syncing(store.clone(), origins);
    Env {
        stripe,
        _server: server,
        store,
        deps,
        clock,
        tenant,
        connection,
        sync,
    }
}

impl Env {
    async fn queue_run(&self) -> SyncRun {
        let sync = self
            .store
            .get_sync(&self.tenant, &self.sync.id)
            .await
            .unwrap()
            .unwrap();
        let run = SyncRun::queued(&sync, RunTrigger::Manual, false, NOW);
        self.store.create_run(&run).await.unwrap();
        let mut s = sync.clone();
        s.active_run_id = Some(run.id.clone());
        s.version += 1;
        assert!(self.store.update_sync(&s, sync.version).await.unwrap());
        run
    }

    fn job(&self, run: &SyncRunId, continuation: u32) -> String {
        serde_json::to_string(&JobEnvelope::new(JobKind::SyncRun {
            tenant_id: self.tenant.clone(),
            sync_id: self.sync.id.clone(),
            run_id: run.clone(),
            continuation,
        }))
        .unwrap()
    }

    /// Delivers `body` once through the handler; whether it was acknowledged.
    async fn deliver(&self, body: &str) -> bool {
        let mut delivery = event(&[("m1", body, "1")]);
        // 15 minutes left, as an SQS-triggered invocation has.
        delivery.context.deadline = u64::try_from(self.clock.now_ms()).unwrap() + 900_000;
        let out = handle(&self.deps, delivery).await.unwrap();
        // The next delivery comes later (operation ids are time-ordered).
        self.clock.advance(1_000);
        out.batch_item_failures.is_empty()
    }

    /// Delivers the run's job, then every continuation it enqueues; the invocations.
    async fn drive(&self, run: &SyncRun) -> usize {
        assert!(self.deliver(&self.job(&run.id, 0)).await);
        let mut delivered = 1;
        loop {
            let next: Vec<String> = self
                .deps
                .queue
                .sent()
                .into_iter()
                .filter(|j| matches!(j.kind, JobKind::SyncRun { .. }))
                .skip(delivered - 1)
                .map(|j| serde_json::to_string(&j).unwrap())
                .collect();
            let Some(body) = next.first() else {
                return delivered;
            };
            assert!(self.deliver(body).await);
            delivered += 1;
            assert!(delivered < 100, "the run never ends");
        }
    }

    async fn run(&self, run: &SyncRun) -> SyncRun {
        self.store
            .get_run(&self.tenant, &self.sync.id, &run.id)
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn a_sync_run_is_one_operation_with_its_requests_and_no_credential() {
    let e = env(250).await;
    let queued = e.queue_run().await;
    assert_eq!(e.drive(&queued).await, 1);
    let run = e.run(&queued).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);

    let ops = e.store.operations();
    assert_eq!(ops.len(), 1);
    let op = &ops[0];
    assert_eq!(op.kind, OperationKind::SyncRun);
    assert_eq!(op.state, OperationState::Succeeded);
    assert_eq!(op.tenant_id, e.tenant);
    assert_eq!(op.connection_id.as_ref(), Some(&e.connection.id));
    assert_eq!(
        op.integration_id.as_ref(),
        Some(&e.connection.integration_id)
    );
    assert_eq!(op.provider.as_deref(), Some("stripe"));
    assert_eq!(op.sync_id.as_ref(), Some(&e.sync.id));
    assert_eq!(op.name.as_deref(), Some("customers"));
    assert_eq!(op.subject.as_deref(), Some(queued.id.as_str()));
    assert_eq!(op.counts.records_added, 250);
    assert_eq!(op.counts.requests, run.stats.provider_requests);
    let requests: Vec<_> = op
        .entries
        .iter()
        .filter_map(|en| match en {
            Entry::Request(r) => Some(r),
            Entry::Note(_) => None,
        })
        .collect();
    assert_eq!(requests.len() as u64, run.stats.provider_requests);
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.host.as_str(), r.status, r.attempt),
            ("GET", "127.0.0.1", Some(200), 1)
        );
        assert!(r.path.starts_with("/v1/customers?"), "{}", r.path);
        assert!(
            r.path.split(['?', '&']).skip(1).all(|p| p.ends_with('=')),
            "query values are dropped: {}",
            r.path
        );
    }
    let logged = serde_json::to_string(&ops).unwrap();
    assert!(!logged.contains(STRIPE_KEY), "{logged}");
    assert!(!logged.contains("Bearer"), "{logged}");
    assert!(
        !logged.contains("cus_"),
        "no record data or cursor value: {logged}"
    );
}

#[tokio::test]
async fn usage_equals_the_runs_counts_and_counter_writes_do_not_grow_with_records() {
    for customers in [300, 3_000] {
        let e = env(customers).await;
        let queued = e.queue_run().await;
        let invocations = e.drive(&queued).await as u64;
        let run = e.run(&queued).await;
        assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);

        // One usage row and one sync-day row per invocation, however many records.
        let writes = e.store.counter_writes();
        assert_eq!(writes, 2 * invocations, "{customers} records");
        assert!(
            writes * 1_000 / customers as u64 <= 7,
            "{writes} counter writes for {customers} records"
        );

        let day = day_of(NOW);
        let usage = e.store.list_usage(&e.tenant, &day, &day).await.unwrap();
        assert_eq!(usage.len(), 1);
        let u = &usage[0];
        assert_eq!(
            u.key.integration_id.as_ref(),
            Some(&e.connection.integration_id)
        );
        assert_eq!(u.counts.records_added, run.stats.added);
        assert_eq!(u.counts.records_updated, run.stats.updated);
        assert_eq!(u.counts.records_deleted, run.stats.deleted);
        assert_eq!(u.counts.provider_requests, run.stats.provider_requests);
        let days = e
            .store
            .list_sync_stats(&e.tenant, &day, &day)
            .await
            .unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].records, customers as u64);
        assert_eq!((days[0].runs_ended, days[0].runs_failed), (1, 0));
    }
}

#[tokio::test]
async fn a_rate_limited_run_logs_each_deferral_with_its_429_and_time_waited() {
    let e = env(150).await;
    e.stripe.throttle(2, 7);
    let queued = e.queue_run().await;
    assert_eq!(e.drive(&queued).await, 3);
    assert_eq!(e.run(&queued).await.state, RunState::Succeeded);

    let ops = e.store.operations();
    let states: Vec<_> = ops.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [
            OperationState::Deferred,
            OperationState::Deferred,
            OperationState::Succeeded
        ]
    );
    for deferred in &ops[..2] {
        assert_eq!(deferred.counts.deferred_ms, 7_000);
        assert_eq!(deferred.counts.rate_limited, 1);
        assert_eq!(deferred.error.as_ref().unwrap().class, "rate_limited");
        assert!(deferred.entries.iter().any(|en| matches!(en,
            Entry::Request(r) if r.status == Some(429) && r.error_class.as_deref() == Some("rate_limited"))));
        assert!(deferred.entries.iter().any(|en| matches!(en,
            Entry::Note(n) if n.kind == tributary_core::operation::NoteKind::Deferred)));
    }
    let day = day_of(NOW);
    let days = e
        .store
        .list_sync_stats(&e.tenant, &day, &day)
        .await
        .unwrap();
    assert_eq!(days[0].deferred_ms, 14_000);
    assert_eq!(days[0].rate_limited, 2);
    assert_eq!((days[0].invocations, days[0].runs_ended), (3, 1));
}

#[tokio::test]
async fn a_completed_job_delivered_again_is_logged_once() {
    let e = env(10).await;
    let queued = e.queue_run().await;
    let body = e.job(&queued.id, 0);
    assert!(e.deliver(&body).await);
    assert!(e.deliver(&body).await);
    assert_eq!(e.store.operations().len(), 1);
}

#[tokio::test]
async fn when_the_log_cannot_be_written_the_work_still_completes() {
    let e = env(10).await;
    e.store.fail_operations_log(true);
    let queued = e.queue_run().await;
    assert!(e.deliver(&e.job(&queued.id, 0)).await, "acknowledged");
    assert_eq!(e.run(&queued).await.state, RunState::Succeeded);
    assert!(e.store.operations().is_empty());
}

#[tokio::test]
async fn jobs_that_are_not_operations_or_find_nothing_to_do_log_nothing() {
    let e = env(1).await;
    let gone = serde_json::to_string(&JobEnvelope::new(JobKind::RefreshConnection {
        tenant_id: e.tenant.clone(),
        connection_id: ConnectionId::generate(),
    }))
    .unwrap();
    assert!(e.deliver(&gone).await);
    assert!(e.deliver(CANARY).await);
    assert!(e.store.operations().is_empty());
}
