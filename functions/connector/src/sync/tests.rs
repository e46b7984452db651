//! Sync runs against a local Stripe and the in-memory store: full and incremental imports,
//! continuations, a killed invocation, duplicate deliveries, rate limits, reauthorization,
//! cancellation, scheduled starts and purges.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::time::Duration;

use serde_json::json;
use tributary_core::connection::{CREDENTIALS_PURPOSE, Connection, ConnectionStatus};
use tributary_core::ids::{ConnectionId, JobId, TenantId};
use tributary_core::job::JobKind;
use tributary_core::ports::{SyncSchedule as _, SyncStore};
use tributary_core::records::{FeedFilter, FeedKey, RecordAction, read_feed};
use tributary_core::sync::{
    Mapping, RunState, RunTrigger, SyncConfig, SyncMode, SyncRun, SyncStatus,
};
use tributary_core::time::{Clock, EpochMillis};
use tributary_core::vault::{Owner, Vault};
use tributary_engine::Engine;
use tributary_engine::origins::ProviderOrigins;
use tributary_testing::fixtures::{oauth_connection, sync_config};
use tributary_testing::provider::{LocalStripe, STRIPE_KEY, customer};
use tributary_testing::{FakeQueue, MemStore, keyring};
use wiremock::MockServer;

use super::*;

const T0: EpochMillis = 1_765_000_000_000;

/// A clock that moves on by `step` ms every time it is read, so that time budgets run out.
struct Ticking {
    now: AtomicI64,
    step: i64,
}

impl Clock for Ticking {
    fn now_ms(&self) -> EpochMillis {
        self.now.fetch_add(self.step, AtomicOrdering::SeqCst)
    }
}

impl Ticking {
    fn at(ms: EpochMillis, step: i64) -> Arc<Self> {
        Arc::new(Self {
            now: AtomicI64::new(ms),
            step,
        })
    }

    fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, AtomicOrdering::SeqCst);
    }
}

struct World {
    stripe: LocalStripe,
    _server: MockServer,
    store: MemStore,
    queue: FakeQueue,
    syncing: Syncing<MemStore, MemStore>,
    clock: Arc<Ticking>,
    tenant: TenantId,
    connection: Connection,
    sync: SyncConfig,
}

impl World {
    async fn new(customers: usize) -> Self {
        Self::with(customers, SyncMode::FullRefresh, None).await
    }

