//! Actions through the API against a local Stripe: validation before anything is sent, the
//! output, provider failures as problems by class, `Idempotency-Key` writing once (here and at
//! Stripe), and the asynchronous mode's queued run.

use serde_json::{Value, json};
use tributary_core::ids::TenantId;
use tributary_core::job::JobKind;
use tributary_core::ports::QueueDepth;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{as_tenant, is_problem, tenant};
use crate::testing::{GOOD_KEY, MemStore, Req, Res, TestApi, call};

pub(super) struct Setup {
    pub d: TestApi,
    pub t: TenantId,
    pub server: MockServer,
    /// A Stripe connection made through the API (its key verified and sealed).
    pub connection: String,
}

pub(super) async fn setup() -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (server, settings) = crate::testing::stripe_mock().await;
    let d = crate::testing::deps_with(store, Ok(QueueDepth::default()), settings);
    let integration = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({"provider": "stripe"})),
    )
    .await;
    assert_eq!(integration.status, 201, "{:?}", integration.body);
    let connection = call(
        &d,
        as_tenant(Req::new("POST", "/v1/connections"), &t).json(json!({
            "integration_id": integration.body["id"], "end_user_id": "u1",
            "credentials": {"api_key": GOOD_KEY}
        })),
    )
    .await;
    assert_eq!(connection.status, 201, "{:?}", connection.body);
    Setup {
        connection: connection.body["id"].as_str().unwrap().to_owned(),
        d,
        t,
        server,
    }
}

impl Setup {
    fn action(&self, name: &str, input: Value) -> Req {
        as_tenant(
            Req::new(
                "POST",
                &format!("/v1/connections/{}/actions/{name}", self.connection),
            ),
            &self.t,
        )
        .json(input)
    }

    async fn sent(&self, to: &str) -> Vec<wiremock::Request> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == to)
            .collect()
    }

    async fn send(&self, req: Req) -> Res {
        call(&self.d, req).await
    }
}

#[tokio::test]
async fn an_action_returns_the_provider_s_output() {
    let s = setup().await;
    let res = s
        .send(s.action(
            "create_customer",
            json!({"email": "ada@example.com", "name": "Ada"}),
        ))
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["output"]["id"], "cus_NffrFeUfNV2Hib");
    assert_eq!(res.body["action"], "create_customer");
    assert_eq!(res.body["connection_id"], s.connection.as_str());
    let sent = s.sent("/v1/customers").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&sent[0].body),
        "email=ada%40example.com&name=Ada"
    );
    let key = sent[0].headers["idempotency-key"].to_str().unwrap();
    assert!(key.starts_with("tributary-"), "{key}");
}

#[tokio::test]
async fn invalid_input_is_refused_with_pointers_and_nothing_is_sent() {
    let s = setup().await;
    let res = s
        .send(s.action(
            "create_customer",
            json!({"email": 7, "metadata": {"plan": 1}, "extra": true}),
        ))
        .await;
    is_problem(&res, 400, "validation_failed");
    let pointers: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in ["/body/email", "/body/metadata/plan", "/body"] {
        assert!(pointers.contains(&expected), "{expected} in {pointers:?}");
    }
    // A missing required field points at the object that lacks it.
    let res = s.send(s.action("create_customer", json!({}))).await;
    is_problem(&res, 400, "validation_failed");
    assert!(
        res.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("email"),
        "{:?}",
        res.body
    );
    let res = s
        .send(s.action("create_refund", json!({"charge": "pi_123"})))
        .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/body/charge");
    assert!(s.sent("/v1/customers").await.is_empty());
    assert!(s.sent("/v1/refunds").await.is_empty());
}

#[tokio::test]
async fn unknown_actions_and_oversized_inputs_are_refused() {
    let s = setup().await;
    is_problem(
        &s.send(s.action("drop_database", json!({}))).await,
        404,
        "not_found",
    );
    is_problem(
        &s.send(s.action("Create-Customer", json!({}))).await,
        400,
        "validation_failed",
    );
    let big = "x".repeat(tributary_core::action::MAX_INPUT_BYTES);
    let res = s
        .send(s.action("create_customer", json!({"email": "a@b.co", "name": big})))
        .await;
    is_problem(&res, 413, "payload_too_large");
    assert!(s.sent("/v1/customers").await.is_empty());
}

#[tokio::test]
async fn a_retried_request_with_its_idempotency_key_writes_once() {
    let s = setup().await;
    let req = || {
        s.action("create_customer", json!({"email": "ada@example.com"}))
            .header("idempotency-key", "order-42")
    };
    let first = s.send(req()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = s.send(req()).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(
        s.sent("/v1/customers").await.len(),
        1,
        "Stripe written once"
    );

    // Another key is another write, with another key at Stripe; the same key from another
    // tenant's request would be scoped apart the same way.
    let other = s
        .send(
            s.action("create_customer", json!({"email": "ada@example.com"}))
                .header("idempotency-key", "order-43"),
        )
        .await;
    assert_eq!(other.status, 200);
    let sent = s.sent("/v1/customers").await;
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0].headers["idempotency-key"],
        sent[1].headers["idempotency-key"]
    );
}

