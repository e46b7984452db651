//! The SQS event source mapping: polls a queue, delivers batches to the function, and deletes what
//! succeeded. Visibility timeouts and the redrive to the dead-letter queue are moto's own (it moves a
//! message once `maxReceiveCount` receives are exceeded, as SQS does).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::invoke::Invoker;
use crate::moto::REGION;
use crate::resources::QueueInfo;
use crate::template::SqsSourceDef;

/// Longest long-poll per receive: short, so batching windows and shutdown stay responsive.
const WAIT_SECONDS: i32 = 1;

/// One event source mapping.
#[derive(Debug, Clone)]
pub(crate) struct SqsSource {
    /// The function (binary name).
    pub function: String,
    /// The queue.
    pub queue: QueueInfo,
    /// The mapping's settings.
    pub def: SqsSourceDef,
}

/// Polls until the task is aborted.
pub(crate) async fn run(source: SqsSource, sqs: aws_sdk_sqs::Client, invoker: Invoker) {
    loop {
        let batch = match receive_batch(&source, &sqs).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = %source.queue.name, error = %e, "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        deliver(&source, &sqs, &invoker, batch).await;
    }
}

async fn receive_batch(
    source: &SqsSource,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Vec<Message>, String> {
    let wanted = usize::try_from(source.def.batch_size.max(1)).unwrap_or(10);
    let window_ends = Instant::now() + source.def.batching_window;
    let mut batch = Vec::new();
    loop {
        let room = i32::try_from((wanted - batch.len()).min(10)).unwrap_or(10);
        let received = sqs
            .receive_message()
            .queue_url(&source.queue.url)
            .max_number_of_messages(room)
            .wait_time_seconds(WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| crate::Error::aws("ReceiveMessage", e).to_string())?;
        batch.extend(received.messages.unwrap_or_default());
        if batch.len() >= wanted || Instant::now() >= window_ends {
            return Ok(batch);
        }
    }
}

/// Builds the `SqsEvent` Lambda receives.
pub(crate) fn event(source: &SqsSource, batch: &[Message]) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            let message_attributes: BTreeMap<String, Value> = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(name, a)| {
                    let mut value = json!({
                        "dataType": a.data_type(),
                        "stringListValues": a.string_list_values(),
                        "binaryListValues": a
                            .binary_list_values()
                            .iter()
                            .map(|b| BASE64.encode(b.as_ref()))
                            .collect::<Vec<_>>(),
                    });
                    if let Some(s) = a.string_value() {
                        value["stringValue"] = json!(s);
                    }
                    if let Some(b) = a.binary_value() {
                        value["binaryValue"] = json!(BASE64.encode(b.as_ref()));
                    }
                    (name.clone(), value)
                })
                .collect();
            let mut record = json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue.arn,
                "awsRegion": REGION,
            });
            if let Some(md5) = m.md5_of_message_attributes() {
                record["md5OfMessageAttributes"] = json!(md5);
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

/// Which messages failed, per the `SQSBatchResponse`. `None` means the whole batch failed: Lambda
/// treats an unparsable response, or an `itemIdentifier` that is empty or not in the batch, so.
pub(crate) fn failed_ids(answer: &[u8], batch_ids: &HashSet<String>) -> Option<HashSet<String>> {
    let trimmed = answer.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Some(HashSet::new());
    }
    let value: Value = serde_json::from_slice(trimmed).ok()?;
    let failures = match value.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(HashSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .filter(|id| batch_ids.contains(*id))
                .map(str::to_owned)
        })
        .collect()
}

async fn deliver(
    source: &SqsSource,
    sqs: &aws_sdk_sqs::Client,
    invoker: &Invoker,
    batch: Vec<Message>,
) {
    let payload = Bytes::from(event(source, &batch).to_string());
    let ids: HashSet<String> = batch
        .iter()
        .filter_map(|m| m.message_id().map(str::to_owned))
        .collect();
    let failed = match invoker.invoke(&source.function, payload).await {
        Ok(answer) if source.def.report_batch_item_failures => match failed_ids(&answer, &ids) {
            Some(failed) => failed,
            None => {
                tracing::warn!(function = %source.function, answer = %String::from_utf8_lossy(&answer), "invalid batch response: the whole batch is retried");
                return;
            }
        },
        Ok(_) => HashSet::new(),
        Err(e) => {
            tracing::warn!(function = %source.function, error = %e, messages = batch.len(), "batch failed: messages return after their visibility timeout");
            return;
        }
    };
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id().is_some_and(|id| !failed.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                .build()
                .ok()
        })
        .collect();
    tracing::debug!(function = %source.function, delivered = batch.len(), failed = failed.len(), "batch done");
    for chunk in entries.chunks(10) {
        if let Err(e) = sqs
            .delete_message_batch()
            .queue_url(&source.queue.url)
            .set_entries(Some(chunk.to_vec()))
            .send()
            .await
        {
            tracing::warn!(queue = %source.queue.name, error = %crate::Error::aws("DeleteMessageBatch", e), "delete failed; the messages will be delivered again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn empty_or_null_response_means_every_message_succeeded() {
        let batch = ids(&["a", "b"]);
        assert_eq!(failed_ids(b"", &batch), Some(HashSet::new()));
        assert_eq!(failed_ids(b"null", &batch), Some(HashSet::new()));
        assert_eq!(failed_ids(b"{}", &batch), Some(HashSet::new()));
        assert_eq!(
            failed_ids(br#"{"batchItemFailures":[]}"#, &batch),
            Some(HashSet::new())
        );
    }

    #[test]
    fn listed_failures_are_kept_for_retry() {
        let batch = ids(&["a", "b"]);
        assert_eq!(
            failed_ids(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch),
            Some(ids(&["b"]))
        );
    }

    #[test]
    fn unknown_or_empty_identifier_fails_the_whole_batch() {
        let batch = ids(&["a"]);
        assert_eq!(
            failed_ids(
                br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#,
                &batch
            ),
            None
        );
        assert_eq!(
            failed_ids(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch),
            None
        );
        assert_eq!(failed_ids(b"not json", &batch), None);
    }

    #[test]
    fn event_carries_what_lambda_delivers() {
        let source = SqsSource {
            function: "f".into(),
            queue: QueueInfo {
                url: "http://q".into(),
                arn: "arn:aws:sqs:us-east-1:123456789012:q".into(),
                name: "q".into(),
            },
            def: SqsSourceDef {
                queue: "Q".into(),
                batch_size: 10,
                batching_window: Duration::ZERO,
                report_batch_item_failures: true,
            },
        };
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("not json")
            .md5_of_body("x")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .build();
        let event = event(&source, &[message]);
        let record = &event["Records"][0];
        assert_eq!(record["messageId"], "m1");
        assert_eq!(record["receiptHandle"], "r1");
        assert_eq!(record["body"], "not json");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q"
        );
        assert_eq!(record["eventSource"], "aws:sqs");
        assert_eq!(record["awsRegion"], "us-east-1");
        let parsed: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_value(event.clone()).expect("parses as an SqsEvent");
        assert_eq!(parsed.records.len(), 1);
        assert_eq!(parsed.records[0].message_id.as_deref(), Some("m1"));
    }
}
