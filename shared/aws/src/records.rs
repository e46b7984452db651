//! The records store and its change feed in the records table (`RECORDS_TABLE`), one pair of
//! partitions per feed (a connection's model):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | record | `R#<tenant id>#<connection id>#<model>` | the record's id |
//! | feed page | `F#<tenant id>#<connection id>#<model>` | its sequence number, 20 digits |
//! | seen chunk | `S#<tenant id>#<connection id>#<model>` | `<run id>#<event id>` |
//!
//! A record item holds `data` (canonical JSON), `hash`, `action` (`ADDED`, `UPDATED`, `DELETED`),
//! `first_seen_ms`, `modified_ms`, `run_id`, its feed position `page` and `idx`, and `expires_at`
//! (the table's TTL) when the sync keeps records for a while only. A feed page holds `entries` (the
//! changed ids, in order), `run_id`, `committed_at_ms`, `run_stats` and `run_position` (JSON) and
//! `expires_at` when set; its zero-padded sequence number makes the sort key order the feed. A
//! seen chunk holds `ids` (JSON), the ids a full pass found unchanged, for its deletion detection,
//! and expires after a week.
//!
//! Every key starts with the tenant, so a feed can only be reached through its own tenant's
//! [`FeedKey`]. Reads are strongly consistent (but `record_meta`, the writer's own comparison, see
//! the port): a page is committed only after its records are
//! durable, and a reader that sees the page must see them. Batch reads and writes keep to
//! DynamoDB's limits (100 keys, 25 writes, no key twice) and retry what comes back unprocessed; an
//! item over DynamoDB's 400 KB is refused before anything is sent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::ids::{EventId, SyncRunId};
use tributary_core::records::{
    FeedKey, FeedPage, FeedPosition, IdPage, RecordAction, RecordMeta, RecordStore, StoredRecord,
};

use crate::backoff::Backoff;
use crate::dynamo::{
    DynamoTable, EXPIRES_AT, Item, MAX_BATCH_GET, MAX_BATCH_WRITE, MAX_ITEM_BYTES, PK, SK,
    item_size,
};
use crate::errors::classify;
use crate::tenancy::{conflict, delete_request, n, put, rejected, s, sort_key};

const DATA: &str = "data";
const HASH: &str = "hash";
const ACTION: &str = "action";
const FIRST_SEEN: &str = "first_seen_ms";
const MODIFIED: &str = "modified_ms";
const RUN_ID: &str = "run_id";
const PAGE: &str = "page";
const INDEX: &str = "idx";
const ENTRIES: &str = "entries";
const COMMITTED_AT: &str = "committed_at_ms";
const RUN_POSITION: &str = "run_position";
const RUN_STATS: &str = "run_stats";
const SEEN_IDS: &str = "ids";
/// DynamoDB's longest sort key, in bytes.
const MAX_SORT_KEY_BYTES: usize = 1024;
/// What [`RecordStore::record_meta`] reads of a record (never its data). Several of these names
/// are reserved words in DynamoDB's expressions, hence the placeholders.
const META_PROJECTION: (&str, &[(&str, &str)]) = (
    "#sk, #hash, #action, #first, #page, #idx",
    &[
        ("#sk", SK),
        ("#hash", HASH),
        ("#action", ACTION),
        ("#first", FIRST_SEEN),
        ("#page", PAGE),
        ("#idx", INDEX),
    ],
);

fn feed_part(feed: &FeedKey) -> String {
    format!("{}#{}#{}", feed.tenant_id, feed.connection_id, feed.model)
}

fn records_pk(feed: &FeedKey) -> String {
    format!("R#{}", feed_part(feed))
}

fn pages_pk(feed: &FeedKey) -> String {
    format!("F#{}", feed_part(feed))
}

fn seen_pk(feed: &FeedKey) -> String {
    format!("S#{}", feed_part(feed))
}

fn page_sk(seq: u64) -> String {
    format!("{seq:020}")
}

fn corrupt(operation: &'static str, detail: impl Into<String>) -> PortError {
    PortError::Corrupt {
        service: Service::Store,
        operation,
        detail: detail.into(),
    }
}

