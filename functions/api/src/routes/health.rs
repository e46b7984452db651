//! Health: `GET /v1/health` (no authentication) answers the overall status only, with 503 when a
//! dependency is down, for load balancers and uptime probes; `GET /v1/health/details` (the deployment
//! admin) answers the whole report: stage, version, dependency checks, the pipeline canary and the
//! depth of the jobs queue and its dead-letter queue. Queue depths are deployment-wide, so no tenant
//! sees them.
//!
//! A report costs three backend calls (the canary item, both queues' attributes). It is cached per
//! execution environment for [`HealthCache::TTL_MS`], so any number of anonymous requests within that
//! window cost one set of calls; concurrent requests on a cold cache wait for the one probe in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Serialize;
use tokio::sync::Mutex;
use tributary_core::health::{HealthInputs, HealthReport, Probe, ProbeFailure, Status};
use tributary_core::ports::{CanaryStore, QueueStats};
use tributary_core::time::{Clock, EpochMillis};
use utoipa::ToSchema;

use crate::access::{Admin, Public, Scoped};
use crate::config::Config;
use crate::response::{self, Json};
use crate::router::{Api, operations};
use crate::state::{AppState, ControlStore};

/// The last report of this execution environment.
#[derive(Debug, Default)]
pub struct HealthCache {
    last: Mutex<Option<(EpochMillis, HealthReport)>>,
}

impl HealthCache {
    /// How long a report is served before the dependencies are probed again: short next to the
    /// canary's schedule (60 s) and staleness limit (180 s), long enough that a flood of anonymous
    /// probes costs one set of backend calls per environment every few seconds.
    pub const TTL_MS: i64 = 5_000;

    /// The cached report if it is fresh, else a new one from `probe_all`.
    async fn get_or_probe<F>(
        &self,
        clock: &dyn Clock,
        probe_all: impl FnOnce() -> F,
    ) -> HealthReport
    where
        F: Future<Output = HealthReport>,
    {
        // Held across the probe: requests arriving meanwhile get its result instead of probing too.
        let mut last = self.last.lock().await;
        let now = clock.now_ms();
        if let Some((at, report)) = last.as_ref()
            && (0..Self::TTL_MS).contains(&(now - at))
        {
            return report.clone();
        }
        let report = probe_all().await;
        *last = Some((now, report.clone()));
        report
    }
}

/// What health reads: the store's canary, both queues, the clock and settings, and the cache.
pub struct HealthProbe<S, Q> {
    canaries: Arc<S>,
    jobs_queue: Arc<Q>,
    dead_letter_queue: Q,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    cache: HealthCache,
}

impl<S, Q> HealthProbe<S, Q> {
    /// A probe with an empty cache.
    pub fn new(
        canaries: Arc<S>,
        jobs_queue: Arc<Q>,
        dead_letter_queue: Q,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            canaries,
            jobs_queue,
            dead_letter_queue,
            clock,
            config,
            cache: HealthCache::default(),
        }
    }
}

impl<S: CanaryStore, Q: QueueStats> HealthProbe<S, Q> {
    async fn report(&self) -> HealthReport {
        self.cache
            .get_or_probe(self.clock.as_ref(), || {
                assemble(
                    self.canaries.as_ref(),
                    self.jobs_queue.as_ref(),
                    &self.dead_letter_queue,
                    self.clock.as_ref(),
                    &self.config,
                )
            })
            .await
    }
}

/// The health probe, for the health operations.
pub struct Health<S, Q>(pub Arc<HealthProbe<S, Q>>);

impl<S: Send + Sync, Q: Send + Sync> FromRequestParts<AppState<S, Q>> for Health<S, Q> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _: &mut Parts,
        state: &AppState<S, Q>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Health(state.health.clone()))
    }
}

/// The public answer: nothing but the overall status.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicHealth {
    /// `down` when a dependency fails (with 503), `degraded` when the canary is not fresh or dead
    /// letters wait, else `ok`.
    #[schema(value_type = StatusDoc)]
    status: Status,
}

/// Answers the overall status only.
#[utoipa::path(get, path = "/v1/health", operation_id = "get_health", tag = "Operations",
    description = "The overall status, for load balancers and uptime probes: 503 when a dependency is down. Reports are cached for 5 s per execution environment.",
    responses((status = 200, description = "Serving: `ok` or `degraded`", body = PublicHealth),
              (status = 503, description = "A dependency is down: `down`", body = PublicHealth)))]
pub async fn get<S: ControlStore, Q: QueueStats>(
    _: Public,
    Health(probe): Health<S, Q>,
) -> Response {
    let report = probe.report().await;
    let status =
        StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    response::json(
        status,
        &PublicHealth {
            status: report.status,
        },
    )
}

/// Answers the whole health report.
#[utoipa::path(get, path = "/v1/health/details", operation_id = "get_health_details", tag = "Operations",
    description = "The deployment's health: stage, version, dependency checks, the pipeline canary and queue depths. Always 200 when the report could be assembled: read `status` (the public `GET /v1/health` answers 503 when `down`). Reports are cached for 5 s per execution environment.",
    responses((status = 200, description = "The health report", body = HealthReportDoc)))]
