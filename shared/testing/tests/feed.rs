//! The change feed's guarantees, on the in-memory records store: a writer staging and committing
//! pages while readers walk the feed with their cursors.

use std::collections::{BTreeMap, HashMap, HashSet};

use tributary_core::ids::{ConnectionId, SyncRunId, TenantId};
use tributary_core::records::{
    FeedFilter, FeedKey, FeedPage, FeedPosition, Fetched, RecordAction, RecordStore, Staged,
    read_feed, stage_deletions, stage_page,
};
use tributary_core::sync::RunStats;
use tributary_testing::MemStore;

fn feed() -> FeedKey {
    FeedKey {
        tenant_id: TenantId::generate(),
        connection_id: ConnectionId::generate(),
        model: "contacts".into(),
    }
}

fn record(n: u32, version: u32) -> Fetched {
    Fetched {
        id: format!("c{n:04}"),
        data: format!(r#"{{"n":{n},"v":{version}}}"#),
    }
}

/// Writes what staging found as page `seq` and commits it.
async fn commit(store: &MemStore, feed: &FeedKey, run: &SyncRunId, seq: u64, staged: Staged) {
    store
        .write_page(
            feed,
            &staged.writes,
            &FeedPage {
                seq,
                run_id: run.clone(),
                entries: staged.entries,
                committed_at_ms: 0,
                run_position: None,
                run_stats: RunStats::default(),
                expires_at_s: None,
            },
        )
        .await
        .unwrap();
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        u32::try_from((self.0 >> 33) % u64::from(below)).unwrap()
    }
}

/// A reader: its page size, its cursor, the version it saw of each record, and every (record,
/// position) it was given.
type Reader = (
    usize,
    Option<FeedPosition>,
    HashMap<String, u32>,
    HashSet<(String, FeedPosition)>,
);

#[tokio::test]
async fn readers_walking_the_feed_while_a_sync_writes_see_every_change_once_and_never_go_back() {
    let store = MemStore::default();
    let feed = feed();
    let run = SyncRunId::generate();
    let mut rng = Lcg(7);
    let mut versions: BTreeMap<u32, u32> = BTreeMap::new();
    // Three readers with different page sizes, each with its cursor and what it has seen.
    let mut readers: Vec<Reader> = [1, 7, 50]
        .iter()
        .map(|l| (*l, None, HashMap::new(), HashSet::new()))
        .collect();
    for seq in 1..=60u64 {
        // A page of 20 records, some new, some changed, some repeated within the page.
        let mut page = Vec::new();
        for _ in 0..20 {
            let n = rng.next(300);
            let v = versions.entry(n).or_insert(0);
            *v += 1;
            page.push(record(n, *v));
        }
        let staged = stage_page(
            &store,
            &feed,
            &run,
            seq,
            i64::try_from(seq).unwrap(),
            None,
            page,
        )
        .await
        .unwrap();
        // Readers read between the records' writes and the commit, and after it.
        store.put_records(&feed, &staged.writes).await.unwrap();
        for phase in 0..2 {
            if phase == 1 {
                commit(&store, &feed, &run, seq, staged.clone()).await;
            }
            for (limit, cursor, seen, positions) in &mut readers {
                let read = read_feed(&store, &feed, *cursor, *limit, &FeedFilter::default())
                    .await
                    .unwrap();
                for r in &read.records {
                    assert!(
                        positions.insert((r.id.clone(), r.position)),
                        "{} twice at {:?}",
                        r.id,
                        r.position
                    );
                    let v: serde_json::Value = serde_json::from_str(&r.data).unwrap();
                    let v = u32::try_from(v["v"].as_u64().unwrap()).unwrap();
                    if let Some(before) = seen.insert(r.id.clone(), v) {
                        assert!(v > before, "{} went back from v{before} to v{v}", r.id);
                    }
                    assert!(r.position.page <= seq, "an uncommitted page was read");
                }
                if read.next.is_some() {
                    *cursor = read.next;
                }
            }
        }
    }
    // Readers catch up: each ends with every record at its latest version.
    for (limit, cursor, seen, _) in &mut readers {
        loop {
            let read = read_feed(&store, &feed, *cursor, *limit, &FeedFilter::default())
                .await
                .unwrap();
            for r in &read.records {
                let v: serde_json::Value = serde_json::from_str(&r.data).unwrap();
                seen.insert(
                    r.id.clone(),
                    u32::try_from(v["v"].as_u64().unwrap()).unwrap(),
                );
            }
            if read.next.is_some() {
                *cursor = read.next;
            }
            if !read.more {
                break;
            }
        }
        let expected: HashMap<String, u32> = versions
            .iter()
            .map(|(n, v)| (format!("c{n:04}"), *v))
            .collect();
        assert_eq!(*seen, expected, "reader with limit {limit}");
    }
}

