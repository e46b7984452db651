//! `GET /v1/me`: who the credential belongs to, its tenant and scopes. Any authenticated caller may
//! ask; it is how a client checks which credential it holds.

use tributary_core::ports::QueueStats;

use crate::access::Caller;
use crate::dto::MeOut;
use crate::response::Json;
use crate::router::{Api, operations};
use crate::state::{AppState, ControlStore};

/// Answers with the caller's principal.
#[utoipa::path(get, path = "/v1/me", operation_id = "get_me", tag = "Identity",
    responses((status = 200, description = "The caller", body = MeOut)))]
pub async fn get(Caller { principal }: Caller) -> Json<MeOut> {
    Json(MeOut {
        principal: principal.principal,
        tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
        scopes: principal.scopes,
    })
}

/// The identity operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![get]
}