pub async fn details<S: ControlStore, Q: QueueStats>(
    _: Scoped<Admin>,
    Health(probe): Health<S, Q>,
) -> Json<HealthReport> {
    Json(probe.report().await)
}

/// The health operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![get, details]
}

/// Probes the dependencies concurrently, each within the probe timeout, and assembles the report.
async fn assemble<C: CanaryStore, Q: QueueStats>(
    canaries: &C,
    jobs_queue: &Q,
    dead_letter_queue: &Q,
    clock: &dyn Clock,
    config: &Config,
) -> HealthReport {
    let timeout = config.probe_timeout;
    let (canary, jobs_queue, dead_letter_queue) = tokio::join!(
        probe(timeout, "dynamodb", canaries.latest()),
        probe(timeout, "sqs", jobs_queue.depth()),
        probe(timeout, "sqs-dlq", dead_letter_queue.depth()),
    );
    HealthReport::assemble(
        HealthInputs {
            canary,
            jobs_queue,
            dead_letter_queue,
        },
        clock.now_ms(),
        config.canary_stale_after.as_secs(),
        env!("CARGO_PKG_VERSION"),
        config.stage.clone(),
    )
}

async fn probe<T, E: std::fmt::Display>(
    timeout: Duration,
    name: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Probe<T> {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(dependency = name, error = %e, "health probe failed");
            Err(ProbeFailure::Error)
        }
        Err(_) => {
            tracing::warn!(dependency = name, "health probe timed out");
            Err(ProbeFailure::Timeout)
        }
    };
    Probe {
        outcome,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The health report (documentation of `tributary_core::health::HealthReport`, whose fields these
/// mirror; a test keeps them in step).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReportDoc {
    /// `down` when a dependency fails, `degraded` when the canary is not fresh or dead letters wait,
    /// else `ok`.
    pub status: StatusDoc,
    /// The deployed version.
    pub version: String,
    /// The deployment stage.
    pub stage: String,
    /// Dependency checks.
    pub checks: ChecksDoc,
    /// The pipeline canary.
    pub canary: CanaryDoc,
    /// Queue depths (null when the queue could not be read).
    pub queues: QueuesDoc,
}

/// Overall or per-dependency status.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusDoc {
    /// Everything works.
    Ok,
    /// Serving, but something needs attention.
    Degraded,
    /// A dependency does not answer.
    Down,
}

/// The dependency checks.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct ChecksDoc {
    /// The state store.
    pub dynamodb: CheckDoc,
    /// The jobs queue.
    pub sqs: CheckDoc,
}

/// One dependency's check.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckDoc {
    /// `ok` or `down`.
    pub status: StatusDoc,
    /// How long the probe took.
    pub latency_ms: u64,
    /// Why it failed (absent when it did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeFailureDoc>,
}

/// Why a probe failed.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailureDoc {
    /// No answer within the probe timeout.
    Timeout,
    /// The dependency answered with an error.
    Error,
}

/// The pipeline canary.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryDoc {
    /// `ok`, `stale` (older than `stale_after_seconds`), `missing` (never processed) or `unknown`
    /// (the store could not be read).
    pub status: CanaryStateDoc,
    /// Enqueue-to-processing latency of the last canary.
    pub last_round_trip_ms: Option<u64>,
    /// Seconds since the last canary was processed.
    pub age_seconds: Option<u64>,
    /// When the last canary was processed (RFC 3339).
    pub processed_at: Option<String>,
    /// Age beyond which the canary counts as stale.
    pub stale_after_seconds: u64,
}

/// The canary's state.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStateDoc {
    /// Processed recently.
    Ok,
    /// Older than the staleness limit.
    Stale,
    /// Never processed.
    Missing,
    /// The store could not be read.
    Unknown,
}

/// Queue depths.
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesDoc {
    /// The jobs queue.
    pub jobs: Option<QueueDepthDoc>,
    /// The dead-letter queue: anything here needs an operator.
    pub dead_letter: Option<QueueDepthDoc>,
}

