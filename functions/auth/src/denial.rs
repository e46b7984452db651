//! Why a credential was refused. A denial is logged with its reason and returned to API Gateway as a
//! plain `isAuthorized: false`; the caller never learns which check failed.

use tributary_core::auth::Principal;

/// The outcome of checking a credential: a principal, or the reason it was refused.
pub type Verdict = Result<Principal, Denial>;

/// A reason for refusing a credential. Carries no credential material, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer credential")]
    NoCredential,
    /// The credential is longer than any we issue or accept.
    #[error("credential too long")]
    TooLong,
    /// Not a tenant key, not a JWT and not the admin key.
    #[error("unknown credential")]
    Unknown,
    /// Starts like a tenant API key but is not shaped like one.
    #[error("malformed API key")]
    MalformedKey,
    /// No key with this id.
    #[error("API key not found")]
    KeyNotFound,
    /// The key exists but the secret does not match.
    #[error("API key secret does not match")]
    KeySecretMismatch,
    /// The key was revoked or has expired.
    #[error("API key revoked or expired")]
    KeyUnusable,
    /// The credential's tenant does not exist (deleted).
    #[error("tenant does not exist")]
    TenantMissing,
    /// The credential's tenant is disabled.
    #[error("tenant is disabled")]
    TenantDisabled,
    /// The JWT is not well-formed (segments, base64url, JSON, claim types).
    #[error("malformed JWT: {0}")]
    MalformedJwt(&'static str),
    /// The JWT's `alg` is not RS256 or ES256.
    #[error("JWT algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The JWT header carries a parameter we refuse (embedded or remote keys, `crit`).
    #[error("JWT header parameter `{0}` is refused")]
    ForbiddenHeader(&'static str),
    /// A required claim is absent.
    #[error("JWT lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// No tenant registered this `iss`.
    #[error("JWT issuer is not registered")]
    IssuerNotRegistered,
    /// The issuer is registered, but for none of the token's audiences.
    #[error("JWT audience is not registered for this issuer")]
    AudienceMismatch,
    /// Registrations of several tenants match the token; refusing beats guessing the tenant.
    #[error("JWT matches registrations of several tenants")]
    AmbiguousRegistration,
    /// The token has expired (beyond the leeway).
    #[error("JWT expired")]
    Expired,
    /// The token's `nbf` is in the future (beyond the leeway).
    #[error("JWT not yet valid")]
    NotYetValid,
    /// The token's `iat` is in the future (beyond the leeway).
    #[error("JWT issued in the future")]
    IssuedInFuture,
    /// The issuer's metadata or keys could not be fetched or are unusable.
    #[error("JWT signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// No signing key has the token's `kid` (after the bounded refetch).
    #[error("JWT kid is unknown")]
    UnknownKid,
    /// A key has the token's `kid` but does not fit its algorithm.
    #[error("JWT key does not fit the token's algorithm")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("JWT signature is invalid")]
    BadSignature,
    /// The verifier refused the token's claims after the signature check.
    #[error("JWT claims refused: {0}")]
    ClaimsRefused(&'static str),
}
