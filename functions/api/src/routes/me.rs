//! `GET /v1/me`: who the credential belongs to, its tenant and scopes. Any authenticated caller may
//! ask; it is how a client checks which credential it holds.

use tributary_core::ApiError;
use tributary_core::auth::Principal;

use crate::dto::MeOut;
use crate::handler::Reply;

/// Answers with the caller's principal.
#[utoipa::path(get, path = "/v1/me", tag = "Identity",
    responses((status = 200, description = "The caller", body = MeOut)),
    security(("bearer" = [])))]
pub fn get(principal: &Principal) -> Result<Reply, ApiError> {
    Reply::ok(MeOut {
        principal: principal.principal.clone(),
        tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
        scopes: principal.scopes.clone(),
    })
}
