//! The functions' event fixtures (`functions/<fn>/events/*.json`, used with
//! `cargo lambda invoke --data-file`) deserialize into the event types the functions take.

use std::path::PathBuf;

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use tributary_local::workspace;

fn fixtures(function: &str) -> Vec<(PathBuf, String)> {
    let dir = workspace::root()
        .join("functions")
        .join(function)
        .join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            (p, text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

#[test]
fn api_fixtures_are_http_api_payload_2_requests() {
    let mut routes = Vec::new();
    for (path, text) in fixtures("api") {
        let event: ApiGatewayV2httpRequest =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        routes.push(event.raw_path.unwrap_or_default());
    }
    assert!(routes.iter().any(|r| r == "/v1/health"), "{routes:?}");
    assert!(routes.iter().any(|r| r == "/v1/me"), "{routes:?}");
}

#[test]
fn auth_fixtures_are_authorizer_v2_requests_with_an_identity_source() {
    for (path, text) in fixtures("auth") {
        let event: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !event.identity_source.unwrap_or_default().is_empty(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn connector_fixtures_are_sqs_batches_with_a_canary_and_a_malformed_body() {
    let mut bodies = Vec::new();
    for (path, text) in fixtures("connector") {
        let event: SqsEvent =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bodies.extend(event.records.into_iter().filter_map(|r| r.body));
    }
    let canary = r#"{"v":1,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"canary","enqueued_at_ms":1764000000000}"#;
    assert!(bodies.iter().any(|b| b == canary), "{bodies:?}");
    assert!(
        bodies
            .iter()
            .any(|b| serde_json::from_str::<serde_json::Value>(b).is_err()),
        "{bodies:?}"
    );
}

#[test]
fn monitor_fixtures_are_scheduled_events() {
    for (path, text) in fixtures("monitor") {
        let event: EventBridgeEvent =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(event.detail_type, "Scheduled Event", "{}", path.display());
    }
}
