//! Tenant API keys (`trb_live_<id>_<secret>`): look the key up by its public id, compare the secret's
//! hash in constant time, then require a usable key and an active tenant.

use tributary_core::PortError;
use tributary_core::apikey;
use tributary_core::auth::Principal;
use tributary_core::ports::{CredentialStore, TenantStore};
use tributary_core::time::EpochMillis;

use crate::denial::{Denial, Verdict};
use crate::tenant::require_active;

/// Whether a credential claims to be a tenant API key (it is then never compared with the admin key).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(apikey::KEY_PREFIX)
}

/// Checks a tenant API key at `now`. Store failures are errors; everything else is a verdict.
pub async fn authorize<D>(store: &D, now: EpochMillis, token: &str) -> Result<Verdict, PortError>
where
    D: TenantStore + CredentialStore,
{
    let Some((id, secret)) = apikey::parse(token) else {
        tracing::info!(reason = %Denial::MalformedKey, "denied");
        return Ok(Err(Denial::MalformedKey));
    };
    let verdict = match store.get_key(&id).await? {
        None => Err(Denial::KeyNotFound),
        Some(record) if !apikey::verify(secret, &record.secret_hash) => {
            Err(Denial::KeySecretMismatch)
        }
        Some(record) if !record.is_usable(now) => Err(Denial::KeyUnusable),
        Some(record) => require_active(store, &record.tenant_id)
            .await?
            .map(|()| Principal {
                principal: record.id.to_string(),
                tenant_id: Some(record.tenant_id),
                // `admin` belongs to the deployment alone: a tenant key never carries it, even if
                // a stored record says so.
                scopes: record
                    .scopes
                    .into_iter()
                    .filter(|s| s.is_tenant_grantable())
                    .collect(),
                expires_at_ms: record.expires_at_ms,
            }),
    };
    match &verdict {
        Ok(p) => tracing::info!(key_id = %id, principal = %p.principal, "allowed"),
        Err(reason) => tracing::info!(key_id = %id, reason = %reason, "denied"),
    }
    Ok(verdict)
}
