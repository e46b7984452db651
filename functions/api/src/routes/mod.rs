//! The API's routes, one module per resource.

pub mod audit;
pub mod docs;
pub mod health;
pub mod issuers;
pub mod keys;
pub mod me;
pub mod tenants;

use lambda_http::Request;
use tributary_core::ApiError;
use tributary_core::pagination::{Page, PageRequest, encode_cursor};

use crate::dto::PageOf;

use crate::request::only_query;

/// Reads `limit` and `cursor` (and refuses other query parameters).
pub fn page_request(request: &Request) -> Result<PageRequest, ApiError> {
    let q = only_query(request, &["limit", "cursor"])?;
    PageRequest::from_query(
        q.get("limit").map(String::as_str),
        q.get("cursor").map(String::as_str),
    )
}

/// Maps a store failure to a 503 (retryable) or 500, logging the cause.
pub fn store_failure(e: tributary_core::PortError) -> ApiError {
    if let tributary_core::PortError::OutOfRange { .. } = e {
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

/// Converts a store page to the wire shape, encoding the cursor.
pub fn page_of<T, U>(page: Page<T>, f: impl FnMut(T) -> U) -> PageOf<U> {
    PageOf {
        data: page.items.into_iter().map(f).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }
}
