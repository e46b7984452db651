//! The operations log adapter (`OperationLog`, `DashboardStore`) against moto, on tables created
//! from `infra/template.yaml`: operations newest first under every filter, pages that carry on,
//! counters that add up (one write per operation however many records), a grant taken once, and
//! an expiry on every item (a deleted tenant's purge leaves expiring items to their TTL).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use tributary_core::dashboard::{DashboardGrant, GrantKind};
use tributary_core::ids::{DashboardSessionId, IntegrationId, OperationId, SyncId, TenantId};
use tributary_core::operation::{
    Operation, OperationCounts, OperationError, OperationFilter, OperationKind, OperationState,
    UsageCounts, UsageKey, day_start_ms,
};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{DashboardStore, OperationLog};
use tributary_tests::AwsEnv;

async fn env() -> AwsEnv {
    AwsEnv::start("ops", BTreeMap::new()).await
}

fn day_ms(day: &str) -> i64 {
    day_start_ms(day).unwrap()
}

fn op(
    tenant: &TenantId,
    at_ms: i64,
    kind: OperationKind,
    state: OperationState,
    integration: Option<&IntegrationId>,
) -> Operation {
    Operation {
        id: OperationId::derive(at_ms, &format!("{tenant}{at_ms}{}", kind.as_str())),
        tenant_id: tenant.clone(),
        kind,
        state,
        connection_id: None,
        integration_id: integration.cloned(),
        provider: integration.map(|_| "stripe".to_owned()),
        sync_id: None,
        name: None,
        subject: None,
        started_at_ms: at_ms,
        ended_at_ms: at_ms + 250,
        counts: OperationCounts::default(),
        error: None,
        entries: Vec::new(),
        entries_dropped: 0,
        latencies_ms: Vec::new(),
    }
}

