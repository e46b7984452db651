//! The authorizer's configuration, read once at cold start.

use std::time::Duration;

use tributary_core::config::{ConfigError, Env};
use tributary_http::EgressPolicy;

/// The authorizer's settings (set by `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `ADMIN_KEY_SECRET_ID`: the Secrets Manager secret holding the deployment's admin API key.
    pub admin_key_secret_id: String,
    /// `SECRET_CACHE_TTL_SECONDS`: how long a warm authorizer keeps a secret before reading it again, so
    /// a rotated key takes effect within this time (default 300).
    pub secret_cache_ttl: Duration,
    /// `CONTROL_TABLE`: the control-plane table holding tenants, API keys and registered issuers.
    pub control_table: String,
    /// `JWKS_CACHE_TTL_SECONDS`: how long issuer discovery documents and signing keys are kept before
    /// they are fetched again (default 600). An unknown `kid` refetches sooner: at most once a minute, or
    /// once every 10 s when the cached keys are older than 5 minutes (see `jwks::OLD_KEYS`).
    pub jwks_cache_ttl: Duration,
    /// `EGRESS_ALLOWLIST`: comma-separated IPs or CIDRs that issuer fetches may reach although they are
    /// loopback or private (empty by default; the local stack and tests open `127.0.0.1`). Such hosts
    /// may also be reached over plain http.
    pub egress: EgressPolicy,
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let allowlist = env.optional("EGRESS_ALLOWLIST").unwrap_or_default();
        let egress = EgressPolicy::from_list(&allowlist).map_err(|e| ConfigError::Invalid {
            name: "EGRESS_ALLOWLIST",
            reason: e.to_string(),
        })?;
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
            control_table: env.required(
                "CONTROL_TABLE",
                "the control-plane table (tenants, API keys, issuers)",
            )?,
            jwks_cache_ttl: env.seconds_or(
                "JWKS_CACHE_TTL_SECONDS",
                Duration::from_secs(600),
                Duration::from_secs(60),
                Duration::from_secs(86_400),
            )?,
            egress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        ("ADMIN_KEY_SECRET_ID", "admin"),
        ("CONTROL_TABLE", "control"),
    ];

    #[test]
    fn defaults_apply_when_optional_variables_are_unset() {
        let c = Config::from_env(&Env::from_pairs(BASE)).unwrap();
        assert_eq!(c.jwks_cache_ttl, Duration::from_secs(600));
        assert_eq!(c.secret_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.egress, EgressPolicy::public_only());
    }

    #[test]
    fn allowlist_is_parsed_and_bad_entries_are_named() {
        let mut env: Vec<_> = BASE.to_vec();
        env.push(("EGRESS_ALLOWLIST", " 127.0.0.1, 10.0.0.0/8 ,"));
        let c = Config::from_env(&Env::from_pairs(env.clone())).unwrap();
        assert!(c.egress.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        env.push(("EGRESS_ALLOWLIST", "localhost"));
        let err = Config::from_env(&Env::from_pairs(env)).unwrap_err();
        assert!(err.to_string().contains("EGRESS_ALLOWLIST"), "{err}");
    }

    #[test]
    fn control_table_is_required() {
        let err = Config::from_env(&Env::from_pairs([("ADMIN_KEY_SECRET_ID", "a")])).unwrap_err();
        assert!(err.to_string().contains("CONTROL_TABLE"), "{err}");
    }
}
