//! Sync benchmark: a sync of 10,000 and of 100,000 customers (about 500 bytes each, 100 a page)
//! from a local Stripe-shaped provider through the connector's handler into DynamoDB (moto), then
//! a second pass over the same, unchanged records. Prints records per second, the connector's
//! peak RSS, DynamoDB write requests per 1,000 changed and per 1,000 unchanged records, and the
//! capacity units they consume turned into a cost per million records at on-demand prices; exits
//! non-zero when a target is missed.
//!
//! Each count is measured in a process of its own (this binary, re-executed with `--measure`), so
//! that its peak RSS (`VmHWM`) is its own; the provider runs in another process
//! (`--provider`), so that its pages are not counted in the connector's memory. moto runs as its
//! own process too. Write and read units are computed from the items each request carries or
//! returns (moto does not report consumed capacity): a write costs one unit per KB of each item
//! written (two for a transactional write), a strongly consistent read one unit per 4 KB read.
//!
//! Run: `make bench-sync` (`cargo bench -p tributary-connector --bench sync`). Release build; not
//! part of `make test`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tributary_aws::DynamoTable;
use tributary_aws::dynamo::item_size;
use tributary_connector::handler::{Deps, Refreshing, handle};
use tributary_connector::sync::Syncing;
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType, ConnectionStatus,
};
use tributary_core::ids::{ConnectionId, IntegrationId, SyncId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::{ConnectionStore, SyncStore};
use tributary_core::sync::{
    DEFAULT_DELETION_GUARD_PERCENT, Frequency, RunState, RunTrigger, SyncConfig, SyncMode, SyncRun,
    SyncStatus,
};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{Clock, SystemClock};
use tributary_core::vault::{Keyring, Owner, Vault};
use tributary_engine::{EgressPolicy, Engine, HttpConfig};
use tributary_local::{MotoServer, ProvisionOptions, Template, provision, workspace};

/// The counts measured; `SYNC_BENCH_COUNTS=1000,5000` measures others (a quick look).
const COUNTS: [usize; 2] = [10_000, 100_000];

/// Targets (issue "Syncs"): peak RSS, flat as the count grows; write requests per 1,000 records;
/// dollars per million records.
const MAX_PEAK_RSS_MIB: f64 = 64.0;
const MAX_RSS_GROWTH_MIB: f64 = 8.0;
const MAX_WRITES_PER_1000_CHANGED: f64 = 45.0;
const MAX_WRITES_PER_1000_UNCHANGED: f64 = 5.0;
const MAX_DOLLARS_PER_MILLION_CHANGED: f64 = 1.0;
const MAX_DOLLARS_PER_MILLION_UNCHANGED: f64 = 0.10;
/// DynamoDB on-demand prices (us-east-1, standard table class): dollars per million write and
/// read request units.
const DOLLARS_PER_MILLION_WRU: f64 = 0.625;
const DOLLARS_PER_MILLION_RRU: f64 = 0.125;

const KEY: &str = "sk_test_bench";
const KEYRING: &str = r#"{"active":"k1","k1":"bench-key-material-bench-key-material-bench-key"}"#;

/// A customer of about 500 bytes: the sync tests' local Stripe's.
fn customer(n: usize) -> Value {
    tributary_testing::provider::customer(n, 1)
}

/// The provider: Stripe's list shape, pages generated from the cursor (no dataset in memory).
async fn provider(count: usize) {
    let app = Router::new()
        .route(
            "/v1/balance",
            get(|| async { axum::Json(json!({"object": "balance"})) }),
        )
        .route(
            "/v1/customers",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let limit = q
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(10usize)
                    .min(100);
                let start = q
                    .get("starting_after")
                    .and_then(|s| s.strip_prefix("cus_"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .map_or(0, |n| n + 1);
                let end = (start + limit).min(count);
                let data: Vec<Value> = (start..end).map(customer).collect();
                axum::Json(json!({"object": "list", "data": data, "has_more": end < count, "url": "/v1/customers"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("addr").port());
    axum::serve(listener, app).await.expect("serve");
}

/// Counts DynamoDB requests and the capacity units they consume.
#[derive(Debug, Default)]
struct Meter {
    writes: AtomicU64,
    reads: AtomicU64,
    wru: AtomicU64,
    rru: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl Meter {
    fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.writes.load(Ordering::SeqCst),
            self.reads.load(Ordering::SeqCst),
            self.wru.load(Ordering::SeqCst),
            self.rru.load(Ordering::SeqCst),
        )
    }
}

#[derive(Debug, Clone)]
struct Metered(Arc<Meter>);

/// Whether the request being metered reads strongly consistently (half the units otherwise).
#[derive(Debug, Clone, Copy)]
struct Consistent(bool);

impl Storable for Consistent {
    type Storer = StoreReplace<Self>;
}

fn kb_units(size: usize, unit: usize) -> u64 {
    size.div_ceil(unit).max(1) as u64
}

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "Metered"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let m = &self.0;
        let (name, write_units) = if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
            let units = i
                .request_items()
                .map(|items| {
                    items
                        .values()
                        .flatten()
                        .map(|w| match (w.put_request(), w.delete_request()) {
                            (Some(p), _) => kb_units(item_size(p.item()), 1024),
                            _ => 1,
                        })
                        .sum()
                })
                .unwrap_or(0);
            ("BatchWriteItem", Some(units))
        } else if let Some(i) = input.downcast_ref::<PutItemInput>() {
            let size = i.item().map_or(0, item_size);
            ("PutItem", Some(kb_units(size, 1024)))
        } else if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            // Charged by the larger of the item before and after: at least what the update sets.
            let size = i.expression_attribute_values().map_or(0, item_size) + 200;
            ("UpdateItem", Some(kb_units(size, 1024)))
        } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            let units: u64 = i
                .transact_items()
                .iter()
                .map(|t| 2 * t.put().map_or(1, |p| kb_units(item_size(p.item()), 1024)))
                .sum();
            ("TransactWriteItems", Some(units))
        } else if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
            let consistent = i
                .request_items()
                .is_some_and(|r| r.values().any(|k| k.consistent_read() == Some(true)));
            cfg.interceptor_state().store_put(Consistent(consistent));
            ("BatchGetItem", None)
        } else {
            ("other", None)
        };
        if let Some(units) = write_units {
            m.writes.fetch_add(1, Ordering::SeqCst);
            m.wru.fetch_add(units, Ordering::SeqCst);
        }
        *m.by_operation
            .lock()
            .expect("meter")
            .entry(name.to_owned())
            .or_default() += 1;
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let m = &self.0;
        let units = if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
            // A strongly consistent read costs a unit per 4 KB of each item, an eventually
            // consistent one half that.
            let units: u64 = o
                .responses()
                .map(|r| {
                    r.values()
                        .flatten()
                        .map(|it| kb_units(item_size(it), 4096))
                        .sum()
                })
                .unwrap_or(0);
            if cfg.load::<Consistent>().is_none_or(|c| c.0) {
                units
            } else {
                units.div_ceil(2)
            }
        } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
            kb_units(o.items().iter().map(item_size).sum(), 4096)
        } else if let Some(o) = output.downcast_ref::<GetItemOutput>() {
            kb_units(o.item().map_or(0, item_size), 4096)
        } else {
            return Ok(());
        };
        m.reads.fetch_add(1, Ordering::SeqCst);
        m.rru.fetch_add(units, Ordering::SeqCst);
        Ok(())
    }
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

