//! The API's wire types: `XxxIn` (create), `XxxPatch` (update), `XxxOut` (read). Inputs reject unknown
//! fields; validation beyond types happens in `validate` methods that point at the field.

use serde::{Deserialize, Serialize};
use tributary_core::auth::Principal;
use tributary_core::scope::Scope;
use tributary_core::tenancy::{ApiKeyRecord, AuditEvent, OidcIssuer, Tenant, TenantStatus};
use tributary_core::time::{EpochMillis, rfc3339};
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::request::invalid;

fn time(ms: EpochMillis) -> String {
    rfc3339(ms).unwrap_or_default()
}

pub(crate) fn check_name(pointer: &str, name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    let len = trimmed.chars().count();
    if len == 0 || len > 100 || trimmed.chars().any(char::is_control) {
        return Err(invalid(
            pointer,
            "Names must be 1 to 100 characters without control characters.",
        ));
    }
    Ok(trimmed.to_owned())
}

fn check_rate(pointer: &str, rate: u32) -> Result<u32, ApiError> {
    if !(1..=100_000).contains(&rate) {
        return Err(invalid(
            pointer,
            "`rate_limit_per_minute` must be from 1 to 100000.",
        ));
    }
    Ok(rate)
}

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Corp", "rate_limit_per_minute": 1200}))]
pub struct TenantIn {
    /// Display name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Requests per minute the API accepts from the tenant (default 600).
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_per_minute: Option<u32>,
}

impl TenantIn {
    /// Validated name and rate.
    pub fn validate(&self) -> Result<(String, Option<u32>), ApiError> {
        Ok((
            check_name("/name", &self.name)?,
            self.rate_limit_per_minute
                .map(|r| check_rate("/rate_limit_per_minute", r))
                .transpose()?,
        ))
    }
}

/// Changes to a tenant; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "disabled"}))]
pub struct TenantPatch {
    /// New display name.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// `active` or `disabled`; a disabled tenant's credentials stop working within the authorizer
    /// cache TTL (5 minutes).
    pub status: Option<TenantStatusDto>,
    /// New request rate limit per minute.
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_per_minute: Option<u32>,
}

/// A tenant's status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatusDto {
    /// Credentials work.
    Active,
    /// Credentials are refused.
    Disabled,
    /// Being deleted (read-only; `DELETE` again resumes an interrupted deletion).
    Deleting,
}

impl From<TenantStatusDto> for TenantStatus {
    fn from(s: TenantStatusDto) -> Self {
        match s {
            TenantStatusDto::Active => TenantStatus::Active,
            TenantStatusDto::Disabled => TenantStatus::Disabled,
            TenantStatusDto::Deleting => TenantStatus::Deleting,
        }
    }
}

impl From<TenantStatus> for TenantStatusDto {
    fn from(s: TenantStatus) -> Self {
        match s {
            TenantStatus::Active => TenantStatusDto::Active,
            TenantStatus::Disabled => TenantStatusDto::Disabled,
            TenantStatus::Deleting => TenantStatusDto::Deleting,
        }
    }
}

impl TenantPatch {
    /// Applies the patch to `tenant`.
    pub fn apply(&self, tenant: &mut Tenant, now: EpochMillis) -> Result<(), ApiError> {
        if let Some(name) = &self.name {
            tenant.name = check_name("/name", name)?;
        }
        if let Some(rate) = self.rate_limit_per_minute {
            tenant.rate_limit_per_minute = check_rate("/rate_limit_per_minute", rate)?;
        }
        if tenant.status == TenantStatus::Deleting {
            return Err(ApiError::Conflict {
                detail: "This tenant is being deleted and can no longer change. Call DELETE again to finish the deletion.".into(),
            });
        }
        if let Some(status) = self.status {
            if matches!(status, TenantStatusDto::Deleting) {
                return Err(invalid(
                    "/status",
                    "`status` can be `active` or `disabled`; delete a tenant with DELETE.",
                ));
            }
            tenant.status = status.into();
        }
        tenant.updated_at_ms = now;
        tenant.version = tenant.version.saturating_add(1);
        Ok(())
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    /// Id (`ten_…`).
    #[schema(example = "ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// `active`, `disabled` or `deleting`.
    pub status: TenantStatusDto,
    /// Requests per minute.
    pub rate_limit_per_minute: u32,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            status: t.status.into(),
            rate_limit_per_minute: t.rate_limit_per_minute,
            created_at: time(t.created_at_ms),
            updated_at: time(t.updated_at_ms),
        }
    }
}

/// Parses an optional RFC 3339 `expires_at` that must lie in the future.
fn future_time(
    pointer: &str,
    raw: Option<&str>,
    now: EpochMillis,
) -> Result<Option<EpochMillis>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            invalid(
                pointer,
                "`expires_at` must be an RFC 3339 timestamp such as 2027-01-31T00:00:00Z.",
            )
        })?;
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    if ms <= now {
        return Err(invalid(pointer, "`expires_at` must be in the future."));
    }
    Ok(Some(ms))
}

