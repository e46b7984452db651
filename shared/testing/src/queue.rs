//! [`FakeQueue`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tributary_core::PortError;
use tributary_core::error::Service;
use tributary_core::job::JobEnvelope;
use tributary_core::ports::{JobQueue, QueueDepth, QueueStats};

use crate::calls::Calls;

const METHODS: &[&str] = &["send", "send_batch", "retry_after", "depth"];

/// The longest delay SQS accepts on a message (the adapter clamps to it).
const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS accepts (the adapter clamps to it).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The jobs queue (or its dead-letter queue) in memory. It records every job sent (with the delay
/// SQS would apply: whole seconds, at most 15 minutes) and every received message rescheduled by
/// [`JobQueue::retry_after`] (whole seconds, at most 12 hours), and answers [`QueueStats::depth`]
/// with a depth the test sets: nothing is ever received from it. While [`FakeQueue::fail`] is on,
/// every call fails as an unavailable SQS would, and records nothing. Calls are counted per port
/// method (see [`FakeQueue::calls`]).
#[derive(Debug)]
pub struct FakeQueue {
    depth: Mutex<QueueDepth>,
    sent: Mutex<Vec<(JobEnvelope, Duration)>>,
    retried: Mutex<Vec<(String, Duration)>>,
    failing: AtomicBool,
    calls: Calls,
}

impl Default for FakeQueue {
    fn default() -> Self {
        Self {
            depth: Mutex::new(QueueDepth::default()),
            sent: Mutex::new(Vec::new()),
            retried: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            calls: Calls::new("FakeQueue", METHODS),
        }
    }
}

fn whole_seconds(d: Duration, max: Duration) -> Duration {
    Duration::from_secs(d.min(max).as_secs())
}

impl FakeQueue {
    /// An empty, working queue whose depth reads as `depth`.
    pub fn with_depth(depth: QueueDepth) -> Self {
        let queue = Self::default();
        queue.set_depth(depth);
        queue
    }

    /// A queue whose every call fails (until [`FakeQueue::fail`]`(false)`).
    pub fn failing() -> Self {
        let queue = Self::default();
        queue.fail(true);
        queue
    }

    /// Sets the depth [`QueueStats::depth`] answers.
    pub fn set_depth(&self, depth: QueueDepth) {
        *self.depth.lock().unwrap_or_else(PoisonError::into_inner) = depth;
    }

    /// Turns the failure switch on or off: while on, every call fails as
    /// [`PortError::Unavailable`], with a detail that looks internal (an ARN) so that tests can check
    /// it never reaches a client.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// The jobs sent so far, in order (by `send` and `send_batch`).
    pub fn sent(&self) -> Vec<JobEnvelope> {
        self.sent_with_delays()
            .into_iter()
            .map(|(job, _)| job)
            .collect()
    }

    /// The jobs sent so far with the delay each was sent with.
    pub fn sent_with_delays(&self) -> Vec<(JobEnvelope, Duration)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The received messages rescheduled so far: (receipt handle, visibility delay), in order.
    pub fn retried(&self) -> Vec<(String, Duration)> {
        self.retried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times the port method `method` (`send`, `send_batch`, `retry_after`, `depth`) was
    /// called, failed calls included. Panics on another name.
    pub fn calls(&self, method: &str) -> usize {
        self.calls.of(method)
    }

    fn check(&self, method: &'static str, operation: &'static str) -> Result<(), PortError> {
        self.calls.count(method);
        if self.failing.load(Ordering::SeqCst) {
            return Err(PortError::Unavailable {
                service: Service::Queue,
                operation,
                detail: "arn:aws:sqs:secret-internal-detail (injected fault)".into(),
            });
        }
        Ok(())
    }
}

impl JobQueue for FakeQueue {
    async fn send(&self, job: &JobEnvelope, delay: Duration) -> Result<(), PortError> {
        self.check("send", "SendMessage")?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((job.clone(), whole_seconds(delay, MAX_DELAY)));
        Ok(())
    }

    async fn send_batch(&self, jobs: &[JobEnvelope]) -> Result<(), PortError> {
        self.check("send_batch", "SendMessageBatch")?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(jobs.iter().map(|job| (job.clone(), Duration::ZERO)));
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        self.check("retry_after", "ChangeMessageVisibility")?;
        self.retried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                receipt_handle.to_owned(),
                whole_seconds(delay, MAX_VISIBILITY),
            ));
        Ok(())
    }
}

impl QueueStats for FakeQueue {
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        self.check("depth", "GetQueueAttributes")?;
        Ok(*self.depth.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use tributary_core::job::JobKind;

    use super::*;

    fn canary(at: i64) -> JobEnvelope {
        JobEnvelope::new(JobKind::Canary { enqueued_at_ms: at })
    }

    #[tokio::test]
    async fn records_sent_jobs_in_order_with_the_delay_sqs_applies() {
        let q = FakeQueue::default();
        let (a, b, c) = (canary(1), canary(2), canary(3));
        q.send(&a, Duration::from_millis(1_500)).await.unwrap();
        q.send_batch(&[b.clone(), c.clone()]).await.unwrap();
        q.send(&a, Duration::from_secs(3_600)).await.unwrap();
        assert_eq!(q.sent(), vec![a.clone(), b, c, a]);
        let delays: Vec<Duration> = q.sent_with_delays().into_iter().map(|(_, d)| d).collect();
        assert_eq!(
            delays,
            [1, 0, 0, 900].map(Duration::from_secs),
            "whole seconds, at most 15 minutes"
        );
        q.retry_after("rh-1", Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            q.retried(),
            vec![("rh-1".to_owned(), Duration::from_secs(20))]
        );
        assert_eq!((q.calls("send"), q.calls("send_batch")), (2, 1));
    }

    #[tokio::test]
    async fn answers_the_set_depth() {
        let depth = QueueDepth {
            visible: 3,
            in_flight: 2,
            delayed: 1,
        };
        let q = FakeQueue::with_depth(depth);
        assert_eq!(q.depth().await.unwrap(), depth);
        q.set_depth(QueueDepth::default());
        assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
        assert_eq!(q.calls("depth"), 2);
    }

    #[tokio::test]
    async fn a_failing_queue_fails_every_call_and_records_nothing() {
        let q = FakeQueue::failing();
        assert!(matches!(
            q.send(&canary(1), Duration::ZERO).await,
            Err(PortError::Unavailable {
                service: Service::Queue,
                operation: "SendMessage",
                ..
            })
        ));
        assert!(q.send_batch(&[canary(2)]).await.is_err());
        assert!(q.retry_after("rh", Duration::ZERO).await.is_err());
        assert!(q.depth().await.is_err());
        assert!(q.sent().is_empty() && q.retried().is_empty());
        q.fail(false);
        assert!(q.depth().await.is_ok());
    }
}
