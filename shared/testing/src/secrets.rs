//! [`FakeSecrets`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use secrecy::SecretString;
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ports::SecretSource;

use crate::calls::Calls;

const METHODS: &[&str] = &["secret"];

/// Secrets Manager in memory: secret ids and their current values. Like the real adapter, an unknown
/// id is [`PortError::NotFound`]; while [`FakeSecrets::fail`] is on, every read fails as an
/// unavailable service would. Every read is counted (see [`FakeSecrets::calls`]), failed ones too, so
/// a test can tell that a path never touched the secret store. There is no cache here: the real
/// adapter's per-environment cache is its own concern.
#[derive(Debug)]
pub struct FakeSecrets {
    values: Mutex<HashMap<String, String>>,
    failing: AtomicBool,
    calls: Calls,
}

impl Default for FakeSecrets {
    fn default() -> Self {
        Self {
            values: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            calls: Calls::new("FakeSecrets", METHODS),
        }
    }
}

impl FakeSecrets {
    /// A store holding the one secret `id` with `value`.
    pub fn with(id: &str, value: &str) -> Self {
        let secrets = Self::default();
        secrets.set(id, value);
        secrets
    }

    /// Stores (or rotates) the secret `id`.
    pub fn set(&self, id: &str, value: &str) {
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), value.to_owned());
    }

    /// Turns the failure switch on or off: while on, every read fails as
    /// [`PortError::Unavailable`].
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// How many times the port method `method` (`"secret"`) was called. Panics on another name.
    pub fn calls(&self, method: &str) -> usize {
        self.calls.of(method)
    }
}

impl SecretSource for FakeSecrets {
    async fn secret(&self, id: &str) -> Result<SecretString, PortError> {
        self.calls.count("secret");
        if self.failing.load(Ordering::SeqCst) {
            return Err(PortError::Unavailable {
                service: Service::Secrets,
                operation: "GetSecretValue",
                detail: "arn:aws:secretsmanager:secret-internal-detail (injected fault)".into(),
            });
        }
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        match values.get(id) {
            Some(value) => Ok(SecretString::from(value.clone())),
            None => Err(PortError::NotFound {
                service: Service::Secrets,
                operation: "GetSecretValue",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[tokio::test]
    async fn known_ids_answer_their_value_and_unknown_ones_are_not_found() {
        let s = FakeSecrets::with("admin", "k3y");
        assert_eq!(s.secret("admin").await.unwrap().expose_secret(), "k3y");
        assert!(matches!(
            s.secret("other").await,
            Err(PortError::NotFound {
                service: Service::Secrets,
                ..
            })
        ));
        s.set("admin", "rotated");
        assert_eq!(s.secret("admin").await.unwrap().expose_secret(), "rotated");
        assert_eq!(s.calls("secret"), 3);
    }

    #[tokio::test]
    async fn a_failing_store_fails_every_read_and_counts_it() {
        let s = FakeSecrets::with("admin", "k3y");
        s.fail(true);
        assert!(matches!(
            s.secret("admin").await,
            Err(PortError::Unavailable { .. })
        ));
        assert_eq!(s.calls("secret"), 1);
        s.fail(false);
        assert!(s.secret("admin").await.is_ok());
    }

    #[test]
    #[should_panic(expected = "no port method")]
    fn a_misspelt_method_name_panics() {
        FakeSecrets::default().calls("secrets");
    }
}
