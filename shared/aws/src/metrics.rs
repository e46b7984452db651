//! Operational metrics in CloudWatch's Embedded Metric Format (EMF): each emission is one JSON
//! object on a line of its own on stdout. Lambda ships stdout to CloudWatch Logs (with the
//! functions' JSON log format a line that is already a JSON object passes through unchanged), and
//! CloudWatch extracts the metrics into the `Tributary` namespace: no API call, no permission
//! beyond the logs every function already writes, and nothing to flush at the end of an invocation.
//!
//! Every dimension has a bounded set of values: only `Function`, `OperationType`, `State`,
//! `Provider`, `ErrorClass` and `Outcome` are dimensions, their values come from our code and the
//! provider catalog, and each is sanitized ([`dimension_value`]) so that a bug passing an id cannot
//! mint a metric per tenant, connection or run (each distinct value is a billed custom metric).
//! The metric names and dimension sets are what the alarms and the dashboard of
//! `infra/template.yaml` query, and what the README's "Metrics, alarms and traces" lists: change them together.
//!
//! Emitting never fails and never panics: a line that cannot be written is dropped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Tributary";

/// The most values EMF accepts in one metric's array.
const MAX_VALUES: usize = 100;
/// The longest dimension value we publish.
const MAX_DIMENSION_VALUE: usize = 64;

/// One finished unit of work (sync run invocation, action run, proxied call, inbound webhook,
/// outbound delivery attempt, token refresh, connection change).
#[derive(Debug, Clone, Copy)]
pub struct OperationMetrics<'a> {
    /// The function that did the work: `api`, `connector` or `monitor`.
    pub function: &'a str,
    /// `sync_run`, `action_run`, `proxy`, `inbound_webhook`, `webhook_delivery`, `token_refresh`
    /// or `connection_change`.
    pub operation_type: &'a str,
    /// How it ended: `succeeded`, `failed`, `continued`, `stalled`, `deferred`, …
    pub state: &'a str,
    /// The catalog provider it talked to, if any; without one, no provider metric is emitted.
    pub provider: Option<&'a str>,
    /// How long it took.
    pub duration_ms: u64,
    /// Records written (added, updated and deleted) by a sync run; 0 otherwise.
    pub records: u64,
    /// A sample of the durations of the requests made to the provider (the first 100 are kept).
    pub provider_latencies_ms: &'a [u64],
    /// (error class, count) of the provider requests that failed.
    pub provider_errors: &'a [(&'a str, u64)],
    /// How many times a provider's rate limit deferred the work.
    pub rate_limit_deferrals: u64,
}

/// Emits `Operations` and `OperationDuration` by `[Function, OperationType, State]`, and, when the
/// operation has a provider, `RecordsPerSecond` (sync runs that wrote records),
/// `ProviderLatency`, `RateLimitDeferrals` by `[Provider]` and `ProviderErrors` by
/// `[Provider, ErrorClass]`.
pub fn operation(m: &OperationMetrics<'_>) {
    emit(&operation_lines(m, now_ms()));
}

/// Emits `TokenRefreshes` by `[Outcome]`: `succeeded`, `failed` or `needs_reauth`.
pub fn token_refresh(outcome: &str) {
    emit(&[outcome_line("TokenRefreshes", outcome, now_ms())]);
}

/// Emits `Authorizations` by `[Outcome]`: `allowed`, `denied` or `error` (the authorizer could
/// not decide: API Gateway answers 500). A rise of denials is credential guessing or a revoked key
/// still in use.
pub fn authorization(outcome: &str) {
    emit(&[outcome_line("Authorizations", outcome, now_ms())]);
}

/// Emits `WebhookDeliveries` by `[Outcome]`: `succeeded`, `failed`, `exhausted` or `disabled`.
pub fn webhook_delivery(outcome: &str) {
    emit(&[outcome_line("WebhookDeliveries", outcome, now_ms())]);
}

