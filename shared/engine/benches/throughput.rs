//! Throughput benchmark: reads records from an in-process mock server (1,000 pages × 100 records
//! of about 500 bytes for the 100,000 run) with page-number and with cursor pagination, and checks
//! records per CPU-second (server included, as it shares the process) and peak RSS against the
//! targets below, exiting non-zero when one is missed.
//!
//! Each measurement runs in a process of its own (this binary, re-executed with `--measure`), so
//! that its peak RSS (`VmHWM`, a high-water mark that never goes down) is its own and not the
//! largest of the runs before it.
//!
//! Run: `make bench` (or `cargo bench -p tributary-engine --bench throughput`). Release build; not
//! part of `make test`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Command, ExitCode};
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

/// Targets: throughput of the largest read (the smaller ones are mostly start-up: a page costs the
/// same whatever the count), a memory ceiling for every read, and memory flat as the count grows.
const MIN_RECORDS_PER_CPU_SECOND: f64 = 300_000.0;
const MAX_PEAK_RSS_MIB: f64 = 50.0;
/// The 100,000-record run may use at most this much more than the 10,000-record one: reading is
/// streamed, one page in memory at a time, so memory must not follow the record count.
const MAX_RSS_GROWTH_MIB: f64 = 2.0;
/// What is measured, each in its own process.
const STREAMS: [&str; 2] = ["by_page", "by_cursor"];
const TOTALS: [u64; 2] = [10_000, 100_000];

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

/// One measurement, as the measuring process reports it (one JSON line on stdout).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Measurement {
    stream: String,
    records: u64,
    pages: u64,
    bytes: u64,
    cpu_seconds: f64,
    wall_seconds: f64,
    peak_rss_kib: u64,
}

impl Measurement {
    fn records_per_cpu_second(&self) -> f64 {
        self.records as f64 / self.cpu_seconds.max(1e-9)
    }

    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

async fn read_all(
    engine: &Engine,
    spec: &tributary_engine::ProviderSpec,
    stream: &str,
    total: u64,
) -> Result<Measurement, Box<dyn std::error::Error>> {
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
    let cpu_seconds = cpu.elapsed().as_secs_f64();
    let wall_seconds = wall.elapsed().as_secs_f64();
    server.abort();
    if records != total {
        return Err(format!("read {records} records, expected {total}").into());
    }
    Ok(Measurement {
        stream: stream.to_owned(),
        records,
        pages: page_count,
        bytes,
        cpu_seconds,
        wall_seconds,
        peak_rss_kib: peak_rss_kib(),
    })
}

/// The measuring process: a warm-up read (connection pool, allocator), then the measured one.
fn measure(stream: &str, total: u64) -> Result<Measurement, Box<dyn std::error::Error>> {
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
        read_all(&engine, &spec, stream, 1_000).await?;
        read_all(&engine, &spec, stream, total).await
    })
}

/// Runs one measurement in a fresh process of this binary.
fn measure_in_child(stream: &str, total: u64) -> Result<Measurement, Box<dyn std::error::Error>> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--measure", stream, &total.to_string()])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "measuring {stream} × {total} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The targets a set of measurements misses, as sentences.
fn missed_targets(runs: &[Measurement], totals: &[u64]) -> Vec<String> {
    let mut missed = Vec::new();
    let largest = totals.iter().copied().max().unwrap_or(0);
    for m in runs {
        let rate = m.records_per_cpu_second();
        if m.records == largest && rate < MIN_RECORDS_PER_CPU_SECOND {
            missed.push(format!(
                "{} × {}: {rate:.0} records per CPU-second, under {MIN_RECORDS_PER_CPU_SECOND:.0}",
                m.stream, m.records
            ));
        }
        if m.peak_rss_mib() >= MAX_PEAK_RSS_MIB {
            missed.push(format!(
                "{} × {}: peak RSS {:.1} MiB, not under {MAX_PEAK_RSS_MIB:.0} MiB",
                m.stream,
                m.records,
                m.peak_rss_mib()
            ));
        }
    }
    if let (Some(&small), Some(&large)) = (totals.first(), totals.last()) {
        for stream in STREAMS {
            let find = |n| runs.iter().find(|m| m.stream == stream && m.records == n);
            if let (Some(a), Some(b)) = (find(small), find(large)) {
                let growth = b.peak_rss_mib() - a.peak_rss_mib();
                if growth > MAX_RSS_GROWTH_MIB {
                    missed.push(format!(
                        "{stream}: peak RSS grows {growth:.1} MiB from {small} to {large} records, over {MAX_RSS_GROWTH_MIB:.0} MiB"
                    ));
                }
            }
        }
    }
    missed
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let (Some(stream), Some(total)) = (
            args.get(i + 1),
            args.get(i + 2).and_then(|n| n.parse().ok()),
        ) else {
            eprintln!("usage: throughput --measure STREAM TOTAL");
            return ExitCode::from(2);
        };
        return match measure(stream, total).and_then(|m| Ok(serde_json::to_string(&m)?)) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }

    // `cargo bench` passes `--bench`; there is nothing else to choose.
    let mut runs = Vec::new();
    for stream in STREAMS {
        for total in TOTALS {
            match measure_in_child(stream, total) {
                Ok(m) => {
                    println!(
                        "{:<10} records={:>7} pages={:>5} avg_record={:>3}B cpu={:.3}s wall={:.3}s records/cpu-s={:>9.0} peak_rss={:.1}MiB",
                        m.stream,
                        m.records,
                        m.pages,
                        m.bytes / m.records.max(1),
                        m.cpu_seconds,
                        m.wall_seconds,
                        m.records_per_cpu_second(),
                        m.peak_rss_mib(),
                    );
                    runs.push(m);
                }
                Err(e) => {
                    eprintln!("throughput: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let missed = missed_targets(&runs, &TOTALS);
    if missed.is_empty() {
        println!(
            "targets met: >= {MIN_RECORDS_PER_CPU_SECOND:.0} records per CPU-second at {} records, peak RSS < {MAX_PEAK_RSS_MIB:.0} MiB, growing at most {MAX_RSS_GROWTH_MIB:.0} MiB from {} to {} records",
            TOTALS[1], TOTALS[0], TOTALS[1]
        );
        ExitCode::SUCCESS
    } else {
        for m in &missed {
            eprintln!("throughput: target missed: {m}");
        }
        ExitCode::FAILURE
    }
}