/// The expiry of a credential (or registration) that `creator` makes: never later than the
/// creator's own credential, so nothing derived outlives what made it.
pub fn bounded_expiry(
    pointer: &str,
    requested: Option<EpochMillis>,
    creator: &Principal,
) -> Result<Option<EpochMillis>, ApiError> {
    let Some(limit) = creator.expires_at_ms else {
        return Ok(requested);
    };
    match requested {
        Some(at) if at <= limit => Ok(Some(at)),
        _ => Err(invalid(
            pointer,
            &format!(
                "What a credential creates never outlives it, and yours expires at {}. Set `expires_at` at or before that time.",
                time(limit)
            ),
        )),
    }
}

/// Scopes to grant to something a tenant's credential creates: at least one, never `admin`.
fn tenant_scopes(pointer: &str, requested: &[Scope]) -> Result<Vec<Scope>, ApiError> {
    if requested.is_empty() {
        return Err(invalid(pointer, "Grant at least one scope."));
    }
    if let Some(s) = requested.iter().find(|s| !s.is_tenant_grantable()) {
        return Err(invalid(
            pointer,
            &format!(
                "`{s}` belongs to the deployment alone and cannot be granted to a tenant's credential. Remove it from `{}`.",
                pointer.trim_start_matches('/')
            ),
        ));
    }
    let mut scopes = requested.to_vec();
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// An API key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "billing-service", "scopes": ["connections:read", "records:read"], "expires_at": "2099-12-31T00:00:00Z"}))]
pub struct ApiKeyIn {
    /// What the key is for, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Scopes to grant: at least one, only scopes the caller holds, never `admin` (which belongs to
    /// the deployment alone).
    #[schema(value_type = Vec<crate::openapi::GrantableScopeName>, min_items = 1, example = json!(["connections:read"]))]
    pub scopes: Vec<Scope>,
    /// When the key stops working (RFC 3339, in the future); never when absent. Required, and at
    /// most the creating credential's own expiry, when that credential expires.
    #[schema(format = DateTime, example = "2099-12-31T00:00:00Z")]
    pub expires_at: Option<String>,
}

impl ApiKeyIn {
    /// Validated name, scopes and expiry.
    pub fn validate(
        &self,
        now: EpochMillis,
    ) -> Result<(String, Vec<Scope>, Option<EpochMillis>), ApiError> {
        let name = check_name("/name", &self.name)?;
        let scopes = tenant_scopes("/scopes", &self.scopes)?;
        let expires = future_time("/expires_at", self.expires_at.as_deref(), now)?;
        Ok((name, scopes, expires))
    }
}

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// Id (`key_…`): the public part of the key.
    #[schema(example = "key_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d")]
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// What the key is for.
    pub name: String,
    /// Granted scopes.
    #[schema(value_type = Vec<crate::openapi::ScopeName>)]
    pub scopes: Vec<Scope>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if the key expires.
    pub expires_at: Option<String>,
    /// RFC 3339, if the key was revoked.
    pub revoked_at: Option<String>,
    /// Who created it.
    pub created_by: String,
}

impl From<ApiKeyRecord> for ApiKeyOut {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id.to_string(),
            tenant_id: k.tenant_id.to_string(),
            name: k.name,
            scopes: k.scopes,
            created_at: time(k.created_at_ms),
            expires_at: k.expires_at_ms.map(time),
            revoked_at: k.revoked_at_ms.map(time),
            created_by: k.created_by,
        }
    }
}

/// A newly created API key, with its secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The whole key to send as `Authorization: Bearer <secret>`. It is shown only in this response;
    /// an idempotent replay of the request returns the key without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "trb_live_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d_…")]
    pub secret: Option<String>,
}

/// An OIDC issuer to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"issuer": "https://acme.eu.auth0.com/", "audience": "https://api.acme.com/tributary", "scopes_claim": "permissions", "allowed_scopes": ["connections:read", "records:read"]}))]
pub struct OidcIssuerIn {
    /// The exact `iss` value of the tokens (an https URL).
    #[schema(
        max_length = 512,
        pattern = "^https://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[!-~]*)?$"
    )]
    pub issuer: String,
    /// The `aud` value tokens must carry.
    #[schema(min_length = 1, max_length = 256)]
    pub audience: String,
    /// Where the signing keys are (https); discovered from the issuer's metadata when absent.
    #[schema(
        max_length = 512,
        pattern = "^https://[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[!-~]*)?$"
    )]
    pub jwks_uri: Option<String>,
    /// The claim that carries scopes (default `scope`).
    #[schema(pattern = "^[A-Za-z0-9_.:/-]{1,64}$")]
    pub scopes_claim: Option<String>,
    /// The most a token of this issuer can grant: the authorizer gives a token the scopes it claims
    /// that are also in this list. At least one, only scopes the caller holds, never `admin`.
    #[schema(value_type = Vec<crate::openapi::GrantableScopeName>, min_items = 1, example = json!(["connections:read", "records:read"]))]
    pub allowed_scopes: Vec<Scope>,
    /// When the registration stops being honoured (RFC 3339, in the future); never when absent.
    /// Required, and at most the registering credential's own expiry, when that credential expires.
    #[schema(format = DateTime, example = "2099-12-31T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// An issuer registration, validated.
