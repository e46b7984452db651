//! The API reference: the OpenAPI document (`GET /v1/openapi.json`, built by [`crate::openapi`]) and a
//! human-readable page (`GET /docs`) whose assets ship inside the binary, so it works offline.

use axum::http::StatusCode;
use axum::response::Response;
use tributary_core::ports::QueueStats;

use crate::access::Public;
use crate::response;
use crate::router::{Api, operations};
use crate::state::{AppState, ControlStore, Document};

const DOCS_HTML: &str = include_str!("../../assets/docs.html");

/// The OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "Reference",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi(_: Public, Document(document): Document) -> Response {
    response::raw(
        StatusCode::OK,
        "application/json",
        document.as_bytes().to_vec(),
        Some("public, max-age=300"),
    )
}

/// The API reference page, rendered from the OpenAPI document.
#[utoipa::path(get, path = "/docs", tag = "Reference",
    responses((status = 200, description = "The reference page", content_type = "text/html")))]
pub async fn page(_: Public) -> Response {
    response::raw(
        StatusCode::OK,
        "text/html; charset=utf-8",
        DOCS_HTML.as_bytes().to_vec(),
        Some("public, max-age=300"),
    )
}

/// The reference's operations.
pub fn router<S: ControlStore, Q: QueueStats + 'static>() -> Api<AppState<S, Q>> {
    operations![openapi, page]
}
