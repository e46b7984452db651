//! The job envelope: what the jobs queue carries. Messages are pointers and small facts, never payloads
//! or secrets, so a message can be logged, replayed and moved to the dead-letter queue safely.

use serde::{Deserialize, Serialize};

use crate::ids::{
    ActionRunId, ConnectionId, InboundId, IntegrationId, JobId, MessageId, SyncId, SyncRunId,
    TenantId,
};
use crate::time::EpochMillis;

/// The envelope format version this build writes and understands.
pub const ENVELOPE_VERSION: u8 = 1;

/// One job on the jobs queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// Envelope format version; messages of an unknown version are refused, not guessed at.
    pub v: u8,
    /// Unique id of this job; the consumer's idempotency key.
    pub id: JobId,
    /// What to do.
    #[serde(flatten)]
    pub kind: JobKind,
}

/// The kinds of job the connector runs. Later kinds: actions, webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// The pipeline canary: enqueued by the monitor, recorded by the connector, reported by the API.
    Canary {
        /// When the monitor enqueued it.
        enqueued_at_ms: EpochMillis,
    },
    /// Refresh an idle connection's OAuth tokens: enqueued by the monitor when the connection's
    /// idle refresh is due, run by the connector (which refreshes only if it is still due).
    RefreshConnection {
        /// The connection's tenant.
        tenant_id: TenantId,
        /// The connection.
        connection_id: ConnectionId,
    },
    /// Start a sync's scheduled run: enqueued by the monitor when the sync is due; the connector
    /// creates the run (unless one is in progress) and schedules the next.
    ScheduledSync {
        /// The sync's tenant.
        tenant_id: TenantId,
        /// The sync.
        sync_id: SyncId,
        /// The scheduled time it was due at (as indexed).
        due_ms: EpochMillis,
    },
    /// Execute a run of a sync, or continue it from its checkpoint: enqueued by the API (a manual
    /// run), by a scheduled start, and by the run itself when it stops at its time budget or is
    /// deferred by a rate limit.
    SyncRun {
        /// The sync's tenant.
        tenant_id: TenantId,
        /// The sync.
        sync_id: SyncId,
        /// The run.
        run_id: SyncRunId,
        /// 0 for the first invocation, then one more for each continuation.
        continuation: u32,
    },
    /// Attempt an action run: enqueued by the API (`Prefer: respond-async`), and by the run itself
    /// after an attempt that failed for now.
    ActionRun {
        /// The run's tenant.
        tenant_id: TenantId,
        /// The run.
        action_run_id: ActionRunId,
    },
    /// Make the webhook messages of the events waiting in an outbox shard: enqueued by the monitor
    /// when the shard holds events, and by a dispatch that left more.
    DispatchEvents {
        /// The outbox shard.
        shard: u32,
    },
    /// Attempt a webhook message's delivery (or wait for its time): enqueued by a dispatch, by a
    /// replay, and by the message itself for its next attempt.
    DeliverWebhook {
        /// The message's tenant.
        tenant_id: TenantId,
        /// The message.
        message_id: MessageId,
    },
    /// Route a verified provider webhook to the integration's connections: enqueued by the API's
    /// webhook route once the delivery is stored (the message points at it).
    InboundWebhook {
        /// The integration's tenant.
        tenant_id: TenantId,
        /// The integration the provider called.
        integration_id: IntegrationId,
        /// The stored delivery.
        inbound_id: InboundId,
    },
    /// Remove a deleted sync's records and feed in batches, then the sync itself.
    PurgeSync {
        /// The sync's tenant.
        tenant_id: TenantId,
        /// The sync.
        sync_id: SyncId,
    },
    /// Look at a run that is not over and was not saved for long (its job lost, dead-lettered, or
    /// every invocation crashing): enqueued by the monitor; the connector resumes it, or ends it
    /// `stalled` once it was resumed often enough.
    CheckRun {
        /// The sync's tenant.
        tenant_id: TenantId,
        /// The sync.
        sync_id: SyncId,
        /// The run.
        run_id: SyncRunId,
    },
}

impl JobKind {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Canary { .. } => "canary",
            JobKind::RefreshConnection { .. } => "refresh_connection",
            JobKind::ScheduledSync { .. } => "scheduled_sync",
            JobKind::SyncRun { .. } => "sync_run",
            JobKind::ActionRun { .. } => "action_run",
            JobKind::DispatchEvents { .. } => "dispatch_events",
            JobKind::DeliverWebhook { .. } => "deliver_webhook",
            JobKind::InboundWebhook { .. } => "inbound_webhook",
            JobKind::PurgeSync { .. } => "purge_sync",
            JobKind::CheckRun { .. } => "check_run",
        }
    }
}

/// Why a queue message could not be turned into a job.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not a job envelope.
    #[error("malformed job envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this build does not understand.
    #[error("unsupported job envelope version {0}")]
    UnsupportedVersion(u8),
}

impl JobEnvelope {
    /// A new job of the given kind with a fresh id.
    pub fn new(kind: JobKind) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            id: JobId::generate(),
            kind,
        }
    }

    /// Parses a queue message body.
    pub fn parse(body: &str) -> Result<Self, EnvelopeError> {
        let job: JobEnvelope = serde_json::from_str(body)?;
        if job.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(job.v));
        }
        Ok(job)
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_round_trips_through_the_wire_format() {
        let body = r#"{"v":1,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"canary","enqueued_at_ms":1764000000000}"#;
        let job = JobEnvelope::parse(body).unwrap();
        assert_eq!(
            job.kind,
            JobKind::Canary {
                enqueued_at_ms: 1_764_000_000_000
            }
        );
        assert_eq!(JobEnvelope::parse(&job.to_body()).unwrap(), job);
    }

    #[test]
    fn a_run_check_round_trips_through_the_wire_format() {
        let body = r#"{"v":1,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"check_run","tenant_id":"ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","sync_id":"sync_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","run_id":"run_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"}"#;
        let job = JobEnvelope::parse(body).unwrap();
        assert!(matches!(job.kind, JobKind::CheckRun { .. }));
        assert_eq!(job.kind.name(), "check_run");
        assert_eq!(JobEnvelope::parse(&job.to_body()).unwrap(), job);
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            JobEnvelope::parse("not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            JobEnvelope::parse(
                r#"{"v":1,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"explode"}"#
            ),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_version_is_refused() {
        let body = r#"{"v":9,"id":"job_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d","kind":"canary","enqueued_at_ms":1}"#;
        assert!(matches!(
            JobEnvelope::parse(body),
            Err(EnvelopeError::UnsupportedVersion(9))
        ));
    }
}
