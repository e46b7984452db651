//! `GET /v1/audit-events`: the tenant's credential changes, oldest first.

use lambda_http::Request;
use tributary_core::ApiError;
use tributary_core::ids::TenantId;

use crate::dto::{AuditEventOut, PageOf};
use crate::handler::{ControlStore, Deps, Reply};
use crate::routes::docs::ProblemDoc;
use crate::routes::{page_of, page_request, store_failure};

/// Lists the tenant's audit events.
#[utoipa::path(get, path = "/v1/audit-events", tag = "Audit",
    params(("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of events", body = PageOf<AuditEventOut>),
              (status = 400, description = "Bad `limit` or `cursor`", body = ProblemDoc),
              (status = 403, description = "Requires `keys:read`", body = ProblemDoc)),
    security(("bearer" = ["keys:read"])))]
pub async fn list<S: ControlStore, Q>(
    deps: &Deps<S, Q>,
    request: &Request,
    tenant: &TenantId,
) -> Result<Reply, ApiError> {
    let page = page_request(request)?;
    let found = deps
        .store
        .list_audit(tenant, &page)
        .await
        .map_err(store_failure)?;
    Reply::ok(page_of(found, AuditEventOut::from))
}
