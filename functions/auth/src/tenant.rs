//! The check every tenant credential ends with: its tenant exists and is active.

use tributary_core::PortError;
use tributary_core::ids::TenantId;
use tributary_core::ports::TenantStore;
use tributary_core::tenancy::TenantStatus;

use crate::denial::Denial;

/// `Ok(Ok(()))` when the tenant exists and is active; a store failure is an `Err` (a 500, not a 403).
pub async fn require_active<T: TenantStore>(
    store: &T,
    tenant: &TenantId,
) -> Result<Result<(), Denial>, PortError> {
    Ok(match store.get_tenant(tenant).await? {
        None => Err(Denial::TenantMissing),
        Some(t) if t.status != TenantStatus::Active => Err(Denial::TenantDisabled),
        Some(_) => Ok(()),
    })
}
