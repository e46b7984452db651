//! Pagination strategies and their stop conditions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a pagination parameter is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamLocation {
    /// Query string.
    #[default]
    Query,
    /// Top-level field of the JSON body (e.g. Notion `start_cursor`).
    Body,
}

/// The page-size parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageSize {
    /// Parameter name (e.g. `limit`, `per_page`, `page[size]`).
    pub param: String,
    /// Records per page requested.
    pub value: u32,
    /// Where it is sent.
    #[serde(rename = "in", default)]
    pub location: ParamLocation,
}

/// Stop when the value at `path` in the response body equals `equals`
/// (e.g. Jira `isLast: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopWhen {
    /// Selector into the body.
    pub path: String,
    /// The value that means "last page".
    pub equals: serde_json::Value,
}

/// How a stream moves from page to page. Every strategy also stops on an empty page (a cursor
/// may follow a few: `follow_empty_pages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pagination {
    /// A single request.
    None,
    /// An opaque cursor read from the body and sent back as a parameter.
    Cursor(CursorPagination),
    /// A full next-page URL from the body or the `Link` header.
    NextUrl(NextUrlPagination),
    /// Offset and limit.
    Offset(OffsetPagination),
    /// Page number.
    PageNumber(PageNumberPagination),
    /// The id of the last record sent back (Stripe `starting_after` + `has_more`).
    LastId(LastIdPagination),
}

/// Cursor from a body path. Stops when the cursor is missing, null or empty, when
/// `has_more_path` is not `true`, or when `stop_when` matches; and on an empty page, unless
/// `follow_empty_pages` says to follow an empty page's cursor (Slack: a filtered list may answer
/// no results with a `next_cursor`, and the documented rule is to page on until the cursor is
/// empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorPagination {
    /// Selector of the next cursor in the body (e.g. `response_metadata.next_cursor`).
    pub cursor_path: String,
    /// Parameter that carries the cursor (e.g. `cursor`, `after`, `start_cursor`).
    pub param: String,
    /// Where the cursor parameter is sent.
    #[serde(rename = "in", default)]
    pub location: ParamLocation,
    /// Page size parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<PageSize>,
    /// Selector of a boolean that is `true` while more pages exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more_path: Option<String>,
    /// Explicit last-page condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_when: Option<StopWhen>,
    /// Empty pages in a row whose cursor is followed (default 0: an empty page ends the read).
    /// One more empty page with a cursor fails the read rather than end it short.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub follow_empty_pages: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a next URL comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum NextUrlSource {
    /// The RFC 8288 `Link` header entry with `rel="next"` (GitHub, Shopify).
    LinkHeader,
    /// A body selector (e.g. Salesforce `nextRecordsUrl`, Zendesk `next_page`).
    Body {
        /// Selector of the URL; absolute or relative to the base URL's origin.
        path: String,
    },
}

/// Next URL pagination. The next URL already carries the query, so the stream's own query
/// parameters are sent on the first request only. Stops when there is no next URL, or when
/// `stop_when` matches although there is one (Zendesk's incremental export sends an `after_url`
/// with `end_of_stream: true`; following it costs a request of a tight rate limit for nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextUrlPagination {
    /// Where the URL comes from.
    pub source: NextUrlSource,
    /// Page size parameter (first request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<PageSize>,
    /// Explicit last-page condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_when: Option<StopWhen>,
}

/// Offset and limit. Stops on a short page, when `offset + limit >= total`,
/// when `has_more_path` is not `true`, or when `stop_when` matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetPagination {
    /// Offset parameter (e.g. `offset`, `startAt`, `start`).
    pub offset_param: String,
    /// Limit parameter and page size.
    pub page_size: PageSize,
    /// First offset (default 0).
    #[serde(default)]
    pub start: u64,
    /// Selector of the total number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_path: Option<String>,
    /// Selector of a boolean that is `true` while more pages exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more_path: Option<String>,
    /// Explicit last-page condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_when: Option<StopWhen>,
}

/// Page number. Stops on a short or empty page, when the page number reaches
/// `total_pages_path`, when `has_more_path` is not `true`, or when `stop_when` matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageNumberPagination {
    /// Page parameter (e.g. `page`).
    pub page_param: String,
    /// First page number (default 1).
    #[serde(default = "d_one")]
    pub start: u64,
    /// Page size parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<PageSize>,
    /// Selector of the total number of pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages_path: Option<String>,
    /// Selector of a boolean that is `true` while more pages exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more_path: Option<String>,
    /// Explicit last-page condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_when: Option<StopWhen>,
}

fn d_one() -> u64 {
    1
}

/// Last id. Sends the id of the last record of the page as `param`;
/// stops when `has_more_path` is not `true` or the page is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LastIdPagination {
    /// Parameter (e.g. `starting_after`).
    pub param: String,
    /// Selector of the id within a record (default `id`).
    #[serde(default = "d_id")]
    pub id_path: String,
    /// Selector of the "more pages" boolean (e.g. `has_more`).
    pub has_more_path: String,
    /// Page size parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<PageSize>,
}

fn d_id() -> String {
    "id".into()
}
