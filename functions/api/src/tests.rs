//! Handler tests: routing, problem documents, health, the scope and cross-tenant matrices,
//! idempotency, pagination, validation and rate limiting, through the real handler with an in-memory
//! store.

use std::time::Duration;

use serde_json::{Value, json};
use tributary_core::canary::CanaryObservation;
use tributary_core::ids::{JobId, TenantId};
use tributary_core::ports::QueueDepth;
use tributary_core::tenancy::{Tenant, TenantStatus};

use crate::testing::{MemStore, NOW, Req, call, deps};

mod actions;
mod client_credentials;
mod connect;
mod connections;
mod dashboard;
mod inbound;
mod integrations;
mod operations;
mod proxy;
mod records;
mod refresh;
mod revoke;
mod syncs;
mod webhooks;

fn tenant(store: &MemStore, rate: u32) -> TenantId {
    let t = Tenant {
        id: TenantId::generate(),
        name: "acme".into(),
        status: TenantStatus::Active,
        rate_limit_per_minute: rate,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 0,
    };
    let id = t.id.clone();
    store.put_tenant(t);
    id
}

const ALL: &str = "integrations:read integrations:write connections:read connections:write syncs:read syncs:write records:read actions:execute proxy webhooks:read webhooks:write operations:read keys:read keys:write";

fn admin(req: Req) -> Req {
    req.auth("admin-key", "", "admin")
}

fn as_tenant(req: Req, t: &TenantId) -> Req {
    req.auth("key_test", t.as_str(), ALL)
}

fn is_problem(res: &crate::testing::Res, status: u16, code: &str) {
    assert_eq!(res.status, status, "{:?}", res.body);
    assert_eq!(res.headers["content-type"], "application/problem+json");
    assert_eq!(res.body["code"], code, "{:?}", res.body);
    assert_eq!(res.body["status"], status);
    assert!(res.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn health_answers_only_its_status_publicly_and_the_report_to_the_admin() {
    let store = MemStore::default();
    store.set_canary(CanaryObservation {
        job_id: JobId::generate(),
        enqueued_at_ms: NOW - 30_400,
        processed_at_ms: NOW - 30_000,
    });
    let d = deps(store, Ok(QueueDepth::default()));
    let res = call(&d, Req::new("GET", "/v1/health")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, json!({"status": "ok"}));
    let t = tenant(&d.store, 100);
    let res = call(&d, as_tenant(Req::new("GET", "/v1/health/details"), &t)).await;
    is_problem(&res, 403, "missing_scope");
    let res = call(&d, admin(Req::new("GET", "/v1/health/details"))).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["status"], "ok");
    assert_eq!(res.body["stage"], "test");
    assert_eq!(res.body["canary"]["last_round_trip_ms"], 400);
    assert_eq!(res.body["canary"]["age_seconds"], 30);
    assert_eq!(res.body["queues"]["dead_letter"]["visible"], 0);
}

#[tokio::test]
async fn when_store_is_slow_health_answers_503_within_the_probe_timeout() {
    let store = MemStore::default();
    store.slow_canary(true);
    let d = deps(store, Ok(QueueDepth::default()));
    let started = std::time::Instant::now();
    let res = call(&d, Req::new("GET", "/v1/health")).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(res.status, 503);
    assert_eq!(res.body, json!({"status": "down"}));
    // As documented: the status document, not a problem.
    assert_eq!(res.headers["content-type"], "application/json");
    let doc: Value = serde_json::from_str(&crate::router::document::<
        MemStore,
        crate::testing::FakeQueue,
    >())
    .unwrap();
    let documented = &doc["paths"]["/v1/health"]["get"]["responses"]["503"]["content"];
    assert_eq!(
        documented.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["application/json"]
    );
    let res = call(&d, admin(Req::new("GET", "/v1/health/details"))).await;
    assert_eq!(res.body["checks"]["dynamodb"]["error"], "timeout");
}

#[tokio::test]
async fn when_queue_fails_health_reveals_no_internal_detail() {
    let d = deps(MemStore::default(), Err(()));
    let res = call(&d, Req::new("GET", "/v1/health")).await;
    assert_eq!(res.status, 503);
    assert!(!res.body.to_string().contains("secret-internal-detail"));
}

#[tokio::test]
async fn me_returns_the_principal_and_requires_a_context() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    let res = call(&d, admin(Req::new("GET", "/v1/me"))).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body,
        json!({"principal": "admin-key", "tenant_id": null, "scopes": ["admin"]})
    );
    is_problem(
        &call(&d, Req::new("GET", "/v1/me")).await,
        401,
        "unauthenticated",
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    let res = call(&d, admin(Req::new("GET", "/v1/nope"))).await;
    is_problem(&res, 404, "route_not_found");
    assert_eq!(res.body["type"], "urn:tributary:problem:route_not_found");
    assert_eq!(res.body["instance"], "/v1/nope");
    let res = call(&d, Req::new("DELETE", "/v1/health")).await;
    is_problem(&res, 405, "method_not_allowed");
    assert_eq!(res.headers["allow"], "GET");
}

#[tokio::test]
async fn openapi_and_docs_are_public() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    let res = call(&d, Req::new("GET", "/v1/openapi.json")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["openapi"], "3.1.0");
    let res = call(&d, Req::new("GET", "/docs")).await;
    assert_eq!(res.status, 200);
    assert!(
        res.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(res.body.as_str().unwrap().contains("/v1/openapi.json"));
}

