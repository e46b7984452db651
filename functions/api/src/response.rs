//! Building HTTP responses: JSON bodies and RFC 9457 problem documents.

use lambda_http::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use lambda_http::{Body, Response};
use serde::Serialize;
use tributary_core::ApiError;
use tributary_core::problem::PROBLEM_CONTENT_TYPE;

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => build(status, "application/json", bytes, &[]),
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            problem(&ApiError::Internal, None)
        }
    }
}

/// The problem document for `error`, about the request path `instance`.
pub fn problem(error: &ApiError, instance: Option<&str>) -> Response<Body> {
    let doc = error.to_problem(instance);
    let mut extra: Vec<(lambda_http::http::HeaderName, String)> = Vec::new();
    if let Some(secs) = doc.retry_after {
        extra.push((RETRY_AFTER, secs.to_string()));
    }
    if let ApiError::MethodNotAllowed { allowed, .. } = error {
        extra.push((ALLOW, allowed.join(", ")));
    }
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    build(doc.status, PROBLEM_CONTENT_TYPE, bytes, &extra)
}

/// A reply: JSON `body` (or none, for 204) with `status`; problem+json for error statuses (replayed
/// ones); `Location` for created resources; `Idempotent-Replayed: true` on replays.
pub fn reply(
    status: u16,
    body: Option<&serde_json::Value>,
    location: Option<&str>,
    replayed: bool,
) -> Response<Body> {
    let mut extra: Vec<(lambda_http::http::HeaderName, String)> = Vec::new();
    if let Some(location) = location {
        extra.push((lambda_http::http::header::LOCATION, location.to_owned()));
    }
    if replayed {
        extra.push((
            lambda_http::http::HeaderName::from_static("idempotent-replayed"),
            "true".to_owned(),
        ));
    }
    let content_type = if status >= 400 {
        PROBLEM_CONTENT_TYPE
    } else {
        "application/json"
    };
    match body {
        Some(value) => build(status, content_type, value.to_string().into_bytes(), &extra),
        None => {
            let mut response = build(status, content_type, Vec::new(), &extra);
            response.headers_mut().remove(CONTENT_TYPE);
            *response.body_mut() = Body::Empty;
            response
        }
    }
}

/// A response with a body of any content type.
pub fn raw(status: u16, content_type: &str, body: Vec<u8>, cache: &str) -> Response<Body> {
    let mut response = build(status, content_type, body, &[]);
    if let Ok(value) = lambda_http::http::HeaderValue::from_str(cache) {
        response.headers_mut().insert(CACHE_CONTROL, value);
    }
    response
}

fn build(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(lambda_http::http::HeaderName, String)],
) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, "no-store");
    for (name, value) in extra {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::Binary(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}
