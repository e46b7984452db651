//! `Idempotency-Key`, honoured by the operations that take their body as [`Idempotent<T>`] (an
//! optional body as `Idempotent<Option<T>>`).
//!
//! The extractor runs after the access rule (it is the body, so it is the last argument): it
//! validates the key, claims it for the principal within its tenant, and either answers at once (a
//! replay, another request's key, a duplicate in progress) or lets the handler run. The router's
//! [`complete`] layer, installed once for every operation, then records what the handler answered
//! for replays: 2xx and other 4xx are kept for 24 h (a created key's `secret` never is), while a
//! refusal that depends on who asks or when (401, 403, 429) and any 5xx release the key, so a retry
//! may succeed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tributary_core::ports::{IdempotencyBegin, StoredResponse};

use crate::access::Authenticated;
use crate::problem::{Answered, ApiError, PROBLEM_CONTENT_TYPE};
use crate::request::{body_bytes, invalid, json};
use crate::state::{AppState, ControlStore};

const LEASE: Duration = Duration::from_secs(30);
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Marks a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A JSON body (as [`crate::request::JsonBody`]) whose operation honours `Idempotency-Key`.
pub struct Idempotent<T>(pub T);

/// A key this request claimed, for [`complete`] to record or release.
#[derive(Debug, Clone)]
struct Claim {
    scope: String,
    key: String,
}

/// Where the extractor leaves its claim for the layer.
#[derive(Debug, Clone, Default)]
struct Slot(Arc<OnceLock<Claim>>);

impl<S: ControlStore, Q: Send + Sync, T: DeserializeOwned> FromRequest<AppState<S, Q>>
    for Idempotent<T>
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState<S, Q>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let key = validate_key(&parts.headers).map_err(IntoResponse::into_response)?;
        let bytes = body_bytes(body)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(key) = key else {
            return json_or_nothing(&parts.headers, &bytes)
                .map(Idempotent)
                .map_err(IntoResponse::into_response);
        };
        let (Some(Authenticated(principal)), Some(slot)) = (
            parts.extensions.get::<Authenticated>(),
            parts.extensions.get::<Slot>(),
        ) else {
            tracing::error!("`Idempotent` needs an authenticated caller and the `complete` layer");
            return Err(ApiError::Internal.into_response());
        };
        // Keys are scoped to the principal within its tenant: another credential of the same tenant
        // using the same key gets its own request, never this one's stored response.
        let scope = match &principal.tenant_id {
            Some(tenant) => format!("{tenant}#{}", principal.principal),
            None => format!("principal:{}", principal.principal),
        };
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str().as_bytes());
        hasher.update(b" ");
        hasher.update(parts.uri.path().as_bytes());
        hasher.update(b"\n");
        hasher.update(&bytes);
        let fingerprint = hex::encode(hasher.finalize());
        let begun = state
            .store
            .begin(
                &scope,
                &key,
                &fingerprint,
                state.clock.now_ms(),
                LEASE,
                KEEP,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "idempotency store failed");
                ApiError::Unavailable.into_response()
            })?;
        match begun {
            IdempotencyBegin::Mismatch => Err(ApiError::IdempotencyKeyReused.into_response()),
            IdempotencyBegin::InProgress => Err(ApiError::IdempotencyInProgress.into_response()),
            IdempotencyBegin::Replay(stored) => Err(replay(&stored)),
            IdempotencyBegin::Started => {
                // A fresh slot per request: it cannot hold a claim yet.
                let _ = slot.0.set(Claim { scope, key });
                json_or_nothing(&parts.headers, &bytes)
                    .map(Idempotent)
                    .map_err(IntoResponse::into_response)
            }
        }
    }
}

/// The JSON body `T`; an empty body is JSON `null` for a `T` that accepts it (an optional body,
/// `Idempotent<Option<T>>`), so that such a POST may be sent without one.
fn json_or_nothing<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty()
        && let Ok(nothing) = serde_json::from_slice::<T>(b"null")
    {
        return Ok(nothing);
    }
    json(headers, bytes)
}

/// The `Idempotency-Key` header, validated: 1 to 255 visible ASCII characters.
pub(crate) fn validate_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "header.Idempotency-Key",
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters, e.g. a UUID.",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The stored answer, marked as replayed (without `Location`: the body says where the resource is).
fn replay(stored: &StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body: Option<serde_json::Value> = serde_json::from_str(&stored.body).ok();
    let mut response = match &body {
        Some(value) => Response::new(Body::from(value.to_string())),
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if body.is_some() {
        let content_type = if status.as_u16() >= 400 {
            PROBLEM_CONTENT_TYPE
        } else {
            "application/json"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Records the answer to a request whose key [`Idempotent`] claimed (and does nothing for any other
/// request).
pub async fn complete<S: ControlStore, Q: Send + Sync>(
    State(state): State<AppState<S, Q>>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = Slot::default();
    request.extensions_mut().insert(slot.clone());
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let Some(Claim { scope, key }) = slot.0.get().cloned() else {
        return response;
    };
    let status = response.status().as_u16();
    // A refusal that depends on who asks (authentication, scopes) or on the moment (rate limits) is
    // not the request's outcome, nor is a failure: a retry with the key may succeed.
    if matches!(status, 401 | 403 | 429) || status >= 500 {
        if let Err(e) = state.store.abandon(&scope, &key).await {
            tracing::error!(error = %e, "could not record the idempotent response");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            tracing::error!("could not read the response to record it");
            if let Err(e) = state.store.abandon(&scope, &key).await {
                tracing::error!(error = %e, "could not record the idempotent response");
            }
            return ApiError::Internal.into_response();
        }
    };
    let body = match parts.extensions.get::<Answered>() {
        Some(Answered(error)) => serde_json::to_string(&error.to_problem(Some(&path))),
        None => Ok(replay_body(&bytes)),
    };
    let saved = match body {
        Ok(body) => {
            let stored = StoredResponse { status, body };
            state.store.complete(&scope, &key, &stored).await
        }
        Err(_) => state.store.abandon(&scope, &key).await,
    };
    if let Err(e) = saved {
        tracing::error!(error = %e, "could not record the idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The body kept for replays: never a created key's secret, which is shown once and not stored.
fn replay_body(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("secret");
            serde_json::Value::Object(map).to_string()
        }
        Ok(other) => other.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
