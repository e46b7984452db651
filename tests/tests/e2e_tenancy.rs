//! End to end through the local stack: tenants and their API keys as a client sees them — the
//! authorizer reading keys and tenants from DynamoDB, scopes, tenant isolation, revocation and
//! disabling (which, as in AWS, take effect for credentials the authorizer cache has not seen yet,
//! and for the others within its TTL).
//!
//! Needs the function binaries in `target/debug` (`make build`) and moto (`make tools`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tributary_tests::{Stack, StackOptions, stack_logs};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
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
}

async fn start() -> (Stack, Client) {
    let stack = Stack::start(StackOptions {
        schedule_every: Some(Duration::from_secs(60)),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(35))
            .build()
            .expect("client"),
        base: stack.api_url().to_owned(),
    };
    (stack, client)
}

async fn tenant_with_key(c: &Client, admin: &str, scopes: Value) -> (String, String, String) {
    let (status, tenant) = c
        .call("POST", "/v1/tenants", admin, Some(json!({"name": "e2e"})))
        .await;
    assert_eq!(status, 201, "{tenant}");
    let id = tenant["id"].as_str().expect("tenant id").to_owned();
    let (status, key) = c
        .call(
            "POST",
            &format!("/v1/tenants/{id}/keys"),
            admin,
            Some(json!({"name": "bootstrap", "scopes": scopes})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    (
        id,
        key["id"].as_str().expect("key id").to_owned(),
        key["secret"].as_str().expect("secret").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_keys_authenticate_are_scoped_and_isolated() {
    let (stack, c) = start().await;
    let admin = stack.admin_key().to_owned();
    let (tenant_a, key_a_id, key_a) =
        tenant_with_key(&c, &admin, json!(["keys:read", "keys:write"])).await;
    let (_, _, key_b) = tenant_with_key(&c, &admin, json!(["keys:read"])).await;

    // The key authenticates as itself, in its tenant, with its scopes.
    let (status, me) = c.call("GET", "/v1/me", &key_a, None).await;
    assert_eq!(status, 200, "{me}\n{}", stack_logs(&stack));
    assert_eq!(me["principal"], key_a_id.as_str());
    assert_eq!(me["tenant_id"], tenant_a.as_str());
    assert_eq!(me["scopes"], json!(["keys:read", "keys:write"]));

    // A scope it lacks is a 403 naming the scope.
    let (status, problem) = c.call("GET", "/v1/tenants", &key_a, None).await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "missing_scope");
    let (status, problem) = c
        .call(
            "POST",
            "/v1/keys",
            &key_b,
            Some(json!({"name": "x", "scopes": ["keys:read"]})),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("`keys:write`")
    );

    // Tenant B cannot see tenant A's key, and gets the same answer as for an id that does not exist.
    let (status, foreign) = c
        .call("GET", &format!("/v1/keys/{key_a_id}"), &key_b, None)
        .await;
    assert_eq!(status, 404, "{foreign}");
    let random = "key_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d";
    let (_, missing) = c
        .call("GET", &format!("/v1/keys/{random}"), &key_b, None)
        .await;
    assert_eq!(foreign["detail"], missing["detail"]);
    assert_eq!(foreign["code"], missing["code"]);
    let (_, listed) = c.call("GET", "/v1/keys", &key_b, None).await;
    assert!(!listed.to_string().contains(&key_a_id), "{listed}");

    // A tampered secret is denied by the authorizer.
    let mut tampered = key_a.clone();
    tampered.pop();
    tampered.push('x');
    let (status, _) = c.call("GET", "/v1/me", &tampered, None).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_keys_and_disabled_tenants_stop_working() {
    let (stack, c) = start().await;
    let admin = stack.admin_key().to_owned();
    let (tenant, _, key) = tenant_with_key(&c, &admin, json!(["keys:read", "keys:write"])).await;

    // A second key, revoked before it is ever used: the authorizer has no cached decision for it.
    let (status, second) = c
        .call(
            "POST",
            "/v1/keys",
            &key,
            Some(json!({"name": "svc", "scopes": ["keys:read"]})),
        )
        .await;
    assert_eq!(status, 201, "{second}\n{}", stack_logs(&stack));
    let second_id = second["id"].as_str().expect("id");
    let second_secret = second["secret"].as_str().expect("secret");
    let (status, revoked) = c
        .call("DELETE", &format!("/v1/keys/{second_id}"), &key, None)
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = c.call("GET", "/v1/me", second_secret, None).await;
    assert_eq!(status, 403, "a revoked key must be denied");

    // The audit trail shows both changes.
    let (_, events) = c.call("GET", "/v1/audit-events", &key, None).await;
    let actions: Vec<&str> = events["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        vec!["api_key.created", "api_key.created", "api_key.revoked"],
        "{events}"
    );

    // A third key, never used, then the tenant is disabled: it is denied.
    let (_, third) = c
        .call(
            "POST",
            "/v1/keys",
            &key,
            Some(json!({"name": "late", "scopes": ["keys:read"]})),
        )
        .await;
    let third_secret = third["secret"].as_str().expect("secret").to_owned();
    let (status, patched) = c
        .call(
            "PATCH",
            &format!("/v1/tenants/{tenant}"),
            &admin,
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["status"], "disabled");
    let (status, _) = c.call("GET", "/v1/me", &third_secret, None).await;
    assert_eq!(status, 403, "a disabled tenant's keys must be denied");

    // Deleting the tenant: its keys are denied too.
    let (status, _) = c
        .call("DELETE", &format!("/v1/tenants/{tenant}"), &admin, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = c.call("GET", "/v1/keys", &third_secret, None).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creation_through_the_stack_replays_without_the_secret() {
    let (stack, c) = start().await;
    let admin = stack.admin_key().to_owned();
    let (tenant, _, _) = tenant_with_key(&c, &admin, json!(["keys:read"])).await;
    let send = |name: &'static str| {
        c.http
            .post(format!("{}/v1/tenants/{tenant}/keys", c.base))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "e2e-1")
            .json(&json!({"name": name, "scopes": ["keys:read"]}))
            .send()
    };
    let first = send("one").await.expect("first");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let replay = send("one").await.expect("replay");
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["id"], first["id"]);
    assert!(first["secret"].is_string());
    assert!(replay.get("secret").is_none());
    let other = send("two").await.expect("other");
    assert_eq!(other.status(), 422);
}
