//! `/v1/records`: the change feed read through the API over feeds a run would write (staged,
//! then committed, through the `RecordStore` port): cursors that resume exactly, filters, a
//! record changed again returned once, answers cut below Lambda's response limit without skipping
//! anything, NDJSON, and one record by its id.

use serde_json::{Value, json};
use tributary_core::ids::{ConnectionId, SyncRunId, TenantId};
use tributary_core::ports::QueueDepth;
use tributary_core::records::{
    FeedKey, FeedPage, Fetched, RecordStore as _, Staged, stage_deletions, stage_page,
};
use tributary_core::time::EpochMillis;

use super::syncs::connection;
use super::{as_tenant, is_problem, tenant};
use crate::routes::records::MAX_ANSWER_BYTES;
use crate::testing::{MemStore, NOW, Req, Res, TestApi, call, deps};

struct Setup {
    d: TestApi,
    t: TenantId,
    connection: ConnectionId,
    feed: FeedKey,
}

fn setup() -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let connection = connection(&store, &t, "stripe");
    Setup {
        feed: FeedKey {
            tenant_id: t.clone(),
            connection_id: connection.clone(),
            model: "customers".into(),
        },
        d: deps(store, Ok(QueueDepth::default())),
        t,
        connection,
    }
}

impl Setup {
    /// Stages these records as the feed's next page and commits it, as a run does, at `at_ms`.
    async fn write(&self, at_ms: EpochMillis, records: &[(&str, Value)]) {
        let raw: Vec<(&str, String)> = records.iter().map(|(id, v)| (*id, v.to_string())).collect();
        self.write_raw(at_ms, &raw).await;
    }

    /// [`Setup::write`] with each record's JSON as given.
    async fn write_raw(&self, at_ms: EpochMillis, records: &[(&str, String)]) {
        let store = &self.d.store;
        let seq = store
            .last_page(&self.feed)
            .await
            .unwrap()
            .map_or(1, |p| p.seq + 1);
        let run = SyncRunId::generate();
        let fetched = records
            .iter()
            .map(|(id, data)| Fetched {
                id: (*id).to_owned(),
                data: data.clone(),
            })
            .collect();
        let staged = stage_page(store, &self.feed, &run, seq, at_ms, None, fetched)
            .await
            .unwrap();
        self.commit(seq, run, staged, at_ms).await;
    }

    /// Tombstones `ids` as the feed's next page.
    async fn delete(&self, at_ms: EpochMillis, ids: &[&str]) {
        let store = &self.d.store;
        let seq = store.last_page(&self.feed).await.unwrap().unwrap().seq + 1;
        let run = SyncRunId::generate();
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        let staged = stage_deletions(store, &self.feed, &run, seq, at_ms, None, &ids)
            .await
            .unwrap();
        self.commit(seq, run, staged, at_ms).await;
    }

    async fn commit(&self, seq: u64, run_id: SyncRunId, staged: Staged, at_ms: EpochMillis) {
        let page = FeedPage {
            seq,
            run_id,
            entries: staged.entries,
            committed_at_ms: at_ms,
            run_position: None,
            run_stats: Default::default(),
            expires_at_s: None,
        };
        self.d
            .store
            .write_page(&self.feed, &staged.writes, &page)
            .await
            .unwrap();
    }

    async fn read(&self, query: &str) -> Res {
        let path = format!(
            "/v1/records?connection_id={}&model=customers{query}",
            self.connection
        );
        call(&self.d, as_tenant(Req::new("GET", &path), &self.t)).await
    }

    /// Every change after `cursor`, following `next_cursor` with `query`, as (id, action); and
    /// the last `next_cursor`.
    async fn walk(
        &self,
        query: &str,
        mut cursor: Option<String>,
    ) -> (Vec<(String, String)>, String) {
        let mut seen = Vec::new();
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let res = self.read(&format!("{query}{after}")).await;
            assert_eq!(res.status, 200, "{:?}", res.body);
            seen.extend(ids_and_actions(&res.body["records"]));
            cursor = res.body["next_cursor"].as_str().map(str::to_owned);
            if res.body["has_more"] == false {
                return (seen, cursor.unwrap_or_default());
            }
        }
    }
}

fn ids_and_actions(records: &Value) -> Vec<(String, String)> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn customer(i: usize) -> (String, Value) {
    (
        format!("cus_{i:03}"),
        json!({"id": format!("cus_{i:03}"), "n": i}),
    )
}

async fn fifteen_in_three_pages(s: &Setup) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 0..3 {
        let records: Vec<(String, Value)> = (page * 5..page * 5 + 5).map(customer).collect();
        let borrowed: Vec<(&str, Value)> = records
            .iter()
            .map(|(id, v)| (id.as_str(), v.clone()))
            .collect();
        s.write(NOW, &borrowed).await;
        ids.extend(records.into_iter().map(|(id, _)| id));
    }
    ids
}

