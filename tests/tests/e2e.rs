//! End to end through the local stack, as a client of the deployed API would see it: API Gateway's
//! authorizer answers, the API's routes, the pipeline canary (monitor → SQS → connector → DynamoDB →
//! health details), what public health reveals, and the dead-letter queue.
//!
//! Needs the function binaries in `target/debug` (`make build`) and moto (`make tools`).

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use tributary_tests::{Stack, StackOptions, eventually, stack_logs};

async fn start_stack(schedule_every: Duration) -> Stack {
    match Stack::start(StackOptions {
        schedule_every: Some(schedule_every),
        ..StackOptions::default()
    })
    .await
    {
        Ok(stack) => stack,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

fn http() -> reqwest::Client {
    tributary_http::tls::reqwest_builder()
        .timeout(Duration::from_secs(35))
        .build()
        .expect("http client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_details_report_a_canary_round_trip_within_two_schedule_ticks() {
    // Arrange: schedules fire every 2 s, the first at start.
    let stack = start_stack(Duration::from_secs(2)).await;
    let url = format!("{}/v1/health/details", stack.api_url());
    let client = http();

    // Act: the admin's detailed health, until the canary has gone round.
    let report = eventually(Duration::from_secs(30), Duration::from_millis(500), || {
        let request = client.get(&url).bearer_auth(stack.admin_key()).send();
        async move {
            let response = request.await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            if status != 200 || body["canary"]["status"] != "ok" {
                return Err(format!("{status}: {body}"));
            }
            Ok(body)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));

    // Assert
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["stage"], "local", "{report}");
    assert_eq!(report["checks"]["dynamodb"]["status"], "ok", "{report}");
    assert_eq!(report["checks"]["sqs"]["status"], "ok", "{report}");
    assert!(
        report["canary"]["last_round_trip_ms"].is_u64(),
        "round trip missing: {report}"
    );
    assert!(
        report["canary"]["age_seconds"]
            .as_u64()
            .is_some_and(|age| age <= 30),
        "{report}"
    );

    // Without a credential, health says how it is and nothing more.
    let response = client
        .get(format!("{}/v1/health", stack.api_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"status": "ok"}));

    // The details need a credential: none is a 401 from the gateway.
    let response = client.get(&url).send().await.expect("request");
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_authorizes_like_api_gateway_and_the_admin_key_passes() {
    let stack = start_stack(Duration::from_secs(60)).await;
    let client = http();
    let me = format!("{}/v1/me", stack.api_url());

    // No credential: API Gateway answers 401 itself, without calling the authorizer.
    let response = client.get(&me).send().await.expect("request");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"message": "Unauthorized"}));

    // A wrong key: the authorizer denies, API Gateway answers 403.
    let response = client
        .get(&me)
        .bearer_auth("not-the-admin-key")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403, "{}", stack_logs(&stack));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"message": "Forbidden"}));

    // The admin key: the API function sees the authorizer's context.
    let response = client
        .get(&me)
        .bearer_auth(stack.admin_key())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{}", stack_logs(&stack));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["principal"], "admin-key", "{body}");
    assert_eq!(body["scopes"], serde_json::json!(["admin"]), "{body}");

    // An unknown route behind the authorizer: the API function's problem+json 404.
    let response = client
        .get(format!("{}/v1/no-such-thing", stack.api_url()))
        .bearer_auth(stack.admin_key())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_reaches_the_dead_letter_queue() {
    // Arrange
    let stack = start_stack(Duration::from_secs(60)).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let jobs = stack.queue_url("JobsQueue").expect("jobs queue").to_owned();
    let dlq = stack
        .queue_url("JobsDeadLetterQueue")
        .expect("dead-letter queue")
        .to_owned();

    // Act: a message the connector can never process.
    sqs.send_message()
        .queue_url(&jobs)
        .message_body("not json")
        .send()
        .await
        .expect("send");

    // Assert: after maxReceiveCount failed deliveries, SQS moves it to the DLQ.
    let depth = eventually(Duration::from_secs(90), Duration::from_millis(500), || {
        let request = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send();
        async move {
            let attributes = request.await.map_err(|e| e.to_string())?;
            let depth: u64 = attributes
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            if depth == 0 {
                return Err("the dead-letter queue is empty".into());
            }
            Ok(depth)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack_logs(&stack)));
    assert_eq!(depth, 1);
    let received = sqs
        .receive_message()
        .queue_url(&dlq)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let message = received.messages().first().expect("a dead letter");
    assert_eq!(message.body(), Some("not json"));
    let receives: u32 = message
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(receives > 5, "moved after {receives} receives");
}
