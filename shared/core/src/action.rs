//! Action runs: the asynchronous execution of a provider action (`Prefer: respond-async`), its
//! states, its outcome and the event its completion records.
//!
//! A run is created `queued` by the API with the validated input, and executed by the connector:
//! each attempt first moves it to `running` (one more attempt, written conditionally, so two
//! deliveries of the same job never both send), then records `succeeded` with the output or
//! `failed` with the error, together with its completion event. A transient failure puts it back to
//! `queued` for a later attempt, at most [`MAX_ATTEMPTS`] in all. The input is dropped once the run
//! has ended: it is kept only as long as it is needed.

use serde::{Deserialize, Serialize};

use crate::ids::{ActionRunId, ConnectionId, EventId, TenantId};
use crate::time::EpochMillis;

/// The largest input accepted for an action, in bytes of JSON.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// The largest output an action run keeps, in bytes of JSON; a larger output is not kept (the run
/// says so) because a stored item is bounded.
pub const MAX_STORED_OUTPUT_BYTES: usize = 256 * 1024;
/// Attempts of an asynchronous run, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest wait between attempts (the jobs queue's longest delay).
pub const MAX_RETRY_DELAY_SECS: u64 = 900;

/// Where an action run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionRunState {
    /// Waiting for an attempt.
    Queued,
    /// An attempt is executing.
    Running,
    /// The provider accepted it; the output is kept.
    Succeeded,
    /// It ended without success; the error says why.
    Failed,
}

impl ActionRunState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionRunState::Queued => "queued",
            ActionRunState::Running => "running",
            ActionRunState::Succeeded => "succeeded",
            ActionRunState::Failed => "failed",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, ActionRunState::Succeeded | ActionRunState::Failed)
    }
}

/// Why an action did not succeed, in classes a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionErrorClass {
    /// The input does not satisfy the action's schema.
    InvalidInput,
    /// The connection's credentials were refused: the end user must connect again.
    NeedsReauth,
    /// The provider's rate limit held after every attempt.
    RateLimited,
    /// The provider refused the request (a 4xx other than auth and rate limits).
    ProviderRejected,
    /// The provider failed (5xx) after every attempt.
    ProviderError,
    /// The provider did not answer in time after every attempt.
    Timeout,
    /// The provider could not be reached after every attempt.
    Network,
    /// The connection or its provider cannot be used (deleted, disabled, not in the catalog, an
    /// egress refusal).
    Config,
    /// An attempt was interrupted while its request may have been sent, and the provider offers no
    /// idempotency key or no attempts were left: it was not sent again, so it may or may not have
    /// happened.
    UnknownOutcome,
    /// Something failed on our side.
    Internal,
}

impl ActionErrorClass {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionErrorClass::InvalidInput => "invalid_input",
            ActionErrorClass::NeedsReauth => "needs_reauth",
            ActionErrorClass::RateLimited => "rate_limited",
            ActionErrorClass::ProviderRejected => "provider_rejected",
            ActionErrorClass::ProviderError => "provider_error",
            ActionErrorClass::Timeout => "timeout",
            ActionErrorClass::Network => "network",
            ActionErrorClass::Config => "config",
            ActionErrorClass::UnknownOutcome => "unknown_outcome",
            ActionErrorClass::Internal => "internal",
        }
    }
}

/// The error of a failed run. Never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionError {
    /// The class.
    pub class: ActionErrorClass,
    /// What happened.
    pub message: String,
    /// The provider's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
}

/// One asynchronous execution of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRun {
    /// Id.
    pub id: ActionRunId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The connection it acts through.
    pub connection_id: ConnectionId,
    /// The connection's provider.
    pub provider: String,
    /// The action's name.
    pub action: String,
    /// The validated input, until the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// Where it is.
    pub state: ActionRunState,
    /// Attempts started.
    pub attempts: u32,
    /// The output, once it succeeded (unless larger than [`MAX_STORED_OUTPUT_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Whether a succeeded run's output was too large to keep.
    #[serde(default)]
    pub output_omitted: bool,
    /// Why it failed, or why the last attempt failed while it is queued again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// When it was created.
    pub created_at_ms: EpochMillis,
    /// When it last changed.
    pub updated_at_ms: EpochMillis,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<EpochMillis>,
    /// Optimistic concurrency version; every write checks it.
    pub version: u64,
}

impl ActionRun {
    /// The key sent to a provider that deduplicates writes: the same for every attempt of the run.
    pub fn provider_idempotency_key(&self) -> String {
        format!("tributary-{}", self.id)
    }

