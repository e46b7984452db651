//! The API's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};
use tributary_core::vault::KeyringSettings;
use tributary_engine::origins::ProviderOrigins;
use tributary_http::EgressPolicy;

/// The API's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `TRIBUTARY_STAGE`: the deployment stage, reported by health.
    pub stage: String,
    /// `CONTROL_TABLE`: the control-plane table.
    pub control_table: String,
    /// `RECORDS_TABLE`: the records table (synced records and their change feeds), read by
    /// `/v1/records`.
    pub records_table: String,
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
    /// `KEYRING_SECRET_ID` and `KEYRING_CACHE_TTL_SECONDS`: the credential vault's keyring.
    pub keyring: KeyringSettings,
    /// `EGRESS_ALLOWLIST`: comma-separated IPs or CIDRs that requests to providers (a new
    /// connection's verification) may reach although they are loopback or private. Empty in AWS;
    /// the local stack opens `127.0.0.1` for its local providers.
    pub egress: EgressPolicy,
    /// `PROVIDER_ORIGINS`: `provider=origin` pairs, comma-separated, that send every request to a
    /// provider (its API, authorization and token endpoints) to another origin, keeping the path:
    /// local providers for development and tests. Set by the deployment only (a template
    /// parameter, empty in AWS); no tenant or end user can change where a provider's requests go.
    pub provider_origins: ProviderOrigins,
    /// `PUBLIC_BASE_URL`: the origin end users reach the API at (a custom domain), for the connect
    /// links and the OAuth redirect URI; empty: the request's own host.
    pub public_base_url: Option<String>,
    /// `OPERATIONS_RETENTION_DAYS`: how long the operations log keeps an operation (default 14).
    pub operations_retention_days: u32,
}

impl Config {
    /// The HTTP settings of requests to providers from the API: a verification answers within an
    /// API request (API Gateway waits 30 s), so it gets two attempts within 12 s and never waits
    /// out a long `Retry-After`.
    pub fn provider_http(&self) -> tributary_engine::HttpConfig {
        tributary_engine::HttpConfig {
            connect_timeout: Duration::from_secs(4),
            request_timeout: Duration::from_secs(15),
            max_attempts: 2,
            // Under API Gateway's 30 s and the function's 28 s, with room to answer.
            time_budget: Duration::from_secs(22),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
            max_inline_wait: Duration::from_secs(2),
            // What a Lambda response can carry back (6 MB, less the JSON around it).
            max_response_bytes: crate::routes::proxy::MAX_RESPONSE_BYTES,
            egress: self.egress.clone(),
            ..tributary_engine::HttpConfig::default()
        }
    }
}

impl Config {
    /// A URL template of `provider` sent to the deployment's origin override
    /// ([`tributary_engine::origins::provider_url`]).
    pub fn provider_url(&self, provider: &str, template: &str) -> String {
        tributary_engine::origins::provider_url(&self.provider_origins, provider, template)
    }
}

fn allowlist(env: &Env) -> Result<EgressPolicy, ConfigError> {
    let allowlist = env.optional("EGRESS_ALLOWLIST").unwrap_or_default();
    EgressPolicy::from_list(&allowlist).map_err(|e| ConfigError::Invalid {
        name: "EGRESS_ALLOWLIST",
        reason: e.to_string(),
    })
}

/// An origin: `scheme://host[:port]`, nothing after it.
fn origin(raw: &str) -> Result<String, String> {
    let parsed = url::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("not an http(s) URL".into());
    }
    let origin = parsed.origin().ascii_serialization();
    if raw.trim().trim_end_matches('/') != origin {
        return Err(format!(
            "write it as the origin `{origin}` (no path, query or credentials)"
        ));
    }
    Ok(origin)
}

fn origins(env: &Env) -> Result<ProviderOrigins, ConfigError> {
    tributary_engine::origins::parse(&env.optional("PROVIDER_ORIGINS").unwrap_or_default()).map_err(
        |reason| ConfigError::Invalid {
            name: "PROVIDER_ORIGINS",
            reason,
        },
    )
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
            records_table: env.required("RECORDS_TABLE", "the records DynamoDB table")?,
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
            keyring: KeyringSettings::from_env(env)?,
            egress: allowlist(env)?,
            provider_origins: origins(env)?,
            operations_retention_days: tributary_core::operation::retention_days(env)?,
            public_base_url: env
                .optional("PUBLIC_BASE_URL")
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    origin(&v).map_err(|reason| ConfigError::Invalid {
                        name: "PUBLIC_BASE_URL",
                        reason,
                    })
                })
                .transpose()?,
        })
    }
}
