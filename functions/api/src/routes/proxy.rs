//! `/v1/proxy/{proxy_path}`: any call to a connected provider's API, authenticated with the
//! connection's credentials, without the caller ever holding them.
//!
//! The `Connection-Id` header names the tenant's connection. The request goes to the provider's
//! base URL (the connection's, after its configuration and the deployment's origin override) with
//! the path appended as sent, its query, its body and its headers, less hop-by-hop headers,
//! credentials the caller may have added and the gateway's own; the connection's credentials are
//! applied as its spec says. The provider's answer comes back with its status, body and headers,
//! less hop-by-hop headers and cookies, and with any of the connection's secrets the provider
//! echoed replaced by `[REDACTED]`.
//!
//! The path can never leave the provider's origin or base path: dot segments, backslashes, encoded
//! slashes and their percent-encoded (or doubly encoded) forms, control characters and embedded
//! URLs are refused before anything is sent, and the final URL is checked against the base. The
//! egress guard applies to every hop; a redirect to another origin is followed without the
//! credentials. Retries are opt-in (`Tributary-Proxy-Retries`). Bodies are bounded by what Lambda
//! can carry: 5 MiB in, 4 MiB out (base64 for binary answers adds a third).

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use rand::Rng;
use secrecy::ExposeSecret;
use tributary_core::ids::ConnectionId;
use tributary_core::operation::{OperationError, OperationKind, OperationState};
use tributary_engine::connection::Bound;
use tributary_http::classify::{Classifier, Classify, Failure};
use tributary_http::client::OutRequest;
use url::Url;

use crate::access::{ProxyCalls, TenantCaller};
use crate::openapi::ProblemDoc;
use crate::problem::ApiError;
use crate::request::invalid;
use crate::router::{Api, operations};
use crate::routes::provider_call::{CallDeps, engine_failure, usable};
use crate::state::{AppState, Clock, ControlStore, JobsQueue, Providers, Secrets, Settings, Store};

/// The largest request body forwarded.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// The largest provider answer returned (a binary one is base64 in Lambda's 6 MB answer).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// The most retries a caller may ask for.
pub const MAX_RETRIES: u32 = 3;
/// What replaces a secret the provider echoed.
const REDACTED: &[u8] = b"[REDACTED]";
/// The header naming the connection.
const CONNECTION_ID: &str = "connection-id";
/// The header asking for retries.
const RETRIES: &str = "tributary-proxy-retries";
/// The time a proxied call may take, retries included (under the function's 28 s).
const BUDGET: Duration = Duration::from_secs(22);

/// Request headers never forwarded: hop-by-hop headers (RFC 9110 §7.6.1), what the client sets
/// itself, credentials a caller might add, and what the gateway and Lambda add.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",
    "user-agent",
    "authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
    "forwarded",
    "via",
    "x-real-ip",
    CONNECTION_ID,
    RETRIES,
];

/// Request header prefixes never forwarded (the gateway's and ours).
const DROPPED_REQUEST_PREFIXES: &[&str] = &["x-forwarded-", "x-amzn-", "x-amz-", "tributary-"];

/// Response headers never returned: hop-by-hop headers, what the API sets itself, cookies (the
/// provider's session is the connection's, not the caller's).
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "set-cookie",
    "set-cookie2",
    "alt-svc",
    "strict-transport-security",
];

/// Why a path cannot be proxied, for the problem's detail.
fn refuse_path(reason: &str) -> ApiError {
    invalid(
        "path.proxy_path",
        &format!(
            "{reason}. The path is appended to the provider's base URL as sent and must stay under it."
        ),
    )
}

/// Checks the raw (as sent) path under `/v1/proxy`: refused when it could reach outside the
/// provider's base path or origin in any decoding.
pub fn check_path(raw: &str) -> Result<(), ApiError> {
    if raw.is_empty() || raw == "/" {
        return Err(refuse_path("A provider path is required"));
    }
    // What the provider, or anything between, may see after one or two rounds of decoding.
    let once = percent_decode_str(raw).decode_utf8_lossy().into_owned();
    let twice = percent_decode_str(&once).decode_utf8_lossy().into_owned();
    for form in [raw, once.as_str(), twice.as_str()] {
        if form.contains('\\') {
            return Err(refuse_path("Backslashes are not allowed"));
        }
        if form.chars().any(|c| c.is_control()) {
            return Err(refuse_path("Control characters are not allowed"));
        }
        if form.contains("://") || form.starts_with("//") {
            return Err(refuse_path("An absolute URL is not a path"));
        }
        if form.split('/').any(|s| s == "." || s == "..") {
            return Err(refuse_path("Dot segments are not allowed"));
        }
    }
    if raw.split('/').skip(1).any(str::is_empty) {
        return Err(refuse_path("Empty segments are not allowed"));
    }
    // An encoded slash decodes into another segment at the provider.
    if once.matches('/').count() != raw.matches('/').count() {
        return Err(refuse_path("Encoded slashes are not allowed"));
    }
    Ok(())
}

