//! DynamoDB adapter. Every table has a string partition key `pk` and sort key `sk`, and a TTL attribute
//! `expires_at` in epoch seconds. Batch writes respect the service's limits (25 requests, no duplicate
//! keys per request) and retry `UnprocessedItems` with backoff, because DynamoDB may accept only part of
//! a batch under load; batch reads likewise (100 keys, no duplicates, `UnprocessedKeys` retried).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use tributary_core::PortError;
use tributary_core::canary::CanaryObservation;
use tributary_core::error::Service;
use tributary_core::ids::JobId;
use tributary_core::ports::{CanaryStore, JobLedger};
use tributary_core::time::{Clock, SystemClock};

use crate::backoff::Backoff;
use crate::errors::classify;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The most write requests one `BatchWriteItem` call may carry.
pub const MAX_BATCH_WRITE: usize = 25;

/// The most keys one `BatchGetItem` call may carry.
pub const MAX_BATCH_GET: usize = 100;

/// DynamoDB's largest item, in bytes (400 KB), as [`item_size`] counts them.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The partition key attribute of every table.
pub const PK: &str = "pk";
/// The sort key attribute of every table.
pub const SK: &str = "sk";
/// The TTL attribute (epoch seconds) of every table.
pub const EXPIRES_AT: &str = "expires_at";

const CANARY_PK: &str = "SYSTEM";
const CANARY_SK: &str = "CANARY";

/// One DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    name: String,
}

impl DynamoTable {
    /// The table `name`, reached through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The DynamoDB client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Puts many items with as few `BatchWriteItem` calls as the limits allow. When several items share
    /// a key, the last one wins (DynamoDB refuses duplicate keys within one request). Unprocessed items
    /// are retried with jittered backoff; if some remain after the retries, the call fails with
    /// [`PortError::Throttled`] and the caller must not treat the batch as durable.
    pub async fn batch_put(&self, items: Vec<Item>) -> Result<(), PortError> {
        for chunk in plan_batches(items)? {
            let requests = chunk
                .into_iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| PortError::Rejected {
                            service: Service::Store,
                            operation: "BatchWriteItem",
                            detail: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            drain_unprocessed(requests, Backoff::BATCH, |batch| self.send_batch(batch)).await?;
        }
        Ok(())
    }

    /// Sends many prepared write requests (puts and deletes, no key twice) in chunks of 25, retrying
    /// unprocessed requests like [`DynamoTable::batch_put`].
    pub(crate) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), PortError> {
        let mut rest = requests.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<WriteRequest> = rest.by_ref().take(MAX_BATCH_WRITE).collect();
            drain_unprocessed(chunk, Backoff::BATCH, |batch| self.send_batch(batch)).await?;
        }
        Ok(())
    }

    /// Sends one `BatchWriteItem` request and returns the requests DynamoDB left unprocessed.
    async fn send_batch(&self, batch: Vec<WriteRequest>) -> Result<Vec<WriteRequest>, PortError> {
        let out = self
            .client
            .batch_write_item()
            .request_items(&self.name, batch)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "BatchWriteItem", e, |_| None))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(&self.name))
            .unwrap_or_default())
    }

    /// Reads the items with these keys (strongly consistent when `consistent`), in no particular order, with as few
    /// `BatchGetItem` calls as the limits allow: a key given twice is read once, and unprocessed
    /// keys are retried like [`DynamoTable::batch_put`]'s items. `projection` (an expression and
    /// its attribute names) limits what each item carries.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: Option<(&str, &[(&str, &str)])>,
        consistent: bool,
    ) -> Result<Vec<Item>, PortError> {
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        let mut unique = Vec::with_capacity(keys.len());
        for key in keys {
            if seen.insert((key_part(&key, PK)?, key_part(&key, SK)?)) {
                unique.push(key);
            }
        }
        let mut found = Vec::with_capacity(unique.len());
        let mut rest = unique.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Item> = rest.by_ref().take(MAX_BATCH_GET).collect();
            found.extend(
                retry_unprocessed(chunk, Backoff::BATCH, "BatchGetItem", |keys| {
                    self.send_batch_get(keys, projection, consistent)
                })
                .await?,
            );
        }
        Ok(found)
    }

    /// Sends one `BatchGetItem` request: the items found, and the keys DynamoDB left unprocessed.
    async fn send_batch_get(
        &self,
        keys: Vec<Item>,
        projection: Option<(&str, &[(&str, &str)])>,
        consistent: bool,
    ) -> Result<(Vec<Item>, Vec<Item>), PortError> {
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(consistent);
        if let Some((expression, names)) = projection {
            request = request.projection_expression(expression);
            for (placeholder, name) in names {
                request = request.expression_attribute_names(*placeholder, *name);
            }
        }
        let request = request.build().map_err(|e| PortError::Rejected {
            service: Service::Store,
            operation: "BatchGetItem",
            detail: e.to_string(),
        })?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.name, request)
            .send()
            .await
            .map_err(|e| classify(Service::Store, "BatchGetItem", e, |_| None))?;
        let found = out
            .responses
            .and_then(|mut by_table| by_table.remove(&self.name))
            .unwrap_or_default();
        let unprocessed = out
            .unprocessed_keys
            .and_then(|mut by_table| by_table.remove(&self.name))
            .map(|k| k.keys)
            .unwrap_or_default();
        Ok((found, unprocessed))
    }

    pub(crate) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(PK, AttributeValue::S(pk.to_owned()))
            .key(SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                classify(Service::Store, "GetItem", e, |inner| match inner {
                    GetItemError::ResourceNotFoundException(_) => Some(PortError::NotFound {
                        service: Service::Store,
                        operation: "GetItem",
                    }),
                    _ => None,
                })
            })?;
        Ok(out.item)
    }
}

