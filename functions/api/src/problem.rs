//! API errors and their RFC 9457 `application/problem+json` rendering.
//!
//! Every 4xx carries a stable machine-readable `code` and a `detail` that tells the caller what to do
//! next. A 5xx body is opaque: the cause is logged, never sent.
//!
//! A handler or extractor returns an [`ApiError`]; its `IntoResponse` renders the problem and keeps the
//! error in the response's extensions, so the router's edge can render it again with the request path
//! as `instance` (which `IntoResponse` cannot see) and log 5xx causes once.

use axum::body::Body;
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request, located by a JSON Pointer (RFC 6901) into the body or by the name of
/// a query or path parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where: `/body/name`, `query.limit`, `path.id`.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the problem type; stable.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What happened in this occurrence and what to do about it.
    pub detail: String,
    /// The stable machine-readable code (also the last segment of `type`).
    pub code: &'static str,
    /// The request path this occurrence is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Field-level errors, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying, for rate limiting (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Everything the API can answer with other than success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path.
    #[error("no route for {path}")]
    RouteNotFound {
        /// The requested path.
        path: String,
    },
    /// The path exists but not with this method.
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// The requested method.
        method: String,
        /// The methods the path supports, for the `Allow` header.
        allowed: Vec<String>,
    },
    /// The object does not exist, or belongs to another tenant: the answer is the same.
    #[error("{resource} not found")]
    NotFound {
        /// The kind of object, e.g. `connection`.
        resource: &'static str,
    },
    /// The request carries no usable identity (the authorizer context is missing or malformed).
    #[error("unauthenticated")]
    Unauthenticated,
    /// The caller lacks a scope the route requires.
    #[error("missing scope {scope}")]
    MissingScope {
        /// The scope that is required.
        scope: &'static str,
    },
    /// The route acts on a tenant's own resources and the caller is not a tenant.
    #[error("tenant credential required")]
    TenantRequired,
    /// The caller tried to grant a scope it does not hold.
    #[error("cannot grant scope {scope}")]
    ScopeEscalation {
        /// The scope that cannot be granted.
        scope: &'static str,
    },
    /// The `Idempotency-Key` was used before with a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is in progress.
    #[error("idempotent request in progress")]
    IdempotencyInProgress,
    /// The request is malformed or fails validation.
    #[error("validation failed: {detail}")]
    Validation {
        /// A summary.
        detail: String,
        /// The individual problems.
        errors: Vec<FieldError>,
    },
    /// The request conflicts with the current state.
    #[error("conflict: {detail}")]
    Conflict {
        /// What conflicts and how to resolve it.
        detail: String,
    },
    /// A cancellation of a sync run that has already ended.
    #[error("run {run_id} already {state}")]
    RunFinished {
        /// The run.
        run_id: String,
        /// How it ended.
        state: &'static str,
    },
    /// The body is larger than the route accepts.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Too many requests; retry after the given number of seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The provider refused the credentials it was given (its verification request failed as
    /// unauthorized); nothing was saved.
    #[error("credentials rejected by {provider}")]
    CredentialsRejected {
        /// The catalog provider.
        provider: String,
        /// The provider's HTTP status.
        status: u16,
    },
    /// The provider did not answer usably (timeout, rate limit, server error); nothing was saved.
    #[error("provider {provider} unavailable")]
    ProviderUnavailable {
        /// The catalog provider.
        provider: String,
    },
    /// The connection cannot be used until its end user connects again.
    #[error("connection {connection_id} needs reauthorization")]
    NeedsReauth {
        /// The connection.
        connection_id: String,
        /// Why, as recorded on the connection or answered by the provider.
        reason: String,
    },
    /// The provider refused a request sent for the caller (an action's write): its status and
    /// message are passed on.
    #[error("{provider} refused the request with HTTP {status}")]
    ProviderRejected {
        /// The catalog provider.
        provider: String,
        /// The provider's HTTP status.
        status: u16,
        /// The provider's message, when its spec says where it is.
        message: Option<String>,
    },
    /// The provider's rate limit refused a request sent for the caller.
    #[error("{provider} rate limited the request")]
    ProviderRateLimited {
        /// The catalog provider.
        provider: String,
        /// Seconds the provider asked to wait (at least 1).
        retry_after_secs: u64,
    },
    /// The provider failed, could not be reached, or answered unusably, for a request sent for
    /// the caller.
    #[error("{provider} failed: {detail}")]
    ProviderFailed {
        /// The catalog provider.
        provider: String,
        /// What happened, without secrets.
        detail: String,
    },
    /// The provider did not answer in time.
    #[error("{provider} timed out")]
    ProviderTimeout {
        /// The catalog provider.
        provider: String,
    },
    /// A provider's webhook whose signature, timestamp or secret does not verify it: refused,
    /// and never processed.
    #[error("webhook not verified: {detail}")]
    WebhookUnverified {
        /// Why, without the secret.
        detail: String,
    },
    /// A provider's webhook whose signature header cannot be read.
    #[error("malformed webhook: {detail}")]
    WebhookMalformed {
        /// What cannot be read.
        detail: String,
    },
    /// A webhook URL that receives nothing: no such integration, or its provider sends no
    /// webhooks Tributary verifies.
    #[error("no webhook receiver: {detail}")]
    NoWebhookReceiver {
        /// Which.
        detail: String,
    },
    /// A dependency is down; retry later. The cause is logged, not returned.
    #[error("service unavailable")]
    Unavailable,
    /// A bug or an unexpected failure. The cause is logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::RouteNotFound { .. }
            | ApiError::NotFound { .. }
            | ApiError::NoWebhookReceiver { .. } => 404,
            ApiError::WebhookUnverified { .. } => 401,
            ApiError::WebhookMalformed { .. } => 400,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Unauthenticated => 401,
            ApiError::MissingScope { .. }
            | ApiError::TenantRequired
            | ApiError::ScopeEscalation { .. } => 403,
            ApiError::IdempotencyKeyReused => 422,
            ApiError::IdempotencyInProgress => 409,
            ApiError::Validation { .. } => 400,
            ApiError::Conflict { .. } | ApiError::RunFinished { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::RateLimited { .. } => 429,
            ApiError::CredentialsRejected { .. } => 400,
            ApiError::ProviderUnavailable { .. } => 502,
            ApiError::NeedsReauth { .. } => 409,
            ApiError::ProviderRejected { .. } => 422,
            ApiError::ProviderRateLimited { .. } => 429,
            ApiError::ProviderFailed { .. } => 502,
            ApiError::ProviderTimeout { .. } => 504,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::NotFound { .. } | ApiError::NoWebhookReceiver { .. } => "not_found",
            ApiError::WebhookUnverified { .. } => "webhook_unverified",
            ApiError::WebhookMalformed { .. } => "webhook_malformed",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::MissingScope { .. } => "missing_scope",
            ApiError::TenantRequired => "tenant_required",
            ApiError::ScopeEscalation { .. } => "scope_escalation",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyInProgress => "idempotency_in_progress",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::RunFinished { .. } => "run_finished",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::CredentialsRejected { .. } => "credentials_rejected",
            ApiError::ProviderUnavailable { .. } => "provider_unavailable",
            ApiError::NeedsReauth { .. } => "needs_reauth",
            ApiError::ProviderRejected { .. } => "provider_rejected",
            ApiError::ProviderRateLimited { .. } => "provider_rate_limited",
            ApiError::ProviderFailed { .. } => "provider_error",
            ApiError::ProviderTimeout { .. } => "provider_timeout",
            ApiError::Unavailable => "service_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound { .. }
            | ApiError::NotFound { .. }
            | ApiError::NoWebhookReceiver { .. } => "Not Found",
            ApiError::WebhookUnverified { .. } => "Unauthorized",
            ApiError::WebhookMalformed { .. } => "Bad Request",
            ApiError::MethodNotAllowed { .. } => "Method Not Allowed",
            ApiError::Unauthenticated => "Unauthorized",
            ApiError::MissingScope { .. }
            | ApiError::TenantRequired
            | ApiError::ScopeEscalation { .. } => "Forbidden",
            ApiError::IdempotencyKeyReused => "Unprocessable Content",
            ApiError::IdempotencyInProgress => "Conflict",
            ApiError::Validation { .. } => "Bad Request",
            ApiError::Conflict { .. } | ApiError::RunFinished { .. } => "Conflict",
            ApiError::PayloadTooLarge { .. } => "Content Too Large",
            ApiError::UnsupportedMediaType => "Unsupported Media Type",
            ApiError::RateLimited { .. } => "Too Many Requests",
            ApiError::CredentialsRejected { .. } => "Bad Request",
            ApiError::ProviderUnavailable { .. } | ApiError::ProviderFailed { .. } => "Bad Gateway",
            ApiError::NeedsReauth { .. } => "Conflict",
            ApiError::ProviderRejected { .. } => "Unprocessable Content",
            ApiError::ProviderRateLimited { .. } => "Too Many Requests",
            ApiError::ProviderTimeout { .. } => "Gateway Timeout",
            ApiError::Unavailable => "Service Unavailable",
            ApiError::Internal => "Internal Server Error",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::RouteNotFound { path } => format!(
                "No route matches `{}`. Check the path against the API reference at /docs.",
                truncate(path, 200)
            ),
            ApiError::MethodNotAllowed { method, allowed } => format!(
                "`{}` is not supported here; use one of: {}.",
                truncate(method, 16),
                allowed.join(", ")
            ),
            ApiError::NotFound { resource } => format!(
                "No {resource} with this id exists for your tenant. Check the id, or list {resource}s to find it."
            ),
            ApiError::Unauthenticated => {
                "The request carries no valid credential. Send `Authorization: Bearer <api key or token>`.".to_owned()
            }
            ApiError::MissingScope { scope } => format!(
                "This route requires the `{scope}` scope. Use a credential that has it, or ask an admin to grant it."
            ),
            ApiError::TenantRequired => "This route acts on a tenant's own resources: call it with a tenant's API key or token. Deployment admins manage a tenant's keys under /v1/tenants/{tenant_id}/keys.".to_owned(),
            ApiError::ScopeEscalation { scope } => format!(
                "You cannot grant `{scope}` because your credential does not hold it. Request only scopes you hold."
            ),
            ApiError::IdempotencyKeyReused => "This Idempotency-Key was used with a different request within the last 24 hours. Use a new key for a new request.".to_owned(),
            ApiError::IdempotencyInProgress => "A request with this Idempotency-Key is still being processed. Retry after a moment to get its result.".to_owned(),
            ApiError::Validation { detail, .. } => detail.clone(),
            ApiError::WebhookUnverified { detail }
            | ApiError::WebhookMalformed { detail }
            | ApiError::NoWebhookReceiver { detail } => detail.clone(),
            ApiError::Conflict { detail } => detail.clone(),
            ApiError::RunFinished { run_id, state } => format!(
                "Run `{run_id}` has already ended ({state}), so there is nothing to cancel. Start a new run with POST /v1/syncs/{{sync_id}}/runs if needed."
            ),
            ApiError::PayloadTooLarge { limit } => {
                format!("The request body exceeds {limit} bytes. Send a smaller body.")
            }
            ApiError::UnsupportedMediaType => {
                "Send the body as JSON with `Content-Type: application/json`.".to_owned()
            }
            ApiError::RateLimited { retry_after_secs } => format!(
                "Your tenant's request rate limit is exhausted. Retry after {retry_after_secs} seconds."
            ),
            ApiError::CredentialsRejected { provider, status } => format!(
                "{provider} refused these credentials (HTTP {status}) when they were checked; nothing was saved. Check the values and their permissions at {provider}, then retry."
            ),
            ApiError::ProviderUnavailable { provider } => format!(
                "{provider} did not answer usably (a timeout, a rate limit or a server error), so the credentials could not be checked and nothing was saved. Retry later."
            ),
            ApiError::NeedsReauth { connection_id, reason } => format!(
                "Connection `{connection_id}` needs its end user to connect again ({}). Start a reconnect session for it (POST /v1/connect/sessions with `connection_id`), then retry.",
                truncate(reason, 300)
            ),
            ApiError::ProviderRejected { provider, status, message } => format!(
                "{provider} refused the request (HTTP {status}){}. Check the input against {provider}'s documentation; retrying the same request will not help.",
                message
                    .as_deref()
                    .map(|m| format!(": {}", truncate(m, 300)))
                    .unwrap_or_default()
            ),
            ApiError::ProviderRateLimited { provider, retry_after_secs } => format!(
                "{provider}'s rate limit refused the request; nothing was done. Retry after {retry_after_secs} seconds."
            ),
            ApiError::ProviderFailed { provider, detail } => format!(
                "{provider} did not answer usably: {}. Retry later; a write that supports idempotency keys is safe to retry with the same Idempotency-Key.",
                truncate(detail, 300)
            ),
            ApiError::ProviderTimeout { provider } => format!(
                "{provider} did not answer in time. The request may or may not have taken effect there: retry with the same Idempotency-Key, or check before retrying."
            ),
            ApiError::Unavailable => {
                "A dependency is temporarily unavailable. Retry with backoff.".to_owned()
            }
            ApiError::Internal => {
                "An unexpected error occurred. It has been logged; retry later.".to_owned()
            }
        }
    }

    /// The problem document for this error, about the request path `instance`.
    pub fn to_problem(&self, instance: Option<&str>) -> Problem {
        let code = self.code();
        Problem {
            type_uri: format!("urn:tributary:problem:{code}"),
            title: self.title(),
            status: self.status(),
            detail: self.detail(),
            code,
            instance: instance.map(|p| truncate(p, 200).to_owned()),
            errors: match self {
                ApiError::Validation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
            retry_after: match self {
                ApiError::RateLimited { retry_after_secs }
                | ApiError::ProviderRateLimited {
                    retry_after_secs, ..
                } => Some(*retry_after_secs),
                _ => None,
            },
        }
    }
}

