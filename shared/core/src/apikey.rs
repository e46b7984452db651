//! The API key format: `trb_live_<32 hex id>_<43 base64url secret>`. The id is public and finds the
//! stored record; the secret is 256 random bits, stored only as its SHA-256 (a fast hash is right for
//! high-entropy secrets) and compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::auth::secrets_equal;
use crate::ids::ApiKeyId;

/// What every API key starts with; lets secret scanners recognise leaked keys.
pub const KEY_PREFIX: &str = "trb_live_";

/// A newly generated key: the token is shown once, the hash is stored.
pub struct GeneratedKey {
    /// The public id.
    pub id: ApiKeyId,
    /// The whole key, for the caller's eyes only.
    pub token: SecretString,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
}

/// Generates a key.
pub fn generate() -> GeneratedKey {
    let id = ApiKeyId::generate();
    let mut secret_bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut secret_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    let hex_id = id.as_str().trim_start_matches("key_");
    GeneratedKey {
        token: SecretString::from(format!("{KEY_PREFIX}{hex_id}_{secret}")),
        secret_hash: hash_secret(&secret),
        id,
    }
}

/// Splits a presented token into its id and secret; `None` when it is not shaped like our keys.
pub fn parse(token: &str) -> Option<(ApiKeyId, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (hex_id, secret) = rest.split_at_checked(32)?;
    let secret = secret.strip_prefix('_')?;
    if secret.len() != 43 {
        return None;
    }
    let id = format!("key_{hex_id}").parse().ok()?;
    Some((id, secret))
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` matches the stored hash, in constant time.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    secrets_equal(hash_secret(secret).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = generate();
        let token = key.token.expose_secret();
        assert!(token.starts_with("trb_live_"));
        let (id, secret) = parse(token).unwrap();
        assert_eq!(id, key.id);
        assert!(verify(secret, &key.secret_hash));
        assert!(!verify("x", &key.secret_hash));
    }

    #[test]
    fn tampered_or_foreign_tokens_do_not_parse_or_verify() {
        let key = generate();
        let token = key.token.expose_secret().to_owned();
        assert!(parse(&token[1..]).is_none());
        assert!(parse(&format!("{token}x")).is_none());
        assert!(parse("trb_live_").is_none());
        assert!(parse("trb_live_zz").is_none());
        assert!(parse("ghp_abcdef").is_none());
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let (_, secret) = parse(&flipped).unwrap();
        assert!(!verify(secret, &key.secret_hash));
    }

    #[test]
    fn multibyte_input_never_panics() {
        assert!(parse("trb_live_ééééééééééééééééééééééééééééééééééé_x").is_none());
    }
}
