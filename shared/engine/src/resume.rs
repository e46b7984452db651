//! Resume points: where a read stands after a page, so that a sync run cut short (the Lambda's
//! time budget, a crash) continues in another process from exactly the next page, re-fetching
//! nothing that was made durable, and ends the pass as an uninterrupted read would.
//!
//! A resume point is stored with the run (in DynamoDB) and must never hold a credential: a next
//! URL loses the auth mode's query parameter (the client adds it again to every request), and a
//! position that still carries a credential's value is not offered at all.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, de};
use url::Url;

/// The format version this build writes and reads.
const VERSION: u32 = 1;

/// Credentials shorter than this are not searched for in positions: they are not keys or tokens,
/// and would match ordinary text.
const MIN_SECRET_LEN: usize = 8;

/// Where a read continues: the next request's position in the stream's pagination, and the state
/// of the pass so far.
///
/// JSON, versioned, unknown fields refused (a point written by a newer build is an error, not a
/// misread):
///
/// ```json
/// {"v":1,"next":{"cursor":"c3"},"cursor":"1700000000","best":"1700000900","page":2,"empty_pages":0,"emitted":4}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumePoint {
    /// Format version.
    #[serde(deserialize_with = "supported_version")]
    pub(crate) v: u32,
    /// The next request.
    pub(crate) next: ResumeNext,
    /// The `{cursor}` the pass started with (incremental streams): a continuation keeps the
    /// pass's lower bound rather than compute it again from a state that may have moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<String>,
    /// The checkpoint the pass has reached (incremental streams): the greater of the saved
    /// checkpoint and the greatest cursor value read so far, in the stream's cursor format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) best: Option<String>,
    /// Pages read before this point; the next page is numbered one more.
    pub(crate) page: u64,
    /// Empty pages in a row just before this point (cursor pagination's `follow_empty_pages`).
    pub(crate) empty_pages: u32,
    /// Records emitted before this point (for `max_records`).
    pub(crate) emitted: u64,
}

/// The next request of a read, in the terms of its pagination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeNext {
    /// The cursor to send (cursor pagination, or a code connector's cursor).
    Cursor(String),
    /// The id of the last record read (last-id pagination).
    LastId(String),
    /// The next offset (offset pagination).
    Offset(u64),
    /// The next page number (page-number pagination).
    Page(u64),
    /// The next page's URL (next-URL pagination), without the auth mode's query parameter.
    Url(String),
}

fn supported_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == VERSION {
        Ok(v)
    } else {
        Err(de::Error::custom(format_args!(
            "resume point version {v} is not supported (this build reads version {VERSION})"
        )))
    }
}

impl ResumePoint {
    /// A point before `next`, after `page` pages and `emitted` records, for a read without an
    /// incremental cursor (a code connector's).
    pub fn new(next: ResumeNext, page: u64, emitted: u64) -> Self {
        Self {
            v: VERSION,
            next,
            cursor: None,
            best: None,
            page,
            empty_pages: 0,
            emitted,
        }
    }

    /// The next request.
    pub fn next(&self) -> &ResumeNext {
        &self.next
    }

    /// Pages read before this point.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Records emitted before this point.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }
}

/// `url` without the query parameters called `name` (decoded names compared); the other
/// parameters keep their exact text, since a provider may sign or compare its next URLs.
pub(crate) fn strip_query_param(url: &mut Url, name: &str) {
    let Some(query) = url.query() else { return };
    let is_named = |pair: &&str| {
        let raw = pair.split_once('=').map_or(*pair, |(k, _)| k);
        url::form_urlencoded::parse(raw.as_bytes())
            .next()
            .is_some_and(|(k, _)| k == name)
    };
    if !query.split('&').any(|p| is_named(&p)) {
        return;
    }
    let kept = query
        .split('&')
        .filter(|p| !is_named(p))
        .collect::<Vec<_>>()
        .join("&");
    url.set_query((!kept.is_empty()).then_some(kept.as_str()));
}

