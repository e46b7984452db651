//! The API's side of the operations log: the work a request does with a provider (a proxied call,
//! an action run now, a connection made, changed, tested or deleted) is recorded as one operation,
//! with the provider requests the HTTP client made, then written once the work is done (and never
//! failing it). A request refused before anything was sent (a bad header, an unknown connection) is
//! not work: it leaves no operation.
//!
//! API calls are counted per tenant in each execution environment and added to the tenant's usage
//! at most once per [`API_CALLS_FLUSH_EVERY`] calls or [`API_CALLS_FLUSH_AFTER_MS`]: one counter
//! write per 50 calls, not per call. An environment that is reclaimed loses what it had not
//! written yet (under 50 calls, under a minute): API call usage is a close lower bound.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tributary_core::ids::{OperationId, TenantId};
use tributary_core::operation::{
    self, Draft, OperationError, OperationKind, OperationState, Recorder, UsageCounts, UsageKey,
    day_of,
};
use tributary_core::ports::OperationLog;
use tributary_core::time::{Clock, EpochMillis};

use crate::problem::ApiError;

/// Calls after which an environment writes a tenant's count.
pub const API_CALLS_FLUSH_EVERY: u64 = 50;
/// Time after which an environment writes a tenant's count at its next call.
pub const API_CALLS_FLUSH_AFTER_MS: EpochMillis = 60_000;

/// Runs `work` as an operation of `kind` for `tenant` and writes it. `describe` names what it is
/// about before it runs; `judge` reads an answer that is `Ok` into the operation: what it made, or
/// that it failed all the same (a proxied 404 is the provider's answer, and a failed operation).
#[allow(clippy::too_many_arguments)]
pub async fn recorded<S, T, F>(
    store: &S,
    clock: &dyn Clock,
    retention_days: u32,
    tenant: &TenantId,
    kind: OperationKind,
    describe: impl FnOnce(&mut Draft),
    judge: impl FnOnce(&T, &mut Draft),
    work: F,
) -> Result<T, ApiError>
where
    S: OperationLog,
    F: Future<Output = Result<T, ApiError>>,
{
    let now = clock.now_ms();
    let recorder = Arc::new(Recorder::new(
        OperationId::generate(),
        tenant.clone(),
        kind,
        now,
    ));
    recorder.describe(describe);
    let outcome = operation::recording(recorder.clone(), work).await;
    recorder.describe(|d| match &outcome {
        Ok(answer) => judge(answer, d),
        // Refused before anything was sent: a bad request, not work.
        Err(_) if d.op.counts.requests == 0 => d.skip = true,
        Err(e) => {
            d.state = Some(OperationState::Failed);
            d.op.error = Some(OperationError {
                class: e.code().into(),
                message: if e.status() >= 500 && !matches!(e.status(), 502 | 504) {
                    "the request failed on our side".into()
                } else {
                    e.to_string()
                },
            });
        }
    });
    if let Some(op) = recorder.finish(OperationState::Succeeded, clock.now_ms()) {
        tributary_aws::operations::emit_metrics("api", &op);
        if let Err(e) = store.record_operation(&op, retention_days).await {
            tracing::warn!(error = %e, operation_id = %op.id, "could not write the operation to the log");
        }
    }
    outcome
}

/// Writes an operation of `tenant` that is already over (at `at_ms`, succeeded), described by
/// `describe`: work done outside a recording, such as a connection made through a connect page.
pub async fn log_done<S: OperationLog>(
    store: &S,
    retention_days: u32,
    tenant: &TenantId,
    kind: OperationKind,
    at_ms: EpochMillis,
    describe: impl FnOnce(&mut Draft),
) {
    let recorder = Recorder::new(OperationId::generate(), tenant.clone(), kind, at_ms);
    recorder.describe(describe);
    if let Some(op) = recorder.finish(OperationState::Succeeded, at_ms) {
        tributary_aws::operations::emit_metrics("api", &op);
        if let Err(e) = store.record_operation(&op, retention_days).await {
            tracing::warn!(error = %e, operation_id = %op.id, "could not write the operation to the log");
        }
    }
}

/// API calls per tenant not yet written: (count, when the first was counted).
#[derive(Debug, Default)]
pub struct ApiCalls {
    pending: Mutex<HashMap<TenantId, (u64, EpochMillis)>>,
}

impl ApiCalls {
    /// Counts one call of `tenant` at `now`; the count to write when it is time to.
    pub fn count(&self, tenant: &TenantId, now: EpochMillis) -> Option<u64> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending.entry(tenant.clone()).or_insert((0, now));
        entry.0 += 1;
        if entry.0 >= API_CALLS_FLUSH_EVERY || now - entry.1 >= API_CALLS_FLUSH_AFTER_MS {
            let (n, _) = *entry;
            pending.remove(tenant);
            Some(n)
        } else {
            None
        }
    }

    /// Counts one call and writes the tenant's count when it is time to (a failure is logged).
    pub async fn record<S: OperationLog>(&self, store: &S, tenant: &TenantId, now: EpochMillis) {
        let Some(n) = self.count(tenant, now) else {
            return;
        };
        let key = UsageKey {
            day: day_of(now),
            integration_id: None,
            provider: None,
        };
        let counts = UsageCounts {
            api_calls: n,
            ..UsageCounts::default()
        };
        if let Err(e) = store.add_usage(tenant, &key, &counts).await {
            tracing::warn!(error = %e, calls = n, "could not add API calls to the tenant's usage");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_written_every_fifty_or_after_a_minute() {
        let calls = ApiCalls::default();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        for i in 1..API_CALLS_FLUSH_EVERY {
            assert_eq!(calls.count(&a, i as i64), None);
        }
        assert_eq!(calls.count(&b, 10), None);
        assert_eq!(calls.count(&a, 60), Some(API_CALLS_FLUSH_EVERY));
        assert_eq!(calls.count(&a, 61), None, "a new count starts");
        assert_eq!(
            calls.count(&b, 10 + API_CALLS_FLUSH_AFTER_MS),
            Some(2),
            "a quiet tenant's count is written after a minute"
        );
    }
}
