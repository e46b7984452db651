//! End to end through the local stack: a tenant's webhook endpoint receives the events of its
//! connections and action runs, signed after the Standard Webhooks specification, and every
//! delivery is verified by the specification's reference library (`standardwebhooks` from PyPI,
//! pinned in `infra/local/tools/standardwebhooks.txt`); a receiver that answers 500 then 200 gets
//! the message twice with the same id. On the way: an action run now and queued, and a proxied
//! call, against a local Stripe. And inbound: a Stripe-signed event posted to the public webhook
//! URL runs the sync of the connection tagged with its account and reaches the tenant's endpoint
//! as `provider.event`; its retry is a duplicate, a forgery a 401.
//!
//! Needs the function binaries in `target/debug` (`make build`), moto and the verifier
//! (`make tools`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tributary_testing::provider::{LocalStripe, STRIPE_KEY};
use tributary_tests::{Stack, StackOptions, eventually, stack_logs};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, _, value) = self.send(method, path, body, &[]).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

/// Runs the reference verifier over `deliveries` under `secrets`: its output, and whether every
/// delivery verified.
fn verify_with_reference_library(deliveries: &[Value], secrets: &[&str]) -> (bool, String) {
    let python = root().join(".tributary/tools/standardwebhooks/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make tools`",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root().join("infra/local/verify_webhooks.py"))
        .args(secrets)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for d in deliveries {
            writeln!(stdin, "{d}").expect("write a delivery");
        }
    }
    let out = child.wait_with_output().expect("the verifier ends");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What the receiver got, as the verifier reads it.