    /// Ends the run at `now`: the input is dropped, the output or error kept.
    pub fn finish(
        &mut self,
        outcome: Result<serde_json::Value, ActionError>,
        now: EpochMillis,
    ) -> ActionEvent {
        match outcome {
            Ok(output) => {
                let size = serde_json::to_vec(&output).map_or(usize::MAX, |b| b.len());
                self.state = ActionRunState::Succeeded;
                self.error = None;
                if size <= MAX_STORED_OUTPUT_BYTES {
                    self.output = Some(output);
                } else {
                    self.output = None;
                    self.output_omitted = true;
                }
            }
            Err(error) => {
                self.state = ActionRunState::Failed;
                self.error = Some(error);
            }
        }
        self.input = None;
        self.updated_at_ms = now;
        self.completed_at_ms = Some(now);
        self.version += 1;
        ActionEvent {
            id: EventId::generate(),
            tenant_id: self.tenant_id.clone(),
            action_run_id: self.id.clone(),
            connection_id: self.connection_id.clone(),
            action: self.action.clone(),
            state: self.state,
            error: self.error.clone(),
            at_ms: now,
        }
    }
}

/// The wire type of an action run's completion event.
pub const ACTION_RUN_COMPLETED: &str = "action.run.completed";

/// An action run's completion, kept for the tenant's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// Id.
    pub id: EventId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The run.
    pub action_run_id: ActionRunId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// The action.
    pub action: String,
    /// How it ended.
    pub state: ActionRunState,
    /// Why it failed.
    pub error: Option<ActionError>,
    /// When.
    pub at_ms: EpochMillis,
}

/// The wait before attempt `attempts + 1` of a run whose attempt `attempts` failed for now:
/// exponential from 2 s with full jitter (`jitter` in `[0, 1)`), never shorter than the provider's
/// `Retry-After`, at most [`MAX_RETRY_DELAY_SECS`].
pub fn retry_delay_secs(attempts: u32, retry_after_secs: Option<u64>, jitter: f64) -> u64 {
    let ceiling = 2u64
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(16))
        .min(MAX_RETRY_DELAY_SECS);
    // Full jitter, but at least a second, so that a burst of failures spreads out.
    let jittered = ((ceiling as f64) * jitter.clamp(0.0, 1.0)).ceil() as u64;
    jittered
        .max(1)
        .max(retry_after_secs.unwrap_or(0))
        .min(MAX_RETRY_DELAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_class_names_are_their_wire_names() {
        for class in [
            ActionErrorClass::InvalidInput,
            ActionErrorClass::NeedsReauth,
            ActionErrorClass::RateLimited,
            ActionErrorClass::ProviderRejected,
            ActionErrorClass::ProviderError,
            ActionErrorClass::Timeout,
            ActionErrorClass::Network,
            ActionErrorClass::Config,
            ActionErrorClass::UnknownOutcome,
            ActionErrorClass::Internal,
        ] {
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::Value::String(class.as_str().into())
            );
        }
    }

    fn run() -> ActionRun {
        ActionRun {
            id: ActionRunId::generate(),
            tenant_id: TenantId::generate(),
            connection_id: ConnectionId::generate(),
            provider: "stripe".into(),
            action: "create_customer".into(),
            input: Some(serde_json::json!({"email": "a@b.c"})),
            state: ActionRunState::Running,
            attempts: 1,
            output: None,
            output_omitted: false,
            error: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            completed_at_ms: None,
            version: 2,
        }
    }

    #[test]
    fn finishing_drops_the_input_and_keeps_a_bounded_output() {
        let mut r = run();
        let event = r.finish(Ok(serde_json::json!({"id": "cus_1"})), 10);
        assert_eq!(r.state, ActionRunState::Succeeded);
        assert_eq!(r.input, None);
        assert_eq!(r.output, Some(serde_json::json!({"id": "cus_1"})));
        assert_eq!((r.completed_at_ms, r.version), (Some(10), 3));
        assert_eq!(event.state, ActionRunState::Succeeded);
        assert_eq!(event.action_run_id, r.id);

        let mut big = run();
        let huge = serde_json::Value::String("x".repeat(MAX_STORED_OUTPUT_BYTES));
        big.finish(Ok(huge), 10);
        assert_eq!(big.state, ActionRunState::Succeeded);
        assert!(big.output.is_none() && big.output_omitted);
    }

    #[test]
    fn retry_delays_grow_honour_retry_after_and_stay_under_the_queue_cap() {
        assert_eq!(retry_delay_secs(1, None, 0.999), 2);
        assert_eq!(retry_delay_secs(3, None, 0.999), 8);
        assert_eq!(retry_delay_secs(3, None, 0.0), 1);
        assert_eq!(retry_delay_secs(1, Some(30), 0.5), 30);
        assert_eq!(retry_delay_secs(40, None, 0.999), MAX_RETRY_DELAY_SECS);
        assert_eq!(retry_delay_secs(2, Some(86_400), 0.5), MAX_RETRY_DELAY_SECS);
    }

    #[test]
    fn the_provider_key_is_stable_per_run() {
        let r = run();
        assert_eq!(
            r.provider_idempotency_key(),
            r.clone().provider_idempotency_key()
        );
        assert_ne!(
            r.provider_idempotency_key(),
            run().provider_idempotency_key()
        );
    }
}
