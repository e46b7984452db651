//! `/v1/tenants`: the deployment's tenants (admin scope).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tributary_core::PortError;
use tributary_core::ids::TenantId;
use tributary_core::pagination::{MAX_LIMIT, PageRequest};
use tributary_core::ports::QueueStats;
use tributary_core::records::FeedKey;
use tributary_core::sync::SyncFilter;
use tributary_core::tenancy::{
    DEFAULT_RATE_LIMIT_PER_MINUTE, DELETED_TENANT_AUDIT_RETENTION_DAYS, PurgeProgress, Tenant,
    TenantStatus,
};

use crate::access::{Admin, Scoped};
use crate::dto::{PageOf, TenantIn, TenantOut, TenantPatch};
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of};
use crate::problem::ApiError;
use crate::request::{Id, JsonBody};
use crate::response::{Accepted, Created, Json};
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, Clock, ControlStore, Records, Store};

/// Lists tenants.
#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "Tenants",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of tenants", body = PageOf<TenantOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    _: Scoped<Admin>,
    store: Store<S>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<TenantOut>>, ApiError> {
    let found = store.list_tenants(&page).await.map_err(store_failure)?;
    Ok(Json(page_of(found, TenantOut::from)))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", operation_id = "create_tenant", tag = "Tenants", request_body = TenantIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h")),
    responses((status = 201, description = "Created", body = TenantOut),
              (status = 400, description = "Invalid body", body = ProblemDoc),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc),
              (status = 409, description = "Same Idempotency-Key in progress", body = ProblemDoc),
              (status = 422, description = "Idempotency-Key reused with another body", body = ProblemDoc)))]
pub async fn create<S: ControlStore>(
    _: Scoped<Admin>,
    store: Store<S>,
    clock: Clock,
    Idempotent(input): Idempotent<TenantIn>,
) -> Result<Created<TenantOut>, ApiError> {
    let (name, rate) = input.validate()?;
    let now = clock.now_ms();
    let tenant = Tenant {
        id: TenantId::generate(),
        name,
        status: TenantStatus::Active,
        rate_limit_per_minute: rate.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
        created_at_ms: now,
        updated_at_ms: now,
        version: 0,
    };
    store.create_tenant(&tenant).await.map_err(store_failure)?;
    tracing::info!(tenant_id = %tenant.id, "tenant created");
    Ok(Created {
        location: format!("/v1/tenants/{}", tenant.id),
        body: TenantOut::from(tenant),
    })
}

async fn load<S: ControlStore>(store: &S, id: &TenantId) -> Result<Tenant, ApiError> {
    store
        .get_tenant(id)
        .await
        .map_err(store_failure)?
        .ok_or(ApiError::NotFound { resource: "tenant" })
}

/// Reads a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", operation_id = "get_tenant", tag = "Tenants",
    params(("tenant_id" = String, Path, description = "Tenant id (`ten_…`)", pattern = "^ten_[0-9a-f]{32}$")),
    responses((status = 200, description = "The tenant", body = TenantOut),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc),
              (status = 404, description = "No such tenant", body = ProblemDoc)))]
pub async fn get<S: ControlStore>(
    _: Scoped<Admin>,
    store: Store<S>,
    Id(id): Id<TenantId>,
) -> Result<Json<TenantOut>, ApiError> {
    Ok(Json(TenantOut::from(load(&*store, &id).await?)))
}

/// Updates a tenant (name, status, rate limit).
#[utoipa::path(patch, path = "/v1/tenants/{tenant_id}", operation_id = "update_tenant", tag = "Tenants", request_body = TenantPatch,
    params(("tenant_id" = String, Path, description = "Tenant id (`ten_…`)", pattern = "^ten_[0-9a-f]{32}$")),
    responses((status = 200, description = "The updated tenant", body = TenantOut),
              (status = 400, description = "Invalid body", body = ProblemDoc),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc),
              (status = 404, description = "No such tenant", body = ProblemDoc)))]