async fn deliveries(receiver: &MockServer) -> Vec<Value> {
    receiver
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let headers: BTreeMap<String, String> = r
                .headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            json!({"headers": headers, "body": String::from_utf8_lossy(&r.body)})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_acts_proxies_and_receives_signed_webhooks_that_the_reference_library_verifies() {
    // Arrange: a local Stripe (its customers, and the create action counted), a receiver that
    // fails its first delivery, and a stack whose monitor ticks every second.
    let stripe = LocalStripe::with_customers(3);
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "cus_new1", "object": "customer", "email": "ada@example.com"}),
        ))
        .with_priority(1)
        .mount(&provider)
        .await;
    stripe.mount(&provider).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "ProviderOrigins".to_owned(),
        format!("stripe={}", provider.uri()),
    );
    let stack = Stack::start(StackOptions {
        parameters,
        schedule_every: Some(Duration::from_secs(1)),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
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
                "actions:execute", "proxy", "webhooks:write", "webhooks:read", "operations:read"
            ]})),
        )
        .await;
    let c = Client {
        http,
        base: stack.api_url().to_owned(),
        token: key["secret"].as_str().unwrap().to_owned(),
    };

    // The endpoint first, so that the connection's creation is an event it receives.
    let endpoint = c
        .ok(
            "POST",
            "/v1/webhook-endpoints",
            Some(json!({
                "url": format!("{}/hooks", receiver.uri()),
                "event_types": ["connection.created", "action.run.completed"]
            })),
        )
        .await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
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

    // Act 1: an action now, one queued, and a proxied read.
    let (status, _, now) = c
        .send(
            "POST",
            &format!("/v1/connections/{conn}/actions/create_customer"),
            Some(json!({"email": "ada@example.com"})),
            &[("idempotency-key", "signup-1")],
        )
        .await;
    assert_eq!(status, 200, "{now}\n{}", stack_logs(&stack));
    assert_eq!(now["output"]["id"], "cus_new1");
    let (status, headers, queued) = c
        .send(
            "POST",
            &format!("/v1/connections/{conn}/actions/create_customer"),
            Some(json!({"email": "bob@example.com"})),
            &[("prefer", "respond-async")],
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(headers["preference-applied"], "respond-async");
    let run_id = queued["id"].as_str().unwrap().to_owned();
    let (status, _, proxied) = c
        .send(
            "GET",
            "/v1/proxy/customers?limit=2",
            None,
            &[("connection-id", conn.as_str())],
        )
        .await;
    assert_eq!(status, 200, "{proxied}");
    assert_eq!(
        proxied["data"].as_array().map(Vec::len),
        Some(2),
        "{proxied}"
    );
    assert!(!proxied.to_string().contains(STRIPE_KEY));

    // Assert 1: the queued run ends, executed by the connector.
    let run = eventually(
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async {
            let run = c
                .ok("GET", &format!("/v1/action-runs/{run_id}"), None)
                .await;
            match run["state"].as_str() {
                Some("succeeded" | "failed") => Ok(run),
                other => Err(format!("state {other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["output"]["id"], "cus_new1");
    let creates: Vec<_> = provider
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(creates.len(), 2, "one write per action");
    assert!(
        creates
            .iter()
            .all(|r| r.headers.contains_key("idempotency-key"))
    );

    // Assert 2: both events reach the receiver; the first delivery failed (500) and was made
    // again with the same id after its 5-second wait.
    let messages = eventually(
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let page = c
                .ok(
                    "GET",
                    &format!("/v1/webhook-messages?endpoint_id={endpoint_id}"),
                    None,
                )
                .await;
            let all = page["data"].as_array().cloned().unwrap_or_default();
            let done = all.iter().filter(|m| m["state"] == "succeeded").count();
            if all.len() == 2 && done == 2 {
                Ok(all)
            } else {
                Err(format!("{page}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    let types: Vec<&str> = messages
        .iter()
        .map(|m| m["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"connection.created") && types.contains(&"action.run.completed"),
        "{types:?}"
    );
    let got = deliveries(&receiver).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &got {
        *by_id
            .entry(d["headers"]["webhook-id"].as_str().unwrap())
            .or_default() += 1;
    }
    // The first delivery failed and was made again, with its id; the other once.
    let first = got[0]["headers"]["webhook-id"].as_str().unwrap();
    assert_eq!(by_id.len(), 2, "{by_id:?}");
    assert_eq!(by_id[first], 2, "{by_id:?}");
    let ids = [first];
    let retried = messages
        .iter()
        .find(|m| m["id"] == ids[0])
        .expect("the retried message");
    assert_eq!(retried["total_attempts"], 2);
    let attempts = c
        .ok(
            "GET",
            &format!("/v1/webhook-messages/{}/attempts", ids[0]),
            None,
        )
        .await;
    assert_eq!(attempts["data"][0]["status"], 500);
    assert_eq!(attempts["data"][1]["status"], 204);
    assert_eq!(retried["payload"]["data"]["connection_id"], conn.as_str());

    // Assert 3: the specification's own verifier accepts every delivery with the secret, and
    // refuses them under another.
    let (ok, out) = verify_with_reference_library(&got, &[&secret]);
    assert!(ok, "{out}");
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (ok, out) = verify_with_reference_library(&got, &[other]);
    assert!(!ok, "another secret must not verify: {out}");

    // Assert 4: the operations log holds each unit of work with its provider requests, and
    // nothing in it is a credential or a body.
    let ops = eventually(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let ops = operations(&c).await;
            let deliveries = ops
                .iter()
                .filter(|o| o["type"] == "webhook_delivery")
                .count();
            let actions = ops.iter().filter(|o| o["type"] == "action_run").count();
            if deliveries == 3 && actions == 2 {
                Ok(ops)
            } else {
                Err(format!("{ops:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    let of = |kind: &str| -> Vec<&Value> { ops.iter().filter(|o| o["type"] == kind).collect() };
    let [made] = of("connection_change")[..] else {
        panic!("{ops:?}")
    };
    assert_eq!(made["connection_id"], conn.as_str());
    assert_eq!(made["counts"]["requests"], 1, "the key's verification");
    for action in of("action_run") {
        assert_eq!(action["state"], "succeeded", "{action}");
        assert_eq!(action["name"], "create_customer");
        assert_eq!(action["counts"]["requests"], 1);
    }
    let [proxy] = of("proxy")[..] else {
        panic!("{ops:?}")
    };
    let detail = c
        .ok(
            "GET",
            &format!("/v1/operations/{}", proxy["id"].as_str().unwrap()),
            None,
        )
        .await;
    let entries = detail["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{detail}");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["host"], "127.0.0.1");
    assert_eq!(entries[0]["path"], "/v1/customers?limit=");
    assert_eq!(entries[0]["status"], 200);
    let mut states: Vec<&str> = of("webhook_delivery")
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["retrying", "succeeded", "succeeded"]);
    let mut everything = String::new();
    for op in &ops {
        everything.push_str(
            &c.ok(
                "GET",
                &format!("/v1/operations/{}", op["id"].as_str().unwrap()),
                None,
            )
            .await
            .to_string(),
        );
    }
    for secret_or_body in [
        STRIPE_KEY,
        secret.as_str(),
        "ada@example.com",
        "bob@example.com",
        "cus_new1",
        "Bearer",
    ] {
        assert!(
            !everything.contains(secret_or_body),
            "`{secret_or_body}` in the operations log"
        );
    }
}

/// Every operation of the caller's tenant, newest first.
async fn operations(c: &Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(next) => format!("/v1/operations?limit=100&cursor={next}"),
            None => "/v1/operations?limit=100".to_owned(),
        };
        let page = c.ok("GET", &path, None).await;
        all.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`, as Stripe signs a webhook.
fn stripe_signature(secret: &str, ts: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_event_for_a_tagged_connection_runs_its_sync_and_reaches_the_tenant_as_provider_event()
 {
    // Arrange: a local Stripe with customers, a receiver, a stack whose monitor ticks every
    // second; a Stripe integration with its endpoint secret, a connection tagged with its Stripe
    // account, a sync of its customers (next due in an hour), and an endpoint for provider events.
    let stripe = LocalStripe::with_customers(3);
    let provider = stripe.start().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let mut parameters = BTreeMap::new();
    parameters.insert(
        "ProviderOrigins".to_owned(),
        format!("stripe={}", provider.uri()),
    );
    let stack = Stack::start(StackOptions {
        parameters,
        schedule_every: Some(Duration::from_secs(1)),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
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
                "integrations:write", "connections:write", "syncs:write", "syncs:read",
                "webhooks:write", "webhooks:read", "operations:read"
            ]})),
        )
        .await;
    let c = Client {
        http: http.clone(),
        base: stack.api_url().to_owned(),
        token: key["secret"].as_str().unwrap().to_owned(),
    };
    let endpoint = c
        .ok(
            "POST",
            "/v1/webhook-endpoints",
            Some(json!({"url": format!("{}/hooks", receiver.uri()), "event_types": ["provider.event"]})),
        )
        .await;
    let endpoint_secret = endpoint["secret"].as_str().unwrap().to_owned();
    let whsec = "whsec_e2e-stripe-endpoint-secret";
    let integration = c
        .ok(
            "POST",
            "/v1/integrations",
            Some(json!({"provider": "stripe", "webhook_secret": whsec})),
        )
        .await;
    let integration_id = integration["id"].as_str().unwrap().to_owned();
    let connection = c
        .ok(
            "POST",
            "/v1/connections",
            Some(json!({
                "integration_id": integration_id, "end_user_id": "u-1",
                "credentials": {"api_key": STRIPE_KEY}, "tags": {"provider_account": "acct_1"}
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

    // Act: Stripe delivers an event for acct_1 to the public URL, without any credential of
    // ours; then retries it; and someone forges one.
    let body = json!({"id": "evt_e2e_1", "object": "event", "type": "customer.created",
                      "account": "acct_1", "data": {"object": {"id": "cus_9", "object": "customer"}}})
    .to_string();
    let url = format!("{}/v1/webhooks/{integration_id}", stack.api_url());
    let deliver = |signature: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.clone())
            .send()
    };
    let ts = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
    };
    let res = deliver(stripe_signature(whsec, ts(), &body))
        .await
        .expect("delivered");
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("json");
    assert_eq!(
        answer,
        json!({"status": "accepted"}),
        "{}",
        stack_logs(&stack)
    );
    let res = deliver(stripe_signature(whsec, ts(), &body))
        .await
        .expect("retried");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("json"),
        json!({"status": "duplicate"})
    );
    let res = deliver(stripe_signature("whsec_forged", ts(), &body))
        .await
        .expect("forged");
    assert_eq!(res.status(), 401);

    // Assert 1: the event starts one run of the connection's sync, which imports the customers.
    let run = eventually(
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let runs = c
                .ok("GET", &format!("/v1/syncs/{sync_id}/runs"), None)
                .await;
            let all = runs["data"].as_array().cloned().unwrap_or_default();
            match all.as_slice() {
                [run] if run["state"] == "succeeded" => Ok(run.clone()),
                _ => Err(format!("{runs}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    assert_eq!(run["trigger"], "webhook", "{run}");
    assert_eq!(run["stats"]["added"], 3, "{run}");

    // Assert 2: the tenant's endpoint receives the event as `provider.event`, signed, with
    // Stripe's payload and the connection it was routed to.
    let got = eventually(
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let got = deliveries(&receiver).await;
            if got.is_empty() {
                Err("no delivery yet".to_owned())
            } else {
                Ok(got)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    assert_eq!(got.len(), 1, "one event, one delivery: {got:?}");
    let message: Value =
        serde_json::from_str(got[0]["body"].as_str().unwrap()).expect("a JSON message");
    assert_eq!(message["type"], "provider.event");
    assert_eq!(message["data"]["connection_id"], conn.as_str());
    assert_eq!(message["data"]["integration_id"], integration_id.as_str());
    assert_eq!(message["data"]["provider_event_type"], "customer.created");
    assert_eq!(message["data"]["provider_event_id"], "evt_e2e_1");
    assert_eq!(
        message["data"]["payload"],
        serde_json::from_str::<Value>(&body).unwrap()
    );
    let (ok, out) = verify_with_reference_library(&got, &[&endpoint_secret]);
    assert!(ok, "{out}");

    // Assert 3: the operations log holds the webhook's routing and the run it started, and the
    // tenant's usage counts the run's records exactly.
    let ops = eventually(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let ops = operations(&c).await;
            let has = |kind: &str| ops.iter().any(|o| o["type"] == kind);
            if has("inbound_webhook") && has("sync_run") && has("webhook_delivery") {
                Ok(ops)
            } else {
                Err(format!("{ops:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    let inbound = ops.iter().find(|o| o["type"] == "inbound_webhook").unwrap();
    assert_eq!(inbound["state"], "succeeded", "{inbound}");
    assert_eq!(inbound["name"], "customer.created");
    assert_eq!(inbound["connection_id"], conn.as_str());
    let runs: Vec<&Value> = ops.iter().filter(|o| o["type"] == "sync_run").collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["state"], "succeeded");
    assert_eq!(runs[0]["subject"], run["id"]);
    assert_eq!(runs[0]["counts"]["records_added"], 3);
    let detail = c
        .ok(
            "GET",
            &format!("/v1/operations/{}", runs[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(
        detail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "request" && e["status"] == 200),
        "{detail}"
    );
    let usage = c.ok("GET", "/v1/usage?group_by=integration", None).await;
    let mine = usage["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == integration_id.as_str())
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(mine["counts"]["records_added"], run["stats"]["added"]);
    assert_eq!(mine["counts"]["inbound_webhooks"], 1);
    let text = format!("{ops:?}{detail}");
    assert!(!text.contains(STRIPE_KEY) && !text.contains(whsec) && !text.contains("cus_9"));
}
