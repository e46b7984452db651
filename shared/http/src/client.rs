//! The guarded HTTP client: timeouts, retries with full-jitter backoff inside an attempt and time
//! budget, `Retry-After`/reset handling, manual redirects re-checked by the egress guard (with
//! credentials dropped across origins, and a request body never forwarded to another origin),
//! capped bodies, and error classification through [`Classify`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::classify::{Classifier, Classify, ErrorClass, Failure};
use crate::egress::{EgressDenied, EgressPolicy, GuardedResolver};
use crate::error::HttpError;

/// Client settings. The defaults suit a batch worker (5 attempts, 600 s budget); an interactive
/// caller such as the authorizer sets seconds.
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
    /// Redirects followed per attempt.
    pub max_redirects: usize,
    /// Destinations allowed.
    pub egress: EgressPolicy,
    /// Whether every hop, redirects included, must be https, except to hosts the allowlist opens
    /// (see [`EgressPolicy::opens_plain_http`]). Off by default: provider specs may name http
    /// endpoints, which the egress guard still checks.
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

impl OutRequest {
    /// A request without headers, credentials or body; idempotent when `method` is.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            idempotent: method.is_idempotent(),
            method,
            url,
            headers: HeaderMap::new(),
            auth: AuthParts::default(),
            body: None,
        }
    }

    /// `GET url`.
    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }
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

/// The client. Build once and share; it pools connections. The connection pool and TLS
/// configuration are built by the first request, so a function that makes outbound calls on only
/// some paths (the authorizer fetches keys only for JWTs) does not pay for them at cold start.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<OnceLock<Result<reqwest::Client, String>>>,
    cfg: Arc<HttpConfig>,
    policy: Arc<EgressPolicy>,
    stats: Arc<Stats>,
}

impl HttpClient {
    /// A client enforcing `cfg.egress`.
    ///
    /// # Errors
    ///
    /// None today: the connection pool is built by the first request, which reports a failure to
    /// build it as [`HttpError::Transport`]. The signature keeps room for checks of `cfg`.
    pub fn new(cfg: HttpConfig) -> Result<Self, HttpError> {
        Ok(Self {
            inner: Arc::new(OnceLock::new()),
            policy: Arc::new(cfg.egress.clone()),
            cfg: Arc::new(cfg),
            stats: Arc::new(Stats::default()),
        })
    }

    /// The reqwest client, built on first use.
    fn pool(&self) -> Result<&reqwest::Client, HttpError> {
        self.inner
            .get_or_init(|| {
                crate::tls::reqwest_builder()
                    .connect_timeout(self.cfg.connect_timeout)
                    .timeout(self.cfg.request_timeout)
                    // Redirects are followed by hand so each hop is re-checked and credentials stay
                    // home.
                    .redirect(reqwest::redirect::Policy::none())
                    // A proxy would resolve names itself and defeat the pinned, checked address.
                    .no_proxy()
                    .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&self.policy))))
                    .user_agent(self.cfg.user_agent.clone())
                    .build()
                    .map_err(|e| e.without_url().to_string())
            })
            .as_ref()
            .map_err(|e| HttpError::Transport(e.clone()))
    }

    /// Whether the connection pool has been built (by a first request).
    pub fn is_built(&self) -> bool {
        self.inner.get().is_some()
    }

    /// Settings.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sends with retries, judging responses with the default [`Classifier`] (any non-2xx status
    /// is an error; `Retry-After` gives the delay).
    pub async fn send(&self, req: &OutRequest) -> Result<Response, HttpError> {
        self.send_with(req, &Classifier::default()).await
    }

    /// Sends with retries, judging responses with `cls`. Retryable failures are retried while
    /// attempts and the time budget last and the wait is short; otherwise the error is returned
    /// with its class and delay.
    pub async fn send_with<C: Classify + ?Sized>(
        &self,
        req: &OutRequest,
        cls: &C,
    ) -> Result<Response, HttpError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = Instant::now();
            let outcome = self.send_once(req, cls).await;
            crate::observe::report(&crate::observe::Attempt {
                method: &req.method,
                url: &req.url,
                status: match &outcome {
                    Ok(r) => Some(r.status.as_u16()),
                    Err(e) => crate::observe::error_status(e),
                },
                duration: sent.elapsed(),
                attempt,
                error_class: outcome.as_ref().err().map(crate::observe::error_class),
            });
            let err = match outcome {
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
                return Err(HttpError::Exhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            if wait > self.cfg.max_inline_wait {
                return Err(err);
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
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

    async fn send_once<C: Classify + ?Sized>(
        &self,
        req: &OutRequest,
        cls: &C,
    ) -> Result<Response, HttpError> {
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
                .pool()?
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
                    .map_err(|_| HttpError::Redirect("Location is not valid text".into()))?;
                let next = url
                    .join(loc)
                    .map_err(|e| HttpError::Redirect(format!("bad Location: {e}")))?;
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
                    return Err(HttpError::Redirect(format!(
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
            if let Some(Failure {
                class,
                message,
                retry_after: known_wait,
            }) = cls.classify(status, &headers, &bytes)
            {
                let retry_after = match class {
                    ErrorClass::RateLimited | ErrorClass::Transient => {
                        cls.retry_after(&headers).or(known_wait)
                    }
                    _ => None,
                };
                return Err(HttpError::Upstream {
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
        Err(HttpError::Redirect(format!(
            "more than {} redirects",
            self.cfg.max_redirects
        )))
    }

    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Bytes, HttpError> {
        let limit = self.cfg.max_response_bytes;
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(HttpError::ResponseTooLarge { limit });
        }
        let mut buf = Vec::with_capacity(resp.content_length().map_or(8192, |l| l as usize));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            if buf.len() + chunk.len() > limit {
                return Err(HttpError::ResponseTooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(Bytes::from(buf))
    }

    fn transport_error(&self, e: reqwest::Error) -> HttpError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(denied) = s.downcast_ref::<EgressDenied>() {
                return HttpError::Egress(denied.clone());
            }
            source = s.source();
        }
        if e.is_timeout() {
            return HttpError::Timeout(self.cfg.request_timeout);
        }
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut s = std::error::Error::source(&e);
        while let Some(inner) = s {
            msg.push_str(": ");
            msg.push_str(&inner.to_string());
            s = inner.source();
        }
        HttpError::Transport(msg)
    }
}