/// Every authenticated operation with a valid example: (method, path, body, required scope).
fn operations(
    t: &TenantId,
    key: &str,
    issuer: &str,
    seeded: &Seeded,
) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let Seeded {
        integration,
        key_integration,
        connection,
        sync,
        run,
        action_run,
        endpoint,
        message,
        operation,
        ..
    } = seeded;
    vec![
        ("GET", "/v1/operations".into(), None, "operations:read"),
        (
            "GET",
            format!("/v1/operations/{operation}"),
            None,
            "operations:read",
        ),
        (
            "GET",
            "/v1/usage?group_by=integration".into(),
            None,
            "operations:read",
        ),
        ("GET", "/v1/insights".into(), None, "operations:read"),
        (
            "POST",
            "/v1/dashboard/sessions".into(),
            Some(json!({})),
            "operations:read",
        ),
        (
            "POST",
            "/v1/webhook-endpoints".into(),
            Some(json!({"url": "https://hooks.example.com/t"})),
            "webhooks:write",
        ),
        ("GET", "/v1/webhook-endpoints".into(), None, "webhooks:read"),
        (
            "GET",
            format!("/v1/webhook-endpoints/{endpoint}"),
            None,
            "webhooks:read",
        ),
        (
            "PATCH",
            format!("/v1/webhook-endpoints/{endpoint}"),
            Some(json!({"description": "billing"})),
            "webhooks:write",
        ),
        (
            "POST",
            format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            None,
            "webhooks:write",
        ),
        ("GET", "/v1/webhook-messages".into(), None, "webhooks:read"),
        (
            "GET",
            format!("/v1/webhook-messages/{message}"),
            None,
            "webhooks:read",
        ),
        (
            "GET",
            format!("/v1/webhook-messages/{message}/attempts"),
            None,
            "webhooks:read",
        ),
        (
            "POST",
            format!("/v1/webhook-messages/{message}/replay"),
            None,
            "webhooks:write",
        ),
        (
            "DELETE",
            format!("/v1/webhook-endpoints/{endpoint}"),
            None,
            "webhooks:write",
        ),
        (
            "POST",
            format!("/v1/connections/{connection}/actions/create_customer"),
            Some(json!({"email": "ada@example.com"})),
            "actions:execute",
        ),
        (
            "GET",
            format!("/v1/action-runs/{action_run}"),
            None,
            "actions:execute",
        ),
        ("GET", "/v1/proxy/balance".into(), None, "proxy"),
        ("GET", "/v1/syncs".into(), None, "syncs:read"),
        (
            "POST",
            "/v1/syncs".into(),
            Some(
                json!({"connection_id": connection, "stream": "charges", "model": "charges", "frequency": {"every_seconds": 3600}}),
            ),
            "syncs:write",
        ),
        ("GET", format!("/v1/syncs/{sync}"), None, "syncs:read"),
        (
            "PATCH",
            format!("/v1/syncs/{sync}"),
            Some(json!({"status": "paused"})),
            "syncs:write",
        ),
        ("GET", format!("/v1/syncs/{sync}/runs"), None, "syncs:read"),
        (
            "GET",
            format!("/v1/syncs/{sync}/runs/{run}"),
            None,
            "syncs:read",
        ),
        (
            "POST",
            format!("/v1/syncs/{sync}/runs/{run}/cancel"),
            None,
            "syncs:write",
        ),
        (
            "POST",
            format!("/v1/syncs/{sync}/runs"),
            Some(json!({"full_resync": true})),
            "syncs:write",
        ),
        (
            "GET",
            format!("/v1/records?connection_id={connection}&model=customers"),
            None,
            "records:read",
        ),
        (
            "GET",
            format!("/v1/records/customers/{SEEDED_RECORD}?connection_id={connection}"),
            None,
            "records:read",
        ),
        ("DELETE", format!("/v1/syncs/{sync}"), None, "syncs:write"),
        ("GET", "/v1/connections".into(), None, "connections:read"),
        (
            "POST",
            "/v1/connect/sessions".into(),
            Some(
                json!({"end_user_id": "user-1", "integration_ids": [integration], "return_url": "https://app.example.com/done"}),
            ),
            "connections:write",
        ),
        (
            "POST",
            "/v1/connections".into(),
            Some(
                json!({"integration_id": key_integration, "end_user_id": "u2", "credentials": {"api_key": crate::testing::GOOD_KEY}}),
            ),
            "connections:write",
        ),
        (
            "GET",
            format!("/v1/connections/{connection}"),
            None,
            "connections:read",
        ),
        (
            "PATCH",
            format!("/v1/connections/{connection}"),
            Some(json!({"tags": {"plan": "pro"}})),
            "connections:write",
        ),
        (
            "POST",
            format!("/v1/connections/{connection}/test"),
            None,
            "connections:write",
        ),
        ("GET", "/v1/integrations".into(), None, "integrations:read"),
        (
            "POST",
            "/v1/integrations".into(),
            Some(json!({"provider": "stripe"})),
            "integrations:write",
        ),
        (
            "GET",
            format!("/v1/integrations/{integration}"),
            None,
            "integrations:read",
        ),
        (
            "PATCH",
            format!("/v1/integrations/{integration}"),
            Some(json!({"name": "Billing"})),
            "integrations:write",
        ),
        ("GET", "/v1/tenants".into(), None, "admin"),
        (
            "POST",
            "/v1/tenants".into(),
            Some(json!({"name": "n"})),
            "admin",
        ),
        ("GET", format!("/v1/tenants/{t}"), None, "admin"),
        (
            "PATCH",
            format!("/v1/tenants/{t}"),
            Some(json!({"name": "m"})),
            "admin",
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/keys"),
            Some(json!({"name": "k", "scopes": ["proxy"]})),
            "admin",
        ),
        ("GET", "/v1/keys".into(), None, "keys:read"),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"name": "k", "scopes": ["keys:write"]})),
            "keys:write",
        ),
        ("GET", format!("/v1/keys/{key}"), None, "keys:read"),
        ("DELETE", format!("/v1/keys/{key}"), None, "keys:write"),
        ("GET", "/v1/oidc-issuers".into(), None, "keys:read"),
        (
            "POST",
            "/v1/oidc-issuers".into(),
            Some(
                json!({"issuer": "https://idp.example.com/", "audience": "a", "allowed_scopes": ["keys:write"]}),
            ),
            "keys:write",
        ),
        (
            "GET",
            format!("/v1/oidc-issuers/{issuer}"),
            None,
            "keys:read",
        ),
        (
            "DELETE",
            format!("/v1/oidc-issuers/{issuer}"),
            None,
            "keys:write",
        ),
        ("GET", "/v1/audit-events".into(), None, "keys:read"),
        (
            "DELETE",
            format!("/v1/connections/{}", seeded.spare_connection),
            None,
            "connections:write",
        ),
        (
            "DELETE",
            format!("/v1/integrations/{integration}"),
            None,
            "integrations:write",
        ),
        ("DELETE", format!("/v1/tenants/{t}"), None, "admin"),
    ]
}

/// Ids of what [`seed`] makes besides a key and an issuer.
struct Seeded {
    /// An OAuth integration.
    integration: String,
    /// A key-based (Stripe) integration.
    key_integration: String,
    /// A connection through it.
    connection: String,
    /// Another connection through it, which no sync reads (one that can be deleted).
    spare_connection: String,
    /// A sync of its customers (model `customers`), whose feed holds [`SEEDED_RECORD`].
    sync: String,
    /// A run of the sync, queued.
    run: String,
    /// An action run of the connection (Stripe `create_customer`), queued.
    action_run: String,
    /// A webhook endpoint.
    endpoint: String,
    /// An exhausted message for it (replayable).
    message: String,
    /// An operation of the log (the connection's creation).
    operation: String,
}

/// A proxied request names its connection in a header: the seeded one.
fn with_connection(req: Req, path: &str, seeded: &Seeded) -> Req {
    if path.starts_with("/v1/proxy/") {
        req.header("connection-id", &seeded.connection)
    } else {
        req
    }
}

/// The record [`seed`] stores in its sync's feed.
const SEEDED_RECORD: &str = "cus_seed";

/// Stores `records` as the next page of a feed, as a run does.
async fn write_feed(
    store: &MemStore,
    feed: &tributary_core::records::FeedKey,
    records: &[(&str, Value)],
) {
    use tributary_core::records::{FeedPage, Fetched, RecordStore as _, stage_page};
    let seq = store
        .last_page(feed)
        .await
        .unwrap()
        .map_or(1, |p| p.seq + 1);
    let run = tributary_core::ids::SyncRunId::generate();
    let fetched = records
        .iter()
        .map(|(id, data)| Fetched {
            id: (*id).to_owned(),
            data: data.to_string(),
        })
        .collect();
    let staged = stage_page(store, feed, &run, seq, NOW, None, fetched)
        .await
        .unwrap();
    let page = FeedPage {
        seq,
        run_id: run,
        entries: staged.entries,
        committed_at_ms: NOW,
        run_position: None,
        run_stats: staged.stats,
        expires_at_s: None,
    };
    store.write_page(feed, &staged.writes, &page).await.unwrap();
}

/// A key, an issuer, integrations, a connection (Stripe pointed at a local mock), a sync of it
/// with a queued run, and a record in the sync's feed, of `t`.
async fn seed(d: &crate::testing::TestApi, t: &TenantId) -> (String, String, Seeded) {
    let (key, issuer) = seed_key_and_issuer(d, t).await;
    let integration = call(
        d,
        as_tenant(Req::new("POST", "/v1/integrations"), t).json(json!({
            "provider": "hubspot",
            "oauth_client_id": "client-1",
            "oauth_client_secret": "client-secret-value-1",
            "return_urls": ["https://app.example.com/done"]
        })),
    )
    .await;
    assert_eq!(integration.status, 201, "{:?}", integration.body);
    let stripe = call(
        d,
        as_tenant(Req::new("POST", "/v1/integrations"), t).json(json!({"provider": "stripe"})),
    )
    .await;
    assert_eq!(stripe.status, 201, "{:?}", stripe.body);
    let stripe = stripe.body["id"].as_str().unwrap().to_owned();
    let connection = call(
        d,
        as_tenant(Req::new("POST", "/v1/connections"), t).json(json!({
            "integration_id": stripe,
            "end_user_id": "user-1",
            "credentials": {"api_key": crate::testing::GOOD_KEY}
        })),
    )
    .await;
    assert_eq!(connection.status, 201, "{:?}", connection.body);
    let connection = connection.body["id"].as_str().unwrap().to_owned();
    let spare = call(
        d,
        as_tenant(Req::new("POST", "/v1/connections"), t).json(json!({
            "integration_id": stripe,
            "end_user_id": "user-2",
            "credentials": {"api_key": crate::testing::GOOD_KEY}
        })),
    )
    .await;
    assert_eq!(spare.status, 201, "{:?}", spare.body);
    let spare_connection = spare.body["id"].as_str().unwrap().to_owned();
    let sync = call(
        d,
        as_tenant(Req::new("POST", "/v1/syncs"), t).json(json!({
            "connection_id": connection, "stream": "customers", "model": "customers",
            "frequency": {"every_seconds": 3600}
        })),
    )
    .await;
    assert_eq!(sync.status, 201, "{:?}", sync.body);
    let sync = sync.body["id"].as_str().unwrap().to_owned();
    let run = call(
        d,
        as_tenant(Req::new("POST", &format!("/v1/syncs/{sync}/runs")), t),
    )
    .await;
    assert_eq!(run.status, 202, "{:?}", run.body);
    let action_run = call(
        d,
        as_tenant(
            Req::new(
                "POST",
                &format!("/v1/connections/{connection}/actions/create_customer"),
            ),
            t,
        )
        .header("prefer", "respond-async")
        .json(json!({"email": "ada@example.com"})),
    )
    .await;
    assert_eq!(action_run.status, 202, "{:?}", action_run.body);
    let endpoint = call(
        d,
        as_tenant(Req::new("POST", "/v1/webhook-endpoints"), t)
            .json(json!({"url": "https://hooks.example.com/tributary"})),
    )
    .await;
    assert_eq!(endpoint.status, 201, "{:?}", endpoint.body);
    let endpoint = endpoint.body["id"].as_str().unwrap().to_owned();
    let feed = tributary_core::records::FeedKey {
        tenant_id: t.clone(),
        connection_id: connection.parse().unwrap(),
        model: "customers".into(),
    };
    write_feed(
        &d.store,
        &feed,
        &[(SEEDED_RECORD, json!({"id": SEEDED_RECORD}))],
    )
    .await;
    (
        key,
        issuer,
        Seeded {
            integration: integration.body["id"].as_str().unwrap().to_owned(),
            key_integration: stripe,
            connection,
            spare_connection,
            sync,
            run: run.body["id"].as_str().unwrap().to_owned(),
            action_run: action_run.body["id"].as_str().unwrap().to_owned(),
            message: seed_message(d, t, &endpoint).await,
            endpoint,
            operation: d
                .store
                .operations()
                .into_iter()
                .find(|o| o.tenant_id == *t)
                .expect("the seeded connections were logged")
                .id
                .to_string(),
        },
    )
}

