//! Engine errors, each with a class that tells the caller whether to retry, defer, re-auth or fail.

use std::time::Duration;

use tributary_http::egress::EgressDenied;

pub use crate::spec::ErrorClass;
use crate::template::TemplateError;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec has no such stream or action, or a spec value is unusable at run time.
    #[error("[{spec}] {message}")]
    Spec {
        /// Provider id.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A template could not be rendered.
    #[error("[{spec}] {field}: {source}")]
    Template {
        /// Provider id.
        spec: String,
        /// Field path of the template (e.g. `streams[customers].request.query.limit`).
        field: String,
        /// The cause.
        source: TemplateError,
    },
    /// Connection configuration or credentials are missing or invalid.
    #[error("[{spec}] connection: {message}")]
    Connection {
        /// Provider id.
        spec: String,
        /// What to supply.
        message: String,
    },
    /// Action input does not satisfy the input schema.
    #[error("[{spec}] action {action}: invalid input: {errors:?}")]
    Input {
        /// Provider id.
        spec: String,
        /// Action name.
        action: String,
        /// One message per violation, with its JSON pointer.
        errors: Vec<String>,
    },
    /// The egress guard refused the destination.
    #[error("{0}")]
    Egress(#[from] EgressDenied),
    /// The provider answered with an error, or a rule classified the answer as one.
    #[error("{class:?} error from provider: HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Upstream {
        /// Classification.
        class: ErrorClass,
        /// HTTP status.
        status: u16,
        /// Provider message, when the spec says where it is.
        message: Option<String>,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The request timed out.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("transport error: {0}")]
    Transport(String),
    /// A response body exceeded the cap.
    #[error("response body exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The cap.
        limit: usize,
    },
    /// A record exceeded the cap.
    #[error("a record of stream {stream} is {size} bytes, over the {limit}-byte cap")]
    RecordTooLarge {
        /// Stream name.
        stream: String,
        /// Record size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The response could not be parsed as the spec describes.
    #[error("malformed response from {url}: {message}")]
    Malformed {
        /// Request URL without query.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// Too many redirects, or a redirect without a usable `Location`.
    #[error("redirect error: {0}")]
    Redirect(String),
    /// The retry budget (attempts or time) ran out; the last error is kept.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<EngineError>,
    },
    /// A [`ResumePoint`](crate::resume::ResumePoint) cannot continue this read: it belongs to
    /// another pagination or sync mode (the spec changed), or its next URL is unusable or points to
    /// another origin. Retrying with it cannot succeed; start the pass again without it.
    #[error("resume point refused: {0}")]
    Resume(String),
    /// A code connector failed.
    #[error("connector {kind}: {message}")]
    Connector {
        /// Connector kind.
        kind: String,
        /// Class of the failure.
        class: ErrorClass,
        /// What happened.
        message: String,
    },
}

impl EngineError {
    /// The class: retry (transient), defer (rate limited), re-auth (auth) or fail.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Spec { .. }
            | EngineError::Template { .. }
            | EngineError::Connection { .. } => ErrorClass::Config,
            EngineError::Egress(_) => ErrorClass::Config,
            EngineError::Input { .. } => ErrorClass::Permanent,
            EngineError::Upstream { class, .. } | EngineError::Connector { class, .. } => *class,
            EngineError::Timeout(_) | EngineError::Transport(_) => ErrorClass::Transient,
            EngineError::ResponseTooLarge { .. } | EngineError::RecordTooLarge { .. } => {
                ErrorClass::Permanent
            }
            EngineError::Malformed { .. } | EngineError::Redirect(_) | EngineError::Resume(_) => {
                ErrorClass::Permanent
            }
            EngineError::Exhausted { last, .. } => last.class(),
        }
    }

    /// How long to wait before trying again, when the provider said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EngineError::Upstream { retry_after, .. } => *retry_after,
            EngineError::Exhausted { last, .. } => last.retry_after(),
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
