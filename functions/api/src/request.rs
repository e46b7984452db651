//! Reading requests: bounded JSON bodies that reject unknown fields, query parameters and path ids,
//! each failure a 4xx problem that points at the offending field.

use std::collections::HashMap;
use std::str::FromStr;

use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;
use tributary_core::ApiError;
use tributary_core::problem::FieldError;

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The raw body bytes.
pub fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Parses the JSON body into `T` (whose serde attributes reject unknown fields).
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes = body_bytes(request);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let content_type = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = pointer_of(e.path());
        let detail = e.inner().to_string();
        invalid(
            &pointer,
            &format!("The request body is invalid at `{pointer}`: {detail}."),
        )
    })?;
    de.end().map_err(|_| {
        invalid(
            "/",
            "The request body has trailing data after the JSON value.",
        )
    })?;
    Ok(value)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&index.to_string()),
            serde_path_to_error::Segment::Map { key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            serde_path_to_error::Segment::Enum { variant } => out.push_str(variant),
            serde_path_to_error::Segment::Unknown => out.push('?'),
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// A validation error about one field.
pub fn invalid(pointer: &str, detail: &str) -> ApiError {
    ApiError::Validation {
        detail: detail.to_owned(),
        errors: vec![FieldError {
            pointer: pointer.to_owned(),
            detail: detail.to_owned(),
        }],
    }
}

/// The query string parameters (first value of each).
pub fn query(request: &Request) -> HashMap<String, String> {
    let params = request.query_string_parameters();
    params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Refuses query parameters other than `allowed`.
pub fn only_query(
    request: &Request,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let q = query(request);
    if let Some(unknown) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        let name: String = unknown.chars().take(64).collect();
        return Err(invalid(
            &format!("query.{name}"),
            &format!(
                "Unknown query parameter `{name}`. Allowed: {}.",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    Ok(q)
}

/// Parses a path id, refusing malformed ones before any store access.
pub fn path_id<T>(raw: &str, name: &str) -> Result<T, ApiError>
where
    T: FromStr<Err = tributary_core::ids::InvalidId>,
{
    raw.parse().map_err(|e: tributary_core::ids::InvalidId| {
        invalid(&format!("path.{name}"), &format!("{e}."))
    })
}
