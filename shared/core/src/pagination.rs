//! Pagination as the ports see it: a bounded page size and a position within the caller's own list
//! (a sort key). The partition is always derived from the caller's tenant, so no position can reach
//! another tenant's items. How the API reads `limit` and encodes positions as opaque cursors is the
//! API's business (`functions/api/src/pagination.rs`).

/// The page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page size.
pub const MAX_LIMIT: u32 = 100;

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