    async fn with(customers: usize, mode: SyncMode, mapping: Option<Mapping>) -> Self {
        let stripe = LocalStripe::with_customers(customers);
        let server = stripe.start().await;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let id = ConnectionId::generate();
        let credentials = keyring()
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
                &tributary_core::ids::IntegrationId::generate(),
                &id,
                "stripe",
                credentials,
            )
        };
        store.put_connection(&connection);
        let sync = SyncConfig {
            mapping,
            ..sync_config(&tenant, &id, "stripe", "customers", "customers", mode, None)
        };
        store.put_sync(&sync);
        let syncing = Syncing {
            records: store.clone(),
            store: store.clone(),
            vault: Vault::new(Arc::new(Arc::new(keyring()))),
            engine: Engine::new(tributary_engine::HttpConfig {
                max_attempts: 1,
                egress: tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
                ..tributary_engine::HttpConfig::default()
            })
            .unwrap(),
            origins: ProviderOrigins::from([("stripe".to_owned(), server.uri())]),
            time_budget: None,
        };
        Self {
            stripe,
            _server: server,
            store,
            queue: FakeQueue::default(),
            syncing,
            clock: Ticking::at(T0, 0),
            tenant,
            connection,
            sync,
        }
    }

    fn feed(&self) -> FeedKey {
        FeedKey {
            tenant_id: self.tenant.clone(),
            connection_id: self.connection.id.clone(),
            model: "customers".into(),
        }
    }

    /// A manual run, queued as the API queues one.
    async fn queue_run(&self) -> SyncRun {
        let sync = self
            .store
            .get_sync(&self.tenant, &self.sync.id)
            .await
            .unwrap()
            .unwrap();
        let run = SyncRun::queued(&sync, RunTrigger::Manual, false, self.clock.now_ms());
        self.store.create_run(&run).await.unwrap();
        let mut s = sync.clone();
        s.active_run_id = Some(run.id.clone());
        s.version += 1;
        assert!(self.store.update_sync(&s, sync.version).await.unwrap());
        run
    }

    /// One invocation of the run job `continuation`, with a deadline 15 minutes away.
    async fn invoke(
        &self,
        job: &JobId,
        run: &SyncRun,
        continuation: u32,
    ) -> Result<(), SyncJobError> {
        let time = JobTime {
            clock: &*self.clock,
            deadline_ms: self.clock.now_ms() + 900_000,
            job_id: job,
        };
        execute(
            &self.syncing,
            &self.queue,
            &time,
            &self.tenant,
            &self.sync.id,
            &run.id,
            continuation,
        )
        .await
    }

    /// Runs the run and every continuation it enqueues until none is left; the number of
    /// invocations.
    async fn drive(&self, run: &SyncRun) -> usize {
        let mut invocations = 1;
        self.invoke(&JobId::generate(), run, 0).await.unwrap();
        loop {
            let next = self.queue.sent().into_iter().find_map(|j| match j.kind {
                JobKind::SyncRun {
                    run_id,
                    continuation,
                    ..
                } if run_id == run.id && continuation >= invocations as u32 => {
                    Some((j.id, continuation))
                }
                _ => None,
            });
            let Some((job, continuation)) = next else {
                return invocations;
            };
            invocations += 1;
            assert!(invocations < 10_000, "the run never ends");
            self.invoke(&job, run, continuation).await.unwrap();
        }
    }

    /// Runs every continuation of `run` that was enqueued and not yet run (after an invocation
    /// the test drove itself).
    async fn drive_from(&self, run: &SyncRun) {
        let mut done = std::collections::HashSet::new();
        loop {
            let next = self.queue.sent().into_iter().find_map(|j| match j.kind {
                JobKind::SyncRun {
                    run_id,
                    continuation,
                    ..
                } if run_id == run.id && !done.contains(&j.id) => Some((j.id, continuation)),
                _ => None,
            });
            let Some((job, continuation)) = next else {
                return;
            };
            done.insert(job.clone());
            self.invoke(&job, run, continuation).await.unwrap();
        }
    }

    /// The connector's check of `run`, as the monitor's `check_run` job asks for it.
    async fn check(&self, run: &SyncRun) -> Result<(), SyncJobError> {
        let time = JobTime {
            clock: &*self.clock,
            deadline_ms: self.clock.now_ms() + 900_000,
            job_id: &JobId::generate(),
        };
        check_idle(
            &self.syncing,
            &self.queue,
            &time,
            &self.tenant,
            &self.sync.id,
            &run.id,
        )
        .await
    }

    /// The run jobs enqueued for `run`, as (continuation) in order.
    fn run_jobs(&self, run: &SyncRun) -> Vec<u32> {
        self.queue
            .sent()
            .into_iter()
            .filter_map(|j| match j.kind {
                JobKind::SyncRun {
                    run_id,
                    continuation,
                    ..
                } if run_id == run.id => Some(continuation),
                _ => None,
            })
            .collect()
    }

    async fn run(&self, id: &SyncRun) -> SyncRun {
        self.store
            .get_run(&self.tenant, &self.sync.id, &id.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// Every change after `cursor`, read in pages of 37.
    async fn changes_after(
        &self,
        mut cursor: Option<tributary_core::records::FeedPosition>,
    ) -> (
        Vec<(String, RecordAction)>,
        Option<tributary_core::records::FeedPosition>,
    ) {
        let mut out = Vec::new();
        loop {
            let read = read_feed(
                &self.store,
                &self.feed(),
                cursor,
                37,
                &FeedFilter::default(),
            )
            .await
            .unwrap();
            out.extend(read.records.iter().map(|r| (r.id.clone(), r.action)));
            if read.next.is_some() {
                cursor = read.next;
            }
            if !read.more {
                return (out, cursor);
            }
        }
    }
}

fn ids(changes: &[(String, RecordAction)]) -> Vec<String> {
    let mut ids: Vec<String> = changes.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_full_sync_stores_every_record_once_and_the_feed_returns_each_once() {
    let w = World::new(250).await;
    let run = w.queue_run().await;
    assert_eq!(w.drive(&run).await, 1);

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert_eq!(
        (run.stats.pages, run.stats.added, run.stats.unchanged),
        (3, 250, 0)
    );
    assert_eq!(run.stats.provider_requests, 3);
    let stored = w.store.stored_records(&w.feed());
    assert_eq!(stored.len(), 250);
    // Stored as canonical JSON: keys sorted, no whitespace.
    let first = &stored["cus_00000000"];
    assert!(
        first.data.starts_with(r#"{"address":{"city":"Lyon""#),
        "{}",
        first.data
    );
    let (changes, _) = w.changes_after(None).await;
    assert_eq!(changes.len(), 250);
    assert_eq!(
        ids(&changes),
        w.stripe.customers().keys().cloned().collect::<Vec<_>>()
    );
    assert!(changes.iter().all(|(_, a)| *a == RecordAction::Added));
    // The sync is free again, and the run ended with an event.
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.active_run_id, None);
    assert_eq!(sync.last_run.unwrap().state, RunState::Succeeded);
    assert_eq!(w.store.sync_events().len(), 1);
    assert!(
        w.store.sync_lease(&w.sync.id).is_none(),
        "the lease is given back"
    );
}

#[tokio::test]
async fn a_second_pass_writes_only_what_changed_and_the_feed_returns_exactly_the_changes() {
    let w = World::new(300).await;
    w.drive(&w.queue_run().await).await;
    let (_, cursor) = w.changes_after(None).await;
    let before = w.store.stored_records(&w.feed());

    // Five updated, three added, and one provider that now pretty-prints every body.
    for n in [3, 77, 150, 151, 299] {
        w.stripe.put(customer(n, 2));
    }
    for n in 300..303 {
        w.stripe.put(customer(n, 1));
    }
    w.stripe.pretty();
    let run = w.queue_run().await;
    w.drive(&run).await;

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(
        (run.stats.added, run.stats.updated, run.stats.unchanged),
        (3, 5, 295)
    );
    let (changes, _) = w.changes_after(cursor).await;
    let mut expected: Vec<(String, RecordAction)> = [3, 77, 150, 151, 299]
        .iter()
        .map(|n| (format!("cus_{n:08}"), RecordAction::Updated))
        .chain((300..303).map(|n| (format!("cus_{n:08}"), RecordAction::Added)))
        .collect();
    expected.sort();
    let mut got = changes.clone();
    got.sort();
    assert_eq!(got, expected);
    // Unchanged records were not rewritten: same position, same run.
    let after = w.store.stored_records(&w.feed());
    assert_eq!(after["cus_00000004"], before["cus_00000004"]);
}

#[tokio::test]
async fn a_tiny_time_budget_continues_many_times_without_fetching_a_page_twice() {
    let mut w = World::new(1_000).await;
    w.syncing.time_budget = Some(Duration::from_millis(25));
    w.clock = Ticking::at(T0, 10);
    let run = w.queue_run().await;
    let invocations = w.drive(&run).await;

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert!(invocations >= 5, "continued {invocations} times");
    assert_eq!(run.continuations as usize, invocations - 1);
    assert_eq!(
        w.stripe.pages_fetched_twice(),
        0,
        "{:?}",
        w.stripe.page_requests()
    );
    assert_eq!(run.stats.pages, 10);
    assert_eq!(run.stats.added, 1_000);
    let (changes, _) = w.changes_after(None).await;
    assert_eq!(
        ids(&changes),
        w.stripe.customers().keys().cloned().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_invocation_killed_mid_run_resumes_from_the_last_durable_page() {
    let w = World::new(1_000).await;
    let run = w.queue_run().await;
    let job = JobId::generate();
    // Kill the invocation (drop its future) once the fifth page has been requested.
    tokio::select! {
        _ = w.invoke(&job, &run, 0) => panic!("the run ended before it was killed"),
        () = async {
            while w.stripe.page_requests().len() < 5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => {}
    }
    // The message comes back after its visibility timeout, when the dead invocation's lease has
    // expired.
    w.clock.advance(17 * 60_000);
    w.invoke(&job, &run, 0).await.unwrap();

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert!(
        w.stripe.pages_fetched_twice() <= 1,
        "{:?}",
        w.stripe.page_requests()
    );
    let stored = w.store.stored_records(&w.feed());
    assert_eq!(stored.len(), 1_000);
    let (changes, _) = w.changes_after(None).await;
    assert_eq!(
        changes.len(),
        1_000,
        "no record missing or twice in the feed"
    );
    assert_eq!(
        ids(&changes),
        w.stripe.customers().keys().cloned().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_same_job_delivered_twice_runs_once() {
    let w = World::new(150).await;
    let run = w.queue_run().await;
    let job = JobId::generate();
    // Concurrently: one takes the lease, the other is told to come back later.
    let other = JobId::generate();
    let (a, b) = tokio::join!(w.invoke(&job, &run, 0), w.invoke(&other, &run, 0));
    assert!(
        matches!(
            (&a, &b),
            (Ok(()), Err(SyncJobError::Busy)) | (Err(SyncJobError::Busy), Ok(()))
        ),
        "{a:?} {b:?}"
    );
    // Sequentially, after the run ended: acknowledged without reading anything.
    w.stripe.reset_counts();
    w.invoke(&job, &run, 0).await.unwrap();
    assert!(w.stripe.page_requests().is_empty());
    let run = w.run(&run).await;
    assert_eq!(
        (run.state, run.stats.added, run.stats.pages),
        (RunState::Succeeded, 150, 2)
    );
}

#[tokio::test]
async fn a_rate_limited_run_defers_through_the_queue_and_completes() {
    let w = World::new(300).await;
    w.stripe.throttle(3, 7);
    let run = w.queue_run().await;
    w.drive(&run).await;

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert_eq!(run.stats.added, 300);
    assert_eq!(run.stats.retries, 3);
    assert_eq!(w.stripe.throttled(), 3);
    // Three pages and three refusals: nothing retried inside the invocation.
    assert_eq!(run.stats.provider_requests, 6);
    let delays: Vec<Duration> = w
        .queue
        .sent_with_delays()
        .into_iter()
        .filter(|(j, _)| matches!(j.kind, JobKind::SyncRun { .. }))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        delays,
        vec![Duration::from_secs(7); 3],
        "Retry-After honoured through SQS"
    );
}

#[tokio::test]
async fn a_provider_that_keeps_refusing_fails_the_run_after_the_deferral_bound() {
    let w = World::new(10).await;
    w.stripe.throttle(100, 1);
    let run = w.queue_run().await;
    w.drive(&run).await;
    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.as_ref().unwrap().class, "rate_limited");
    assert_eq!(w.stripe.throttled() as u32, MAX_DEFERRALS + 1);
}

#[tokio::test]
async fn refused_credentials_fail_the_run_and_pause_the_sync_with_the_reason() {
    let w = World::new(10).await;
    let mut bad = w.connection.clone();
    bad.credentials = keyring()
        .seal(
            &Owner {
                tenant: w.tenant.as_str(),
                object: bad.id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            br#"{"api_key":"sk_test_revoked"}"#,
        )
        .unwrap()
        .encode();
    w.store.put_connection(&bad);
    let run = w.queue_run().await;
    w.drive(&run).await;
    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.error.unwrap().class, "auth");
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.status, SyncStatus::Paused);
    assert!(sync.status_reason.unwrap().starts_with("needs_reauth"));
    assert_eq!(sync.next_run_at_ms, None);
}

#[tokio::test]
async fn a_connection_that_needs_reauth_pauses_the_sync_without_calling_the_provider() {
    let w = World::new(10).await;
    let mut c = w.connection.clone();
    c.status = ConnectionStatus::NeedsReauth;
    c.status_reason = Some("invalid_grant".into());
    w.store.put_connection(&c);
    let run = w.queue_run().await;
    w.drive(&run).await;
    assert_eq!(w.run(&run).await.state, RunState::Failed);
    assert!(w.stripe.page_requests().is_empty());
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.status, SyncStatus::Paused);
}

#[tokio::test]
async fn a_cancelled_run_stops_and_frees_the_sync() {
    let w = World::new(100).await;
    let run = w.queue_run().await;
    let mut cancelled = w.run(&run).await;
    cancelled.cancel_requested = true;
    cancelled.version += 1;
    assert!(w.store.update_run(&cancelled, run.version).await.unwrap());
    w.drive(&run).await;
    assert_eq!(w.run(&run).await.state, RunState::Cancelled);
    assert!(w.stripe.page_requests().is_empty());
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.active_run_id, None);
}

#[tokio::test]
async fn a_mapping_stores_the_tenants_fields_and_counts_records_it_cannot_convert() {
    let mapping: Mapping = serde_json::from_value(json!({"fields": [
        {"to": "email"},
        {"to": "city", "from": "address.city"},
        {"to": "version", "from": "metadata.version", "type": "integer"},
    ]}))
    .unwrap();
    let w = World::with(20, SyncMode::FullRefresh, Some(mapping)).await;
    let mut odd = customer(5, 1);
    odd["metadata"]["version"] = json!("five");
    w.stripe.put(odd);
    let run = w.queue_run().await;
    w.drive(&run).await;
    let run = w.run(&run).await;
    assert_eq!((run.stats.added, run.stats.invalid), (19, 1));
    assert!(
        run.warnings[0].contains("cus_00000005"),
        "{:?}",
        run.warnings
    );
    let stored = w.store.stored_records(&w.feed());
    assert_eq!(
        stored["cus_00000001"].data,
        r#"{"city":"Lyon","email":"customer1@example.com","version":1}"#
    );
}

#[tokio::test]
async fn a_scheduled_start_creates_one_run_schedules_the_next_and_is_idempotent() {
    let w = World::new(5).await;
    let due = T0 - 1_000;
    let mut s = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    s.next_run_at_ms = Some(due);
    s.version += 1;
    w.store.update_sync(&s, s.version - 1).await.unwrap();

    for _ in 0..2 {
        start_scheduled(&w.syncing, &w.queue, &*w.clock, &w.tenant, &w.sync.id, due)
            .await
            .unwrap();
    }
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    let run_id = sync.active_run_id.clone().expect("a run is active");
    let runs = w
        .store
        .list_runs(&w.tenant, &w.sync.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1, "one run for two deliveries");
    assert_eq!(runs.items[0].trigger, RunTrigger::Schedule);
    let next = sync.next_run_at_ms.unwrap();
    assert!(
        (T0 + 3_600_000..T0 + 3_600_000 + 360_000).contains(&next),
        "{next}"
    );
    let jobs: Vec<_> = w
        .queue
        .sent()
        .into_iter()
        .filter(|j| matches!(&j.kind, JobKind::SyncRun { run_id: r, .. } if *r == run_id))
        .collect();
    assert!(!jobs.is_empty());
    // The monitor does not see it as due any more.
    assert!(w.store.due_syncs(T0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn purging_a_deleted_sync_removes_its_records_then_the_sync() {
    let w = World::new(120).await;
    w.drive(&w.queue_run().await).await;
    assert_eq!(w.store.stored_records(&w.feed()).len(), 120);
    let mut s = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    s.status = SyncStatus::Deleting;
    s.version += 1;
    w.store.update_sync(&s, s.version - 1).await.unwrap();

    let time = JobTime {
        clock: &*w.clock,
        deadline_ms: T0 + 900_000,
        job_id: &JobId::generate(),
    };
    purge(&w.syncing, &w.queue, &time, &w.tenant, &w.sync.id)
        .await
        .unwrap();
    assert!(w.store.stored_records(&w.feed()).is_empty());
    assert!(w.store.feed_pages(&w.feed()).is_empty());
    assert!(
        w.store
            .get_sync(&w.tenant, &w.sync.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_completed_full_pass_deletes_what_it_did_not_see_as_tombstones() {
    let mut w = World::new(400).await;
    w.drive(&w.queue_run().await).await;
    let (_, cursor) = w.changes_after(None).await;
    for n in [0, 123, 399] {
        w.stripe.remove(&format!("cus_{n:08}"));
    }
    // The second pass continues across invocations: what earlier invocations saw unchanged must
    // not be taken for deleted.
    w.syncing.time_budget = Some(Duration::from_millis(25));
    w.clock = Ticking::at(T0 + 60_000, 10);
    let run = w.queue_run().await;
    assert!(w.drive(&run).await > 2);

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    assert_eq!((run.stats.deleted, run.stats.unchanged), (3, 397));
    let (changes, _) = w.changes_after(cursor).await;
    let mut expected: Vec<(String, RecordAction)> = [0, 123, 399]
        .iter()
        .map(|n| (format!("cus_{n:08}"), RecordAction::Deleted))
        .collect();
    expected.sort();
    let mut got = changes;
    got.sort();
    assert_eq!(got, expected);
    // Tombstones keep the last content.
    let stored = w.store.stored_records(&w.feed());
    assert_eq!(stored.len(), 400);
    assert!(
        stored["cus_00000123"]
            .data
            .contains("customer123@example.com")
    );
}

#[tokio::test]
async fn a_full_pass_that_fails_half_way_deletes_nothing() {
    let w = World::new(300).await;
    w.drive(&w.queue_run().await).await;
    for n in 0..10 {
        w.stripe.remove(&format!("cus_{n:08}"));
    }
    // From the third page on, the provider keeps refusing until the run gives up.
    let run = w.queue_run().await;
    let job = JobId::generate();
    tokio::select! {
        _ = w.invoke(&job, &run, 0) => {}
        () = async {
            while w.stripe.page_requests().len() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            w.stripe.throttle(1_000, 1);
            std::future::pending::<()>().await;
        } => {}
    }
    w.drive_from(&run).await;
    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.stats.deleted, 0);
    let stored = w.store.stored_records(&w.feed());
    assert!(stored.values().all(|r| r.action != RecordAction::Deleted));
}

#[tokio::test]
async fn a_pass_that_would_delete_more_than_the_guard_deletes_nothing_and_says_why() {
    let w = World::new(100).await;
    w.drive(&w.queue_run().await).await;
    for n in 0..60 {
        w.stripe.remove(&format!("cus_{n:08}"));
    }
    let run = w.queue_run().await;
    w.drive(&run).await;
    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(run.stats.deleted, 0);
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("60 of 100") && w.contains("50%")),
        "{:?}",
        run.warnings
    );
    assert!(
        w.store
            .stored_records(&w.feed())
            .values()
            .all(|r| r.action != RecordAction::Deleted)
    );
}

#[tokio::test]
async fn a_run_whose_position_stops_moving_is_stalled_with_an_event() {
    let mut w = World::new(500).await;
    // Too little time for even one page: every invocation ends where it started.
    w.syncing.time_budget = Some(Duration::from_millis(1));
    w.clock = Ticking::at(T0, 10);
    let run = w.queue_run().await;
    let invocations = w.drive(&run).await;

    let run = w.run(&run).await;
    assert_eq!(run.state, RunState::Stalled);
    assert_eq!(invocations as u32, MAX_STALLED_CONTINUATIONS);
    assert_eq!(run.error.unwrap().class, "stalled");
    let events = w.store.sync_events();
    assert_eq!(
        events.last().map(|e| e.kind),
        Some(tributary_core::sync::SyncEventType::RunStalled)
    );
}

#[tokio::test]
async fn an_incremental_sync_saves_its_checkpoint_and_the_next_run_reads_from_it() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    // GitHub's issues stream: incremental on `updated_at`, sent as `since` (60 s lookback).
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/issues"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "title": "a", "updated_at": "2026-11-01T10:00:00Z"},
            {"id": 2, "title": "b", "updated_at": "2026-11-02T10:00:00Z"}
        ])))
        .mount(&server)
        .await;
    let mut w = World::new(0).await;
    w.syncing.origins = ProviderOrigins::from([("github".to_owned(), server.uri())]);
    let mut github = w.connection.clone();
    github.provider = "github".into();
    github.credentials = keyring()
        .seal(
            &Owner {
                tenant: w.tenant.as_str(),
                object: github.id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            br#"{"token":"ghp_local0123456789"}"#,
        )
        .unwrap()
        .encode();
    w.store.put_connection(&github);
    let sync = SyncConfig {
        provider: "github".into(),
        stream: "issues".into(),
        mode: SyncMode::Incremental,
        ..w.sync.clone()
    };
    w.store.put_sync(&sync);

    let run = w.queue_run().await;
    w.drive(&run).await;
    assert_eq!(w.run(&run).await.state, RunState::Succeeded);
    let saved = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        saved.checkpoint,
        Some(json!({"cursor": "2026-11-02T10:00:00Z"}))
    );
    assert_eq!(saved.active_run_id, None, "ended in the same write");

    w.drive(&w.queue_run().await).await;
    let requests = server.received_requests().await.unwrap();
    let since: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(since.len(), 2, "{since:?}");
    assert_eq!(
        since[1], "2026-11-02T09:59:00Z",
        "the checkpoint less the lookback"
    );
}

