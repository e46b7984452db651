//! The operations log through the API: what a proxied call, an action run now and a connection's
//! creation leave (their provider requests and no credential), the filters and their refusals,
//! usage (API calls counted in batches) and insights from the day counters.

use serde_json::{Value, json};
use tributary_core::ids::{IntegrationId, OperationId, SyncId};
use tributary_core::operation::{
    Operation, OperationCounts, OperationError, OperationKind, OperationState,
};
use tributary_core::ports::OperationLog as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::actions::setup;
use super::{as_tenant, is_problem};
use crate::oplog::API_CALLS_FLUSH_EVERY;
use crate::testing::{GOOD_KEY, NOW, Req, call};

async fn list(s: &super::actions::Setup, query: &str) -> Value {
    let res = call(
        &s.d,
        as_tenant(Req::new("GET", &format!("/v1/operations{query}")), &s.t),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    res.body
}

#[tokio::test]
async fn a_proxied_call_is_an_operation_with_its_request_and_no_credential() {
    let s = setup().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"error": {"message": "nope"}})),
        )
        .mount(&s.server)
        .await;
    let res = call(
        &s.d,
        as_tenant(
            Req::new("GET", "/v1/proxy/customers?email=ada@example.com&limit=3"),
            &s.t,
        )
        .header("connection-id", &s.connection),
    )
    .await;
    assert_eq!(res.status, 404, "the provider's answer as sent");

    let page = list(&s, "?type=proxy").await;
    let ops = page["data"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{page}");
    let op = &ops[0];
    assert_eq!(op["type"], "proxy");
    assert_eq!(op["state"], "failed");
    assert_eq!(op["error"]["class"], "provider_status");
    assert_eq!(op["connection_id"], s.connection.as_str());
    assert_eq!(op["provider"], "stripe");
    assert_eq!(op["name"], "GET /customers");
    assert_eq!(op["counts"]["requests"], 1);

    let detail = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/operations/{}", op["id"].as_str().unwrap()),
            ),
            &s.t,
        ),
    )
    .await;
    assert_eq!(detail.status, 200);
    let entries = detail.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["type"], "request");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["status"], 404);
    assert_eq!(entries[0]["path"], "/v1/customers?email=&limit=");
    let text = detail.body.to_string();
    assert!(
        !text.contains(GOOD_KEY) && !text.contains("ada@example.com"),
        "{text}"
    );
}

