//! [`MemStore`]'s syncs, runs, sync events and records table, with the DynamoDB adapter's
//! semantics where tests rely on them: a (connection, model) claimed by one sync, version-checked
//! updates, a run lease, the due index overlaid by reschedules, the index of runs in progress
//! (partitioned by the adapter's hash of the run id), strongly consistent feed reads, a
//! conditional page commit, and purges in bounded batches.

use std::collections::{BTreeMap, HashMap};

use tributary_core::PortError;
use tributary_core::ids::{SyncId, SyncRunId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{ACTIVE_RUN_SHARDS, DueSync, IdleRun, SyncSchedule, SyncStore};
use tributary_core::records::{
    FeedKey, FeedPage, IdPage, RecordAction, RecordMeta, RecordStore, StoredRecord,
};
use tributary_core::sync::{SyncConfig, SyncEvent, SyncFilter, SyncRun, SyncStatus};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::EpochMillis;

use super::{Access, MemStore, conflict, page};

const SYNC_SK: &str = "SYNC#";
const RUN_SK: &str = "RUN#";
const SYNC_EVENT_SK: &str = "SYNCEVENT#";

/// The items of syncs and records.
#[derive(Debug, Default)]
pub(super) struct SyncTables {
    syncs: BTreeMap<String, SyncConfig>,
    /// (tenant, connection, model) → the sync that writes it.
    claims: HashMap<(String, String, String), SyncId>,
    /// Runs by `<sync id>#<run id>`.
    runs: BTreeMap<String, SyncRun>,
    /// Run leases by sync id: (holder, until).
    leases: HashMap<String, (String, EpochMillis)>,
    /// Next-run times the monitor moved, by sync id (the adapter's index attribute), replaced by
    /// the sync's own on its next write.
    rescheduled: HashMap<String, EpochMillis>,
    events: BTreeMap<String, SyncEvent>,
    /// Records by feed, then id.
    records: HashMap<String, BTreeMap<String, StoredRecord>>,
    /// Feed pages by feed, then sequence number.
    pages: HashMap<String, BTreeMap<u64, FeedPage>>,
    /// Seen chunks by feed, then run, in the order written.
    seen: HashMap<String, BTreeMap<String, Vec<Vec<String>>>>,
}

fn feed_key(feed: &FeedKey) -> String {
    format!("{}#{}#{}", feed.tenant_id, feed.connection_id, feed.model)
}

fn claim(s: &SyncConfig) -> (String, String, String) {
    (
        s.tenant_id.to_string(),
        s.connection_id.to_string(),
        s.model.clone(),
    )
}

impl SyncTables {
    /// Every sync event.
    pub(super) fn events(&self) -> impl Iterator<Item = &SyncEvent> {
        self.events.values()
    }

    fn sync(&self, tenant: &TenantId, id: &SyncId) -> Option<SyncConfig> {
        self.syncs
            .get(id.as_str())
            .filter(|s| s.tenant_id == *tenant)
            .map(|s| self.overlaid(s))
    }

    fn overlaid(&self, s: &SyncConfig) -> SyncConfig {
        let mut s = s.clone();
        if let Some(next) = self.rescheduled.get(s.id.as_str()) {
            s.next_run_at_ms = Some(*next);
        }
        s
    }

    fn due(&self, s: &SyncConfig) -> Option<EpochMillis> {
        (s.status == SyncStatus::Active)
            .then(|| self.overlaid(s).next_run_at_ms)
            .flatten()
    }
}

impl SyncTables {
    /// The tenant's sync ids (what a tenant's purge walks).
    pub(super) fn ids_of(&self, tenant: &TenantId) -> Vec<String> {
        self.syncs
            .values()
            .filter(|s| s.tenant_id == *tenant)
            .map(|s| s.id.to_string())
            .collect()
    }

    /// Removes a sync, its claim, lease and runs (its feed is the records table's: untouched).
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(s) = self.syncs.remove(id) {
            self.claims.remove(&claim(&s));
        }
        self.leases.remove(id);
        self.rescheduled.remove(id);
        let prefix = format!("{id}#");
        self.runs.retain(|k, _| !k.starts_with(&prefix));
    }
}