/// Splits items into `BatchWriteItem`-sized chunks: at most 25 each, no key twice in a chunk, and the
/// last item for a key kept (so the outcome equals writing them one by one in order).
pub fn plan_batches(items: Vec<Item>) -> Result<Vec<Vec<Item>>, PortError> {
    let mut position: HashMap<(String, String), usize> = HashMap::new();
    let mut unique: Vec<Option<Item>> = Vec::with_capacity(items.len());
    for item in items {
        let key = (key_part(&item, PK)?, key_part(&item, SK)?);
        match position.get(&key) {
            Some(&at) => unique[at] = Some(item),
            None => {
                position.insert(key, unique.len());
                unique.push(Some(item));
            }
        }
    }
    let unique: Vec<Item> = unique.into_iter().flatten().collect();
    let mut chunks = Vec::with_capacity(unique.len().div_ceil(MAX_BATCH_WRITE));
    let mut iter = unique.into_iter().peekable();
    while iter.peek().is_some() {
        chunks.push(iter.by_ref().take(MAX_BATCH_WRITE).collect());
    }
    Ok(chunks)
}

fn key_part(item: &Item, name: &'static str) -> Result<String, PortError> {
    match item.get(name) {
        Some(AttributeValue::S(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(PortError::Rejected {
            service: Service::Store,
            operation: "BatchWriteItem",
            detail: format!("item lacks a non-empty string `{name}`"),
        }),
    }
}

/// Sends `requests` through `send` until none are left unprocessed, waiting with `backoff` between
/// rounds. Fails with [`PortError::Throttled`] when items remain after the last retry.
pub async fn drain_unprocessed<F, Fut>(
    requests: Vec<WriteRequest>,
    backoff: Backoff,
    mut send: F,
) -> Result<(), PortError>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<WriteRequest>, PortError>>,
{
    retry_unprocessed(requests, backoff, "BatchWriteItem", |batch| {
        let sent = send(batch);
        async move { Ok((Vec::<()>::new(), sent.await?)) }
    })
    .await
    .map(drop)
}

/// Sends `pending` through `send`, which answers what it produced and what it left unprocessed,
/// until nothing is left, waiting with `backoff` between rounds; returns everything produced. Fails
/// with [`PortError::Throttled`] on `operation` when something remains after the last retry.
pub async fn retry_unprocessed<T, O, F, Fut>(
    mut pending: Vec<T>,
    backoff: Backoff,
    operation: &'static str,
    mut send: F,
) -> Result<Vec<O>, PortError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<O>, Vec<T>), PortError>>,
{
    let mut produced = Vec::new();
    let mut attempt = 0;
    loop {
        let (out, left) = send(pending).await?;
        produced.extend(out);
        pending = left;
        if pending.is_empty() {
            return Ok(produced);
        }
        if attempt >= backoff.max_retries {
            tracing::warn!(
                operation,
                remaining = pending.len(),
                "unprocessed batch items remain after retries"
            );
            return Err(PortError::Throttled {
                service: Service::Store,
                operation,
            });
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
        attempt += 1;
    }
}

/// The size DynamoDB counts for an item, or a little more (never less): attribute names and
/// values, numbers at their largest for their length, lists and maps with their overheads. An
/// item over [`MAX_ITEM_BYTES`] by this count is refused before anything is sent, so that one
/// oversized item does not fail a whole batch.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        // (significant digits / 2) + 1 bytes, at most 21.
        AttributeValue::N(n) => (n.len() + 1).min(21),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| (n.len() + 1).min(21)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, i)| 1 + k.len() + value_size(i))
                .sum::<usize>()
        }
        // Null and booleans (and any kind a newer SDK adds: none is large).
        _ => 1,
    }
}

