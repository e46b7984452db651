//! The `tributary` binary as a connector author runs it.

use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{header, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn tributary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args).env_remove("TRIBUTARY_EGRESS_ALLOW");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

async fn run(args: Vec<String>, env: Vec<(&'static str, &'static str)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        tributary(&a, &env)
    })
    .await
    .unwrap()
}

#[test]
fn catalog_validate_passes_on_the_embedded_catalog() {
    let out = tributary(&["catalog", "validate"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/catalog");
    let out = tributary(&["catalog", "validate", dir], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn catalog_validate_reports_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    let text = include_str!("../../engine/catalog/stripe.yaml").replace(
        "    records: data\n    primary_key: [id]\n  - name: invoices",
        "    records: data\n    primary_key: [id]\n    sink: true\n  - name: invoices",
    );
    std::fs::write(&file, &text).unwrap();

    let out = tributary(&["catalog", "validate", file.to_str().unwrap()], &[]);

    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.trim() == "sink: true").unwrap() + 1;
    assert!(stderr.contains(&format!("broken.yaml:{line}:")), "{stderr}");
    assert!(stderr.contains("unknown field `sink`"), "{stderr}");
}

/// A spec with `deprecations`: an end within 90 days is a warning (the spec is still valid), an
/// end that has passed is an error; a `checked` or `sunset` that is not a day is refused.
#[test]
fn catalog_validate_warns_before_a_sunset_and_fails_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    let with_end = |days: i64| {
        let sunset = today + time::Duration::days(days);
        include_str!("../../engine/catalog/stripe.yaml").replacen(
            "\nauth:\n",
            &format!(
                "\ndeprecations:\n  - endpoint: GET /v1/charges\n    sunset: \"{sunset}\"\n    replacement: the Payment Intents API\nauth:\n"
            ),
            1,
        )
    };
    let validate = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        tributary(&["catalog", "validate", file.to_str().unwrap()], &[])
    };

    let near = validate("near.yaml", &with_end(30));
    let stderr = String::from_utf8_lossy(&near.stderr);
    assert!(near.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: [stripe] GET /v1/charges ends on")
            && stderr.contains("move to: the Payment Intents API"),
        "{stderr}"
    );

    let far = validate("far.yaml", &with_end(400));
    assert!(far.status.success());
    assert!(!String::from_utf8_lossy(&far.stderr).contains("warning"));

    let past = validate("past.yaml", &with_end(-1));
    let stderr = String::from_utf8_lossy(&past.stderr);
    assert!(!past.status.success(), "{stderr}");
    assert!(
        stderr.contains("[stripe] GET /v1/charges is past its sunset"),
        "{stderr}"
    );

    let bad_day = validate(
        "bad-day.yaml",
        &include_str!("../../engine/catalog/stripe.yaml").replacen(
            "checked: \"2026-12-02\"",
            "checked: \"2 December 2026\"",
            1,
        ),
    );
    let stderr = String::from_utf8_lossy(&bad_day.stderr);
    assert!(!bad_day.status.success());
    assert!(stderr.contains("is not a YYYY-MM-DD day"), "{stderr}");
}