/// How many messages a queue holds (approximate, as SQS counts them).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueDepthDoc {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Not yet visible because of a delay.
    pub delayed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::canary::CanaryObservation;
    use tributary_core::config::Env;
    use tributary_core::ids::JobId;
    use tributary_core::ports::QueueDepth;
    use tributary_testing::{FakeQueue, ManualClock, MemStore};

    const NOW: EpochMillis = 1_800_000_000_000;

    fn config() -> Config {
        Config::from_env(&Env::from_pairs([
            ("TRIBUTARY_STAGE", "test"),
            ("CONTROL_TABLE", "t"),
            ("RECORDS_TABLE", "r"),
            ("JOBS_QUEUE_URL", "q"),
            ("JOBS_DLQ_URL", "d"),
            ("KEYRING_SECRET_ID", "k"),
            ("HEALTH_PROBE_TIMEOUT_MS", "200"),
        ]))
        .unwrap()
    }

    struct Probed {
        canaries: MemStore,
        jobs: FakeQueue,
        dead_letters: FakeQueue,
        clock: ManualClock,
        config: Config,
        cache: HealthCache,
    }

    impl Probed {
        fn new() -> Self {
            let canaries = MemStore::default();
            canaries.set_canary(CanaryObservation {
                job_id: JobId::generate(),
                enqueued_at_ms: NOW - 10_400,
                processed_at_ms: NOW - 10_000,
            });
            Self {
                canaries,
                jobs: FakeQueue::default(),
                dead_letters: FakeQueue::default(),
                clock: ManualClock::at(NOW),
                config: config(),
                cache: HealthCache::default(),
            }
        }

        async fn report(&self) -> HealthReport {
            self.cache
                .get_or_probe(&self.clock, || {
                    assemble(
                        &self.canaries,
                        &self.jobs,
                        &self.dead_letters,
                        &self.clock,
                        &self.config,
                    )
                })
                .await
        }

        fn calls(&self) -> [usize; 3] {
            [
                self.canaries.calls("latest"),
                self.jobs.calls("depth"),
                self.dead_letters.calls("depth"),
            ]
        }
    }

    #[tokio::test]
    async fn requests_within_the_cache_window_cost_one_set_of_backend_calls() {
        let p = Probed::new();
        for _ in 0..50 {
            assert_eq!(p.report().await.status, Status::Ok);
            p.clock.advance(HealthCache::TTL_MS / 100);
        }
        assert_eq!(p.calls(), [1, 1, 1]);

        p.clock.advance(HealthCache::TTL_MS);
        p.report().await;
        assert_eq!(p.calls(), [2, 2, 2], "an expired report is probed again");
    }

    #[tokio::test]
    async fn concurrent_requests_on_a_cold_cache_share_one_probe() {
        let p = Probed::new();
        let (a, b, c) = tokio::join!(p.report(), p.report(), p.report());
        assert!([a, b, c].iter().all(|r| r.status == Status::Ok));
        assert_eq!(p.calls(), [1, 1, 1]);
    }

    #[tokio::test]
    async fn a_clock_that_goes_backwards_does_not_pin_an_old_report() {
        let p = Probed::new();
        p.report().await;
        p.clock.advance(-60_000);
        p.report().await;
        assert_eq!(p.calls(), [2, 2, 2]);
    }

    /// Every field the report serializes is documented, and nothing else, at every level.
    #[test]
    fn the_documented_schema_matches_the_serialized_report() {
        let report = HealthReport::assemble(
            HealthInputs {
                canary: Probe {
                    outcome: Ok(Some(CanaryObservation {
                        job_id: JobId::generate(),
                        enqueued_at_ms: NOW - 400,
                        processed_at_ms: NOW - 300,
                    })),
                    latency_ms: 1,
                },
                jobs_queue: Probe {
                    outcome: Err(ProbeFailure::Timeout),
                    latency_ms: 200,
                },
                dead_letter_queue: Probe {
                    outcome: Ok(QueueDepth::default()),
                    latency_ms: 1,
                },
            },
            NOW,
            180,
            "0.1.0",
            "test".into(),
        );
        let value = serde_json::to_value(&report).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&crate::router::document::<
            crate::testing::MemStore,
            crate::testing::FakeQueue,
        >())
        .unwrap();
        let schemas = &doc["components"]["schemas"];
        fn check(
            value: &serde_json::Value,
            schema: &serde_json::Value,
            schemas: &serde_json::Value,
            at: &str,
        ) {
            let schema = resolve(schema, schemas);
            let Some(object) = value.as_object() else {
                return;
            };
            let properties = schema["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{at}: no properties in {schema}"));
            for key in object.keys() {
                assert!(properties.contains_key(key), "{at}.{key} is not documented");
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap();
                assert!(
                    object.contains_key(key),
                    "{at}.{key} is documented as required but absent"
                );
            }
            for (key, v) in object {
                check(v, &properties[key], schemas, &format!("{at}.{key}"));
            }
        }
        fn resolve<'a>(
            schema: &'a serde_json::Value,
            schemas: &'a serde_json::Value,
        ) -> &'a serde_json::Value {
            if let Some(r) = schema["$ref"].as_str() {
                return resolve(
                    &schemas[r.trim_start_matches("#/components/schemas/")],
                    schemas,
                );
            }
            // Nullable references are `oneOf: [null, {$ref}]`.
            if let Some(one_of) = schema["oneOf"].as_array()
                && let Some(inner) = one_of.iter().find(|s| s["type"] != "null")
            {
                return resolve(inner, schemas);
            }
            schema
        }
        check(
            &value,
            &serde_json::json!({"$ref": "#/components/schemas/HealthReportDoc"}),
            schemas,
            "report",
        );
    }
}
