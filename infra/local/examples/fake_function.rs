//! A Lambda function for testing the local stack without the real functions. It plays every role,
//! chosen by the event's shape:
//!
//! - an authorizer REQUEST event: allows `Bearer good` (with a context that counts the authorizer's
//!   invocations, to observe the cache), fails on `Bearer boom`, denies anything else;
//! - an HTTP API payload 2.0 event: answers 200 with the event as its JSON body, a header and a cookie;
//! - an SQS event: reports the messages whose body is `fail` as batch item failures, and fails the
//!   whole invocation when a body is `crash`;
//! - anything else: echoes it, fails with `{"fail": "<message>"}`, exits with `{"exit": true}` and
//!   sleeps with `{"sleep_ms": n}` before answering.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

static AUTHORIZER_CALLS: AtomicU64 = AtomicU64::new(0);

fn authorize(event: &Value) -> Result<Value, Error> {
    let calls = AUTHORIZER_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    match event["identitySource"][0].as_str() {
        Some("Bearer good") => Ok(json!({
            "isAuthorized": true,
            "context": {"principal": "tester", "calls": calls.to_string()}
        })),
        Some("Bearer boom") => Err("authorizer exploded".into()),
        _ => Ok(json!({"isAuthorized": false})),
    }
}

fn http(event: &Value) -> Value {
    json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-fake": "yes"},
        "cookies": ["session=abc; Path=/"],
        "body": event.to_string(),
        "isBase64Encoded": false
    })
}

fn sqs(event: &Value) -> Result<Value, Error> {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    if records.iter().any(|r| r["body"] == "crash") {
        return Err("the whole batch failed".into());
    }
    let failures: Vec<Value> = records
        .iter()
        .filter(|r| r["body"] == "fail")
        .map(|r| json!({"itemIdentifier": r["messageId"]}))
        .collect();
    Ok(json!({"batchItemFailures": failures}))
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let payload = event.payload;
    if payload["type"] == "REQUEST" {
        return authorize(&payload);
    }
    if payload["version"] == "2.0" && payload.get("routeKey").is_some() {
        return Ok(http(&payload));
    }
    if payload.get("Records").is_some() {
        return sqs(&payload);
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    if payload.get("exit").is_some() {
        std::process::exit(3);
    }
    Ok(json!({
        "echo": payload,
        "request_id": event.context.request_id,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        "greeting": std::env::var("GREETING").unwrap_or_default(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}
