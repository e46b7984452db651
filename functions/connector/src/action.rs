//! Attempts of action runs (`action_run` jobs), at most once per provider write.
//!
//! An attempt first moves the run to `running` with one more attempt, on the condition that it is
//! the version read: of two deliveries of one job, one attempt runs. The run then ends (its output
//! or error and its completion event in one write), or, when the failure may pass (a rate limit;
//! an outage or a lost answer where the provider deduplicates the action by its idempotency key),
//! goes back to `queued` and a job for the next attempt is sent with a delay: exponential with
//! jitter, at least the provider's `Retry-After`, at most 15 minutes, [`MAX_ATTEMPTS`] in all.
//!
//! A run found `running` after its attempt's lease means the attempt was interrupted (the
//! function stopped) while its request may have been sent. It is attempted again only when the
//! provider deduplicates the action, which makes the repeat harmless; otherwise it fails as
//! `unknown_outcome` rather than risk a second write.

use std::time::Duration;

use rand::Rng;
use tributary_core::PortError;
use tributary_core::action::{
    ActionError, ActionErrorClass, ActionRun, ActionRunState, MAX_ATTEMPTS, retry_delay_secs,
};
use tributary_core::connection::ConnectionStatus;
use tributary_core::ids::{ActionRunId, TenantId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::operation::{self, NoteKind, OperationError, OperationState};
use tributary_core::ports::{ActionStore, ConnectionStore, IntegrationStore, JobQueue};
use tributary_core::refresh::RefreshError;
use tributary_core::time::{Clock, EpochMillis};
use tributary_engine::action::{action_failure, deduplicated_by_provider};
use tributary_engine::grant::{UseError, catalog_spec, usable_connection};

use crate::sync::Syncing;

/// How long an attempt may hold a run in `running`: the function's longest invocation (300 s)
/// and a margin. A run `running` for longer was interrupted.
pub const ATTEMPT_LEASE_MS: EpochMillis = 330_000;

/// Why an action job failed (the message is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ActionJobError {
    /// The store or the queue failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Another invocation's attempt is in progress.
    #[error("another invocation is attempting this action run")]
    Busy,
}

/// What the attempt came to.
enum Outcome {
    Done(Result<serde_json::Value, ActionError>),
    Retry(ActionError, Option<Duration>),
}

fn error(class: ActionErrorClass, message: impl Into<String>) -> ActionError {
    ActionError {
        class,
        message: message.into(),
        provider_status: None,
    }
}

