//! The records store and its change feed.
//!
//! Each (connection, model) is one feed, written by one sync at a time (the sync's run lease).
//! A record is stored once, as canonical compact JSON with its hash, under its provider id; a
//! record that did not change is not rewritten. Every change (added, updated, deleted) takes the
//! next position in the feed: a run writes a page's changed records, and only once they are all
//! durable does it commit the page's [`FeedPage`], which lists the changed ids in order and
//! carries the run's position after that page (its checkpoint). Readers walk committed feed pages
//! with strongly consistent reads, so a change is visible only once everything before it is, and
//! a record changed again later is skipped at its old position and returned at its new one:
//! every change after a reader's cursor appears exactly once, whatever syncs write meanwhile.

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::PortError;
use crate::ids::{ConnectionId, SyncRunId, TenantId};
use crate::sync::RunStats;
use crate::time::EpochMillis;

/// One feed: a connection's model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedKey {
    /// Owner.
    pub tenant_id: TenantId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The model.
    pub model: String,
}

/// A place in a feed: the feed page and the entry within it. Positions order the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FeedPosition {
    /// The feed page's sequence number (from 1).
    pub page: u64,
    /// The entry within the page (from 0).
    pub index: u32,
}

/// What the last change of a record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordAction {
    /// First stored (or stored again after a deletion).
    Added,
    /// Its content changed.
    Updated,
    /// No longer at the provider: a tombstone keeps its last content.
    Deleted,
}

impl RecordAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Added => "ADDED",
            RecordAction::Updated => "UPDATED",
            RecordAction::Deleted => "DELETED",
        }
    }
}

/// A stored record with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The provider's id (its primary key).
    pub id: String,
    /// The record as canonical compact JSON (the mapped record when the sync maps).
    pub data: String,
    /// [`content_hash`] of `data`.
    pub hash: String,
    /// Its last change.
    pub action: RecordAction,
    /// When first stored.
    pub first_seen_ms: EpochMillis,
    /// When last changed.
    pub last_modified_ms: EpochMillis,
    /// The run that wrote its last change.
    pub run_id: SyncRunId,
    /// Where its last change is in the feed.
    pub position: FeedPosition,
    /// When it expires (epoch seconds, DynamoDB TTL), from the sync's retention.
    pub expires_at_s: Option<i64>,
}

/// What a writer compares a fetched record with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// [`content_hash`] of the stored content.
    pub hash: String,
    /// Its last change's position.
    pub position: FeedPosition,
    /// Its last change.
    pub action: RecordAction,
    /// When first stored.
    pub first_seen_ms: EpochMillis,
}

/// A committed page of a feed: the ids changed in it, in order, and the writing run's progress
/// after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    /// Its sequence number, one more than the previous page's.
    pub seq: u64,
    /// The run that wrote it.
    pub run_id: SyncRunId,
    /// The changed record ids; entry `i` is position `(seq, i)`.
    pub entries: Vec<String>,
    /// When committed.
    pub committed_at_ms: EpochMillis,
    /// The run's engine position after this page (its checkpoint), if the pass goes on.
    pub run_position: Option<Value>,
    /// The run's counters up to and including this page.
    pub run_stats: RunStats,
    /// When it expires (epoch seconds), from the sync's retention.
    pub expires_at_s: Option<i64>,
}

/// The hash records are compared by: SHA-256 of the canonical JSON, hex, first 32 digits (128
/// bits: collisions are not a practical concern for change detection).
pub fn content_hash(canonical_json: &str) -> String {
    let digest = Sha256::digest(canonical_json.as_bytes());
    hex::encode(&digest[..16])
}

/// A page of a feed's record ids with their last action, and the position after it when more
/// follow.
pub type IdPage = (Vec<(String, RecordAction)>, Option<String>);