/// An exhausted message of `t` for `endpoint`, as the connector leaves one.
async fn seed_message(d: &crate::testing::TestApi, t: &TenantId, endpoint: &str) -> String {
    use tributary_core::outbound::{EventType, MessageState, WebhookMessage};
    use tributary_core::ports::WebhookStore as _;
    use tributary_core::time::Clock as _;
    let event = tributary_core::ids::EventId::generate();
    let endpoint_id: tributary_core::ids::EndpointId = endpoint.parse().unwrap();
    let now = d.clock.now_ms();
    let message = WebhookMessage {
        id: WebhookMessage::id_for(&event, now, &endpoint_id),
        tenant_id: t.clone(),
        endpoint_id,
        event_id: event,
        event_type: EventType::ConnectionCreated,
        body: WebhookMessage::body_of(
            EventType::ConnectionCreated,
            now,
            &json!({"connection_id": "conn_x"}),
        ),
        state: MessageState::Exhausted,
        attempts: 8,
        total_attempts: 8,
        next_attempt_at_ms: None,
        last_status: Some(500),
        last_error: Some("HTTP 500".into()),
        created_at_ms: now,
        updated_at_ms: now,
        version: 9,
    };
    assert!(d.store.create_message(&message).await.unwrap());
    message.id.to_string()
}

async fn seed_key_and_issuer(d: &crate::testing::TestApi, t: &TenantId) -> (String, String) {
    let key = call(
        d,
        as_tenant(Req::new("POST", "/v1/keys"), t)
            .json(json!({"name": "k", "scopes": ["keys:read"]})),
    )
    .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let issuer = call(
        d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), t)
            .json(json!({"issuer": "https://idp.example.com/", "audience": "tributary", "allowed_scopes": ["keys:read"]})),
    )
    .await;
    assert_eq!(issuer.status, 201, "{:?}", issuer.body);
    (
        key.body["id"].as_str().unwrap().to_owned(),
        issuer.body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn scope_matrix_every_route_refuses_without_its_scope_and_serves_with_it() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (_provider, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store, Ok(QueueDepth::default()), settings);
    let (key, issuer, seeded) = seed(&d, &t).await;
    for (method, path, body, scope) in operations(&t, &key, &issuer, &seeded) {
        // Every scope but the required one (admin holds everything, so it is never in the set).
        let others: Vec<&str> = ALL.split(' ').filter(|s| *s != scope).collect();
        let mut without = with_connection(
            Req::new(method, &path).auth("key_x", t.as_str(), &others.join(" ")),
            &path,
            &seeded,
        );
        if let Some(b) = &body {
            without = without.json(b.clone());
        }
        let res = call(&d, without).await;
        is_problem(&res, 403, "missing_scope");
        assert!(
            res.body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("`{scope}`")),
            "{method} {path}: {}",
            res.body["detail"]
        );

        let mut with = if scope == "admin" {
            admin(Req::new(method, &path))
        } else {
            with_connection(
                Req::new(method, &path).auth("key_x", t.as_str(), scope),
                &path,
                &seeded,
            )
        };
        if let Some(b) = &body {
            with = with.json(b.clone());
        }
        let res = call(&d, with).await;
        assert!(
            (200..300).contains(&res.status),
            "{method} {path} with `{scope}` must succeed: {} {:?}",
            res.status,
            res.body
        );
    }
}

/// The 404 body with the path's id replaced, so bodies for different ids compare equal.
fn normalized(mut body: Value, path: &str) -> Value {
    let path = path.split('?').next().unwrap_or_default();
    if body["instance"] == path {
        body["instance"] = "{path}".into();
    }
    body
}