/// Whether the position holds the value of one of `credentials`, as written or percent-decoded.
/// A provider may echo a credential the auth mode does not put in the query (a templated query
/// parameter, a path segment); such a position is not stored.
pub(crate) fn carries_secret(
    next: &ResumeNext,
    credentials: &BTreeMap<String, SecretString>,
) -> bool {
    let text = match next {
        ResumeNext::Cursor(s) | ResumeNext::LastId(s) | ResumeNext::Url(s) => s.as_str(),
        ResumeNext::Offset(_) | ResumeNext::Page(_) => return false,
    };
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    // As a query value: `+` is a space, `%2B` a plus.
    let form = text.replace('+', "%20");
    let form_decoded = percent_encoding::percent_decode_str(&form).decode_utf8_lossy();
    credentials
        .values()
        .map(ExposeSecret::expose_secret)
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .any(|s| text.contains(s) || decoded.contains(s) || form_decoded.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_round_trips_through_json() {
        let p = ResumePoint {
            v: VERSION,
            next: ResumeNext::Cursor("c3".into()),
            cursor: Some("1700000000".into()),
            best: Some("1700000900".into()),
            page: 2,
            empty_pages: 0,
            emitted: 4,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"next":{"cursor":"c3"},"cursor":"1700000000","best":"1700000900","page":2,"empty_pages":0,"emitted":4}"#
        );
        assert_eq!(serde_json::from_str::<ResumePoint>(&json).unwrap(), p);
        let url = ResumePoint::new(ResumeNext::Url("https://a.test/x?p=2".into()), 1, 2);
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            r#"{"v":1,"next":{"url":"https://a.test/x?p=2"},"page":1,"empty_pages":0,"emitted":2}"#
        );
    }

    #[test]
    fn unknown_fields_versions_and_positions_are_refused() {
        let ok = r#"{"v":1,"next":{"offset":4},"page":2,"empty_pages":0,"emitted":4}"#;
        assert!(serde_json::from_str::<ResumePoint>(ok).is_ok());
        for bad in [
            r#"{"v":2,"next":{"offset":4},"page":2,"empty_pages":0,"emitted":4}"#,
            r#"{"next":{"offset":4},"page":2,"empty_pages":0,"emitted":4}"#,
            r#"{"v":1,"next":{"offset":4},"page":2,"empty_pages":0,"emitted":4,"extra":1}"#,
            r#"{"v":1,"next":{"skip":4},"page":2,"empty_pages":0,"emitted":4}"#,
            r#"{"v":1,"next":{"offset":-1},"page":2,"empty_pages":0,"emitted":4}"#,
        ] {
            assert!(serde_json::from_str::<ResumePoint>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<ResumePoint>(
            r#"{"v":2,"next":{"offset":4},"page":2,"empty_pages":0,"emitted":4}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn only_the_named_parameter_is_stripped_and_the_rest_keeps_its_text() {
        let mut u = Url::parse(
            "https://a.test/x?api_key=s3cret&since=2024-01-01T00%3A00%3A00Z&b=1+2&api%5Fkey=x",
        )
        .unwrap();
        strip_query_param(&mut u, "api_key");
        assert_eq!(
            u.as_str(),
            "https://a.test/x?since=2024-01-01T00%3A00%3A00Z&b=1+2"
        );
        let mut only = Url::parse("https://a.test/x?api_key=s3cret").unwrap();
        strip_query_param(&mut only, "api_key");
        assert_eq!(only.as_str(), "https://a.test/x");
        let mut none = Url::parse("https://a.test/x?a=%41").unwrap();
        strip_query_param(&mut none, "api_key");
        assert_eq!(none.as_str(), "https://a.test/x?a=%41");
    }

    #[test]
    fn a_credential_in_a_position_is_found_even_encoded() {
        let creds: BTreeMap<String, SecretString> = [
            ("token".to_owned(), SecretString::from("tok en/secret+1")),
            ("short".to_owned(), SecretString::from("abc")),
        ]
        .into();
        let url = |s: &str| ResumeNext::Url(s.to_owned());
        assert!(carries_secret(
            &url("https://a.test/x?t=tok+en%2Fsecret%2B1"),
            &creds
        ));
        assert!(carries_secret(
            &url("https://a.test/tok%20en%2Fsecret%2B1/x"),
            &creds
        ));
        assert!(carries_secret(
            &ResumeNext::Cursor("tok en/secret+1".into()),
            &creds
        ));
        assert!(!carries_secret(&url("https://a.test/abc?p=2"), &creds));
        assert!(!carries_secret(&ResumeNext::Offset(3), &creds));
    }
}