/// A minute past the monitor's idle bound.
const IDLE: i64 = 31 * 60_000;

#[tokio::test]
async fn a_run_whose_job_was_lost_is_resumed_by_a_check_and_completes() {
    let w = World::new(250).await;
    // Queued, but its job never arrives.
    let run = w.queue_run().await;
    w.clock.advance(IDLE);

    w.check(&run).await.unwrap();

    assert_eq!(
        w.run_jobs(&run),
        [0],
        "its first invocation, enqueued again"
    );
    let resumed = w.run(&run).await;
    assert_eq!((resumed.state, resumed.rescues), (RunState::Queued, 1));
    assert_eq!(
        resumed.saved_at_ms,
        w.clock.now_ms(),
        "out of the idle window"
    );
    assert!(
        w.store.sync_lease(&w.sync.id).is_none(),
        "the lease is given back"
    );
    w.drive_from(&run).await;
    let done = w.run(&run).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert_eq!(done.stats.added, 250);
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sync.active_run_id, None);
}

#[tokio::test]
async fn a_run_that_keeps_stopping_is_resumed_twice_then_stalled_with_an_event_and_its_sync_freed()
{
    let w = World::new(1_000).await;
    let run = w.queue_run().await;
    w.clock.advance(IDLE);
    // First rescue: its invocation dies after two pages (a crash, a timeout), mid-run.
    w.check(&run).await.unwrap();
    let job = JobId::generate();
    tokio::select! {
        _ = w.invoke(&job, &run, 0) => panic!("the run ended before it was killed"),
        () = async {
            while w.stripe.page_requests().len() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        } => {}
    }
    assert_eq!(w.run(&run).await.state, RunState::Running);
    // A check soon after finds it saved by that invocation: nothing to do.
    w.clock.advance(60_000);
    w.check(&run).await.unwrap();
    assert_eq!(w.run_jobs(&run), [0]);
    // Second rescue, once the dead invocation's lease has expired: this job is lost too.
    w.clock.advance(IDLE);
    w.check(&run).await.unwrap();
    assert_eq!(w.run_jobs(&run), [0, 0]);
    assert_eq!(w.run(&run).await.rescues, MAX_RESCUES);

    w.clock.advance(IDLE);
    w.check(&run).await.unwrap();

    assert_eq!(w.run_jobs(&run), [0, 0], "no third resumption");
    let stalled = w.run(&run).await;
    assert_eq!(stalled.state, RunState::Stalled);
    let error = stalled.error.clone().unwrap();
    assert_eq!(error.class, "stalled");
    assert_eq!(
        error.message,
        "no progress for 31 minutes after 2 resumptions"
    );
    assert_eq!(stalled.active_at_ms(), None, "out of the index");
    let events = w.store.sync_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].run_id.as_ref()),
        (
            tributary_core::sync::SyncEventType::RunStalled,
            Some(&run.id)
        )
    );
    let sync = w
        .store
        .get_sync(&w.tenant, &w.sync.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sync.active_run_id, None,
        "the sync is free for its next run"
    );
    assert_eq!(sync.last_run.unwrap().state, RunState::Stalled);
    assert!(w.store.sync_lease(&w.sync.id).is_none());
    // Ended: later checks (a duplicate job) do nothing.
    w.clock.advance(IDLE);
    w.check(&run).await.unwrap();
    assert_eq!(w.run(&run).await, stalled);
    assert_eq!(w.store.sync_events().len(), 1);
}

