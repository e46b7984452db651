//! Client errors, each with a class that tells the caller whether to retry, defer, re-auth or fail.

use std::time::Duration;

use crate::classify::ErrorClass;
use crate::egress::EgressDenied;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The egress guard refused the destination.
    #[error("{0}")]
    Egress(#[from] EgressDenied),
    /// The server answered with an error, or a classifier judged the answer to be one.
    #[error("{class:?} error from provider: HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Upstream {
        /// Classification.
        class: ErrorClass,
        /// HTTP status.
        status: u16,
        /// The server's message, when the classifier found one.
        message: Option<String>,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// An attempt timed out.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// Building the client, connecting or sending failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// A response body exceeded [`HttpConfig::max_response_bytes`](crate::HttpConfig).
    #[error("response body exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The cap.
        limit: usize,
    },
    /// Too many redirects, a redirect without a usable `Location`, or one that would forward the
    /// request body to another origin.
    #[error("redirect error: {0}")]
    Redirect(String),
    /// The retry budget (attempts or time) ran out; the last error is kept.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<HttpError>,
    },
}

impl HttpError {
    /// The class: retry (transient), defer (rate limited), re-auth (auth) or fail.
    pub fn class(&self) -> ErrorClass {
        match self {
            HttpError::Egress(_) => ErrorClass::Config,
            HttpError::Upstream { class, .. } => *class,
            HttpError::Timeout(_) | HttpError::Transport(_) => ErrorClass::Transient,
            HttpError::ResponseTooLarge { .. } | HttpError::Redirect(_) => ErrorClass::Permanent,
            HttpError::Exhausted { last, .. } => last.class(),
        }
    }

    /// How long to wait before trying again, when the server said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Upstream { retry_after, .. } => *retry_after,
            HttpError::Exhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Transient | ErrorClass::RateLimited
        )
    }
}