pub struct IssuerInput {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// JWKS URL.
    pub jwks_uri: Option<String>,
    /// Scopes claim.
    pub scopes_claim: String,
    /// The most tokens can hold.
    pub allowed_scopes: Vec<Scope>,
    /// Requested expiry.
    pub expires_at_ms: Option<EpochMillis>,
}

/// An issuer or JWKS URL, by the one policy the authorizer's fetches also apply
/// ([`tributary_http::issuer_url`]). The raw text is kept: `iss` is compared byte for byte.
fn check_url(pointer: &str, raw: &str) -> Result<String, ApiError> {
    use tributary_http::issuer_url::{IssuerUrlError, validate_registration};
    match validate_registration(raw) {
        Ok(_) => Ok(raw.to_owned()),
        Err(IssuerUrlError::NotAbsolute) => Err(invalid(pointer, "Must be an absolute URL.")),
        Err(IssuerUrlError::NotHttps) => Err(invalid(
            pointer,
            "Must be an https URL (http is accepted only for loopback hosts, for local development).",
        )),
        Err(IssuerUrlError::Credentials | IssuerUrlError::TooLong) => Err(invalid(
            pointer,
            "Must be at most 512 characters without credentials.",
        )),
    }
}

impl OidcIssuerIn {
    /// The validated registration.
    pub fn validate(&self, now: EpochMillis) -> Result<IssuerInput, ApiError> {
        let issuer = check_url("/issuer", &self.issuer)?;
        let audience = self.audience.trim();
        if audience.is_empty() || audience.len() > 256 {
            return Err(invalid(
                "/audience",
                "`audience` must be 1 to 256 characters.",
            ));
        }
        let jwks = self
            .jwks_uri
            .as_deref()
            .map(|u| check_url("/jwks_uri", u))
            .transpose()?;
        let claim = self.scopes_claim.as_deref().unwrap_or("scope");
        if claim.is_empty()
            || claim.len() > 64
            || !claim
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
        {
            return Err(invalid(
                "/scopes_claim",
                "`scopes_claim` must be 1 to 64 characters of letters, digits and _-.:/",
            ));
        }
        Ok(IssuerInput {
            issuer,
            audience: audience.to_owned(),
            jwks_uri: jwks,
            scopes_claim: claim.to_owned(),
            allowed_scopes: tenant_scopes("/allowed_scopes", &self.allowed_scopes)?,
            expires_at_ms: future_time("/expires_at", self.expires_at.as_deref(), now)?,
        })
    }
}

/// A registered OIDC issuer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcIssuerOut {
    /// Id (`iss_…`).
    pub id: String,
    /// The exact `iss` value.
    pub issuer: String,
    /// The required audience.
    pub audience: String,
    /// The JWKS URL, if given.
    pub jwks_uri: Option<String>,
    /// The claim that carries scopes.
    pub scopes_claim: String,
    /// The most a token of this issuer can grant.
    #[schema(value_type = Vec<crate::openapi::ScopeName>)]
    pub allowed_scopes: Vec<Scope>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if the registration expires.
    pub expires_at: Option<String>,
    /// Who registered it.
    pub created_by: String,
}

impl From<OidcIssuer> for OidcIssuerOut {
    fn from(i: OidcIssuer) -> Self {
        Self {
            id: i.id.to_string(),
            issuer: i.issuer,
            audience: i.audience,
            jwks_uri: i.jwks_uri,
            scopes_claim: i.scopes_claim,
            allowed_scopes: i.allowed_scopes,
            created_at: time(i.created_at_ms),
            expires_at: i.expires_at_ms.map(time),
            created_by: i.created_by,
        }
    }
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventOut {
    /// Id (`evt_…`).
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What, e.g. `api_key.created`.
    pub action: String,
    /// The object acted on.
    pub target: String,
}

impl From<AuditEvent> for AuditEventOut {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: time(e.at_ms),
            actor: e.actor,
            action: e.action,
            target: e.target,
        }
    }
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// Who: an API key id, `jwt:<sub>`, or `admin-key`.
    pub principal: String,
    /// The caller's tenant; `null` for the deployment admin.
    pub tenant_id: Option<String>,
    /// Granted scopes.
    #[schema(value_type = Vec<crate::openapi::ScopeName>)]
    pub scopes: Vec<Scope>,
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
