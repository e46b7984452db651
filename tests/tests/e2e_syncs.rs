//! End to end through the local stack: a tenant imports its end user's Stripe customers — an
//! integration, a key-based connection verified by the provider, a sync, manual runs executed by
//! the connector over SQS (continued across invocations by a small time budget), the change feed
//! read with its cursor — against a local Stripe of 10,000 customers that then changes, deletes
//! and rate-limits.
//!
//! Needs the function binaries in `target/debug` (`make build`) and moto (`make tools`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tributary_testing::provider::{LocalStripe, STRIPE_KEY, customer};
use tributary_tests::{Stack, StackOptions, eventually, stack_logs};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }
}

/// What one read of the whole feed after `cursor` returned: each record's last action by id, in
/// feed order, and the cursor to read on from.
async fn read_feed(
    c: &Client,
    connection: &str,
    cursor: Option<String>,
) -> (Vec<(String, String)>, Option<String>) {
    let mut out = Vec::new();
    let mut cursor = cursor;
    loop {
        let mut path = format!("/v1/records?connection_id={connection}&model=customers&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = c.ok("GET", &path, None).await;
        for r in page["records"].as_array().expect("records") {
            out.push((
                r["id"].as_str().expect("id").to_owned(),
                r["action"].as_str().expect("action").to_owned(),
            ));
        }
        if let Some(next) = page["next_cursor"].as_str() {
            cursor = Some(next.to_owned());
        }
        if page["has_more"] != json!(true) {
            return (out, cursor);
        }
    }
}

async fn run_to_end(c: &Client, stack: &Stack, sync: &str) -> Value {
    let run = c
        .ok("POST", &format!("/v1/syncs/{sync}/runs"), Some(json!({})))
        .await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    wait_for_end(c, stack, sync, &run_id).await
}

async fn wait_for_end(c: &Client, stack: &Stack, sync: &str, run_id: &str) -> Value {
    eventually(
        Duration::from_secs(240),
        Duration::from_millis(500),
        || async {
            let run = c
                .ok("GET", &format!("/v1/syncs/{sync}/runs/{run_id}"), None)
                .await;
            match run["state"].as_str() {
                Some("succeeded" | "failed" | "stalled" | "cancelled") => Ok(run),
                other => Err(format!("state {other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(stack)))
}

/// A tenant on `stack` with a key, a Stripe integration, a connection with the local Stripe's
/// key, and an hourly sync of its customers: the tenant's client, the connection and the sync.
async fn stripe_sync(stack: &Stack) -> (Client, String, String) {
    let http = tributary_http::tls::reqwest_builder()
        .timeout(Duration::from_secs(35))
        .build()
        .expect("client");
    let admin = Client {
        http: http.clone(),
        base: stack.api_url().to_owned(),
        token: stack.admin_key().to_owned(),
    };
    let tenant = admin
        .ok("POST", "/v1/tenants", Some(json!({"name": "acme"})))
        .await;
    let key = admin
        .ok(
            "POST",
            &format!("/v1/tenants/{}/keys", tenant["id"].as_str().unwrap()),
            Some(json!({"name": "app", "scopes": [
                "integrations:write", "connections:write", "connections:read",
                "syncs:write", "syncs:read", "records:read"
            ]})),
        )
        .await;
    let c = Client {
        http,
        base: stack.api_url().to_owned(),
        token: key["secret"].as_str().unwrap().to_owned(),
    };
    let integration = c
        .ok(
            "POST",
            "/v1/integrations",
            Some(json!({"provider": "stripe"})),
        )
        .await;
    let connection = c
        .ok(
            "POST",
            "/v1/connections",
            Some(json!({
                "integration_id": integration["id"], "end_user_id": "u-1",
                "credentials": {"api_key": STRIPE_KEY}
            })),
        )
        .await;
    let conn = connection["id"].as_str().unwrap().to_owned();
    let sync = c
        .ok(
            "POST",
            "/v1/syncs",
            Some(json!({
                "connection_id": conn, "stream": "customers", "model": "customers",
                "frequency": {"every_seconds": 3600}
            })),
        )
        .await;
    let sync_id = sync["id"].as_str().unwrap().to_owned();
    (c, conn, sync_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_imports_stripe_customers_and_reads_exactly_the_changes() {
    // Arrange: a local Stripe, and a stack whose connector continues a run every 2 seconds.
    let stripe = LocalStripe::with_customers(10_000);
    let server = stripe.start().await;
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "ProviderOrigins".to_owned(),
        format!("stripe={}", server.uri()),
    );
    parameters.insert("SyncTimeBudgetSeconds".to_owned(), "2".to_owned());
    let stack = Stack::start(StackOptions {
        parameters,
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let (c, conn, sync_id) = stripe_sync(&stack).await;

    // Act 1: the first run imports everything.
    let run = run_to_end(&c, &stack, &sync_id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", stack_logs(&stack));
    assert_eq!(run["stats"]["added"], 10_000, "{run}");
    assert!(
        run["continuations"].as_u64().unwrap() >= 1,
        "continued: {run}"
    );
    assert!(
        stripe.pages_fetched_twice() <= 1,
        "{:?}",
        stripe.page_requests()
    );

    // Assert 1: the feed holds exactly the provider's customers, once each.
    let (all, cursor) = read_feed(&c, &conn, None).await;
    assert_eq!(all.len(), 10_000);
    let ids: BTreeSet<String> = all.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, stripe.customers().keys().cloned().collect());

    // Act 2: the provider changes; a second run, throttled three times on the way.
    for n in [1, 500, 9_999, 4_321, 42, 7_000, 8_888] {
        stripe.put(customer(n, 2));
    }
    for n in 10_000..10_003 {
        stripe.put(customer(n, 1));
    }
    for n in [2, 3] {
        stripe.remove(&format!("cus_{n:08}"));
    }
    stripe.throttle(3, 1);
    let run = run_to_end(&c, &stack, &sync_id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", stack_logs(&stack));
    assert_eq!(
        (
            &run["stats"]["added"],
            &run["stats"]["updated"],
            &run["stats"]["deleted"]
        ),
        (&json!(3), &json!(7), &json!(2)),
        "{run}"
    );
    assert_eq!(run["stats"]["retries"], 3, "{run}");

    // Assert 2: reading on from the cursor returns exactly those twelve changes.
    let (changes, _) = read_feed(&c, &conn, cursor).await;
    let mut got: Vec<(String, String)> = changes;
    got.sort();
    let mut expected: Vec<(String, String)> = [1, 500, 9_999, 4_321, 42, 7_000, 8_888]
        .iter()
        .map(|n| (format!("cus_{n:08}"), "UPDATED".to_owned()))
        .chain((10_000..10_003).map(|n| (format!("cus_{n:08}"), "ADDED".to_owned())))
        .chain(
            [2, 3]
                .iter()
                .map(|n| (format!("cus_{n:08}"), "DELETED".to_owned())),
        )
        .collect();
    expected.sort();
    assert_eq!(got, expected);

    // One record, with its metadata.
    let one = c
        .ok(
            "GET",
            &format!("/v1/records/customers/cus_00000500?connection_id={conn}"),
            None,
        )
        .await;
    assert_eq!(one["action"], "UPDATED");
    assert_eq!(one["data"]["description"], "Customer number 500, version 2");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_killed_mid_page_resumes_from_its_last_committed_page() {
    // Arrange: a slow local Stripe (each page answers after 400 ms), and a stack whose connector
    // times out after 15 s and whose jobs come back 20 s after a failed invocation (the template's
    // 300 s and 1,800 s would make the test wait half an hour; Lambda wants the second at least
    // the first).
    let stripe = LocalStripe::with_customers(3_000);
    stripe.delay(Duration::from_millis(400));
    let server = stripe.start().await;
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "ProviderOrigins".to_owned(),
        format!("stripe={}", server.uri()),
    );
    let stack = Stack::start(StackOptions {
        parameters,
        property_overrides: vec![
            ("ConnectorFunction".into(), "Timeout".into(), json!(15)),
            ("JobsQueue".into(), "VisibilityTimeout".into(), json!(20)),
        ],
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let (c, conn, sync_id) = stripe_sync(&stack).await;

    // Act: a run; while its fifth page is in flight, the connector's process is killed.
    let run = c
        .ok(
            "POST",
            &format!("/v1/syncs/{sync_id}/runs"),
            Some(json!({})),
        )
        .await;
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let requested = || stripe.page_requests().values().sum::<usize>();
    eventually(
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async {
            match requested() {
                n if n >= 8 => Ok(()),
                n => Err(format!("{n} pages requested")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    stack.crash("tributary-connector").expect("crash");
    let at_crash = stripe.page_requests();

    // Assert: the job comes back, waits for the dead invocation's lease to expire, and the run
    // resumes from its last committed page: every customer once, only the page in flight
    // fetched again.
    let run = wait_for_end(&c, &stack, &sync_id, &run_id).await;
    assert_eq!(run["state"], "succeeded", "{run}\n{}", stack_logs(&stack));
    assert_eq!(run["stats"]["added"], 3_000, "{run}");
    assert!(
        at_crash.values().sum::<usize>() < 30,
        "killed mid-run: {at_crash:?}"
    );
    assert_eq!(
        stripe.pages_fetched_twice(),
        1,
        "the page in flight, and only it, is fetched again: {:?}",
        stripe.page_requests()
    );
    let (all, _) = read_feed(&c, &conn, None).await;
    assert_eq!(all.len(), 3_000, "no record twice in the feed");
    let ids: BTreeSet<String> = all.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, stripe.customers().keys().cloned().collect());
    assert!(all.iter().all(|(_, action)| action == "ADDED"));
    stack.shutdown().await;
}
