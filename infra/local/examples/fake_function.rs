//! A Lambda function that misbehaves on request, for testing the Runtime API emulator: it echoes
//! its event, fails with `{"fail": "<message>"}`, exits with `{"exit": true}` and sleeps with
//! `{"sleep_ms": n}` before answering.

use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let payload = event.payload;
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
