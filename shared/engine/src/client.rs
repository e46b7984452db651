//! The engine's side of the guarded client ([`tributary_http`]): responses are judged by the
//! provider spec's error rules and rate-limit headers, and client errors become [`EngineError`]s.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tributary_http::classify::{self, Classifier, Classify, Failure, MAX_MESSAGE_CHARS};
pub use tributary_http::client::{AuthParts, HttpClient, HttpConfig, OutRequest, Response, Stats};
use tributary_http::{HttpError, RateLimitHeaders};

use crate::error::{EngineError, ErrorClass};
use crate::selector::Selector;
use crate::spec::{ErrorRule, ProviderSpec, RateLimitHints, ResetFormat, Stream};

/// Judges the responses of one provider: a stream's own error rules, then its spec's (either may
/// turn a `200` into an error, or give a status another class), then the client's defaults with
/// the spec's rate-limit headers.
#[derive(Debug, Clone)]
pub struct SpecClassifier<'a> {
    first: &'a [ErrorRule],
    rules: &'a [ErrorRule],
    defaults: Classifier,
}

impl<'a> SpecClassifier<'a> {
    /// The classifier of `spec`.
    pub fn new(spec: &'a ProviderSpec) -> Self {
        Self::from_parts(&spec.errors, &spec.rate_limit)
    }

    /// The classifier of a stream's requests: the stream's `errors` before the spec's.
    pub fn for_stream(spec: &'a ProviderSpec, stream: &'a Stream) -> Self {
        Self {
            first: &stream.errors,
            ..Self::new(spec)
        }
    }

    /// A classifier from rules and rate-limit hints.
    pub fn from_parts(rules: &'a [ErrorRule], hints: &RateLimitHints) -> Self {
        Self {
            first: &[],
            rules,
            defaults: Classifier {
                rate_limit: rate_limit_headers(hints),
            },
        }
    }
}

impl Classify for SpecClassifier<'_> {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
        // Parsed once, and only when a rule or an error needs it.
        let mut parsed: Option<Option<Value>> = None;
        let mut json = || {
            parsed
                .get_or_insert_with(|| serde_json::from_slice(body).ok())
                .clone()
        };
        for rule in self.first.iter().chain(self.rules) {
            if rule.status.is_some_and(|s| s != status.as_u16()) {
                continue;
            }
            if let Some(h) = &rule.header {
                let v = headers.get(h.name.as_str()).and_then(|v| v.to_str().ok());
                match (v, &h.equals) {
                    (Some(v), Some(wanted)) if v.trim() == wanted => {}
                    (Some(_), None) => {}
                    _ => continue,
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
            let said = json().and_then(|doc| message_of(&doc, rule.message_path.as_deref()));
            let message = match (&rule.message, said) {
                (Some(fixed), Some(said)) => Some(format!("{fixed} ({said})")),
                (Some(fixed), None) => Some(fixed.clone()),
                (None, said) => said,
            };
            return Some(Failure {
                class: rule.class.into(),
                message,
                retry_after: rule.retry_after.map(Duration::from_secs),
            });
        }
        let class = self.defaults.class_of(status, headers)?;
        Some(Failure {
            class,
            message: json().and_then(|doc| message_of(&doc, None)),
            retry_after: None,
        })
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        self.defaults.retry_after(headers)
    }
}

/// The message at the rule's selector, or at the places most APIs put it.
fn message_of(doc: &Value, path: Option<&str>) -> Option<String> {
    match path {
        None => classify::error_message(doc),
        Some(p) => {
            let s = Selector::parse(p).ok()?.get_text(doc)?;
            Some(s.chars().take(MAX_MESSAGE_CHARS).collect())
        }
    }
}

/// The header names a spec declares, as the client reads them.
pub fn rate_limit_headers(hints: &RateLimitHints) -> RateLimitHeaders {
    RateLimitHeaders {
        retry_after: hints.retry_after_header.clone(),
        reset: hints.reset_header.clone(),
        reset_format: match hints.reset_format {
            ResetFormat::Seconds => classify::ResetFormat::Seconds,
            ResetFormat::EpochSeconds => classify::ResetFormat::EpochSeconds,
            ResetFormat::EpochMillis => classify::ResetFormat::EpochMillis,
        },
        remaining: hints.remaining_header.clone(),
    }
}

/// The delay the provider asked for: `Retry-After` (seconds or HTTP date), else the reset header.
pub fn retry_after(headers: &HeaderMap, hints: &RateLimitHints) -> Option<Duration> {
    rate_limit_headers(hints).retry_after(headers)
}

impl From<ErrorClass> for classify::ErrorClass {
    fn from(c: ErrorClass) -> Self {
        match c {
            ErrorClass::Transient => Self::Transient,
            ErrorClass::RateLimited => Self::RateLimited,
            ErrorClass::Auth => Self::Auth,
            ErrorClass::Config => Self::Config,
            ErrorClass::NotFound => Self::NotFound,
            ErrorClass::Permanent => Self::Permanent,
        }
    }
}

