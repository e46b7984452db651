//! Secrets Manager adapter with a per-execution-environment cache: a warm Lambda reads each secret at
//! most once per TTL, which keeps latency and the per-call price down while rotations still arrive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::SecretString;
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ports::SecretSource;

use crate::lazy::Lazy;

/// Values with an expiry, keyed by string.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key` if it was stored less than `ttl` before `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key` as of `now`.
    pub fn put(&self, key: &str, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(key.to_owned(), (now, value));
    }
}

/// Reads secrets from Secrets Manager through a TTL cache.
#[derive(Debug)]
pub struct CachedSecrets {
    client: Lazy<Client>,
    cache: TtlCache<SecretString>,
}

impl CachedSecrets {
    /// A reader through `client` (a client, or one built on first use) whose cached values live for
    /// `ttl`.
    pub fn new(client: impl Into<Lazy<Client>>, ttl: Duration) -> Self {
        Self {
            client: client.into(),
            cache: TtlCache::new(ttl),
        }
    }
}

impl SecretSource for CachedSecrets {
    async fn secret(&self, id: &str) -> Result<SecretString, PortError> {
        if let Some(hit) = self.cache.get(id, Instant::now()) {
            return Ok(hit);
        }
        let out =
            self.client
                .get()
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| {
                    crate::errors::classify(Service::Secrets, "GetSecretValue", e, |inner| {
                        match inner {
                            GetSecretValueError::ResourceNotFoundException(_) => {
                                Some(PortError::NotFound {
                                    service: Service::Secrets,
                                    operation: "GetSecretValue",
                                })
                            }
                            _ => None,
                        }
                    })
                })?;
        let value = out.secret_string.ok_or(PortError::Corrupt {
            service: Service::Secrets,
            operation: "GetSecretValue",
            detail: "secret has no string value".to_owned(),
        })?;
        let value = SecretString::from(value);
        self.cache.put(id, value.clone(), Instant::now());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_ttl() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        cache.put("a", 1, t0);
        assert_eq!(cache.get("a", t0 + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get("a", t0 + Duration::from_secs(60)), None);
        assert_eq!(cache.get("b", t0), None);
    }
}
