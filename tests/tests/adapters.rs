//! The AWS adapters against moto, on resources created from `infra/template.yaml`.
//!
//! Moto is more lenient than AWS (it accepts oversized batches and duplicate keys), so the batch
//! limits are proven by the adapters' unit tests; these tests prove the adapters' effects.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::ExposeSecret;
use tributary_aws::Clients;
use tributary_aws::dynamo::Item;
use tributary_core::canary::CanaryObservation;
use tributary_core::ids::{ApiKeyId, AuditEventId, IssuerId, JobId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{
    CanaryStore, CredentialStore, JobLedger, JobQueue, QueueStats, SecretSource, TenantStore,
};
use tributary_core::scope::Scope;
use tributary_core::tenancy::{ApiKeyRecord, AuditEvent, OidcIssuer, Tenant, TenantStatus};
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
            stack_name: "adapters".into(),
            parameters: BTreeMap::new(),
            secret_values: BTreeMap::from([("AdminApiKeySecret".into(), "s3cret-admin".into())]),
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
    fn control(&self) -> tributary_aws::DynamoTable {
        self.clients.table(&self.provisioned.tables["ControlTable"])
    }
    fn jobs(&self) -> tributary_aws::SqsQueue {
        self.clients
            .queue(&self.provisioned.queues["JobsQueue"].url)
    }
}

fn canary(enqueued_at_ms: i64) -> CanaryObservation {
    CanaryObservation {
        job_id: JobId::generate(),
        enqueued_at_ms,
        processed_at_ms: enqueued_at_ms + 100,
    }
}

#[tokio::test]
async fn canary_store_keeps_the_newest_observation() {
    let env = env().await;
    let table = env.control();
    assert_eq!(table.latest().await.unwrap(), None);

    let newer = canary(2_000);
    table.record(&newer).await.unwrap();
    // A redelivered, older canary must not move the observation backwards.
    table.record(&canary(1_000)).await.unwrap();
    assert_eq!(table.latest().await.unwrap(), Some(newer));

    let newest = canary(3_000);
    table.record(&newest).await.unwrap();
    assert_eq!(table.latest().await.unwrap(), Some(newest));
}

#[tokio::test]
async fn job_ledger_remembers_completed_jobs() {
    let env = env().await;
    let table = env.control();
    let id = JobId::generate();
    assert!(!table.is_done(&id).await.unwrap());
    table
        .mark_done(&id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(table.is_done(&id).await.unwrap());
    assert!(!table.is_done(&JobId::generate()).await.unwrap());
}

#[tokio::test]
async fn batch_put_writes_every_item_and_the_last_write_per_key_wins() {
    let env = env().await;
    let table = env.clients.table(&env.provisioned.tables["RecordsTable"]);
    let items: Vec<Item> = (0..60)
        .map(|i| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S("BATCH".into())),
                ("sk".to_owned(), AttributeValue::S(format!("{:03}", i % 53))),
                ("v".to_owned(), AttributeValue::N(i.to_string())),
            ])
        })
        .collect();
    table.batch_put(items).await.unwrap();

    let out = env
        .clients
        .dynamodb()
        .query()
        .table_name(table.name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("BATCH".into()))
        .send()
        .await
        .unwrap();
    let items = out.items.unwrap();
    assert_eq!(items.len(), 53);
    let zero = items
        .iter()
        .find(|i| i["sk"] == AttributeValue::S("000".into()))
        .unwrap();
    assert_eq!(zero["v"], AttributeValue::N("53".into()));
}

#[tokio::test]
async fn jobs_queue_sends_batches_reports_depth_and_reschedules() {
    let env = env().await;
    let queue = env.jobs();
    let jobs: Vec<JobEnvelope> = (0..23)
        .map(|i| JobEnvelope::new(JobKind::Canary { enqueued_at_ms: i }))
        .collect();
    queue.send_batch(&jobs).await.unwrap();
    queue
        .send(
            &JobEnvelope::new(JobKind::Canary { enqueued_at_ms: 99 }),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let depth = queue.depth().await.unwrap();
    assert_eq!(depth.visible + depth.in_flight + depth.delayed, 24);

    // Receive one, make it visible again at once, and see it counted as visible again.
    let received = env
        .clients
        .sqs()
        .receive_message()
        .queue_url(queue.url())
        .max_number_of_messages(1)
        .send()
        .await
        .unwrap();
    let message = &received.messages.unwrap()[0];
    let body = message.body.as_deref().unwrap();
    assert!(JobEnvelope::parse(body).is_ok());
    assert_eq!(queue.depth().await.unwrap().in_flight, 1);
    queue
        .retry_after(message.receipt_handle.as_deref().unwrap(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queue.depth().await.unwrap().in_flight, 0);
}

#[tokio::test]
async fn secrets_are_read_and_cached() {
    let env = env().await;
    let secrets = env.clients.secrets(Duration::from_secs(60));
    let id = &env.provisioned.secrets["AdminApiKeySecret"];
    assert_eq!(
        secrets.secret(id).await.unwrap().expose_secret(),
        "s3cret-admin"
    );
    // Rotate behind the cache's back: the cached value stays until the TTL passes.
    env.clients
        .secrets_manager()
        .put_secret_value()
        .secret_id(id)
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets.secret(id).await.unwrap().expose_secret(),
        "s3cret-admin"
    );
    let fresh = env.clients.secrets(Duration::from_secs(60));
    assert_eq!(fresh.secret(id).await.unwrap().expose_secret(), "rotated");
    assert!(matches!(
        secrets.secret("no-such-secret").await,
        Err(tributary_core::PortError::NotFound { .. })
    ));
}

fn tenant(name: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: name.into(),
        status: TenantStatus::Active,
        rate_limit_per_minute: 600,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 0,
    }
}