fn key(pk: &str, sk: &str) -> Item {
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn record_item(feed: &FeedKey, r: &StoredRecord) -> Result<Item, PortError> {
    if r.id.is_empty() || r.id.len() > MAX_SORT_KEY_BYTES {
        return Err(rejected(
            "BatchWriteItem",
            format!(
                "record id `{}` must be 1 to {MAX_SORT_KEY_BYTES} bytes, is {}",
                r.id.chars().take(64).collect::<String>(),
                r.id.len()
            ),
        ));
    }
    let mut it = Item::from([
        (PK.to_owned(), s(records_pk(feed))),
        (SK.to_owned(), s(r.id.clone())),
        (DATA.to_owned(), s(r.data.clone())),
        (HASH.to_owned(), s(r.hash.clone())),
        (ACTION.to_owned(), s(r.action.as_str())),
        (FIRST_SEEN.to_owned(), n(r.first_seen_ms)),
        (MODIFIED.to_owned(), n(r.last_modified_ms)),
        (RUN_ID.to_owned(), s(r.run_id.as_str())),
        (PAGE.to_owned(), n(r.position.page)),
        (INDEX.to_owned(), n(r.position.index)),
    ]);
    if let Some(at) = r.expires_at_s {
        it.insert(EXPIRES_AT.to_owned(), n(at));
    }
    let size = item_size(&it);
    if size > MAX_ITEM_BYTES {
        return Err(rejected(
            "BatchWriteItem",
            format!(
                "record `{}` is {size} bytes as an item, over DynamoDB's limit of {MAX_ITEM_BYTES}",
                r.id
            ),
        ));
    }
    Ok(it)
}

/// A transaction's aggregate size limit (4 MB), less room for the request's own framing.
const MAX_TRANSACTION_BYTES: usize = 4_000_000;

/// Where the records a page commit is written with begin: `records[at..]` go in the commit's
/// transaction, the rest in `BatchWriteItem`s before it. The transaction takes what is left over
/// after whole batches of 25 (1 to 25 records), so a page of `n` records costs `ceil(n / 25)`
/// write requests rather than one more for the commit; it takes fewer when their size, with the
/// commit's, would pass the transaction's limit (none at all for records near 400 KB).
fn committed_with(records: &[Item], page_bytes: usize) -> usize {
    let len = records.len();
    let mut at = len.saturating_sub(1) / MAX_BATCH_WRITE * MAX_BATCH_WRITE;
    let mut bytes = page_bytes + records[at..].iter().map(item_size).sum::<usize>();
    while bytes > MAX_TRANSACTION_BYTES && at < len {
        bytes -= item_size(&records[at]);
        at += 1;
    }
    at
}

fn json<T: serde::Serialize>(value: &T) -> Result<AttributeValue, PortError> {
    serde_json::to_string(value)
        .map(s)
        .map_err(|e| rejected("serialize", e.to_string()))
}

fn page_item(feed: &FeedKey, p: &FeedPage) -> Result<Item, PortError> {
    let mut it = key(&pages_pk(feed), &page_sk(p.seq));
    it.insert(
        ENTRIES.to_owned(),
        AttributeValue::L(p.entries.iter().map(|e| s(e.clone())).collect()),
    );
    it.insert(RUN_ID.to_owned(), s(p.run_id.as_str()));
    it.insert(COMMITTED_AT.to_owned(), n(p.committed_at_ms));
    it.insert(RUN_STATS.to_owned(), json(&p.run_stats)?);
    if let Some(position) = &p.run_position {
        it.insert(RUN_POSITION.to_owned(), json(position)?);
    }
    if let Some(at) = p.expires_at_s {
        it.insert(EXPIRES_AT.to_owned(), n(at));
    }
    let size = item_size(&it);
    if size > MAX_ITEM_BYTES {
        return Err(rejected(
            "PutItem",
            format!(
                "feed page {} is {size} bytes as an item, over DynamoDB's limit of {MAX_ITEM_BYTES}",
                p.seq
            ),
        ));
    }
    Ok(it)
}

fn string(it: &Item, name: &str, operation: &'static str) -> Result<String, PortError> {
    match it.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(corrupt(operation, format!("item lacks string `{name}`"))),
    }
}

