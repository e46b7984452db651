//! A hook told of every attempt the client makes (method, URL, status, duration, attempt, error
//! class), for the operations log. One hook per process, installed once; without one, nothing is
//! reported. The hook sees the URL without credentials (credentials in query parameters are added
//! to a copy that is never reported), and never a header or a body.

use std::sync::OnceLock;
use std::time::Duration;

use http::Method;
use url::Url;

use crate::classify::ErrorClass;
use crate::error::HttpError;

/// One attempt, as the hook sees it.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URL asked for (without credentials).
    pub url: &'a Url,
    /// The final status, when a response came.
    pub status: Option<u16>,
    /// From sending to the end of the body (or the failure).
    pub duration: Duration,
    /// 1 for the first attempt, then one more per retry.
    pub attempt: u32,
    /// Why it failed; `None` when it succeeded.
    pub error_class: Option<&'static str>,
}

static HOOK: OnceLock<fn(&Attempt<'_>)> = OnceLock::new();

/// Installs the process's hook; a second call keeps the first hook.
pub fn install(hook: fn(&Attempt<'_>)) {
    let _ = HOOK.set(hook);
}

pub(crate) fn report(attempt: &Attempt<'_>) {
    if let Some(hook) = HOOK.get() {
        hook(attempt);
    }
}

/// A stable name of what went wrong.
pub fn error_class(e: &HttpError) -> &'static str {
    match e {
        HttpError::Egress(_) => "egress",
        HttpError::Upstream { class, .. } => match class {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Auth => "auth",
            ErrorClass::Config => "config",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Permanent => "permanent",
        },
        HttpError::Timeout(_) => "timeout",
        HttpError::Transport(_) => "network",
        HttpError::ResponseTooLarge { .. } => "too_large",
        HttpError::Redirect(_) => "redirect",
        HttpError::Exhausted { last, .. } => error_class(last),
    }
}

/// The status of an error, when a response came.
pub fn error_status(e: &HttpError) -> Option<u16> {
    match e {
        HttpError::Upstream { status, .. } => Some(*status),
        HttpError::Exhausted { last, .. } => error_status(last),
        _ => None,
    }
}