#[tokio::test]
async fn the_key_sent_to_stripe_is_derived_from_the_caller_s_key() {
    // The API's replay is lost when the first answer never reached the store (its function
    // stopped): the retry is sent again, and Stripe deduplicates it by the same derived key.
    let s = setup().await;
    for _ in 0..2 {
        let res = s
            .send(
                s.action("create_customer", json!({"email": "ada@example.com"}))
                    .header("idempotency-key", "order-42"),
            )
            .await;
        assert_eq!(res.status, 200);
        s.d.store.forget_idempotency();
    }
    let sent = s.sent("/v1/customers").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].headers["idempotency-key"],
        sent[1].headers["idempotency-key"]
    );
}

async fn answering(s: &Setup, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(response)
        .with_priority(1)
        .mount(&s.server)
        .await;
}

#[tokio::test]
async fn provider_failures_are_problems_by_class() {
    let s = setup().await;
    answering(
        &s,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "Invalid email address: ada@", "type": "invalid_request_error"}
        })),
    )
    .await;
    let res = s
        .send(s.action("create_customer", json!({"email": "ada@example.com"})))
        .await;
    is_problem(&res, 422, "provider_rejected");
    let detail = res.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("HTTP 400") && detail.contains("Invalid email address"),
        "{detail}"
    );

    let s = setup().await;
    answering(
        &s,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "30")
            .set_body_json(json!({"error": {"message": "Too many requests"}})),
    )
    .await;
    let res = s
        .send(s.action("create_customer", json!({"email": "ada@example.com"})))
        .await;
    is_problem(&res, 429, "provider_rate_limited");
    assert_eq!(res.headers["retry-after"], "30");

    let s = setup().await;
    answering(
        &s,
        ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Expired API Key"}})),
    )
    .await;
    let res = s
        .send(s.action("create_customer", json!({"email": "ada@example.com"})))
        .await;
    is_problem(&res, 409, "needs_reauth");

    let s = setup().await;
    answering(&s, ResponseTemplate::new(503)).await;
    let res = s
        .send(s.action("create_customer", json!({"email": "ada@example.com"})))
        .await;
    is_problem(&res, 502, "provider_error");
    // Stripe deduplicates by the key: the engine's retry of the outage is safe and was made.
    let sent = s.sent("/v1/customers").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].headers["idempotency-key"],
        sent[1].headers["idempotency-key"]
    );
    // No problem carries the credential.
    assert!(!res.body.to_string().contains(GOOD_KEY));
}

#[tokio::test]
async fn a_connection_that_needs_its_user_is_not_used() {
    let s = setup().await;
    let id: tributary_core::ids::ConnectionId = s.connection.parse().unwrap();
    assert!(s.d.store.edit_connection(&id, |c| {
        c.status = tributary_core::connection::ConnectionStatus::NeedsReauth;
        c.status_reason = Some("Stripe refused the key".into());
    }));
    let res = s
        .send(s.action("create_customer", json!({"email": "ada@example.com"})))
        .await;
    is_problem(&res, 409, "needs_reauth");
    assert!(res.body["detail"].as_str().unwrap().contains(&s.connection));
    assert!(s.sent("/v1/customers").await.is_empty());
}

#[tokio::test]
async fn respond_async_queues_a_run_that_the_api_reports() {
    let s = setup().await;
    let req = || {
        s.action("create_customer", json!({"email": "ada@example.com"}))
            .header("prefer", "respond-async")
            .header("idempotency-key", "async-1")
    };
    let res = s.send(req()).await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.headers["preference-applied"], "respond-async");
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("arun_"));
    assert_eq!(
        res.headers["location"],
        format!("/v1/action-runs/{id}").as_str()
    );
    assert_eq!(res.body["state"], "queued");
    assert_eq!(res.body["attempts"], 0);
    // Nothing is sent to the provider here: the connector attempts it.
    assert!(s.sent("/v1/customers").await.is_empty());
    let jobs = s.d.jobs.sent();
    assert_eq!(jobs.len(), 1);
    match &jobs[0].kind {
        JobKind::ActionRun {
            tenant_id,
            action_run_id,
        } => {
            assert_eq!(tenant_id, &s.t);
            assert_eq!(action_run_id.as_str(), id);
        }
        other => panic!("{other:?}"),
    }
    // The job carries pointers, never the input.
    assert!(!jobs[0].to_body().contains("ada@example.com"));
    // A retry replays the same run; no second run or job.
    let again = s.send(req()).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(s.d.jobs.sent().len(), 1);

    let run = s
        .send(as_tenant(
            Req::new("GET", &format!("/v1/action-runs/{id}")),
            &s.t,
        ))
        .await;
    assert_eq!(run.status, 200);
    assert_eq!(run.body["state"], "queued");
    assert_eq!(run.body["action"], "create_customer");
    assert_eq!(run.body["provider"], "stripe");
    // The input stays inside: the run's representation never shows it.
    assert!(!run.body.to_string().contains("ada@example.com"));

    // Validation happens before anything is queued, in this mode too.
    let bad = s
        .send(
            s.action("create_customer", json!({"email": 1}))
                .header("prefer", "respond-async"),
        )
        .await;
    is_problem(&bad, 400, "validation_failed");
    assert_eq!(s.d.jobs.sent().len(), 1);
}