#[tokio::test]
async fn cross_tenant_matrix_never_leaks_and_404s_like_a_random_id() {
    let store = MemStore::default();
    let a = tenant(&store, 100_000);
    let b = tenant(&store, 100_000);
    let (_provider, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store, Ok(QueueDepth::default()), settings);
    let (key_a, issuer_a, seeded_a) = seed(&d, &a).await;
    let Seeded {
        integration: integration_a,
        connection: connection_a,
        sync: sync_a,
        run: run_a,
        action_run: action_run_a,
        endpoint: endpoint_a,
        message: message_a,
        operation: operation_a,
        ..
    } = seeded_a;
    let random_operation = tributary_core::ids::OperationId::generate().to_string();
    let random_endpoint = tributary_core::ids::EndpointId::generate().to_string();
    let random_message = tributary_core::ids::MessageId::generate().to_string();
    let random_action_run = tributary_core::ids::ActionRunId::generate().to_string();
    let random_connection = tributary_core::ids::ConnectionId::generate().to_string();
    let random_sync = tributary_core::ids::SyncId::generate().to_string();
    let random_run = tributary_core::ids::SyncRunId::generate().to_string();
    let random_key = tributary_core::ids::ApiKeyId::generate().to_string();
    let random_issuer = tributary_core::ids::IssuerId::generate().to_string();
    let random_integration = tributary_core::ids::IntegrationId::generate().to_string();

    for (method, foreign, random) in [
        (
            "GET",
            format!("/v1/keys/{key_a}"),
            format!("/v1/keys/{random_key}"),
        ),
        (
            "DELETE",
            format!("/v1/keys/{key_a}"),
            format!("/v1/keys/{random_key}"),
        ),
        (
            "GET",
            format!("/v1/oidc-issuers/{issuer_a}"),
            format!("/v1/oidc-issuers/{random_issuer}"),
        ),
        (
            "DELETE",
            format!("/v1/oidc-issuers/{issuer_a}"),
            format!("/v1/oidc-issuers/{random_issuer}"),
        ),
        (
            "GET",
            format!("/v1/integrations/{integration_a}"),
            format!("/v1/integrations/{random_integration}"),
        ),
        (
            "PATCH",
            format!("/v1/integrations/{integration_a}"),
            format!("/v1/integrations/{random_integration}"),
        ),
        (
            "DELETE",
            format!("/v1/integrations/{integration_a}"),
            format!("/v1/integrations/{random_integration}"),
        ),
        (
            "GET",
            format!("/v1/connections/{connection_a}"),
            format!("/v1/connections/{random_connection}"),
        ),
        (
            "PATCH",
            format!("/v1/connections/{connection_a}"),
            format!("/v1/connections/{random_connection}"),
        ),
        (
            "POST",
            format!("/v1/connections/{connection_a}/test"),
            format!("/v1/connections/{random_connection}/test"),
        ),
        (
            "DELETE",
            format!("/v1/connections/{connection_a}"),
            format!("/v1/connections/{random_connection}"),
        ),
        (
            "GET",
            format!("/v1/syncs/{sync_a}"),
            format!("/v1/syncs/{random_sync}"),
        ),
        (
            "PATCH",
            format!("/v1/syncs/{sync_a}"),
            format!("/v1/syncs/{random_sync}"),
        ),
        (
            "DELETE",
            format!("/v1/syncs/{sync_a}"),
            format!("/v1/syncs/{random_sync}"),
        ),
        (
            "GET",
            format!("/v1/syncs/{sync_a}/runs"),
            format!("/v1/syncs/{random_sync}/runs"),
        ),
        (
            "POST",
            format!("/v1/syncs/{sync_a}/runs"),
            format!("/v1/syncs/{random_sync}/runs"),
        ),
        (
            "GET",
            format!("/v1/syncs/{sync_a}/runs/{run_a}"),
            format!("/v1/syncs/{random_sync}/runs/{random_run}"),
        ),
        (
            "POST",
            format!("/v1/syncs/{sync_a}/runs/{run_a}/cancel"),
            format!("/v1/syncs/{random_sync}/runs/{random_run}/cancel"),
        ),
        (
            "GET",
            format!("/v1/records?connection_id={connection_a}&model=customers"),
            format!("/v1/records?connection_id={random_connection}&model=customers"),
        ),
        (
            "POST",
            format!("/v1/connections/{connection_a}/actions/create_customer"),
            format!("/v1/connections/{random_connection}/actions/create_customer"),
        ),
        (
            "GET",
            format!("/v1/action-runs/{action_run_a}"),
            format!("/v1/action-runs/{random_action_run}"),
        ),
        (
            "GET",
            format!("/v1/webhook-endpoints/{endpoint_a}"),
            format!("/v1/webhook-endpoints/{random_endpoint}"),
        ),
        (
            "PATCH",
            format!("/v1/webhook-endpoints/{endpoint_a}"),
            format!("/v1/webhook-endpoints/{random_endpoint}"),
        ),
        (
            "POST",
            format!("/v1/webhook-endpoints/{endpoint_a}/rotate-secret"),
            format!("/v1/webhook-endpoints/{random_endpoint}/rotate-secret"),
        ),
        (
            "GET",
            format!("/v1/webhook-messages/{message_a}"),
            format!("/v1/webhook-messages/{random_message}"),
        ),
        (
            "GET",
            format!("/v1/webhook-messages/{message_a}/attempts"),
            format!("/v1/webhook-messages/{random_message}/attempts"),
        ),
        (
            "POST",
            format!("/v1/webhook-messages/{message_a}/replay"),
            format!("/v1/webhook-messages/{random_message}/replay"),
        ),
        (
            "DELETE",
            format!("/v1/webhook-endpoints/{endpoint_a}"),
            format!("/v1/webhook-endpoints/{random_endpoint}"),
        ),
        (
            "GET",
            format!("/v1/proxy/balance#{connection_a}"),
            format!("/v1/proxy/balance#{random_connection}"),
        ),
        (
            "GET",
            format!("/v1/operations/{operation_a}"),
            format!("/v1/operations/{random_operation}"),
        ),
        (
            "GET",
            format!("/v1/records/customers/{SEEDED_RECORD}?connection_id={connection_a}"),
            format!("/v1/records/customers/{SEEDED_RECORD}?connection_id={random_connection}"),
        ),
    ] {
        let request = |path: &str| {
            // A proxied request names its connection in a header (after `#` here).
            if let Some((path, connection)) = path.split_once('#') {
                return as_tenant(Req::new(method, path), &b).header("connection-id", connection);
            }
            let req = as_tenant(Req::new(method, path), &b);
            if method == "PATCH" && path.contains("/connections/") {
                req.json(json!({"tags": {"plan": "pro"}}))
            } else if method == "PATCH" && path.contains("/webhook-endpoints/") {
                req.json(json!({"enabled": false}))
            } else if method == "PATCH" && path.contains("/syncs/") {
                req.json(json!({"status": "paused"}))
            } else if method == "PATCH" {
                req.json(json!({"enabled": false}))
            } else if method == "POST" && path.ends_with("/runs") {
                req.json(json!({"reset_checkpoint": true}))
            } else if path.contains("/actions/") {
                req.json(json!({"email": "ada@example.com"}))
            } else {
                req
            }
        };
        let leaked = call(&d, request(&foreign)).await;
        let missing = call(&d, request(&random)).await;
        is_problem(&leaked, 404, "not_found");
        assert_eq!(
            normalized(leaked.body.clone(), &foreign),
            normalized(missing.body, &random),
            "{method} {foreign}"
        );
        assert!(!leaked.body.to_string().contains(a.as_str()));
    }

    // Lists (query) show only the caller's own objects.
    for path in [
        "/v1/keys",
        "/v1/oidc-issuers",
        "/v1/audit-events",
        "/v1/integrations",
        "/v1/connections",
        "/v1/syncs",
        "/v1/operations",
        &format!("/v1/operations?connection_id={connection_a}"),
    ] {
        let res = call(&d, as_tenant(Req::new("GET", path), &b)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body["data"], json!([]), "{path}");
    }
    // Usage and insights are the caller's own: A's connections made provider requests, B's none.
    let res = call(
        &d,
        as_tenant(Req::new("GET", "/v1/usage?group_by=integration"), &a),
    )
    .await;
    assert!(res.body["totals"]["provider_requests"].as_u64().unwrap() > 0);
    let res = call(
        &d,
        as_tenant(Req::new("GET", "/v1/usage?group_by=integration"), &b),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["totals"]["provider_requests"], 0);
    assert!(!res.body.to_string().contains(&integration_a));
    let res = call(&d, as_tenant(Req::new("GET", "/v1/insights"), &b)).await;
    assert_eq!(res.body["failing_syncs"], json!([]));
    // B's dashboard cannot show A's operation.
    let cookie = crate::tests::dashboard::open_session(&d, &b).await;
    let res = call(
        &d,
        Req::new("GET", &format!("/dashboard?operation={operation_a}")).cookie(&cookie),
    )
    .await;
    assert_eq!(res.status, 404);
    assert!(!res.body.to_string().contains(a.as_str()));
    // A body cannot redirect a write to another tenant: unknown fields are refused.
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &b)
            .json(json!({"name": "k", "scopes": ["keys:read"], "tenant_id": a.as_str()})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    // A cursor only positions within the caller's list.
    let cursor = crate::pagination::encode_cursor(&format!("APIKEY#{key_a}"));
    let res = call(
        &d,
        as_tenant(Req::new("GET", &format!("/v1/keys?cursor={cursor}")), &b),
    )
    .await;
    assert_eq!(res.body["data"], json!([]));
    // A's objects are untouched.
    let res = call(
        &d,
        as_tenant(Req::new("GET", &format!("/v1/keys/{key_a}")), &a),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["revoked_at"], Value::Null);
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/integrations/{integration_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["enabled"], true);
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/connections/{connection_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["tags"], json!({}));
    // A's sync, run and records too: nothing B sent reached them.
    let res = call(
        &d,
        as_tenant(Req::new("GET", &format!("/v1/syncs/{sync_a}")), &a),
    )
    .await;
    assert_eq!(res.body["status"], "active");
    assert_eq!(res.body["active_run_id"], run_a.as_str());
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/syncs/{sync_a}/runs/{run_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(res.body["state"], "queued");
    assert_eq!(res.body["cancel_requested"], false);
    assert_eq!(
        d.jobs.sent().len(),
        2,
        "A's sync run and action run, nothing for B"
    );
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/action-runs/{action_run_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(
        res.body["state"], "queued",
        "B's tries left A's action run as it was"
    );
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/webhook-endpoints/{endpoint_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(
        res.body["enabled"], true,
        "B could not disable or delete A's endpoint"
    );
    assert!(
        res.body["previous_secret_expires_at"].is_null(),
        "nor rotate its secret"
    );
    let res = call(
        &d,
        as_tenant(
            Req::new("GET", &format!("/v1/webhook-messages/{message_a}")),
            &a,
        ),
    )
    .await;
    assert_eq!(res.body["state"], "exhausted", "nor replay A's message");
    let res = call(
        &d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records?connection_id={connection_a}&model=customers"),
            ),
            &a,
        ),
    )
    .await;
    assert_eq!(res.body["records"][0]["id"], SEEDED_RECORD);
    // A body cannot make a sync of another tenant's connection: refused as an unknown one is.
    let sync_body = |connection: &str| {
        as_tenant(Req::new("POST", "/v1/syncs"), &b).json(json!({
            "connection_id": connection, "stream": "customers", "model": "mine",
            "frequency": {"every_seconds": 3600}
        }))
    };
    let foreign = call(&d, sync_body(&connection_a)).await;
    let unknown = call(&d, sync_body(&random_connection)).await;
    is_problem(&foreign, 400, "validation_failed");
    assert_eq!(foreign.body["errors"][0]["pointer"], "/connection_id");
    assert_eq!(foreign.body["errors"], unknown.body["errors"]);
    // A body cannot make a connection through another tenant's integration: it is refused as an
    // unknown one is.
    let foreign = call(
        &d,
        as_tenant(Req::new("POST", "/v1/connections"), &b).json(json!({
            "integration_id": integration_a, "end_user_id": "u", "credentials": {"api_key": crate::testing::GOOD_KEY}
        })),
    )
    .await;
    let unknown = call(
        &d,
        as_tenant(Req::new("POST", "/v1/connections"), &b).json(json!({
            "integration_id": random_integration, "end_user_id": "u", "credentials": {"api_key": crate::testing::GOOD_KEY}
        })),
    )
    .await;
    is_problem(&foreign, 400, "validation_failed");
    assert_eq!(foreign.body["errors"], unknown.body["errors"]);
    // Nor can a connect session of B reconnect A's connection.
    let own = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &b)
            .json(json!({"provider": "stripe", "return_urls": ["https://app.example.com/done"]})),
    )
    .await;
    let session = |connection: &str| {
        as_tenant(Req::new("POST", "/v1/connect/sessions"), &b).json(json!({
            "end_user_id": "user-1", "integration_ids": [own.body["id"]],
            "return_url": "https://app.example.com/done", "connection_id": connection
        }))
    };
    let foreign = call(&d, session(&connection_a)).await;
    let unknown = call(&d, session(&random_connection)).await;
    is_problem(&foreign, 400, "validation_failed");
    assert_eq!(foreign.body["errors"][0]["pointer"], "/connection_id");
    assert_eq!(foreign.body["errors"], unknown.body["errors"]);
}