/// Emits `CanaryRoundTrip` (no dimension): the pipeline canary's age when the worker took it from
/// the jobs queue.
pub fn canary_round_trip(round_trip_ms: u64) {
    emit(&[dimensionless_line(
        "CanaryRoundTrip",
        "Milliseconds",
        round_trip_ms,
        now_ms(),
    )]);
}

/// Emits `StalledRuns` (no dimension): the runs the monitor found stalled.
pub fn stalled_runs(count: u64) {
    emit(&[dimensionless_line("StalledRuns", "Count", count, now_ms())]);
}

/// Writes the lines with one write to the locked stdout, so that no other output (the log
/// subscriber writes to stdout too) lands inside a line. Errors are ignored: metrics are not worth
/// failing or panicking the work they describe.
fn emit(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Milliseconds since the Unix epoch, as EMF's `_aws.Timestamp` wants them.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A dimension value of bounded cardinality: ASCII lowercased, anything outside `[a-z0-9_.-]`
/// replaced by `_`, at most 64 characters; empty becomes `unknown` (CloudWatch refuses empty
/// dimension values).
pub fn dimension_value(raw: &str) -> String {
    let value: String = raw
        .chars()
        .take(MAX_DIMENSION_VALUE)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '.' | '-') => c,
            _ => '_',
        })
        .collect();
    if value.is_empty() {
        "unknown".to_owned()
    } else {
        value
    }
}

/// One metric directive: the dimension set, and the metrics with their units.
fn directive(dimensions: &[&str], metrics: &[(&str, &str)]) -> Value {
    json!({
        "Namespace": NAMESPACE,
        "Dimensions": [dimensions],
        "Metrics": metrics
            .iter()
            .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
            .collect::<Vec<_>>(),
    })
}

/// One EMF document: `members` (dimension values and metric values) at the root beside `_aws`.
fn document(timestamp_ms: u64, directives: Vec<Value>, mut members: Map<String, Value>) -> String {
    members.insert(
        "_aws".to_owned(),
        json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": directives }),
    );
    Value::Object(members).to_string()
}

/// The lines of one operation: the operation's own metrics (and those by provider, in a second
/// directive of the same line), then one line per provider error class.
fn operation_lines(m: &OperationMetrics<'_>, timestamp_ms: u64) -> Vec<String> {
    let mut members = Map::new();
    members.insert("Function".into(), dimension_value(m.function).into());
    members.insert(
        "OperationType".into(),
        dimension_value(m.operation_type).into(),
    );
    members.insert("State".into(), dimension_value(m.state).into());
    members.insert("Operations".into(), 1.into());
    members.insert("OperationDuration".into(), m.duration_ms.into());
    let mut directives = vec![directive(
        &["Function", "OperationType", "State"],
        &[
            ("Operations", "Count"),
            ("OperationDuration", "Milliseconds"),
        ],
    )];
    let Some(provider) = m.provider.map(dimension_value) else {
        return vec![document(timestamp_ms, directives, members)];
    };

    let mut by_provider = Vec::new();
    if m.operation_type == "sync_run" && m.records > 0 && m.duration_ms > 0 {
        let per_second = m.records as f64 * 1000.0 / m.duration_ms as f64;
        members.insert("RecordsPerSecond".into(), json!(per_second));
        by_provider.push(("RecordsPerSecond", "Count/Second"));
    }
    if !m.provider_latencies_ms.is_empty() {
        let sample = &m.provider_latencies_ms[..m.provider_latencies_ms.len().min(MAX_VALUES)];
        members.insert("ProviderLatency".into(), json!(sample));
        by_provider.push(("ProviderLatency", "Milliseconds"));
    }
    if m.rate_limit_deferrals > 0 {
        members.insert("RateLimitDeferrals".into(), m.rate_limit_deferrals.into());
        by_provider.push(("RateLimitDeferrals", "Count"));
    }
    if !by_provider.is_empty() {
        members.insert("Provider".into(), provider.clone().into());
        directives.push(directive(&["Provider"], &by_provider));
    }
    let mut lines = vec![document(timestamp_ms, directives, members)];

    // One line per class: a document has one value per dimension. Classes that sanitize to the
    // same value are added up.
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for (class, count) in m.provider_errors.iter().filter(|(_, count)| *count > 0) {
        let total = errors.entry(dimension_value(class)).or_default();
        *total = total.saturating_add(*count);
    }
    for (class, count) in errors {
        let mut members = Map::new();
        members.insert("Provider".into(), provider.clone().into());
        members.insert("ErrorClass".into(), class.into());
        members.insert("ProviderErrors".into(), count.into());
        lines.push(document(
            timestamp_ms,
            vec![directive(
                &["Provider", "ErrorClass"],
                &[("ProviderErrors", "Count")],
            )],
            members,
        ));
    }
    lines
}

