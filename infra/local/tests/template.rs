//! The real `infra/template.yaml` keeps the contract the functions and the local stack rely on.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tributary_aws::iam;
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

/// Every route of every function, as (method, path, authorizer).
fn routes(t: &Template) -> BTreeSet<(String, String, Option<String>)> {
    t.functions()
        .expect("functions")
        .into_iter()
        .flat_map(|f| f.events)
        .filter_map(|e| match e {
            EventDef::HttpApi(RouteDef {
                method,
                path,
                authorizer,
            }) => Some((method, path, authorizer)),
            _ => None,
        })
        .collect()
}

#[test]
fn exactly_health_openapi_docs_the_connect_page_the_dashboard_and_the_webhook_receiver_are_public_and_everything_else_needs_the_authorizer()
 {
    let t = template();
    let public =
        |method: &str, path: &str| (method.to_owned(), path.to_owned(), Some("NONE".to_owned()));
    // The exact set: a new public route is a decision to review here, not a side effect.
    assert_eq!(
        routes(&t),
        BTreeSet::from([
            public("GET", "/v1/health"),
            public("GET", "/v1/openapi.json"),
            public("GET", "/docs"),
            public("GET", "/docs/redoc-2.5.4.standalone.js"),
            public("GET", "/connect/{token}"),
            public("POST", "/connect/{token}/{integration_id}"),
            public("GET", "/connect/{token}/{integration_id}/oauth"),
            public("GET", "/connect/callback"),
            // Providers authenticate by signing the body; the route verifies it.
            public("POST", "/v1/webhooks/{integration_id}"),
            // A single-use dashboard link, then the session cookie it becomes; the API checks both.
            public("GET", "/dashboard/{token}"),
            public("GET", "/dashboard"),
            ("ANY".to_owned(), "/{proxy+}".to_owned(), None),
        ])
    );
    let api = t.http_api().expect("valid").expect("an HttpApi");
    let name = api.default_authorizer.expect("a default authorizer");
    assert_eq!(api.authorizers.len(), 1, "one authorizer");
    let authorizer = &api.authorizers[&name];
    assert_eq!(authorizer.function, "AuthFunction");
    assert_eq!(
        authorizer.identity_sources,
        vec![IdentitySource::Header("Authorization".into())]
    );
}

#[test]
fn the_authorizer_cache_ttl_is_a_documented_parameter_of_300_seconds() {
    let t = template();
    let api = t
        .resources()
        .find(|r| r.logical_id == "HttpApi")
        .expect("HttpApi");
    assert_eq!(
        api.properties["Auth"]["Authorizers"]["TributaryAuthorizer"]["Identity"]["ReauthorizeEvery"],
        json!({"Ref": "AuthorizerCacheTtlSeconds"})
    );
    assert_eq!(t.parameter_defaults()["AuthorizerCacheTtlSeconds"], "300");
    let declared = t.parameter("AuthorizerCacheTtlSeconds").expect("declared");
    assert_eq!(declared["Type"], "Number");
    assert_eq!(declared["MaxValue"], 3600, "API Gateway's maximum");
    let description = declared["Description"].as_str().unwrap_or_default();
    for guarantee in ["Revoking a key", "disabling or deleting a tenant", "within"] {
        assert!(description.contains(guarantee), "{description}");
    }
    let authorizer = t
        .http_api()
        .expect("valid")
        .expect("an HttpApi")
        .authorizers["TributaryAuthorizer"]
        .clone();
    assert_eq!(authorizer.ttl, Duration::from_secs(300));
}

/// `samconfig.toml`'s `parameter_overrides`, by environment (`default`, `production`, …).
fn samconfig_overrides() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(workspace::root().join("samconfig.toml")).expect("samconfig.toml");
    let mut environment = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            environment = table.split('.').next().unwrap_or_default().to_owned();
        } else if line.starts_with("parameter_overrides")
            || line.contains("EgressAllowlist")
            || line.contains("ProviderOrigins")
        {
            out.push((environment.clone(), line.to_owned()));
        }
    }
    out
}