#[tokio::test]
async fn key_secret_is_shown_once_and_creation_and_revocation_are_audited() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let created = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .json(json!({"name": "ci", "scopes": ["records:read", "keys:read"], "expires_at": "2099-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(
        created.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("trb_live_")
    );
    assert_eq!(
        created.headers["location"],
        format!("/v1/keys/{id}").as_str()
    );
    assert_eq!(created.body["scopes"], json!(["records:read", "keys:read"]));

    let listed = call(&d, as_tenant(Req::new("GET", "/v1/keys"), &t)).await;
    assert_eq!(listed.body["data"][0]["id"], id.as_str());
    assert!(listed.body["data"][0].get("secret").is_none());
    assert!(!listed.body.to_string().contains("trb_live_"));

    let revoked = call(
        &d,
        as_tenant(Req::new("DELETE", &format!("/v1/keys/{id}")), &t),
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.body["revoked_at"].is_string());
    let again = call(
        &d,
        as_tenant(Req::new("DELETE", &format!("/v1/keys/{id}")), &t),
    )
    .await;
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);

    let events = call(&d, as_tenant(Req::new("GET", "/v1/audit-events"), &t)).await;
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["api_key.created", "api_key.revoked"]);
}

#[tokio::test]
async fn keys_cannot_grant_scopes_their_creator_lacks() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let res = call(
        &d,
        Req::new("POST", "/v1/keys")
            .auth("key_x", t.as_str(), "keys:write records:read")
            .json(json!({"name": "k", "scopes": ["records:read", "connections:write"]})),
    )
    .await;
    is_problem(&res, 403, "scope_escalation");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("`connections:write`")
    );
}

#[tokio::test]
async fn deployment_admin_gets_tenant_required_on_tenant_routes_and_manages_tenants() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    is_problem(
        &call(&d, admin(Req::new("GET", "/v1/keys"))).await,
        403,
        "tenant_required",
    );

    let created = call(
        &d,
        admin(Req::new("POST", "/v1/tenants"))
            .json(json!({"name": " Acme ", "rate_limit_per_minute": 50})),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["name"], "Acme");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let key = call(
        &d,
        admin(Req::new("POST", &format!("/v1/tenants/{id}/keys")))
            .json(json!({"name": "bootstrap", "scopes": ["keys:write", "keys:read"]})),
    )
    .await;
    assert_eq!(key.status, 201);
    assert_eq!(key.body["tenant_id"], id.as_str());

    let disabled = call(
        &d,
        admin(Req::new("PATCH", &format!("/v1/tenants/{id}"))).json(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(
        call(&d, admin(Req::new("DELETE", &format!("/v1/tenants/{id}"))))
            .await
            .status,
        204
    );
    is_problem(
        &call(&d, admin(Req::new("GET", &format!("/v1/tenants/{id}")))).await,
        404,
        "not_found",
    );
    let missing = TenantId::generate();
    is_problem(
        &call(
            &d,
            admin(Req::new("POST", &format!("/v1/tenants/{missing}/keys")))
                .json(json!({"name": "k", "scopes": ["proxy"]})),
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn idempotency_replays_refuses_other_bodies_and_reports_in_progress() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store.clone(), Ok(QueueDepth::default()));
    let body = json!({"name": "svc", "scopes": ["keys:read"]});
    let first = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .header("idempotency-key", "abc-1")
            .json(body.clone()),
    )
    .await;
    assert_eq!(first.status, 201);
    let replay = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .header("idempotency-key", "abc-1")
            .json(body.clone()),
    )
    .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["id"], first.body["id"]);
    // The secret is shown once: never stored for replays.
    assert!(replay.body.get("secret").is_none());

    let other = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .header("idempotency-key", "abc-1")
            .json(json!({"name": "other", "scopes": ["keys:read"]})),
    )
    .await;
    is_problem(&other, 422, "idempotency_key_reused");

    // A concurrent duplicate: the key is claimed but not completed.
    use tributary_core::ports::IdempotencyStore;
    store
        .begin(
            &format!("{t}#key_test"),
            "abc-2",
            "x",
            NOW,
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let busy = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &t)
            .header("idempotency-key", "abc-2")
            .json(json!({"issuer": "https://i.example.com/", "audience": "a", "allowed_scopes": ["keys:read"]})),
    )
    .await;
    // Same key, different fingerprint than "x": the fingerprint check comes first.
    is_problem(&busy, 422, "idempotency_key_reused");

    let tenant_a = call(
        &d,
        admin(Req::new("POST", "/v1/tenants"))
            .header("idempotency-key", "t-1")
            .json(json!({"name": "x"})),
    )
    .await;
    let tenant_b = call(
        &d,
        admin(Req::new("POST", "/v1/tenants"))
            .header("idempotency-key", "t-1")
            .json(json!({"name": "x"})),
    )
    .await;
    assert_eq!(tenant_a.body, tenant_b.body);

    is_problem(
        &call(
            &d,
            admin(Req::new("POST", "/v1/tenants"))
                .header("idempotency-key", "bad key with spaces")
                .json(json!({"name": "x"})),
        )
        .await,
        400,
        "validation_failed",
    );
}

#[tokio::test]
async fn concurrent_duplicate_idempotent_request_is_409() {
    use sha2::{Digest, Sha256};
    use tributary_core::ports::IdempotencyStore;
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store.clone(), Ok(QueueDepth::default()));
    let body = json!({"name": "svc", "scopes": ["keys:read"]}).to_string();
    let mut h = Sha256::new();
    h.update(b"POST /v1/keys\n");
    h.update(body.as_bytes());
    let fingerprint = hex::encode(h.finalize());
    store
        .begin(
            &format!("{t}#key_test"),
            "dup",
            &fingerprint,
            NOW,
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .header("idempotency-key", "dup")
            .raw(&body, "application/json"),
    )
    .await;
    is_problem(&res, 409, "idempotency_in_progress");
}

