//! The sync and records adapters (`SyncStore`, `SyncSchedule`, `RecordStore`) against moto, on
//! tables created from `infra/template.yaml`.
//!
//! Moto accepts oversized batches and duplicate keys, so the batch limits are proven by the
//! adapters' unit tests (`shared/aws/src/records.rs`); these prove the effects. Each test has a
//! moto of its own, so the due index holds only what the test put there.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use tributary_aws::{Clients, DynamoTable};
use tributary_core::PortError;
use tributary_core::ids::{AuditEventId, ConnectionId, EventId, SyncId, SyncRunId, TenantId};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{
    ACTIVE_RUN_SHARDS, DueSync, IdleRun, SyncSchedule, SyncStore, TenantStore,
};
use tributary_core::records::{
    FeedFilter, FeedKey, FeedPage, FeedPosition, RecordAction, RecordStore, StoredRecord,
    content_hash, read_feed,
};
use tributary_core::sync::{
    RunState, RunStats, RunTrigger, SyncConfig, SyncEvent, SyncEventType, SyncFilter, SyncMode,
    SyncRun, SyncStatus,
};
use tributary_core::tenancy::{AuditEvent, PurgeProgress, Tenant, TenantStatus};
use tributary_local::{MotoServer, ProvisionOptions, Provisioned, Template, provision, workspace};

struct Env {
    _moto: MotoServer,
    clients: Clients,
    provisioned: Provisioned,
}

async fn env() -> Env {
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let template = Template::load(&workspace::template_path()).expect("template loads");
    let provisioned = provision(
        &template,
        &sdk,
        &ProvisionOptions {
            stack_name: "syncs".into(),
            parameters: BTreeMap::new(),
            secret_values: BTreeMap::new(),
        },
    )
    .await
    .expect("resources are created from the template");
    Env {
        _moto: moto,
        clients: Clients::new(&sdk),
        provisioned,
    }
}

impl Env {
    fn control(&self) -> DynamoTable {
        self.clients.table(&self.provisioned.tables["ControlTable"])
    }

    fn records(&self) -> DynamoTable {
        self.clients.table(&self.provisioned.tables["RecordsTable"])
    }

    /// Every item of a partition, read behind the adapters' back.
    async fn partition(
        &self,
        table: &DynamoTable,
        pk: &str,
    ) -> Vec<aws_sdk_dynamodb::types::AttributeValue> {
        let mut sks = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .clients
                .dynamodb()
                .query()
                .table_name(table.name())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            sks.extend(
                out.items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut i| i.remove("sk").unwrap()),
            );
            start = out.last_evaluated_key;
            if start.is_none() {
                return sks;
            }
        }
    }

    /// The sync's item as stored.
    async fn sync_item(&self, s: &SyncConfig) -> Option<tributary_aws::dynamo::Item> {
        self.clients
            .dynamodb()
            .get_item()
            .table_name(self.control().name())
            .key("pk", AttributeValue::S(format!("TENANT#{}", s.tenant_id)))
            .key("sk", AttributeValue::S(format!("SYNC#{}", s.id)))
            .send()
            .await
            .unwrap()
            .item
    }

    /// The run's item as stored.
    async fn run_item(&self, r: &SyncRun) -> tributary_aws::dynamo::Item {
        self.clients
            .dynamodb()
            .get_item()
            .table_name(self.control().name())
            .key("pk", AttributeValue::S(format!("TENANT#{}", r.tenant_id)))
            .key(
                "sk",
                AttributeValue::S(format!("RUN#{}#{}", r.sync_id, r.id)),
            )
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    }

    /// The `ActiveRuns` partition the run's item names.
    async fn active_shard(&self, r: &SyncRun) -> u32 {
        let item = self.run_item(r).await;
        item["active_shard"]
            .as_s()
            .unwrap()
            .strip_prefix("ACTIVE#")
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn idle(r: &SyncRun, active_at_ms: i64) -> IdleRun {
    IdleRun {
        tenant_id: r.tenant_id.clone(),
        sync_id: r.sync_id.clone(),
        run_id: r.id.clone(),
        active_at_ms,
    }
}

fn sync(
    tenant: &TenantId,
    connection: &ConnectionId,
    model: &str,
    next: Option<i64>,
) -> SyncConfig {
    tributary_testing::fixtures::sync_config(
        tenant,
        connection,
        "hubspot",
        "contacts",
        model,
        SyncMode::FullRefresh,
        next,
    )
}

fn audit(tenant: &TenantId, action: &str) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: tenant.clone(),
        at_ms: 5,
        actor: "key_test".into(),
        action: action.into(),
        target: "x".into(),
    }
}

fn feed_of(s: &SyncConfig) -> FeedKey {
    FeedKey {
        tenant_id: s.tenant_id.clone(),
        connection_id: s.connection_id.clone(),
        model: s.model.clone(),
    }
}

/// The feed of a new tenant's connection's `contact` model.
fn a_feed() -> FeedKey {
    feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ))
}

fn record(id: &str, page: u64, index: u32, action: RecordAction) -> StoredRecord {
    let data = json!({"id": id, "page": page}).to_string();
    StoredRecord {
        id: id.into(),
        hash: content_hash(&data),
        data,
        action,
        first_seen_ms: 10,
        last_modified_ms: 20 + i64::try_from(page).unwrap(),
        run_id: SyncRunId::generate(),
        position: FeedPosition { page, index },
        expires_at_s: index.is_multiple_of(2).then_some(2_000_000_000),
    }
}

fn feed_page(seq: u64, entries: Vec<String>) -> FeedPage {
    FeedPage {
        seq,
        run_id: SyncRunId::generate(),
        entries,
        committed_at_ms: 1_000 + i64::try_from(seq).unwrap(),
        run_position: seq
            .is_multiple_of(2)
            .then(|| json!({"cursor": format!("c{seq}")})),
        run_stats: RunStats {
            pages: seq,
            added: 3,
            ..RunStats::default()
        },
        expires_at_s: seq.is_multiple_of(3).then_some(2_000_000_000),
    }
}