#[tokio::test]
async fn a_check_of_a_run_that_moved_recently_or_ended_does_nothing() {
    let mut w = World::new(1_000).await;
    w.syncing.time_budget = Some(Duration::from_millis(25));
    w.clock = Ticking::at(T0, 10);
    let run = w.queue_run().await;
    w.clock.advance(IDLE);
    // One invocation that continues: it saved the run as it stopped.
    w.invoke(&JobId::generate(), &run, 0).await.unwrap();
    let continued = w.run(&run).await;
    assert_eq!(continued.state, RunState::Continued);
    w.clock.advance(20 * 60_000);

    w.check(&run).await.unwrap();

    assert_eq!(w.run(&run).await, continued, "untouched");
    assert_eq!(w.run_jobs(&run), [1], "only its own continuation");
    assert!(w.store.sync_lease(&w.sync.id).is_none());
    // Once it ended, however long ago, a check does nothing either.
    w.drive_from(&run).await;
    let done = w.run(&run).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    w.clock.advance(3 * IDLE);
    let jobs = w.queue.sent().len();
    w.check(&run).await.unwrap();
    assert_eq!(w.run(&run).await, done);
    assert_eq!(w.queue.sent().len(), jobs);
}

#[tokio::test]
async fn a_check_while_an_invocation_holds_the_lease_does_nothing() {
    let w = World::new(10).await;
    let run = w.queue_run().await;
    w.clock.advance(IDLE);
    let now = w.clock.now_ms();
    assert!(
        w.store
            .lease_sync(&w.tenant, &w.sync.id, "job_running", now, now + 300_000)
            .await
            .unwrap()
    );

    w.check(&run).await.unwrap();

    assert_eq!(w.run(&run).await, run, "untouched");
    assert!(w.run_jobs(&run).is_empty());
    assert_eq!(
        w.store.sync_lease(&w.sync.id).map(|(holder, _)| holder),
        Some("job_running".to_owned()),
        "the holder keeps it"
    );
}

