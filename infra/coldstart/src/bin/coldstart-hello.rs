//! The baseline: the `lambda_runtime` hello world of aws-lambda-rust-runtime's basic example, built
//! with the workspace's release profile beside the functions.

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(echo)).await
}