#[tokio::test]
async fn the_feed_pages_by_cursor_resumes_exactly_and_a_poll_sees_only_later_changes() {
    let s = setup();
    let ids = fifteen_in_three_pages(&s).await;

    let first = s.read("&limit=4").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["has_more"], true);
    let record = &first.body["records"][0];
    assert_eq!(record["id"], "cus_000");
    assert_eq!(record["action"], "ADDED");
    assert_eq!(record["data"], json!({"id": "cus_000", "n": 0}));
    assert_eq!(
        record["first_seen_at"],
        tributary_core::time::rfc3339(NOW).unwrap()
    );
    assert_eq!(record["last_modified_at"], record["first_seen_at"]);
    assert!(record["run_id"].as_str().unwrap().starts_with("run_"));
    // The page's cursor is its last record's.
    assert_eq!(
        first.body["next_cursor"],
        first.body["records"][3]["cursor"]
    );

    // Pages of 4 across feed pages of 5: every change once, in order.
    let (seen, last) = s.walk("&limit=4", None).await;
    let expected: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), "ADDED".to_owned()))
        .collect();
    assert_eq!(seen, expected);
    // A record's own cursor resumes right after it.
    let after_seventh = s.read("&limit=100").await.body["records"][6]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (rest, _) = s.walk("", Some(after_seventh)).await;
    assert_eq!(rest, expected[7..].to_vec());

    // Polling at the end: nothing, the same cursor, no more.
    let poll = s.read(&format!("&cursor={last}")).await;
    assert_eq!(poll.body["records"], json!([]));
    assert_eq!(poll.body["next_cursor"], last.as_str());
    assert_eq!(poll.body["has_more"], false);
    // Later changes, and only they, after it.
    s.write(
        NOW + 1000,
        &[
            ("cus_100", json!({"n": 100})),
            ("cus_001", json!({"n": -1})),
        ],
    )
    .await;
    let (later, _) = s.walk("", Some(last)).await;
    assert_eq!(
        later,
        vec![
            ("cus_100".to_owned(), "ADDED".to_owned()),
            ("cus_001".to_owned(), "UPDATED".to_owned())
        ]
    );
    // An empty feed: no cursor yet.
    let empty = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records?connection_id={}&model=charges", s.connection),
            ),
            &s.t,
        ),
    )
    .await;
    assert_eq!(
        empty.body,
        json!({"records": [], "next_cursor": null, "has_more": false})
    );
}

#[tokio::test]
async fn a_record_changed_again_is_returned_once_at_its_latest_change() {
    let s = setup();
    s.write(
        NOW,
        &[
            ("a", json!({"v": 1})),
            ("b", json!({"v": 1})),
            ("c", json!({"v": 1})),
        ],
    )
    .await;
    let (_, after_first) = s.walk("", None).await;
    s.write(NOW + 10, &[("b", json!({"v": 2})), ("d", json!({"v": 1}))])
        .await;
    // Unchanged content is no change.
    s.write(NOW + 20, &[("a", json!({"v": 1})), ("b", json!({"v": 3}))])
        .await;
    let (all, _) = s.walk("&limit=1", None).await;
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        all,
        pairs(&[
            ("a", "ADDED"),
            ("c", "ADDED"),
            ("d", "ADDED"),
            ("b", "UPDATED")
        ])
    );
    let (later, _) = s.walk("", Some(after_first)).await;
    assert_eq!(later, pairs(&[("d", "ADDED"), ("b", "UPDATED")]));
    let b = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records/customers/b?connection_id={}", s.connection),
            ),
            &s.t,
        ),
    )
    .await;
    assert_eq!(b.body["data"], json!({"v": 3}));
}

