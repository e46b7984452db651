//! The API's operations, one module per resource, each with its `router()`, merged here.

pub mod actions;
pub mod audit;
pub mod connect;
pub mod connections;
pub mod dashboard;
pub mod docs;
pub mod health;
pub mod inbound;
pub mod integrations;
pub mod issuers;
pub mod keys;
pub mod me;
pub mod operations;
pub mod provider_call;
pub mod proxy;
pub mod records;
pub mod syncs;
pub mod tenants;
pub mod webhooks;

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
        .merge(actions::router())
        .merge(proxy::router())
        .merge(webhooks::router())
        .merge(inbound::router())
        .merge(operations::router())
        .merge(dashboard::router())
}

/// Whether a filtered list has any item: pages are read until one holds an item or none follows
/// (a filtered page may be empty and still have a next one).
pub async fn any_listed<T, F, Fut>(mut list: F) -> Result<bool, ApiError>
where
    F: FnMut(tributary_core::pagination::PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<tributary_core::pagination::Page<T>, PortError>>,
{
    let mut page = tributary_core::pagination::PageRequest {
        limit: 1,
        after: None,
    };
    loop {
        let found = list(page.clone()).await.map_err(store_failure)?;
        if !found.items.is_empty() {
            return Ok(true);
        }
        match found.next_after {
            Some(next) => page.after = Some(next),
            None => return Ok(false),
        }
    }
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
