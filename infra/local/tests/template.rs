//! The real `infra/template.yaml` keeps the contract the functions and the local stack rely on.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tributary_local::{EventDef, IdentitySource, RouteDef, Template, workspace};

fn template() -> Template {
    Template::load(&workspace::template_path()).expect("infra/template.yaml parses")
}

fn function(t: &Template, logical_id: &str) -> tributary_local::FunctionDef {
    t.functions()
        .expect("functions")
        .into_iter()
        .find(|f| f.logical_id == logical_id)
        .unwrap_or_else(|| panic!("{logical_id} is missing"))
}

#[test]
fn contract_resources_exist_under_their_logical_ids() {
    let t = template();
    let ids: BTreeSet<&str> = t.resources().map(|r| r.logical_id).collect();
    for id in [
        "HttpApi",
        "ApiFunction",
        "AuthFunction",
        "ConnectorFunction",
        "MonitorFunction",
        "ControlTable",
        "RecordsTable",
        "JobsQueue",
        "JobsDeadLetterQueue",
        "AdminApiKeySecret",
    ] {
        assert!(ids.contains(id), "{id} is missing");
    }
}

#[test]
fn functions_run_the_contract_binaries_with_the_shared_environment() {
    let t = template();
    for (id, binary) in [
        ("ApiFunction", "tributary-api"),
        ("AuthFunction", "tributary-auth"),
        ("ConnectorFunction", "tributary-connector"),
        ("MonitorFunction", "tributary-monitor"),
    ] {
        let f = function(&t, id);
        assert_eq!(f.binary, binary);
        assert_eq!(f.environment["TRIBUTARY_STAGE"], json!({"Ref": "Stage"}));
        assert_eq!(
            f.environment["CONTROL_TABLE"],
            json!({"Ref": "ControlTable"})
        );
        assert_eq!(
            f.environment["RECORDS_TABLE"],
            json!({"Ref": "RecordsTable"})
        );
        assert_eq!(f.environment["JOBS_QUEUE_URL"], json!({"Ref": "JobsQueue"}));
        assert_eq!(
            f.environment["JOBS_DLQ_URL"],
            json!({"Ref": "JobsDeadLetterQueue"})
        );
        assert_eq!(
            f.environment["ADMIN_KEY_SECRET_ID"],
            json!({"Ref": "AdminApiKeySecret"})
        );
        assert_eq!(f.log_format.as_deref(), Some("JSON"));
    }
    assert_eq!(
        function(&t, "ApiFunction").environment["CANARY_STALE_AFTER_SECONDS"],
        "180"
    );
}

#[test]
fn health_is_public_and_every_other_route_goes_through_the_authorizer() {
    let t = template();
    let routes: Vec<RouteDef> = function(&t, "ApiFunction")
        .events
        .into_iter()
        .filter_map(|e| match e {
            EventDef::HttpApi(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(routes.contains(&RouteDef {
        method: "GET".into(),
        path: "/v1/health".into(),
        authorizer: Some("NONE".into()),
    }));
    assert!(routes.contains(&RouteDef {
        method: "ANY".into(),
        path: "/{proxy+}".into(),
        authorizer: None,
    }));
    let api = t.http_api().expect("valid").expect("an HttpApi");
    let name = api.default_authorizer.expect("a default authorizer");
    let authorizer = &api.authorizers[&name];
    assert_eq!(authorizer.function, "AuthFunction");
    assert_eq!(
        authorizer.identity_sources,
        vec![IdentitySource::Header("Authorization".into())]
    );
    assert_eq!(authorizer.ttl, Duration::from_secs(300));
}

#[test]
fn jobs_queue_visibility_is_at_least_six_connector_timeouts_plus_the_batching_window() {
    let t = template();
    let connector = function(&t, "ConnectorFunction");
    let source = connector
        .events
        .iter()
        .find_map(|e| match e {
            EventDef::Sqs(s) => Some(s.clone()),
            _ => None,
        })
        .expect("an SQS event source");
    assert_eq!(source.queue, "JobsQueue");
    assert_eq!(source.batch_size, 10);
    assert!(source.report_batch_item_failures);
    let queue = t
        .resources()
        .find(|r| r.logical_id == "JobsQueue")
        .expect("JobsQueue");
    let visibility = queue.properties["VisibilityTimeout"]
        .as_u64()
        .expect("an explicit VisibilityTimeout");
    let needed = 6 * connector.timeout.as_secs() + source.batching_window.as_secs();
    assert!(visibility >= needed, "visibility {visibility} < {needed}");
    assert!(queue.properties["MaximumMessageSize"].is_u64());
    assert_eq!(queue.properties["RedrivePolicy"]["maxReceiveCount"], 5);
}

#[test]
fn monitor_runs_every_minute() {
    let t = template();
    let schedules: Vec<String> = function(&t, "MonitorFunction")
        .events
        .into_iter()
        .filter_map(|e| match e {
            EventDef::Schedule { expression, .. } => Some(expression),
            _ => None,
        })
        .collect();
    assert_eq!(schedules, ["rate(1 minute)"]);
}

#[test]
fn gateway_throttle_comes_from_parameters_that_document_how_to_size_them() {
    let t = template();
    let api = t
        .resources()
        .find(|r| r.logical_id == "HttpApi")
        .expect("HttpApi");
    let settings = &api.properties["DefaultRouteSettings"];
    for (setting, parameter, default) in [
        ("ThrottlingRateLimit", "ApiThrottlingRateLimit", "100"),
        ("ThrottlingBurstLimit", "ApiThrottlingBurstLimit", "200"),
    ] {
        assert_eq!(settings[setting], json!({"Ref": parameter}), "{setting}");
        let declared = t
            .parameter(parameter)
            .unwrap_or_else(|| panic!("{parameter} is not a parameter"));
        assert_eq!(declared["Type"], "Number", "{parameter}");
        assert_eq!(t.parameter_defaults()[parameter], default, "{parameter}");
        let description = declared["Description"].as_str().unwrap_or_default();
        assert!(
            description.contains("Sizing rule") && description.contains("regional"),
            "{parameter} must say how to size it: {description}"
        );
    }
}
