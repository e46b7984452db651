//! The guarded HTTP client: timeouts, retries with full-jitter backoff inside an attempt and time
//! budget, `Retry-After`/reset handling, manual redirects re-checked by the egress guard (with
//! credentials dropped across origins, and a request body never forwarded to another origin),
//! capped bodies, and error classification.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::egress::{EgressDenied, EgressPolicy, GuardedResolver};
use crate::error::{EngineError, ErrorClass};
use crate::selector::Selector;
use crate::spec::{ErrorRule, RateLimitHints, ResetFormat};

/// Client settings. Defaults follow DESIGN-NOTES (5 attempts, 600 s budget).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Total time for one attempt, body included.
    pub request_timeout: Duration,
    /// Attempts per request, first included.
    pub max_attempts: u32,
    /// Wall-clock budget for one request across its attempts.
    pub time_budget: Duration,
    /// First backoff ceiling; doubles each attempt.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_max: Duration,
    /// Longest wait spent sleeping; a provider asking for more gets the error back with its
    /// `retry_after`, so a Lambda can defer through SQS instead of sleeping.
    pub max_inline_wait: Duration,
    /// Cap on one (decompressed) response body.
    pub max_response_bytes: usize,
    /// Cap on one record.
    pub max_record_bytes: usize,
    /// Redirects followed per attempt.
    pub max_redirects: usize,
    /// Destinations allowed.
    pub egress: EgressPolicy,
    /// Whether every hop, redirects included, must be https, except to hosts the allowlist opens
    /// (see [`EgressPolicy::opens_plain_http`]). Off by default: provider specs may name http
    /// endpoints, and the egress guard still applies.
    pub require_https: bool,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_attempts: 5,
            time_budget: Duration::from_secs(600),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_inline_wait: Duration::from_secs(60),
            max_response_bytes: 32 * 1024 * 1024,
            max_record_bytes: 2 * 1024 * 1024,
            max_redirects: 5,
            egress: EgressPolicy::public_only(),
            require_https: false,
            user_agent: concat!("tributary/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Counters shared by everything using one client.
#[derive(Debug, Default)]
pub struct Stats {
    /// Attempts sent (each retry and redirect hop counts).
    pub requests: AtomicU64,
    /// Retries after a retryable failure.
    pub retries: AtomicU64,
    /// Response body bytes read.
    pub bytes: AtomicU64,
}

/// Credentials attached to a request; sent only to the request's original origin.
#[derive(Default)]
pub struct AuthParts {
    /// Headers such as `Authorization` (marked sensitive).
    pub headers: HeaderMap,
    /// Query parameters such as an API key.
    pub query: Vec<(String, SecretString)>,
}

impl std::fmt::Debug for AuthParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthParts")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "query",
                &self.query.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A fully rendered request.
#[derive(Debug)]
pub struct OutRequest {
    /// Method.
    pub method: Method,
    /// URL without credentials.
    pub url: Url,
    /// Headers without credentials.
    pub headers: HeaderMap,
    /// Credentials.
    pub auth: AuthParts,
    /// Body.
    pub body: Option<Bytes>,
    /// Whether repeating the request is harmless. Non-idempotent requests are retried only when
    /// the provider said it did not process them (rate limited).
    pub idempotent: bool,
}

/// A successful response with its body read.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Final URL (after redirects), without credentials.
    pub url: Url,
}

/// How responses of one provider are classified.
#[derive(Debug, Clone, Copy)]
pub struct Classifier<'a> {
    /// Provider rules, checked first.
    pub rules: &'a [ErrorRule],
    /// Rate-limit headers.
    pub hints: &'a RateLimitHints,
}

/// The client. Build once and share; it pools connections.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    cfg: Arc<HttpConfig>,
    policy: Arc<EgressPolicy>,
    stats: Arc<Stats>,
}