#[test]
fn issuer_egress_allowlist_is_empty_in_aws() {
    let t = template();
    assert_eq!(t.parameter_defaults()["IssuerEgressAllowlist"], "");
    let function = function(&t, "AuthFunction");
    assert_eq!(
        function.environment["EGRESS_ALLOWLIST"],
        json!({"Ref": "IssuerEgressAllowlist"})
    );
    let overrides = samconfig_overrides();
    let stages: BTreeSet<&str> = overrides
        .iter()
        .filter_map(|(_, line)| line.split("Stage=\\\"").nth(1))
        .filter_map(|rest| rest.split('\\').next())
        .collect();
    assert!(
        stages.contains("dev") && stages.contains("prod"),
        "samconfig.toml's deploy stages were not found: {overrides:?}"
    );
    for (environment, line) in &overrides {
        let local = line.contains(r#"Stage=\"local\""#);
        for parameter in [
            "IssuerEgressAllowlist",
            "ProviderEgressAllowlist",
            "ProviderOrigins",
        ] {
            assert!(
                local
                    || !line.contains(parameter)
                    || line.contains(&format!(r#"{parameter}=\"\""#)),
                "samconfig.toml [{environment}] sets {parameter} in AWS: {line}"
            );
        }
    }
}

#[test]
fn provider_egress_and_base_url_overrides_are_empty_in_aws_and_reach_only_the_api() {
    let t = template();
    for (parameter, variable) in [
        ("ProviderEgressAllowlist", "EGRESS_ALLOWLIST"),
        ("ProviderOrigins", "PROVIDER_ORIGINS"),
    ] {
        assert_eq!(t.parameter_defaults()[parameter], "", "{parameter}");
        assert_eq!(
            function(&t, "ApiFunction").environment[variable],
            json!({"Ref": parameter}),
            "{variable}"
        );
    }
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

/// What a set of policy statements allows: (resource logical id, action, `LeadingKeys` patterns).
type Granted = BTreeSet<(String, String, Vec<String>)>;

/// The managed policies SAM attaches to the roles it creates (logs; X-Ray for `Tracing: Active`),
/// which an explicit role may carry too. Anything else would grant what `iam.rs` does not list.
const BASELINE_MANAGED_POLICIES: [&str; 2] = [
    "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess",
];

fn strings(value: &Value, what: &str) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| panic!("{what}: {v} is not a string"))
                    .to_owned()
            })
            .collect(),
        other => panic!("{what}: {other} is neither a string nor a list"),
    }
}

/// The logical id a policy `Resource` names: `!GetAtt X.Arn`, `!Ref X` (a secret's ARN), or a table's
/// index (`!Sub "${X.Arn}/index/I"`, as `X/index/I`). Anything else (`*`, a hand-written ARN) is
/// refused: grants name template resources.
fn resource_id(value: &Value, what: &str) -> String {
    if let Some([Value::String(id), Value::String(attr)]) = value
        .get("Fn::GetAtt")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        && attr == "Arn"
    {
        return id.clone();
    }
    if let Some(Value::String(id)) = value.get("Ref") {
        return id.clone();
    }
    // A table's index: `!Sub "${Table.Arn}/index/Name"`, as `Table/index/Name`.
    if let Some((table, index)) = value
        .get("Fn::Sub")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("${"))
        .and_then(|s| s.split_once(".Arn}/index/"))
        && !index.is_empty()
        && index
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return format!("{table}/index/{index}");
    }
    panic!(
        "{what}: resource {value} is not `!GetAtt <Resource>.Arn`, `!Ref <Resource>` or \
         `!Sub \"${{<Table>.Arn}}/index/<Index>\"`"
    )
}

/// The `LeadingKeys` patterns of a statement's condition; only that condition is understood, and it
/// must come with the `Null` check (without a partition key, `ForAllValues` holds vacuously).
fn leading_keys(condition: Option<&Value>, what: &str) -> Vec<String> {
    let Some(condition) = condition else {
        return Vec::new();
    };
    assert_eq!(
        condition,
        &json!({
            "ForAllValues:StringLike": {"dynamodb:LeadingKeys": condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]},
            "Null": {"dynamodb:LeadingKeys": "false"},
        }),
        "{what}: the only condition understood is LeadingKeys (ForAllValues:StringLike) with its Null check"
    );
    let mut keys = strings(
        &condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        what,
    );
    keys.sort();
    keys
}