impl From<classify::ErrorClass> for ErrorClass {
    fn from(c: classify::ErrorClass) -> Self {
        match c {
            classify::ErrorClass::Transient => Self::Transient,
            classify::ErrorClass::RateLimited => Self::RateLimited,
            classify::ErrorClass::Auth => Self::Auth,
            classify::ErrorClass::Config => Self::Config,
            classify::ErrorClass::NotFound => Self::NotFound,
            classify::ErrorClass::Permanent => Self::Permanent,
        }
    }
}

impl From<HttpError> for EngineError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Egress(denied) => EngineError::Egress(denied),
            HttpError::Upstream {
                class,
                status,
                message,
                retry_after,
            } => EngineError::Upstream {
                class: class.into(),
                status,
                message,
                retry_after,
            },
            HttpError::Timeout(d) => EngineError::Timeout(d),
            HttpError::Transport(m) => EngineError::Transport(m),
            HttpError::ResponseTooLarge { limit } => EngineError::ResponseTooLarge { limit },
            HttpError::Redirect(m) => EngineError::Redirect(m),
            HttpError::Exhausted { attempts, last } => EngineError::Exhausted {
                attempts,
                last: Box::new((*last).into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn classify(
        cls: &SpecClassifier<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<(ErrorClass, Option<String>)> {
        cls.classify(status, headers, body)
            .map(|f| (f.class.into(), f.message))
    }

    #[test]
    fn rules_override_status_defaults() {
        let hints = RateLimitHints::default();
        let rules: Vec<ErrorRule> = serde_norway::from_str(
            "- {status: 200, body: {path: ok, equals: [false]}, class: auth, message_path: error}\n",
        )
        .unwrap();
        let cls = SpecClassifier::from_parts(&rules, &hints);
        let got = classify(
            &cls,
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"ok":false,"error":"invalid_auth"}"#,
        );
        assert_eq!(got, Some((ErrorClass::Auth, Some("invalid_auth".into()))));
        assert_eq!(
            classify(&cls, StatusCode::OK, &HeaderMap::new(), br#"{"ok":true}"#),
            None
        );
        let got = classify(&cls, StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>");
        assert_eq!(got, Some((ErrorClass::Transient, None)));
    }

    #[test]
    fn stream_rules_run_before_the_providers_and_say_what_to_do() {
        let spec = crate::spec::load(
            &include_str!("../catalog/stripe.yaml").replacen(
                "    records: data\n    primary_key: [id]\n",
                "    records: data\n    primary_key: [id]\n    errors:\n      - {status: 401, class: config, message: Use a secret key., message_path: error.message}\n",
                1,
            ),
            "stripe.yaml",
        )
        .unwrap();
        let stream = spec.stream("customers").unwrap();
        let body = br#"{"error":{"message":"Invalid API Key provided"}}"#;

        let own = SpecClassifier::for_stream(&spec, stream);
        assert_eq!(
            classify(&own, StatusCode::UNAUTHORIZED, &HeaderMap::new(), body),
            Some((
                ErrorClass::Config,
                Some("Use a secret key. (Invalid API Key provided)".into())
            ))
        );
        // Another stream, and actions, keep the provider's rule (401 → auth).
        let other = SpecClassifier::for_stream(&spec, spec.stream("charges").unwrap());
        assert_eq!(
            classify(&other, StatusCode::UNAUTHORIZED, &HeaderMap::new(), body),
            Some((ErrorClass::Auth, Some("Invalid API Key provided".into())))
        );
        assert_eq!(
            classify(
                &SpecClassifier::new(&spec),
                StatusCode::UNAUTHORIZED,
                &HeaderMap::new(),
                b""
            )
            .map(|c| c.0),
            Some(ErrorClass::Auth)
        );
        // Statuses the stream's rules do not name fall through to the provider's and the defaults.
        assert_eq!(
            classify(
                &own,
                StatusCode::TOO_MANY_REQUESTS,
                &HeaderMap::new(),
                b"{}"
            )
            .map(|c| c.0),
            Some(ErrorClass::RateLimited)
        );
    }

    #[test]
    fn forbidden_with_zero_remaining_is_rate_limited() {
        let hints = RateLimitHints {
            remaining_header: Some("x-ratelimit-remaining".into()),
            ..RateLimitHints::default()
        };
        let cls = SpecClassifier::from_parts(&[], &hints);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            classify(&cls, StatusCode::FORBIDDEN, &h, b"{}").map(|c| c.0),
            Some(ErrorClass::RateLimited)
        );
        assert_eq!(
            classify(&cls, StatusCode::FORBIDDEN, &HeaderMap::new(), b"{}").map(|c| c.0),
            Some(ErrorClass::Auth)
        );
    }

    #[test]
    fn the_spec_reset_header_gives_the_delay() {
        let hints = RateLimitHints {
            reset_header: Some("X-RateLimit-Reset".into()),
            reset_format: ResetFormat::Seconds,
            ..RateLimitHints::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(retry_after(&h, &hints), Some(Duration::from_secs(12)));
        let cls = SpecClassifier::from_parts(&[], &hints);
        assert_eq!(cls.retry_after(&h), Some(Duration::from_secs(12)));
    }
}
