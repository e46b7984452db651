//! The health report served at `GET /v1/health`: whether the store and the queue answer, the pipeline
//! canary's last round trip and age, and the depth of the jobs queue and its dead-letter queue.

use serde::Serialize;

use crate::canary::CanaryObservation;
use crate::ports::QueueDepth;
use crate::time::{EpochMillis, rfc3339};

/// Overall or per-part status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything works.
    Ok,
    /// Serving, but something needs attention (stale canary, dead letters).
    Degraded,
    /// A dependency does not answer: requests will fail.
    Down,
}

/// Why a probe failed, without internal detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeFailure {
    /// No answer within the probe's timeout.
    Timeout,
    /// The dependency answered with an error.
    Error,
}

/// The outcome of probing one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe<T> {
    /// What the probe read, or why it failed.
    pub outcome: Result<T, ProbeFailure>,
    /// How long the probe took.
    pub latency_ms: u64,
}

/// One dependency's check in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `ok` or `down`.
    pub status: Status,
    /// How long the probe took.
    pub latency_ms: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProbeFailure>,
}

/// The canary's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryState {
    /// Processed recently.
    Ok,
    /// The last round trip is older than the staleness limit.
    Stale,
    /// No canary was ever processed.
    Missing,
    /// The store could not be read.
    Unknown,
}

/// The canary part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanaryReport {
    /// The canary's state.
    pub status: CanaryState,
    /// Enqueue-to-processing latency of the last canary.
    pub last_round_trip_ms: Option<u64>,
    /// Seconds since the last canary was processed.
    pub age_seconds: Option<u64>,
    /// When the last canary was processed (RFC 3339).
    pub processed_at: Option<String>,
    /// Age beyond which the canary counts as stale.
    pub stale_after_seconds: u64,
}

/// Queue depths in the report (absent when the queue could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuesReport {
    /// The jobs queue.
    pub jobs: Option<QueueDepth>,
    /// The dead-letter queue: anything here needs an operator.
    pub dead_letter: Option<QueueDepth>,
}

/// Named dependency checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// The state store.
    pub dynamodb: Check,
    /// The jobs queue.
    pub sqs: Check,
}

/// The whole health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The overall status: `down` when a dependency fails, `degraded` when the canary is not fresh or
    /// dead letters wait, else `ok`.
    pub status: Status,
    /// The deployed version.
    pub version: &'static str,
    /// The deployment stage.
    pub stage: String,
    /// Dependency checks.
    pub checks: Checks,
    /// The pipeline canary.
    pub canary: CanaryReport,
    /// Queue depths.
    pub queues: QueuesReport,
}

/// What the health handler gathered.
#[derive(Debug, Clone)]
pub struct HealthInputs {
    /// Reading the latest canary doubles as the store probe.
    pub canary: Probe<Option<CanaryObservation>>,
    /// Reading the jobs queue's depth doubles as the queue probe.
    pub jobs_queue: Probe<QueueDepth>,
    /// The dead-letter queue's depth.
    pub dead_letter_queue: Probe<QueueDepth>,
}

impl HealthReport {
    /// Builds the report from probe results as of `now`.
    pub fn assemble(
        inputs: HealthInputs,
        now: EpochMillis,
        stale_after_seconds: u64,
        version: &'static str,
        stage: String,
    ) -> Self {
        let check = |latency_ms: u64, failure: Option<ProbeFailure>| Check {
            status: if failure.is_some() {
                Status::Down
            } else {
                Status::Ok
            },
            latency_ms,
            error: failure,
        };
        let dynamodb = check(
            inputs.canary.latency_ms,
            inputs.canary.outcome.as_ref().err().copied(),
        );
        let sqs = check(
            inputs.jobs_queue.latency_ms,
            inputs.jobs_queue.outcome.as_ref().err().copied(),
        );

        let canary = match &inputs.canary.outcome {
            Err(_) => CanaryReport {
                status: CanaryState::Unknown,
                last_round_trip_ms: None,
                age_seconds: None,
                processed_at: None,
                stale_after_seconds,
            },
            Ok(None) => CanaryReport {
                status: CanaryState::Missing,
                last_round_trip_ms: None,
                age_seconds: None,
                processed_at: None,
                stale_after_seconds,
            },
            Ok(Some(obs)) => {
                let age_seconds = obs.age_ms(now) / 1000;
                CanaryReport {
                    status: if age_seconds > stale_after_seconds {
                        CanaryState::Stale
                    } else {
                        CanaryState::Ok
                    },
                    last_round_trip_ms: Some(obs.round_trip_ms()),
                    age_seconds: Some(age_seconds),
                    processed_at: rfc3339(obs.processed_at_ms),
                    stale_after_seconds,
                }
            }
        };

        let jobs = inputs.jobs_queue.outcome.ok();
        let dead_letter = inputs.dead_letter_queue.outcome.ok();
        let dead_letters_waiting = dead_letter.is_some_and(|d| d.visible + d.in_flight > 0);

        let status = if dynamodb.status == Status::Down || sqs.status == Status::Down {
            Status::Down
        } else if canary.status != CanaryState::Ok || dead_letters_waiting || dead_letter.is_none()
        {
            Status::Degraded
        } else {
            Status::Ok
        };

        HealthReport {
            status,
            version,
            stage,
            checks: Checks { dynamodb, sqs },
            canary,
            queues: QueuesReport { jobs, dead_letter },
        }
    }

