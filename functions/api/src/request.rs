//! Reading requests: bounded JSON bodies that reject unknown fields, query parameters and path ids,
//! each failure a 4xx problem that points at the offending field.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use lambda_http::RequestExt;
use serde::de::DeserializeOwned;
use tributary_core::ids::{
    ActionRunId, ApiKeyId, ConnectionId, EndpointId, IntegrationId, InvalidId, IssuerId, MessageId,
    SyncId, SyncRunId, TenantId,
};

use crate::problem::{ApiError, FieldError};

/// The largest request body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most this function reads of any body: API Gateway's own payload limit. The body is already in
/// memory (it came in the invocation event); this only bounds what a copy may cost.
const MAX_READ_BYTES: usize = 10 * 1024 * 1024;

/// The raw body bytes.
pub async fn body_bytes(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_READ_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })
}

/// A JSON body: at most [`MAX_BODY_BYTES`], sent as `application/json`, parsed into `T` (whose serde
/// attributes reject unknown fields), every failure pointing at the field.
pub struct JsonBody<T>(pub T);

impl<St: Send + Sync, T: DeserializeOwned> FromRequest<St> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &St) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = body_bytes(body).await?;
        json(&parts.headers, &bytes).map(JsonBody)
    }
}

/// Parses `bytes` as the JSON body `T`, checking its size and content type first.
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let content_type = headers
        .get(CONTENT_TYPE)
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

/// The query string parameters (first value of each), as API Gateway decoded them.
fn query(parts: &Parts) -> HashMap<String, String> {
    let params = parts.query_string_parameters();
    params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Refuses query parameters other than `allowed`.
pub fn only_query(parts: &Parts, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let q = query(parts);
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

/// An id that appears in paths, under the name its routes give it (`/v1/keys/{key_id}`).
pub trait PathId: FromStr<Err = InvalidId> {
    /// The path parameter's name.
    const NAME: &'static str;
}

impl PathId for TenantId {
    const NAME: &'static str = "tenant_id";
}

impl PathId for ApiKeyId {
    const NAME: &'static str = "key_id";
}

impl PathId for ConnectionId {
    const NAME: &'static str = "connection_id";
}

impl PathId for IntegrationId {
    const NAME: &'static str = "integration_id";
}

impl PathId for IssuerId {
    const NAME: &'static str = "issuer_id";
}

impl PathId for SyncId {
    const NAME: &'static str = "sync_id";
}

impl PathId for SyncRunId {
    const NAME: &'static str = "run_id";
}

impl PathId for ActionRunId {
    const NAME: &'static str = "action_run_id";
}

impl PathId for EndpointId {
    const NAME: &'static str = "endpoint_id";
}

impl PathId for tributary_core::ids::OperationId {
    const NAME: &'static str = "operation_id";
}

impl PathId for MessageId {
    const NAME: &'static str = "message_id";
}

/// A path id, validated against its format before any store access. It is read from the path as
/// sent (not percent-decoded), like every id this API issues.
pub struct Id<T>(pub T);

impl<St: Send + Sync, T: PathId> FromRequestParts<St> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        path_id(path_segment(parts, T::NAME)?, T::NAME).map(Id)
    }
}

/// The path segment of the route's parameter `name`, as sent (not percent-decoded).
pub fn path_segment<'p>(parts: &'p Parts, name: &str) -> Result<&'p str, ApiError> {
    let placeholder = format!("{{{name}}}");
    let raw = parts.extensions.get::<MatchedPath>().and_then(|route| {
        let at = route.as_str().split('/').position(|s| s == placeholder)?;
        parts.uri.path().split('/').nth(at)
    });
    raw.ok_or_else(|| {
        tracing::error!(
            parameter = name,
            "an operation reads a path parameter its route does not have"
        );
        ApiError::Internal
    })
}

/// A query parameter's id, if given: `what` it must be (`a connection id (\`conn_…\`)`) names it in
/// the 400 a malformed one gets, before any store access.
pub fn query_id<T>(
    query: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, ApiError>
where
    T: FromStr<Err = InvalidId>,
{
    query
        .get(name)
        .map(|raw| raw.parse::<T>())
        .transpose()
        .map_err(|_| invalid(&format!("query.{name}"), &format!("`{name}` is {what}.")))
}

/// Parses a path id, refusing malformed ones before any store access.
pub fn path_id<T>(raw: &str, name: &str) -> Result<T, ApiError>
where
    T: FromStr<Err = InvalidId>,
{
    raw.parse()
        .map_err(|e: InvalidId| invalid(&format!("path.{name}"), &format!("{e}.")))
}
