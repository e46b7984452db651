//! `GET /v1/audit-events`: the tenant's credential changes, oldest first.

use tributary_core::ports::QueueStats;

use crate::access::{KeysRead, TenantCaller};
use crate::dto::{AuditEventOut, PageOf};
use crate::openapi::ProblemDoc;
use crate::pagination::{PageQuery, page_of};
use crate::problem::ApiError;
use crate::response::Json;
use crate::router::{Api, operations};
use crate::routes::store_failure;
use crate::state::{AppState, ControlStore, Store};

/// Lists the tenant's audit events.
#[utoipa::path(get, path = "/v1/audit-events", operation_id = "list_audit_events", tag = "Audit",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of events", body = PageOf<AuditEventOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc)))]
pub async fn list<S: ControlStore>(
    caller: TenantCaller<KeysRead>,
    store: Store<S>,
    PageQuery(page): PageQuery,
) -> Result<Json<PageOf<AuditEventOut>>, ApiError> {
    let found = store
        .list_audit(&caller.tenant, &page)
        .await
        .map_err(store_failure)?;
    Ok(Json(page_of(found, AuditEventOut::from)))
}

/// The audit operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![list]
}
