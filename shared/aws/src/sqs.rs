//! SQS adapter for the jobs queue and its dead-letter queue: single and batch sends (10 entries and
//! at most 1 MiB per request), delays, visibility changes for backoff, and depth for health.
//!
//! Every message sent carries the X-Ray trace header of the invocation that sent it (the
//! `AWSTraceHeader` system attribute), so that the trace of a run continues the API call or
//! schedule that started it; [`received_trace_header`] reads it back on the consumer's side. (In
//! Lambda the SDK's recursion-detection interceptor also sends the header as `X-Amzn-Trace-Id`,
//! which SQS applies to the request's messages; the attribute does not depend on that, can be
//! tested, and takes precedence, as the X-Ray guide's "Amazon SQS and AWS X-Ray" says.)

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
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
/// The message system attribute that carries an X-Ray trace header, on sends and receives.
pub const TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";
/// The environment variable that holds the X-Ray trace header of the invocation being served.
const TRACE_HEADER_VAR: &str = "_X_AMZN_TRACE_ID";
/// The longest trace header we pass on (X-Ray's headers are about 100 bytes; with `Lineage`, a
/// few dozen more).
const MAX_TRACE_HEADER: usize = 256;

/// The X-Ray trace header of the invocation being served, if there is a well-formed one.
///
/// The Rust runtime sets the variable per invocation: `lambda_runtime` 1.5.0
/// (`src/runtime.rs`, `process_invocation` → `amzn_trace_env`) sets `_X_AMZN_TRACE_ID` to the
/// invocation's `Lambda-Runtime-Trace-Id` header before calling the handler, and removes it when an
/// invocation has none. It does so in the sequential loop that `lambda_runtime::run` and
/// `lambda_http::run` (what our functions call) use; `Runtime::run_concurrent` with
/// `AWS_LAMBDA_MAX_CONCURRENCY` above 1 does not set it at all (its log says to use
/// `Context::xray_trace_id`), and messages then go without a header.
///
/// Junk is never sent: SQS refuses a malformed `AWSTraceHeader`, which would fail the send.
pub fn current_trace_header() -> Option<String> {
    std::env::var(TRACE_HEADER_VAR)
        .ok()
        .filter(|header| is_trace_header(header))
}

/// The trace header a received message carries, if well-formed: the trace of the API call or
/// schedule that enqueued it. `attributes` is the message's system attributes, such as
/// `aws_lambda_events::sqs::SqsMessage::attributes`.
pub fn received_trace_header<S: BuildHasher>(
    attributes: &HashMap<String, String, S>,
) -> Option<&str> {
    attributes
        .get(TRACE_HEADER_ATTRIBUTE)
        .map(String::as_str)
        .filter(|header| is_trace_header(header))
}

/// Whether `header` has the shape of an X-Ray trace header: printable ASCII, at most 256 bytes,
/// `Root=1-<8 hex>-<24 hex>` first, then `;key=value` fields (`Parent`, `Sampled`, `Lineage`, …).
fn is_trace_header(header: &str) -> bool {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if header.len() > MAX_TRACE_HEADER || !header.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let mut fields = header.split(';');
    let root = fields
        .next()
        .and_then(|f| f.strip_prefix("Root=1-"))
        .and_then(|id| id.split_once('-'))
        .is_some_and(|(time, unique)| hex(time, 8) && hex(unique, 24));
    root && fields.all(|field| {
        field.split_once('=').is_some_and(|(key, value)| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()) && !value.is_empty()
        })
    })
}

