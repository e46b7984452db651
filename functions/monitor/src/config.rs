//! The monitor's configuration, read once at cold start.

use tributary_core::config::{ConfigError, Env};

/// The monitor's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `JOBS_QUEUE_URL`: where the canary is enqueued.
    pub jobs_queue_url: String,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            jobs_queue_url: env.required("JOBS_QUEUE_URL", "the jobs queue URL")?,
        })
    }
}