#[tokio::test]
async fn operations_list_newest_first_under_each_filter_and_page_on() {
    let env = env().await;
    let store = env.control();
    let (t, other) = (TenantId::generate(), TenantId::generate());
    let integration = IntegrationId::generate();
    let base = day_ms("2026-12-01");
    let mut written = Vec::new();
    for i in 0..7 {
        let kind = if i % 2 == 0 {
            OperationKind::SyncRun
        } else {
            OperationKind::Proxy
        };
        let state = if i == 3 {
            OperationState::Failed
        } else {
            OperationState::Succeeded
        };
        let o = op(&t, base + i * 60_000, kind, state, Some(&integration));
        store.record_operation(&o, 14).await.unwrap();
        written.push(o);
    }
    store
        .record_operation(
            &op(
                &other,
                base,
                OperationKind::Proxy,
                OperationState::Succeeded,
                None,
            ),
            14,
        )
        .await
        .unwrap();

    // Newest first, across pages.
    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 3,
        after: None,
    };
    loop {
        let p = store
            .list_operations(&t, &OperationFilter::default(), &page)
            .await
            .unwrap();
        seen.extend(p.items.into_iter().map(|o| o.id));
        match p.next_after {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let newest_first: Vec<_> = written.iter().rev().map(|o| o.id.clone()).collect();
    assert_eq!(seen, newest_first);

    let list = |filter: OperationFilter| {
        let store = store.clone();
        let t = t.clone();
        async move {
            store
                .list_operations(
                    &t,
                    &filter,
                    &PageRequest {
                        limit: 100,
                        after: None,
                    },
                )
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(
        list(OperationFilter {
            kind: Some(OperationKind::SyncRun),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        list(OperationFilter {
            state: Some(OperationState::Failed),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        list(OperationFilter {
            from_ms: Some(base + 60_000),
            to_ms: Some(base + 180_000),
            ..Default::default()
        })
        .await,
        2,
        "the range is half open"
    );
    // A time window pages on within itself, newest first.
    let window = OperationFilter {
        from_ms: Some(base + 60_000),
        to_ms: Some(base + 300_000),
        ..Default::default()
    };
    let mut in_window = Vec::new();
    let mut page = PageRequest {
        limit: 1,
        after: None,
    };
    loop {
        let p = store.list_operations(&t, &window, &page).await.unwrap();
        in_window.extend(p.items.into_iter().map(|o| o.started_at_ms));
        match p.next_after {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        in_window,
        [
            base + 240_000,
            base + 180_000,
            base + 120_000,
            base + 60_000
        ]
    );
    assert_eq!(
        list(OperationFilter {
            integration_id: Some(IntegrationId::generate()),
            ..Default::default()
        })
        .await,
        0
    );
    let got = store
        .get_operation(&written[3].tenant_id, &written[3].id)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&written[3]));
    assert_eq!(
        store.get_operation(&other, &written[3].id).await.unwrap(),
        None,
        "another tenant's operation is not found"
    );
}

#[tokio::test]
async fn usage_and_sync_days_add_up_per_day_integration_and_sync() {
    let env = env().await;
    let store = env.control();
    let t = TenantId::generate();
    let integration = IntegrationId::generate();
    let sync = SyncId::generate();
    for (day, state, added) in [
        ("2026-12-01", OperationState::Continued, 400),
        ("2026-12-01", OperationState::Failed, 100),
        ("2026-12-02", OperationState::Succeeded, 10),
    ] {
        let mut o = op(
            &t,
            day_ms(day) + 1_000,
            OperationKind::SyncRun,
            state,
            Some(&integration),
        );
        o.id = OperationId::derive(o.started_at_ms, &format!("{day}{added}"));
        o.sync_id = Some(sync.clone());
        o.name = Some("customers".into());
        o.counts.records_added = added;
        o.counts.requests = 3;
        if state == OperationState::Failed {
            o.error = Some(OperationError {
                class: "rate_limited".into(),
                message: "429".into(),
            });
        }
        store.record_operation(&o, 14).await.unwrap();
    }
    store
        .add_usage(
            &t,
            &UsageKey {
                day: "2026-12-01".into(),
                integration_id: None,
                provider: None,
            },
            &UsageCounts {
                api_calls: 42,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let rows = store
        .list_usage(&t, "2026-12-01", "2026-12-01")
        .await
        .unwrap();
    let by_integration: BTreeMap<_, _> = rows
        .iter()
        .map(|r| (r.key.integration_id.clone(), r.counts.clone()))
        .collect();
    assert_eq!(by_integration.len(), 2);
    let synced = &by_integration[&Some(integration.clone())];
    assert_eq!(synced.records_added, 500);
    assert_eq!(synced.provider_requests, 6);
    assert_eq!(synced.compute_ms, 500);
    assert_eq!(by_integration[&None].api_calls, 42);
    assert_eq!(
        store
            .list_usage(&t, "2026-12-01", "2026-12-02")
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        store
            .list_usage(&t, "2026-12-03", "2026-12-31")
            .await
            .unwrap()
            .is_empty()
    );

    let days = store
        .list_sync_stats(&t, "2026-12-01", "2026-12-02")
        .await
        .unwrap();
    assert_eq!(days.len(), 2);
    let first = days.iter().find(|d| d.day == "2026-12-01").unwrap();
    assert_eq!(
        (first.invocations, first.runs_ended, first.runs_failed),
        (2, 1, 1)
    );
    assert_eq!(first.records, 500);
    assert_eq!(first.errors_by_class.get("rate_limited"), Some(&1));
    assert_eq!(first.sync_id.as_ref(), Some(&sync));
    assert_eq!(first.stream.as_deref(), Some("customers"));
    assert!(
        store
            .list_sync_stats(&TenantId::generate(), "2026-12-01", "2026-12-02")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_dashboard_grant_is_taken_once() {
    let env = env().await;
    let store = env.control();
    let grant = DashboardGrant {
        id: DashboardSessionId::generate(),
        tenant_id: TenantId::generate(),
        kind: GrantKind::Link,
        token_hash: "ab".repeat(32),
        expires_at_ms: 4_000_000_000_000,
    };
    store.put_dashboard_grant(&grant).await.unwrap();
    assert_eq!(
        store.dashboard_grant(&grant.token_hash).await.unwrap(),
        Some(grant.clone())
    );
    let (a, b) = tokio::join!(
        store.take_dashboard_grant(&grant.token_hash),
        store.take_dashboard_grant(&grant.token_hash)
    );
    let taken = [a.unwrap(), b.unwrap()];
    assert_eq!(taken.iter().filter(|g| g.is_some()).count(), 1);
    assert_eq!(
        store.dashboard_grant(&grant.token_hash).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn every_item_of_the_log_expires_so_a_deleted_tenant_s_purge_leaves_it_to_ttl() {
    let env = env().await;
    let store = env.control();
    let t = TenantId::generate();
    let at = day_ms("2026-12-01");
    let mut o = op(
        &t,
        at,
        OperationKind::SyncRun,
        OperationState::Succeeded,
        Some(&IntegrationId::generate()),
    );
    o.sync_id = Some(SyncId::generate());
    o.counts.records_added = 1;
    store.record_operation(&o, 14).await.unwrap();
    let items = env
        .clients
        .dynamodb()
        .query()
        .table_name(store.name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{t}")))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut expiries: Vec<(String, i64)> = items
        .iter()
        .map(|it| {
            let Some(AttributeValue::S(sk)) = it.get("sk") else {
                panic!("sk")
            };
            let Some(AttributeValue::N(e)) = it.get("expires_at") else {
                panic!("{sk} has no expiry")
            };
            (sk.split('#').next().unwrap().to_owned(), e.parse().unwrap())
        })
        .collect();
    expiries.sort();
    let days = |d: i64| at / 1000 + d * 86_400;
    assert_eq!(
        expiries,
        [
            ("OP".to_owned(), days(14)),
            ("SYNCDAY".to_owned(), days(93)),
            ("USAGE".to_owned(), days(400)),
        ]
    );
}