fn granted_by(statements: &[Value], what: &str) -> Granted {
    let mut granted = Granted::new();
    for (i, statement) in statements.iter().enumerate() {
        let what = format!("{what} statement {i}");
        for key in statement
            .as_object()
            .expect("a statement is a mapping")
            .keys()
        {
            assert!(
                ["Sid", "Effect", "Action", "Resource", "Condition"].contains(&key.as_str()),
                "{what}: {key} is not understood (NotAction, NotResource, Principal…)"
            );
        }
        assert_eq!(statement["Effect"], "Allow", "{what}");
        let keys = leading_keys(statement.get("Condition"), &what);
        let resources: Vec<String> = match &statement["Resource"] {
            Value::Array(items) => items.iter().map(|r| resource_id(r, &what)).collect(),
            one => vec![resource_id(one, &what)],
        };
        for action in strings(&statement["Action"], &what) {
            assert!(!action.contains('*'), "{what}: wildcard action {action}");
            for resource in &resources {
                granted.insert((resource.clone(), action.clone(), keys.clone()));
            }
        }
    }
    granted
}

/// Every statement the function's role gets, whether SAM builds the role from `Policies` or the
/// function names its own `Role`.
fn function_statements(t: &Template, id: &str) -> Vec<Value> {
    let resource = t
        .resources()
        .find(|r| r.logical_id == id)
        .unwrap_or_else(|| panic!("{id} is missing"));
    let props = resource.properties;
    let mut statements = Vec::new();
    if let Some(role) = props.get("Role") {
        assert!(
            props.get("Policies").is_none(),
            "{id}: SAM ignores Policies when Role is set"
        );
        let role_id = resource_id(role, id);
        let role = t
            .resources()
            .find(|r| r.logical_id == role_id)
            .unwrap_or_else(|| panic!("{id}: role {role_id} is missing"));
        assert_eq!(role.kind, "AWS::IAM::Role", "{role_id}");
        assert_eq!(
            role.properties["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]),
            "{role_id} must be assumable by Lambda only"
        );
        for arn in role.properties["ManagedPolicyArns"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let arn = arn["Fn::Sub"].as_str().unwrap_or_default();
            assert!(
                BASELINE_MANAGED_POLICIES.contains(&arn),
                "{role_id}: managed policy {arn} grants what iam.rs does not list"
            );
        }
        for key in role.properties.keys() {
            assert!(
                [
                    "Description",
                    "AssumeRolePolicyDocument",
                    "ManagedPolicyArns",
                    "Policies"
                ]
                .contains(&key.as_str()),
                "{role_id}: {key} is not understood"
            );
        }
        for policy in role.properties["Policies"].as_array().into_iter().flatten() {
            statements.extend(
                policy["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    } else {
        let f = function(t, id);
        assert!(
            !f.events.iter().any(|e| matches!(e, EventDef::Sqs(_))),
            "{id}: with an SQS event and no Role, SAM attaches AWSLambdaSQSQueueExecutionRole (every queue of the account)"
        );
        for policy in props
            .get("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let object = policy.as_object();
            assert!(
                object.is_some_and(|o| o.len() == 1 && o.contains_key("Statement")),
                "{id}: {policy} is not an explicit `Statement` (SAM policy templates and managed policies grant more than iam.rs lists)"
            );
            statements.extend(policy["Statement"].as_array().cloned().unwrap_or_default());
        }
    }
    statements
}

#[test]
fn every_function_is_granted_exactly_the_actions_its_adapters_call() {
    let t = template();
    let functions: BTreeSet<String> = t
        .functions()
        .expect("functions")
        .into_iter()
        .map(|f| f.logical_id)
        .collect();
    let listed: BTreeSet<String> = iam::FUNCTIONS
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect();
    assert_eq!(
        functions, listed,
        "every function of the template has a list in shared/aws/src/iam.rs"
    );
    for (function, grants) in iam::FUNCTIONS {
        let granted = granted_by(&function_statements(&t, function), function);
        let expected: Granted = grants
            .iter()
            .flat_map(|g| {
                let mut keys: Vec<String> =
                    g.leading_keys.iter().map(|k| (*k).to_owned()).collect();
                keys.sort();
                g.actions
                    .iter()
                    .map(move |a| (g.resource.to_owned(), (*a).to_owned(), keys.clone()))
            })
            .collect();
        let extra: Vec<_> = granted.difference(&expected).collect();
        assert!(
            extra.is_empty(),
            "{function} is granted what shared/aws/src/iam.rs does not list: {extra:?}"
        );
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{function} is not granted what shared/aws/src/iam.rs lists: {missing:?}"
        );
    }
}