#[tokio::test]
async fn a_change_staged_but_never_committed_is_staged_again_by_the_next_writer() {
    let store = MemStore::default();
    let feed = feed();
    let run = SyncRunId::generate();
    let staged = stage_page(
        &store,
        &feed,
        &run,
        1,
        1,
        None,
        vec![record(1, 1), record(2, 1)],
    )
    .await
    .unwrap();
    commit(&store, &feed, &run, 1, staged).await;
    // A writer stores record 1's new version as page 2, then stops before committing.
    let lost = stage_page(&store, &feed, &run, 2, 2, None, vec![record(1, 2)])
        .await
        .unwrap();
    store.put_records(&feed, &lost.writes).await.unwrap();
    // The next writer reads the same data: the change must still reach the feed.
    let again = stage_page(
        &store,
        &feed,
        &run,
        2,
        3,
        None,
        vec![record(1, 2), record(2, 1)],
    )
    .await
    .unwrap();
    assert_eq!(again.entries, vec!["c0001".to_owned()]);
    assert_eq!((again.stats.updated, again.stats.unchanged), (1, 1));
    commit(&store, &feed, &run, 2, again).await;
    let read = read_feed(
        &store,
        &feed,
        Some(FeedPosition { page: 1, index: 1 }),
        10,
        &FeedFilter::default(),
    )
    .await
    .unwrap();
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].action, RecordAction::Updated);
}

#[tokio::test]
async fn deletions_are_tombstones_in_the_feed_and_a_record_that_returns_is_added_again() {
    let store = MemStore::default();
    let feed = feed();
    let run = SyncRunId::generate();
    let staged = stage_page(
        &store,
        &feed,
        &run,
        1,
        1,
        None,
        vec![record(1, 1), record(2, 1)],
    )
    .await
    .unwrap();
    commit(&store, &feed, &run, 1, staged).await;
    let gone = stage_deletions(
        &store,
        &feed,
        &run,
        2,
        2,
        None,
        &["c0002".to_owned(), "c0404".to_owned()],
    )
    .await
    .unwrap();
    assert_eq!(
        gone.entries,
        vec!["c0002".to_owned()],
        "only stored records are deleted"
    );
    assert_eq!(gone.stats.deleted, 1);
    commit(&store, &feed, &run, 2, gone).await;
    let back = stage_page(&store, &feed, &run, 3, 3, None, vec![record(2, 1)])
        .await
        .unwrap();
    commit(&store, &feed, &run, 3, back).await;
    let all = read_feed(&store, &feed, None, 10, &FeedFilter::default())
        .await
        .unwrap();
    let seen: Vec<(String, RecordAction)> = all
        .records
        .iter()
        .map(|r| (r.id.clone(), r.action))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("c0001".to_owned(), RecordAction::Added),
            ("c0002".to_owned(), RecordAction::Added)
        ],
        "c0002 appears once, at its latest change"
    );
    assert_eq!(all.records[1].position.page, 3);
    // Filters: only deletions after the first page.
    let deleted = read_feed(
        &store,
        &feed,
        None,
        10,
        &FeedFilter {
            actions: vec![RecordAction::Deleted],
            modified_after_ms: None,
        },
    )
    .await
    .unwrap();
    assert!(
        deleted.records.is_empty(),
        "the tombstone was superseded by the return"
    );
}

#[tokio::test]
async fn a_writer_compares_its_own_recent_writes_without_reading_them_back() {
    use tributary_core::records::{RecentWrites, stage_page_after};
    let store = MemStore::default();
    let feed = feed();
    let run = SyncRunId::generate();
    let mut recent = RecentWrites::new(2);
    let first = vec![record(1, 1), record(2, 1), record(3, 1)];
    let staged = stage_page_after(&store, &feed, &run, 1, 1, None, first, &mut recent)
        .await
        .unwrap();
    store.put_records(&feed, &staged.writes).await.unwrap();
    let reads = store.calls("record_meta");
    // Records 2 and 3 are remembered (capacity 2): no read for them, the same content is unchanged.
    let again = stage_page_after(
        &store,
        &feed,
        &run,
        2,
        2,
        None,
        vec![record(2, 1), record(3, 2)],
        &mut recent,
    )
    .await
    .unwrap();
    assert_eq!(
        store.calls("record_meta"),
        reads,
        "answered from the writer's memory"
    );
    assert_eq!((again.stats.unchanged, again.stats.updated), (1, 1));
    // Record 1 was forgotten: read from the store.
    stage_page_after(
        &store,
        &feed,
        &run,
        3,
        3,
        None,
        vec![record(1, 1)],
        &mut recent,
    )
    .await
    .unwrap();
    assert_eq!(store.calls("record_meta"), reads + 1);
}