fn number<T: std::str::FromStr>(
    it: &Item,
    name: &str,
    operation: &'static str,
) -> Result<T, PortError> {
    match it.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(operation, format!("`{name}` is out of range"))),
        _ => Err(corrupt(operation, format!("item lacks number `{name}`"))),
    }
}

fn optional_number(
    it: &Item,
    name: &str,
    operation: &'static str,
) -> Result<Option<i64>, PortError> {
    it.get(name)
        .map(|_| number(it, name, operation))
        .transpose()
}

fn parsed<T: std::str::FromStr>(
    it: &Item,
    name: &str,
    operation: &'static str,
) -> Result<T, PortError> {
    string(it, name, operation)?
        .parse()
        .map_err(|_| corrupt(operation, format!("`{name}` does not parse")))
}

fn from_json<T: DeserializeOwned>(
    it: &Item,
    name: &str,
    operation: &'static str,
) -> Result<T, PortError> {
    serde_json::from_str(&string(it, name, operation)?)
        .map_err(|e| corrupt(operation, format!("`{name}`: {e}")))
}

fn action(it: &Item, operation: &'static str) -> Result<RecordAction, PortError> {
    match string(it, ACTION, operation)?.as_str() {
        "ADDED" => Ok(RecordAction::Added),
        "UPDATED" => Ok(RecordAction::Updated),
        "DELETED" => Ok(RecordAction::Deleted),
        other => Err(corrupt(operation, format!("unknown action `{other}`"))),
    }
}

fn position(it: &Item, operation: &'static str) -> Result<FeedPosition, PortError> {
    Ok(FeedPosition {
        page: number(it, PAGE, operation)?,
        index: number(it, INDEX, operation)?,
    })
}

fn decode_record(it: &Item, operation: &'static str) -> Result<StoredRecord, PortError> {
    Ok(StoredRecord {
        id: string(it, SK, operation)?,
        data: string(it, DATA, operation)?,
        hash: string(it, HASH, operation)?,
        action: action(it, operation)?,
        first_seen_ms: number(it, FIRST_SEEN, operation)?,
        last_modified_ms: number(it, MODIFIED, operation)?,
        run_id: parsed(it, RUN_ID, operation)?,
        position: position(it, operation)?,
        expires_at_s: optional_number(it, EXPIRES_AT, operation)?,
    })
}