pub async fn update<S: ControlStore>(
    _: Scoped<Admin>,
    store: Store<S>,
    clock: Clock,
    Id(id): Id<TenantId>,
    JsonBody(patch): JsonBody<TenantPatch>,
) -> Result<Json<TenantOut>, ApiError> {
    // Read, apply, write only if nobody wrote in between; on a race, apply the patch again to what
    // the other writer left (so a rename never undoes a concurrent disable).
    let mut attempts = 0;
    let tenant = loop {
        let mut tenant = load(&*store, &id).await?;
        let read_version = tenant.version;
        patch.apply(&mut tenant, clock.now_ms())?;
        match store.update_tenant(&tenant, read_version).await {
            Ok(true) => break tenant,
            Ok(false) => return Err(ApiError::NotFound { resource: "tenant" }),
            Err(PortError::Conflict { .. }) if attempts < 4 => attempts += 1,
            Err(PortError::Conflict { .. }) => {
                return Err(ApiError::Conflict {
                    detail: "The tenant is being changed concurrently. Retry the request.".into(),
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
    };
    tracing::info!(tenant_id = %tenant.id, status = ?tenant.status, "tenant updated");
    Ok(Json(TenantOut::from(tenant)))
}

/// How long one `DELETE` works on a tenant's items before answering 202 (well under API Gateway's
/// 30 s integration timeout).
const DELETE_BUDGET: Duration = Duration::from_secs(20);

/// Deletes a tenant and everything it owns. The tenant is first marked `deleting`, which refuses its
/// credentials; then its syncs' records, then its keys, issuer registrations, integrations,
/// connections, syncs and counters are removed in batches; its audit
/// events are kept for 90 days; finally the tenant itself is removed (204). If that takes longer than
/// one request may, the answer is 202 with the tenant still `deleting`: call `DELETE` again to go on
/// (an interrupted deletion resumes the same way).
#[utoipa::path(delete, path = "/v1/tenants/{tenant_id}", operation_id = "delete_tenant", tag = "Tenants",
    params(("tenant_id" = String, Path, description = "Tenant id (`ten_…`)", pattern = "^ten_[0-9a-f]{32}$")),
    responses((status = 204, description = "Deleted, with everything it owned"),
              (status = 202, description = "Deletion under way: call DELETE again to continue", body = TenantOut),
              (status = 403, description = "Requires the `admin` scope", body = ProblemDoc),
              (status = 404, description = "No such tenant", body = ProblemDoc)))]
pub async fn delete<S: ControlStore>(
    _: Scoped<Admin>,
    store: Store<S>,
    records: Records<S>,
    clock: Clock,
    Id(id): Id<TenantId>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut tenant = load(&*store, &id).await?;
    if tenant.status != TenantStatus::Deleting {
        let read_version = tenant.version;
        tenant.status = TenantStatus::Deleting;
        tenant.updated_at_ms = clock.now_ms();
        tenant.version = read_version.saturating_add(1);
        match store.update_tenant(&tenant, read_version).await {
            Ok(true) => {}
            Ok(false) => return Err(ApiError::NotFound { resource: "tenant" }),
            Err(PortError::Conflict { .. }) => {
                return Err(ApiError::Conflict {
                    detail: "The tenant is being changed concurrently. Retry the request.".into(),
                });
            }
            Err(e) => return Err(store_failure(e)),
        }
        tracing::info!(tenant_id = %tenant.id, "tenant deletion started");
    }
    // The records of its syncs first (another table), while the syncs still say where they are.
    if !purge_feeds(&*store, &*records, &tenant.id, started).await? {
        tracing::info!(tenant_id = %tenant.id, "tenant deletion continues on the next DELETE");
        return Ok(Accepted(TenantOut::from(tenant)).into_response());
    }
    let audit_expires_at_s =
        (clock.now_ms() / 1000).saturating_add(DELETED_TENANT_AUDIT_RETENTION_DAYS * 86_400);
    while started.elapsed() < DELETE_BUDGET {
        match store
            .purge_tenant(&tenant.id, audit_expires_at_s)
            .await
            .map_err(store_failure)?
        {
            PurgeProgress::More => {}
            PurgeProgress::Done => {
                tracing::info!(tenant_id = %tenant.id, "tenant deleted");
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
        }
    }
    tracing::info!(tenant_id = %tenant.id, "tenant deletion continues on the next DELETE");
    Ok(Accepted(TenantOut::from(tenant)).into_response())
}

/// Removes the records, feed pages and seen chunks of every sync of the tenant, within the
/// deletion's budget: `false` when time ran out first (the next `DELETE` goes on).
async fn purge_feeds<S: ControlStore>(
    store: &S,
    records: &S,
    tenant: &TenantId,
    started: Instant,
) -> Result<bool, ApiError> {
    let mut page = PageRequest {
        limit: MAX_LIMIT,
        after: None,
    };
    loop {
        let syncs = store
            .list_syncs(tenant, &SyncFilter::default(), &page)
            .await
            .map_err(store_failure)?;
        for sync in &syncs.items {
            let feed = FeedKey {
                tenant_id: sync.tenant_id.clone(),
                connection_id: sync.connection_id.clone(),
                model: sync.model.clone(),
            };
            while !records.purge(&feed, 1_000).await.map_err(store_failure)? {
                if started.elapsed() >= DELETE_BUDGET {
                    return Ok(false);
                }
            }
        }
        match syncs.next_after {
            Some(next) => page.after = Some(next),
            None => return Ok(true),
        }
    }
}

/// The tenant operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list, create, get, update, delete]
}
