//! `GET /v1/health` (no authentication): dependencies, the pipeline canary and queue depths.

use std::future::Future;
use std::time::{Duration, Instant};

use lambda_http::{Body, Response};
use tributary_core::health::{HealthInputs, HealthReport, Probe, ProbeFailure};
use tributary_core::ports::QueueStats;

use crate::handler::{ControlStore, Deps};
use crate::response;

/// Probes the dependencies concurrently, each within the probe timeout, and reports.
pub async fn get<S: ControlStore, Q: QueueStats>(deps: &Deps<S, Q>) -> Response<Body> {
    let timeout = deps.config.probe_timeout;
    let (canary, jobs_queue, dead_letter_queue) = tokio::join!(
        probe(timeout, "dynamodb", deps.store.latest()),
        probe(timeout, "sqs", deps.jobs_queue.depth()),
        probe(timeout, "sqs-dlq", deps.dead_letter_queue.depth()),
    );
    let report = HealthReport::assemble(
        HealthInputs {
            canary,
            jobs_queue,
            dead_letter_queue,
        },
        deps.clock.now_ms(),
        deps.config.canary_stale_after.as_secs(),
        env!("CARGO_PKG_VERSION"),
        deps.config.stage.clone(),
    );
    response::json(report.http_status(), &report)
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