impl HttpClient {
    /// Builds a client enforcing `cfg.egress`.
    pub fn new(cfg: HttpConfig) -> Result<Self, EngineError> {
        let policy = Arc::new(cfg.egress.clone());
        let inner = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            // Redirects are followed by hand so each hop is re-checked and credentials stay home.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself and defeat the pinned, checked address.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&policy))))
            .user_agent(cfg.user_agent.clone())
            .build()
            .map_err(|e| EngineError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            inner,
            cfg: Arc::new(cfg),
            policy,
            stats: Arc::new(Stats::default()),
        })
    }

    /// Settings.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sends with retries. Retryable failures are retried while attempts and the time budget
    /// last and the wait is short; otherwise the error is returned with its class and delay.
    pub async fn send(
        &self,
        req: &OutRequest,
        cls: Classifier<'_>,
    ) -> Result<Response, EngineError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match self.send_once(req, cls).await {
                Ok(r) => return Ok(r),
                Err(e)
                    if e.class() == ErrorClass::RateLimited
                        || (req.idempotent && e.is_retryable()) =>
                {
                    e
                }
                Err(e) => return Err(e),
            };
            let wait = err.retry_after().unwrap_or_else(|| self.backoff(attempt));
            if attempt >= self.cfg.max_attempts || started.elapsed() + wait > self.cfg.time_budget {
                return Err(EngineError::Exhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            if wait > self.cfg.max_inline_wait {
                return Err(err);
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    /// Full jitter: uniform in `[0, min(max, base · 2^(attempt-1))]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let ceiling = exp.min(self.cfg.backoff_max);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    async fn send_once(
        &self,
        req: &OutRequest,
        cls: Classifier<'_>,
    ) -> Result<Response, EngineError> {
        let origin = req.url.origin();
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        let mut with_credentials = true;
        for _hop in 0..=self.cfg.max_redirects {
            self.policy.check_url(&url)?;
            if self.cfg.require_https {
                self.policy.check_https(&url)?;
            }
            let mut target = url.clone();
            if with_credentials && !req.auth.query.is_empty() {
                let mut pairs = target.query_pairs_mut();
                for (k, v) in &req.auth.query {
                    pairs.append_pair(k, v.expose_secret());
                }
            }
            let mut rb = self
                .inner
                .request(method.clone(), target)
                .headers(req.headers.clone());
            if with_credentials {
                rb = rb.headers(req.auth.headers.clone());
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let resp = rb.send().await.map_err(|e| self.transport_error(e))?;
            let status = resp.status();
            if status.is_redirection()
                && let Some(loc) = resp.headers().get(http::header::LOCATION)
            {
                let loc = loc
                    .to_str()
                    .map_err(|_| EngineError::Redirect("Location is not valid text".into()))?;
                let next = url
                    .join(loc)
                    .map_err(|e| EngineError::Redirect(format!("bad Location: {e}")))?;
                if status == StatusCode::SEE_OTHER
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                }
                let same_origin = next.origin() == origin;
                // A body kept across the hop (307/308, or 301/302 of a method other than POST)
                // may carry data meant for this provider only; refuse rather than forward it.
                if !same_origin && body.as_ref().is_some_and(|b| !b.is_empty()) {
                    return Err(EngineError::Redirect(format!(
                        "HTTP {} to another origin ({}) refused: it would forward the request body",
                        status.as_u16(),
                        next.host_str().unwrap_or_default()
                    )));
                }
                // Never forward credentials to another origin.
                with_credentials &= same_origin;
                url = next;
                continue;
            }
            let headers = resp.headers().clone();
            let bytes = self.read_capped(resp).await?;
            if let Some((class, message)) = classify(status, &headers, &bytes, cls) {
                let retry_after = match class {
                    ErrorClass::RateLimited | ErrorClass::Transient => {
                        retry_after(&headers, cls.hints)
                    }
                    _ => None,
                };
                return Err(EngineError::Upstream {
                    class,
                    status: status.as_u16(),
                    message,
                    retry_after,
                });
            }
            let mut clean = url;
            clean.set_fragment(None);
            return Ok(Response {
                status,
                headers,
                body: bytes,
                url: clean,
            });
        }
        Err(EngineError::Redirect(format!(
            "more than {} redirects",
            self.cfg.max_redirects
        )))
    }

    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Bytes, EngineError> {
        let limit = self.cfg.max_response_bytes;
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(EngineError::ResponseTooLarge { limit });
        }
        let mut buf = Vec::with_capacity(resp.content_length().map_or(8192, |l| l as usize));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if buf.len() + chunk.len() > limit {
                return Err(EngineError::ResponseTooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(Bytes::from(buf))
    }

    fn transport_error(&self, e: reqwest::Error) -> EngineError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(denied) = s.downcast_ref::<EgressDenied>() {
                return EngineError::Egress(denied.clone());
            }
            source = s.source();
        }
        if e.is_timeout() {
            return EngineError::Timeout(self.cfg.request_timeout);
        }
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut s = std::error::Error::source(&e);
        while let Some(inner) = s {
            msg.push_str(": ");
            msg.push_str(&inner.to_string());
            s = inner.source();
        }
        EngineError::Transport(msg)
    }
}

/// `Some((class, message))` when the response is an error.
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    cls: Classifier<'_>,
) -> Option<(ErrorClass, Option<String>)> {
    let mut parsed: Option<Option<Value>> = None;
    let mut json = || {
        parsed
            .get_or_insert_with(|| serde_json::from_slice(body).ok())
            .clone()
    };
    for rule in cls.rules {
        if rule.status.is_some_and(|s| s != status.as_u16()) {
            continue;
        }
        if let Some(h) = &rule.header {
            let v = headers.get(h.name.as_str()).and_then(|v| v.to_str().ok());
            if v.map(str::trim) != Some(h.equals.as_str()) {
                continue;
            }
        }
        if let Some(b) = &rule.body {
            let Ok(sel) = Selector::parse(&b.path) else {
                continue;
            };
            let Some(doc) = json() else { continue };
            match sel.get(&doc) {
                Some(v) if b.equals.contains(v) => {}
                _ => continue,
            }
        }
        let message = json().and_then(|doc| message_of(&doc, rule.message_path.as_deref()));
        return Some((rule.class, message));
    }
    if status.is_success() {
        return None;
    }
    let remaining_zero = cls
        .hints
        .remaining_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "0");
    let class = match status.as_u16() {
        403 | 429 if remaining_zero => ErrorClass::RateLimited,
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        404 | 410 => ErrorClass::NotFound,
        408 | 425 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    Some((class, json().and_then(|doc| message_of(&doc, None))))
}