#[tokio::test]
async fn pagination_is_bounded_and_walks_every_item_once() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let mut ids = Vec::new();
    for i in 0..5 {
        let res = call(
            &d,
            as_tenant(Req::new("POST", "/v1/keys"), &t)
                .json(json!({"name": format!("k{i}"), "scopes": ["keys:read"]})),
        )
        .await;
        ids.push(res.body["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut path = "/v1/keys?limit=2".to_owned();
    loop {
        let res = call(&d, as_tenant(Req::new("GET", &path), &t)).await;
        assert_eq!(res.status, 200);
        let data = res.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        match res.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/keys?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=%%%",
        "cursor=dGVzdA",
        "sort=desc",
    ] {
        let res = call(
            &d,
            as_tenant(Req::new("GET", &format!("/v1/keys?{bad}")), &t),
        )
        .await;
        is_problem(&res, 400, "validation_failed");
    }
    let res = call(&d, as_tenant(Req::new("GET", "/v1/keys?limit=100"), &t)).await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn bad_bodies_get_pointed_problems_and_never_reach_the_store() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let post = || as_tenant(Req::new("POST", "/v1/keys"), &t);
    let cases = [
        (post().json(json!({"name": "k", "scopes": ["keys:read"], "extra": 1})), 400, "validation_failed"),
        (post().json(json!({"name": "k", "scopes": ["nope"]})), 400, "validation_failed"),
        (post().json(json!({"name": "", "scopes": ["keys:read"]})), 400, "validation_failed"),
        (post().json(json!({"name": "k", "scopes": []})), 400, "validation_failed"),
        (post().json(json!({"name": "k", "scopes": ["keys:read"], "expires_at": "2001-01-01T00:00:00Z"})), 400, "validation_failed"),
        (post().json(json!({"name": "k", "scopes": ["keys:read"], "expires_at": "tomorrow"})), 400, "validation_failed"),
        (post().raw("{not json", "application/json"), 400, "validation_failed"),
        (post().raw("name=k", "application/x-www-form-urlencoded"), 415, "unsupported_media_type"),
        (post().raw(&format!("{{\"name\":\"{}\"}}", "a".repeat(70_000)), "application/json"), 413, "payload_too_large"),
        (as_tenant(Req::new("GET", "/v1/keys/not-an-id"), &t), 400, "validation_failed"),
        (as_tenant(Req::new("POST", "/v1/oidc-issuers"), &t).json(json!({"issuer": "http://idp.example.com/", "audience": "a"})), 400, "validation_failed"),
        (as_tenant(Req::new("POST", "/v1/oidc-issuers"), &t).json(json!({"issuer": "https://idp.example.com/", "audience": "a", "scopes_claim": "a b"})), 400, "validation_failed"),
    ];
    for (req, status, code) in cases {
        is_problem(&call(&d, req).await, status, code);
    }
    let res = call(
        &d,
        post().json(json!({"name": "k", "scopes": ["keys:read"], "extra": 1})),
    )
    .await;
    assert_eq!(res.body["errors"][0]["pointer"], "/extra");
    let listed = call(&d, as_tenant(Req::new("GET", "/v1/keys"), &t)).await;
    assert_eq!(listed.body["data"], json!([]));
}

#[tokio::test]
async fn tenants_past_their_rate_limit_get_429_with_retry_after() {
    let store = MemStore::default();
    let t = tenant(&store, 3);
    let d = deps(store, Ok(QueueDepth::default()));
    for _ in 0..3 {
        assert_eq!(
            call(&d, as_tenant(Req::new("GET", "/v1/me"), &t))
                .await
                .status,
            200
        );
    }
    let res = call(&d, as_tenant(Req::new("GET", "/v1/me"), &t)).await;
    is_problem(&res, 429, "rate_limited");
    // NOW is 30 s into its minute.
    assert_eq!(res.headers["retry-after"], "30");
    assert_eq!(res.body["retry_after"], 30);
    // Another tenant has its own budget.
    let other = tenant(&d.store, 3);
    assert_eq!(
        call(&d, as_tenant(Req::new("GET", "/v1/me"), &other))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_issuer_and_audience_pair_belongs_to_one_tenant() {
    let store = MemStore::default();
    let a = tenant(&store, 100_000);
    let b = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let body = json!({"issuer": "https://idp.example.com/", "audience": "tributary", "allowed_scopes": ["keys:read"]});
    let first = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &a).json(body.clone()),
    )
    .await;
    assert_eq!(first.status, 201);
    let second = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &b).json(body),
    )
    .await;
    is_problem(&second, 409, "conflict");
    let other_audience = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &b)
            .json(json!({"issuer": "https://idp.example.com/", "audience": "tributary-b", "allowed_scopes": ["keys:read"]})),
    )
    .await;
    assert_eq!(other_audience.status, 201);
}

/// Every operation of [`operations`] plus the public ones, for matrices that need them all.
const EVERY_TENANT_PATH_OP: [(&str, &str); 9] = [
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys/{key}"),
    ("DELETE", "/v1/keys/{key}"),
    ("GET", "/v1/oidc-issuers"),
    ("POST", "/v1/oidc-issuers"),
    ("GET", "/v1/oidc-issuers/{issuer}"),
    ("DELETE", "/v1/oidc-issuers/{issuer}"),
    ("GET", "/v1/audit-events"),
];

#[tokio::test]
async fn a_tenant_key_can_never_hold_or_act_as_admin() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    // The deployment admin cannot mint an admin key for a tenant: 400 naming the scope.
    let res = call(
        &d,
        admin(Req::new("POST", &format!("/v1/tenants/{t}/keys")))
            .json(json!({"name": "k", "scopes": ["admin"]})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    assert!(res.body["detail"].as_str().unwrap().contains("`admin`"));
    assert_eq!(res.body["errors"][0]["pointer"], "/scopes");
    // Nor can a tenant credential, whatever it holds.
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/keys"), &t)
            .json(json!({"name": "k", "scopes": ["keys:read", "admin"]})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    // A tenant credential whose stored record says `admin` (defence in depth) is not the admin.
    let forged = |m: &str, p: &str| Req::new(m, p).auth("key_old", t.as_str(), "admin keys:write");
    for (method, path) in [
        ("GET", "/v1/tenants".to_owned()),
        ("GET", format!("/v1/tenants/{t}")),
        ("DELETE", format!("/v1/tenants/{t}")),
        ("POST", format!("/v1/tenants/{t}/keys")),
    ] {
        let mut req = forged(method, &path);
        if method == "POST" {
            req = req.json(json!({"name": "k", "scopes": ["proxy"]}));
        }
        is_problem(&call(&d, req).await, 403, "missing_scope");
    }
    // …and cannot pass its `admin` on: granting it is refused like any scope it lacks.
    let res = call(
        &d,
        forged("POST", "/v1/keys").json(json!({"name": "k", "scopes": ["connections:read"]})),
    )
    .await;
    is_problem(&res, 403, "scope_escalation");
}

#[tokio::test]
async fn registering_an_issuer_grants_no_more_than_the_registrant_holds() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let register = |scopes: Value| {
        Req::new("POST", "/v1/oidc-issuers")
            .auth("key_w", t.as_str(), "keys:write records:read")
            .json(json!({"issuer": "https://idp.example.com/", "audience": "x", "allowed_scopes": scopes}))
    };
    let res = call(&d, register(json!(["records:read", "connections:write"]))).await;
    is_problem(&res, 403, "scope_escalation");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("`connections:write`")
    );
    is_problem(
        &call(&d, register(json!(["admin"]))).await,
        400,
        "validation_failed",
    );
    is_problem(
        &call(&d, register(json!([]))).await,
        400,
        "validation_failed",
    );
    let missing = Req::new("POST", "/v1/oidc-issuers")
        .auth("key_w", t.as_str(), "keys:write")
        .json(json!({"issuer": "https://idp.example.com/", "audience": "x"}));
    is_problem(&call(&d, missing).await, 400, "validation_failed");
    let res = call(&d, register(json!(["records:read"]))).await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    assert_eq!(res.body["allowed_scopes"], json!(["records:read"]));
    assert_eq!(res.body["created_by"], "key_w");
}

#[tokio::test]
async fn a_tenant_holds_at_most_the_configured_number_of_issuers() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = crate::testing::deps_with(
        store,
        Ok(QueueDepth::default()),
        crate::config::Config {
            max_issuers_per_tenant: 2,
            ..crate::testing::config()
        },
    );
    let register = |aud: &str| {
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &t).json(
            json!({"issuer": "https://idp.example.com/", "audience": aud, "allowed_scopes": ["keys:read"]}),
        )
    };
    assert_eq!(call(&d, register("a")).await.status, 201);
    assert_eq!(call(&d, register("b")).await.status, 201);
    let res = call(&d, register("c")).await;
    is_problem(&res, 409, "conflict");
    assert!(res.body["detail"].as_str().unwrap().contains("at most 2"));
}

#[tokio::test]
async fn a_created_key_or_issuer_never_outlives_its_creator() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let creator_expiry = NOW + 3_600_000;
    let by_expiring = |path: &str, body: Value| {
        let mut req = Req::new("POST", path).auth("jwt:ci", t.as_str(), ALL);
        req = req.json(body);
        req.with_expiry(creator_expiry)
    };
    let later = tributary_core::time::rfc3339(creator_expiry + 1000).unwrap();
    let sooner = tributary_core::time::rfc3339(creator_expiry - 1000).unwrap();
    for (path, base) in [
        ("/v1/keys", json!({"name": "k", "scopes": ["keys:read"]})),
        (
            "/v1/oidc-issuers",
            json!({"issuer": "https://idp.example.com/", "audience": "x", "allowed_scopes": ["keys:read"]}),
        ),
    ] {
        // Without an expiry, and with one past the creator's: 400 that says why.
        for expires in [None, Some(later.clone())] {
            let mut body = base.clone();
            if let Some(e) = &expires {
                body["expires_at"] = json!(e);
            }
            let res = call(&d, by_expiring(path, body)).await;
            is_problem(&res, 400, "validation_failed");
            assert!(
                res.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("never outlives"),
                "{path}: {:?}",
                res.body
            );
            assert_eq!(res.body["errors"][0]["pointer"], "/expires_at");
        }
        let mut body = base.clone();
        body["expires_at"] = json!(sooner);
        let res = call(&d, by_expiring(path, body)).await;
        assert_eq!(res.status, 201, "{path}: {:?}", res.body);
        assert_eq!(res.body["expires_at"], json!(sooner));
    }
}

