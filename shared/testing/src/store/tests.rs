//! The semantics of [`MemStore`] the functions' tests rely on.

use tributary_core::ids::AuditEventId;
use tributary_core::scope::Scope;

use super::*;

fn tenant() -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: "acme".into(),
        status: TenantStatus::Active,
        rate_limit_per_minute: 100,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 0,
    }
}

fn audit(tenant: &TenantId) -> AuditEvent {
    AuditEvent {
        id: AuditEventId::generate(),
        tenant_id: tenant.clone(),
        at_ms: 1,
        actor: "key_test".into(),
        action: "test".into(),
        target: "x".into(),
    }
}

fn key(tenant: &TenantId) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::generate(),
        tenant_id: tenant.clone(),
        name: "k".into(),
        scopes: vec![Scope::KeysRead],
        secret_hash: "h".into(),
        created_at_ms: 1,
        expires_at_ms: None,
        revoked_at_ms: None,
        created_by: "key_test".into(),
    }
}

fn issuer(tenant: &TenantId, iss: &str, aud: &str) -> OidcIssuer {
    OidcIssuer {
        id: IssuerId::generate(),
        tenant_id: tenant.clone(),
        issuer: iss.into(),
        audience: aud.into(),
        jwks_uri: None,
        scopes_claim: "scope".into(),
        allowed_scopes: vec![Scope::KeysRead],
        created_at_ms: 1,
        expires_at_ms: None,
        created_by: "key_test".into(),
    }
}

fn req(limit: u32, after: Option<String>) -> PageRequest {
    PageRequest { limit, after }
}

#[tokio::test]
async fn conditional_creates_refuse_a_duplicate_id_and_keep_the_first() {
    let s = MemStore::default();
    let t = tenant();
    s.create_tenant(&t).await.unwrap();
    let mut again = t.clone();
    again.name = "other".into();
    assert!(matches!(
        s.create_tenant(&again).await,
        Err(PortError::Conflict { .. })
    ));
    assert_eq!(s.get_tenant(&t.id).await.unwrap().unwrap().name, "acme");

    let k = key(&t.id);
    s.create_key(&k, &audit(&t.id)).await.unwrap();
    let mut twin = k.clone();
    twin.name = "twin".into();
    assert!(matches!(
        s.create_key(&twin, &audit(&t.id)).await,
        Err(PortError::Conflict { .. })
    ));
    assert_eq!(s.get_key(&k.id).await.unwrap().unwrap().name, "k");
    let events = s.list_audit(&t.id, &req(100, None)).await.unwrap().items;
    assert_eq!(events.len(), 1, "a refused write writes no audit event");
}

