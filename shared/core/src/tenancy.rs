//! Tenants and their credentials: API keys, registered OIDC issuers, and the audit trail of changes to
//! credentials.

use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, AuditEventId, IssuerId, TenantId};
use crate::scope::Scope;
use crate::time::EpochMillis;

/// The default per-tenant request rate limit, per minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 600;

/// Whether a tenant's credentials work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Credentials work.
    Active,
    /// Every credential of the tenant is refused (within the authorizer cache TTL).
    Disabled,
    /// Being deleted: credentials are refused and what the tenant owns is being removed. A deletion
    /// that was interrupted resumes when `DELETE` is called again.
    Deleting,
}

/// A SaaS company using Tributary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Active or disabled.
    pub status: TenantStatus,
    /// Requests per minute the API accepts from this tenant.
    pub rate_limit_per_minute: u32,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When last changed.
    pub updated_at_ms: EpochMillis,
    /// Incremented by every update; an update applies only to the version it read, so concurrent
    /// changes cannot overwrite each other (a rename cannot re-enable a tenant just disabled).
    #[serde(default)]
    pub version: u64,
}

/// A tenant API key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Id (the public part of the key).
    pub id: ApiKeyId,
    /// Owner.
    pub tenant_id: TenantId,
    /// What the key is for.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// When created.
    pub created_at_ms: EpochMillis,
    /// When it stops working, if ever.
    pub expires_at_ms: Option<EpochMillis>,
    /// When revoked, if it was.
    pub revoked_at_ms: Option<EpochMillis>,
    /// Who created it (a principal name).
    pub created_by: String,
}

impl ApiKeyRecord {
    /// Whether the key works at `now`.
    pub fn is_usable(&self, now: EpochMillis) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|exp| now < exp)
    }
}

/// A tenant's identity provider whose JWTs the authorizer accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcIssuer {
    /// Id.
    pub id: IssuerId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The exact `iss` claim value (an https URL).
    pub issuer: String,
    /// The `aud` value tokens must carry.
    pub audience: String,
    /// Where the signing keys are; discovered from the issuer's metadata when absent.
    pub jwks_uri: Option<String>,
    /// The claim that carries scopes (`scope` by default; a space-separated string or an array).
    pub scopes_claim: String,
    /// The most a token of this issuer can hold: the authorizer grants the intersection of a token's
    /// scopes with these. A subset of the registering credential's scopes, never `admin`; a
    /// registration stored without it grants nothing.
    #[serde(default)]
    pub allowed_scopes: Vec<Scope>,
    /// When registered.
    pub created_at_ms: EpochMillis,
    /// When the registration stops being honoured: never later than the credential that made it.
    #[serde(default)]
    pub expires_at_ms: Option<EpochMillis>,
    /// Who registered it (a principal name).
    #[serde(default)]
    pub created_by: String,
}

impl OidcIssuer {
    /// Whether tokens of this registration are honoured at `now`.
    pub fn is_usable(&self, now: EpochMillis) -> bool {
        self.expires_at_ms.is_none_or(|exp| now < exp)
    }
}

/// The default most OIDC issuer registrations one tenant may hold.
pub const DEFAULT_MAX_ISSUERS_PER_TENANT: u32 = 20;

/// What registering an issuer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerCreated {
    /// Registered.
    Created,
    /// The (issuer, audience) pair belongs to a registration already (this tenant's or another's).
    PairTaken,
    /// The tenant holds the most registrations allowed.
    LimitReached,
}

/// How far a tenant's deletion got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeProgress {
    /// Items remain: call again.
    More,
    /// Everything the tenant owned is gone (audit events kept until their expiry), and so is the
    /// tenant.
    Done,
}

/// How long a deleted tenant's audit events are kept.
pub const DELETED_TENANT_AUDIT_RETENTION_DAYS: i64 = 90;

/// Something that happened to a tenant's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Id (time-ordered).
    pub id: AuditEventId,
    /// Tenant concerned.
    pub tenant_id: TenantId,
    /// When.
    pub at_ms: EpochMillis,
    /// Who did it (a principal name).
    pub actor: String,
    /// What, e.g. `api_key.created`.
    pub action: String,
    /// The object acted on (an id).
    pub target: String,
}

impl AuditEvent {
    /// A new event: `actor` did `action` to `target` in `tenant` at `at_ms`.
    pub fn new(
        tenant: &TenantId,
        actor: &str,
        at_ms: EpochMillis,
        action: &str,
        target: impl std::fmt::Display,
    ) -> Self {
        Self {
            id: AuditEventId::generate(),
            tenant_id: tenant.clone(),
            at_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_string(),
        }
    }
}