#[tokio::test]
async fn a_credential_past_its_expiry_is_refused_even_when_the_gateway_cached_it() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let at = |expiry: i64| as_tenant(Req::new("GET", "/v1/me"), &t).with_expiry(expiry);
    assert_eq!(call(&d, at(NOW + 1)).await.status, 200);
    is_problem(&call(&d, at(NOW)).await, 401, "unauthenticated");
    is_problem(&call(&d, at(NOW - 60_000)).await, 401, "unauthenticated");
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_principal_and_scope_refusals_are_not_replayed() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let body = json!({"name": "svc", "scopes": ["keys:read"]});
    let post = |principal: &str, scopes: &str| {
        Req::new("POST", "/v1/keys")
            .auth(principal, t.as_str(), scopes)
            .header("idempotency-key", "same")
            .json(body.clone())
    };
    let a = call(&d, post("key_a", "keys:read keys:write")).await;
    assert_eq!(a.status, 201);
    // Another principal of the same tenant with the same key and body: its own request.
    let b = call(&d, post("key_b", "keys:read keys:write")).await;
    assert_eq!(b.status, 201, "{:?}", b.body);
    assert!(b.headers.get("idempotent-replayed").is_none());
    assert_ne!(b.body["id"], a.body["id"]);
    assert!(b.body["secret"].is_string());
    // A refusal that depended on the caller's scopes is not stored: once the principal holds the
    // scope, the same key goes through.
    let refused = call(&d, post("jwt:u", "keys:write")).await;
    is_problem(&refused, 403, "scope_escalation");
    let later = call(&d, post("jwt:u", "keys:write keys:read")).await;
    assert_eq!(later.status, 201, "{:?}", later.body);
}

#[tokio::test]
async fn a_cursor_from_another_list_is_a_400_not_a_500() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    for (path, foreign) in [
        ("/v1/keys", "AUDIT#evt_x"),
        ("/v1/oidc-issuers", "APIKEY#key_x"),
        ("/v1/audit-events", "ISSUER#iss_x"),
    ] {
        let cursor = crate::pagination::encode_cursor(foreign);
        let res = call(
            &d,
            as_tenant(Req::new("GET", &format!("{path}?cursor={cursor}")), &t),
        )
        .await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], "query.cursor", "{path}");
    }
    let cursor = crate::pagination::encode_cursor("APIKEY#key_x");
    let res = call(
        &d,
        admin(Req::new("GET", &format!("/v1/tenants?cursor={cursor}"))),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
}

#[tokio::test]
async fn deleting_a_tenant_removes_what_it_owns_keeps_its_audit_and_resumes() {
    use tributary_core::ports::TenantStore;
    // One item a purge step, so that the interrupted deletion below stops half way.
    let store = MemStore::default().with_purge_batch(1);
    let t = tenant(&store, 100_000);
    let other = tenant(&store, 100_000);
    let d = deps(store.clone(), Ok(QueueDepth::default()));
    seed_key_and_issuer(&d, &t).await;
    let extra = as_tenant(Req::new("POST", "/v1/keys"), &t)
        .json(json!({"name": "k2", "scopes": ["proxy"]}));
    assert_eq!(call(&d, extra).await.status, 201);
    let own = as_tenant(Req::new("POST", "/v1/keys"), &other)
        .json(json!({"name": "o", "scopes": ["proxy"]}));
    assert_eq!(call(&d, own).await.status, 201);
    let owned_by_other = store.owned_by(&other);
    let pair = json!({"issuer": "https://idp.example.com/", "audience": "tributary", "allowed_scopes": ["keys:read"]});
    let taken = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &other).json(pair.clone()),
    )
    .await;
    is_problem(&taken, 409, "conflict");

    // An interrupted deletion: marked deleting, one step done, then the Lambda died.
    let mut marked = store.get_tenant(&t).await.unwrap().unwrap();
    marked.status = tributary_core::tenancy::TenantStatus::Deleting;
    marked.version += 1;
    assert!(store.update_tenant(&marked, 0).await.unwrap());
    store.purge_tenant(&t, 1).await.unwrap();
    // It cannot be re-activated meanwhile.
    let res = call(
        &d,
        admin(Req::new("PATCH", &format!("/v1/tenants/{t}"))).json(json!({"status": "active"})),
    )
    .await;
    is_problem(&res, 409, "conflict");
    let res = call(&d, admin(Req::new("GET", &format!("/v1/tenants/{t}")))).await;
    assert_eq!(res.body["status"], "deleting");

    // DELETE again resumes and finishes.
    let res = call(&d, admin(Req::new("DELETE", &format!("/v1/tenants/{t}")))).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    assert_eq!(store.owned_by(&t), 0);
    assert!(store.kept_audit_of(&t) > 0);
    let res = call(&d, admin(Req::new("GET", &format!("/v1/tenants/{t}")))).await;
    is_problem(&res, 404, "not_found");
    // The other tenant is untouched, and the deleted tenant's (issuer, audience) pair is free again.
    assert_eq!(store.owned_by(&other), owned_by_other);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/oidc-issuers"), &other).json(pair),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
}

#[tokio::test]
async fn a_connection_read_by_a_sync_is_not_deleted_until_the_sync_is() {
    use tributary_core::ports::SyncStore;
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (_provider, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store.clone(), Ok(QueueDepth::default()), settings);
    let (_, _, seeded) = seed(&d, &t).await;
    let path = format!("/v1/connections/{}", seeded.connection);
    let res = call(&d, as_tenant(Req::new("DELETE", &path), &t)).await;
    is_problem(&res, 409, "conflict");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("/v1/syncs?connection_id=")
    );
    // Once the sync is gone (its purge done), the connection goes.
    let sync: tributary_core::ids::SyncId = seeded.sync.parse().unwrap();
    let audit = tributary_core::tenancy::AuditEvent::new(&t, "test", 1, "sync.deleted", &sync);
    assert!(store.delete_sync(&t, &sync, &audit).await.unwrap());
    let res = call(&d, as_tenant(Req::new("DELETE", &path), &t)).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_syncs_and_their_records() {
    use tributary_core::ports::SyncStore;
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (_provider, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store.clone(), Ok(QueueDepth::default()), settings);
    let (_, _, seeded) = seed(&d, &t).await;
    let feed = tributary_core::records::FeedKey {
        tenant_id: t.clone(),
        connection_id: seeded.connection.parse().unwrap(),
        model: "customers".into(),
    };
    assert_eq!(store.stored_records(&feed).len(), 1);

    let res = call(&d, admin(Req::new("DELETE", &format!("/v1/tenants/{t}")))).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    assert!(
        store.stored_records(&feed).is_empty(),
        "records left behind"
    );
    assert!(store.feed_pages(&feed).is_empty(), "feed pages left behind");
    let sync: tributary_core::ids::SyncId = seeded.sync.parse().unwrap();
    assert!(store.get_sync(&t, &sync).await.unwrap().is_none());
}

#[tokio::test]
async fn every_route_answers_an_opaque_problem_when_the_store_fails() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (_provider, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store.clone(), Ok(QueueDepth::default()), settings);
    let (key, issuer, seeded) = seed(&d, &t).await;
    // Warm the tenant's rate-limit lease so that the failing call is the route's own.
    assert_eq!(
        call(&d, as_tenant(Req::new("GET", "/v1/me"), &t))
            .await
            .status,
        200
    );
    store.fail(true);
    let mut checked = 0;
    for (method, path, body, scope) in operations(&t, &key, &issuer, &seeded) {
        let mut req = if scope == "admin" {
            admin(Req::new(method, &path))
        } else {
            with_connection(as_tenant(Req::new(method, &path), &t), &path, &seeded)
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = call(&d, req).await;
        assert!(
            res.status >= 500,
            "{method} {path}: {} {:?}",
            res.status,
            res.body
        );
        assert_eq!(res.headers["content-type"], "application/problem+json");
        assert!(
            ["internal_error", "service_unavailable"].contains(&res.body["code"].as_str().unwrap()),
            "{method} {path}: {:?}",
            res.body
        );
        let text = res.body.to_string();
        assert!(
            !text.contains("secret-internal-detail") && !text.contains("arn:"),
            "{text}"
        );
        checked += 1;
    }
    assert_eq!(checked, operations(&t, &key, &issuer, &seeded).len());
    assert!(EVERY_TENANT_PATH_OP.len() <= checked);
}

