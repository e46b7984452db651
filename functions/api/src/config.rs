//! The API's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};

/// The API's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `TRIBUTARY_STAGE`: the deployment stage, reported by health.
    pub stage: String,
    /// `CONTROL_TABLE`: the control-plane table.
    pub control_table: String,
    /// `JOBS_QUEUE_URL`: the jobs queue.
    pub jobs_queue_url: String,
    /// `JOBS_DLQ_URL`: the jobs queue's dead-letter queue.
    pub jobs_dlq_url: String,
    /// `CANARY_STALE_AFTER_SECONDS`: canary age beyond which health reports `degraded`
    /// (default 180, three schedule ticks).
    pub canary_stale_after: Duration,
    /// `HEALTH_PROBE_TIMEOUT_MS`: how long health waits for each dependency (default 1500).
    pub probe_timeout: Duration,
    /// `MAX_ISSUERS_PER_TENANT`: how many OIDC issuer registrations one tenant may hold (default 20,
    /// 1 to 1000).
    pub max_issuers_per_tenant: u32,
    /// `KEYRING_SECRET_ID`: the Secrets Manager secret holding the credential vault's keyring.
    pub keyring_secret_id: String,
    /// `KEYRING_CACHE_TTL_SECONDS`: how long an execution environment keeps the keyring it read
    /// (default 300, 1 to 3600): a rotation reaches every environment within this time.
    pub keyring_ttl: Duration,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let probe_ms: u64 = env.parsed_or("HEALTH_PROBE_TIMEOUT_MS", 1500)?;
        if !(100..=10_000).contains(&probe_ms) {
            return Err(ConfigError::Invalid {
                name: "HEALTH_PROBE_TIMEOUT_MS",
                reason: "must be between 100 and 10000 milliseconds".into(),
            });
        }
        let max_issuers: u32 = env.parsed_or(
            "MAX_ISSUERS_PER_TENANT",
            tributary_core::tenancy::DEFAULT_MAX_ISSUERS_PER_TENANT,
        )?;
        if !(1..=1000).contains(&max_issuers) {
            return Err(ConfigError::Invalid {
                name: "MAX_ISSUERS_PER_TENANT",
                reason: "must be between 1 and 1000".into(),
            });
        }
        Ok(Self {
            stage: env
                .optional("TRIBUTARY_STAGE")
                .unwrap_or_else(|| "dev".into()),
            control_table: env.required("CONTROL_TABLE", "the control-plane DynamoDB table")?,
            jobs_queue_url: env.required("JOBS_QUEUE_URL", "the jobs queue URL")?,
            jobs_dlq_url: env.required("JOBS_DLQ_URL", "the jobs dead-letter queue URL")?,
            canary_stale_after: env.seconds_or(
                "CANARY_STALE_AFTER_SECONDS",
                Duration::from_secs(180),
                Duration::from_secs(5),
                Duration::from_secs(86_400),
            )?,
            probe_timeout: Duration::from_millis(probe_ms),
            max_issuers_per_tenant: max_issuers,
            keyring_secret_id: env.required(
                "KEYRING_SECRET_ID",
                "the Secrets Manager secret of the credential keyring",
            )?,
            keyring_ttl: env.seconds_or(
                "KEYRING_CACHE_TTL_SECONDS",
                Duration::from_secs(300),
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?,
        })
    }
}