#[tokio::test]
async fn changes_are_filtered_by_action_and_time_and_bad_queries_are_400s() {
    let s = setup();
    s.write(NOW, &[("a", json!({"v": 1})), ("b", json!({"v": 1}))])
        .await;
    s.write(
        NOW + 60_000,
        &[("c", json!({"v": 1})), ("a", json!({"v": 2}))],
    )
    .await;
    s.delete(NOW + 120_000, &["b"]).await;
    let ids = |query: &'static str| {
        let s = &s;
        async move {
            let (seen, _) = s.walk(query, None).await;
            seen.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("&action=DELETED").await, ["b"]);
    assert_eq!(ids("&action=ADDED,UPDATED").await, ["c", "a"]);
    assert_eq!(
        ids("&modified_after=2027-01-15T08:00:30Z").await,
        ["c", "a", "b"]
    );
    assert_eq!(
        tributary_core::time::rfc3339(NOW).unwrap(),
        "2027-01-15T08:00:30Z",
        "the fixture's time"
    );
    assert_eq!(ids("&modified_after=2027-01-15T08:01:30Z").await, ["b"]);
    assert_eq!(
        ids("&modified_after=2027-01-15T08:00:30Z&action=ADDED").await,
        ["c"]
    );
    let deleted = s.read("&action=DELETED").await;
    assert_eq!(
        deleted.body["records"][0]["data"],
        json!({"v": 1}),
        "its last content"
    );

    for (query, pointer) in [
        ("&action=REMOVED", "query.action"),
        ("&action=added", "query.action"),
        ("&action=", "query.action"),
        ("&modified_after=yesterday", "query.modified_after"),
        ("&limit=0", "query.limit"),
        ("&limit=1001", "query.limit"),
        ("&limit=ten", "query.limit"),
        ("&cursor=bm9wZQ", "query.cursor"),
        ("&cursor=%%%", "query.cursor"),
        ("&sort=desc", "query.sort"),
    ] {
        let res = s.read(query).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{query}");
    }
    for (path, pointer) in [
        (
            "/v1/records?model=customers".to_owned(),
            "query.connection_id",
        ),
        (
            "/v1/records?model=customers&connection_id=conn_x".to_owned(),
            "query.connection_id",
        ),
        (
            format!("/v1/records?connection_id={}", s.connection),
            "query.model",
        ),
        (
            format!("/v1/records?connection_id={}&model=1x", s.connection),
            "query.model",
        ),
    ] {
        let res = call(&s.d, as_tenant(Req::new("GET", &path), &s.t)).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{path}");
    }
    // Another tenant's connection is not found, as an unknown one is.
    let other = tenant(&s.d.store, 100_000);
    let res = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records?connection_id={}&model=customers", s.connection),
            ),
            &other,
        ),
    )
    .await;
    is_problem(&res, 404, "not_found");
}

