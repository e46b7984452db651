//! The credential vault's cryptography: AES-256-GCM under the active key of a versioned keyring, with
//! the owner of a value (tenant, object, purpose) as associated data, so that a sealed value copied
//! into another tenant's or another connection's item does not open.
//!
//! The keyring is one JSON secret: `{"active": "k2", "k1": "<key material>", "k2": "…"}`, each
//! member but `active` a key id and its material: at least 43 characters with 256 bits of entropy
//! (64 random letters and digits, as the template generates at deploy time, or the base64 of 32
//! random bytes). The AES key is derived from the material with HKDF-SHA256, bound to the key id.
//! Rotation adds a key and makes it active: new values are sealed under it, values sealed under an
//! older key still open ([`Keyring::needs_reseal`] says which to re-seal when next written), and an
//! old key is removed only once nothing is sealed under it. Each value gets a random 96-bit nonce,
//! which keeps a key well inside AES-GCM's limits for the number of values one deployment seals.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

use crate::error::PortError;
use crate::ports::SecretSource;
use crate::time::{Clock, EpochMillis};

/// The format tag of a sealed value.
const FORMAT: &str = "v1";
/// Domain separation of the associated data.
const AAD_DOMAIN: &[u8] = b"tributary-vault-v1";
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// The shortest key material accepted: 43 base64 characters carry 256 bits.
const MIN_MATERIAL: usize = 43;

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The keyring secret is not a valid keyring.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The value was sealed under a key the keyring no longer has.
    #[error("the value was sealed under key `{0}`, which the keyring does not hold")]
    UnknownKey(String),
    /// The stored text is not a sealed value.
    #[error("not a sealed value")]
    Malformed,
    /// Authentication failed: the ciphertext was altered, or it belongs to another owner.
    #[error("the sealed value does not open for this owner (altered, or copied from another item)")]
    Open,
    /// An owner field is empty or holds a NUL byte.
    #[error("associated data: `{0}` must be non-empty and free of NUL bytes")]
    Owner(&'static str),
    /// The keyring secret could not be read.
    #[error("reading the keyring: {0}")]
    Source(#[from] PortError),
    /// The operating system's random number generator failed to give a nonce.
    #[error("the system's random number generator failed")]
    Entropy,
}

impl PartialEq for VaultError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Keyring(a), Self::Keyring(b)) | (Self::UnknownKey(a), Self::UnknownKey(b)) => {
                a == b
            }
            (Self::Malformed, Self::Malformed)
            | (Self::Open, Self::Open)
            | (Self::Entropy, Self::Entropy) => true,
            (Self::Owner(a), Self::Owner(b)) => a == b,
            (Self::Source(a), Self::Source(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

/// Whose a value is: bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The tenant id.
    pub tenant: &'a str,
    /// The object the value belongs to (a connection id, an integration id).
    pub object: &'a str,
    /// What the value is (`credentials`, `client_secret`).
    pub purpose: &'a str,
}

impl Owner<'_> {
    fn aad(&self) -> Result<Vec<u8>, VaultError> {
        let mut aad = AAD_DOMAIN.to_vec();
        for (name, part) in [
            ("tenant", self.tenant),
            ("object", self.object),
            ("purpose", self.purpose),
        ] {
            if part.is_empty() || part.as_bytes().contains(&0) {
                return Err(VaultError::Owner(name));
            }
            aad.push(0);
            aad.extend_from_slice(part.as_bytes());
        }
        Ok(aad)
    }
}

