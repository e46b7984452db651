//! Throughput benchmark: reads records from an in-process mock server (1,000 pages × 100 records
//! of about 500 bytes for the 100,000 run) with page-number and with cursor pagination, and prints
//! records per CPU-second (server included, as it shares the process) and peak RSS.
//!
//! Run: `cargo bench -p tributary-engine --bench throughput`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use cpu_time::ProcessTime;
use futures::StreamExt;
use tributary_engine::spec::load;
use tributary_engine::{Connection, EgressPolicy, Engine, HttpConfig, ReadOptions};

const PER_PAGE: u64 = 100;

const SPEC: &str = r#"
spec_version: 1
id: bench
name: Bench
docs_url: https://example.com
base_url: https://bench.example.com
auth:
  - type: api_key
    credentials: [{name: token, label: Token, secret: true}]
    in: header
    name: Authorization
    value: "Bearer {credentials.token}"
streams:
  - name: by_page
    request: {path: /items}
    records: data
    primary_key: [id]
    pagination: {type: page_number, page_param: page, page_size: {param: per_page, value: 100}}
  - name: by_cursor
    request: {path: /items}
    records: data
    primary_key: [id]
    pagination: {type: cursor, cursor_path: meta.next_cursor, param: cursor, page_size: {param: limit, value: 100}}
actions:
  - name: noop
    request: {method: POST, path: /noop}
    input_schema: {type: object}
"#;

/// Total records the server holds for this run.
#[derive(Clone, Copy)]
struct Total(u64);

async fn items(
    State(Total(total)): State<Total>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    // Page number (1-based) or cursor (the offset, encoded) selects the slice.
    let start = match (q.get("page"), q.get("cursor")) {
        (Some(p), _) => p.parse::<u64>().unwrap_or(1).saturating_sub(1) * PER_PAGE,
        (None, Some(c)) => c
            .strip_prefix("off_")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        (None, None) => 0,
    };
    let end = (start + PER_PAGE).min(total);
    let mut body = String::with_capacity(52 * 1024);
    body.push_str("{\"data\":[");
    for i in start..end {
        if i > start {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"id":"rec_{i:08}","object":"customer","created":{created},"updated_at":"2024-05-01T12:{m:02}:{s:02}Z","name":"Customer number {i}","email":"customer{i}@example.com","phone":"+1-555-{p:04}","currency":"usd","balance":{bal},"delinquent":false,"address":{{"line1":"{i} Market Street","city":"San Francisco","postal_code":"94105","country":"US"}},"metadata":{{"plan":"enterprise","region":"us-west-2","segment":"mid-market"}},"description":"A synthetic record padded to about five hundred bytes for the benchmark."}}"#,
            created = 1_700_000_000 + i,
            m = i % 60,
            s = (i / 60) % 60,
            p = i % 10_000,
            bal = i * 7 % 100_000,
        );
    }
    body.push_str("],\"meta\":{\"next_cursor\":");
    if end < total {
        let _ = write!(body, "\"off_{end}\"");
    } else {
        body.push_str("null");
    }
    body.push_str("}}");
    ([(header::CONTENT_TYPE, "application/json")], body)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn run(
    engine: &Engine,
    spec: &tributary_engine::ProviderSpec,
    stream: &str,
    total: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/items", get(items))
        .with_state(Total(total));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let conn = Connection {
        credentials: [("token".to_owned(), "bench-token".into())].into(),
        base_url: Some(format!("http://{addr}")),
        ..Connection::default()
    };

    let cpu = ProcessTime::now();
    let wall = Instant::now();
    let mut pages = engine.read(spec, stream, &conn, ReadOptions::default())?;
    let (mut records, mut bytes, mut page_count) = (0u64, 0u64, 0u64);
    while let Some(page) = pages.next().await {
        let page = page?;
        page_count += 1;
        for r in &page.records {
            records += 1;
            bytes += r.len() as u64;
        }
    }
    let cpu = cpu.elapsed().as_secs_f64();
    let wall = wall.elapsed().as_secs_f64();
    server.abort();
    if records != total {
        return Err(format!("read {records} records, expected {total}").into());
    }
    println!(
        "{stream:<10} records={records:>7} pages={page_count:>5} avg_record={:>3}B cpu={cpu:.3}s wall={wall:.3}s records/cpu-s={:>9.0} peak_rss={:.1}MiB",
        bytes / records.max(1),
        records as f64 / cpu.max(1e-9),
        peak_rss_kib() as f64 / 1024.0,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let spec = load(SPEC, "bench.yaml")?;
        let engine = Engine::new(HttpConfig {
            egress: EgressPolicy::with_allowlist(["127.0.0.1"])?,
            ..HttpConfig::default()
        })?;
        // Warm the connection pool and allocator so the small run is not all start-up cost.
        run(&engine, &spec, "by_page", 1_000).await?;
        for stream in ["by_page", "by_cursor"] {
            for total in [10_000, 100_000] {
                run(&engine, &spec, stream, total).await?;
            }
        }
        Ok(())
    })
}