/// A concrete path for a documented one: a well-formed (unknown) id for each parameter.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{tenant_id}" => TenantId::generate().to_string(),
            "{key_id}" => tributary_core::ids::ApiKeyId::generate().to_string(),
            "{issuer_id}" => tributary_core::ids::IssuerId::generate().to_string(),
            "{integration_id}" => tributary_core::ids::IntegrationId::generate().to_string(),
            "{connection_id}" => tributary_core::ids::ConnectionId::generate().to_string(),
            "{sync_id}" => tributary_core::ids::SyncId::generate().to_string(),
            "{run_id}" => tributary_core::ids::SyncRunId::generate().to_string(),
            "{action_run_id}" => tributary_core::ids::ActionRunId::generate().to_string(),
            "{endpoint_id}" => tributary_core::ids::EndpointId::generate().to_string(),
            "{message_id}" => tributary_core::ids::MessageId::generate().to_string(),
            "{operation_id}" => tributary_core::ids::OperationId::generate().to_string(),
            "{action}" => "create_customer".to_owned(),
            "{proxy_path}" => "balance".to_owned(),
            "{model}" => "customers".to_owned(),
            "{record_id}" => "cus_1".to_owned(),
            "{token}" => tributary_core::connect::new_token("cst_"),
            s if s.starts_with('{') => panic!("no example id for the path parameter {s}"),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every operation the router serves (its OpenAPI document lists what `operations!` registered, and
/// nothing else can register one) declares who may call it, documents exactly that rule as its
/// `security`, and enforces it: probed through the router, a request without what the rule demands is
/// refused as the rule says and one with it is let through. `Idempotency-Key` is honoured exactly
/// where it is documented, and every authenticated operation spends the tenant's rate limit.
#[tokio::test]
async fn every_operation_declares_documents_and_enforces_its_access() {
    use crate::access::Access;
    use crate::testing::FakeQueue;
    use tributary_core::scope::Scope;
    let declared = crate::routes::api::<MemStore, FakeQueue>()
        .into_documentation()
        .declarations();
    let doc: Value =
        serde_json::from_str(&crate::router::document::<MemStore, FakeQueue>()).unwrap();
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let refused = |res: &crate::testing::Res| [401, 403].contains(&res.status);

    let mut walked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let what = format!("{method} {path}");
            let rules: Vec<_> = declared
                .iter()
                .filter(|r| r.path == *path && r.method.as_str() == method)
                .collect();
            let [rule] = rules[..] else {
                panic!("{what}: {} access rules declared, not one", rules.len());
            };
            let access = rule.access;
            assert!(
                !rule.security_by_hand,
                "{what}: `security` is declared by the handler's first argument, not in #[utoipa::path]"
            );
            walked.push((what.clone(), access));
            assert_eq!(
                op["security"],
                serde_json::to_value(access.security()).unwrap(),
                "{what}: the documented security is not the enforced rule {access:?}"
            );
            let at = concrete(path);
            let req = || Req::new(&method, &at);

            // Exactly what the rule demands.
            let holding = || match access {
                Access::Public => req(),
                Access::Authenticated => req().auth("key_none", t.as_str(), ""),
                Access::Scope(Scope::Admin) => admin(req()),
                Access::Scope(scope) | Access::TenantScope(scope) => {
                    req().auth("key_x", t.as_str(), scope.as_str())
                }
            };

            // Without a credential.
            let res = call(&d, req()).await;
            match access {
                // The dashboard is public to the gateway and guarded by its own session cookie:
                // without one, its 401 is a page, not the access rule's problem.
                Access::Public if what == "GET /dashboard" => {
                    assert_eq!(res.status, 401, "{what}: {res:?}");
                    assert!(
                        res.headers["content-type"]
                            .to_str()
                            .unwrap()
                            .starts_with("text/html")
                    );
                }
                Access::Public => assert!(!refused(&res), "{what}: {res:?}"),
                _ => is_problem(&res, 401, "unauthenticated"),
            }
            // Without the scope (a tenant holding every other one); for a tenant's operation, as
            // the deployment admin (who holds every scope but has no tenant).
            if let Access::Scope(scope) | Access::TenantScope(scope) = access {
                let others: Vec<&str> = ALL.split(' ').filter(|s| *s != scope.as_str()).collect();
                let res = call(&d, req().auth("key_x", t.as_str(), &others.join(" "))).await;
                is_problem(&res, 403, "missing_scope");
                let detail = res.body["detail"].as_str().unwrap();
                assert!(
                    detail.contains(&format!("`{}`", scope.as_str())),
                    "{what}: {detail}"
                );
            }
            if let Access::TenantScope(_) = access {
                is_problem(&call(&d, admin(req())).await, 403, "tenant_required");
            }
            // With it: past the rule (the handler may still refuse the empty body or unknown id).
            let res = call(&d, holding()).await;
            assert!(
                !refused(&res) || what == "GET /dashboard",
                "{what} must pass its access rule: {res:?}"
            );

            // Idempotency-Key: checked exactly where it is documented.
            let documents_key = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
            let res = call(&d, holding().header("idempotency-key", "not a key")).await;
            let checked = res.body["errors"][0]["pointer"] == "header.Idempotency-Key";
            assert_eq!(
                checked, documents_key,
                "{what}: Idempotency-Key documented {documents_key}, honoured {checked}"
            );

            // The rate limit: a tenant allowed one request a minute gets a 429 for the second,
            // before any scope check.
            let documents_429 = op["responses"].get("429").is_some();
            if access == Access::Public {
                assert!(
                    !documents_429,
                    "{what}: public operations are not rate limited"
                );
            } else {
                assert!(documents_429, "{what}: the rate limit is not documented");
                let limited = tenant(&d.store, 1);
                let once = || req().auth("key_slow", limited.as_str(), "");
                assert_ne!(call(&d, once()).await.status, 429, "{what}");
                is_problem(&call(&d, once()).await, 429, "rate_limited");
            }
        }
    }
    assert_eq!(
        walked.len(),
        declared.len(),
        "every declared operation is documented"
    );
    let public: Vec<&str> = walked
        .iter()
        .filter(|(_, access)| *access == Access::Public)
        .map(|(what, _)| what.as_str())
        .collect();
    assert_eq!(
        public,
        [
            "GET /connect/callback",
            "GET /connect/{token}",
            "POST /connect/{token}/{integration_id}",
            "GET /connect/{token}/{integration_id}/oauth",
            "GET /dashboard",
            "GET /dashboard/{token}",
            "GET /docs",
            "GET /docs/redoc-2.5.4.standalone.js",
            "GET /v1/health",
            "GET /v1/openapi.json",
            "POST /v1/webhooks/{integration_id}"
        ],
        "public operations are exactly these"
    );
}

#[tokio::test]
async fn head_is_not_served_and_405_lists_the_path_s_methods() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    let res = call(&d, Req::new("HEAD", "/v1/health")).await;
    is_problem(&res, 405, "method_not_allowed");
    assert_eq!(res.headers["allow"], "GET");
    assert!(res.body["detail"].as_str().unwrap().contains("`HEAD`"));
    is_problem(
        &call(&d, admin(Req::new("HEAD", "/v1/nope"))).await,
        404,
        "route_not_found",
    );
    let path = format!("/v1/tenants/{}", TenantId::generate());
    let res = call(&d, admin(Req::new("PUT", &path))).await;
    is_problem(&res, 405, "method_not_allowed");
    assert_eq!(res.headers["allow"], "GET, PATCH, DELETE");
    assert_eq!(res.body["instance"], path.as_str());
    assert_eq!(
        res.body["detail"],
        "`PUT` is not supported here; use one of: GET, PATCH, DELETE."
    );
    // A path that only differs by a trailing slash or an empty id is not a route.
    for path in ["/v1/keys/", "/v1/tenants//keys", "/v1/me/", "//v1/me", "/"] {
        for method in ["GET", "POST"] {
            let res = call(&d, admin(Req::new(method, path))).await;
            is_problem(&res, 404, "route_not_found");
            assert_eq!(res.body["instance"], path);
        }
    }
}

#[tokio::test]
async fn every_answer_is_no_store_unless_it_says_otherwise() {
    let d = deps(MemStore::default(), Ok(QueueDepth::default()));
    for (req, cache) in [
        (admin(Req::new("GET", "/v1/me")), "no-store"),
        (Req::new("GET", "/v1/me"), "no-store"),
        (Req::new("GET", "/v1/nope"), "no-store"),
        (Req::new("GET", "/v1/health"), "no-store"),
        (Req::new("GET", "/v1/openapi.json"), "public, max-age=300"),
        (Req::new("GET", "/docs"), "public, max-age=300"),
    ] {
        assert_eq!(call(&d, req).await.headers["cache-control"], cache);
    }
}