/// A value sealed under one key of the keyring.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    key_id: String,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Sealed {
    /// The key it was sealed under.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Its stored form: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(NONCE_LEN + self.ciphertext.len());
        bytes.extend_from_slice(&self.nonce);
        bytes.extend_from_slice(&self.ciphertext);
        format!("{FORMAT}.{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads the stored form.
    pub fn decode(text: &str) -> Result<Self, VaultError> {
        let mut parts = text.split('.');
        let (Some(FORMAT), Some(key_id), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Malformed);
        };
        if !valid_key_id(key_id) {
            return Err(VaultError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| VaultError::Malformed)?;
        // A nonce and at least the 16-byte tag.
        if bytes.len() < NONCE_LEN + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let mut fixed = [0; NONCE_LEN];
        fixed.copy_from_slice(nonce);
        Ok(Self {
            key_id: key_id.to_owned(),
            nonce: fixed,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The keyring: every key a value may be sealed under, and the one new values use.
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl Keyring {
    /// Reads the keyring secret.
    pub fn from_secret(secret: &SecretString) -> Result<Self, VaultError> {
        let mut doc: BTreeMap<String, String> = serde_json::from_str(secret.expose_secret())
            .map_err(|e| {
                // Only the kind and position: serde's message may quote a value.
                VaultError::Keyring(format!(
                    "not a keyring document: a JSON object of strings ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            })?;
        let active = doc
            .remove("active")
            .ok_or_else(|| VaultError::Keyring("no `active` key id".into()))?;
        let mut keys = BTreeMap::new();
        for (id, material) in &doc {
            if !valid_key_id(id) {
                return Err(VaultError::Keyring(format!(
                    "key id `{}`: use 1 to 32 letters, digits, `-` or `_`",
                    id.chars().take(40).collect::<String>()
                )));
            }
            let material = material.trim();
            if material.len() < MIN_MATERIAL {
                return Err(VaultError::Keyring(format!(
                    "key `{id}` has {} characters of material; use at least {MIN_MATERIAL} (for example `openssl rand -base64 32`)",
                    material.len()
                )));
            }
            keys.insert(id.clone(), derive(id, material.as_bytes())?);
        }
        if !keys.contains_key(&active) {
            return Err(VaultError::Keyring(format!(
                "the active key `{}` is not among the keys",
                active.chars().take(40).collect::<String>()
            )));
        }
        Ok(Self { active, keys })
    }

    /// The key new values are sealed under.
    pub fn active(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` for `owner` under the active key.
    pub fn seal(&self, owner: &Owner<'_>, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let aad = owner.aad()?;
        let cipher = &self.keys[&self.active];
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| VaultError::Entropy)?;
        let mut ciphertext = plaintext.to_vec();
        cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut ciphertext,
            )
            .map_err(|_| VaultError::Open)?;
        Ok(Sealed {
            key_id: self.active.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Opens a value sealed for `owner`.
    pub fn open(&self, owner: &Owner<'_>, sealed: &Sealed) -> Result<SecretSlice<u8>, VaultError> {
        let aad = owner.aad()?;
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        // ring checks the tag before it hands out anything, and wipes the buffer when it fails.
        let mut plaintext = sealed.ciphertext.clone();
        let len = cipher
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(&aad),
                &mut plaintext,
            )
            .map_err(|_| VaultError::Open)?
            .len();
        plaintext.truncate(len);
        Ok(SecretSlice::from(plaintext))
    }

    /// Whether `sealed` was sealed under an older key: re-seal it when it is next written.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.active
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A future of the keyring.
pub type KeyringFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<Keyring>, VaultError>> + Send + 'a>>;

/// Where the keyring comes from: object-safe, so the API's state holds one without another type
/// parameter.
pub trait KeyringSource: Send + Sync {
    /// The current keyring.
    fn keyring(&self) -> KeyringFuture<'_>;
}

/// A fixed keyring (tests, the CLI).
impl KeyringSource for Arc<Keyring> {
    fn keyring(&self) -> KeyringFuture<'_> {
        let ring = self.clone();
        Box::pin(async move { Ok(ring) })
    }
}

/// The keyring read from a secret and kept for `ttl` per execution environment: a warm function
/// parses it once per TTL, and a rotation reaches every environment within one TTL. A keyring that
/// fails to parse is not kept, so a fixed secret is picked up by the next call.
pub struct CachedKeyring<S> {
    source: S,
    secret_id: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<(EpochMillis, Arc<Keyring>)>>,
}

impl<S: SecretSource> CachedKeyring<S> {
    /// The keyring of the secret `secret_id` read through `source`, kept for `ttl`.
    pub fn new(
        source: S,
        secret_id: impl Into<String>,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            source,
            secret_id: secret_id.into(),
            ttl,
            clock,
            cached: Mutex::new(None),
        }
    }

    async fn load(&self) -> Result<Arc<Keyring>, VaultError> {
        let now = self.clock.now_ms();
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        if let Some((at, ring)) = &*self.cached.lock().unwrap_or_else(|p| p.into_inner())
            && now.saturating_sub(*at) < ttl
        {
            return Ok(ring.clone());
        }
        let secret = self.source.secret(&self.secret_id).await?;
        let ring = Arc::new(Keyring::from_secret(&secret)?);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, ring.clone()));
        Ok(ring)
    }
}

impl<S: SecretSource> KeyringSource for CachedKeyring<S> {
    fn keyring(&self) -> KeyringFuture<'_> {
        Box::pin(self.load())
    }
}

/// Where a function finds the keyring and how long it keeps it, as the template sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringSettings {
    /// `KEYRING_SECRET_ID`: the Secrets Manager secret holding the keyring.
    pub secret_id: String,
    /// `KEYRING_CACHE_TTL_SECONDS`: how long an execution environment keeps the keyring it read
    /// (default 300, 1 to 3600): a rotation reaches every environment within this time.
    pub ttl: Duration,
}

impl KeyringSettings {
    /// Reads and validates both variables.
    pub fn from_env(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            secret_id: env.required(
                "KEYRING_SECRET_ID",
                "the Secrets Manager secret of the credential keyring",
            )?,
            ttl: env.seconds_or(
                "KEYRING_CACHE_TTL_SECONDS",
                Duration::from_secs(300),
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )?,
        })
    }
}

/// Seals and opens text values (credentials as JSON, client secrets) in their stored form.
#[derive(Clone)]
pub struct Vault(Arc<dyn KeyringSource>);

impl Vault {
    /// A vault over `keys`.
    pub fn new(keys: Arc<dyn KeyringSource>) -> Self {
        Self(keys)
    }

    /// `plaintext` sealed for `owner` under the active key, in its stored form.
    pub async fn seal(&self, owner: &Owner<'_>, plaintext: &[u8]) -> Result<String, VaultError> {
        Ok(self.0.keyring().await?.seal(owner, plaintext)?.encode())
    }

    /// The plaintext of a stored value sealed for `owner`, and whether it should be re-sealed
    /// (it was sealed under a key that is no longer active).
    pub async fn open(
        &self,
        owner: &Owner<'_>,
        stored: &str,
    ) -> Result<(SecretSlice<u8>, bool), VaultError> {
        let sealed = Sealed::decode(stored)?;
        let ring = self.0.keyring().await?;
        let plain = ring.open(owner, &sealed)?;
        Ok((plain, ring.needs_reseal(&sealed)))
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault")
    }
}

/// The AES-256-GCM key of `material` under the key id `id` (ring's, the AEAD that TLS uses too).
fn derive(id: &str, material: &[u8]) -> Result<LessSafeKey, VaultError> {
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's output limit (8160 bytes), so expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(AAD_DOMAIN), material).expand(id.as_bytes(), &mut key);
    let cipher = UnboundKey::new(&AES_256_GCM, &key);
    key.fill(0);
    cipher
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::Keyring(format!("key `{id}`: not an AES-256 key")))
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::engine::general_purpose::STANDARD;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn doc(active: &str, keys: &[(&str, u8)]) -> SecretString {
        let mut doc: BTreeMap<&str, String> = keys.iter().map(|(id, b)| (*id, key(*b))).collect();
        doc.insert("active", active.to_owned());
        SecretString::from(serde_json::to_string(&doc).unwrap())
    }

    fn keyring(active: &str, keys: &[(&str, u8)]) -> Keyring {
        Keyring::from_secret(&doc(active, keys)).unwrap()
    }

    fn owner<'a>(tenant: &'a str, object: &'a str) -> Owner<'a> {
        Owner {
            tenant,
            object,
            purpose: "credentials",
        }
    }

    const SECRET: &[u8] = br#"{"access_token":"ya29.secret"}"#;

    #[test]
    fn values_sealed_with_the_aes_gcm_crate_still_open() {
        // Sealed by the vault when it used the `aes-gcm` crate (commit 6fc6c11).
        let stored =
            "v1.k7.mKCgWvaNvYgIEa2796g9bIKX05SIA0hFRxt-6IXeFsrnR3BVGkyuXQl85MQsBmXjD4w7WM23xHKe9g";
        let ring = keyring("k7", &[("k7", 7)]);
        let sealed = Sealed::decode(stored).unwrap();
        let opened = ring.open(&owner("ten_kat", "conn_kat"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), SECRET);
        assert_eq!(
            ring.open(&owner("ten_kat", "conn_other"), &sealed)
                .unwrap_err(),
            VaultError::Open
        );
    }

    #[test]
    fn a_sealed_value_is_aes_256_gcm_that_another_implementation_opens() {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let ring = keyring("k1", &[("k1", 1)]);
        let me = owner("ten_a", "conn_1");
        let sealed = ring.seal(&me, SECRET).unwrap();
        let mut bytes = [0u8; 32];
        Hkdf::<Sha256>::new(Some(AAD_DOMAIN), key(1).as_bytes())
            .expand(b"k1", &mut bytes)
            .unwrap();
        let other = aes_gcm::Aes256Gcm::new(&bytes.into());
        let aad = me.aad().unwrap();
        let opened = other
            .decrypt(
                aes_gcm::Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(opened, SECRET);
    }

    #[test]
    fn a_sealed_value_opens_for_its_owner_after_a_round_trip_through_storage() {
        let ring = keyring("k1", &[("k1", 1)]);
        let me = owner("ten_a", "conn_1");
        let sealed = ring.seal(&me, SECRET).unwrap();
        let stored = sealed.encode();
        assert!(stored.starts_with("v1.k1."));
        assert!(!stored.contains("ya29"));
        let back = Sealed::decode(&stored).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(ring.open(&me, &back).unwrap().expose_secret(), SECRET);
        // A fresh nonce each time.
        assert_ne!(ring.seal(&me, SECRET).unwrap().encode(), stored);
    }

    #[test]
    fn an_altered_value_does_not_open() {
        let ring = keyring("k1", &[("k1", 1)]);
        let me = owner("ten_a", "conn_1");
        let sealed = ring.seal(&me, SECRET).unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut altered = sealed.clone();
            altered.ciphertext[i] ^= 1;
            assert_eq!(
                ring.open(&me, &altered).unwrap_err(),
                VaultError::Open,
                "byte {i}"
            );
        }
        let mut altered = sealed.clone();
        altered.nonce[0] ^= 1;
        assert_eq!(ring.open(&me, &altered).unwrap_err(), VaultError::Open);
        let mut truncated = sealed;
        truncated.ciphertext.pop();
        assert_eq!(ring.open(&me, &truncated).unwrap_err(), VaultError::Open);
    }

    #[test]
    fn a_value_copied_to_another_owner_does_not_open() {
        let ring = keyring("k1", &[("k1", 1)]);
        let sealed = ring.seal(&owner("ten_a", "conn_1"), SECRET).unwrap();
        for other in [
            owner("ten_b", "conn_1"),
            owner("ten_a", "conn_2"),
            Owner {
                purpose: "client_secret",
                ..owner("ten_a", "conn_1")
            },
            // The separator keeps ("ten_a", "bconn_1") from meaning ("ten_ab", "conn_1").
            owner("ten_ab", "conn_1"),
        ] {
            assert_eq!(
                ring.open(&other, &sealed).unwrap_err(),
                VaultError::Open,
                "{other:?}"
            );
        }
        assert_eq!(
            ring.seal(&owner("ten\0a", "c"), SECRET).unwrap_err(),
            VaultError::Owner("tenant")
        );
        assert_eq!(
            ring.seal(&owner("ten_a", ""), SECRET).unwrap_err(),
            VaultError::Owner("object")
        );
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_seals_new_ones_under_the_new_key() {
        let me = owner("ten_a", "conn_1");
        let before = keyring("k1", &[("k1", 1)]);
        let old = before.seal(&me, SECRET).unwrap();

        let rotated = keyring("k2", &[("k1", 1), ("k2", 2)]);
        assert_eq!(rotated.open(&me, &old).unwrap().expose_secret(), SECRET);
        assert!(rotated.needs_reseal(&old));
        let new = rotated.seal(&me, SECRET).unwrap();
        assert_eq!(new.key_id(), "k2");
        assert!(!rotated.needs_reseal(&new));

        let retired = keyring("k2", &[("k2", 2)]);
        assert_eq!(
            retired.open(&me, &old).unwrap_err(),
            VaultError::UnknownKey("k1".into())
        );
        // The same id with other key material does not open it either.
        let replaced = keyring("k1", &[("k1", 9)]);
        assert_eq!(replaced.open(&me, &old).unwrap_err(), VaultError::Open);
    }

    #[test]
    fn malformed_stored_values_are_refused() {
        let ring = keyring("k1", &[("k1", 1)]);
        let good = ring.seal(&owner("t", "o"), SECRET).unwrap().encode();
        let body = good.rsplit('.').next().unwrap();
        for bad in [
            String::new(),
            "v1.k1".into(),
            format!("v2.k1.{body}"),
            format!("v1.k/1.{body}"),
            format!("v1.k1.{body}.x"),
            "v1.k1.not*base64".into(),
            format!("v1.k1.{}", URL_SAFE_NO_PAD.encode([0u8; 20])),
        ] {
            assert_eq!(
                Sealed::decode(&bad).unwrap_err(),
                VaultError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_keyring_is_refused_without_echoing_key_material() {
        let parse = |doc: serde_json::Value| {
            Keyring::from_secret(&SecretString::from(doc.to_string())).unwrap_err()
        };
        let short = STANDARD.encode([7u8; 16]);
        for (doc, needle) in [
            (
                serde_json::json!({"active": "k2", "k1": key(1)}),
                "active key",
            ),
            (
                serde_json::json!({"active": "k1", "k1": short.clone()}),
                "24 characters",
            ),
            (
                serde_json::json!({"active": "k 1", "k 1": key(1)}),
                "key id",
            ),
            (serde_json::json!({"k1": key(1)}), "no `active`"),
            (
                serde_json::json!({"active": "k1", "k1": 5}),
                "not a keyring",
            ),
            (serde_json::json!(["k1"]), "not a keyring"),
        ] {
            let err = parse(doc).to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains(&short) && !err.contains(&key(1)), "{err}");
        }
        let ring = keyring("k1", &[("k1", 1)]);
        assert!(!format!("{ring:?}").contains(&key(1)));
    }

    #[test]
    fn the_template_s_generated_keyring_is_accepted_and_keys_are_bound_to_their_ids() {
        // What `GenerateSecretString` makes of the template's definition.
        let material = "aZ3".repeat(21) + "q";
        let generated = serde_json::json!({"active": "k1", "k1": material}).to_string();
        let ring = Keyring::from_secret(&SecretString::from(generated)).unwrap();
        let sealed = ring.seal(&owner("t", "o"), SECRET).unwrap();
        // The same material under another id is another key.
        let renamed = serde_json::json!({"active": "k2", "k2": material}).to_string();
        let renamed = Keyring::from_secret(&SecretString::from(renamed)).unwrap();
        let moved = Sealed {
            key_id: "k2".into(),
            ..sealed
        };
        assert_eq!(
            renamed.open(&owner("t", "o"), &moved).unwrap_err(),
            VaultError::Open
        );
    }

    struct Source {
        value: Mutex<SecretString>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl SecretSource for Source {
        async fn secret(&self, _: &str) -> Result<SecretString, PortError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.value.lock().unwrap().clone())
        }
    }

    struct At(std::sync::atomic::AtomicI64);

    impl Clock for At {
        fn now_ms(&self) -> EpochMillis {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The futures here never wait on anything, so one poll completes them.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn the_keyring_is_read_once_per_ttl_and_a_rotation_arrives_after_it() {
        use std::sync::atomic::Ordering::SeqCst;
        let source = Arc::new(Source {
            value: Mutex::new(doc("k1", &[("k1", 1)])),
            reads: 0.into(),
        });
        let clock = Arc::new(At(1_000.into()));
        let cached = CachedKeyring::new(
            source.clone(),
            "keyring",
            Duration::from_secs(300),
            clock.clone(),
        );
        let vault = Vault::new(Arc::new(cached));
        let me = owner("ten_a", "conn_1");
        let old = block_on(vault.seal(&me, SECRET)).unwrap();
        assert!(old.starts_with("v1.k1."));
        assert!(
            block_on(vault.seal(&me, SECRET))
                .unwrap()
                .starts_with("v1.k1.")
        );
        assert_eq!(source.reads.load(SeqCst), 1);

        // A rotation in the secret store reaches the environment once the TTL has passed.
        *source.value.lock().unwrap() = doc("k2", &[("k1", 1), ("k2", 2)]);
        clock.0.store(1_000 + 299_999, SeqCst);
        assert!(
            block_on(vault.seal(&me, SECRET))
                .unwrap()
                .starts_with("v1.k1.")
        );
        clock.0.store(1_000 + 300_000, SeqCst);
        assert!(
            block_on(vault.seal(&me, SECRET))
                .unwrap()
                .starts_with("v1.k2.")
        );
        assert_eq!(source.reads.load(SeqCst), 2);
        let (plain, reseal) = block_on(vault.open(&me, &old)).unwrap();
        assert_eq!(plain.expose_secret(), SECRET);
        assert!(
            reseal,
            "a value under the retired active key is re-sealed when next written"
        );

        // A broken secret is an error, and is not kept: the fixed one is read on the next call.
        *source.value.lock().unwrap() = SecretString::from("{}".to_owned());
        clock.0.store(1_000 + 600_000, SeqCst);
        assert!(matches!(
            block_on(vault.seal(&me, SECRET)).unwrap_err(),
            VaultError::Keyring(_)
        ));
        *source.value.lock().unwrap() = doc("k2", &[("k2", 2)]);
        assert!(
            block_on(vault.seal(&me, SECRET))
                .unwrap()
                .starts_with("v1.k2.")
        );
    }
}