/// A count of 1 of `metric` by `[Outcome]`.
fn outcome_line(metric: &str, outcome: &str, timestamp_ms: u64) -> String {
    let mut members = Map::new();
    members.insert("Outcome".into(), dimension_value(outcome).into());
    members.insert(metric.into(), 1.into());
    document(
        timestamp_ms,
        vec![directive(&["Outcome"], &[(metric, "Count")])],
        members,
    )
}

/// `metric` without dimensions: EMF's empty dimension set (`[[]]`, which "MAY be empty" in the
/// specification) publishes it with none, which is what its alarm queries.
fn dimensionless_line(metric: &str, unit: &str, value: u64, timestamp_ms: u64) -> String {
    let mut members = Map::new();
    members.insert(metric.into(), value.into());
    document(
        timestamp_ms,
        vec![directive(&[], &[(metric, unit)])],
        members,
    )
}

#[cfg(test)]
mod tests {
    //! Every line is checked against the JSON schema of CloudWatch's EMF specification, vendored in
    //! `emf.schema.json` from "Specification: Embedded metric format",
    //! https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
    //! (section "Embedded metric format example and JSON schema"; checked 2026-12-07: DimensionSet
    //! of at most 30 keys, StorageResolution), and against the rules of the same page that the
    //! schema does not express (`emf_rules`).

    use std::collections::BTreeSet;

    use super::*;

    const TIMESTAMP: u64 = 1_765_065_600_000; // 2025-12-07T00:00:00Z

    const DIMENSIONS: [&str; 6] = [
        "Function",
        "OperationType",
        "State",
        "Provider",
        "ErrorClass",
        "Outcome",
    ];