/// One pass, as the measuring process reports it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pass {
    records: u64,
    changed: u64,
    unchanged: u64,
    seconds: f64,
    write_requests: u64,
    read_requests: u64,
    wru: u64,
    rru: u64,
}

/// One count, as the measuring process reports it (one JSON line on stdout).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Measured {
    count: usize,
    first: Pass,
    second: Pass,
    peak_rss_kib: u64,
    by_operation: BTreeMap<String, u64>,
}

/// Measures one count: the whole connector path against moto at `endpoint`.
async fn measure(
    count: usize,
    endpoint: &str,
    control: &str,
    records: &str,
    jobs: &str,
    provider: &str,
) -> Measured {
    let sdk = tributary_local::sdk_config(endpoint).await;
    let meter = Arc::new(Meter::default());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(Metered(meter.clone()))
            .build(),
    );
    let clients = tributary_aws::Clients::new(&sdk);
    let control = DynamoTable::new(dynamodb.clone(), control);
    let records_table = DynamoTable::new(dynamodb, records);
    let ring = || Keyring::from_secret(&secrecy::SecretString::from(KEYRING)).expect("keyring");
    let keyring = ring();
    let vault = Vault::new(Arc::new(Arc::new(ring())));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let origins = BTreeMap::from([("stripe".to_owned(), provider.to_owned())]);
    let http = |attempts| HttpConfig {
        max_attempts: attempts,
        egress: EgressPolicy::with_allowlist(["127.0.0.1"]).expect("allowlist"),
        ..HttpConfig::default()
    };
    let deps = Deps {
        queue: clients.queue(jobs),
        ledger: control.clone(),
        canaries: control.clone(),
        clock: clock.clone(),
        ledger_retention: Duration::from_secs(3600),
        operations_retention_days: 14,
        refreshing: Refreshing {
            store: control.clone(),
            vault: vault.clone(),
            engine: Engine::new(http(3)).expect("engine"),
            origins: origins.clone(),
        },
        delivering: tributary_connector::webhooks::Delivering {
            client: tributary_http::HttpClient::new(tributary_connector::webhooks::delivery_http(
                EgressPolicy::with_allowlist(["127.0.0.1"]).expect("allowlist"),
            ))
            .expect("client"),
            vault: vault.clone(),
        },
        syncing: Syncing {
            store: control.clone(),
            records: records_table,
            vault,
            engine: Engine::new(http(1)).expect("engine"),
            origins,
            time_budget: None,
        },
    };

    // A tenant's Stripe connection and a full-refresh sync of its customers.
    let tenant = TenantId::generate();
    let id = ConnectionId::generate();
    let sealed = keyring
        .seal(
            &Owner {
                tenant: tenant.as_str(),
                object: id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            format!(r#"{{"api_key":"{KEY}"}}"#).as_bytes(),
        )
        .expect("seal")
        .encode();
    let connection = Connection {
        id: id.clone(),
        tenant_id: tenant.clone(),
        integration_id: IntegrationId::generate(),
        provider: "stripe".into(),
        auth_mode: "api_key".into(),
        end_user_id: "bench".into(),
        config: BTreeMap::new(),
        credentials: sealed,
        tags: BTreeMap::new(),
        metadata: json!({}),
        status: ConnectionStatus::Active,
        status_reason: None,
        status_changed_at_ms: 1,
        last_verified_at_ms: None,
        token_expires_at_ms: None,
        tokens_obtained_at_ms: None,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    };
    let audit = |what: &str| AuditEvent::new(&tenant, "bench", 1, what, &id);
    control
        .create_connection(
            &connection,
            &ConnectionEvent::of(&connection, ConnectionEventType::Created, None, 1),
            &audit("connection.created"),
        )
        .await
        .expect("connection");
    let sync = SyncConfig {
        id: SyncId::generate(),
        tenant_id: tenant.clone(),
        connection_id: id.clone(),
        integration_id: connection.integration_id.clone(),
        provider: "stripe".into(),
        stream: "customers".into(),
        model: "customers".into(),
        frequency: Frequency::Interval {
            every_seconds: 3600,
        },
        mode: SyncMode::FullRefresh,
        mapping: None,
        status: SyncStatus::Active,
        status_reason: None,
        deletion_guard_percent: DEFAULT_DELETION_GUARD_PERCENT,
        retention_days: None,
        checkpoint: None,
        next_run_at_ms: None,
        active_run_id: None,
        last_run: None,
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    };
    control
        .create_sync(&sync, &audit("sync.created"))
        .await
        .expect("sync");

    let mut passes = Vec::new();
    for _ in 0..2 {
        let run = SyncRun::queued(&sync, RunTrigger::Manual, false, clock.now_ms());
        control.create_run(&run).await.expect("run");
        // The run's invocations, one after another as SQS would deliver its continuations: an
        // invocation stops at 80 % of its 900 s, which a slow moto can reach at 100,000 records.
        let (w0, r0, wu0, ru0) = meter.snapshot();
        let started = Instant::now();
        let mut continuation = 0;
        let ended = loop {
            let job = JobEnvelope::new(JobKind::SyncRun {
                tenant_id: tenant.clone(),
                sync_id: sync.id.clone(),
                run_id: run.id.clone(),
                continuation,
            });
            let event: SqsEvent = serde_json::from_value(json!({"Records": [{
                "messageId": format!("m{continuation}"), "receiptHandle": "rh", "body": job.to_body(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs"
            }]}))
            .expect("event");
            let mut context = lambda_runtime::Context::default();
            context.deadline = u64::try_from(clock.now_ms() + 900_000).expect("deadline");
            let out = handle(&deps, LambdaEvent::new(event, context))
                .await
                .expect("handled");
            assert!(out.batch_item_failures.is_empty(), "the run job failed");
            let ended = control
                .get_run(&tenant, &sync.id, &run.id)
                .await
                .expect("run")
                .expect("run exists");
            if ended.state != RunState::Continued {
                break ended;
            }
            continuation = ended.continuations;
        };
        let seconds = started.elapsed().as_secs_f64();
        let (w1, r1, wu1, ru1) = meter.snapshot();
        assert_eq!(ended.state, RunState::Succeeded, "{:?}", ended.error);
        let s = ended.stats;
        passes.push(Pass {
            records: s.added + s.updated + s.unchanged,
            changed: s.added + s.updated + s.deleted,
            unchanged: s.unchanged,
            seconds,
            write_requests: w1 - w0,
            read_requests: r1 - r0,
            wru: wu1 - wu0,
            rru: ru1 - ru0,
        });
    }
    let by_operation = meter.by_operation.lock().expect("meter").clone();
    Measured {
        count,
        second: passes.pop().expect("second"),
        first: passes.pop().expect("first"),
        peak_rss_kib: peak_rss_kib(),
        by_operation,
    }
}

fn per_1000(n: u64, of: u64) -> f64 {
    n as f64 * 1000.0 / of.max(1) as f64
}

fn dollars_per_million(p: &Pass, of: u64) -> f64 {
    (p.wru as f64 * DOLLARS_PER_MILLION_WRU + p.rru as f64 * DOLLARS_PER_MILLION_RRU)
        / of.max(1) as f64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(i) = args.iter().position(|a| a == "--provider") {
        let count = args[i + 1].parse().expect("count");
        runtime.block_on(provider(count));
        return ExitCode::SUCCESS;
    }
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let a = &args[i + 1..];
        let m = runtime.block_on(measure(
            a[0].parse().expect("count"),
            &a[1],
            &a[2],
            &a[3],
            &a[4],
            &a[5],
        ));
        println!("{}", serde_json::to_string(&m).expect("json"));
        return ExitCode::SUCCESS;
    }
    runtime.block_on(orchestrate())
}

async fn orchestrate() -> ExitCode {
    let moto = MotoServer::start().await.expect("moto starts (make tools)");
    let sdk = moto.sdk_config().await;
    let template = Template::load(&workspace::template_path()).expect("template");
    let provisioned = provision(
        &template,
        &sdk,
        &ProvisionOptions {
            stack_name: "bench".into(),
            parameters: BTreeMap::new(),
            secret_values: BTreeMap::from([("AdminApiKeySecret".into(), "bench".into())]),
        },
    )
    .await
    .expect("resources");
    let exe = std::env::current_exe().expect("exe");
    let mut failed = Vec::new();
    let mut results = Vec::new();
    let counts: Vec<usize> = std::env::var("SYNC_BENCH_COUNTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| COUNTS.to_vec());
    for count in counts {
        let mut provider = Command::new(&exe)
            .args(["--provider", &count.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("provider");
        let mut port = String::new();
        BufReader::new(provider.stdout.take().expect("stdout"))
            .read_line(&mut port)
            .expect("port");
        let out = Command::new(&exe)
            .args([
                "--measure",
                &count.to_string(),
                moto.endpoint_url(),
                &provisioned.tables["ControlTable"],
                &provisioned.tables["RecordsTable"],
                &provisioned.queues["JobsQueue"].url,
                &format!("http://127.0.0.1:{}", port.trim()),
            ])
            .output()
            .expect("measure");
        let _ = provider.kill();
        let _ = provider.wait();
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            return ExitCode::FAILURE;
        }
        // The figures are the last line: the handler's metric lines (EMF) come before it.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        let m: Measured = serde_json::from_str(last).expect("figures");
        results.push(m);
    }
    println!(
        "| records | pass | records/s | peak RSS | write requests / 1,000 | WRU | RRU | $ / million records |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in &results {
        let rss = m.peak_rss_kib as f64 / 1024.0;
        for (name, p, of) in [
            ("first (all added)", &m.first, m.first.changed),
            ("second (unchanged)", &m.second, m.second.unchanged),
        ] {
            println!(
                "| {} | {name} | {:.0} | {rss:.1} MiB | {:.1} | {} | {} | {:.3} |",
                m.count,
                p.records as f64 / p.seconds,
                per_1000(p.write_requests, of),
                p.wru,
                p.rru,
                dollars_per_million(p, of),
            );
        }
        eprintln!(
            "requests by operation ({} records): {:?}",
            m.count, m.by_operation
        );
        if rss > MAX_PEAK_RSS_MIB {
            failed.push(format!(
                "{} records: peak RSS {rss:.1} MiB > {MAX_PEAK_RSS_MIB}",
                m.count
            ));
        }
        let w = per_1000(m.first.write_requests, m.first.changed);
        if w > MAX_WRITES_PER_1000_CHANGED {
            failed.push(format!("{} records: {w:.1} write requests per 1,000 changed > {MAX_WRITES_PER_1000_CHANGED}", m.count));
        }
        let w = per_1000(m.second.write_requests, m.second.unchanged);
        if w > MAX_WRITES_PER_1000_UNCHANGED {
            failed.push(format!("{} records: {w:.1} write requests per 1,000 unchanged > {MAX_WRITES_PER_1000_UNCHANGED}", m.count));
        }
        let d = dollars_per_million(&m.first, m.first.changed);
        if d > MAX_DOLLARS_PER_MILLION_CHANGED {
            failed.push(format!(
                "{} records: ${d:.3} per million changed > {MAX_DOLLARS_PER_MILLION_CHANGED}",
                m.count
            ));
        }
        let d = dollars_per_million(&m.second, m.second.unchanged);
        if d > MAX_DOLLARS_PER_MILLION_UNCHANGED {
            failed.push(format!(
                "{} records: ${d:.3} per million unchanged > {MAX_DOLLARS_PER_MILLION_UNCHANGED}",
                m.count
            ));
        }
    }
    if let [small, large] = &results[..] {
        let growth = (large.peak_rss_kib as f64 - small.peak_rss_kib as f64) / 1024.0;
        println!(
            "peak RSS growth from {} to {} records: {growth:.1} MiB",
            small.count, large.count
        );
        if growth > MAX_RSS_GROWTH_MIB {
            failed.push(format!(
                "peak RSS grew {growth:.1} MiB > {MAX_RSS_GROWTH_MIB}"
            ));
        }
    }
    moto.stop().await;
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in failed {
            eprintln!("target missed: {f}");
        }
        ExitCode::FAILURE
    }
}
