//! The API's operations, one module per resource, each with its `router()`, merged here.

pub mod audit;
pub mod connect;
pub mod connections;
pub mod docs;
pub mod health;
pub mod integrations;
pub mod issuers;
pub mod keys;
pub mod me;
pub mod records;
pub mod syncs;
pub mod tenants;

use tributary_core::PortError;

use crate::problem::ApiError;
use crate::router::Api;
use crate::state::{AppState, ControlStore, JobsQueue};

/// Every operation.
pub fn api<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    Api::new()
        .merge(health::router())
        .merge(docs::router())
        .merge(me::router())
        .merge(tenants::router())
        .merge(keys::router())
        .merge(issuers::router())
        .merge(audit::router())
        .merge(integrations::router())
        .merge(connections::router())
        .merge(connect::router())
        .merge(syncs::router())
        .merge(records::router())
}

/// Maps a store failure to a 503 (retryable) or 500, logging the cause.
pub fn store_failure(e: PortError) -> ApiError {
    if let PortError::OutOfRange { .. } = e {
        return crate::request::invalid(
            "query.cursor",
            "`cursor` does not belong to this list. Pass `next_cursor` from the previous page of the same list unchanged.",
        );
    }
    tracing::error!(error = %e, "store operation failed");
    if e.is_retryable() {
        ApiError::Unavailable
    } else {
        ApiError::Internal
    }
}