#[tokio::test]
async fn an_action_run_now_and_a_connection_s_creation_are_operations() {
    let s = setup().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_new", "email": "ada@example.com"})),
        )
        .mount(&s.server)
        .await;
    let res = call(
        &s.d,
        as_tenant(
            Req::new(
                "POST",
                &format!("/v1/connections/{}/actions/create_customer", s.connection),
            ),
            &s.t,
        )
        .json(json!({"email": "ada@example.com"})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let actions = list(&s, "?type=action_run").await;
    let op = &actions["data"][0];
    assert_eq!(op["state"], "succeeded");
    assert_eq!(op["name"], "create_customer");
    assert_eq!(op["counts"]["requests"], 1);
    let made = list(&s, "?type=connection_change").await;
    let op = &made["data"][0];
    assert_eq!(op["name"], "create");
    assert_eq!(op["connection_id"], s.connection.as_str());
    assert_eq!(op["state"], "succeeded");
    // Newest first, and each filter narrows.
    let all = list(&s, "").await;
    assert_eq!(all["data"][0]["type"], "action_run");
    assert_eq!(
        list(&s, &format!("?connection_id={}&state=failed", s.connection)).await["data"],
        json!([])
    );
    let bounded = list(&s, "?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await;
    assert_eq!(bounded["data"], json!([]));
}

#[tokio::test]
async fn a_request_refused_before_anything_was_sent_leaves_no_operation() {
    let s = setup().await;
    let res = call(
        &s.d,
        as_tenant(Req::new("GET", "/v1/proxy/customers"), &s.t).header(
            "connection-id",
            &tributary_core::ids::ConnectionId::generate().to_string(),
        ),
    )
    .await;
    is_problem(&res, 404, "not_found");
    assert_eq!(list(&s, "?type=proxy").await["data"], json!([]));
}

#[tokio::test]
async fn bad_filters_are_400s_that_name_the_parameter() {
    let s = setup().await;
    for (query, pointer) in [
        ("?type=sync", "query.type"),
        ("?state=done", "query.state"),
        ("?connection_id=conn_1", "query.connection_id"),
        ("?integration_id=x", "query.integration_id"),
        ("?from=yesterday", "query.from"),
        (
            "?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            "query.from",
        ),
        ("?kind=proxy", "query.kind"),
    ] {
        let res = call(
            &s.d,
            as_tenant(Req::new("GET", &format!("/v1/operations{query}")), &s.t),
        )
        .await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{query}");
    }
    for (query, pointer) in [
        ("?from=2026-01-01&to=2026-12-01", "query.from"),
        ("?from=2026-12-02&to=2026-12-01", "query.from"),
        ("?to=12/01/2026", "query.to"),
        ("?group_by=week", "query.group_by"),
    ] {
        let res = call(
            &s.d,
            as_tenant(Req::new("GET", &format!("/v1/usage{query}")), &s.t),
        )
        .await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{query}");
    }
    let res = call(
        &s.d,
        as_tenant(Req::new("GET", "/v1/operations/op_nope"), &s.t),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
}

#[tokio::test]
async fn usage_by_day_covers_every_day_and_counts_api_calls_in_batches() {
    let s = setup().await;
    let usage = |q: &'static str| {
        let s = &s;
        async move {
            call(
                &s.d,
                as_tenant(Req::new("GET", &format!("/v1/usage{q}")), &s.t),
            )
            .await
            .body
        }
    };
    let by_day = usage("").await;
    assert_eq!(by_day["group_by"], "day");
    assert_eq!(by_day["groups"].as_array().unwrap().len(), 30);
    assert_eq!(by_day["to"], tributary_core::operation::day_of(NOW));
    // The connection's verification request, under the day it happened.
    assert_eq!(by_day["totals"]["provider_requests"], 1);
    let before = by_day["totals"]["api_calls"].as_u64().unwrap();
    for _ in 0..API_CALLS_FLUSH_EVERY {
        call(&s.d, as_tenant(Req::new("GET", "/v1/me"), &s.t)).await;
    }
    let after = usage("?group_by=integration").await;
    let calls = after["totals"]["api_calls"].as_u64().unwrap();
    assert!(
        calls >= before + API_CALLS_FLUSH_EVERY - 5 && calls > before,
        "{before} then {calls}"
    );
    // API calls belong to no integration: the `null` group.
    let null_group = after["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"].is_null())
        .unwrap();
    assert_eq!(null_group["counts"]["api_calls"], calls);
    let by_provider = usage("?group_by=provider").await;
    assert!(
        by_provider["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["key"] == "stripe" && g["counts"]["provider_requests"] == 1)
    );
}

fn sync_op(s: &super::actions::Setup, sync: &SyncId, at: i64, state: OperationState) -> Operation {
    Operation {
        id: OperationId::derive(at, &format!("{sync}{at}")),
        tenant_id: s.t.clone(),
        kind: OperationKind::SyncRun,
        state,
        connection_id: s.connection.parse().ok(),
        integration_id: Some(IntegrationId::generate()),
        provider: Some("hubspot".into()),
        sync_id: Some(sync.clone()),
        name: Some("contacts".into()),
        subject: None,
        started_at_ms: at,
        ended_at_ms: at + 60_000,
        counts: OperationCounts {
            records_added: 100,
            deferred_ms: 240_000,
            rate_limited: 2,
            requests: 10,
            ..OperationCounts::default()
        },
        error: (state == OperationState::Failed).then(|| OperationError {
            class: "auth".into(),
            message: "refused".into(),
        }),
        entries: Vec::new(),
        entries_dropped: 0,
        latencies_ms: Vec::new(),
    }
}

#[tokio::test]
async fn insights_name_the_failing_sync_the_provider_losing_time_and_what_to_do() {
    let s = setup().await;
    let sync = SyncId::generate();
    for (i, state) in [
        OperationState::Failed,
        OperationState::Failed,
        OperationState::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let op = sync_op(&s, &sync, NOW - 86_400_000 + i as i64 * 1000, state);
        s.d.store.record_operation(&op, 14).await.unwrap();
    }
    let res = call(&s.d, as_tenant(Req::new("GET", "/v1/insights"), &s.t)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let failing = &res.body["failing_syncs"][0];
    assert_eq!(failing["sync_id"], sync.as_str());
    assert_eq!(
        (failing["runs"].as_u64(), failing["failures"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(failing["error_classes"]["auth"], 2);
    let provider = &res.body["deferred_providers"][0];
    assert_eq!(provider["provider"], "hubspot");
    // 720 s waiting against 180 s reading.
    assert_eq!(provider["deferred_share_percent"], 80);
    let kinds: Vec<&str> = res.body["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"reconnect") && kinds.contains(&"provider_budget"),
        "{kinds:?}"
    );
    // A window before the runs sees none of them.
    let res = call(
        &s.d,
        as_tenant(
            Req::new("GET", "/v1/insights?from=2020-01-01&to=2020-01-07"),
            &s.t,
        ),
    )
    .await;
    assert_eq!(res.body["failing_syncs"], json!([]));
}