/// The `AWSTraceHeader` system attribute carrying `header`, if there is one.
fn trace_attributes(
    header: Option<&str>,
) -> Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>> {
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header?)
        .build()
        .ok()?;
    Some(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

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

    /// Sends one job after `delay`, with the trace header `trace`.
    async fn send_traced(
        &self,
        job: &JobEnvelope,
        delay: Duration,
        trace: Option<&str>,
    ) -> Result<(), PortError> {
        self.client
            .get()
            .send_message()
            .queue_url(&self.url)
            .message_body(job.to_body())
            .delay_seconds(whole_seconds(delay, MAX_DELAY))
            .set_message_system_attributes(trace_attributes(trace))
            .send()
            .await
            .map_err(|e| crate::errors::classify(Service::Queue, "SendMessage", e, |_| None))?;
        Ok(())
    }

    /// Sends raw bodies in batches, each with the trace header `trace`; returns once every body is
    /// accepted.
    async fn send_bodies(&self, bodies: Vec<String>, trace: Option<&str>) -> Result<(), PortError> {
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
                            .set_message_system_attributes(trace_attributes(trace))
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
        self.send_traced(job, delay, current_trace_header().as_deref())
            .await
    }

    async fn send_batch(&self, jobs: &[JobEnvelope]) -> Result<(), PortError> {
        self.send_bodies(
            jobs.iter().map(JobEnvelope::to_body).collect(),
            current_trace_header().as_deref(),
        )
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

    mod trace {
        use std::path::{Path, PathBuf};
        use std::process::{Child, Command, Stdio};
        use std::time::Instant;

        use aws_sdk_sqs::types::MessageSystemAttributeName;
        use serde_json::{Value, json};
        use tributary_core::config::Env;
        use tributary_core::job::JobKind;

        use super::*;
        use crate::recorder::Recorder;

        /// What Lambda puts in `_X_AMZN_TRACE_ID` (the X-Ray guide's example).
        const HEADER: &str =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

        fn job() -> JobEnvelope {
            JobEnvelope::new(JobKind::Canary { enqueued_at_ms: 1 })
        }

        #[test]
        fn x_ray_headers_are_passed_on_and_anything_else_is_not() {
            for good in [
                HEADER,
                "Root=1-5759e988-bd862e3fe1be46a994272793",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:a87bd80c:0",
            ] {
                assert!(is_trace_header(good), "{good}");
            }
            let long = format!("{HEADER};Pad={}", "x".repeat(256));
            for bad in [
                "",
                "Root=1-5759e988-bd862e3fe1be46a99427279", // 23 hex digits
                "Root=1-5759e98-bd862e3fe1be46a994272793a", // 7, then 25
                "Root=1-5759e988-bd862e3fe1be46a99427279z",
                "Root=2-5759e988-bd862e3fe1be46a994272793",
                "Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793",
                "Root=1-5759e988-bd862e3fe1be46a994272793;",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=",
                "Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=1",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1\n",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Note=é",
                long.as_str(),
            ] {
                assert!(!is_trace_header(bad), "{bad}");
            }
        }

        #[test]
        fn a_received_trace_header_is_read_from_the_message_attributes() {
            let attributes = |header: &str| {
                HashMap::from([
                    ("ApproximateReceiveCount".to_owned(), "1".to_owned()),
                    (TRACE_HEADER_ATTRIBUTE.to_owned(), header.to_owned()),
                ])
            };
            assert_eq!(received_trace_header(&attributes(HEADER)), Some(HEADER));
            assert_eq!(received_trace_header(&attributes("junk")), None);
            assert_eq!(received_trace_header(&HashMap::new()), None);
        }

        /// On the wire (the recording stand-in): the attribute on a single send and on every entry
        /// of every batch request, and no attribute without a header.
        #[tokio::test]
        async fn every_send_carries_the_trace_header_as_a_system_attribute() {
            let recorder = Recorder::start();
            let queue = recorder.queue();
            let attribute =
                json!({ TRACE_HEADER_ATTRIBUTE: { "DataType": "String", "StringValue": HEADER } });

            queue
                .send_traced(&job(), Duration::ZERO, Some(HEADER))
                .await
                .unwrap();
            queue
                .send_traced(&job(), Duration::ZERO, None)
                .await
                .unwrap();
            queue
                .send_bodies(vec![job().to_body(); 12], Some(HEADER))
                .await
                .unwrap();
            queue
                .send_bodies(vec![job().to_body(); 2], None)
                .await
                .unwrap();

            let calls = recorder.take();
            let operations: Vec<&str> = calls.iter().map(|c| c.operation()).collect();
            assert_eq!(
                operations,
                [
                    "SendMessage",
                    "SendMessage",
                    "SendMessageBatch",
                    "SendMessageBatch",
                    "SendMessageBatch"
                ]
            );
            assert_eq!(calls[0].body["MessageSystemAttributes"], attribute);
            assert!(
                calls[1].body.get("MessageSystemAttributes").is_none(),
                "{}",
                calls[1].body
            );
            let entries =
                |call: &crate::recorder::Call| call.body["Entries"].as_array().unwrap().clone();
            let traced: Vec<Value> = calls[2..4].iter().flat_map(entries).collect();
            assert_eq!(traced.len(), 12);
            for entry in traced {
                assert_eq!(entry["MessageSystemAttributes"], attribute, "{entry}");
            }
            for entry in entries(&calls[4]) {
                assert!(entry.get("MessageSystemAttributes").is_none(), "{entry}");
            }
        }

        /// moto's `moto_server` (`TRIBUTARY_MOTO_SERVER`, else on `PATH`, else the one `make tools`
        /// installs) on a free loopback port, killed when dropped.
        struct Moto {
            child: Child,
            url: String,
        }

        impl Moto {
            fn start() -> Self {
                let binary = std::env::var_os("TRIBUTARY_MOTO_SERVER")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::split_paths(&std::env::var_os("PATH")?)
                            .map(|dir| dir.join("moto_server"))
                            .find(|p| p.is_file())
                    })
                    .unwrap_or_else(|| {
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../../.tributary/tools/moto/bin/moto_server")
                    });
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .unwrap()
                    .port();
                let child = Command::new(&binary)
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .env("MOTO_PORT", port.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!(
                            "{} does not start ({e}); `make tools` installs it",
                            binary.display()
                        )
                    });
                let moto = Self {
                    child,
                    url: format!("http://127.0.0.1:{port}"),
                };
                let started = Instant::now();
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "moto is not up"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                moto
            }
        }

        impl Drop for Moto {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        /// Through moto, as the connector receives it: a message sent with a header arrives with
        /// the `AWSTraceHeader` attribute, one sent without arrives without. moto 5.2.5 drops the
        /// system attributes of batch entries (its `send_message_batch` does not pass them on),
        /// so batches are proven on the wire above.
        #[tokio::test]
        async fn a_trace_header_sent_is_the_one_received() {
            let moto = Moto::start();
            let config = crate::sdk::config(&Env::from_pairs([
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ]))
            .unwrap();
            let client = Client::new(&config);
            let url = client
                .create_queue()
                .queue_name("jobs")
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let queue = SqsQueue::new(client.clone(), url.clone());

            queue
                .send_traced(&job(), Duration::ZERO, Some(HEADER))
                .await
                .unwrap();
            queue
                .send_traced(&job(), Duration::ZERO, None)
                .await
                .unwrap();
            let received = client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .send()
                .await
                .unwrap();

            // As `aws_lambda_events` gives them to the connector: attribute names as strings.
            let mut headers: Vec<Option<String>> = received
                .messages
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    let attributes: HashMap<String, String> = m
                        .attributes
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect();
                    received_trace_header(&attributes).map(str::to_owned)
                })
                .collect();
            headers.sort();
            assert_eq!(headers, vec![None, Some(HEADER.to_owned())]);
        }
    }
}