/// The provider URL for `raw_path` and `query` under `base`, refused when it does not stay under
/// the base's origin and path.
pub fn target_url(base: &Url, raw_path: &str, query: Option<&str>) -> Result<Url, ApiError> {
    let mut text = format!("{}{}", base.as_str().trim_end_matches('/'), raw_path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        text.push('?');
        text.push_str(q);
    }
    let url = Url::parse(&text).map_err(|_| refuse_path("The path is not a valid URL path"))?;
    let base_path = base.path().trim_end_matches('/');
    if url.origin() != base.origin()
        || !url.path().starts_with(base_path)
        || url.username() != base.username()
        || url.password() != base.password()
    {
        return Err(refuse_path("The path leaves the provider's base URL"));
    }
    Ok(url)
}

/// Classifies nothing: every answer of the provider goes back to the caller as it is.
struct PassThrough;

impl Classify for PassThrough {
    fn classify(&self, _: StatusCode, _: &HeaderMap, _: &[u8]) -> Option<Failure> {
        None
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        Classifier::default().retry_after(headers)
    }
}

fn retries(headers: &HeaderMap) -> Result<u32, ApiError> {
    match headers.get(RETRIES) {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n <= MAX_RETRIES)
            .ok_or_else(|| {
                invalid(
                    "header.Tributary-Proxy-Retries",
                    &format!("An integer from 0 to {MAX_RETRIES}: how many times a 429, 502, 503 or 504 answer or a connection failure is retried."),
                )
            }),
    }
}

fn forwarded_request_headers(from: &HeaderMap, credential_headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(&n)
            || DROPPED_REQUEST_PREFIXES.iter().any(|p| n.starts_with(p))
            || credential_headers.contains_key(name)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Every form in which the connection's secrets could come back: the credential values, and the
/// header values and tokens the engine sends (a `Basic` header's base64, for one).
fn secrets_of(bound: &Bound<'_>, auth: &tributary_http::client::AuthParts) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = bound
        .credentials
        .values()
        .map(|s| s.expose_secret().as_bytes().to_vec())
        .collect();
    for v in auth.headers.values() {
        let b = v.as_bytes();
        out.push(b.to_vec());
        if let Some(at) = b.iter().position(|c| *c == b' ') {
            out.push(b[at + 1..].to_vec());
        }
    }
    out.extend(
        auth.query
            .iter()
            .map(|(_, v)| v.expose_secret().as_bytes().to_vec()),
    );
    // Too short to be a credential and too likely to be ordinary text.
    out.retain(|s| s.len() >= 8);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `bytes` with every occurrence of each secret replaced by [`REDACTED`].
pub fn redact(bytes: &[u8], secrets: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    for secret in secrets {
        let text = current.as_deref().unwrap_or(bytes);
        if !text.windows(secret.len()).any(|w| w == secret.as_slice()) {
            continue;
        }
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(secret) {
                out.extend_from_slice(REDACTED);
                i += secret.len();
            } else {
                out.push(text[i]);
                i += 1;
            }
        }
        current = Some(out);
    }
    current
}

/// One documented operation per method, each the same [`forward`].
macro_rules! proxy_operations {
    ($($method:ident => $name:ident, $id:literal;)*) => {$(
        /// Sends a request to the connection's provider with its credentials and returns the
        /// provider's answer: its status, body and headers (less hop-by-hop headers and cookies,
        /// any echoed secret redacted). The path is appended to the provider's base URL as sent
        /// and may not leave it. Errors of the proxy itself are problem documents with a `code`;
        /// the provider's own errors come back as the provider sent them.
        #[utoipa::path($method, path = "/v1/proxy/{proxy_path}", operation_id = $id, tag = "Proxy",
            request_body(content = Option<String>, description = "Forwarded as sent (at most 5 MiB)", content_type = "*/*"),
            params(("proxy_path" = String, Path, description = "The provider path under its base URL (Stripe's is `https://api.stripe.com/v1`, so `customers` reads `/v1/customers`), as sent; it may hold `/`. Dot segments, backslashes, encoded slashes and absolute URLs are refused."),
                   ("Connection-Id" = String, Header, description = "The connection (`conn_…`) whose provider and credentials are used", pattern = "^conn_[0-9a-f]{32}$"),
                   ("Tributary-Proxy-Retries" = Option<u32>, Header, description = "0-3 (default 0): retries of a 429, 502, 503 or 504 answer or a connection failure, with backoff and `Retry-After`; ask for them only when the request is safe to repeat")),
            responses((status = 200, description = "The provider's answer with its body and headers", content_type = "*/*"),
                      (status = "default", description = "The provider's answer with any other status (its own 4xx and 5xx included), as it sent it", content_type = "*/*"),
                      (status = 400, description = "A refused path, a missing or malformed `Connection-Id` or `Tributary-Proxy-Retries` (a problem), or the provider's 400", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 403, description = "Requires `proxy` (a problem), or the provider's 403", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 404, description = "No such connection for this tenant (a problem), or the provider's 404", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 409, description = "The connection needs its end user again (`needs_reauth`) or is disabled (a problem), or the provider's 409", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 413, description = "The body is larger than 5 MiB (a problem), or the provider's 413", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 429, description = "The tenant's rate limit (`rate_limited`, a problem), or the provider's 429 as it sent it", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 502, description = "The provider could not be reached, was refused by the egress guard, or answered more than 4 MiB (a problem), or the provider's 502", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*"))),
                      (status = 504, description = "The provider did not answer in time (a problem), or the provider's 504", content((ProblemDoc = "application/problem+json"), (serde_json::Value = "*/*")))))]
        #[allow(clippy::too_many_arguments)]
        pub async fn $name<S: ControlStore>(
            caller: TenantCaller<ProxyCalls>,
            store: Store<S>,
            clock: Clock,
            vault: Secrets,
            engine: Providers,
            settings: Settings,
            request: Request,
        ) -> Result<Response, ApiError> {
            forward(caller, store, clock, vault, engine, settings, request).await
        }
    )*};
}