fn decode_page(it: &Item, operation: &'static str) -> Result<FeedPage, PortError> {
    let entries = match it.get(ENTRIES) {
        Some(AttributeValue::L(entries)) => entries
            .iter()
            .map(|e| match e {
                AttributeValue::S(id) => Ok(id.clone()),
                _ => Err(corrupt(operation, "a feed entry is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(corrupt(operation, "feed page lacks `entries`")),
    };
    Ok(FeedPage {
        seq: parsed(it, SK, operation)?,
        run_id: parsed(it, RUN_ID, operation)?,
        entries,
        committed_at_ms: number(it, COMMITTED_AT, operation)?,
        run_position: it
            .contains_key(RUN_POSITION)
            .then(|| from_json(it, RUN_POSITION, operation))
            .transpose()?,
        run_stats: from_json(it, RUN_STATS, operation)?,
        expires_at_s: optional_number(it, EXPIRES_AT, operation)?,
    })
}

impl DynamoTable {
    /// After a commit of `page` was refused because its sequence number exists: success when
    /// the stored page is this one (same run, same entries: an earlier attempt whose answer was
    /// lost), [`PortError::Conflict`] when it is another writer's.
    async fn committed_already(
        &self,
        feed: &FeedKey,
        page: &FeedPage,
        operation: &'static str,
    ) -> Result<(), PortError> {
        let stored = self
            .get(&pages_pk(feed), &page_sk(page.seq))
            .await?
            .map(|it| decode_page(&it, "GetItem"))
            .transpose()?;
        match stored {
            Some(p) if p.run_id == page.run_id && p.entries == page.entries => Ok(()),
            _ => Err(conflict(operation)),
        }
    }

    /// Reads `pk`'s items after `after` (from the first when `None`) in sort-key order, at most
    /// `limit`, following the query's pages (each ends at 1 MB read) until `limit` or the end.
    async fn query_after(
        &self,
        pk: &str,
        after: Option<&str>,
        limit: usize,
        projection: Option<(&str, &[(&str, &str)])>,
    ) -> Result<Vec<Item>, PortError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        while found.len() < limit {
            let mut request = self
                .client()
                .query()
                .table_name(self.name())
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            request = match after {
                Some(after) => request
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(after)),
                None => request.key_condition_expression("pk = :pk"),
            };
            if let Some((expression, names)) = projection {
                request = request.projection_expression(expression);
                for (placeholder, name) in names {
                    request = request.expression_attribute_names(*placeholder, *name);
                }
            }
            let out = request
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            found.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(found)
    }

    /// Removes up to `budget` items of the partition `pk`: how many it removed, and whether the
    /// partition is now empty.
    async fn purge_partition(&self, pk: &str, budget: usize) -> Result<(usize, bool), PortError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        let mut ended = false;
        while keys.len() < budget {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .limit(i32::try_from(budget - keys.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            keys.extend(out.items.unwrap_or_default().iter().filter_map(sort_key));
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let removed = keys.len();
        let requests = keys
            .into_iter()
            .map(|sk| delete_request(pk.to_owned(), sk))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await?;
        Ok((removed, ended))
    }
}

impl RecordStore for DynamoTable {
    async fn record_meta(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> Result<HashMap<String, RecordMeta>, PortError> {
        if ids.len() > MAX_BATCH_GET {
            return Err(rejected(
                "BatchGetItem",
                format!(
                    "record_meta reads at most {MAX_BATCH_GET} ids per call, got {}",
                    ids.len()
                ),
            ));
        }
        let pk = records_pk(feed);
        let keys = ids.iter().map(|id| key(&pk, id)).collect();
        // Eventually consistent (half the cost): the port says why that is enough.
        let found = self.batch_get(keys, Some(META_PROJECTION), false).await?;
        found
            .iter()
            .map(|it| {
                let op = "BatchGetItem";
                Ok((
                    string(it, SK, op)?,
                    RecordMeta {
                        hash: string(it, HASH, op)?,
                        position: position(it, op)?,
                        action: action(it, op)?,
                        first_seen_ms: number(it, FIRST_SEEN, op)?,
                    },
                ))
            })
            .collect()
    }

    async fn put_records(&self, feed: &FeedKey, records: &[StoredRecord]) -> Result<(), PortError> {
        // Every item is checked before the first is sent: one oversized record must not leave
        // the page half-written, nor fail a batch in AWS.
        let items = records
            .iter()
            .map(|r| record_item(feed, r))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_put(items).await
    }

    async fn write_page(
        &self,
        feed: &FeedKey,
        records: &[StoredRecord],
        page: &FeedPage,
    ) -> Result<(), PortError> {
        // One write a record, its last: a transaction cannot name an item twice.
        let mut seen = std::collections::HashSet::with_capacity(records.len());
        let mut last: Vec<&StoredRecord> = records
            .iter()
            .rev()
            .filter(|r| seen.insert(r.id.as_str()))
            .collect();
        last.reverse();
        let mut items = last
            .into_iter()
            .map(|r| record_item(feed, r))
            .collect::<Result<Vec<_>, _>>()?;
        let page_it = page_item(feed, page)?;
        let tail = items.split_off(committed_with(&items, item_size(&page_it)));
        // The records before the tail are durable before the transaction is sent.
        self.batch_put(items).await?;
        if tail.is_empty() {
            return self.commit_page(feed, page).await;
        }
        let committing = page;
        let page = page_it;
        let mut actions = tail
            .into_iter()
            .map(|it| put(self.name(), it, None))
            .collect::<Result<Vec<_>, _>>()?;
        actions.push(put(self.name(), page, Some("attribute_not_exists(pk)"))?);
        let mut attempt = 0;
        loop {
            match self.transact_checked(actions.clone()).await {
                Ok(Ok(())) => return Ok(()),
                // Only the commit has a condition: the page exists. It may be this very page, from
                // an attempt whose answer was lost (a 500 or a timeout the SDK retried): then the
                // transaction, all or nothing, is done.
                Ok(Err(_)) => {
                    return self
                        .committed_already(feed, committing, "TransactWriteItems")
                        .await;
                }
                // Cancelled for another reason (throttled, or a concurrent write of one of its
                // records): none of it was written, so it is sent again.
                Err(PortError::Conflict { .. }) if attempt < Backoff::BATCH.max_retries => {
                    tokio::time::sleep(Backoff::BATCH.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn commit_page(&self, feed: &FeedKey, page: &FeedPage) -> Result<(), PortError> {
        if self
            .put_conditional(page_item(feed, page)?, "attribute_not_exists(pk)")
            .await?
        {
            Ok(())
        } else {
            self.committed_already(feed, page, "PutItem").await
        }
    }

    async fn last_page(&self, feed: &FeedKey) -> Result<Option<FeedPage>, PortError> {
        let out = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pages_pk(feed)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(|it| decode_page(it, "Query"))
            .transpose()
    }

    async fn pages_after(
        &self,
        feed: &FeedKey,
        after_seq: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FeedPage>, PortError> {
        let after = after_seq.map(page_sk);
        self.query_after(&pages_pk(feed), after.as_deref(), limit, None)
            .await?
            .iter()
            .map(|it| decode_page(it, "Query"))
            .collect()
    }

    async fn get_records(
        &self,
        feed: &FeedKey,
        ids: &[String],
    ) -> Result<Vec<StoredRecord>, PortError> {
        let pk = records_pk(feed);
        let keys = ids.iter().map(|id| key(&pk, id)).collect();
        self.batch_get(keys, None, true)
            .await?
            .iter()
            .map(|it| decode_record(it, "BatchGetItem"))
            .collect()
    }

    async fn record_ids(
        &self,
        feed: &FeedKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IdPage, PortError> {
        // One more than asked tells whether more follow.
        let found = self
            .query_after(
                &records_pk(feed),
                after,
                limit.saturating_add(1),
                Some(("#sk, #action", &[("#sk", SK), ("#action", ACTION)])),
            )
            .await?;
        let more = found.len() > limit;
        let ids = found
            .iter()
            .take(limit)
            .map(|it| Ok((string(it, SK, "Query")?, action(it, "Query")?)))
            .collect::<Result<Vec<_>, PortError>>()?;
        let next = if more {
            ids.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        Ok((ids, next))
    }

    async fn put_seen(
        &self,
        feed: &FeedKey,
        run: &SyncRunId,
        ids: &[String],
        expires_at_s: i64,
    ) -> Result<(), PortError> {
        // A fresh, time-ordered sort key per chunk: a chunk written again after a crash adds
        // ids to a set, it never overwrites another chunk.
        let sk = format!("{run}#{}", EventId::generate());
        let mut it = key(&seen_pk(feed), &sk);
        it.insert(SEEN_IDS.into(), json(&ids)?);
        it.insert(EXPIRES_AT.into(), n(expires_at_s));
        if item_size(&it) > MAX_ITEM_BYTES {
            return Err(rejected(
                "PutItem",
                format!(
                    "a chunk of {} seen ids is over DynamoDB's item size",
                    ids.len()
                ),
            ));
        }
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(it))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "PutItem", e, |_| None))?;
        Ok(())
    }

    async fn seen(&self, feed: &FeedKey, run: &SyncRunId) -> Result<Vec<String>, PortError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk AND begins_with(sk, :run)")
                .expression_attribute_values(":pk", s(seen_pk(feed)))
                .expression_attribute_values(":run", s(format!("{run}#")))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(Service::Store, "Query", e, |_| None))?;
            for it in out.items.unwrap_or_default() {
                let chunk: Vec<String> = from_json(&it, SEEN_IDS, "Query")?;
                ids.extend(chunk);
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(ids),
            }
        }
    }

    async fn purge(&self, feed: &FeedKey, max_items: usize) -> Result<bool, PortError> {
        let mut left = max_items.max(1);
        for pk in [records_pk(feed), pages_pk(feed), seen_pk(feed)] {
            let (removed, gone) = self.purge_partition(&pk, left).await?;
            left -= removed;
            if !gone || left == 0 {
                // Out of budget, or more in this partition: the next call goes on.
                return Ok(gone && pk == seen_pk(feed));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    //! How requests are cut to DynamoDB's limits, read from what a recording stand-in received:
    //! moto accepts oversized batches and duplicate keys, so only this proves them.

    use std::collections::HashSet;

    use serde_json::Value;
    use tributary_core::ids::{ConnectionId, SyncRunId, TenantId};
    use tributary_core::records::content_hash;

    use super::*;
    use crate::recorder::{Call, Recorder};

    fn feed() -> FeedKey {
        FeedKey {
            tenant_id: TenantId::generate(),
            connection_id: ConnectionId::generate(),
            model: "contact".into(),
        }
    }

    fn record(id: &str, data: String) -> StoredRecord {
        StoredRecord {
            id: id.into(),
            hash: content_hash(&data),
            data,
            action: RecordAction::Added,
            first_seen_ms: 1,
            last_modified_ms: 1,
            run_id: SyncRunId::generate(),
            position: FeedPosition { page: 1, index: 0 },
            expires_at_s: Some(2_000_000_000),
        }
    }

    fn of(calls: &[Call], operation: &str) -> Vec<Call> {
        calls
            .iter()
            .filter(|c| c.operation() == operation)
            .cloned()
            .collect()
    }

    /// The (pk, sk) of each request of one batch call.
    fn keys(call: &Call) -> Vec<(String, String)> {
        let key = |v: &Value| {
            (
                v["pk"]["S"].as_str().unwrap().to_owned(),
                v["sk"]["S"].as_str().unwrap().to_owned(),
            )
        };
        let tables = call.body["RequestItems"].as_object().unwrap();
        assert_eq!(tables.len(), 1, "one table per call");
        let requests = tables.values().next().unwrap();
        match requests {
            Value::Array(writes) => writes
                .iter()
                .map(|w| key(&w["PutRequest"]["Item"]))
                .collect(),
            reads => reads["Keys"].as_array().unwrap().iter().map(key).collect(),
        }
    }

    fn assert_unique(keys: &[(String, String)]) {
        let unique: HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "a key twice in one request");
    }

    #[tokio::test]
    async fn records_are_written_25_a_request_and_no_key_twice_in_one() {
        let aws = Recorder::start();
        let feed = feed();
        // 60 writes of 53 ids: 7 ids twice, the last write of each kept.
        let records: Vec<StoredRecord> = (0..60)
            .map(|i| record(&format!("r{}", i % 53), format!("{{\"v\":{i}}}")))
            .collect();
        aws.records().put_records(&feed, &records).await.unwrap();

        let calls = of(&aws.take(), "BatchWriteItem");
        let sizes: Vec<usize> = calls.iter().map(|c| keys(c).len()).collect();
        assert_eq!(sizes, [25, 25, 3]);
        let mut all = Vec::new();
        for call in &calls {
            let k = keys(call);
            assert_unique(&k);
            all.extend(k);
        }
        assert_unique(&all);
        assert_eq!(all.len(), 53);
        let r0 = calls
            .iter()
            .flat_map(|c| c.body["RequestItems"]["records"].as_array().unwrap())
            .find(|w| w["PutRequest"]["Item"]["sk"]["S"] == "r0")
            .unwrap();
        assert_eq!(r0["PutRequest"]["Item"]["data"]["S"], "{\"v\":53}");
    }

    fn a_page(seq: u64) -> FeedPage {
        FeedPage {
            seq,
            run_id: SyncRunId::generate(),
            entries: vec!["r0".into()],
            committed_at_ms: 1,
            run_position: None,
            run_stats: Default::default(),
            expires_at_s: None,
        }
    }

    /// The sort keys a transaction puts, and the condition of each put.
    fn transaction(call: &Call) -> Vec<(String, Option<String>)> {
        call.body["TransactItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["Put"]["Item"]["sk"]["S"].as_str().unwrap().to_owned(),
                    t["Put"]["ConditionExpression"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_page_is_committed_with_its_last_records_in_one_transaction_after_the_others() {
        let aws = Recorder::start();
        let feed = feed();
        let page = a_page(7);
        for (n, batches, in_transaction) in [
            (100, vec![25, 25, 25], 25),
            (101, vec![25, 25, 25, 25], 1),
            (90, vec![25, 25, 25], 15),
            (25, vec![], 25),
            (1, vec![], 1),
        ] {
            let records: Vec<StoredRecord> = (0..n)
                .map(|i| record(&format!("r{i:03}"), format!("{{\"v\":{i}}}")))
                .collect();
            aws.records()
                .write_page(&feed, &records, &page)
                .await
                .unwrap();
            let calls = aws.take();
            let operations: Vec<&str> = calls.iter().map(Call::operation).collect();
            let mut expected = vec!["BatchWriteItem"; batches.len()];
            expected.push("TransactWriteItems");
            assert_eq!(operations, expected, "{n} records");
            let sizes: Vec<usize> = calls[..batches.len()]
                .iter()
                .map(|c| keys(c).len())
                .collect();
            assert_eq!(sizes, batches, "{n} records");
            let last = transaction(calls.last().unwrap());
            assert_eq!(last.len(), in_transaction + 1, "{n} records");
            // The records the batches did not write, in order, then the conditional commit.
            let first = n - in_transaction;
            for (i, (sk, condition)) in last[..in_transaction].iter().enumerate() {
                assert_eq!(*sk, format!("r{:03}", first + i));
                assert_eq!(*condition, None);
            }
            assert_eq!(
                last[in_transaction],
                (page_sk(7), Some("attribute_not_exists(pk)".to_owned()))
            );
        }
    }

    #[tokio::test]
    async fn a_page_without_records_is_one_conditional_put_and_large_records_leave_the_transaction_under_4_mb()
     {
        let aws = Recorder::start();
        let feed = feed();
        aws.records()
            .write_page(&feed, &[], &a_page(1))
            .await
            .unwrap();
        let calls = aws.take();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].operation(), "PutItem");
        assert_eq!(
            calls[0].body["ConditionExpression"],
            "attribute_not_exists(pk)"
        );

        // 30 records of 300 KB: the five after the first batch would make 1.5 MB, under 4 MB;
        // 20 of them (the last 20 after none in batches) would not.
        let big = |i: usize| record(&format!("b{i:02}"), format!("\"{}\"", "x".repeat(300_000)));
        let records: Vec<StoredRecord> = (0..20).map(big).collect();
        aws.records()
            .write_page(&feed, &records, &a_page(2))
            .await
            .unwrap();
        let calls = aws.take();
        let last = calls.last().unwrap();
        assert_eq!(last.operation(), "TransactWriteItems");
        let size: usize = last.body.to_string().len();
        assert!(size < 4_000_000, "a transaction of {size} bytes");
        let in_transaction = transaction(last).len() - 1;
        assert_eq!(in_transaction, 13, "as many as fit under 4 MB");
        let batched: usize = calls[..calls.len() - 1].iter().map(|c| keys(c).len()).sum();
        assert_eq!(batched + in_transaction, 20);
    }

    #[tokio::test]
    async fn a_record_written_twice_in_a_page_is_written_once_with_its_last_content() {
        let aws = Recorder::start();
        let records = vec![
            record("a", "1".into()),
            record("b", "2".into()),
            record("a", "3".into()),
        ];
        aws.records()
            .write_page(&feed(), &records, &a_page(1))
            .await
            .unwrap();
        let calls = aws.take();
        assert_eq!(calls.len(), 1);
        let items = calls[0].body["TransactItems"].as_array().unwrap();
        let written: Vec<(&str, &str)> = items[..2]
            .iter()
            .map(|t| {
                (
                    t["Put"]["Item"]["sk"]["S"].as_str().unwrap(),
                    t["Put"]["Item"]["data"]["S"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(written, [("b", "2"), ("a", "3")]);
    }

    #[tokio::test]
    async fn a_record_over_400_kb_is_refused_by_id_before_anything_is_sent() {
        let aws = Recorder::start();
        let feed = feed();
        let mut records: Vec<StoredRecord> = (0..30)
            .map(|i| record(&format!("r{i}"), "{}".into()))
            .collect();
        records[27] = record("huge", format!("\"{}\"", "x".repeat(MAX_ITEM_BYTES)));
        let refused = aws.records().put_records(&feed, &records).await;
        match refused {
            Err(PortError::Rejected { detail, .. }) => {
                assert!(detail.contains("`huge`"), "{detail}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(aws.take().is_empty(), "nothing is sent");

        // Just under the limit is written.
        let big = record("big", format!("\"{}\"", "x".repeat(MAX_ITEM_BYTES - 1000)));
        aws.records().put_records(&feed, &[big]).await.unwrap();
        assert_eq!(of(&aws.take(), "BatchWriteItem").len(), 1);
    }

    #[tokio::test]
    async fn record_meta_reads_100_ids_at_most_eventually_consistent_and_never_the_data() {
        let aws = Recorder::start();
        let feed = feed();
        let ids: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
        assert!(matches!(
            aws.records().record_meta(&feed, &ids).await,
            Err(PortError::Rejected { .. })
        ));
        assert!(aws.take().is_empty(), "nothing is sent");

        // 100 ids, 10 of them twice: one request of the 90 distinct keys.
        let ids: Vec<String> = (0..100).map(|i| format!("r{}", i % 90)).collect();
        aws.records().record_meta(&feed, &ids).await.unwrap();
        let calls = of(&aws.take(), "BatchGetItem");
        assert_eq!(calls.len(), 1);
        let k = keys(&calls[0]);
        assert_unique(&k);
        assert_eq!(k.len(), 90);
        let request = &calls[0].body["RequestItems"]["records"];
        assert_eq!(request["ConsistentRead"], false, "half the read cost");
        let names: Vec<&str> = request["ExpressionAttributeNames"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(request["ProjectionExpression"].is_string());
        assert!(!names.contains(&DATA), "{names:?}");
        for needed in [SK, HASH, ACTION, FIRST_SEEN, PAGE, INDEX] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
    }

    #[tokio::test]
    async fn records_are_read_100_keys_a_request() {
        let aws = Recorder::start();
        let feed = feed();
        let ids: Vec<String> = (0..260).map(|i| format!("r{}", i % 250)).collect();
        aws.records().get_records(&feed, &ids).await.unwrap();
        let calls = of(&aws.take(), "BatchGetItem");
        let sizes: Vec<usize> = calls.iter().map(|c| keys(c).len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let all: Vec<_> = calls.iter().flat_map(keys).collect();
        assert_unique(&all);
        for call in &calls {
            assert_eq!(call.body["RequestItems"]["records"]["ConsistentRead"], true);
        }
    }

    #[tokio::test]
    async fn a_feed_page_over_400_kb_is_refused_before_it_is_sent() {
        let aws = Recorder::start();
        let page = FeedPage {
            seq: 7,
            run_id: SyncRunId::generate(),
            entries: (0..1000).map(|i| format!("{i:0>500}")).collect(),
            committed_at_ms: 1,
            run_position: None,
            run_stats: Default::default(),
            expires_at_s: None,
        };
        assert!(matches!(
            aws.records().commit_page(&feed(), &page).await,
            Err(PortError::Rejected { .. })
        ));
        assert!(aws.take().is_empty());
    }

    #[test]
    fn feed_pages_sort_by_sequence_number() {
        assert!(page_sk(9) < page_sk(10));
        assert!(page_sk(99_999) < page_sk(u64::MAX));
        assert_eq!(page_sk(u64::MAX).len(), 20);
    }
}
