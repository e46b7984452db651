//! SQS adapter for the jobs queue and its dead-letter queue: single and batch sends (10 entries and
//! at most 1 MiB per request), delays, visibility changes for backoff, and depth for health.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::job::JobEnvelope;
use tributary_core::ports::{JobQueue, QueueDepth, QueueStats};

use crate::backoff::Backoff;
use crate::lazy::Lazy;

/// The most entries one `SendMessageBatch` call may carry.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The most bytes one message, and one batch in total, may carry (the queue's `MaximumMessageSize`).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// The longest delay SQS accepts on a message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS accepts.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Lazy<Client>,
    url: String,
}

impl SqsQueue {
    /// The queue at `url`, reached through `client` (a client, or one built on first use).
    pub fn new(client: impl Into<Lazy<Client>>, url: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            url: url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends raw bodies in batches; returns once every body is accepted.
    async fn send_bodies(&self, bodies: Vec<String>) -> Result<(), PortError> {
        for chunk in plan_send_batches(bodies)? {
            let mut pending: Vec<(String, String)> = chunk
                .into_iter()
                .enumerate()
                .map(|(i, body)| (i.to_string(), body))
                .collect();
            let backoff = Backoff::BATCH;
            let mut attempt = 0;
            while !pending.is_empty() {
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .map_err(|e| rejected("SendMessageBatch", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .get()
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        crate::errors::classify(Service::Queue, "SendMessageBatch", e, |_| None)
                    })?;
                if let Some(fault) = out.failed.iter().find(|f| f.sender_fault) {
                    return Err(rejected("SendMessageBatch", fault.code.clone()));
                }
                let failed: Vec<&str> = out.failed.iter().map(|f| f.id.as_str()).collect();
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
                if pending.is_empty() {
                    break;
                }
                if attempt >= backoff.max_retries {
                    return Err(PortError::Throttled {
                        service: Service::Queue,
                        operation: "SendMessageBatch",
                    });
                }
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
        }
        Ok(())
    }
}

fn rejected(operation: &'static str, detail: String) -> PortError {
    PortError::Rejected {
        service: Service::Queue,
        operation,
        detail,
    }
}

/// Splits bodies into `SendMessageBatch` requests: at most 10 entries and 1 MiB in total each.
/// A single body over 1 MiB is refused.
pub fn plan_send_batches(bodies: Vec<String>) -> Result<Vec<Vec<String>>, PortError> {
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_bytes = 0;
    for body in bodies {
        if body.len() > MAX_BATCH_BYTES {
            return Err(rejected(
                "SendMessageBatch",
                format!(
                    "message of {} bytes exceeds {MAX_BATCH_BYTES} bytes",
                    body.len()
                ),
            ));
        }
        if current.len() == MAX_BATCH_ENTRIES || current_bytes + body.len() > MAX_BATCH_BYTES {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += body.len();
        current.push(body);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

fn whole_seconds(d: Duration, max: Duration) -> i32 {
    i32::try_from(d.min(max).as_secs()).unwrap_or(i32::MAX)
}

impl JobQueue for SqsQueue {
    async fn send(&self, job: &JobEnvelope, delay: Duration) -> Result<(), PortError> {
        self.client
            .get()
            .send_message()
            .queue_url(&self.url)
            .message_body(job.to_body())
            .delay_seconds(whole_seconds(delay, MAX_DELAY))
            .send()
            .await
            .map_err(|e| crate::errors::classify(Service::Queue, "SendMessage", e, |_| None))?;
        Ok(())
    }

    async fn send_batch(&self, jobs: &[JobEnvelope]) -> Result<(), PortError> {
        self.send_bodies(jobs.iter().map(JobEnvelope::to_body).collect())
            .await
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        self.client
            .get()
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_seconds(delay, MAX_VISIBILITY))
            .send()
            .await
            .map_err(|e| {
                crate::errors::classify(Service::Queue, "ChangeMessageVisibility", e, |_| None)
            })?;
        Ok(())
    }
}

impl QueueStats for SqsQueue {
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        let out = self
            .client
            .get()
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| {
                crate::errors::classify(Service::Queue, "GetQueueAttributes", e, |_| None)
            })?;
        let attrs = out.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attrs
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let chunks = plan_send_batches((0..23).map(|i| i.to_string()).collect()).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
    }

    #[test]
    fn batches_hold_at_most_one_mebibyte() {
        let big = "x".repeat(400 * 1024);
        let chunks = plan_send_batches(vec![big.clone(), big.clone(), big.clone()]).unwrap();
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        for chunk in chunks {
            assert!(chunk.iter().map(String::len).sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn oversized_message_is_refused() {
        let too_big = "x".repeat(MAX_BATCH_BYTES + 1);
        assert!(matches!(
            plan_send_batches(vec![too_big]),
            Err(PortError::Rejected { .. })
        ));
    }

    #[test]
    fn delays_are_clamped_to_sqs_limits() {
        assert_eq!(whole_seconds(Duration::from_secs(3600), MAX_DELAY), 900);
        assert_eq!(whole_seconds(Duration::from_millis(1500), MAX_DELAY), 1);
    }
}
