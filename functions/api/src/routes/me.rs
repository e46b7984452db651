//! `GET /v1/me`: who the credential belongs to, its tenant and scopes. Any authenticated caller may
//! ask; it is how a client checks which credential it holds.

use lambda_http::{Body, Response};
use tributary_core::auth::Principal;

use crate::response;

/// Answers with the caller's principal.
pub fn get(principal: &Principal) -> Response<Body> {
    response::json(200, principal)
}
