//! The connector's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};

/// The connector's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `CONTROL_TABLE`: the control-plane table (canary, job ledger).
    pub control_table: String,
    /// `JOBS_QUEUE_URL`: the queue this function consumes; used to reschedule failed messages.
    pub jobs_queue_url: String,
    /// `JOB_LEDGER_RETENTION_SECONDS`: how long completed job ids are remembered to drop redeliveries
    /// (default 4 days, the jobs queue's retention).
    pub ledger_retention: Duration,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            control_table: env.required("CONTROL_TABLE", "the control-plane DynamoDB table")?,
            jobs_queue_url: env.required("JOBS_QUEUE_URL", "the jobs queue URL")?,
            ledger_retention: env.seconds_or(
                "JOB_LEDGER_RETENTION_SECONDS",
                Duration::from_secs(4 * 24 * 3600),
                Duration::from_secs(3600),
                Duration::from_secs(14 * 24 * 3600),
            )?,
        })
    }
}
