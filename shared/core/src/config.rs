//! Typed configuration read once from the environment at cold start.
//!
//! Each function declares its own `Config` struct and builds it with an [`Env`]; a missing or malformed
//! variable fails start-up with a message that names the variable, so a bad deployment fails fast
//! instead of at the first request.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {name} is required ({purpose})")]
    Missing {
        /// The variable's name.
        name: &'static str,
        /// What the variable is for, so the operator knows what to set.
        purpose: &'static str,
    },
    /// A variable is set but its value cannot be used.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Why the value was refused (never the value itself: it may be sensitive).
        reason: String,
    },
}

/// A source of configuration variables: the process environment in production, a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Snapshot of the process environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs (tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A required, non-empty string.
    pub fn required(
        &self,
        name: &'static str,
        purpose: &'static str,
    ) -> Result<String, ConfigError> {
        match self.vars.get(name).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(ConfigError::Missing { name, purpose }),
        }
    }

    /// An optional string; empty counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An optional value parsed with `FromStr`, or `default` when unset.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        }
    }

    /// A duration given in whole seconds, within `[min, max]`, or `default` when unset.
    pub fn seconds_or(
        &self,
        name: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parsed_or(name, default.as_secs())?;
        let value = Duration::from_secs(secs);
        if value < min || value > max {
            return Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "must be between {} and {} seconds",
                    min.as_secs(),
                    max.as_secs()
                ),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_required_variable_is_missing_should_name_it() {
        let env = Env::from_pairs([("OTHER", "x")]);
        let err = env
            .required("CONTROL_TABLE", "the control-plane table")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CONTROL_TABLE is required (the control-plane table)"
        );
    }

    #[test]
    fn when_required_variable_is_blank_should_count_as_missing() {
        let env = Env::from_pairs([("CONTROL_TABLE", "  ")]);
        assert!(matches!(
            env.required("CONTROL_TABLE", "t"),
            Err(ConfigError::Missing { .. })
        ));
    }

    #[test]
    fn when_seconds_out_of_range_should_refuse() {
        let env = Env::from_pairs([("STALE", "5")]);
        let err = env
            .seconds_or(
                "STALE",
                Duration::from_secs(180),
                Duration::from_secs(10),
                Duration::from_secs(3600),
            )
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "STALE", .. }));
    }

    #[test]
    fn when_seconds_unset_should_use_default() {
        let env = Env::default();
        let d = env
            .seconds_or(
                "STALE",
                Duration::from_secs(180),
                Duration::from_secs(10),
                Duration::from_secs(3600),
            )
            .unwrap();
        assert_eq!(d, Duration::from_secs(180));
    }

    #[test]
    fn when_number_is_malformed_should_report_invalid() {
        let env = Env::from_pairs([("N", "ten")]);
        assert!(matches!(
            env.parsed_or::<u32>("N", 1),
            Err(ConfigError::Invalid { name: "N", .. })
        ));
    }
}