#[tokio::test]
async fn an_invocation_s_operation_counts_only_what_it_wrote_and_the_warnings_it_added() {
    use tributary_core::operation::{Entry, OperationKind, Recorder};
    use tributary_core::sync::RunStats;
    let w = World::new(1).await;
    let mut run = SyncRun::queued(&w.sync, RunTrigger::Manual, false, T0);
    run.warn("an earlier invocation's warning".into());
    let start = RunStats {
        added: 100,
        updated: 5,
        deleted: 1,
        unchanged: 7,
        ..RunStats::default()
    };
    run.stats = RunStats {
        added: 250,
        updated: 6,
        deleted: 3,
        unchanged: 7,
        ..RunStats::default()
    };
    run.warn("3 records have no primary key".into());
    run.state = RunState::Continued;
    let recorder = Arc::new(Recorder::new(
        tributary_core::ids::OperationId::derive(T0, "x"),
        w.tenant.clone(),
        OperationKind::SyncRun,
        T0,
    ));
    operation::recording(recorder.clone(), async {
        describe_outcome(&run, &start, 1, T0);
    })
    .await;
    let op = recorder.finish(OperationState::Succeeded, T0).unwrap();
    let c = &op.counts;
    assert_eq!(
        (
            c.records_added,
            c.records_updated,
            c.records_deleted,
            c.records_unchanged
        ),
        (150, 1, 2, 0)
    );
    assert_eq!(op.state, OperationState::Continued);
    let notes: Vec<&str> = op
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Note(n) => Some(n.message.as_str()),
            Entry::Request(_) => None,
        })
        .collect();
    assert_eq!(notes, ["3 records have no primary key"]);
}
