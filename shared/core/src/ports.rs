//! Ports: what the domain needs from the outside world. The AWS adapters in `tributary-aws` implement
//! them over DynamoDB, SQS and Secrets Manager; tests implement them in memory.
//!
//! Futures are `Send` so handlers can run them on the multi-threaded Lambda runtime.

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use crate::canary::CanaryObservation;
use crate::error::PortError;
use crate::ids::JobId;
use crate::job::JobEnvelope;

/// Sends jobs to the jobs queue.
pub trait JobQueue: Send + Sync {
    /// Sends one job, visible after `delay` (at most 15 minutes, the SQS limit).
    fn send(
        &self,
        job: &JobEnvelope,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sends many jobs, in as few requests as the queue's limits allow. Either every job is accepted or
    /// an error is returned; a retried call may send some jobs twice, which consumers tolerate because
    /// they are idempotent on the job id.
    fn send_batch(
        &self,
        jobs: &[JobEnvelope],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Makes a received message visible again after `delay` (a retry with backoff).
    fn retry_after(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages not yet visible because of a delay.
    pub delayed: u64,
}

/// Reads a queue's depth.
pub trait QueueStats: Send + Sync {
    /// The queue's approximate depth (SQS counts are approximate by design).
    fn depth(&self) -> impl Future<Output = Result<QueueDepth, PortError>> + Send;
}

/// Stores the pipeline canary's observations.
pub trait CanaryStore: Send + Sync {
    /// Records a processed canary, unless a newer one (by enqueue time) is already recorded: redelivered
    /// or out-of-order canaries never move the observation backwards.
    fn record(
        &self,
        observation: &CanaryObservation,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The newest recorded canary, if any.
    fn latest(&self) -> impl Future<Output = Result<Option<CanaryObservation>, PortError>> + Send;
}

/// Remembers which jobs completed, so a redelivered message does not run its job twice.
pub trait JobLedger: Send + Sync {
    /// Whether the job already completed.
    fn is_done(&self, id: &JobId) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Records that the job completed; the record expires after `keep`.
    fn mark_done(
        &self,
        id: &JobId,
        keep: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Reads platform secrets (the admin API key, the keyring).
pub trait SecretSource: Send + Sync {
    /// The current value of the secret `id`.
    fn secret(&self, id: &str) -> impl Future<Output = Result<SecretString, PortError>> + Send;
}
