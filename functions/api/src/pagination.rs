//! Cursor pagination on the wire: `limit` (default 20, at most 100) and an opaque `cursor`. A cursor
//! only encodes the position within the caller's own list (a sort key); the partition is always
//! derived from the caller's tenant, so a crafted cursor cannot reach another tenant's items.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tributary_core::pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest};

use crate::dto::PageOf;
use crate::problem::ApiError;
use crate::request::{invalid, only_query};

const CURSOR_VERSION: &str = "v1:";

/// Encodes a position as an opaque cursor.
pub fn encode_cursor(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}{after}"))
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

/// Reads `limit` and `cursor`; out-of-range or malformed values are a 400.
pub fn page_request(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
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
    Ok(PageRequest { limit, after })
}

/// The page a list operation reads: `limit` and `cursor`, and no other query parameter.
pub struct PageQuery(pub PageRequest);

impl<St: Send + Sync> FromRequestParts<St> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let q = only_query(parts, &["limit", "cursor"])?;
        page_request(
            q.get("limit").map(String::as_str),
            q.get("cursor").map(String::as_str),
        )
        .map(PageQuery)
    }
}

/// Converts a store page to the wire shape, encoding the cursor.
pub fn page_of<T, U>(page: Page<T>, f: impl FnMut(T) -> U) -> PageOf<U> {
    PageOf {
        data: page.items.into_iter().map(f).collect(),
        next_cursor: page.next_after.as_deref().map(encode_cursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(page_request(None, None).unwrap().limit, 20);
        assert_eq!(page_request(Some("100"), None).unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(page_request(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("KEY#key_0190");
        assert_eq!(
            page_request(None, Some(&c)).unwrap().after.as_deref(),
            Some("KEY#key_0190")
        );
        for bad in ["", "!!!", "dGVzdA", &"a".repeat(2000)] {
            assert!(page_request(None, Some(bad)).is_err(), "{bad:.20}");
        }
    }
}