impl MemStore {
    /// Every stored record of `feed` (tombstones included), by id.
    pub fn stored_records(&self, feed: &FeedKey) -> BTreeMap<String, StoredRecord> {
        self.tables()
            .syncs
            .records
            .get(&feed_key(feed))
            .cloned()
            .unwrap_or_default()
    }

    /// Every committed page of `feed`, in order.
    pub fn feed_pages(&self, feed: &FeedKey) -> Vec<FeedPage> {
        self.tables()
            .syncs
            .pages
            .get(&feed_key(feed))
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every sync event, oldest first.
    pub fn sync_events(&self) -> Vec<SyncEvent> {
        self.tables().syncs.events.values().cloned().collect()
    }

    /// Seeds a sync (no audit, no claim check).
    pub fn put_sync(&self, s: &SyncConfig) {
        let mut t = self.tables();
        t.syncs.claims.insert(claim(s), s.id.clone());
        t.syncs.syncs.insert(s.id.to_string(), s.clone());
    }

    /// Who holds the sync's run lease, if anyone (expired leases included).
    pub fn sync_lease(&self, id: &SyncId) -> Option<(String, EpochMillis)> {
        self.tables().syncs.leases.get(id.as_str()).cloned()
    }
}

impl SyncStore for MemStore {
    async fn create_sync(&self, s: &SyncConfig, a: &AuditEvent) -> Result<(), PortError> {
        self.port("create_sync", Access::Write, "TransactWriteItems", |t| {
            if t.syncs.syncs.contains_key(s.id.as_str()) || t.syncs.claims.contains_key(&claim(s)) {
                return Err(conflict("TransactWriteItems"));
            }
            t.syncs.claims.insert(claim(s), s.id.clone());
            t.syncs.syncs.insert(s.id.to_string(), s.clone());
            t.audit.insert(a.id.to_string(), a.clone());
            Ok(())
        })
        .await?
    }

    async fn get_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
    ) -> Result<Option<SyncConfig>, PortError> {
        self.port("get_sync", Access::Read, "GetItem", |t| {
            t.syncs.sync(tenant, id)
        })
        .await
    }

    async fn list_syncs(
        &self,
        tenant: &TenantId,
        filter: &SyncFilter,
        req: &PageRequest,
    ) -> Result<Page<SyncConfig>, PortError> {
        self.port("list_syncs", Access::Read, "Query", |t| {
            let mine = t
                .syncs
                .syncs
                .iter()
                .filter(|(_, s)| s.tenant_id == *tenant && filter.matches(s))
                .map(|(id, s)| (format!("{SYNC_SK}{id}"), t.syncs.overlaid(s)))
                .collect();
            page(mine, SYNC_SK, req)
        })
        .await?
    }

    async fn update_sync(&self, s: &SyncConfig, expected: u64) -> Result<bool, PortError> {
        self.port("update_sync", Access::Write, "UpdateItem", |t| {
            match t
                .syncs
                .syncs
                .get_mut(s.id.as_str())
                .filter(|x| x.tenant_id == s.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected => Err(conflict("UpdateItem")),
                Some(stored) => {
                    *stored = s.clone();
                    t.syncs.rescheduled.remove(s.id.as_str());
                    Ok(true)
                }
            }
        })
        .await?
    }