/// The records table: records, their metadata and the change feed.
pub trait RecordStore: Send + Sync {
    /// The stored metadata of those of `ids` that exist. Eventually consistent (half the read
    /// cost, which is most of an unchanged pass's): it may miss a write made within about a
    /// second, which is why the writer answers for its own recent writes ([`RecentWrites`]).
    fn record_meta(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, RecordMeta>, PortError>> + Send;

    /// Writes records (whole), in as few requests as the store allows; returns once every one is
    /// durable.
    fn put_records(
        &self,
        feed: &FeedKey,
        records: &[StoredRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Commits a feed page; [`PortError::Conflict`] when a page with its sequence number exists
    /// and is another writer's (the same page again, from an attempt whose answer was lost, is
    /// committed already: `Ok`).
    fn commit_page(
        &self,
        feed: &FeedKey,
        page: &FeedPage,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Writes a page's changed records, then commits the page: the page is committed only once
    /// every one of them is durable, and when the commit is refused ([`PortError::Conflict`]) the
    /// records written stay uncommitted (the next writer of the page writes them again). A store
    /// may write the last of the records and the commit atomically, in fewer requests than
    /// [`RecordStore::put_records`] then [`RecordStore::commit_page`], which is what this does by
    /// default.
    fn write_page(
        &self,
        feed: &FeedKey,
        records: &[StoredRecord],
        page: &FeedPage,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async move {
            if !records.is_empty() {
                self.put_records(feed, records).await?;
            }
            self.commit_page(feed, page).await
        }
    }

    /// The last committed page (strongly consistent).
    fn last_page(
        &self,
        feed: &FeedKey,
    ) -> impl Future<Output = Result<Option<FeedPage>, PortError>> + Send;

    /// Committed pages after `after_seq` (from the first when `None`), in order, at most `limit`
    /// (strongly consistent).
    fn pages_after(
        &self,
        feed: &FeedKey,
        after_seq: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedPage>, PortError>> + Send;

    /// The records with these ids that exist (strongly consistent), in no particular order.
    fn get_records(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<StoredRecord>, PortError>> + Send;

    /// Ids of stored records after `after` (by id), at most `limit`, with their last action:
    /// the walk a completed full pass compares with what it saw.
    fn record_ids(
        &self,
        feed: &FeedKey,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<IdPage, PortError>> + Send;

    /// Keeps ids a full pass of run `run` read and found unchanged (no feed page lists them), as
    /// one more chunk, until `expires_at_s`. Written before the run's position moves past them,
    /// so that a pass that completes knows every record it saw.
    fn put_seen(
        &self,
        feed: &FeedKey,
        run: &SyncRunId,
        ids: &[String],
        expires_at_s: i64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Every id of every chunk [`RecordStore::put_seen`] kept for run `run`.
    fn seen(
        &self,
        feed: &FeedKey,
        run: &SyncRunId,
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;

    /// Removes up to `max_items` of the feed's records, pages and seen chunks; `true` once
    /// nothing is left.
    fn purge(
        &self,
        feed: &FeedKey,
        max_items: usize,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// Which changes a feed read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    /// Only changes made after this time.
    pub modified_after_ms: Option<EpochMillis>,
    /// Only these actions (all when empty).
    pub actions: Vec<RecordAction>,
}

/// One read of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRead {
    /// The changes, in feed order.
    pub records: Vec<StoredRecord>,
    /// Where the next read starts: after the last entry examined (returned or skipped).
    pub next: Option<FeedPosition>,
    /// Whether committed entries remain after `next` (a read stops at `limit` records or after
    /// examining a bounded number of entries).
    pub more: bool,
}

/// Entries one read examines at most (returned or skipped), which bounds its cost.
pub const MAX_EXAMINED_ENTRIES: usize = 2000;
/// Feed pages one store request reads.
const PAGES_PER_REQUEST: usize = 10;

/// Reads up to `limit` changes after `after` (from the beginning when `None`).
///
/// An entry is returned only when it is its record's latest change (the record's stored position
/// is the entry's): an older entry of a record changed since is skipped, and the record is
/// returned at its newer position instead, so nothing appears twice after a cursor. Entries are
/// visible only in committed pages, which are written after their records are durable, so nothing
/// is skipped either.
pub async fn read_feed<R: RecordStore>(
    store: &R,
    feed: &FeedKey,
    after: Option<FeedPosition>,
    limit: usize,
    filter: &FeedFilter,
) -> Result<FeedRead, PortError> {
    let mut out = Vec::new();
    let mut next = after;
    let mut examined = 0usize;
    // The cursor's own page may have entries after it: start there.
    let mut after_seq = after.map(|p| p.page.saturating_sub(1)).filter(|s| *s > 0);
    loop {
        let pages = store
            .pages_after(feed, after_seq, PAGES_PER_REQUEST)
            .await?;
        if pages.is_empty() {
            return Ok(FeedRead {
                records: out,
                next,
                more: false,
            });
        }
        let fetched = pages.len();
        for page in pages {
            after_seq = Some(page.seq);
            // The entries after the cursor in this page.
            let first = match after {
                Some(p) if p.page == page.seq => p.index as usize + 1,
                Some(p) if p.page > page.seq => continue,
                _ => 0,
            };
            let entries: Vec<(u32, &String)> = page
                .entries
                .iter()
                .enumerate()
                .skip(first)
                .map(|(i, id)| (u32::try_from(i).unwrap_or(u32::MAX), id))
                .collect();
            let mut offset = 0;
            while offset < entries.len() {
                let room = (limit - out.len())
                    .min(MAX_EXAMINED_ENTRIES - examined)
                    .max(1);
                let chunk = &entries[offset..(offset + room).min(entries.len())];
                let ids: Vec<String> = chunk.iter().map(|(_, id)| (*id).clone()).collect();
                let found: HashMap<String, StoredRecord> = store
                    .get_records(feed, &ids)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r))
                    .collect();
                for (index, id) in chunk {
                    let position = FeedPosition {
                        page: page.seq,
                        index: *index,
                    };
                    next = Some(position);
                    examined += 1;
                    let Some(record) = found.get(*id) else {
                        continue; // expired, or the sync was deleted
                    };
                    if record.position != position {
                        continue; // changed again since: returned at its newer position
                    }
                    if filter
                        .modified_after_ms
                        .is_some_and(|t| record.last_modified_ms <= t)
                        || (!filter.actions.is_empty() && !filter.actions.contains(&record.action))
                    {
                        continue;
                    }
                    out.push(record.clone());
                }
                offset += chunk.len();
                if out.len() >= limit || examined >= MAX_EXAMINED_ENTRIES {
                    // Possibly more: the next read finds out (an empty read says `more: false`).
                    return Ok(FeedRead {
                        records: out,
                        next,
                        more: true,
                    });
                }
            }
        }
        if fetched < PAGES_PER_REQUEST {
            return Ok(FeedRead {
                records: out,
                next,
                more: false,
            });
        }
    }
}

/// A fetched record, ready to store: its id and canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The provider's id.
    pub id: String,
    /// Canonical compact JSON.
    pub data: String,
}

/// What staging a page found: the records to write and the page's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staged {
    /// The changed ids, in the order of their positions in page `seq`.
    pub entries: Vec<String>,
    /// The ids found unchanged (not rewritten).
    pub unchanged: Vec<String>,
    /// Added, updated and unchanged counts.
    pub stats: RunStats,
    /// The changed records, at their positions in page `seq`: written with the page by
    /// [`RecordStore::write_page`].
    pub writes: Vec<StoredRecord>,
}

/// Records ids a store request reads or writes at most (DynamoDB's `BatchGetItem` limit).
pub const META_BATCH: usize = 100;

/// Stores what changed in one fetched page as feed page `seq` (not yet committed): a record not
/// stored before, or stored as deleted, is `ADDED`; one whose content hash differs is `UPDATED`;
/// one whose change sits in a page that was never committed (a writer that stopped between its
/// records and its commit: `position.page >= seq`) is written again with the same action, so the
/// change reaches the feed; anything else is unchanged and not rewritten. A record that appears
/// twice in the page counts once, with its last content. Writes nothing: the caller writes the
/// changed records and commits the page in one [`RecordStore::write_page`].
pub async fn stage_page<R: RecordStore>(
    store: &R,
    feed: &FeedKey,
    run_id: &SyncRunId,
    seq: u64,
    now_ms: EpochMillis,
    expires_at_s: Option<i64>,
    fetched: Vec<Fetched>,
) -> Result<Staged, PortError> {
    let mut recent = RecentWrites::new(0);
    stage_page_after(
        store,
        feed,
        run_id,
        seq,
        now_ms,
        expires_at_s,
        fetched,
        &mut recent,
    )
    .await
}

/// The metadata of the records a writer wrote last, at most `capacity`: the single writer of a
/// feed knows them better than an eventually consistent read made right after its write.
#[derive(Debug, Default)]
pub struct RecentWrites {
    capacity: usize,
    order: std::collections::VecDeque<String>,
    meta: HashMap<String, RecordMeta>,
}

impl RecentWrites {
    /// Remembers up to `capacity` writes (the oldest forgotten first).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn remember(&mut self, r: &StoredRecord) {
        if self.capacity == 0 {
            return;
        }
        let meta = RecordMeta {
            hash: r.hash.clone(),
            position: r.position,
            action: r.action,
            first_seen_ms: r.first_seen_ms,
        };
        if self.meta.insert(r.id.clone(), meta).is_none() {
            self.order.push_back(r.id.clone());
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.meta.remove(&old);
            }
        }
    }
}

/// [`stage_page`] for a writer that remembers its recent writes: those ids are compared with what
/// it wrote rather than with a read that may not see it yet.
#[allow(clippy::too_many_arguments)]
pub async fn stage_page_after<R: RecordStore>(
    store: &R,
    feed: &FeedKey,
    run_id: &SyncRunId,
    seq: u64,
    now_ms: EpochMillis,
    expires_at_s: Option<i64>,
    fetched: Vec<Fetched>,
    recent: &mut RecentWrites,
) -> Result<Staged, PortError> {
    // Last occurrence wins, first-occurrence order kept.
    let mut order: Vec<String> = Vec::with_capacity(fetched.len());
    let mut latest: HashMap<String, String> = HashMap::with_capacity(fetched.len());
    for f in fetched {
        if latest.insert(f.id.clone(), f.data).is_none() {
            order.push(f.id);
        }
    }
    let mut meta: HashMap<String, RecordMeta> = HashMap::new();
    let unknown: Vec<String> = order
        .iter()
        .filter(|id| match recent.meta.get(*id) {
            Some(m) => {
                meta.insert((*id).clone(), m.clone());
                false
            }
            None => true,
        })
        .cloned()
        .collect();
    for chunk in unknown.chunks(META_BATCH) {
        meta.extend(store.record_meta(feed, chunk).await?);
    }
    let mut staged = Staged::default();
    for id in order {
        let Some(data) = latest.remove(&id) else {
            continue;
        };
        let hash = content_hash(&data);
        let stored = meta.get(&id);
        let (action, first_seen_ms) = match stored {
            None => (RecordAction::Added, now_ms),
            Some(m) if m.action == RecordAction::Deleted => (RecordAction::Added, m.first_seen_ms),
            Some(m) if m.hash != hash => (RecordAction::Updated, m.first_seen_ms),
            Some(m) if m.position.page >= seq => (m.action, m.first_seen_ms),
            Some(_) => {
                staged.stats.unchanged += 1;
                staged.unchanged.push(id);
                continue;
            }
        };
        match action {
            RecordAction::Added => staged.stats.added += 1,
            _ => staged.stats.updated += 1,
        }
        let index = u32::try_from(staged.entries.len()).unwrap_or(u32::MAX);
        staged.entries.push(id.clone());
        let record = StoredRecord {
            id,
            data,
            hash,
            action,
            first_seen_ms,
            last_modified_ms: now_ms,
            run_id: run_id.clone(),
            position: FeedPosition { page: seq, index },
            expires_at_s,
        };
        // Remembered now: a write that fails ends the writer's invocation, and its memory.
        recent.remember(&record);
        staged.writes.push(record);
    }
    Ok(staged)
}

/// Tombstones of `ids` (stored, not yet deleted) as feed page `seq`, keeping their last content:
/// the records to write with the page and its entries (`stats.deleted` counts them). Writes
/// nothing, like [`stage_page`].
pub async fn stage_deletions<R: RecordStore>(
    store: &R,
    feed: &FeedKey,
    run_id: &SyncRunId,
    seq: u64,
    now_ms: EpochMillis,
    expires_at_s: Option<i64>,
    ids: &[String],
) -> Result<Staged, PortError> {
    let mut records = Vec::new();
    for chunk in ids.chunks(META_BATCH) {
        records.extend(store.get_records(feed, chunk).await?);
    }
    records.retain(|r| r.action != RecordAction::Deleted);
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut entries = Vec::with_capacity(records.len());
    for (i, r) in records.iter_mut().enumerate() {
        r.action = RecordAction::Deleted;
        r.last_modified_ms = now_ms;
        r.run_id = run_id.clone();
        r.position = FeedPosition {
            page: seq,
            index: u32::try_from(i).unwrap_or(u32::MAX),
        };
        r.expires_at_s = expires_at_s;
        entries.push(r.id.clone());
    }
    Ok(Staged {
        stats: RunStats {
            deleted: entries.len() as u64,
            ..RunStats::default()
        },
        entries,
        unchanged: Vec::new(),
        writes: records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_page_then_index() {
        let a = FeedPosition { page: 1, index: 9 };
        let b = FeedPosition { page: 2, index: 0 };
        assert!(a < b);
    }

    #[test]
    fn the_hash_depends_on_the_content_only() {
        assert_eq!(content_hash("{\"a\":1}"), content_hash("{\"a\":1}"));
        assert_ne!(content_hash("{\"a\":1}"), content_hash("{\"a\":2}"));
        assert_eq!(content_hash("{}").len(), 32);
    }
}
