//! The credential vault's cryptography: AES-256-GCM under the active key of a versioned keyring, with
//! the owner of a value (tenant, object, purpose) as associated data, so that a sealed value copied
//! into another tenant's or another connection's item does not open.
//!
//! The keyring is one JSON secret: `{"active": "k2", "keys": {"k1": "<base64 of 32 bytes>", "k2":
//! "…"}}`. Rotation adds a key and makes it active: new values are sealed under it, values sealed
//! under an older key still open ([`Keyring::needs_reseal`] says which to re-seal when next written),
//! and an old key is removed only once nothing is sealed under it. Each value gets a random 96-bit
//! nonce, which keeps a key well inside AES-GCM's limits for the number of values one deployment
//! seals.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;

/// The format tag of a sealed value.
const FORMAT: &str = "v1";
/// Domain separation of the associated data.
const AAD_DOMAIN: &[u8] = b"tributary-vault-v1";
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    keys: BTreeMap<String, Aes256Gcm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringDoc {
    active: String,
    keys: BTreeMap<String, String>,
}

impl Keyring {
    /// Reads the keyring secret.
    pub fn from_secret(secret: &SecretString) -> Result<Self, VaultError> {
        let doc: KeyringDoc = serde_json::from_str(secret.expose_secret()).map_err(|e| {
            // Only the kind and position: serde's message may quote a value.
            VaultError::Keyring(format!(
                "not a keyring document ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in &doc.keys {
            if !valid_key_id(id) {
                return Err(VaultError::Keyring(format!(
                    "key id `{id}`: use 1 to 32 letters, digits, `-` or `_`"
                )));
            }
            let bytes = STANDARD
                .decode(encoded.trim())
                .map_err(|_| VaultError::Keyring(format!("key `{id}` is not base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                VaultError::Keyring(format!("key `{id}` is {} bytes, not 32", bytes.len()))
            })?;
            keys.insert(id.clone(), cipher);
        }
        if !keys.contains_key(&doc.active) {
            return Err(VaultError::Keyring(format!(
                "the active key `{}` is not among the keys",
                doc.active
            )));
        }
        Ok(Self {
            active: doc.active,
            keys,
        })
    }

    /// The key new values are sealed under.
    pub fn active(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` for `owner` under the active key.
    pub fn seal(&self, owner: &Owner<'_>, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let aad = owner.aad()?;
        let cipher = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Open)?;
        let mut fixed = [0; NONCE_LEN];
        fixed.copy_from_slice(&nonce);
        Ok(Sealed {
            key_id: self.active.clone(),
            nonce: fixed,
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
        cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map(SecretSlice::from)
            .map_err(|_| VaultError::Open)
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

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn keyring(active: &str, keys: &[(&str, u8)]) -> Keyring {
        let keys: BTreeMap<&str, String> = keys.iter().map(|(id, b)| (*id, key(*b))).collect();
        let doc = serde_json::json!({ "active": active, "keys": keys });
        Keyring::from_secret(&SecretString::from(doc.to_string())).unwrap()
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
        let short = STANDARD.encode([1u8; 16]);
        for (doc, needle) in [
            (
                serde_json::json!({"active": "k2", "keys": {"k1": key(1)}}),
                "active key",
            ),
            (
                serde_json::json!({"active": "k1", "keys": {"k1": short.clone()}}),
                "16 bytes",
            ),
            (
                serde_json::json!({"active": "k1", "keys": {"k1": "%%%"}}),
                "not base64",
            ),
            (
                serde_json::json!({"active": "k 1", "keys": {"k 1": key(1)}}),
                "key id",
            ),
            (serde_json::json!({"keys": {}}), "not a keyring"),
        ] {
            let err = parse(doc).to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains(&short) && !err.contains(&key(1)), "{err}");
        }
        let ring = keyring("k1", &[("k1", 1)]);
        assert!(!format!("{ring:?}").contains(&key(1)));
    }
}