    /// The schema names no draft. Its `$id`s are JSON pointers (`#/properties/_aws`), which drafts
    /// 6 and later read as base URIs and refuse; draft 4 spells that keyword `id` and ignores them,
    /// and has every keyword the schema uses (`type`, `required`, `properties`, `items`,
    /// `minItems`, `maxItems`, `pattern`, `minLength`, `maxLength`).
    fn schema() -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(include_str!("emf.schema.json")).unwrap();
        jsonschema::draft4::new(&schema).unwrap()
    }

    /// The specification's rules beyond the schema: at most 100 metrics per directive, 30
    /// dimensions per set and 100 values per metric; every dimension a top-level string, every
    /// metric a top-level number or array of numbers; the timestamp in epoch milliseconds.
    fn emf_rules(doc: &Value) -> Result<(), String> {
        let root = doc.as_object().ok_or("not an object")?;
        let aws = &root["_aws"];
        let timestamp = aws["Timestamp"].as_u64().ok_or("no integer timestamp")?;
        // Epoch milliseconds of 2001 to 2286: seconds or microseconds fall outside.
        if !(1_000_000_000_000..10_000_000_000_000).contains(&timestamp) {
            return Err(format!("timestamp {timestamp} is not epoch milliseconds"));
        }
        for d in aws["CloudWatchMetrics"].as_array().ok_or("no directives")? {
            let metrics = d["Metrics"].as_array().ok_or("no metrics")?;
            if metrics.len() > 100 {
                return Err(format!("{} metrics in a directive", metrics.len()));
            }
            for set in d["Dimensions"].as_array().ok_or("no dimensions")? {
                let set = set.as_array().ok_or("a dimension set is not an array")?;
                if set.len() > 30 {
                    return Err(format!("{} dimensions in a set", set.len()));
                }
                for name in set {
                    let name = name.as_str().ok_or("a dimension name is not a string")?;
                    match root.get(name) {
                        Some(Value::String(v)) if !v.is_empty() && v.len() <= 1024 => {}
                        other => return Err(format!("dimension {name} is {other:?}")),
                    }
                }
            }
            for metric in metrics {
                let name = metric["Name"].as_str().ok_or("a metric has no name")?;
                match root.get(name) {
                    Some(Value::Number(_)) => {}
                    Some(Value::Array(values))
                        if !values.is_empty()
                            && values.len() <= 100
                            && values.iter().all(Value::is_number) => {}
                    other => return Err(format!("metric {name} is {other:?}")),
                }
            }
        }
        Ok(())
    }

    /// Parses each line, checks it against the schema and the rules, and returns the documents.
    fn valid(lines: &[String]) -> Vec<Value> {
        let schema = schema();
        lines
            .iter()
            .map(|line| {
                assert!(!line.contains('\n'), "a line break inside {line}");
                let doc: Value = serde_json::from_str(line).unwrap();
                if let Err(e) = schema.validate(&doc) {
                    panic!("{line} is not valid EMF: {e}");
                }
                if let Err(e) = emf_rules(&doc) {
                    panic!("{line} breaks the EMF rules: {e}");
                }
                doc
            })
            .collect()
    }

    /// (metric name, dimension set) of every metric in `docs`.
    fn published(docs: &[Value]) -> BTreeSet<(String, Vec<String>)> {
        let mut out = BTreeSet::new();
        for doc in docs {
            for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                assert_eq!(d["Namespace"], NAMESPACE);
                for set in d["Dimensions"].as_array().unwrap() {
                    let set: Vec<String> = serde_json::from_value(set.clone()).unwrap();
                    for metric in d["Metrics"].as_array().unwrap() {
                        out.insert((metric["Name"].as_str().unwrap().to_owned(), set.clone()));
                    }
                }
            }
        }
        out
    }

    fn metric(name: &str, dimensions: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            dimensions.iter().map(|d| (*d).to_owned()).collect(),
        )
    }

    fn sync_run<'a>() -> OperationMetrics<'a> {
        OperationMetrics {
            function: "connector",
            operation_type: "sync_run",
            state: "succeeded",
            provider: Some("hubspot"),
            duration_ms: 2_000,
            records: 500,
            provider_latencies_ms: &[120, 80],
            provider_errors: &[("rate_limited", 2), ("timeout", 1)],
            rate_limit_deferrals: 3,
        }
    }

    /// Every shape of operation, including the edges: no provider, nothing by provider, 0 ms,
    /// more latencies than EMF takes, odd strings.
    fn corpus() -> Vec<String> {
        let many: Vec<u64> = (0..250).collect();
        let strange = "Tenant ten_01J9Z3 /conn_42\n\"x\"".repeat(10);
        let errors = [("http_5xx", 1), ("HTTP 5xx", 2), ("unused", 0)];
        let operations = [
            sync_run(),
            OperationMetrics {
                provider: None,
                ..sync_run()
            },
            OperationMetrics {
                operation_type: "proxy",
                state: "failed",
                duration_ms: 0,
                records: 0,
                provider_latencies_ms: &many,
                provider_errors: &errors,
                rate_limit_deferrals: 0,
                ..sync_run()
            },
            OperationMetrics {
                function: "",
                operation_type: &strange,
                state: &strange,
                provider: Some(&strange),
                provider_latencies_ms: &[],
                provider_errors: &[(&strange, u64::MAX), (&strange, 1)],
                ..sync_run()
            },
            OperationMetrics {
                records: 0,
                provider_latencies_ms: &[],
                provider_errors: &[],
                rate_limit_deferrals: 0,
                ..sync_run()
            },
        ];
        let mut lines: Vec<String> = operations
            .iter()
            .flat_map(|m| operation_lines(m, TIMESTAMP))
            .collect();
        for outcome in ["succeeded", "failed", "needs_reauth", "", &strange] {
            lines.push(outcome_line("TokenRefreshes", outcome, TIMESTAMP));
        }
        for outcome in ["succeeded", "failed", "exhausted", "disabled"] {
            lines.push(outcome_line("WebhookDeliveries", outcome, TIMESTAMP));
        }
        for outcome in ["allowed", "denied", "error"] {
            lines.push(outcome_line("Authorizations", outcome, TIMESTAMP));
        }
        lines.push(dimensionless_line(
            "CanaryRoundTrip",
            "Milliseconds",
            1_234,
            TIMESTAMP,
        ));
        lines.push(dimensionless_line("StalledRuns", "Count", 0, TIMESTAMP));
        lines
    }

    #[test]
    fn every_line_is_valid_emf() {
        let lines = corpus();
        assert_eq!(valid(&lines).len(), lines.len());
    }

    #[test]
    fn the_schema_rejects_what_the_specification_rejects() {
        let schema = schema();
        let line: Value =
            serde_json::from_str(&outcome_line("TokenRefreshes", "failed", TIMESTAMP)).unwrap();
        assert!(schema.is_valid(&line));
        let mut without_timestamp = line.clone();
        without_timestamp["_aws"]
            .as_object_mut()
            .unwrap()
            .remove("Timestamp");
        assert!(!schema.is_valid(&without_timestamp));
        let mut bad_unit = line.clone();
        bad_unit["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Requests");
        assert!(!schema.is_valid(&bad_unit));
        let mut no_dimension_set = line.clone();
        no_dimension_set["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([]);
        assert!(!schema.is_valid(&no_dimension_set));
        let mut thirty_one_dimensions = line;
        thirty_one_dimensions["_aws"]["CloudWatchMetrics"][0]["Dimensions"] =
            json!([(0..31).map(|i| format!("D{i}")).collect::<Vec<_>>()]);
        assert!(!schema.is_valid(&thirty_one_dimensions));
    }

    /// The checks of `emf_rules` catch each breach (most of which the schema lets through).
    #[test]
    fn the_rules_reject_what_the_specification_forbids() {
        let line: Value =
            serde_json::from_str(&outcome_line("TokenRefreshes", "failed", TIMESTAMP)).unwrap();
        assert_eq!(emf_rules(&line), Ok(()));
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut doc = line.clone();
            edit(&mut doc);
            assert!(emf_rules(&doc).is_err(), "accepted {doc}");
        };
        broken(&|d| d["_aws"]["Timestamp"] = json!(1_765_065_600)); // seconds
        broken(&|d| d["Outcome"] = json!(1)); // a dimension that is not a string
        broken(&|d| _ = d.as_object_mut().unwrap().remove("Outcome")); // a missing dimension
        broken(&|d| d["TokenRefreshes"] = json!("1")); // a metric that is not a number
        broken(&|d| d["TokenRefreshes"] = json!((0..101).collect::<Vec<_>>())); // 101 values
        broken(&|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(
                (0..101)
                    .map(|_| json!({"Name": "TokenRefreshes"}))
                    .collect::<Vec<_>>()
            );
        });
        broken(&|d| {
            let names: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
            for name in &names {
                d[name.as_str()] = json!("x");
            }
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([names]);
        });
    }

    #[test]
    fn a_sync_run_emits_exactly_these_lines() {
        assert_eq!(
            operation_lines(&sync_run(), TIMESTAMP),
            vec![
                r#"{"Function":"connector","OperationDuration":2000,"OperationType":"sync_run","Operations":1,"Provider":"hubspot","ProviderLatency":[120,80],"RateLimitDeferrals":3,"RecordsPerSecond":250.0,"State":"succeeded","_aws":{"CloudWatchMetrics":[{"Dimensions":[["Function","OperationType","State"]],"Metrics":[{"Name":"Operations","Unit":"Count"},{"Name":"OperationDuration","Unit":"Milliseconds"}],"Namespace":"Tributary"},{"Dimensions":[["Provider"]],"Metrics":[{"Name":"RecordsPerSecond","Unit":"Count/Second"},{"Name":"ProviderLatency","Unit":"Milliseconds"},{"Name":"RateLimitDeferrals","Unit":"Count"}],"Namespace":"Tributary"}],"Timestamp":1765065600000}}"#,
                r#"{"ErrorClass":"rate_limited","Provider":"hubspot","ProviderErrors":2,"_aws":{"CloudWatchMetrics":[{"Dimensions":[["Provider","ErrorClass"]],"Metrics":[{"Name":"ProviderErrors","Unit":"Count"}],"Namespace":"Tributary"}],"Timestamp":1765065600000}}"#,
                r#"{"ErrorClass":"timeout","Provider":"hubspot","ProviderErrors":1,"_aws":{"CloudWatchMetrics":[{"Dimensions":[["Provider","ErrorClass"]],"Metrics":[{"Name":"ProviderErrors","Unit":"Count"}],"Namespace":"Tributary"}],"Timestamp":1765065600000}}"#,
            ]
        );
    }

    #[test]
    fn the_other_emitters_write_exactly_these_lines() {
        assert_eq!(
            outcome_line("TokenRefreshes", "needs_reauth", TIMESTAMP),
            r#"{"Outcome":"needs_reauth","TokenRefreshes":1,"_aws":{"CloudWatchMetrics":[{"Dimensions":[["Outcome"]],"Metrics":[{"Name":"TokenRefreshes","Unit":"Count"}],"Namespace":"Tributary"}],"Timestamp":1765065600000}}"#
        );
        assert_eq!(
            dimensionless_line("CanaryRoundTrip", "Milliseconds", 1_500, TIMESTAMP),
            r#"{"CanaryRoundTrip":1500,"_aws":{"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"CanaryRoundTrip","Unit":"Milliseconds"}],"Namespace":"Tributary"}],"Timestamp":1765065600000}}"#
        );
    }

    #[test]
    fn metric_names_and_dimension_sets_are_the_ones_the_alarms_and_dashboard_query() {
        let docs = valid(&corpus());
        let expected: BTreeSet<_> = [
            metric("Operations", &["Function", "OperationType", "State"]),
            metric("OperationDuration", &["Function", "OperationType", "State"]),
            metric("RecordsPerSecond", &["Provider"]),
            metric("ProviderLatency", &["Provider"]),
            metric("RateLimitDeferrals", &["Provider"]),
            metric("ProviderErrors", &["Provider", "ErrorClass"]),
            metric("TokenRefreshes", &["Outcome"]),
            metric("WebhookDeliveries", &["Outcome"]),
            metric("Authorizations", &["Outcome"]),
            metric("CanaryRoundTrip", &[]),
            metric("StalledRuns", &[]),
        ]
        .into_iter()
        .collect();
        assert_eq!(published(&docs), expected);
    }

    #[test]
    fn an_operation_without_provider_emits_no_provider_metric() {
        let m = OperationMetrics {
            operation_type: "proxy",
            provider: None,
            ..sync_run()
        };
        let docs = valid(&operation_lines(&m, TIMESTAMP));
        assert_eq!(docs.len(), 1);
        assert_eq!(
            published(&docs),
            [
                metric("Operations", &["Function", "OperationType", "State"]),
                metric("OperationDuration", &["Function", "OperationType", "State"]),
            ]
            .into_iter()
            .collect()
        );
        assert!(docs[0].get("Provider").is_none());
    }

    #[test]
    fn records_per_second_only_for_sync_runs_that_wrote_records_in_measurable_time() {
        let rate = |m: OperationMetrics<'_>| {
            valid(&operation_lines(&m, TIMESTAMP))[0]
                .get("RecordsPerSecond")
                .cloned()
        };
        assert_eq!(rate(sync_run()), Some(json!(250.0)));
        assert_eq!(
            rate(OperationMetrics {
                records: 0,
                ..sync_run()
            }),
            None
        );
        assert_eq!(
            rate(OperationMetrics {
                duration_ms: 0,
                ..sync_run()
            }),
            None
        );
        assert_eq!(
            rate(OperationMetrics {
                operation_type: "action_run",
                ..sync_run()
            }),
            None
        );
    }

    #[test]
    fn latencies_keep_the_first_hundred_and_deferrals_only_when_some() {
        let many: Vec<u64> = (0..250).collect();
        let m = OperationMetrics {
            provider_latencies_ms: &many,
            rate_limit_deferrals: 0,
            ..sync_run()
        };
        let doc = &valid(&operation_lines(&m, TIMESTAMP))[0];
        assert_eq!(doc["ProviderLatency"], json!(many[..100]));
        assert!(doc.get("RateLimitDeferrals").is_none());
    }

    #[test]
    fn error_classes_that_sanitize_alike_are_added_up_and_zero_counts_dropped() {
        let m = OperationMetrics {
            provider_errors: &[("HTTP 5xx", 2), ("http_5xx", 3), ("timeout", 0)],
            ..sync_run()
        };
        let docs = valid(&operation_lines(&m, TIMESTAMP));
        let errors: Vec<(&str, u64)> = docs[1..]
            .iter()
            .map(|d| {
                (
                    d["ErrorClass"].as_str().unwrap(),
                    d["ProviderErrors"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(errors, vec![("http_5xx", 5)]);
    }

    /// However a caller misuses the API, only the six dimensions exist, and no value can carry
    /// an id's shape into one: lowercase `[a-z0-9_.-]`, at most 64 characters.
    #[test]
    fn a_tenant_id_passed_by_mistake_never_becomes_a_dimension_as_is() {
        let id = "Tenant ten_01J9Z3XQ8K/conn_01J9Z3 run=42 \"é\"\n".repeat(4);
        let m = OperationMetrics {
            function: &id,
            operation_type: &id,
            state: &id,
            provider: Some(&id),
            provider_errors: &[(&id, 1)],
            ..sync_run()
        };
        let mut lines = operation_lines(&m, TIMESTAMP);
        lines.push(outcome_line("WebhookDeliveries", &id, TIMESTAMP));
        let sanitized = dimension_value(&id);
        assert_eq!(sanitized.len(), 64);
        assert!(sanitized.starts_with("tenant_ten_01j9z3xq8k_conn_01j9z3_run_42"));
        for doc in valid(&lines) {
            for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                for name in d["Dimensions"][0].as_array().unwrap() {
                    let name = name.as_str().unwrap();
                    assert!(DIMENSIONS.contains(&name), "dimension {name}");
                    let value = doc[name].as_str().unwrap();
                    assert_eq!(value, sanitized, "{name}");
                }
            }
            let root = doc.as_object().unwrap();
            assert!(
                root.values().all(|v| v.as_str() != Some(id.as_str())),
                "the raw value is in {doc}"
            );
        }
    }

    #[test]
    fn dimension_values_are_bounded_lowercase_and_never_empty() {
        assert_eq!(dimension_value("hubspot"), "hubspot");
        assert_eq!(dimension_value("Google-Sheets v2.1"), "google-sheets_v2.1");
        assert_eq!(dimension_value(""), "unknown");
        assert_eq!(dimension_value("ü/😀"), "___");
        assert_eq!(dimension_value(&"a".repeat(65)), "a".repeat(64));
    }

    #[test]
    fn the_clock_gives_epoch_milliseconds() {
        let line = outcome_line("TokenRefreshes", "succeeded", now_ms());
        valid(&[line]);
    }

    #[test]
    fn emitting_never_panics() {
        let m = OperationMetrics {
            function: "",
            provider: Some(""),
            provider_errors: &[("", u64::MAX), ("x", u64::MAX)],
            ..sync_run()
        };
        operation(&m);
        token_refresh("");
        webhook_delivery("succeeded");
        canary_round_trip(u64::MAX);
        stalled_runs(0);
        emit(&[]);
    }
}