/// One of `shards` partitions of an index, by a stable hash (FNV-1a) of `key`: the same key
/// always lands in the same partition, and keys spread evenly.
pub(crate) fn shard(key: &str, shards: u32) -> u32 {
    let h = key.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    h % shards
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn corrupt(operation: &'static str, detail: impl Into<String>) -> PortError {
    PortError::Corrupt {
        service: Service::Store,
        operation,
        detail: detail.into(),
    }
}

impl CanaryStore for DynamoTable {
    async fn record(&self, observation: &CanaryObservation) -> Result<(), PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .item(PK, AttributeValue::S(CANARY_PK.to_owned()))
            .item(SK, AttributeValue::S(CANARY_SK.to_owned()))
            .item("job_id", AttributeValue::S(observation.job_id.to_string()))
            .item(
                "enqueued_at_ms",
                AttributeValue::N(observation.enqueued_at_ms.to_string()),
            )
            .item(
                "processed_at_ms",
                AttributeValue::N(observation.processed_at_ms.to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR enqueued_at_ms <= :enqueued")
            .expression_attribute_values(
                ":enqueued",
                AttributeValue::N(observation.enqueued_at_ms.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match classify(Service::Store, "PutItem", e, |inner| match inner {
                PutItemError::ConditionalCheckFailedException(_) => Some(PortError::Conflict {
                    service: Service::Store,
                    operation: "PutItem",
                }),
                _ => None,
            }) {
                // A newer canary is already recorded: this one is old news, not a failure.
                PortError::Conflict { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn latest(&self) -> Result<Option<CanaryObservation>, PortError> {
        let Some(item) = self.get(CANARY_PK, CANARY_SK).await? else {
            return Ok(None);
        };
        let job_id = match item.get("job_id") {
            Some(AttributeValue::S(s)) => s
                .parse::<JobId>()
                .map_err(|e| corrupt("GetItem", e.to_string()))?,
            _ => return Err(corrupt("GetItem", "canary item lacks job_id")),
        };
        Ok(Some(CanaryObservation {
            job_id,
            enqueued_at_ms: number(&item, "enqueued_at_ms")
                .ok_or_else(|| corrupt("GetItem", "canary item lacks enqueued_at_ms"))?,
            processed_at_ms: number(&item, "processed_at_ms")
                .ok_or_else(|| corrupt("GetItem", "canary item lacks processed_at_ms"))?,
        }))
    }
}

fn ledger_pk(id: &JobId) -> String {
    format!("JOB#{id}")
}

const LEDGER_SK: &str = "DONE";

impl JobLedger for DynamoTable {
    async fn is_done(&self, id: &JobId) -> Result<bool, PortError> {
        let Some(item) = self.get(&ledger_pk(id), LEDGER_SK).await? else {
            return Ok(false);
        };
        // TTL deletion is lazy (it can lag by days): an expired record counts as absent.
        let now_secs = SystemClock.now_ms() / 1000;
        Ok(number(&item, EXPIRES_AT).is_none_or(|expires| expires > now_secs))
    }

    async fn mark_done(&self, id: &JobId, keep: Duration) -> Result<(), PortError> {
        let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let expires = (SystemClock.now_ms() / 1000).saturating_add(keep_secs);
        self.client
            .put_item()
            .table_name(&self.name)
            .item(PK, AttributeValue::S(ledger_pk(id)))
            .item(SK, AttributeValue::S(LEDGER_SK.to_owned()))
            .item(EXPIRES_AT, AttributeValue::N(expires.to_string()))
            .send()
            .await
            .map_err(|e| classify(Service::Store, "PutItem", e, |_| None))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn item(pk: &str, sk: &str, v: &str) -> Item {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(pk.to_owned())),
            (SK.to_owned(), AttributeValue::S(sk.to_owned())),
            ("v".to_owned(), AttributeValue::S(v.to_owned())),
        ])
    }

    #[test]
    fn batches_hold_at_most_25_items_with_unique_keys() {
        let items: Vec<Item> = (0..60)
            .map(|i| item("p", &format!("{}", i % 53), &i.to_string()))
            .collect();
        let chunks = plan_batches(items).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![25, 25, 3]
        );
        for chunk in &chunks {
            let mut keys: Vec<_> = chunk.iter().map(|i| i.get(SK).cloned()).collect();
            keys.sort_by_key(|k| format!("{k:?}"));
            keys.dedup();
            assert_eq!(keys.len(), chunk.len());
        }
        // The last write for a duplicated key wins: sk "0" was written by i=0 and i=53.
        let zero = chunks
            .iter()
            .flatten()
            .find(|i| i.get(SK) == Some(&AttributeValue::S("0".into())))
            .unwrap();
        assert_eq!(zero.get("v"), Some(&AttributeValue::S("53".into())));
    }

    #[test]
    fn items_without_keys_are_rejected() {
        let mut bad = item("p", "s", "v");
        bad.remove(SK);
        assert!(matches!(
            plan_batches(vec![bad]),
            Err(PortError::Rejected { .. })
        ));
    }

    #[test]
    fn no_items_means_no_batches() {
        assert!(plan_batches(Vec::new()).unwrap().is_empty());
    }

    fn write(n: usize) -> Vec<WriteRequest> {
        (0..n)
            .map(|i| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item("p", &i.to_string(), "v")))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect()
    }

    const FAST: Backoff = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(2),
        max_retries: 3,
    };

    #[tokio::test]
    async fn when_items_come_back_unprocessed_should_resend_only_those() {
        let sent = Mutex::new(Vec::new());
        drain_unprocessed(write(25), FAST, |batch| {
            sent.lock().unwrap().push(batch.len());
            // Half of every request comes back unprocessed until 4 or fewer remain.
            let back = if batch.len() > 4 {
                batch[batch.len() / 2..].to_vec()
            } else {
                Vec::new()
            };
            async move { Ok(back) }
        })
        .await
        .unwrap();
        assert_eq!(*sent.lock().unwrap(), vec![25, 13, 7, 4]);
    }

    #[tokio::test]
    async fn when_keys_come_back_unprocessed_should_reread_only_those_and_keep_what_was_found() {
        let sent = Mutex::new(Vec::new());
        let keys: Vec<u32> = (0..100).collect();
        let found = retry_unprocessed(keys, FAST, "BatchGetItem", |batch: Vec<u32>| {
            sent.lock().unwrap().push(batch.len());
            // The first 30 of every request are read, the rest come back.
            let split = batch.len().min(30);
            let (read, back) = batch.split_at(split);
            let (read, back) = (read.to_vec(), back.to_vec());
            async move { Ok((read, back)) }
        })
        .await
        .unwrap();
        assert_eq!(*sent.lock().unwrap(), vec![100, 70, 40, 10]);
        let mut found = found;
        found.sort_unstable();
        assert_eq!(found, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn when_keys_stay_unprocessed_should_fail_throttled_on_the_read() {
        let result = retry_unprocessed(vec![1, 2], FAST, "BatchGetItem", |batch: Vec<u32>| async {
            Ok((Vec::<u32>::new(), batch))
        })
        .await;
        assert!(matches!(
            result,
            Err(PortError::Throttled {
                operation: "BatchGetItem",
                ..
            })
        ));
    }

    #[test]
    fn item_size_counts_names_and_values_and_never_less_than_dynamodb() {
        let it = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("p".into())),
            ("n".to_owned(), AttributeValue::N("12345".into())),
            (
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("ab".into())]),
            ),
        ]);
        // pk: 2 + 1; n: 1 + (3 + 1 as DynamoDB counts it, 6 here); l: 1 + 3 + 1 + 2.
        assert_eq!(item_size(&it), 3 + 7 + 7);
        let huge = HashMap::from([(
            "data".to_owned(),
            AttributeValue::S("x".repeat(MAX_ITEM_BYTES)),
        )]);
        assert!(item_size(&huge) > MAX_ITEM_BYTES);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard("sync_a", 16), shard("sync_a", 16));
        let used: std::collections::HashSet<u32> =
            (0..200).map(|i| shard(&format!("id{i}"), 16)).collect();
        assert_eq!(used.len(), 16);
    }

    #[tokio::test]
    async fn when_items_stay_unprocessed_should_fail_throttled() {
        let calls = Mutex::new(0);
        let result = drain_unprocessed(write(3), FAST, |batch| {
            *calls.lock().unwrap() += 1;
            async move { Ok(batch) }
        })
        .await;
        assert!(matches!(result, Err(PortError::Throttled { .. })));
        assert_eq!(*calls.lock().unwrap(), 1 + FAST.max_retries);
    }
}
