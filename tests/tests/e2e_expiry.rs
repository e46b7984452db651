//! End to end through the local stack: a key's expiry holds although the gateway's authorizer cache
//! (300 s, keyed by the credential) still holds an allow for it, because the expiry travels in the
//! authorizer context and the API function refuses the request past it.
//!
//! Needs the function binaries in `target/debug` (`make build`) and moto (`make tools`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tributary_tests::{Stack, StackOptions, stack_logs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused_while_the_gateway_still_caches_its_allow() {
    // Arrange: a tenant and a key that expires in a few seconds.
    let stack = Stack::start(StackOptions {
        schedule_every: Some(Duration::from_secs(60)),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
    let api = stack.api_url().to_owned();
    let admin = stack.admin_key().to_owned();
    let http = tributary_http::tls::reqwest_builder()
        .timeout(Duration::from_secs(35))
        .build()
        .expect("client");
    let tenant: Value = http
        .post(format!("{api}/v1/tenants"))
        .bearer_auth(&admin)
        .json(&json!({"name": "expiry"}))
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expires_s = now_s + 4;
    let expires_at = tributary_core::time::rfc3339(i64::try_from(expires_s * 1000).expect("ms"))
        .expect("rfc 3339");
    let key: Value = http
        .post(format!("{api}/v1/tenants/{tenant_id}/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "short", "scopes": ["keys:read"], "expires_at": expires_at}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let secret = key["secret"].as_str().expect("secret").to_owned();

    // Act: one call while valid (the gateway caches the allow), another after the expiry.
    let before = http
        .get(format!("{api}/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("me");
    assert_eq!(before.status(), 200, "{}", stack_logs(&stack));
    let wait = Duration::from_secs(expires_s + 1)
        .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock"));
    tokio::time::sleep(wait).await;
    let after = http
        .get(format!("{api}/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("me");

    // Assert: refused by the API function itself, well within the cache TTL.
    assert_eq!(after.status(), 401, "{}", stack_logs(&stack));
    let problem: Value = after.json().await.expect("json");
    assert_eq!(problem["code"], "unauthenticated");
    assert!(
        stack_logs(&stack).contains("credential expired"),
        "the refusal must come from the API's expiry check, past a cached allow"
    );
}
