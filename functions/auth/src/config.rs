//! The authorizer's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};

/// The authorizer's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `ADMIN_KEY_SECRET_ID`: the Secrets Manager secret holding the deployment's admin API key.
    pub admin_key_secret_id: String,
    /// `SECRET_CACHE_TTL_SECONDS`: how long a warm authorizer keeps a secret before reading it again, so
    /// a rotated key takes effect within this time (default 300).
    pub secret_cache_ttl: Duration,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            admin_key_secret_id: env.required(
                "ADMIN_KEY_SECRET_ID",
                "the Secrets Manager secret holding the admin API key",
            )?,
            secret_cache_ttl: env.seconds_or(
                "SECRET_CACHE_TTL_SECONDS",
                Duration::from_secs(300),
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?,
        })
    }
}
