//! The monitor's configuration, read once at cold start.

use tributary_core::config::{ConfigError, Env};

/// The monitor's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `JOBS_QUEUE_URL`: where the canary and refresh jobs are enqueued.
    pub jobs_queue_url: String,
    /// `CONTROL_TABLE`: the control-plane table (its index of connections due for a refresh).
    pub control_table: String,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            jobs_queue_url: env.required("JOBS_QUEUE_URL", "the jobs queue URL")?,
            control_table: env.required("CONTROL_TABLE", "the control-plane DynamoDB table")?,
        })
    }
}
