//! The connector's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};
use tributary_core::vault::KeyringSettings;
use tributary_engine::origins::ProviderOrigins;
use tributary_http::EgressPolicy;

/// The connector's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `CONTROL_TABLE`: the control-plane table (canary, job ledger, connections).
    pub control_table: String,
    /// `JOBS_QUEUE_URL`: the queue this function consumes; used to reschedule failed messages.
    pub jobs_queue_url: String,
    /// `JOB_LEDGER_RETENTION_SECONDS`: how long completed job ids are remembered to drop redeliveries
    /// (default 4 days, the jobs queue's retention).
    pub ledger_retention: Duration,
    /// `KEYRING_SECRET_ID` and `KEYRING_CACHE_TTL_SECONDS`: the credential vault's keyring.
    pub keyring: KeyringSettings,
    /// `EGRESS_ALLOWLIST`: loopback or private IPs and CIDRs that requests to providers may reach
    /// (the API's setting; empty in AWS).
    pub egress: EgressPolicy,
    /// `PROVIDER_ORIGINS`: the deployment's provider origin overrides (the API's setting).
    pub provider_origins: ProviderOrigins,
    /// `RECORDS_TABLE`: the records table (synced records and their change feed).
    pub records_table: String,
    /// `SYNC_TIME_BUDGET_SECONDS`: the most time one invocation spends reading a run before it
    /// saves its position and continues in a new one (unset: 80 % of the time the invocation has
    /// left when the run starts). A tuning and testing knob.
    pub sync_time_budget: Option<Duration>,
    /// `OPERATIONS_RETENTION_DAYS`: how long the operations log keeps an operation (default 14).
    pub operations_retention_days: u32,
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
            keyring: KeyringSettings::from_env(env)?,
            egress: EgressPolicy::from_list(&env.optional("EGRESS_ALLOWLIST").unwrap_or_default())
                .map_err(|e| ConfigError::Invalid {
                    name: "EGRESS_ALLOWLIST",
                    reason: e.to_string(),
                })?,
            records_table: env.required("RECORDS_TABLE", "the records DynamoDB table")?,
            operations_retention_days: tributary_core::operation::retention_days(env)?,
            sync_time_budget: match env.optional("SYNC_TIME_BUDGET_SECONDS") {
                None => None,
                Some(_) => Some(env.seconds_or(
                    "SYNC_TIME_BUDGET_SECONDS",
                    Duration::from_secs(600),
                    Duration::from_secs(1),
                    Duration::from_secs(900),
                )?),
            },
            provider_origins: tributary_engine::origins::parse(
                &env.optional("PROVIDER_ORIGINS").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                name: "PROVIDER_ORIGINS",
                reason,
            })?,
        })
    }
}

impl Config {
    /// The HTTP settings of requests to providers from the connector: a refresh job is retried by
    /// the queue, so one job makes at most three attempts within 30 s.
    pub fn provider_http(&self) -> tributary_engine::HttpConfig {
        tributary_engine::HttpConfig {
            max_attempts: 3,
            time_budget: Duration::from_secs(30),
            egress: self.egress.clone(),
            ..tributary_engine::HttpConfig::default()
        }
    }

    /// The HTTP settings of sync reads: one attempt per request, since a run defers through the
    /// queue on a rate limit or an outage (one retry layer), with a 60 s cap on any one request.
    pub fn sync_http(&self) -> tributary_engine::HttpConfig {
        tributary_engine::HttpConfig {
            max_attempts: 1,
            request_timeout: Duration::from_secs(60),
            time_budget: Duration::from_secs(60),
            egress: self.egress.clone(),
            ..tributary_engine::HttpConfig::default()
        }
    }
}
