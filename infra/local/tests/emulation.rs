//! The local stack behaves as API Gateway and the SQS event source mapping do, shown with the fake
//! function (`examples/fake_function.rs`) behind `tests/fixtures/fake-stack.yaml`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use tributary_local::{Stack, StackOptions, workspace};

/// Copies the newest build of the fake function (cargo test builds examples with a hash in their
/// names) under the binary names the fixture template uses.
fn fake_binaries() -> PathBuf {
    let examples = workspace::target_dir().join("debug/examples");
    let built = std::fs::read_dir(&examples)
        .expect("examples are built")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("fake_function") && !name.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .expect("fake_function is built");
    let dir = workspace::scratch_dir().join(format!("fake-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for name in ["fake-auth", "fake-api", "fake-worker"] {
        let target = dir.join(name);
        if !target.exists() {
            std::fs::copy(&built, &target).expect("copy");
        }
    }
    dir
}

async fn fake_stack() -> Stack {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-stack.yaml");
    Stack::start(StackOptions {
        template,
        binaries_dir: Some(fake_binaries()),
        stack_name: "fake".into(),
        ..StackOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the fake stack did not start: {e}"))
}

async fn get(
    stack: &Stack,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = tributary_http::tls::reqwest_builder()
        .build()
        .expect("client")
        .get(format!("{}{path}", stack.api_url()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn gateway_answers_for_the_authorizer_as_api_gateway_does() {
    let stack = fake_stack().await;

    let (status, _, body) = get(&stack, "/items/1", None).await;
    assert_eq!(
        (status, body),
        (401, serde_json::json!({"message": "Unauthorized"}))
    );

    let (status, _, body) = get(&stack, "/items/1", Some("bad")).await;
    assert_eq!(
        (status, body),
        (403, serde_json::json!({"message": "Forbidden"}))
    );

    let (status, _, body) = get(&stack, "/items/1", Some("boom")).await;
    assert_eq!(
        (status, body),
        (500, serde_json::json!({"message": "Internal Server Error"}))
    );
}

#[tokio::test]
async fn authorized_request_carries_the_authorizer_context_and_route_details() {
    let stack = fake_stack().await;

    let (status, headers, event) = get(&stack, "/items/42?tag=a&tag=b", Some("good")).await;

    assert_eq!(status, 200);
    assert_eq!(headers["x-fake"], "yes");
    assert_eq!(headers["set-cookie"], "session=abc; Path=/");
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "ANY /items/{id}");
    assert_eq!(event["rawPath"], "/items/42");
    assert_eq!(event["rawQueryString"], "tag=a&tag=b");
    assert_eq!(event["queryStringParameters"]["tag"], "a,b");
    assert_eq!(event["pathParameters"]["id"], "42");
    assert_eq!(event["requestContext"]["http"]["method"], "GET");
    assert_eq!(event["requestContext"]["stage"], "$default");
    assert_eq!(
        event["requestContext"]["authorizer"]["lambda"]["principal"],
        "tester"
    );
    let parsed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(event).expect("a payload 2.0 request");
    assert_eq!(parsed.raw_path.as_deref(), Some("/items/42"));
}

#[tokio::test]
async fn authorizer_result_is_cached_per_credential() {
    let stack = fake_stack().await;

    let (_, _, first) = get(&stack, "/items/1", Some("good")).await;
    let (_, _, second) = get(&stack, "/anything/else", Some("good")).await;

    let calls = |event: &Value| event["requestContext"]["authorizer"]["lambda"]["calls"].clone();
    assert_eq!(calls(&first), calls(&second), "the authorizer ran twice");
}

#[tokio::test]
async fn public_route_skips_the_authorizer_and_unrouted_paths_are_404() {
    let stack = fake_stack().await;

    let (status, _, event) = get(&stack, "/public", None).await;
    assert_eq!(status, 200);
    assert_eq!(event["routeKey"], "GET /public");
    assert!(event["requestContext"].get("authorizer").is_none());

    let (status, _, body) = get(&stack, "/", Some("good")).await;
    assert_eq!(
        (status, body),
        (404, serde_json::json!({"message": "Not Found"}))
    );
}

#[tokio::test]
async fn binary_body_is_passed_base64_encoded() {
    let stack = fake_stack().await;

    let response = tributary_http::tls::reqwest_builder()
        .build()
        .expect("client")
        .post(format!("{}/items/7", stack.api_url()))
        .header("authorization", "Bearer good")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .expect("request");
    let event: Value = response.json().await.expect("json");

    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AJ+Slg==");
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes");
    let read = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        read(QueueAttributeName::ApproximateNumberOfMessages),
        read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test]
async fn sqs_batches_delete_successes_and_redrive_reported_failures() {
    // Arrange
    let stack = fake_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let queue = stack.queue_url("Queue").expect("queue").to_owned();
    let dlq = stack.queue_url("DeadLetterQueue").expect("dlq").to_owned();

    // Act
    for body in ["ok", "fail", "ok"] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }

    // Assert: the failure is retried (visibility 1 s), then moved after 2 receives; the rest deleted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let source = queue_depth(&sqs, &queue).await;
        let dead = queue_depth(&sqs, &dlq).await;
        if source == (0, 0) && dead.0 == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue {source:?}, dead letters {dead:?}\n{}",
            tributary_local::tail(&stack.log_file("fake-worker"), 20)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await
        .expect("receive");
    assert_eq!(dead.messages()[0].body(), Some("fail"));
}

#[tokio::test]
async fn whole_batch_failure_deletes_nothing() {
    let stack = fake_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
    let queue = stack.queue_url("Queue").expect("queue").to_owned();
    let dlq = stack.queue_url("DeadLetterQueue").expect("dlq").to_owned();

    sqs.send_message()
        .queue_url(&queue)
        .message_body("crash")
        .send()
        .await
        .expect("send");

    // Never deleted: it is delivered twice, then redriven.
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_depth(&sqs, &dlq).await.0 == 0 {
        assert!(
            Instant::now() < deadline,
            "the crashing batch was never redriven"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(queue_depth(&sqs, &queue).await, (0, 0));
}