#[tokio::test]
async fn tenant_updates_check_the_stored_version() {
    let s = MemStore::default();
    let t = tenant();
    let mut v1 = t.clone();
    v1.version = 1;
    assert!(!s.update_tenant(&v1, 0).await.unwrap(), "absent");
    s.create_tenant(&t).await.unwrap();
    assert!(s.update_tenant(&v1, 0).await.unwrap());
    let mut stale = t.clone();
    stale.version = 1;
    assert!(matches!(
        s.update_tenant(&stale, 0).await,
        Err(PortError::Conflict { .. })
    ));
    assert_eq!(s.get_tenant(&t.id).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn an_issuer_audience_pair_is_unique_across_tenants_and_the_cap_holds() {
    let s = MemStore::default();
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let first = issuer(&a, "https://idp/", "x");
    assert_eq!(
        s.create_issuer(&first, &audit(&a), 0).await.unwrap(),
        IssuerCreated::LimitReached,
        "a cap of 0 refuses the first"
    );
    assert_eq!(
        s.create_issuer(&first, &audit(&a), 2).await.unwrap(),
        IssuerCreated::Created
    );
    assert_eq!(
        s.create_issuer(&issuer(&b, "https://idp/", "x"), &audit(&b), 2)
            .await
            .unwrap(),
        IssuerCreated::PairTaken
    );
    assert_eq!(
        s.create_issuer(&issuer(&a, "https://idp/", "y"), &audit(&a), 2)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
    assert_eq!(
        s.create_issuer(&issuer(&a, "https://idp/", "z"), &audit(&a), 2)
            .await
            .unwrap(),
        IssuerCreated::LimitReached
    );
    // Both conditions fail: the pair is reported.
    assert_eq!(
        s.create_issuer(&issuer(&a, "https://idp/", "x"), &audit(&a), 2)
            .await
            .unwrap(),
        IssuerCreated::PairTaken
    );
    assert_eq!(
        s.issuer_registration("https://idp/", "x")
            .await
            .unwrap()
            .map(|o| o.id),
        Some(first.id.clone())
    );
    assert_eq!(
        s.issuer_registration("https://idp/", "q").await.unwrap(),
        None
    );

    // Another tenant cannot delete it; its owner can, which frees the pair and a place.
    assert!(!s.delete_issuer(&b, &first.id, &audit(&b)).await.unwrap());
    assert!(s.get_issuer(&b, &first.id).await.unwrap().is_none());
    assert!(s.delete_issuer(&a, &first.id, &audit(&a)).await.unwrap());
    assert_eq!(
        s.issuer_registration("https://idp/", "x").await.unwrap(),
        None
    );
    assert_eq!(
        s.create_issuer(&issuer(&b, "https://idp/", "x"), &audit(&b), 2)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
    assert_eq!(
        s.create_issuer(&issuer(&a, "https://idp/", "z"), &audit(&a), 2)
            .await
            .unwrap(),
        IssuerCreated::Created
    );
}

#[test]
#[should_panic(expected = "registered already")]
fn seeding_a_taken_pair_panics() {
    let s = MemStore::default();
    s.put_issuer(issuer(&TenantId::generate(), "https://idp/", "x"));
    s.put_issuer(issuer(&TenantId::generate(), "https://idp/", "x"));
}

#[tokio::test]
async fn cursor_pagination_returns_every_item_once_in_sort_key_order() {
    let s = MemStore::default();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let mut ids = Vec::new();
    for _ in 0..7 {
        let k = key(&t);
        ids.push(k.id.to_string());
        s.create_key(&k, &audit(&t)).await.unwrap();
        s.create_key(&key(&other), &audit(&other)).await.unwrap();
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s.list_keys(&t, &req(3, after)).await.unwrap();
        assert!(page.items.len() <= 3);
        pages += 1;
        seen.extend(page.items.iter().map(|k| k.id.to_string()));
        match page.next_after {
            Some(next) => {
                assert!(next.starts_with("APIKEY#"), "a position is the sort key");
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // An exact fit ends without a further position.
    let all = s.list_keys(&t, &req(7, None)).await.unwrap();
    assert_eq!((all.items.len(), all.next_after), (7, None));
    // The page size is bounded like the adapter's (1..=100).
    assert_eq!(s.list_keys(&t, &req(0, None)).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn a_position_is_scoped_to_its_list() {
    let s = MemStore::default();
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let mine = key(&b);
    s.create_key(&mine, &audit(&b)).await.unwrap();
    let theirs = key(&a);
    s.create_key(&theirs, &audit(&a)).await.unwrap();
    // A position from another list is out of range, not an empty page.
    for after in ["AUDIT#evt_x", "ISSUER#iss_x", "ten_x"] {
        assert!(
            matches!(
                s.list_keys(&b, &req(10, Some(after.into()))).await,
                Err(PortError::OutOfRange { .. })
            ),
            "{after}"
        );
    }
    assert!(matches!(
        s.list_tenants(&req(10, Some("APIKEY#key_x".into()))).await,
        Err(PortError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.list_audit(&b, &req(10, Some("APIKEY#key_x".into())))
            .await,
        Err(PortError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.list_issuers(&b, &req(10, Some("AUDIT#evt_x".into())))
            .await,
        Err(PortError::OutOfRange { .. })
    ));
    // Another tenant's position only positions within the caller's own list.
    let from_a = format!("APIKEY#{}", theirs.id);
    let page = s.list_keys(&b, &req(10, Some(from_a))).await.unwrap();
    assert!(page.items.iter().all(|k| k.tenant_id == b));
    let all = s.list_keys(&b, &req(10, None)).await.unwrap();
    assert_eq!(all.items, vec![mine]);
}

#[tokio::test]
async fn revoking_twice_keeps_the_first_time_and_audits_once() {
    let s = MemStore::default();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let k = key(&t);
    s.create_key(&k, &audit(&t)).await.unwrap();
    assert_eq!(
        s.revoke_key(&other, &k.id, 5, &audit(&other))
            .await
            .unwrap(),
        None
    );
    let first = s.revoke_key(&t, &k.id, 5, &audit(&t)).await.unwrap();
    let second = s.revoke_key(&t, &k.id, 9, &audit(&t)).await.unwrap();
    assert_eq!(first.unwrap().revoked_at_ms, Some(5));
    assert_eq!(second.unwrap().revoked_at_ms, Some(5));
    assert_eq!(
        s.get_key(&k.id).await.unwrap().unwrap().revoked_at_ms,
        Some(5)
    );
    let events = s.list_audit(&t, &req(100, None)).await.unwrap().items;
    assert_eq!(events.len(), 2, "created, revoked");
    assert!(
        s.list_audit(&other, &req(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn purge_to_the_end(s: &MemStore, t: &TenantId) -> usize {
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 100, "purge never ends");
        if s.purge_tenant(t, 77).await.unwrap() == PurgeProgress::Done {
            return steps;
        }
    }
}

#[tokio::test]
async fn purge_removes_a_deleting_tenant_in_batches_and_keeps_its_audit() {
    let s = MemStore::default().with_purge_batch(2);
    let mut t = tenant();
    let other = tenant();
    s.create_tenant(&t).await.unwrap();
    s.create_tenant(&other).await.unwrap();
    for _ in 0..2 {
        s.create_key(&key(&t.id), &audit(&t.id)).await.unwrap();
    }
    s.create_issuer(&issuer(&t.id, "https://idp/", "x"), &audit(&t.id), 5)
        .await
        .unwrap();
    s.create_key(&key(&other.id), &audit(&other.id))
        .await
        .unwrap();
    let others = s.owned_by(&other.id);

    // A live tenant is not purged.
    assert!(matches!(
        s.purge_tenant(&t.id, 77).await,
        Err(PortError::Rejected { .. })
    ));
    t.status = TenantStatus::Deleting;
    t.version = 1;
    assert!(s.update_tenant(&t, 0).await.unwrap());

    // 2 keys, 3 audit events, 1 issuer, the issuer count: 7 items, 4 batches of 2, then the step
    // that finds nothing left and removes the tenant.
    assert_eq!(
        s.purge_tenant(&t.id, 77).await.unwrap(),
        PurgeProgress::More
    );
    assert_eq!(s.owned_by(&t.id), 4, "one batch of two keys");
    assert!(s.get_tenant(&t.id).await.unwrap().is_some());
    assert_eq!(purge_to_the_end(&s, &t.id).await, 4);
    assert_eq!(s.owned_by(&t.id), 0);
    assert_eq!(s.kept_audit_of(&t.id), 3);
    assert!(s.get_tenant(&t.id).await.unwrap().is_none());
    // The audit trail stays readable; the pair is free; the other tenant is untouched.
    assert_eq!(
        s.list_audit(&t.id, &req(100, None))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        s.issuer_registration("https://idp/", "x").await.unwrap(),
        None
    );
    assert_eq!(s.owned_by(&other.id), others);
    // Safe to call again.
    assert_eq!(
        s.purge_tenant(&t.id, 77).await.unwrap(),
        PurgeProgress::Done
    );
}

#[tokio::test]
async fn purge_takes_twenty_five_items_a_step_by_default() {
    let s = MemStore::default();
    let mut t = tenant();
    t.status = TenantStatus::Deleting;
    s.put_tenant(t.clone());
    for _ in 0..30 {
        s.put_key(key(&t.id));
    }
    assert_eq!(s.purge_tenant(&t.id, 1).await.unwrap(), PurgeProgress::More);
    assert_eq!(s.owned_by(&t.id), 5);
    assert_eq!(purge_to_the_end(&s, &t.id).await, 2);
}

#[tokio::test]
async fn a_canary_never_moves_backwards() {
    let s = MemStore::default();
    let at = |enqueued_at_ms| CanaryObservation {
        job_id: JobId::generate(),
        enqueued_at_ms,
        processed_at_ms: enqueued_at_ms + 5,
    };
    assert_eq!(s.latest().await.unwrap(), None);
    let newer = at(20);
    s.record(&newer).await.unwrap();
    s.record(&at(10)).await.unwrap();
    assert_eq!(s.latest().await.unwrap(), Some(newer));
    let same_time = at(20);
    s.record(&same_time).await.unwrap();
    assert_eq!(s.latest().await.unwrap(), Some(same_time));
    assert_eq!(s.recorded_canaries().len(), 3);
}

#[tokio::test]
async fn the_ledger_remembers_completed_jobs_for_their_keep() {
    let s = MemStore::default();
    let (done, expired, other) = (JobId::generate(), JobId::generate(), JobId::generate());
    s.mark_done(&done, Duration::from_secs(3_600))
        .await
        .unwrap();
    s.mark_done(&expired, Duration::ZERO).await.unwrap();
    assert!(s.is_done(&done).await.unwrap());
    assert!(
        !s.is_done(&expired).await.unwrap(),
        "an expired record is absent"
    );
    assert!(!s.is_done(&other).await.unwrap());
    assert_eq!(s.done_jobs().len(), 2);
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_other_requests_and_expire() {
    let s = MemStore::default();
    let (lease, keep) = (Duration::from_secs(30), Duration::from_secs(600));
    let now = 1_800_000_000_000;
    let begin = |scope: &'static str, fp: &'static str, at: i64| {
        let s = s.clone();
        async move { s.begin(scope, "k", fp, at, lease, keep).await.unwrap() }
    };
    assert_eq!(begin("t", "a", now).await, IdempotencyBegin::Started);
    assert_eq!(begin("t", "a", now).await, IdempotencyBegin::InProgress);
    assert_eq!(begin("t", "b", now).await, IdempotencyBegin::Mismatch);
    assert_eq!(
        begin("u", "b", now).await,
        IdempotencyBegin::Started,
        "scoped"
    );
    // A pending claim past its lease (a crashed request) is taken over.
    assert_eq!(
        begin("t", "a", now + 31_000).await,
        IdempotencyBegin::Started
    );
    let response = StoredResponse {
        status: 201,
        body: "{}".into(),
    };
    s.complete("t", "k", &response).await.unwrap();
    assert_eq!(
        begin("t", "a", now + 100_000).await,
        IdempotencyBegin::Replay(response)
    );
    assert_eq!(
        begin("t", "b", now + 100_000).await,
        IdempotencyBegin::Mismatch
    );
    // After its keep, the key is free again.
    assert_eq!(
        begin("t", "b", now + 700_000).await,
        IdempotencyBegin::Started
    );
    s.abandon("t", "k").await.unwrap();
    assert_eq!(
        begin("t", "c", now + 700_000).await,
        IdempotencyBegin::Started
    );
    // Completing a key nobody holds is refused, as the adapter's condition does.
    s.abandon("t", "k").await.unwrap();
    assert!(matches!(
        s.complete(
            "t",
            "k",
            &StoredResponse {
                status: 200,
                body: String::new()
            }
        )
        .await,
        Err(PortError::Rejected { .. })
    ));
}

#[tokio::test]
async fn rate_counters_count_per_bucket_and_window() {
    let s = MemStore::default();
    let keep = Duration::from_secs(120);
    assert_eq!(s.add("a", 1, 5, keep).await.unwrap(), 5);
    assert_eq!(s.add("a", 1, 3, keep).await.unwrap(), 8);
    assert_eq!(s.add("a", 2, 1, keep).await.unwrap(), 1);
    assert_eq!(s.add("b", 1, 1, keep).await.unwrap(), 1);
    assert_eq!(s.calls("add"), 4);
}

#[tokio::test]
async fn a_failing_store_fails_every_call_with_an_internal_detail() {
    let s = MemStore::default();
    let t = tenant();
    s.put_tenant(t.clone());
    s.fail(true);
    let err = s.get_tenant(&t.id).await.unwrap_err();
    assert!(matches!(
        &err,
        PortError::Unavailable {
            service: Service::Store,
            operation: "GetItem",
            detail,
        } if detail.contains("secret-internal-detail") && detail.contains("arn:")
    ));
    assert!(s.add("a", 1, 1, Duration::ZERO).await.is_err());
    assert!(s.latest().await.is_err());
    assert_eq!(s.calls("get_tenant"), 1, "failed calls count");
    s.fail(false);
    assert!(s.get_tenant(&t.id).await.unwrap().is_some());
}

#[tokio::test]
#[should_panic(expected = "read-only")]
async fn a_read_only_store_panics_on_a_write() {
    let s = MemStore::read_only();
    let t = tenant();
    s.put_tenant(t.clone());
    assert!(s.get_tenant(&t.id).await.unwrap().is_some());
    let _ = s.create_tenant(&tenant()).await;
}

#[tokio::test]
async fn a_slow_canary_read_outlasts_a_probe_timeout() {
    let s = MemStore::default();
    s.slow_canary(true);
    let probe = tokio::time::timeout(Duration::from_millis(50), s.latest()).await;
    assert!(probe.is_err());
    s.slow_canary(false);
    assert!(s.latest().await.is_ok());
}

#[tokio::test]
async fn clones_share_items_switches_and_counts() {
    let s = MemStore::default();
    let c = s.clone();
    let t = tenant();
    c.create_tenant(&t).await.unwrap();
    assert!(s.get_tenant(&t.id).await.unwrap().is_some());
    assert_eq!((s.calls("create_tenant"), c.calls("get_tenant")), (1, 1));
    c.fail(true);
    assert!(s.get_tenant(&t.id).await.is_err());
}

#[test]
#[should_panic(expected = "no port method")]
fn a_misspelt_method_name_panics() {
    MemStore::default().calls("lastest");
}