    /// The HTTP status to answer with: 503 when down, so load balancers and probes notice.
    pub fn http_status(&self) -> u16 {
        match self.status {
            Status::Down => 503,
            Status::Ok | Status::Degraded => 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn ok<T>(v: T) -> Probe<T> {
        Probe {
            outcome: Ok(v),
            latency_ms: 3,
        }
    }

    fn canary(processed_at_ms: EpochMillis) -> CanaryObservation {
        CanaryObservation {
            job_id: JobId::generate(),
            enqueued_at_ms: processed_at_ms - 250,
            processed_at_ms,
        }
    }

    fn assemble(inputs: HealthInputs, now: EpochMillis) -> HealthReport {
        HealthReport::assemble(inputs, now, 180, "0.1.0", "dev".into())
    }

    #[test]
    fn when_everything_answers_and_canary_is_fresh_should_be_ok() {
        let r = assemble(
            HealthInputs {
                canary: ok(Some(canary(1_000_000))),
                jobs_queue: ok(QueueDepth::default()),
                dead_letter_queue: ok(QueueDepth::default()),
            },
            1_060_000,
        );
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.canary.status, CanaryState::Ok);
        assert_eq!(r.canary.last_round_trip_ms, Some(250));
        assert_eq!(r.canary.age_seconds, Some(60));
        assert_eq!(r.http_status(), 200);
    }

    #[test]
    fn when_canary_is_older_than_limit_should_be_degraded() {
        let r = assemble(
            HealthInputs {
                canary: ok(Some(canary(1_000_000))),
                jobs_queue: ok(QueueDepth::default()),
                dead_letter_queue: ok(QueueDepth::default()),
            },
            1_000_000 + 181_000,
        );
        assert_eq!(r.canary.status, CanaryState::Stale);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.http_status(), 200);
    }

    #[test]
    fn when_dead_letters_wait_should_be_degraded() {
        let r = assemble(
            HealthInputs {
                canary: ok(Some(canary(1_000_000))),
                jobs_queue: ok(QueueDepth::default()),
                dead_letter_queue: ok(QueueDepth {
                    visible: 1,
                    ..QueueDepth::default()
                }),
            },
            1_000_500,
        );
        assert_eq!(r.status, Status::Degraded);
    }

    #[test]
    fn when_store_times_out_should_be_down_with_503() {
        let r = assemble(
            HealthInputs {
                canary: Probe {
                    outcome: Err(ProbeFailure::Timeout),
                    latency_ms: 1500,
                },
                jobs_queue: ok(QueueDepth::default()),
                dead_letter_queue: ok(QueueDepth::default()),
            },
            0,
        );
        assert_eq!(r.status, Status::Down);
        assert_eq!(r.checks.dynamodb.error, Some(ProbeFailure::Timeout));
        assert_eq!(r.canary.status, CanaryState::Unknown);
        assert_eq!(r.http_status(), 503);
    }

    #[test]
    fn when_no_canary_was_ever_processed_should_report_missing() {
        let r = assemble(
            HealthInputs {
                canary: ok(None),
                jobs_queue: ok(QueueDepth::default()),
                dead_letter_queue: ok(QueueDepth::default()),
            },
            0,
        );
        assert_eq!(r.canary.status, CanaryState::Missing);
        assert_eq!(r.status, Status::Degraded);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["canary"]["status"], "missing");
        assert_eq!(json["checks"]["sqs"]["status"], "ok");
    }
}