fn message_of(doc: &Value, path: Option<&str>) -> Option<String> {
    const COMMON: &[&str] = &[
        "message",
        "error.message",
        "error_description",
        "error",
        "errors.0.message",
    ];
    let paths: Vec<&str> = path.map_or_else(|| COMMON.to_vec(), |p| vec![p]);
    paths.into_iter().find_map(|p| {
        let s = Selector::parse(p).ok()?.get_text(doc)?;
        Some(s.chars().take(300).collect())
    })
}

/// The delay the provider asked for: `Retry-After` (seconds or HTTP date), else the reset header.
pub fn retry_after(headers: &HeaderMap, hints: &RateLimitHints) -> Option<Duration> {
    let now = OffsetDateTime::now_utc();
    if let Some(v) = headers
        .get(hints.retry_after_header.as_str())
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs.min(86_400.0)));
            }
        } else if let Some(at) = parse_http_date(v) {
            return Some(positive(at - now));
        }
    }
    let reset = hints
        .reset_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)?;
    match hints.reset_format {
        ResetFormat::Seconds => Some(Duration::from_secs_f64(reset.min(86_400.0))),
        ResetFormat::EpochSeconds => {
            let at = OffsetDateTime::from_unix_timestamp(reset as i64).ok()?;
            Some(positive(at - now))
        }
        ResetFormat::EpochMillis => {
            // The float-to-int cast saturates; the product may not fit.
            let nanos = (reset as i128).checked_mul(1_000_000)?;
            let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
            Some(positive(at - now))
        }
    }
}

fn positive(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

fn parse_http_date(v: &str) -> Option<OffsetDateTime> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(v, fmt)
        .ok()
        .map(|p| p.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_dates_and_reset_headers() {
        let hints = RateLimitHints {
            reset_header: Some("X-RateLimit-Reset".into()),
            reset_format: ResetFormat::EpochSeconds,
            ..RateLimitHints::default()
        };
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, &hints), Some(Duration::from_secs(7)));

        let mut h = HeaderMap::new();
        let in_30 = (OffsetDateTime::now_utc().unix_timestamp() + 30).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&in_30).unwrap());
        let d = retry_after(&h, &hints).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );

        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h, &hints), Some(Duration::ZERO));
    }

    #[test]
    fn absurd_reset_headers_are_ignored_not_overflows() {
        for format in [
            ResetFormat::Seconds,
            ResetFormat::EpochSeconds,
            ResetFormat::EpochMillis,
        ] {
            let hints = RateLimitHints {
                reset_header: Some("X-RateLimit-Reset".into()),
                reset_format: format,
                ..RateLimitHints::default()
            };
            for v in ["1e300", "170141183460469231731687303715884105727", "1e19"] {
                let mut h = HeaderMap::new();
                h.insert("x-ratelimit-reset", HeaderValue::from_static(v));
                let got = retry_after(&h, &hints);
                assert!(
                    got.is_none_or(|d| d <= Duration::from_secs(86_400)),
                    "{format:?} {v}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn rules_override_status_defaults() {
        let hints = RateLimitHints::default();
        let rules: Vec<ErrorRule> = serde_norway::from_str(
            "- {status: 200, body: {path: ok, equals: [false]}, class: auth, message_path: error}\n",
        )
        .unwrap();
        let cls = Classifier {
            rules: &rules,
            hints: &hints,
        };
        let got = classify(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"ok":false,"error":"invalid_auth"}"#,
            cls,
        );
        assert_eq!(got, Some((ErrorClass::Auth, Some("invalid_auth".into()))));
        assert_eq!(
            classify(StatusCode::OK, &HeaderMap::new(), br#"{"ok":true}"#, cls),
            None
        );
        let got = classify(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>", cls);
        assert_eq!(got, Some((ErrorClass::Transient, None)));
    }

    #[test]
    fn forbidden_with_zero_remaining_is_rate_limited() {
        let hints = RateLimitHints {
            remaining_header: Some("x-ratelimit-remaining".into()),
            ..RateLimitHints::default()
        };
        let cls = Classifier {
            rules: &[],
            hints: &hints,
        };
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &h, b"{}", cls).map(|c| c.0),
            Some(ErrorClass::RateLimited)
        );
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &HeaderMap::new(), b"{}", cls).map(|c| c.0),
            Some(ErrorClass::Auth)
        );
    }
}