fn audit(tenant: &TenantId, action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: tenant.clone(),
        at_ms: 5,
        actor: "admin-key".into(),
        action: action.into(),
        target: target.into(),
    }
}

fn key(tenant: &TenantId) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: "ci".into(),
        scopes: vec![Scope::ConnectionsRead],
        secret_hash: "00".repeat(32),
        created_at_ms: 1,
        expires_at_ms: None,
        revoked_at_ms: None,
        created_by: "admin-key".into(),
    }
}

#[tokio::test]
async fn tenants_are_created_listed_in_pages_updated_and_deleted() {
    let env = env().await;
    let table = env.control();
    let mut created = Vec::new();
    for i in 0..5 {
        let t = tenant(&format!("t{i}"));
        table.create_tenant(&t).await.unwrap();
        created.push(t);
    }
    assert!(matches!(
        table.create_tenant(&created[0]).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));

    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 2,
        after: None,
    };
    loop {
        let got = table.list_tenants(&page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items);
        match got.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    created.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(seen, created);

    let mut disabled = created[1].clone();
    disabled.status = TenantStatus::Disabled;
    disabled.version = 1;
    assert!(table.update_tenant(&disabled, 0).await.unwrap());
    assert_eq!(
        table
            .get_tenant(&disabled.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        TenantStatus::Disabled
    );
    assert!(!table.update_tenant(&tenant("ghost"), 0).await.unwrap());
    // A writer that read version 0 (a concurrent rename) cannot overwrite the disable.
    let mut stale_rename = created[1].clone();
    stale_rename.name = "renamed".into();
    stale_rename.version = 1;
    assert!(matches!(
        table.update_tenant(&stale_rename, 0).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    let stored = table.get_tenant(&disabled.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TenantStatus::Disabled);
    assert_eq!(stored.version, 1);
    // Applied to what it read now, the rename goes through and keeps the disable.
    let mut rename = stored.clone();
    rename.name = "renamed".into();
    rename.version = 2;
    assert!(table.update_tenant(&rename, 1).await.unwrap());
}

#[tokio::test]
async fn a_cursor_outside_the_listed_range_is_refused_before_the_query() {
    let env = env().await;
    let table = env.control();
    let a = tenant("a");
    for bad in ["AUDIT#evt_x", "ISSUER#iss_x", "TENANT#x"] {
        let page = PageRequest {
            limit: 5,
            after: Some(bad.into()),
        };
        assert!(
            matches!(
                table.list_keys(&a.id, &page).await,
                Err(tributary_core::PortError::OutOfRange { .. })
            ),
            "{bad}"
        );
    }
    let page = PageRequest {
        limit: 5,
        after: Some("APIKEY#key_x".into()),
    };
    assert!(matches!(
        table.list_tenants(&page).await,
        Err(tributary_core::PortError::OutOfRange { .. })
    ));
}

#[tokio::test]
async fn keys_are_scoped_to_their_tenant_and_revocation_is_audited() {
    let env = env().await;
    let table = env.control();
    let a = tenant("a");
    let b = tenant("b");
    let key_a = key(&a.id);
    table
        .create_key(&key_a, &audit(&a.id, "api_key.created", key_a.id.as_str()))
        .await
        .unwrap();

    assert_eq!(table.get_key(&key_a.id).await.unwrap(), Some(key_a.clone()));
    assert_eq!(
        table
            .list_keys(&a.id, &PageRequest::default())
            .await
            .unwrap()
            .items,
        vec![key_a.clone()]
    );
    assert!(
        table
            .list_keys(&b.id, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Tenant B cannot revoke tenant A's key.
    let denied = table
        .revoke_key(&b.id, &key_a.id, 9, &audit(&b.id, "api_key.revoked", "x"))
        .await
        .unwrap();
    assert_eq!(denied, None);
    assert_eq!(
        table
            .get_key(&key_a.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at_ms,
        None
    );

    let revoked = table
        .revoke_key(
            &a.id,
            &key_a.id,
            9,
            &audit(&a.id, "api_key.revoked", key_a.id.as_str()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(9));
    assert_eq!(
        table
            .get_key(&key_a.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at_ms,
        Some(9)
    );
    let events = table
        .list_audit(&a.id, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["api_key.created", "api_key.revoked"]
    );
    assert!(
        table
            .list_audit(&b.id, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

fn issuer(t: &TenantId, url: &str, audience: &str) -> OidcIssuer {
    OidcIssuer {
        id: IssuerId::generate(),
        tenant_id: t.clone(),
        issuer: url.into(),
        audience: audience.into(),
        jwks_uri: None,
        scopes_claim: "scope".into(),
        allowed_scopes: vec![Scope::RecordsRead],
        created_at_ms: 1,
        expires_at_ms: None,
        created_by: "key_x".into(),
    }
}

const SHARED_ISSUER: &str = "https://accounts.example.com";

#[tokio::test]
async fn an_issuer_audience_pair_is_one_registration_found_by_one_read_and_deleted_per_tenant() {
    use tributary_core::tenancy::IssuerCreated;
    let env = env().await;
    let table = env.control();
    let (a, b) = (tenant("a"), tenant("b"));
    let ia = issuer(&a.id, SHARED_ISSUER, "tributary-a");
    let ib = issuer(&b.id, SHARED_ISSUER, "tributary-b");
    for i in [&ia, &ib] {
        let created = table
            .create_issuer(i, &audit(&i.tenant_id, "issuer.created", i.id.as_str()), 20)
            .await
            .unwrap();
        assert_eq!(created, IssuerCreated::Created);
    }
    // The pair belongs to one tenant: b cannot register a's pair.
    let stolen = issuer(&b.id, SHARED_ISSUER, "tributary-a");
    assert_eq!(
        table
            .create_issuer(&stolen, &audit(&b.id, "issuer.created", "x"), 20)
            .await
            .unwrap(),
        IssuerCreated::PairTaken
    );
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "tributary-a")
            .await
            .unwrap(),
        Some(ia.clone())
    );
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "tributary-b")
            .await
            .unwrap(),
        Some(ib.clone())
    );
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "nope")
            .await
            .unwrap(),
        None
    );

    assert_eq!(table.get_issuer(&b.id, &ia.id).await.unwrap(), None);
    assert!(
        !table
            .delete_issuer(&b.id, &ia.id, &audit(&b.id, "issuer.deleted", "x"))
            .await
            .unwrap()
    );
    assert!(
        table
            .delete_issuer(
                &a.id,
                &ia.id,
                &audit(&a.id, "issuer.deleted", ia.id.as_str())
            )
            .await
            .unwrap()
    );
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "tributary-a")
            .await
            .unwrap(),
        None
    );
    // Once a removed it, the pair is free.
    assert_eq!(
        table
            .create_issuer(&stolen, &audit(&b.id, "issuer.created", "x"), 20)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
}

#[tokio::test]
async fn many_registrations_of_a_shared_issuer_cannot_hide_a_later_tenants_registration() {
    use tributary_core::tenancy::IssuerCreated;
    let env = env().await;
    let table = env.control();
    let (attacker, victim) = (tenant("attacker"), tenant("victim"));
    // More junk audiences than any query page would return (the old lookup stopped at 100).
    for n in 0..105 {
        let junk = issuer(&attacker.id, SHARED_ISSUER, &format!("junk-{n:03}"));
        let created = table
            .create_issuer(&junk, &audit(&attacker.id, "issuer.created", "x"), 1000)
            .await
            .unwrap();
        assert_eq!(created, IssuerCreated::Created);
    }
    let mine = issuer(&victim.id, SHARED_ISSUER, "victim-api");
    table
        .create_issuer(&mine, &audit(&victim.id, "issuer.created", "x"), 20)
        .await
        .unwrap();
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "victim-api")
            .await
            .unwrap(),
        Some(mine.clone())
    );
    // And the attacker cannot take the victim's pair.
    let taken = issuer(&attacker.id, SHARED_ISSUER, "victim-api");
    assert_eq!(
        table
            .create_issuer(&taken, &audit(&attacker.id, "issuer.created", "x"), 1000)
            .await
            .unwrap(),
        IssuerCreated::PairTaken
    );
}

#[tokio::test]
async fn registrations_per_tenant_are_capped_and_a_removal_frees_a_place() {
    use tributary_core::tenancy::IssuerCreated;
    let env = env().await;
    let table = env.control();
    let t = tenant("t");
    let first = issuer(&t.id, SHARED_ISSUER, "one");
    for aud in ["one", "two"] {
        let i = if aud == "one" {
            first.clone()
        } else {
            issuer(&t.id, SHARED_ISSUER, aud)
        };
        assert_eq!(
            table
                .create_issuer(&i, &audit(&t.id, "issuer.created", "x"), 2)
                .await
                .unwrap(),
            IssuerCreated::Created
        );
    }
    let third = issuer(&t.id, SHARED_ISSUER, "three");
    assert_eq!(
        table
            .create_issuer(&third, &audit(&t.id, "issuer.created", "x"), 2)
            .await
            .unwrap(),
        IssuerCreated::LimitReached
    );
    // Nothing of the refused registration was written.
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "three")
            .await
            .unwrap(),
        None
    );
    assert!(
        table
            .delete_issuer(&t.id, &first.id, &audit(&t.id, "issuer.deleted", "x"))
            .await
            .unwrap()
    );
    assert_eq!(
        table
            .create_issuer(&third, &audit(&t.id, "issuer.created", "x"), 2)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
}

// No concurrent-registration test here: moto does not serialize TransactWriteItems (two
// transactions conditioned on `attribute_not_exists` of one item both succeed now and then), so such
// a test measures moto, not us. DynamoDB serializes them; the sequential tests above prove the pair
// item is written in the registration's transaction and that a second registration is refused.

#[tokio::test]
async fn purging_a_deleting_tenant_removes_everything_but_its_audit_and_then_the_tenant() {
    use tributary_core::tenancy::{IssuerCreated, PurgeProgress};
    let env = env().await;
    let table = env.control();
    let (t, other) = (tenant("doomed"), tenant("other"));
    table.create_tenant(&t).await.unwrap();
    table.create_tenant(&other).await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..30 {
        let k = key(&t.id);
        table
            .create_key(&k, &audit(&t.id, "api_key.created", k.id.as_str()))
            .await
            .unwrap();
        keys.push(k);
    }
    let kept_key = key(&other.id);
    table
        .create_key(&kept_key, &audit(&other.id, "api_key.created", "x"))
        .await
        .unwrap();
    let reg = issuer(&t.id, SHARED_ISSUER, "doomed-api");
    table
        .create_issuer(&reg, &audit(&t.id, "issuer.created", "x"), 20)
        .await
        .unwrap();

    let mut deleting = t.clone();
    deleting.status = TenantStatus::Deleting;
    deleting.version = 1;
    assert!(table.update_tenant(&deleting, 0).await.unwrap());
    let audit_expiry = 1_900_000_000;
    // One step, then a "crash": a new run starts over and finishes.
    assert_eq!(
        table.purge_tenant(&t.id, audit_expiry).await.unwrap(),
        PurgeProgress::More
    );
    let mut steps = 1;
    while table.purge_tenant(&t.id, audit_expiry).await.unwrap() == PurgeProgress::More {
        steps += 1;
        assert!(steps < 50, "the purge does not end");
    }
    assert!(steps > 2, "30 keys take several batches, took {steps}");

    assert_eq!(table.get_tenant(&t.id).await.unwrap(), None);
    for k in &keys {
        assert_eq!(table.get_key(&k.id).await.unwrap(), None);
    }
    assert_eq!(
        table
            .issuer_registration(SHARED_ISSUER, "doomed-api")
            .await
            .unwrap(),
        None
    );
    // What is left of the tenant's partition is its audit, expiring at the retention's end.
    let left = env
        .clients
        .dynamodb()
        .query()
        .table_name(table.name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{}", t.id)))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(
        left.len(),
        31,
        "30 key audits and one issuer audit remain, and nothing else"
    );
    for item in &left {
        let Some(AttributeValue::S(sk)) = item.get("sk") else {
            panic!("no sk")
        };
        assert!(sk.starts_with("AUDIT#"), "{sk}");
        assert_eq!(
            item.get("expires_at"),
            Some(&AttributeValue::N(audit_expiry.to_string()))
        );
    }
    // The other tenant is untouched, and the freed pair can be registered again.
    assert_eq!(table.get_key(&kept_key.id).await.unwrap(), Some(kept_key));
    assert!(table.get_tenant(&other.id).await.unwrap().is_some());
    let again = issuer(&other.id, SHARED_ISSUER, "doomed-api");
    assert_eq!(
        table
            .create_issuer(&again, &audit(&other.id, "issuer.created", "x"), 20)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_mismatches_and_expire() {
    use tributary_core::ports::{IdempotencyBegin, IdempotencyStore, StoredResponse};
    let env = env().await;
    let table = env.control();
    let now = 1_800_000_000_000;
    let lease = Duration::from_secs(30);
    let keep = Duration::from_secs(86_400);
    let begin = |scope: &'static str, fp: &'static str, at: i64| {
        let table = table.clone();
        async move { table.begin(scope, "k1", fp, at, lease, keep).await.unwrap() }
    };

    assert_eq!(begin("ten_a", "fp1", now).await, IdempotencyBegin::Started);
    assert_eq!(
        begin("ten_a", "fp1", now).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(begin("ten_a", "fp2", now).await, IdempotencyBegin::Mismatch);
    // Another scope has its own keys.
    assert_eq!(begin("ten_b", "fp2", now).await, IdempotencyBegin::Started);

    let response = StoredResponse {
        status: 201,
        body: r#"{"id":"x"}"#.into(),
    };
    table.complete("ten_a", "k1", &response).await.unwrap();
    assert_eq!(
        begin("ten_a", "fp1", now + 1000).await,
        IdempotencyBegin::Replay(response)
    );
    assert_eq!(
        begin("ten_a", "fp2", now + 1000).await,
        IdempotencyBegin::Mismatch
    );

    // A pending claim whose lease ran out (a crashed request) can be taken over.
    assert_eq!(
        begin("ten_b", "fp2", now + 31_000).await,
        IdempotencyBegin::Started
    );
    // After 24 h the key is free again.
    assert_eq!(
        begin("ten_a", "fp9", now + 86_401_000).await,
        IdempotencyBegin::Started
    );
    table.abandon("ten_a", "k1").await.unwrap();
    assert_eq!(begin("ten_a", "fp3", now).await, IdempotencyBegin::Started);
}

#[tokio::test]
async fn rate_counters_add_per_bucket_and_window() {
    use tributary_core::ports::RateCounter;
    let env = env().await;
    let table = env.control();
    let keep = Duration::from_secs(120);
    // ADD is atomic in DynamoDB; moto's threaded server is not, so the increments run one by one.
    for i in 1..=10u64 {
        assert_eq!(table.add("ten_a", 60, 5, keep).await.unwrap(), i * 5);
    }
    assert_eq!(table.add("ten_a", 120, 1, keep).await.unwrap(), 1);
    assert_eq!(table.add("ten_b", 60, 1, keep).await.unwrap(), 1);
}

fn integration(t: &TenantId) -> tributary_core::integration::Integration {
    tributary_core::integration::Integration {
        id: tributary_core::ids::IntegrationId::generate(),
        tenant_id: t.clone(),
        provider: "hubspot".into(),
        name: "HubSpot".into(),
        auth_mode: "oauth2_authorization_code".into(),
        oauth_client_id: Some("client".into()),
        oauth_client_secret: Some("v1.k1.sealed".into()),
        scopes: vec!["crm.objects.contacts.read".into()],
        return_urls: vec!["https://app.example.com/done".into()],
        enabled: true,
        webhook_secret: None,
        webhook_verification_token: None,
        webhook_routing: Default::default(),
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    }
}

#[tokio::test]
async fn integrations_are_per_tenant_versioned_audited_and_purged_with_their_tenant() {
    use tributary_core::ports::IntegrationStore;
    use tributary_core::tenancy::PurgeProgress;
    let env = env().await;
    let table = env.control();
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let first = integration(&a);
    table
        .create_integration(&first, &audit(&a, "integration.created", first.id.as_str()))
        .await
        .unwrap();
    // The same id again is a conflict; nothing is overwritten.
    let mut again = first.clone();
    again.name = "other".into();
    assert!(matches!(
        table.create_integration(&again, &audit(&a, "x", "x")).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    assert_eq!(
        table.get_integration(&a, &first.id).await.unwrap(),
        Some(first.clone())
    );
    // The public webhook route finds its tenant by the id alone.
    assert_eq!(
        table.integration_tenant(&first.id).await.unwrap(),
        Some(a.clone())
    );
    // Another tenant cannot reach it by id, list it, update or delete it.
    assert_eq!(table.get_integration(&b, &first.id).await.unwrap(), None);
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    assert!(
        table
            .list_integrations(&b, &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let mut stolen = first.clone();
    stolen.tenant_id = b.clone();
    stolen.version = 2;
    assert!(
        !table
            .update_integration(&stolen, 1, &audit(&b, "x", "x"))
            .await
            .unwrap()
    );
    assert!(
        !table
            .delete_integration(&b, &first.id, &audit(&b, "x", "x"))
            .await
            .unwrap()
    );
    // Nor move its pointer: the refused update wrote nothing of its transaction.
    assert_eq!(
        table.integration_tenant(&first.id).await.unwrap(),
        Some(a.clone())
    );

    // Updates apply to the version they read.
    let mut renamed = first.clone();
    renamed.name = "CRM".into();
    renamed.version = 2;
    assert!(
        table
            .update_integration(&renamed, 1, &audit(&a, "integration.updated", "x"))
            .await
            .unwrap()
    );
    let mut stale = first.clone();
    stale.enabled = false;
    stale.version = 2;
    assert!(matches!(
        table
            .update_integration(&stale, 1, &audit(&a, "x", "x"))
            .await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    assert_eq!(
        table.get_integration(&a, &first.id).await.unwrap(),
        Some(renamed.clone())
    );
    let second = integration(&a);
    table
        .create_integration(&second, &audit(&a, "integration.created", "x"))
        .await
        .unwrap();
    let listed = table.list_integrations(&a, &page).await.unwrap().items;
    assert_eq!(listed, vec![renamed.clone(), second.clone()]);

    assert!(
        table
            .delete_integration(&a, &first.id, &audit(&a, "integration.deleted", "x"))
            .await
            .unwrap()
    );
    assert_eq!(table.get_integration(&a, &first.id).await.unwrap(), None);
    assert_eq!(table.integration_tenant(&first.id).await.unwrap(), None);
    assert!(
        !table
            .delete_integration(&a, &first.id, &audit(&a, "x", "x"))
            .await
            .unwrap()
    );
    let actions: Vec<String> = table
        .list_audit(
            &a,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"integration.deleted".to_owned()));

    // A deleted tenant's integrations go with it.
    let mut doomed = tenant("doomed");
    doomed.id = a.clone();
    doomed.status = TenantStatus::Deleting;
    table.create_tenant(&doomed).await.unwrap();
    assert_eq!(
        table.integration_tenant(&second.id).await.unwrap(),
        Some(a.clone())
    );
    while table.purge_tenant(&a, 1).await.unwrap() == PurgeProgress::More {}
    assert_eq!(table.get_integration(&a, &second.id).await.unwrap(), None);
    assert_eq!(table.integration_tenant(&second.id).await.unwrap(), None);
}

fn inbound(
    t: &TenantId,
    integration: &tributary_core::ids::IntegrationId,
    event_id: Option<&str>,
    at_ms: i64,
) -> tributary_core::inbound::InboundEvent {
    tributary_core::inbound::InboundEvent {
        id: tributary_core::ids::InboundId::generate(),
        tenant_id: t.clone(),
        integration_id: integration.clone(),
        provider: "stripe".into(),
        event_id: event_id.map(str::to_owned),
        event_type: Some("customer.updated".into()),
        connection_key: Some("acct_1".into()),
        payload: Some(serde_json::json!({"id": event_id, "data": {"object": {"id": "cus_1"}}})),
        payload_omitted: None,
        state: tributary_core::inbound::InboundState::Received,
        routed_to: Vec::new(),
        received_at_ms: at_ms,
        processed_at_ms: None,
        version: 1,
    }
}

#[tokio::test]
async fn inbound_webhooks_are_recorded_once_per_event_id_expire_and_forward_through_the_outbox() {
    use tributary_core::inbound::{INBOUND_RETENTION_SECS, InboundState, ProviderEvent};
    use tributary_core::outbound::{EventType, outbox_shard};
    use tributary_core::ports::{EventOutbox, InboundStore};
    let env = env().await;
    let table = env.control();
    let (t, integration) = (
        TenantId::generate(),
        tributary_core::ids::IntegrationId::generate(),
    );
    let now = 1_800_000_000_000;

    // A delivery and its replay marker: the same event id again is a replay, written nowhere.
    let first = inbound(&t, &integration, Some("evt_1"), now);
    assert!(table.record_inbound(&first).await.unwrap());
    let replay = inbound(&t, &integration, Some("evt_1"), now + 60_000);
    assert!(!table.record_inbound(&replay).await.unwrap());
    assert_eq!(table.get_inbound(&t, &replay.id).await.unwrap(), None);
    // Per integration; and a delivery without an event id is never a replay.
    let elsewhere = inbound(
        &t,
        &tributary_core::ids::IntegrationId::generate(),
        Some("evt_1"),
        now,
    );
    assert!(table.record_inbound(&elsewhere).await.unwrap());
    assert!(
        table
            .record_inbound(&inbound(&t, &integration, None, now))
            .await
            .unwrap()
    );
    assert!(
        table
            .record_inbound(&inbound(&t, &integration, None, now))
            .await
            .unwrap()
    );
    // Both items carry the three-day expiry.
    let stored = table.get_inbound(&t, &first.id).await.unwrap().unwrap();
    assert_eq!(stored, first);
    let out = env
        .clients
        .dynamodb()
        .query()
        .table_name(table.name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{t}")))
        .send()
        .await
        .unwrap();
    let expiries: Vec<&AttributeValue> = out
        .items()
        .iter()
        .filter_map(|i| i.get("expires_at"))
        .collect();
    assert_eq!(expiries.len(), out.items().len(), "every item expires");
    assert!(expiries.contains(&&AttributeValue::N(
        (now / 1000 + INBOUND_RETENTION_SECS).to_string()
    )));
    // A marker past its expiry that TTL has not removed yet does not block the id.
    let late = inbound(
        &t,
        &integration,
        Some("evt_1"),
        now + (INBOUND_RETENTION_SECS + 1) * 1000,
    );
    assert!(table.record_inbound(&late).await.unwrap());

    // Forgotten (its job could not be queued): the id is new again.
    let unsent = inbound(&t, &integration, Some("evt_2"), now);
    assert!(table.record_inbound(&unsent).await.unwrap());
    table.forget_inbound(&unsent).await.unwrap();
    assert_eq!(table.get_inbound(&t, &unsent.id).await.unwrap(), None);
    assert!(
        table
            .record_inbound(&inbound(&t, &integration, Some("evt_2"), now))
            .await
            .unwrap()
    );

    // Settled on the version read.
    let mut processed = first.clone();
    processed.state = InboundState::Processed;
    processed.version = 2;
    assert!(table.update_inbound(&processed, 1).await.unwrap());
    assert!(matches!(
        table.update_inbound(&processed, 1).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    let mut gone = processed.clone();
    gone.id = tributary_core::ids::InboundId::generate();
    assert!(!table.update_inbound(&gone, 1).await.unwrap());

    // A provider event is recorded once, in the outbox, with its payload.
    let connection = tributary_core::ids::ConnectionId::generate();
    let event = ProviderEvent::of(&first, &connection, now + 1);
    assert!(table.record_provider_event(&event).await.unwrap());
    assert!(!table.record_provider_event(&event).await.unwrap());
    let pending = table.pending_events(outbox_shard(&t), 100).await.unwrap();
    let [waiting] = &pending[..] else {
        panic!("one event in the outbox: {pending:?}");
    };
    assert_eq!(waiting.event_type, EventType::ProviderEvent);
    assert_eq!(waiting.event_id, event.id);
    assert_eq!(waiting.data["payload"], first.payload.clone().unwrap());
    assert_eq!(waiting.data["connection_id"], connection.as_str());
}

#[tokio::test]
async fn the_template_s_generated_keyring_seals_and_opens() {
    use tributary_core::vault::{Keyring, Owner};
    let env = env().await;
    let secrets = env.clients.secrets(Duration::from_secs(60));
    let value = secrets
        .secret(&env.provisioned.secrets["CredentialKeyringSecret"])
        .await
        .unwrap();
    let ring = Keyring::from_secret(&value).expect("the generated keyring is valid");
    assert_eq!(ring.active(), "k1");
    let owner = Owner {
        tenant: "ten_a",
        object: "int_b",
        purpose: "client_secret",
    };
    let sealed = ring.seal(&owner, b"value").unwrap();
    assert_eq!(
        ring.open(&owner, &sealed).unwrap().expose_secret(),
        b"value"
    );
}

fn connection(
    t: &TenantId,
    integration: &tributary_core::ids::IntegrationId,
    user: &str,
    tier: &str,
) -> tributary_core::connection::Connection {
    use tributary_core::connection::{Connection, ConnectionStatus};
    Connection {
        id: tributary_core::ids::ConnectionId::generate(),
        tenant_id: t.clone(),
        integration_id: integration.clone(),
        provider: "stripe".into(),
        auth_mode: "api_key".into(),
        end_user_id: user.into(),
        config: BTreeMap::new(),
        credentials: "v1.k1.sealed".into(),
        tags: BTreeMap::from([("tier".to_owned(), tier.to_owned())]),
        metadata: serde_json::json!({}),
        status: ConnectionStatus::Active,
        status_reason: None,
        status_changed_at_ms: 1,
        last_verified_at_ms: Some(1),
        token_expires_at_ms: None,
        tokens_obtained_at_ms: None,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    }
}

fn connection_event(
    c: &tributary_core::connection::Connection,
    kind: tributary_core::connection::ConnectionEventType,
) -> tributary_core::connection::ConnectionEvent {
    tributary_core::connection::ConnectionEvent {
        id: tributary_core::ids::EventId::generate(),
        tenant_id: c.tenant_id.clone(),
        connection_id: c.id.clone(),
        kind,
        status: c.status,
        reason: None,
        at_ms: 1_000,
    }
}

#[tokio::test]
async fn connections_are_filtered_as_read_versioned_and_deleted_with_their_events() {
    use tributary_core::connection::{
        ConnectionEventType as Kind, ConnectionFilter, ConnectionStatus,
    };
    use tributary_core::ports::ConnectionStore;
    let env = env().await;
    let table = env.control();
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let (int_1, int_2) = (
        tributary_core::ids::IntegrationId::generate(),
        tributary_core::ids::IntegrationId::generate(),
    );
    let mut made = Vec::new();
    for i in 0..9 {
        let c = connection(
            &a,
            if i % 3 == 0 { &int_2 } else { &int_1 },
            &format!("user-{}", i % 2),
            if i < 4 { "gold" } else { "free" },
        );
        table
            .create_connection(
                &c,
                &connection_event(&c, Kind::Created),
                &audit(&a, "connection.created", c.id.as_str()),
            )
            .await
            .unwrap();
        made.push(c);
    }
    let other = connection(&b, &int_1, "user-0", "gold");
    table
        .create_connection(
            &other,
            &connection_event(&other, Kind::Created),
            &audit(&b, "connection.created", "x"),
        )
        .await
        .unwrap();

    // Pages of 2 through a filter: every match once, in order, never another tenant's.
    let walk = |filter: ConnectionFilter| {
        let table = &table;
        let a = &a;
        async move {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = table
                    .list_connections(a, &filter, &PageRequest { limit: 2, after })
                    .await
                    .unwrap();
                assert!(page.items.len() <= 2);
                seen.extend(page.items.into_iter().map(|c| c.id));
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break seen,
                }
            }
        }
    };
    let ids = |pick: &dyn Fn(&tributary_core::connection::Connection) -> bool| -> Vec<_> {
        made.iter()
            .filter(|c| pick(c))
            .map(|c| c.id.clone())
            .collect()
    };
    assert_eq!(walk(ConnectionFilter::default()).await, ids(&|_| true));
    assert_eq!(
        walk(ConnectionFilter {
            tag: Some(("tier".into(), "gold".into())),
            ..Default::default()
        })
        .await,
        ids(&|c| c.tags["tier"] == "gold")
    );
    assert_eq!(
        walk(ConnectionFilter {
            integration_id: Some(int_2.clone()),
            end_user_id: Some("user-0".into()),
            ..Default::default()
        })
        .await,
        ids(&|c| c.integration_id == int_2 && c.end_user_id == "user-0")
    );
    assert!(
        walk(ConnectionFilter {
            provider: Some("hubspot".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // A status change is seen by the status filter; a stale version is a conflict.
    let mut changed = made[1].clone();
    changed.status = ConnectionStatus::NeedsReauth;
    changed.version = 2;
    assert!(
        table
            .update_connection(
                &changed,
                1,
                Some(&connection_event(&changed, Kind::VerificationFailed))
            )
            .await
            .unwrap()
    );
    assert!(matches!(
        table.update_connection(&changed, 1, None).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    assert_eq!(
        walk(ConnectionFilter {
            status: Some(ConnectionStatus::NeedsReauth),
            ..Default::default()
        })
        .await,
        vec![changed.id.clone()]
    );
    // Another tenant's id does not reach it.
    assert_eq!(table.get_connection(&b, &made[0].id).await.unwrap(), None);
    assert!(
        !table
            .delete_connection(
                &b,
                &made[0].id,
                &connection_event(&other, Kind::Deleted),
                &audit(&b, "x", "x")
            )
            .await
            .unwrap()
    );
    assert!(
        table
            .delete_connection(
                &a,
                &made[0].id,
                &connection_event(&made[0], Kind::Deleted),
                &audit(&a, "connection.deleted", "x")
            )
            .await
            .unwrap()
    );
    assert_eq!(table.get_connection(&a, &made[0].id).await.unwrap(), None);
    let kinds: Vec<Kind> = table
        .list_connection_events(
            &a,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.len(), 11);
    assert_eq!(kinds.last(), Some(&Kind::Deleted));
}

#[tokio::test]
async fn a_connect_session_completes_once_and_an_oauth_flow_is_taken_once() {
    use tributary_core::connect::{ConnectSession, OAuthFlow, token_hash};
    use tributary_core::ports::ConnectStore;
    let env = env().await;
    let table = env.control();
    let token = tributary_core::connect::new_token("cst_");
    let session = ConnectSession {
        id: tributary_core::ids::ConnectSessionId::generate(),
        tenant_id: TenantId::generate(),
        token_hash: token_hash(&token),
        end_user_id: "u".into(),
        integration_ids: vec![tributary_core::ids::IntegrationId::generate()],
        return_url: "https://app.example.com/done".into(),
        connection_id: None,
        tags: BTreeMap::new(),
        created_by: "key_x".into(),
        created_at_ms: 1,
        expires_at_ms: 1_800_000,
        completed_with: None,
    };
    table.create_session(&session).await.unwrap();
    assert!(matches!(
        table.create_session(&session).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    assert_eq!(
        table.session(&session.token_hash).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(table.session(&token_hash("cst_other")).await.unwrap(), None);
    // The token itself is stored nowhere.
    let item = env
        .clients
        .dynamodb()
        .get_item()
        .table_name(table.name())
        .key(
            "pk",
            AttributeValue::S(format!("CONNECT#{}", session.token_hash)),
        )
        .key("sk", AttributeValue::S("CONNECT".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!format!("{item:?}").contains(&token));

    let (first, second) = (
        tributary_core::ids::ConnectionId::generate(),
        tributary_core::ids::ConnectionId::generate(),
    );
    assert!(
        table
            .complete_session(&session.token_hash, &first)
            .await
            .unwrap()
    );
    assert!(
        !table
            .complete_session(&session.token_hash, &second)
            .await
            .unwrap()
    );
    assert_eq!(
        table
            .session(&session.token_hash)
            .await
            .unwrap()
            .unwrap()
            .completed_with,
        Some(first)
    );

    let flow = OAuthFlow {
        state_hash: token_hash("st_state"),
        tenant_id: session.tenant_id.clone(),
        session_id: session.id.clone(),
        session_token_hash: session.token_hash.clone(),
        integration_id: session.integration_ids[0].clone(),
        redirect_uri: "https://api.example.com/connect/callback".into(),
        pkce_verifier: Some("v1.k1.sealed".into()),
        config: BTreeMap::new(),
        expires_at_ms: 600_000,
    };
    table.put_flow(&flow).await.unwrap();
    assert_eq!(
        table.take_flow(&flow.state_hash).await.unwrap(),
        Some(flow.clone())
    );
    assert_eq!(table.take_flow(&flow.state_hash).await.unwrap(), None);
}

#[tokio::test]
async fn the_refresh_index_finds_due_connections_and_follows_every_write() {
    use tributary_core::connection::{
        ConnectionEventType as Kind, ConnectionStatus, IDLE_REFRESH_AFTER_MS,
    };
    use tributary_core::ports::{ConnectionStore, DueRefresh, RefreshSchedule};
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let integration = tributary_core::ids::IntegrationId::generate();
    // Far from any other test's times; only this tenant's connections are looked at.
    let t0: i64 = 4_000_000_000_000;
    let mut due = connection(&t, &integration, "due", "x");
    due.tokens_obtained_at_ms = Some(t0);
    let never = connection(&t, &integration, "never", "x");
    let mut reauth = connection(&t, &integration, "reauth", "x");
    reauth.tokens_obtained_at_ms = Some(t0);
    reauth.status = ConnectionStatus::NeedsReauth;
    for c in [&due, &never, &reauth] {
        table
            .create_connection(c, &connection_event(c, Kind::Created), &audit(&t, "x", "x"))
            .await
            .unwrap();
    }
    let mine = |found: Vec<DueRefresh>| -> Vec<(String, i64)> {
        found
            .into_iter()
            .filter(|d| d.tenant_id == t)
            .map(|d| (d.connection_id.to_string(), d.due_ms))
            .collect()
    };
    let at = t0 + IDLE_REFRESH_AFTER_MS;
    assert!(mine(table.due_refreshes(at - 1, 1000).await.unwrap()).is_empty());
    let found = table.due_refreshes(at, 1000).await.unwrap();
    assert_eq!(mine(found.clone()), [(due.id.to_string(), at)]);
    assert!(
        table.due_refreshes(at, 0).await.unwrap().is_empty(),
        "the limit holds"
    );

    // Postponed once (a second monitor holding the old due time does nothing), out of range now.
    let entry = found.into_iter().find(|d| d.tenant_id == t).unwrap();
    let later = at + 900_000;
    assert!(table.postpone_refresh(&entry, later).await.unwrap());
    assert!(!table.postpone_refresh(&entry, later + 1).await.unwrap());
    assert!(mine(table.due_refreshes(at, 1000).await.unwrap()).is_empty());
    assert_eq!(
        mine(table.due_refreshes(later, 1000).await.unwrap()),
        [(due.id.to_string(), later)]
    );
    // Another tenant's id postpones nothing.
    let foreign = DueRefresh {
        tenant_id: TenantId::generate(),
        connection_id: due.id.clone(),
        due_ms: later,
    };
    assert!(!table.postpone_refresh(&foreign, later + 5).await.unwrap());

    // Needs reauth: out of the index. Active again with new tokens: due a day after them.
    let mut refused = due.clone();
    refused.status = ConnectionStatus::NeedsReauth;
    refused.version = 2;
    assert!(table.update_connection(&refused, 1, None).await.unwrap());
    assert!(mine(table.due_refreshes(i64::MAX / 2, 1000).await.unwrap()).is_empty());
    let mut renewed = refused.clone();
    renewed.status = ConnectionStatus::Active;
    renewed.tokens_obtained_at_ms = Some(t0 + 5_000);
    renewed.version = 3;
    assert!(table.update_connection(&renewed, 2, None).await.unwrap());
    assert_eq!(
        mine(table.due_refreshes(i64::MAX / 2, 1000).await.unwrap()),
        [(due.id.to_string(), t0 + 5_000 + IDLE_REFRESH_AFTER_MS)]
    );
}

#[tokio::test]
async fn the_refresh_lease_is_held_by_one_kept_by_other_writes_and_released_by_the_swap() {
    use tributary_core::connection::ConnectionEventType as Kind;
    use tributary_core::ports::{ConnectionStore, RefreshSwap};
    let env = env().await;
    let table = env.control();
    let t = TenantId::generate();
    let integration = tributary_core::ids::IntegrationId::generate();
    let c = connection(&t, &integration, "u", "gold");
    table
        .create_connection(
            &c,
            &connection_event(&c, Kind::Created),
            &audit(&t, "x", "x"),
        )
        .await
        .unwrap();
    assert!(
        table
            .lease_refresh(&t, &c.id, "a", 1_000, 21_000)
            .await
            .unwrap()
    );
    assert!(
        !table
            .lease_refresh(&t, &c.id, "b", 2_000, 22_000)
            .await
            .unwrap()
    );
    // Another tenant's id reaches nothing.
    assert!(
        !table
            .lease_refresh(&TenantId::generate(), &c.id, "b", 30_000, 50_000)
            .await
            .unwrap()
    );

    // A tag change keeps the lease.
    let mut tagged = c.clone();
    tagged.tags.insert("plan".into(), "pro".into());
    tagged.version = 2;
    assert!(table.update_connection(&tagged, 1, None).await.unwrap());
    assert!(
        !table
            .lease_refresh(&t, &c.id, "b", 3_000, 23_000)
            .await
            .unwrap()
    );

    // The swap: not by another holder, not over a stale version; then it releases the lease.
    let mut refreshed = tagged.clone();
    refreshed.credentials = "v1.k1.refreshed".into();
    refreshed.version = 3;
    let event = connection_event(&refreshed, Kind::Refreshed);
    assert_eq!(
        table
            .swap_refreshed(&refreshed, 2, "b", &event)
            .await
            .unwrap(),
        RefreshSwap::LeaseLost
    );
    assert!(matches!(
        table.swap_refreshed(&refreshed, 1, "a", &event).await,
        Err(tributary_core::PortError::Conflict { .. })
    ));
    assert_eq!(
        table
            .swap_refreshed(&refreshed, 2, "a", &event)
            .await
            .unwrap(),
        RefreshSwap::Swapped
    );
    let stored = table.get_connection(&t, &c.id).await.unwrap().unwrap();
    assert_eq!(stored.credentials, "v1.k1.refreshed");
    assert_eq!(stored.tags["plan"], "pro");
    assert!(
        table
            .lease_refresh(&t, &c.id, "b", 4_000, 24_000)
            .await
            .unwrap()
    );

    // Release: only by its holder; an expired lease can be taken.
    table.release_refresh(&t, &c.id, "a").await.unwrap();
    assert!(
        !table
            .lease_refresh(&t, &c.id, "c", 5_000, 25_000)
            .await
            .unwrap()
    );
    table.release_refresh(&t, &c.id, "b").await.unwrap();
    assert!(
        table
            .lease_refresh(&t, &c.id, "c", 6_000, 26_000)
            .await
            .unwrap()
    );
    assert!(
        table
            .lease_refresh(&t, &c.id, "d", 26_001, 46_000)
            .await
            .unwrap()
    );
}