/// One line per provider with its check day (`stale` when never checked or over six months ago),
/// the versions it pins, and its announced ends.
#[test]
fn catalog_check_dates_lists_checks_pins_and_ends() {
    let out = tributary(&["catalog", "check-dates"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
            .to_owned()
    };
    let stripe = line("stripe");
    assert!(
        stripe.contains("checked=2026-12-02") && stripe.contains("Stripe-Version: "),
        "{stripe}"
    );
    // Every spec names the day it was last read against its provider's documentation.
    assert!(!stdout.contains("checked=never"), "{stdout}");
    assert!(line("shopify").contains("base URL 2026-10"));
    assert!(
        stdout.contains("ends 2027-10-01: Admin API version 2026-10"),
        "{stdout}"
    );
    let providers = stdout.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(providers, tributary_engine::catalog::FILES.len());
}

#[test]
fn catalog_validate_reports_undeclared_placeholder_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let text = include_str!("../../engine/catalog/stripe.yaml").replace(
        "value: \"Bearer {credentials.api_key}\"",
        "value: \"Bearer {credentials.apikey}\"",
    );
    std::fs::write(&file, &text).unwrap();
    let out = tributary(&["catalog", "validate", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("{credentials.apikey}"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("bad.yaml:{line}: [stripe] auth[0].value")),
        "{stderr}"
    );
}

#[test]
fn catalog_list_prints_one_line_per_provider() {
    let out = tributary(&["catalog", "list"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stripe = stdout.lines().find(|l| l.starts_with("stripe ")).unwrap();
    assert!(
        stripe.contains("auth=api_key")
            && stripe.contains("customers")
            && stripe.contains("create_customer"),
        "{stripe}"
    );
    assert_eq!(
        stdout.lines().count(),
        tributary_engine::catalog::FILES.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_streams_all_pages_as_json_lines_with_env_credentials() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/customers")).and(header("authorization", "Bearer sk_test_abc")).and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": [{"id": "cus_1", "created": 10}, {"id": "cus_2", "created": 30}], "has_more": true})))
        .expect(1).mount(&server).await;
    Mock::given(path("/v1/customers"))
        .and(query_param("starting_after", "cus_2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "data": [{"id": "cus_3", "created": 20}], "has_more": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let state = tempfile::tempdir().unwrap().keep().join("state.json");

    let out = run(
        vec![
            "read".into(),
            "--provider".into(),
            "stripe".into(),
            "--stream".into(),
            "customers".into(),
            "--base-url".into(),
            format!("{}/v1", server.uri()),
            "--allow-egress".into(),
            "127.0.0.1".into(),
            "--state".into(),
            state.display().to_string(),
        ],
        vec![("TRIBUTARY_CREDENTIAL_API_KEY", "sk_test_abc")],
    )
    .await;

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["cus_1", "cus_2", "cus_3"]);
    assert!(
        stderr.contains("records=3 pages=2 requests=2 retries=0"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("sk_test_abc"),
        "credential printed: {stderr}"
    );
    // Stripe's customers are read whole (a full refresh has no checkpoint to save).
    assert!(!state.exists(), "a full refresh wrote a state file");
}

/// A provider that pretty-prints its bodies: each record still comes out as one line, in canonical
/// form (compact, keys sorted, escapes decoded, numbers as written), so JSON Lines readers accept
/// the output and the same record always prints the same.
#[tokio::test(flavor = "multi_thread")]
async fn read_prints_pretty_printed_records_one_canonical_line_each() {
    let server = MockServer::start().await;
    let body = r#"{
  "object": "list",
  "data": [
    {
      "name": "Zo\u00eb",
      "id": "cus_1",
      "balance": 12345678901234567890,
      "address": {
        "line1": "1 Main St",
        "city": "Paris"
      }
    },
    {
      "id": "cus_2",
      "name": "Zoë"
    },
    { "id" : "cus_3" , "tags" : [ 1.10 , 2 ] }
  ],
  "has_more": false
}
"#;
    Mock::given(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;

    let out = run(
        vec![
            "read".into(),
            "--provider".into(),
            "stripe".into(),
            "--stream".into(),
            "customers".into(),
            "--base-url".into(),
            format!("{}/v1", server.uri()),
            "--allow-egress".into(),
            "127.0.0.1".into(),
        ],
        vec![("TRIBUTARY_CREDENTIAL_API_KEY", "sk_test_abc")],
    )
    .await;

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(v.is_object(), "{line}");
    }
    assert_eq!(
        lines,
        [
            r#"{"address":{"city":"Paris","line1":"1 Main St"},"balance":12345678901234567890,"id":"cus_1","name":"Zoë"}"#,
            r#"{"id":"cus_2","name":"Zoë"}"#,
            r#"{"id":"cus_3","tags":[1.10,2]}"#,
        ]
    );
    assert!(stderr.contains("records=3 pages=1"), "{stderr}");
}

/// An incremental stream (GitHub issues, on `updated_at` with `since`) starts from the state file's
/// cursor and saves the newest cursor it read after a complete pass.
#[tokio::test(flavor = "multi_thread")]
async fn read_of_an_incremental_stream_resumes_from_and_saves_its_state() {
    let server = MockServer::start().await;
    Mock::given(path("/issues"))
        .and(header("authorization", "Bearer ghp_test"))
        .and(query_param("since", "2026-01-01T00:00:00Z"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!(
                        "<{}/issues?since=2026-01-01T00%3A00%3A00Z&page=2>; rel=\"next\"",
                        server.uri()
                    )
                    .as_str(),
                )
                .set_body_json(json!([
                    {"id": 1, "updated_at": "2026-01-02T00:00:00Z"},
                    {"id": 2, "updated_at": "2026-01-05T00:00:00Z"}
                ])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/issues"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 3, "updated_at": "2026-01-03T00:00:00Z"}])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let state = tempfile::tempdir().unwrap().keep().join("state.json");
    // One minute before the saved cursor: the spec's look-back.
    std::fs::write(&state, r#"{"cursor": "2026-01-01T00:01:00Z"}"#).unwrap();

    let out = run(
        vec![
            "read".into(),
            "--provider".into(),
            "github".into(),
            "--auth-mode".into(),
            "api_key".into(),
            "--stream".into(),
            "issues".into(),
            "--base-url".into(),
            server.uri(),
            "--allow-egress".into(),
            "127.0.0.1".into(),
            "--state".into(),
            state.display().to_string(),
        ],
        vec![("TRIBUTARY_CREDENTIAL_TOKEN", "ghp_test")],
    )
    .await;

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["cursor"], "2026-01-05T00:00:00Z", "{saved}");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_without_egress_allowlist_refuses_local_mock() {
    let server = MockServer::start().await;
    let out = run(
        vec![
            "read".into(),
            "--provider".into(),
            "stripe".into(),
            "--stream".into(),
            "charges".into(),
            "--base-url".into(),
            format!("{}/v1", server.uri()),
            "--credential".into(),
            "api_key=sk_test_x".into(),
        ],
        vec![],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("egress") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn action_prints_output_and_rejects_invalid_input() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "cus_9", "email": "a@b.co"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let base = format!("{}/v1", server.uri());
    let args = |input: &str| {
        vec![
            "action".into(),
            "--provider".into(),
            "stripe".into(),
            "--action".into(),
            "create_customer".into(),
            "--input".into(),
            input.to_owned(),
            "--base-url".into(),
            base.clone(),
            "--allow-egress".into(),
            "127.0.0.1".into(),
        ]
    };

    let out = run(
        args(r#"{"email":"a@b.co"}"#),
        vec![("TRIBUTARY_CREDENTIAL_API_KEY", "sk_test_abc")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "cus_9");

    let out = run(
        args(r#"{"name":"no email"}"#),
        vec![("TRIBUTARY_CREDENTIAL_API_KEY", "sk_test_abc")],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid input"));
}