/// What the answer costs inside the Lambda response's JSON string.
fn wire_len(text: &str) -> usize {
    text.len() + text.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

#[tokio::test]
async fn an_answer_stops_below_lambda_s_limit_after_a_whole_record_and_skips_nothing() {
    let s = setup();
    // 30 records of about 300 KB (9 MB), half of them quotes: 4.5 MB of text costs 6.75 MB in
    // the Lambda response.
    let big = |i: usize| {
        let quotes = vec![""; 50_000];
        json!({"n": i, "pad": "x".repeat(150_000), "quotes": quotes})
    };
    let mut ids = Vec::new();
    for page in 0..3 {
        let records: Vec<(String, Value)> = (page * 10..page * 10 + 10)
            .map(|i| (format!("big_{i:02}"), big(i)))
            .collect();
        let borrowed: Vec<(&str, Value)> = records
            .iter()
            .map(|(id, v)| (id.as_str(), v.clone()))
            .collect();
        s.write(NOW, &borrowed).await;
        ids.extend(records.into_iter().map(|(id, _)| id));
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut answers = 0;
    loop {
        let res = s.read(&format!("&limit=1000{cursor}")).await;
        assert_eq!(res.status, 200);
        let text = res.body.to_string();
        assert!(
            wire_len(&text) <= MAX_ANSWER_BYTES + 1024,
            "answer {answers}: {} bytes in the Lambda response",
            wire_len(&text)
        );
        let records = res.body["records"].as_array().unwrap();
        assert!(!records.is_empty());
        if res.body["has_more"] == true {
            // Cut after the last record returned, not after what was read beyond it.
            assert_eq!(res.body["next_cursor"], records.last().unwrap()["cursor"]);
        }
        seen.extend(records.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        answers += 1;
        match (
            res.body["has_more"].as_bool(),
            res.body["next_cursor"].as_str(),
        ) {
            (Some(true), Some(c)) => cursor = format!("&cursor={c}"),
            _ => break,
        }
    }
    assert!(answers >= 2, "the answer was cut");
    assert_eq!(seen, ids, "every record once, in order");
}

#[tokio::test]
async fn ndjson_answers_one_record_a_line_with_the_cursor_in_headers() {
    let s = setup();
    let ids = fifteen_in_three_pages(&s).await;
    // Stored as written: key order and all.
    s.write_raw(NOW, &[("ordered", r#"{"z":1,"a":[true,null]}"#.to_owned())])
        .await;
    let ndjson = |query: String| {
        call(
            &s.d,
            as_tenant(
                Req::new(
                    "GET",
                    &format!(
                        "/v1/records?connection_id={}&model=customers{query}",
                        s.connection
                    ),
                ),
                &s.t,
            )
            .header("accept", "application/x-ndjson"),
        )
    };
    let res = ndjson("&limit=6".into()).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers["content-type"], "application/x-ndjson");
    assert_eq!(res.headers["tributary-has-more"], "true");
    let text = res.body.as_str().unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["id"], "cus_000");
    assert_eq!(lines[5]["data"], json!({"id": "cus_005", "n": 5}));
    assert_eq!(
        res.headers["tributary-next-cursor"],
        lines[5]["cursor"].as_str().unwrap()
    );

    // The rest, by default in one answer (up to 10,000 records).
    let cursor = res.headers["tributary-next-cursor"]
        .to_str()
        .unwrap()
        .to_owned();
    let rest = ndjson(format!("&cursor={cursor}")).await;
    assert_eq!(rest.headers["tributary-has-more"], "false");
    let text = rest.body.as_str().unwrap();
    let rest_ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut expected = ids[6..].to_vec();
    expected.push("ordered".into());
    assert_eq!(rest_ids, expected);
    assert!(
        text.contains(r#""data":{"z":1,"a":[true,null]}"#),
        "the record is embedded as stored"
    );
    assert_eq!(ndjson("&limit=10000".into()).await.status, 200);
    is_problem(
        &ndjson("&limit=10001".into()).await,
        400,
        "validation_failed",
    );
}

#[tokio::test]
async fn one_record_is_read_by_its_percent_decoded_id() {
    let s = setup();
    s.write(
        NOW,
        &[
            ("a/b c é", json!({"name": "slash"})),
            ("plain", json!({"n": 1})),
        ],
    )
    .await;
    let get = |id: &str, connection: &str| {
        call(
            &s.d,
            as_tenant(
                Req::new(
                    "GET",
                    &format!("/v1/records/customers/{id}?connection_id={connection}"),
                ),
                &s.t,
            ),
        )
    };
    let own = s.connection.to_string();
    let res = get("a%2Fb%20c%20%C3%A9", &own).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["id"], "a/b c é");
    assert_eq!(res.body["action"], "ADDED");
    assert_eq!(res.body["data"], json!({"name": "slash"}));
    assert!(res.body["cursor"].is_string());
    assert_eq!(get("plain", &own).await.body["data"], json!({"n": 1}));

    let missing = get("nope", &own).await;
    is_problem(&missing, 404, "not_found");
    assert!(missing.body["detail"].as_str().unwrap().contains("record"));
    // Another model of the same connection holds other records.
    let res = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records/charges/plain?connection_id={own}"),
            ),
            &s.t,
        ),
    )
    .await;
    is_problem(&res, 404, "not_found");
    for (path, pointer) in [
        (
            format!(
                "/v1/records/customers/{}?connection_id={own}",
                "x".repeat(513)
            ),
            "path.record_id",
        ),
        (
            format!("/v1/records/customers/%FF?connection_id={own}"),
            "path.record_id",
        ),
        (
            format!("/v1/records/9lives/plain?connection_id={own}"),
            "path.model",
        ),
        (
            "/v1/records/customers/plain".to_owned(),
            "query.connection_id",
        ),
        (
            format!("/v1/records/customers/plain?connection_id={own}&model=x"),
            "query.model",
        ),
    ] {
        let res = call(&s.d, as_tenant(Req::new("GET", &path), &s.t)).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], pointer, "{path}");
    }
    // 512 bytes is the most.
    let longest = "y".repeat(512);
    s.write(NOW, &[(longest.as_str(), json!({}))]).await;
    assert_eq!(get(&"y".repeat(512), &own).await.status, 200);
    // Another tenant's connection: not found.
    let other = tenant(&s.d.store, 100_000);
    let res = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records/customers/plain?connection_id={own}"),
            ),
            &other,
        ),
    )
    .await;
    is_problem(&res, 404, "not_found");
}

#[tokio::test]
async fn records_past_their_retention_are_not_answered() {
    let s = setup();
    s.write(NOW, &[("old", json!({"n": 1})), ("new", json!({"n": 2}))])
        .await;
    // `old` expired a second ago; DynamoDB has not removed it yet.
    let mut stored = s.d.store.stored_records(&s.feed);
    let mut old = stored.remove("old").unwrap();
    old.expires_at_s = Some(NOW / 1000 - 1);
    s.d.store.put_records(&s.feed, &[old]).await.unwrap();
    let (seen, _) = s.walk("", None).await;
    assert_eq!(seen, vec![("new".to_owned(), "ADDED".to_owned())]);
    let res = call(
        &s.d,
        as_tenant(
            Req::new(
                "GET",
                &format!("/v1/records/customers/old?connection_id={}", s.connection),
            ),
            &s.t,
        ),
    )
    .await;
    is_problem(&res, 404, "not_found");
}