fn page(limit: u32, after: Option<String>) -> PageRequest {
    PageRequest { limit, after }
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, PortError>) -> bool {
    matches!(r, Err(PortError::Conflict { .. }))
}

#[tokio::test]
async fn a_connection_s_model_is_claimed_by_one_sync_until_that_sync_is_deleted_with_its_runs() {
    let env = env().await;
    let table = env.control();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let conn = ConnectionId::generate();
    let first = sync(&t, &conn, "contact", Some(5_000));
    table
        .create_sync(&first, &audit(&t, "sync.created"))
        .await
        .unwrap();
    assert_eq!(
        table.get_sync(&t, &first.id).await.unwrap(),
        Some(first.clone())
    );

    // A second sync of the same connection and model is refused, and nothing of it is written.
    let second = sync(&t, &conn, "contact", Some(5_000));
    assert!(is_conflict(
        table.create_sync(&second, &audit(&t, "sync.created")).await
    ));
    assert_eq!(table.get_sync(&t, &second.id).await.unwrap(), None);
    // The same id twice, too.
    let mut same_id = sync(&t, &conn, "deal", None);
    same_id.id = first.id.clone();
    assert!(is_conflict(
        table
            .create_sync(&same_id, &audit(&t, "sync.created"))
            .await
    ));
    // Another model of the connection, and the same model in another tenant, are free.
    table
        .create_sync(&sync(&t, &conn, "deal", None), &audit(&t, "sync.created"))
        .await
        .unwrap();
    table
        .create_sync(
            &sync(&other, &conn, "contact", None),
            &audit(&other, "sync.created"),
        )
        .await
        .unwrap();

    // Runs of the sync (more than a batch), and one of another sync that stays.
    for _ in 0..30 {
        let run = SyncRun::queued(&first, RunTrigger::Schedule, false, 1);
        table.create_run(&run).await.unwrap();
    }
    let deal = table
        .list_syncs(&t, &SyncFilter::default(), &page(10, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|s| s.model == "deal")
        .unwrap();
    let kept_run = SyncRun::queued(&deal, RunTrigger::Manual, false, 1);
    table.create_run(&kept_run).await.unwrap();

    // Deleted: with its claim and its runs, audited.
    assert!(
        table
            .delete_sync(&t, &first.id, &audit(&t, "sync.deleted"))
            .await
            .unwrap()
    );
    assert_eq!(table.get_sync(&t, &first.id).await.unwrap(), None);
    assert!(
        table
            .list_runs(&t, &first.id, &page(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let left: Vec<String> = env
        .partition(&table, &format!("TENANT#{t}"))
        .await
        .into_iter()
        .map(|sk| sk.as_s().unwrap().clone())
        .collect();
    assert!(
        !left.iter().any(|sk| sk.contains(first.id.as_str())),
        "nothing of the sync is left: {left:?}"
    );
    assert!(!left.contains(&format!("SYNCMODEL#{conn}#contact")));
    assert!(left.contains(&format!("SYNCMODEL#{conn}#deal")));
    assert_eq!(
        left.iter().filter(|sk| sk.starts_with("AUDIT#")).count(),
        3,
        "two creations and the deletion are audited"
    );
    assert_eq!(
        table.get_run(&t, &deal.id, &kept_run.id).await.unwrap(),
        Some(kept_run)
    );
    assert!(
        !table
            .delete_sync(&t, &first.id, &audit(&t, "sync.deleted"))
            .await
            .unwrap()
    );

    // The claim is free again.
    table
        .create_sync(&second, &audit(&t, "sync.created"))
        .await
        .unwrap();
}

#[tokio::test]
async fn syncs_are_listed_by_connection_as_read_in_pages() {
    let env = env().await;
    let table = env.control();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let (a, b) = (ConnectionId::generate(), ConnectionId::generate());
    let mut of_a = Vec::new();
    for i in 0..7 {
        let s = sync(&t, if i % 2 == 0 { &a } else { &b }, &format!("m{i}"), None);
        table
            .create_sync(&s, &audit(&t, "sync.created"))
            .await
            .unwrap();
        if i % 2 == 0 {
            of_a.push(s);
        }
    }
    table
        .create_sync(
            &sync(&other, &a, "m0", None),
            &audit(&other, "sync.created"),
        )
        .await
        .unwrap();
    of_a.sort_by(|x, y| x.id.cmp(&y.id));

    let filter = SyncFilter {
        connection_id: Some(a.clone()),
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = table
            .list_syncs(&t, &filter, &page(3, after))
            .await
            .unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items);
        match p.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(
        seen, of_a,
        "the tenant's syncs of the connection, oldest first"
    );
    assert_eq!(
        table
            .list_syncs(&t, &SyncFilter::default(), &page(100, None))
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    assert!(matches!(
        table
            .list_syncs(&t, &filter, &page(3, Some(format!("CONN#{a}"))))
            .await,
        Err(PortError::OutOfRange { .. })
    ));
}

#[tokio::test]
async fn an_update_checks_the_version_keeps_the_run_lease_and_follows_the_due_index() {
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let s = sync(&t, &ConnectionId::generate(), "contact", Some(5_000));
    table
        .create_sync(&s, &audit(&t, "sync.created"))
        .await
        .unwrap();
    assert!(
        table
            .lease_sync(&t, &s.id, "run-a", 1_000, 60_000)
            .await
            .unwrap()
    );

    let mut paused = s.clone();
    paused.status = SyncStatus::Paused;
    paused.status_reason = Some("needs_reauth".into());
    paused.version = 2;
    assert!(table.update_sync(&paused, 1).await.unwrap());
    assert_eq!(
        table.get_sync(&t, &s.id).await.unwrap(),
        Some(paused.clone())
    );
    // A writer that read version 1 is refused.
    let mut stale = s.clone();
    stale.version = 2;
    stale.model = "stale".into();
    assert!(is_conflict(table.update_sync(&stale, 1).await));
    // The lease is still run-a's.
    assert!(
        !table
            .lease_sync(&t, &s.id, "run-b", 2_000, 62_000)
            .await
            .unwrap()
    );
    let stored = env.sync_item(&s).await.unwrap();
    assert_eq!(
        stored["run_lease_holder"],
        AttributeValue::S("run-a".into())
    );
    assert_eq!(
        stored["connection_id"],
        AttributeValue::S(s.connection_id.to_string())
    );
    assert_eq!(stored["status"], AttributeValue::S("paused".into()));
    // Paused: out of the due index.
    assert!(!stored.contains_key("sync_shard") && !stored.contains_key("sync_due_ms"));
    assert!(table.due_syncs(i64::MAX / 2, 100).await.unwrap().is_empty());

    // Active again: back in it.
    let mut resumed = paused.clone();
    resumed.status = SyncStatus::Active;
    resumed.next_run_at_ms = Some(9_000);
    resumed.version = 3;
    assert!(table.update_sync(&resumed, 2).await.unwrap());
    assert_eq!(
        table.due_syncs(9_000, 100).await.unwrap(),
        [DueSync {
            tenant_id: t.clone(),
            sync_id: s.id.clone(),
            due_ms: 9_000
        }]
    );

    // Absent (or another tenant's id): false, and nothing is created.
    let ghost = sync(&t, &ConnectionId::generate(), "ghost", Some(1));
    assert!(!table.update_sync(&ghost, 1).await.unwrap());
    assert_eq!(table.get_sync(&t, &ghost.id).await.unwrap(), None);
    let mut foreign = resumed.clone();
    foreign.tenant_id = TenantId::generate();
    foreign.version = 4;
    assert!(!table.update_sync(&foreign, 3).await.unwrap());
    assert_eq!(
        table.get_sync(&foreign.tenant_id, &s.id).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_run_lease_is_held_by_one_expires_and_is_given_back_by_its_holder_only() {
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let s = sync(&t, &ConnectionId::generate(), "contact", None);
    table
        .create_sync(&s, &audit(&t, "sync.created"))
        .await
        .unwrap();

    assert!(
        table
            .lease_sync(&t, &s.id, "a", 1_000, 21_000)
            .await
            .unwrap()
    );
    assert!(
        !table
            .lease_sync(&t, &s.id, "b", 2_000, 22_000)
            .await
            .unwrap()
    );
    // Not another tenant's, not a sync that does not exist (and none is created).
    assert!(
        !table
            .lease_sync(&TenantId::generate(), &s.id, "b", 30_000, 50_000)
            .await
            .unwrap()
    );
    let ghost = SyncId::generate();
    assert!(!table.lease_sync(&t, &ghost, "b", 1, 2).await.unwrap());
    assert_eq!(table.get_sync(&t, &ghost).await.unwrap(), None);

    // A release by someone else is no error and changes nothing.
    table.release_sync(&t, &s.id, "b").await.unwrap();
    table.release_sync(&t, &ghost, "b").await.unwrap();
    assert!(
        !table
            .lease_sync(&t, &s.id, "c", 3_000, 23_000)
            .await
            .unwrap()
    );
    // Its holder's release frees it.
    table.release_sync(&t, &s.id, "a").await.unwrap();
    assert!(
        table
            .lease_sync(&t, &s.id, "c", 4_000, 24_000)
            .await
            .unwrap()
    );
    // Held until its end; taken over after it.
    assert!(
        !table
            .lease_sync(&t, &s.id, "d", 24_000, 44_000)
            .await
            .unwrap()
    );
    assert!(
        table
            .lease_sync(&t, &s.id, "d", 24_001, 44_000)
            .await
            .unwrap()
    );
    // The lease never shows in the record.
    assert_eq!(table.get_sync(&t, &s.id).await.unwrap(), Some(s));
}

#[tokio::test]
async fn runs_are_versioned_and_listed_newest_first_in_pages() {
    let env = env().await;
    let table = env.control();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let s = sync(&t, &ConnectionId::generate(), "contact", None);
    let s2 = sync(&t, &ConnectionId::generate(), "contact", None);
    let mut runs = Vec::new();
    for i in 0..25 {
        let run = SyncRun::queued(&s, RunTrigger::Schedule, false, i);
        table.create_run(&run).await.unwrap();
        runs.push(run);
    }
    table
        .create_run(&SyncRun::queued(&s2, RunTrigger::Manual, false, 1))
        .await
        .unwrap();
    assert!(is_conflict(table.create_run(&runs[0]).await));

    // Newest first (run ids are time-ordered), 10 at a time.
    let mut newest_first = runs.clone();
    newest_first.sort_by(|a, b| b.id.cmp(&a.id));
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let p = table.list_runs(&t, &s.id, &page(10, after)).await.unwrap();
        pages += 1;
        seen.extend(p.items);
        match p.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);
    // A position of another list is refused.
    for foreign in [format!("RUN#{}#x", s2.id), format!("SYNC#{}", s.id)] {
        assert!(matches!(
            table.list_runs(&t, &s.id, &page(10, Some(foreign))).await,
            Err(PortError::OutOfRange { .. })
        ));
    }

    // Versioned updates.
    let mut running = runs[3].clone();
    running.state = tributary_core::sync::RunState::Running;
    running.started_at_ms = Some(7);
    running.version = 2;
    assert!(table.update_run(&running, 1).await.unwrap());
    assert!(is_conflict(table.update_run(&running, 1).await));
    assert_eq!(
        table.get_run(&t, &s.id, &running.id).await.unwrap(),
        Some(running.clone())
    );
    let ghost = SyncRun::queued(&s, RunTrigger::Manual, false, 1);
    assert!(!table.update_run(&ghost, 1).await.unwrap());
    assert_eq!(table.get_run(&t, &s.id, &ghost.id).await.unwrap(), None);
    // Found under its own sync and tenant only.
    assert_eq!(table.get_run(&t, &s2.id, &running.id).await.unwrap(), None);
    assert_eq!(
        table.get_run(&other, &s.id, &running.id).await.unwrap(),
        None
    );
    assert!(
        table
            .list_runs(&other, &s.id, &page(10, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn sync_events_are_listed_oldest_first_and_expire_after_30_days() {
    let env = env().await;
    let table = env.control();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let s = sync(&t, &ConnectionId::generate(), "contact", None);
    let event = |tenant: &TenantId, at_ms: i64| SyncEvent {
        id: EventId::generate(),
        tenant_id: tenant.clone(),
        sync_id: s.id.clone(),
        run_id: Some(SyncRunId::generate()),
        kind: SyncEventType::RunFailed,
        stats: Some(RunStats::default()),
        error: None,
        at_ms,
    };
    let mut mine: Vec<SyncEvent> = (0..5).map(|i| event(&t, 1_700_000_000_000 + i)).collect();
    mine.sort_by(|a, b| a.id.cmp(&b.id));
    for e in &mine {
        table.record_sync_event(e).await.unwrap();
    }
    table.record_sync_event(&event(&other, 1)).await.unwrap();

    let first = table.list_sync_events(&t, &page(3, None)).await.unwrap();
    let rest = table
        .list_sync_events(&t, &page(3, first.next_after.clone()))
        .await
        .unwrap();
    assert_eq!(rest.next_after, None);
    let seen: Vec<SyncEvent> = first.items.into_iter().chain(rest.items).collect();
    assert_eq!(seen, mine);

    let stored = env
        .clients
        .dynamodb()
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(format!("TENANT#{t}")))
        .key("sk", AttributeValue::S(format!("SYNCEVENT#{}", mine[0].id)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        stored["expires_at"],
        AttributeValue::N((1_700_000_000 + 30 * 86_400).to_string())
    );
}

#[tokio::test]
async fn due_syncs_come_from_every_shard_in_due_order_up_to_the_limit() {
    let env = env().await;
    let table = env.control();
    let t0 = 4_000_000_000_000_i64;
    let mut due = Vec::new();
    // Due times in the reverse order of creation, over several tenants.
    for i in 0..40_i64 {
        let t = TenantId::generate();
        let s = sync(
            &t,
            &ConnectionId::generate(),
            "contact",
            Some(t0 + (40 - i) * 1_000),
        );
        table
            .create_sync(&s, &audit(&t, "sync.created"))
            .await
            .unwrap();
        due.push(DueSync {
            tenant_id: t,
            sync_id: s.id.clone(),
            due_ms: t0 + (40 - i) * 1_000,
        });
    }
    // Not scheduled: paused, being deleted, or without a next run.
    let t = TenantId::generate();
    for (status, next) in [
        (SyncStatus::Paused, Some(t0)),
        (SyncStatus::Deleting, Some(t0)),
        (SyncStatus::Active, None),
    ] {
        let mut s = sync(
            &t,
            &ConnectionId::generate(),
            &format!("m{}", status.as_str()),
            next,
        );
        s.status = status;
        table
            .create_sync(&s, &audit(&t, "sync.created"))
            .await
            .unwrap();
        let item = env.sync_item(&s).await.unwrap();
        assert!(
            !item.contains_key("sync_due_ms"),
            "{status:?} {next:?} is indexed"
        );
    }
    due.sort_by_key(|d| d.due_ms);

    let shards: BTreeSet<u32> = {
        let mut shards = BTreeSet::new();
        for d in &due {
            let s = table
                .get_sync(&d.tenant_id, &d.sync_id)
                .await
                .unwrap()
                .unwrap();
            let item = env.sync_item(&s).await.unwrap();
            let shard = item["sync_shard"].as_s().unwrap();
            shards.insert(shard.strip_prefix("SYNCDUE#").unwrap().parse().unwrap());
        }
        shards
    };
    assert!(
        shards.len() >= 8,
        "40 syncs spread over the shards: {shards:?}"
    );
    assert!(shards.iter().all(|s| *s < 16));

    assert!(
        table.due_syncs(t0, 100).await.unwrap().is_empty(),
        "nothing due yet"
    );
    assert_eq!(table.due_syncs(t0 + 40_000, 1_000).await.unwrap(), due);
    // The earliest across every shard, whatever shard they are in.
    assert_eq!(table.due_syncs(t0 + 40_000, 7).await.unwrap(), due[..7]);
    assert_eq!(table.due_syncs(t0 + 10_000, 100).await.unwrap(), due[..10]);
    assert!(table.due_syncs(t0 + 40_000, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reschedule_moves_a_sync_only_while_it_is_still_due_at_the_time_read() {
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let s = sync(&t, &ConnectionId::generate(), "contact", Some(5_000));
    table
        .create_sync(&s, &audit(&t, "sync.created"))
        .await
        .unwrap();
    let found = table.due_syncs(5_000, 10).await.unwrap();
    assert_eq!(found.len(), 1);
    let entry = found[0].clone();

    // Once: a second tick holding the same due time does nothing.
    assert!(table.reschedule_sync(&entry, 65_000).await.unwrap());
    assert!(!table.reschedule_sync(&entry, 70_000).await.unwrap());
    assert!(table.due_syncs(64_999, 10).await.unwrap().is_empty());
    assert_eq!(table.due_syncs(65_000, 10).await.unwrap()[0].due_ms, 65_000);
    // A read sees the index's time; the rest of the record is as written.
    let read = table.get_sync(&t, &s.id).await.unwrap().unwrap();
    assert_eq!(read.next_run_at_ms, Some(65_000));
    assert_eq!(read.version, 1);
    // Another tenant's key reaches nothing, and creates nothing.
    let foreign = DueSync {
        tenant_id: TenantId::generate(),
        ..entry.clone()
    };
    assert!(!table.reschedule_sync(&foreign, 99).await.unwrap());
    assert_eq!(
        table.get_sync(&foreign.tenant_id, &s.id).await.unwrap(),
        None
    );

    // The sync's own write wins over the reschedule, and then the old due time no longer holds.
    let mut paused = read.clone();
    paused.status = SyncStatus::Paused;
    paused.version = 2;
    assert!(table.update_sync(&paused, 1).await.unwrap());
    let at_65 = DueSync {
        due_ms: 65_000,
        ..entry.clone()
    };
    assert!(!table.reschedule_sync(&at_65, 99).await.unwrap());
    // A deleted sync is not brought back.
    let mut active = paused.clone();
    active.status = SyncStatus::Active;
    active.version = 3;
    assert!(table.update_sync(&active, 2).await.unwrap());
    assert!(
        table
            .delete_sync(&t, &s.id, &audit(&t, "sync.deleted"))
            .await
            .unwrap()
    );
    assert!(!table.reschedule_sync(&at_65, 99).await.unwrap());
    assert_eq!(env.sync_item(&s).await, None);
}

#[tokio::test]
async fn records_are_written_compared_and_read_beyond_one_batch() {
    let env = env().await;
    let records = env.records();
    let feed = a_feed();
    let written: Vec<StoredRecord> = (0..260)
        .map(|i| {
            let action = if i % 7 == 0 {
                RecordAction::Updated
            } else {
                RecordAction::Added
            };
            record(&format!("r{i:04}"), 1 + i / 100, (i % 100) as u32, action)
        })
        .collect();
    records.put_records(&feed, &written).await.unwrap();

    // Metadata of 100 ids at most, those that exist.
    let mut ids: Vec<String> = written[150..240].iter().map(|r| r.id.clone()).collect();
    ids.extend((0..10).map(|i| format!("missing-{i}")));
    let meta = records.record_meta(&feed, &ids).await.unwrap();
    assert_eq!(meta.len(), 90);
    for r in &written[150..240] {
        let m = &meta[&r.id];
        assert_eq!(
            (&m.hash, m.position, m.action, m.first_seen_ms),
            (&r.hash, r.position, r.action, r.first_seen_ms)
        );
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i:04}")).collect();
    assert!(matches!(
        records.record_meta(&feed, &too_many).await,
        Err(PortError::Rejected { .. })
    ));

    // Every record, whole, in several requests.
    let mut all: Vec<String> = written.iter().map(|r| r.id.clone()).collect();
    all.push("missing".into());
    let mut read = records.get_records(&feed, &all).await.unwrap();
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(read, written);

    // Rewritten: the new content replaces the old.
    let mut changed = written[5].clone();
    changed.data = "{\"changed\":true}".into();
    changed.hash = content_hash(&changed.data);
    changed.action = RecordAction::Deleted;
    changed.expires_at_s = None;
    records
        .put_records(&feed, &[changed.clone()])
        .await
        .unwrap();
    assert_eq!(
        records
            .get_records(&feed, &[changed.id.clone()])
            .await
            .unwrap(),
        [changed]
    );
}

#[tokio::test]
async fn a_record_over_400_kb_is_refused_and_nothing_of_its_batch_is_written() {
    let env = env().await;
    let records = env.records();
    let feed = feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ));
    let mut batch: Vec<StoredRecord> = (0..10)
        .map(|i| record(&format!("r{i}"), 1, i, RecordAction::Added))
        .collect();
    batch[4].data = format!("\"{}\"", "x".repeat(401 * 1024));
    match records.put_records(&feed, &batch).await {
        Err(PortError::Rejected { detail, .. }) => assert!(detail.contains("`r4`"), "{detail}"),
        other => panic!("expected a refusal naming the record, got {other:?}"),
    }
    let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
    assert!(records.get_records(&feed, &ids).await.unwrap().is_empty());
}

#[tokio::test]
async fn feed_pages_commit_once_and_read_in_sequence_order() {
    let env = env().await;
    let records = env.records();
    let feed = feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ));
    assert_eq!(records.last_page(&feed).await.unwrap(), None);
    assert!(
        records
            .pages_after(&feed, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // 25 pages: sequence numbers past 9 and 19 sort as numbers, not as text.
    let pages: Vec<FeedPage> = (1..=25)
        .map(|seq| feed_page(seq, (0..3).map(|i| format!("p{seq}-{i}")).collect()))
        .collect();
    // Committed out of order: the feed is ordered by sequence number all the same.
    for p in pages.iter().rev() {
        records.commit_page(&feed, p).await.unwrap();
    }
    assert!(is_conflict(
        records
            .commit_page(&feed, &feed_page(3, vec!["other".into()]))
            .await
    ));

    assert_eq!(
        records.last_page(&feed).await.unwrap().as_ref(),
        pages.last()
    );
    assert_eq!(
        records.pages_after(&feed, None, 10).await.unwrap(),
        pages[..10]
    );
    assert_eq!(
        records.pages_after(&feed, Some(10), 10).await.unwrap(),
        pages[10..20]
    );
    assert_eq!(
        records.pages_after(&feed, Some(20), 10).await.unwrap(),
        pages[20..]
    );
    assert_eq!(
        records.pages_after(&feed, Some(9), 1).await.unwrap(),
        pages[9..10]
    );
    assert!(
        records
            .pages_after(&feed, Some(25), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(records.pages_after(&feed, None, 100).await.unwrap(), pages);
}

#[tokio::test]
async fn a_page_is_written_with_its_records_and_a_refused_commit_writes_none_of_its_transaction() {
    let env = env().await;
    let records = env.records();
    let feed = a_feed();
    let ids = |range: std::ops::Range<u32>| -> Vec<String> {
        range.map(|i| format!("r{i:03}")).collect()
    };
    let first: Vec<StoredRecord> = (0..60u32)
        .map(|i| record(&format!("r{i:03}"), 1, i, RecordAction::Added))
        .collect();
    let page = feed_page(1, ids(0..60));
    records.write_page(&feed, &first, &page).await.unwrap();
    assert_eq!(
        records.last_page(&feed).await.unwrap().as_ref(),
        Some(&page)
    );
    let mut read = records.get_records(&feed, &ids(0..60)).await.unwrap();
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(read, first);
    // The same page again (an attempt whose answer was lost, retried): done, not a conflict.
    records.write_page(&feed, &first, &page).await.unwrap();
    records.commit_page(&feed, &page).await.unwrap();

    // Page 1 again (another writer): 50 records go in batches, the last 10 with the commit, which
    // the existing page refuses. The batches' records are written (and stay uncommitted: the
    // next writer writes them again); none of the transaction's.
    let again: Vec<StoredRecord> = (0..60u32)
        .map(|i| record(&format!("r{i:03}"), 2, i, RecordAction::Updated))
        .collect();
    assert!(is_conflict(
        records
            .write_page(&feed, &again, &feed_page(1, vec!["other".into()]))
            .await
    ));
    let mut read = records.get_records(&feed, &ids(0..60)).await.unwrap();
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(read[..50], again[..50]);
    assert_eq!(read[50..], first[50..]);
    assert_eq!(records.pages_after(&feed, None, 10).await.unwrap(), [page]);
}

#[tokio::test]
async fn a_feed_read_through_the_adapter_returns_each_change_once_after_the_cursor() {
    let env = env().await;
    let records = env.records();
    let feed = feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ));
    // Page 1 adds a, b, c; page 2 updates b; page 3 deletes c.
    let mut all = vec![
        record("a", 1, 0, RecordAction::Added),
        record("b", 2, 0, RecordAction::Updated),
        record("c", 3, 0, RecordAction::Deleted),
    ];
    records.put_records(&feed, &all).await.unwrap();
    for (seq, entries) in [(1, vec!["a", "b", "c"]), (2, vec!["b"]), (3, vec!["c"])] {
        let p = feed_page(seq, entries.into_iter().map(str::to_owned).collect());
        records.commit_page(&feed, &p).await.unwrap();
    }
    let read = read_feed(&records, &feed, None, 10, &FeedFilter::default())
        .await
        .unwrap();
    all.sort_by_key(|r| r.position);
    assert_eq!(read.records, all);
    assert_eq!(read.next, Some(FeedPosition { page: 3, index: 0 }));
    let after_1 = read_feed(
        &records,
        &feed,
        Some(FeedPosition { page: 1, index: 2 }),
        10,
        &FeedFilter::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        after_1
            .records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
}

#[tokio::test]
async fn record_ids_walk_the_feed_in_id_order_with_their_last_action() {
    let env = env().await;
    let records = env.records();
    let feed = feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ));
    let written: Vec<StoredRecord> = (0..57)
        .map(|i| {
            let action = if i % 5 == 0 {
                RecordAction::Deleted
            } else {
                RecordAction::Added
            };
            record(&format!("id-{i:03}"), 1, i, action)
        })
        .collect();
    records.put_records(&feed, &written).await.unwrap();
    assert_eq!(
        records.record_ids(&feed, None, 10).await.unwrap().0.len(),
        10
    );

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut calls = 0;
    loop {
        let (ids, next) = records
            .record_ids(&feed, after.as_deref(), 19)
            .await
            .unwrap();
        calls += 1;
        assert!(ids.len() <= 19);
        seen.extend(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // 57 = 3 × 19: the third call knows nothing follows.
    assert_eq!(calls, 3);
    let expected: Vec<(String, RecordAction)> =
        written.iter().map(|r| (r.id.clone(), r.action)).collect();
    assert_eq!(seen, expected);
    let (tail, next) = records
        .record_ids(&feed, Some("id-050"), 100)
        .await
        .unwrap();
    assert_eq!(tail.len(), 6);
    assert_eq!(next, None);
}

#[tokio::test]
async fn a_feed_is_purged_in_bounded_steps_and_other_feeds_stay() {
    let env = env().await;
    let records = env.records();
    let feed = a_feed();
    let neighbour = FeedKey {
        model: "deal".into(),
        ..feed.clone()
    };
    let run = SyncRunId::generate();
    for f in [&feed, &neighbour] {
        let written: Vec<StoredRecord> = (0..60)
            .map(|i| record(&format!("r{i:02}"), 1, i, RecordAction::Added))
            .collect();
        records.put_records(f, &written).await.unwrap();
        for seq in 1..=12 {
            records
                .commit_page(f, &feed_page(seq, vec![format!("r{seq:02}")]))
                .await
                .unwrap();
        }
        for chunk in 0..3 {
            records
                .put_seen(f, &run, &[format!("r{chunk:02}")], 2_000_000_000)
                .await
                .unwrap();
        }
    }

    let mut steps = 0;
    while !records.purge(&feed, 25).await.unwrap() {
        steps += 1;
        assert!(steps < 20, "the purge does not end");
        // Each step removes 25 at most.
        let mut left = 0;
        for kind in ["R", "F", "S"] {
            let pk = format!("{kind}#{}#{}#contact", feed.tenant_id, feed.connection_id);
            left += env.partition(&records, &pk).await.len();
        }
        assert!(
            left >= 75_usize.saturating_sub(25 * steps),
            "{left} left after {steps} steps"
        );
    }
    assert!(
        steps >= 2,
        "75 items in steps of 25 take several calls, took {}",
        steps + 1
    );
    assert!(records.purge(&feed, 25).await.unwrap(), "done stays done");
    assert!(
        records
            .record_ids(&feed, None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert_eq!(records.last_page(&feed).await.unwrap(), None);
    assert!(records.seen(&feed, &run).await.unwrap().is_empty());
    assert_eq!(records.seen(&neighbour, &run).await.unwrap().len(), 3);

    assert_eq!(
        records
            .record_ids(&neighbour, None, 100)
            .await
            .unwrap()
            .0
            .len(),
        60
    );
    assert_eq!(
        records.last_page(&neighbour).await.unwrap().unwrap().seq,
        12
    );
}

#[tokio::test]
async fn another_tenant_never_reaches_a_sync_its_runs_or_its_feed() {
    let env = env().await;
    let (table, records) = (env.control(), env.records());
    let (t, intruder) = (TenantId::generate(), TenantId::generate());
    let conn = ConnectionId::generate();
    let s = sync(&t, &conn, "contact", Some(5_000));
    table
        .create_sync(&s, &audit(&t, "sync.created"))
        .await
        .unwrap();
    let run = SyncRun::queued(&s, RunTrigger::Manual, false, 1);
    table.create_run(&run).await.unwrap();
    let feed = feed_of(&s);
    records
        .put_records(&feed, &[record("r1", 1, 0, RecordAction::Added)])
        .await
        .unwrap();
    records
        .commit_page(&feed, &feed_page(1, vec!["r1".into()]))
        .await
        .unwrap();

    // The intruder names the same sync, run, connection and model under its own tenant.
    assert_eq!(table.get_sync(&intruder, &s.id).await.unwrap(), None);
    assert!(
        table
            .list_syncs(&intruder, &SyncFilter::default(), &page(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        table.get_run(&intruder, &s.id, &run.id).await.unwrap(),
        None
    );
    assert!(
        table
            .list_runs(&intruder, &s.id, &page(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(!table.lease_sync(&intruder, &s.id, "x", 1, 2).await.unwrap());
    assert!(
        !table
            .delete_sync(&intruder, &s.id, &audit(&intruder, "sync.deleted"))
            .await
            .unwrap()
    );
    let theirs = FeedKey {
        tenant_id: intruder.clone(),
        ..feed.clone()
    };
    assert!(
        records
            .get_records(&theirs, &["r1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        records
            .record_meta(&theirs, &["r1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        records
            .record_ids(&theirs, None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert_eq!(records.last_page(&theirs).await.unwrap(), None);
    assert!(
        records
            .pages_after(&theirs, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(records.purge(&theirs, 100).await.unwrap());
    // The intruder may have a sync of the same connection id and model: its own claim.
    table
        .create_sync(
            &sync(&intruder, &conn, "contact", None),
            &audit(&intruder, "sync.created"),
        )
        .await
        .unwrap();

    // Everything of the owner is intact.
    assert_eq!(table.get_sync(&t, &s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(table.get_run(&t, &s.id, &run.id).await.unwrap(), Some(run));
    assert_eq!(
        records
            .get_records(&feed, &["r1".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(records.last_page(&feed).await.unwrap().unwrap().seq, 1);
}

#[tokio::test]
async fn a_deleted_tenant_s_purge_removes_its_syncs_claims_and_runs() {
    let env = env().await;
    let table = env.control();
    let mut tenant = Tenant {
        id: TenantId::generate(),
        name: "doomed".into(),
        status: TenantStatus::Active,
        rate_limit_per_minute: 600,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 0,
    };
    table.create_tenant(&tenant).await.unwrap();
    let t = tenant.id.clone();
    let mut syncs = Vec::new();
    for model in ["contact", "deal", "company"] {
        let s = sync(&t, &ConnectionId::generate(), model, Some(5_000));
        table
            .create_sync(&s, &audit(&t, "sync.created"))
            .await
            .unwrap();
        for _ in 0..12 {
            table
                .create_run(&SyncRun::queued(&s, RunTrigger::Schedule, false, 1))
                .await
                .unwrap();
        }
        table
            .record_sync_event(&SyncEvent {
                id: EventId::generate(),
                tenant_id: t.clone(),
                sync_id: s.id.clone(),
                run_id: None,
                kind: SyncEventType::Paused,
                stats: None,
                error: None,
                at_ms: 1_700_000_000_000,
            })
            .await
            .unwrap();
        syncs.push(s);
    }
    tenant.status = TenantStatus::Deleting;
    tenant.version = 1;
    assert!(table.update_tenant(&tenant, 0).await.unwrap());

    let mut steps = 0;
    while table.purge_tenant(&t, 1_900_000_000).await.unwrap() == PurgeProgress::More {
        steps += 1;
        assert!(steps < 50, "the purge does not end");
    }
    let left: Vec<String> = env
        .partition(&table, &format!("TENANT#{t}"))
        .await
        .into_iter()
        .map(|sk| sk.as_s().unwrap().clone())
        .collect();
    assert!(
        left.iter()
            .all(|sk| sk.starts_with("AUDIT#") || sk.starts_with("SYNCEVENT#")),
        "only the audit and the expiring events are left: {left:?}"
    );
    assert_eq!(left.iter().filter(|sk| sk.starts_with("AUDIT#")).count(), 3);
    for s in &syncs {
        assert_eq!(table.get_sync(&t, &s.id).await.unwrap(), None);
    }
    assert!(table.due_syncs(i64::MAX / 2, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn ids_seen_by_a_run_are_kept_in_chunks_of_that_run_and_expire() {
    let env = env().await;
    let records = env.records();
    let feed = feed_of(&sync(
        &TenantId::generate(),
        &ConnectionId::generate(),
        "contact",
        None,
    ));
    let (run, other_run) = (SyncRunId::generate(), SyncRunId::generate());
    assert!(records.seen(&feed, &run).await.unwrap().is_empty());
    let mut kept = Vec::new();
    for chunk in 0..4 {
        let ids: Vec<String> = (0..50).map(|i| format!("c{chunk}-{i:02}")).collect();
        records
            .put_seen(&feed, &run, &ids, 2_000_000_000)
            .await
            .unwrap();
        kept.extend(ids);
    }
    // The same chunk written again (a retry after a crash) adds, and removes nothing.
    records
        .put_seen(&feed, &run, &kept[..10], 2_000_000_000)
        .await
        .unwrap();
    records
        .put_seen(&feed, &other_run, &["other".into()], 2_000_000_000)
        .await
        .unwrap();

    let mut seen = records.seen(&feed, &run).await.unwrap();
    assert_eq!(seen.len(), 210);
    seen.sort();
    seen.dedup();
    kept.sort();
    assert_eq!(seen, kept);
    assert_eq!(
        records.seen(&feed, &other_run).await.unwrap(),
        ["other".to_owned()]
    );
    let theirs = FeedKey {
        tenant_id: TenantId::generate(),
        ..feed.clone()
    };
    assert!(records.seen(&theirs, &run).await.unwrap().is_empty());

    let pk = format!("S#{}#{}#contact", feed.tenant_id, feed.connection_id);
    let stored = env
        .clients
        .dynamodb()
        .query()
        .table_name(records.name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(stored.len(), 6);
    for item in stored {
        assert_eq!(item["expires_at"], AttributeValue::N("2000000000".into()));
    }
}

#[tokio::test]
async fn a_run_is_in_the_active_index_at_its_last_save_until_it_ends() {
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let s = sync(&t, &ConnectionId::generate(), "contact", None);
    table
        .create_sync(&s, &audit(&t, "sync.created"))
        .await
        .unwrap();
    let mut run = SyncRun::queued(&s, RunTrigger::Manual, false, 10_000);
    table.create_run(&run).await.unwrap();

    // Queued: indexed at its creation, in one shard.
    let item = env.run_item(&run).await;
    assert_eq!(item["active_at"], AttributeValue::N("10000".into()));
    let shard = env.active_shard(&run).await;
    assert!(shard < ACTIVE_RUN_SHARDS, "{shard}");
    assert_eq!(
        table.idle_runs(shard, 10_001, 10).await.unwrap(),
        [idle(&run, 10_000)]
    );
    assert!(
        table.idle_runs(shard, 10_000, 10).await.unwrap().is_empty(),
        "strictly before the bound"
    );
    for other in (0..ACTIVE_RUN_SHARDS).filter(|o| *o != shard) {
        assert!(
            table
                .idle_runs(other, i64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    // Each save moves it on, in the same shard.
    run.state = RunState::Running;
    run.started_at_ms = Some(20_000);
    run.saved_at_ms = 20_000;
    run.version = 2;
    assert!(table.update_run(&run, 1).await.unwrap());
    assert_eq!(env.active_shard(&run).await, shard);
    assert!(table.idle_runs(shard, 20_000, 10).await.unwrap().is_empty());
    run.state = RunState::Continued;
    run.saved_at_ms = 30_000;
    run.version = 3;
    assert!(table.update_run(&run, 2).await.unwrap());
    assert!(table.idle_runs(shard, 30_000, 10).await.unwrap().is_empty());
    assert_eq!(
        table.idle_runs(shard, 30_001, 10).await.unwrap(),
        [idle(&run, 30_000)]
    );

    // Ended: out of the index, whatever the bound.
    run.state = RunState::Stalled;
    run.ended_at_ms = Some(40_000);
    run.saved_at_ms = 40_000;
    run.version = 4;
    assert!(table.update_run(&run, 3).await.unwrap());
    let item = env.run_item(&run).await;
    assert!(
        !item.contains_key("active_shard") && !item.contains_key("active_at"),
        "{item:?}"
    );
    assert!(
        table
            .idle_runs(shard, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        table.get_run(&t, &s.id, &run.id).await.unwrap(),
        Some(run),
        "the record reads as written"
    );
}

#[tokio::test]
async fn idle_runs_are_a_shard_s_runs_saved_before_the_bound_oldest_first() {
    let env = env().await;
    let table = env.control();
    let t0 = 4_000_000_000_000_i64;
    let mut by_shard: BTreeMap<u32, Vec<IdleRun>> = BTreeMap::new();
    // Saved in the reverse order of creation, over several tenants and syncs.
    for i in 0..40_i64 {
        let t = TenantId::generate();
        let s = sync(&t, &ConnectionId::generate(), "contact", None);
        let run = SyncRun::queued(&s, RunTrigger::Manual, false, t0 + (40 - i) * 1_000);
        table.create_run(&run).await.unwrap();
        let shard = env.active_shard(&run).await;
        by_shard
            .entry(shard)
            .or_default()
            .push(idle(&run, t0 + (40 - i) * 1_000));
    }
    // Over long ago: not in the index.
    let t = TenantId::generate();
    let mut ended = SyncRun::queued(
        &sync(&t, &ConnectionId::generate(), "contact", None),
        RunTrigger::Manual,
        false,
        t0,
    );
    ended.state = RunState::Failed;
    table.create_run(&ended).await.unwrap();
    assert!(!env.run_item(&ended).await.contains_key("active_at"));
    assert!(by_shard.len() >= 3, "40 runs spread: {by_shard:?}");

    let mut every = Vec::new();
    for shard in 0..ACTIVE_RUN_SHARDS {
        let mut expected = by_shard.remove(&shard).unwrap_or_default();
        expected.sort_by_key(|r| r.active_at_ms);
        assert_eq!(
            table.idle_runs(shard, t0 + 41_000, 100).await.unwrap(),
            expected,
            "shard {shard}"
        );
        let older: Vec<IdleRun> = expected
            .iter()
            .filter(|r| r.active_at_ms < t0 + 20_500)
            .cloned()
            .collect();
        assert_eq!(
            table.idle_runs(shard, t0 + 20_500, 100).await.unwrap(),
            older,
            "shard {shard}"
        );
        assert_eq!(
            table.idle_runs(shard, t0 + 41_000, 2).await.unwrap(),
            expected[..expected.len().min(2)],
            "the oldest, shard {shard}"
        );
        assert!(
            table
                .idle_runs(shard, t0 + 41_000, 0)
                .await
                .unwrap()
                .is_empty()
        );
        every.extend(expected);
    }
    assert_eq!(every.len(), 40);
}