proxy_operations! {
    get => proxy_get, "proxy_get";
    post => proxy_post, "proxy_post";
    put => proxy_put, "proxy_put";
    patch => proxy_patch, "proxy_patch";
    delete => proxy_delete, "proxy_delete";
}

/// The proxied call, whatever its method, as an operation of the log: the provider's 4xx and 5xx
/// answers are failed operations (with the status), though the caller gets them as sent.
#[allow(clippy::too_many_arguments)]
async fn forward<S: ControlStore>(
    caller: TenantCaller<ProxyCalls>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    request: Request,
) -> Result<Response, ApiError> {
    let name: String = format!(
        "{} {}",
        request.method(),
        request
            .uri()
            .path()
            .strip_prefix("/v1/proxy")
            .unwrap_or_default()
    )
    .chars()
    .take(200)
    .collect();
    let (log, tenant, time) = (store.0.clone(), caller.tenant.clone(), clock.0.clone());
    let retention = settings.operations_retention_days;
    crate::oplog::recorded(
        &*log,
        &*time,
        retention,
        &tenant,
        OperationKind::Proxy,
        |d| d.op.name = Some(name),
        |answer: &Response, d| {
            let status = answer.status().as_u16();
            if status >= 400 {
                d.state = Some(OperationState::Failed);
                d.op.error = Some(OperationError {
                    class: "provider_status".into(),
                    message: format!("the provider answered HTTP {status}"),
                });
            }
        },
        send(caller, store, clock, vault, engine, settings, request),
    )
    .await
}

