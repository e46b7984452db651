//! Cursor pagination: `limit` (default 20, at most 100) and an opaque `cursor`. A cursor only encodes
//! the position within the caller's own list (a sort key); the partition is always derived from the
//! caller's tenant, so a crafted cursor cannot reach another tenant's items.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::problem::{ApiError, FieldError};

/// The page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page size.
pub const MAX_LIMIT: u32 = 100;

const CURSOR_VERSION: &str = "v1:";

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most.
    pub limit: u32,
    /// Start after this position (a sort key), if any.
    pub after: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The position after the last item when more may follow.
    pub next_after: Option<String>,
}

/// Encodes a position as an opaque cursor.
pub fn encode_cursor(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}{after}"))
}

fn invalid(pointer: &str, detail: &str) -> ApiError {
    ApiError::Validation {
        detail: detail.to_owned(),
        errors: vec![FieldError {
            pointer: pointer.to_owned(),
            detail: detail.to_owned(),
        }],
    }
}

impl PageRequest {
    /// Reads `limit` and `cursor` query parameters; out-of-range or malformed values are a 400.
    pub fn from_query(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "query.limit",
                        &format!("`limit` must be an integer from 1 to {MAX_LIMIT}."),
                    ));
                }
            },
        };
        let after = match cursor {
            None => None,
            Some(raw) => Some(decode_cursor(raw).ok_or_else(|| {
                invalid(
                    "query.cursor",
                    "`cursor` is not a cursor this API issued. Pass `next_cursor` from the previous page unchanged.",
                )
            })?),
        };
        Ok(Self { limit, after })
    }
}

fn decode_cursor(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let after = text.strip_prefix(CURSOR_VERSION)?;
    (!after.is_empty() && after.chars().all(|c| !c.is_control())).then(|| after.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(PageRequest::from_query(None, None).unwrap().limit, 20);
        assert_eq!(
            PageRequest::from_query(Some("100"), None).unwrap().limit,
            100
        );
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(PageRequest::from_query(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("KEY#key_0190");
        assert_eq!(
            PageRequest::from_query(None, Some(&c))
                .unwrap()
                .after
                .as_deref(),
            Some("KEY#key_0190")
        );
        for bad in ["", "!!!", "dGVzdA", &"a".repeat(2000)] {
            assert!(
                PageRequest::from_query(None, Some(bad)).is_err(),
                "{bad:.20}"
            );
        }
    }
}
