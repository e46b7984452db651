//! How a response is judged: whether it is an error, of which class, with which message, and how
//! long the server asked us to wait.
//!
//! [`Classifier`] is the default: the status code decides, standard rate-limit headers give the
//! delay, and the message is looked up at the places most APIs put it. A caller that knows more
//! about a server (rules matching a `200` that carries an error, other header names) implements
//! [`Classify`], usually by checking its own rules first and falling back to a [`Classifier`].

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

/// What a failed response means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retry soon (5xx, timeouts, resets).
    Transient,
    /// Retry after the server's delay.
    RateLimited,
    /// Credentials are invalid or expired: refresh or re-authorize.
    Auth,
    /// The destination or the settings are wrong (e.g. refused by the egress policy); retrying
    /// will not help.
    Config,
    /// The resource does not exist.
    NotFound,
    /// Any other definitive failure.
    Permanent,
}

/// A response judged to be an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its class.
    pub class: ErrorClass,
    /// The server's message, if one was found (at most [`MAX_MESSAGE_CHARS`] characters).
    pub message: Option<String>,
    /// The wait before trying again that the classifier knows without a header (a provider's
    /// documented fixed wait), for a rate-limited or transient error. A `Retry-After` or reset
    /// header the server sends comes first.
    pub retry_after: Option<Duration>,
}

/// Judges the responses of one server. The client calls it once per final (non-redirect) response.
pub trait Classify: Sync {
    /// `Some` when the response is an error. `body` is the whole (capped) body.
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure>;

    /// The delay the server asked for, read from the headers of a rate-limited or transient error.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration>;
}

/// The longest message kept from an error body.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// How a reset header expresses time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetFormat {
    /// Seconds until the window resets (e.g. `RateLimit-Reset: 30`).
    #[default]
    Seconds,
    /// Unix time in seconds at which the window resets (GitHub `x-ratelimit-reset`).
    EpochSeconds,
    /// Unix time in milliseconds.
    EpochMillis,
}

/// The headers a server announces rate limits with. The default reads `Retry-After` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Header with a delay in seconds or an HTTP date.
    pub retry_after: String,
    /// Header telling when the window resets, read when `retry_after` is absent.
    pub reset: Option<String>,
    /// Format of the reset header.
    pub reset_format: ResetFormat,
    /// Header with the calls left in the window; `0` turns a `403` into a rate limit.
    pub remaining: Option<String>,
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self {
            retry_after: "Retry-After".into(),
            reset: None,
            reset_format: ResetFormat::default(),
            remaining: None,
        }
    }
}

impl RateLimitHeaders {
    /// The delay the server asked for: the retry-after header (seconds or HTTP date), else the
    /// reset header. Delays are capped at a day; values that do not parse are ignored.
    pub fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let now = OffsetDateTime::now_utc();
        if let Some(v) = header_text(headers, &self.retry_after) {
            if let Ok(secs) = v.parse::<f64>() {
                if secs.is_finite() && secs >= 0.0 {
                    return Some(Duration::from_secs_f64(secs.min(86_400.0)));
                }
            } else if let Some(at) = parse_http_date(v) {
                return Some(positive(at - now));
            }
        }
        let reset = header_text(headers, self.reset.as_deref()?)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)?;
        match self.reset_format {
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

    /// Whether the remaining-calls header says the window is spent.
    pub fn exhausted(&self, headers: &HeaderMap) -> bool {
        self.remaining
            .as_deref()
            .and_then(|h| header_text(headers, h))
            .is_some_and(|v| v == "0")
    }
}

/// The default judgement: any non-2xx status is an error, classed by its code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifier {
    /// The server's rate-limit headers.
    pub rate_limit: RateLimitHeaders,
}

impl Classifier {
    /// The class of a response by its status alone (and the remaining-calls header for a `403`);
    /// `None` for 2xx.
    pub fn class_of(&self, status: StatusCode, headers: &HeaderMap) -> Option<ErrorClass> {
        if status.is_success() {
            return None;
        }
        Some(match status.as_u16() {
            403 if self.rate_limit.exhausted(headers) => ErrorClass::RateLimited,
            429 => ErrorClass::RateLimited,
            401 | 403 => ErrorClass::Auth,
            404 | 410 => ErrorClass::NotFound,
            408 | 425 | 500..=599 => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        })
    }
}

impl Classify for Classifier {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
        let class = self.class_of(status, headers)?;
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|doc| error_message(&doc));
        Some(Failure {
            class,
            message,
            retry_after: None,
        })
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        self.rate_limit.retry_after(headers)
    }
}