/// An answered error, kept in the response's extensions for the edge (see the module documentation).
#[derive(Debug, Clone)]
pub struct Answered(pub ApiError);

impl ApiError {
    /// The problem+json response for this error, about the request path `instance`.
    pub fn to_response(&self, instance: Option<&str>) -> Response {
        let doc = self.to_problem(instance);
        // A problem document always serializes; should it not, the answer is still a 500 problem.
        let body =
            serde_json::to_vec(&doc).unwrap_or_else(|_| INTERNAL_PROBLEM.as_bytes().to_vec());
        let mut response = Response::new(Body::from(body));
        *response.status_mut() =
            StatusCode::from_u16(doc.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = doc.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::MethodNotAllowed { allowed, .. } = self
            && !allowed.is_empty()
            && let Ok(value) = HeaderValue::from_str(&allowed.join(", "))
        {
            headers.insert(ALLOW, value);
        }
        response
    }
}

const INTERNAL_PROBLEM: &str = r#"{"type":"urn:tributary:problem:internal_error","title":"Internal Server Error","status":500,"detail":"An unexpected error occurred. It has been logged; retry later.","code":"internal_error"}"#;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.to_response(None);
        response.extensions_mut().insert(Answered(self));
        response
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_renders_rfc9457_fields() {
        let p = ApiError::NotFound {
            resource: "connection",
        }
        .to_problem(Some("/v1/connections/conn_1"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "urn:tributary:problem:not_found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["code"], "not_found");
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["instance"], "/v1/connections/conn_1");
        assert!(json.get("errors").is_none());
    }

    #[test]
    fn server_errors_say_nothing_internal() {
        let p = ApiError::Internal.to_problem(None);
        assert_eq!(p.status, 500);
        assert!(!p.detail.to_lowercase().contains("dynamo"));
        assert!(p.instance.is_none());
    }

    #[test]
    fn missing_scope_names_the_scope() {
        let p = ApiError::MissingScope {
            scope: "connections:read",
        }
        .to_problem(None);
        assert_eq!(p.status, 403);
        assert!(p.detail.contains("`connections:read`"));
    }

    #[test]
    fn long_paths_are_cut_in_details() {
        let long = "/v1/".to_owned() + &"é".repeat(500);
        let p = ApiError::RouteNotFound { path: long.clone() }.to_problem(Some(&long));
        assert!(p.instance.unwrap().chars().count() <= 200);
        assert!(p.detail.chars().count() < 300);
    }

    #[test]
    fn the_fallback_body_is_the_internal_problem() {
        let fallback: serde_json::Value = serde_json::from_str(INTERNAL_PROBLEM).unwrap();
        let rendered = serde_json::to_value(ApiError::Internal.to_problem(None)).unwrap();
        assert_eq!(fallback, rendered);
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let p = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .to_problem(None);
        assert_eq!(p.retry_after, Some(7));
        assert_eq!(p.status, 429);
    }
}