/// Sends the proxied call.
#[allow(clippy::too_many_arguments)]
async fn send<S: ControlStore>(
    caller: TenantCaller<ProxyCalls>,
    store: Store<S>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let raw_path = parts
        .uri
        .path()
        .strip_prefix("/v1/proxy")
        .unwrap_or_default()
        .to_owned();
    check_path(&raw_path)?;
    let attempts = 1 + retries(&parts.headers)?;
    let connection_id: ConnectionId = parts
        .headers
        .get(CONNECTION_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            invalid(
                "header.Connection-Id",
                "Send `Connection-Id: conn_…`: the connection whose provider and credentials the request uses.",
            )
        })?
        .parse()
        .map_err(|e| invalid("header.Connection-Id", &format!("{e}.")))?;
    let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_REQUEST_BYTES,
        })?;
    let deps = CallDeps {
        store: &*store,
        vault: &vault,
        engine: &engine,
        settings: &settings,
        clock: &clock,
    };
    let usable = usable(&deps, &caller.tenant, &connection_id).await?;
    let spec = usable.spec;
    let bound =
        Bound::new(spec, &usable.engine).map_err(|e| engine_failure(spec, &connection_id, e))?;
    let auth = bound
        .auth_parts()
        .map_err(|e| engine_failure(spec, &connection_id, e))?;
    let mut url = target_url(&bound.base_url, &raw_path, parts.uri.query())?;
    // A caller's parameter named like the credential's would ride along with it: dropped.
    if !auth.query.is_empty() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !auth.query.iter().any(|(name, _)| name == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
    }
    let secrets = secrets_of(&bound, &auth);
    let mut out = OutRequest::new(parts.method.clone(), url);
    out.headers = forwarded_request_headers(&parts.headers, &auth.headers);
    for (k, v) in &spec.headers {
        // The spec's fixed headers (an API version) unless the caller chose its own.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) && !v.contains('{')
            && !out.headers.contains_key(&name)
        {
            out.headers.insert(name, value);
        }
    }
    out.auth = auth;
    out.body =
        (!body.is_empty() || !matches!(parts.method, Method::GET | Method::HEAD)).then_some(body);
    // Retries are the caller's choice: without them, not even a connection failure is repeated.
    out.idempotent = attempts > 1;
    let started = Instant::now();
    let mut attempt = 0;
    let answer = loop {
        attempt += 1;
        let sent = engine.client().send_with(&out, &PassThrough).await;
        let retryable = match &sent {
            Ok(r) => matches!(r.status.as_u16(), 429 | 502 | 503 | 504),
            Err(e) => e.is_retryable(),
        };
        if !retryable || attempt >= attempts {
            break sent;
        }
        let wait = match &sent {
            Ok(r) => PassThrough.retry_after(&r.headers),
            Err(_) => None,
        }
        .unwrap_or_else(|| {
            let ceiling = 500u64 << (attempt - 1).min(3);
            Duration::from_millis(rand::rng().random_range(0..=ceiling))
        });
        if started.elapsed() + wait > BUDGET {
            break sent;
        }
        tokio::time::sleep(wait).await;
    };
    let answer = answer.map_err(|e| engine_failure(spec, &connection_id, e.into()))?;
    tracing::info!(connection_id = %connection_id, provider = %spec.id, method = %parts.method, status = answer.status.as_u16(), attempts = attempt, bytes = answer.body.len(), elapsed_ms = started.elapsed().as_millis() as u64, "proxied");
    let mut response = Response::new(Body::from(match redact(&answer.body, &secrets) {
        Some(clean) => Bytes::from(clean),
        None => answer.body,
    }));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = match redact(value.as_bytes(), &secrets) {
            Some(clean) => match HeaderValue::from_bytes(&clean) {
                Ok(v) => v,
                Err(_) => continue,
            },
            None => value.clone(),
        };
        headers.append(name.clone(), value);
    }
    Ok(response)
}

/// The operation.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![proxy_get, proxy_post, proxy_put, proxy_patch, proxy_delete]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_base_are_refused() {
        for bad in [
            "",
            "/",
            "/../admin",
            "/a/../../b",
            "/a/./b",
            "/%2e%2e/admin",
            "/%2E%2e/admin",
            "/.%2e/admin",
            "/%252e%252e/admin",
            "/a%2fb",
            "/a%2F..%2Fb",
            "/a\\b",
            "/a%5cb",
            "/a%255cb",
            "//evil.example/x",
            "/https://evil.example/x",
            "/http:%2f%2fevil.example",
            "/a%00b",
            "/a%0d%0aHost:%20evil",
            "/a//b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "/v1/customers",
            "/repos/o/r/issues",
            "/a%20b",
            "/files/report.pdf",
            "/x@y",
            "/a..b",
        ] {
            assert!(check_path(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn the_target_stays_under_the_base() {
        let base = Url::parse("https://api.example.com/v2").unwrap();
        assert_eq!(
            target_url(&base, "/customers", Some("limit=1&x=%20"))
                .unwrap()
                .as_str(),
            "https://api.example.com/v2/customers?limit=1&x=%20"
        );
        let root = Url::parse("https://api.example.com/").unwrap();
        assert_eq!(
            target_url(&root, "/v1/x", None).unwrap().as_str(),
            "https://api.example.com/v1/x"
        );
        // What `check_path` lets through still cannot move the origin: an `@` is path text.
        assert_eq!(
            target_url(&base, "/@evil.example", None)
                .unwrap()
                .host_str(),
            Some("api.example.com")
        );
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let secrets = vec![
            b"sk_test_abcdefgh".to_vec(),
            b"Bearer sk_test_abcdefgh".to_vec(),
        ];
        assert_eq!(redact(b"nothing here", &secrets), None);
        assert_eq!(
            redact(
                b"{\"auth\":\"Bearer sk_test_abcdefgh\",\"k\":\"sk_test_abcdefgh\"}",
                &secrets
            )
            .unwrap(),
            b"{\"auth\":\"Bearer [REDACTED]\",\"k\":\"[REDACTED]\"}".to_vec()
        );
    }

    #[test]
    fn callers_cannot_smuggle_credentials_or_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer mine"),
            ("cookie", "a=b"),
            ("connection", "close"),
            ("x-forwarded-for", "1.2.3.4"),
            ("connection-id", "conn_x"),
            ("tributary-proxy-retries", "2"),
            ("notion-version", "2025-09-03"),
            ("accept", "application/json"),
            ("x-custom-key", "mine"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut credential = HeaderMap::new();
        credential.insert("x-custom-key", HeaderValue::from_static("theirs"));
        let out = forwarded_request_headers(&h, &credential);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "notion-version"]);
    }
}