/// The message of a JSON error body, from the first of the places most APIs use: `message`,
/// `error.message`, `error_description`, `error`, `errors.0.message`. Strings, numbers and
/// booleans count; it is cut to [`MAX_MESSAGE_CHARS`].
pub fn error_message(doc: &Value) -> Option<String> {
    const COMMON: &[&[&str]] = &[
        &["message"],
        &["error", "message"],
        &["error_description"],
        &["error"],
        &["errors", "0", "message"],
    ];
    COMMON.iter().find_map(|path| {
        let found = path.iter().try_fold(doc, |cur, step| match cur {
            Value::Object(m) => m.get(*step),
            Value::Array(a) => a.get(step.parse::<usize>().ok()?),
            _ => None,
        })?;
        let text = match found {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some(text.chars().take(MAX_MESSAGE_CHARS).collect())
    })
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
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
    use serde_json::json;

    #[test]
    fn retry_after_reads_seconds_dates_and_reset_headers() {
        let hints = RateLimitHeaders {
            reset: Some("X-RateLimit-Reset".into()),
            reset_format: ResetFormat::EpochSeconds,
            ..RateLimitHeaders::default()
        };
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(hints.retry_after(&h), Some(Duration::from_secs(7)));

        let mut h = HeaderMap::new();
        let in_30 = (OffsetDateTime::now_utc().unix_timestamp() + 30).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&in_30).unwrap());
        let d = hints.retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );

        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(hints.retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn absurd_reset_headers_are_ignored_not_overflows() {
        for format in [
            ResetFormat::Seconds,
            ResetFormat::EpochSeconds,
            ResetFormat::EpochMillis,
        ] {
            let hints = RateLimitHeaders {
                reset: Some("X-RateLimit-Reset".into()),
                reset_format: format,
                ..RateLimitHeaders::default()
            };
            for v in ["1e300", "170141183460469231731687303715884105727", "1e19"] {
                let mut h = HeaderMap::new();
                h.insert("x-ratelimit-reset", HeaderValue::from_static(v));
                let got = hints.retry_after(&h);
                assert!(
                    got.is_none_or(|d| d <= Duration::from_secs(86_400)),
                    "{format:?} {v}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn forbidden_with_zero_remaining_is_rate_limited() {
        let cls = Classifier {
            rate_limit: RateLimitHeaders {
                remaining: Some("x-ratelimit-remaining".into()),
                ..RateLimitHeaders::default()
            },
        };
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            cls.classify(StatusCode::FORBIDDEN, &h, b"{}")
                .map(|f| f.class),
            Some(ErrorClass::RateLimited)
        );
        assert_eq!(
            cls.classify(StatusCode::FORBIDDEN, &HeaderMap::new(), b"{}")
                .map(|f| f.class),
            Some(ErrorClass::Auth)
        );
    }

    #[test]
    fn the_default_classes_follow_the_status() {
        let cls = Classifier::default();
        let class =
            |code: u16| cls.class_of(StatusCode::from_u16(code).unwrap(), &HeaderMap::new());
        assert_eq!(class(200), None);
        assert_eq!(class(204), None);
        assert_eq!(class(429), Some(ErrorClass::RateLimited));
        assert_eq!(class(401), Some(ErrorClass::Auth));
        assert_eq!(class(403), Some(ErrorClass::Auth));
        assert_eq!(class(404), Some(ErrorClass::NotFound));
        assert_eq!(class(410), Some(ErrorClass::NotFound));
        for transient in [408, 425, 500, 502, 503, 599] {
            assert_eq!(class(transient), Some(ErrorClass::Transient), "{transient}");
        }
        for permanent in [304, 400, 409, 422] {
            assert_eq!(class(permanent), Some(ErrorClass::Permanent), "{permanent}");
        }
    }

    #[test]
    fn error_messages_are_found_where_most_apis_put_them() {
        assert_eq!(
            error_message(&json!({"message": "bad"})).as_deref(),
            Some("bad")
        );
        assert_eq!(
            error_message(&json!({"error": {"message": "nested"}})).as_deref(),
            Some("nested")
        );
        assert_eq!(
            error_message(&json!({"error": "invalid_grant", "error_description": "expired"}))
                .as_deref(),
            Some("expired")
        );
        assert_eq!(
            error_message(&json!({"errors": [{"message": "first"}]})).as_deref(),
            Some("first")
        );
        assert_eq!(error_message(&json!({"error": 42})).as_deref(), Some("42"));
        assert_eq!(error_message(&json!({"message": ""})), None);
        assert_eq!(error_message(&json!(["message"])), None);
        let long = "x".repeat(1000);
        assert_eq!(
            error_message(&json!({ "message": long })).map(|m| m.chars().count()),
            Some(MAX_MESSAGE_CHARS)
        );
    }
}