    async fn delete_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port("delete_sync", Access::Write, "TransactWriteItems", |t| {
            let Some(s) = t.syncs.sync(tenant, id) else {
                return false;
            };
            t.syncs.claims.remove(&claim(&s));
            t.syncs.syncs.remove(id.as_str());
            t.syncs.leases.remove(id.as_str());
            t.syncs.rescheduled.remove(id.as_str());
            let prefix = format!("{id}#");
            t.syncs.runs.retain(|k, _| !k.starts_with(&prefix));
            t.audit.insert(a.id.to_string(), a.clone());
            true
        })
        .await
    }

    async fn lease_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        self.port("lease_sync", Access::Write, "UpdateItem", |t| {
            let exists = t.syncs.sync(tenant, id).is_some();
            let free = t
                .syncs
                .leases
                .get(id.as_str())
                .is_none_or(|(_, until)| *until < now_ms);
            if exists && free {
                t.syncs
                    .leases
                    .insert(id.to_string(), (holder.to_owned(), until_ms));
            }
            exists && free
        })
        .await
    }

    async fn release_sync(
        &self,
        _tenant: &TenantId,
        id: &SyncId,
        holder: &str,
    ) -> Result<(), PortError> {
        self.port("release_sync", Access::Write, "UpdateItem", |t| {
            if t.syncs
                .leases
                .get(id.as_str())
                .is_some_and(|(h, _)| h == holder)
            {
                t.syncs.leases.remove(id.as_str());
            }
        })
        .await
    }

    async fn create_run(&self, r: &SyncRun) -> Result<(), PortError> {
        self.port("create_run", Access::Write, "PutItem", |t| {
            let key = format!("{}#{}", r.sync_id, r.id);
            if t.syncs.runs.contains_key(&key) {
                return Err(conflict("PutItem"));
            }
            t.syncs.runs.insert(key, r.clone());
            Ok(())
        })
        .await?
    }

    async fn get_run(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        id: &SyncRunId,
    ) -> Result<Option<SyncRun>, PortError> {
        self.port("get_run", Access::Read, "GetItem", |t| {
            t.syncs
                .runs
                .get(&format!("{sync}#{id}"))
                .filter(|r| r.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_runs(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        req: &PageRequest,
    ) -> Result<Page<SyncRun>, PortError> {
        self.port("list_runs", Access::Read, "Query", |t| {
            // Newest first: the adapter reads the partition backwards. Sort keys are inverted
            // here so that `page` (which walks forwards) sees the same order.
            let prefix = format!("{RUN_SK}{sync}#");
            let mine = t
                .syncs
                .runs
                .values()
                .filter(|r| r.tenant_id == *tenant && r.sync_id == *sync)
                .map(|r| (format!("{prefix}{}", invert(r.id.as_str())), r.clone()))
                .collect();
            page(mine, &prefix, req)
        })
        .await?
    }

    async fn update_run(&self, r: &SyncRun, expected: u64) -> Result<bool, PortError> {
        self.port("update_run", Access::Write, "PutItem", |t| {
            match t
                .syncs
                .runs
                .get_mut(&format!("{}#{}", r.sync_id, r.id))
                .filter(|x| x.tenant_id == r.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected => Err(conflict("PutItem")),
                Some(stored) => {
                    *stored = r.clone();
                    Ok(true)
                }
            }
        })
        .await?
    }

    async fn record_sync_event(&self, e: &SyncEvent) -> Result<(), PortError> {
        self.port("record_sync_event", Access::Write, "PutItem", |t| {
            t.syncs.events.insert(e.id.to_string(), e.clone());
        })
        .await
    }

    async fn list_sync_events(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<SyncEvent>, PortError> {
        self.port("list_sync_events", Access::Read, "Query", |t| {
            let mine = t
                .syncs
                .events
                .iter()
                .filter(|(_, e)| e.tenant_id == *tenant)
                .map(|(id, e)| (format!("{SYNC_EVENT_SK}{id}"), e.clone()))
                .collect();
            page(mine, SYNC_EVENT_SK, req)
        })
        .await?
    }
}

/// The `ActiveRuns` partition of a run, as the adapter computes it (FNV-1a of the id).
fn active_shard(run: &SyncRunId) -> u32 {
    let h = run.as_str().bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    h % ACTIVE_RUN_SHARDS
}

/// A string that sorts in the reverse order of `s` among strings of its length (hex ids).
pub(super) fn invert(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
            None => c,
        })
        .collect()
}

impl SyncSchedule for MemStore {
    async fn due_syncs(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<DueSync>, PortError> {
        self.port("due_syncs", Access::Read, "Query", |t| {
            let mut due: Vec<DueSync> = t
                .syncs
                .syncs
                .values()
                .filter_map(|s| {
                    t.syncs
                        .due(s)
                        .filter(|d| *d <= now_ms)
                        .map(|due_ms| DueSync {
                            tenant_id: s.tenant_id.clone(),
                            sync_id: s.id.clone(),
                            due_ms,
                        })
                })
                .collect();
            due.sort_by_key(|d| d.due_ms);
            due.truncate(limit);
            due
        })
        .await
    }

    async fn reschedule_sync(
        &self,
        due: &DueSync,
        next_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        self.port("reschedule_sync", Access::Write, "UpdateItem", |t| {
            let current = t
                .syncs
                .syncs
                .get(due.sync_id.as_str())
                .filter(|s| s.tenant_id == due.tenant_id)
                .and_then(|s| t.syncs.due(s));
            if current != Some(due.due_ms) {
                return false;
            }
            t.syncs.rescheduled.insert(due.sync_id.to_string(), next_ms);
            true
        })
        .await
    }

    async fn idle_runs(
        &self,
        shard: u32,
        before_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<IdleRun>, PortError> {
        self.port("idle_runs", Access::Read, "Query", |t| {
            let mut idle: Vec<IdleRun> = t
                .syncs
                .runs
                .values()
                .filter(|r| active_shard(&r.id) == shard)
                .filter_map(|r| {
                    r.active_at_ms()
                        .filter(|at| *at < before_ms)
                        .map(|active_at_ms| IdleRun {
                            tenant_id: r.tenant_id.clone(),
                            sync_id: r.sync_id.clone(),
                            run_id: r.id.clone(),
                            active_at_ms,
                        })
                })
                .collect();
            idle.sort_by_key(|r| r.active_at_ms);
            idle.truncate(limit);
            idle
        })
        .await
    }
}

impl RecordStore for MemStore {
    async fn record_meta(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> Result<HashMap<String, RecordMeta>, PortError> {
        assert!(ids.len() <= 100, "BatchGetItem takes at most 100 keys");
        self.port("record_meta", Access::Read, "BatchGetItem", |t| {
            let Some(records) = t.syncs.records.get(&feed_key(feed)) else {
                return HashMap::new();
            };
            ids.iter()
                .filter_map(|id| {
                    records.get(id).map(|r| {
                        (
                            id.clone(),
                            RecordMeta {
                                hash: r.hash.clone(),
                                position: r.position,
                                action: r.action,
                                first_seen_ms: r.first_seen_ms,
                            },
                        )
                    })
                })
                .collect()
        })
        .await
    }

    async fn put_records(&self, feed: &FeedKey, records: &[StoredRecord]) -> Result<(), PortError> {
        self.port("put_records", Access::Write, "BatchWriteItem", |t| {
            let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                records.len(),
                "one batch cannot write a key twice"
            );
            let stored = t.syncs.records.entry(feed_key(feed)).or_default();
            for r in records {
                stored.insert(r.id.clone(), r.clone());
            }
        })
        .await
    }

    async fn commit_page(&self, feed: &FeedKey, p: &FeedPage) -> Result<(), PortError> {
        self.port("commit_page", Access::Write, "PutItem", |t| {
            let pages = t.syncs.pages.entry(feed_key(feed)).or_default();
            if let Some(stored) = pages.get(&p.seq) {
                // This very page again (an attempt whose answer was lost) is done, as in the
                // adapter; another writer's is a conflict.
                return if stored.run_id == p.run_id && stored.entries == p.entries {
                    Ok(())
                } else {
                    Err(conflict("PutItem"))
                };
            }
            pages.insert(p.seq, p.clone());
            Ok(())
        })
        .await?
    }

    async fn last_page(&self, feed: &FeedKey) -> Result<Option<FeedPage>, PortError> {
        self.port("last_page", Access::Read, "Query", |t| {
            t.syncs
                .pages
                .get(&feed_key(feed))
                .and_then(|p| p.values().next_back().cloned())
        })
        .await
    }

    async fn pages_after(
        &self,
        feed: &FeedKey,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FeedPage>, PortError> {
        self.port("pages_after", Access::Read, "Query", |t| {
            t.syncs
                .pages
                .get(&feed_key(feed))
                .map(|p| {
                    p.range(after_seq.map_or(0, |s| s + 1)..)
                        .take(limit)
                        .map(|(_, p)| p.clone())
                        .collect()
                })
                .unwrap_or_default()
        })
        .await
    }

    async fn get_records(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> Result<Vec<StoredRecord>, PortError> {
        self.port("get_records", Access::Read, "BatchGetItem", |t| {
            let Some(records) = t.syncs.records.get(&feed_key(feed)) else {
                return Vec::new();
            };
            ids.iter()
                .filter_map(|id| records.get(id).cloned())
                .collect()
        })
        .await
    }

    async fn record_ids(
        &self,
        feed: &FeedKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdPage, PortError> {
        self.port("record_ids", Access::Read, "Query", |t| {
            let Some(records) = t.syncs.records.get(&feed_key(feed)) else {
                return (Vec::new(), None);
            };
            let mut ids: Vec<(String, RecordAction)> = records
                .values()
                .filter(|r| after.is_none_or(|a| r.id.as_str() > a))
                .take(limit + 1)
                .map(|r| (r.id.clone(), r.action))
                .collect();
            let more = ids.len() > limit;
            ids.truncate(limit);
            let next = more.then(|| ids.last().map(|(id, _)| id.clone())).flatten();
            (ids, next)
        })
        .await
    }

    async fn put_seen(
        &self,
        feed: &FeedKey,
        run: &SyncRunId,
        ids: &[String],
        _expires_at_s: i64,
    ) -> Result<(), PortError> {
        self.port("put_seen", Access::Write, "PutItem", |t| {
            t.syncs
                .seen
                .entry(feed_key(feed))
                .or_default()
                .entry(run.to_string())
                .or_default()
                .push(ids.to_vec());
        })
        .await
    }

    async fn seen(&self, feed: &FeedKey, run: &SyncRunId) -> Result<Vec<String>, PortError> {
        self.port("seen", Access::Read, "Query", |t| {
            t.syncs
                .seen
                .get(&feed_key(feed))
                .and_then(|runs| runs.get(run.as_str()))
                .map(|chunks| chunks.concat())
                .unwrap_or_default()
        })
        .await
    }

    async fn purge(&self, feed: &FeedKey, max_items: usize) -> Result<bool, PortError> {
        self.port("purge", Access::Write, "BatchWriteItem", |t| {
            let key = feed_key(feed);
            t.syncs.seen.remove(&key);
            let mut budget = max_items.max(1);
            if let Some(records) = t.syncs.records.get_mut(&key) {
                while budget > 0 && records.pop_first().is_some() {
                    budget -= 1;
                }
            }
            if let Some(pages) = t.syncs.pages.get_mut(&key) {
                while budget > 0 && pages.pop_first().is_some() {
                    budget -= 1;
                }
            }
            let done = t.syncs.records.get(&key).is_none_or(BTreeMap::is_empty)
                && t.syncs.pages.get(&key).is_none_or(BTreeMap::is_empty);
            if done {
                t.syncs.records.remove(&key);
                t.syncs.pages.remove(&key);
            }
            done
        })
        .await
    }
}