/// Attempts the tenant's action run `id`.
pub async fn execute<S, R, Q>(
    syncing: &Syncing<S, R>,
    queue: &Q,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &ActionRunId,
) -> Result<(), ActionJobError>
where
    S: ActionStore + ConnectionStore + IntegrationStore,
    Q: JobQueue,
{
    let store = &syncing.store;
    let Some(mut run) = store.get_action_run(tenant, id).await? else {
        tracing::info!(action_run_id = %id, "the action run is gone; nothing to do");
        operation::describe(|d| d.skip = true);
        return Ok(());
    };
    if run.state.is_terminal() {
        tracing::info!(action_run_id = %id, state = run.state.as_str(), "the action run has ended; nothing to do");
        operation::describe(|d| d.skip = true);
        return Ok(());
    }
    operation::describe(|d| {
        d.op.connection_id = Some(run.connection_id.clone());
        d.op.provider = Some(run.provider.clone());
        d.op.name = Some(run.action.clone());
    });
    let now = clock.now_ms();
    let action = catalog_spec(&run.provider).and_then(|s| s.action(&run.action).map(|a| (s, a)));
    let Some((spec, action)) = action else {
        let message = format!(
            "action `{}` of provider `{}` is no longer in the catalog",
            run.action, run.provider
        );
        return finish(
            store,
            run,
            Err(error(ActionErrorClass::Config, message)),
            now,
        )
        .await;
    };
    let deduplicated = deduplicated_by_provider(action);
    if run.state == ActionRunState::Running {
        if now - run.updated_at_ms < ATTEMPT_LEASE_MS {
            return Err(ActionJobError::Busy);
        }
        if !deduplicated {
            tracing::warn!(action_run_id = %id, attempts = run.attempts, "an interrupted attempt may have written; not sent again");
            let e = error(
                ActionErrorClass::UnknownOutcome,
                format!(
                    "attempt {} was interrupted while its request may have been sent, and {} cannot deduplicate this action: it was not sent again. Check at {} whether it happened.",
                    run.attempts, spec.name, spec.name
                ),
            );
            return finish(store, run, Err(e), now).await;
        }
        if run.attempts >= MAX_ATTEMPTS {
            // The last attempt may have written; another is not allowed.
            let e = error(
                ActionErrorClass::UnknownOutcome,
                format!(
                    "attempt {} was interrupted while its request may have been sent, and no attempts are left. Check at {} whether it happened.",
                    run.attempts, spec.name
                ),
            );
            return finish(store, run, Err(e), now).await;
        }
    }
    if run.attempts >= MAX_ATTEMPTS {
        let e = run
            .error
            .clone()
            .unwrap_or_else(|| error(ActionErrorClass::Internal, "no attempts left"));
        return finish(store, run, Err(e), now).await;
    }
    let Some(input) = run.input.clone() else {
        let e = error(ActionErrorClass::Internal, "the run has no input");
        return finish(store, run, Err(e), now).await;
    };
    // The claim: of two deliveries, one attempt runs.
    let read_version = run.version;
    run.state = ActionRunState::Running;
    run.attempts += 1;
    run.updated_at_ms = now;
    run.version = read_version + 1;
    match store.update_action_run(&run, read_version, None).await {
        Ok(true) => {}
        Ok(false) => {
            operation::describe(|d| d.skip = true);
            return Ok(());
        }
        Err(PortError::Conflict { .. }) => {
            tracing::info!(action_run_id = %id, "another delivery claimed the attempt");
            operation::describe(|d| d.skip = true);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    let outcome = attempt(syncing, clock, &run, spec, &input, deduplicated).await?;
    let now = clock.now_ms();
    match outcome {
        Outcome::Done(result) => finish(store, run, result, now).await,
        Outcome::Retry(e, retry_after) if run.attempts < MAX_ATTEMPTS => {
            let delay = retry_delay_secs(
                run.attempts,
                retry_after.map(|d| d.as_secs()),
                rand::rng().random::<f64>(),
            );
            tracing::info!(action_run_id = %id, attempts = run.attempts, class = ?e.class, delay_s = delay, "action attempt failed for now; queued again");
            operation::note(
                NoteKind::Deferred,
                &format!("attempt {} failed for now; next in {delay} s", run.attempts),
                now,
            );
            operation::describe(|d| {
                d.state = Some(OperationState::Deferred);
                d.op.counts.deferred_ms += delay.saturating_mul(1000);
                d.op.error = Some(OperationError {
                    class: e.class.as_str().into(),
                    message: e.message.clone(),
                });
            });
            let read_version = run.version;
            run.state = ActionRunState::Queued;
            run.error = Some(e);
            run.updated_at_ms = now;
            run.version = read_version + 1;
            match store.update_action_run(&run, read_version, None).await {
                Ok(true) => {}
                // Gone, or another delivery moved it on (past the attempt's lease): its write
                // stands.
                Ok(false) | Err(PortError::Conflict { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let job = JobEnvelope::new(JobKind::ActionRun {
                tenant_id: run.tenant_id.clone(),
                action_run_id: run.id.clone(),
            });
            // Should the send fail, this message comes back and makes the next attempt.
            queue.send(&job, Duration::from_secs(delay)).await?;
            Ok(())
        }
        Outcome::Retry(e, _) => finish(store, run, Err(e), now).await,
    }
}

/// One attempt: the connection checked and made usable, the action sent.
async fn attempt<S, R>(
    syncing: &Syncing<S, R>,
    clock: &dyn Clock,
    run: &ActionRun,
    spec: &tributary_engine::spec::ProviderSpec,
    input: &serde_json::Value,
    deduplicated: bool,
) -> Result<Outcome, ActionJobError>
where
    S: ActionStore + ConnectionStore + IntegrationStore,
{
    let Some(connection) = syncing
        .store
        .get_connection(&run.tenant_id, &run.connection_id)
        .await?
    else {
        return Ok(Outcome::Done(Err(error(
            ActionErrorClass::Config,
            "the connection was deleted",
        ))));
    };
    match connection.status {
        ConnectionStatus::Active => {}
        ConnectionStatus::NeedsReauth => {
            return Ok(Outcome::Done(Err(error(
                ActionErrorClass::NeedsReauth,
                format!(
                    "the connection needs its end user to connect again: {}",
                    connection
                        .status_reason
                        .as_deref()
                        .unwrap_or("its credentials were refused")
                ),
            ))));
        }
        ConnectionStatus::Disabled => {
            return Ok(Outcome::Done(Err(error(
                ActionErrorClass::Config,
                "the connection is disabled",
            ))));
        }
    }
    let usable = match usable_connection(
        &syncing.store,
        &syncing.vault,
        &syncing.engine,
        &syncing.origins,
        clock,
        &connection,
    )
    .await
    {
        Ok(u) => u,
        Err(UseError::Refresh(RefreshError::NeedsReauth(reason))) => {
            return Ok(Outcome::Done(Err(error(
                ActionErrorClass::NeedsReauth,
                format!("the connection needs its end user to connect again: {reason}"),
            ))));
        }
        // Nothing was sent to the provider: another attempt is safe.
        Err(UseError::Refresh(
            RefreshError::Transient(_) | RefreshError::Busy | RefreshError::Store(_),
        )) => {
            return Ok(Outcome::Retry(
                error(
                    ActionErrorClass::ProviderError,
                    "the connection's access token could not be refreshed for now",
                ),
                None,
            ));
        }
        Err(e) => {
            return Ok(Outcome::Done(Err(error(
                ActionErrorClass::Config,
                e.to_string(),
            ))));
        }
    };
    let sent = syncing
        .engine
        .action_with_key(
            spec,
            &run.action,
            &usable,
            input,
            Some(&run.provider_idempotency_key()),
        )
        .await;
    Ok(match sent {
        Ok(output) => Outcome::Done(Ok(output)),
        Err(e) => {
            let failure = action_failure(&e, deduplicated);
            if failure.retryable {
                Outcome::Retry(failure.error, failure.retry_after)
            } else {
                Outcome::Done(Err(failure.error))
            }
        }
    })
}

/// Ends the run with its completion event, in one write.
async fn finish<S: ActionStore>(
    store: &S,
    mut run: ActionRun,
    outcome: Result<serde_json::Value, ActionError>,
    now: EpochMillis,
) -> Result<(), ActionJobError> {
    let read_version = run.version;
    let event = run.finish(outcome, now);
    operation::describe(|d| {
        d.state = Some(if run.state == ActionRunState::Succeeded {
            OperationState::Succeeded
        } else {
            OperationState::Failed
        });
        d.op.error = run.error.as_ref().map(|e| OperationError {
            class: e.class.as_str().into(),
            message: e.message.clone(),
        });
    });
    match store
        .update_action_run(&run, read_version, Some(&event))
        .await
    {
        Ok(_) => {
            tracing::info!(action_run_id = %run.id, state = run.state.as_str(), attempts = run.attempts, class = ?run.error.as_ref().map(|e| e.class), "action run ended");
            Ok(())
        }
        // Another delivery ended or moved it: its write stands.
        Err(PortError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
