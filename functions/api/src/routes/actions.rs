//! Actions: writes to a connected provider, declared by its spec.
//!
//! `POST /v1/connections/{connection_id}/actions/{action}` validates the body (the action's input)
//! against the action's JSON Schema before anything is sent (400, one error per JSON Pointer), then
//! either runs it now and answers with its output, or, with `Prefer: respond-async`, queues an
//! action run for the connector and answers 202 with it (`GET /v1/action-runs/{action_run_id}`
//! follows it). `Idempotency-Key` is honoured in both modes: a retried request replays the first
//! answer and never writes twice; for providers that deduplicate writes (Stripe), the key sent to
//! them is derived from it, so even an answer lost between the provider and us is not a second
//! write when the request is retried.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tributary_core::action::{
    ActionErrorClass, ActionRun, ActionRunState, MAX_ATTEMPTS, MAX_INPUT_BYTES,
};
use tributary_core::ids::{ActionRunId, ConnectionId};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::operation::OperationKind;
use tributary_core::time::rfc3339;
use tributary_engine::action::{action_failure, input_violations};
use utoipa::ToSchema;

use crate::access::{ActionsExecute, TenantCaller};
use crate::idempotency::Idempotent;
use crate::openapi::ProblemDoc;
use crate::problem::{ApiError, FieldError};
use crate::request::{Id, invalid, path_segment};
use crate::response::{AcceptedAt, Json};
use crate::router::{Api, operations};
use crate::routes::provider_call::{CallDeps, engine_failure, provider_of, usable};
use crate::routes::store_failure;
use crate::state::{
    AppState, Clock, ControlStore, Jobs, JobsQueue, Providers, Secrets, Settings, Store,
};

const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// An action's name from the path: 1–64 lowercase letters, digits and `_`, starting with a letter.
pub struct ActionName(pub String);

impl<St: Send + Sync> FromRequestParts<St> for ActionName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let raw = path_segment(parts, "action")?;
        let mut chars = raw.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && raw.len() <= 64
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid(
                "path.action",
                "An action name is 1-64 lowercase letters, digits and `_`, starting with a letter.",
            ))
        }
    }
}

/// An action's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResultOut {
    /// The connection it acted through.
    pub connection_id: String,
    /// The action.
    pub action: String,
    /// What the provider answered, as the action's output selector picks it (`null` for an empty
    /// answer).
    pub output: Value,
}

/// Why an action run failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionErrorOut {
    /// `invalid_input`, `needs_reauth`, `rate_limited`, `provider_rejected`, `provider_error`,
    /// `timeout`, `network`, `config`, `unknown_outcome` (an attempt was interrupted while its
    /// request may have been sent to a provider that cannot deduplicate it, so it was not sent
    /// again) or `internal`.
    pub class: String,
    /// What happened.
    pub message: String,
    /// The provider's HTTP status, when it answered.
    pub provider_status: Option<u16>,
}

/// An asynchronous execution of an action.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionRunOut {
    /// Id (`arun_…`).
    pub id: String,
    /// The connection.
    pub connection_id: String,
    /// The connection's provider.
    pub provider: String,
    /// The action.
    pub action: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    /// Attempts started (at most 5; an attempt that failed for now is retried with backoff).
    pub attempts: u32,
    /// The output, once it succeeded.
    pub output: Option<Value>,
    /// Whether the output was larger than the 256 KiB a run keeps (it succeeded; the output is
    /// not available).
    pub output_omitted: bool,
    /// Why it failed, or why its last attempt failed while it waits for the next.
    pub error: Option<ActionErrorOut>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339: when it ended.
    pub completed_at: Option<String>,
}

fn class_name(c: ActionErrorClass) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<ActionRun> for ActionRunOut {
    fn from(r: ActionRun) -> Self {
        Self {
            id: r.id.to_string(),
            connection_id: r.connection_id.to_string(),
            provider: r.provider,
            action: r.action,
            state: r.state.as_str().to_owned(),
            attempts: r.attempts,
            output: r.output,
            output_omitted: r.output_omitted,
            error: r.error.map(|e| ActionErrorOut {
                class: class_name(e.class),
                message: e.message,
                provider_status: e.provider_status,
            }),
            created_at: rfc3339(r.created_at_ms).unwrap_or_default(),
            updated_at: rfc3339(r.updated_at_ms).unwrap_or_default(),
            completed_at: r.completed_at_ms.and_then(rfc3339),
        }
    }
}

/// Whether `Prefer` (RFC 7240) asks for `respond-async`.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|p| {
                p.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
            })
        })
    })
}

/// The key sent to a provider that deduplicates writes, for a request now: derived from the
/// caller's `Idempotency-Key` (scoped like the API's own replay), so a retry sends the same key;
/// fresh without one.
fn provider_key(caller: &TenantCaller<ActionsExecute>, headers: &HeaderMap) -> String {
    match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(key) => {
            let mut h = Sha256::new();
            for part in [caller.tenant.as_str(), &caller.principal.principal, key] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            format!("tributary-{}", &hex::encode(h.finalize())[..40])
        }
        None => format!("tributary-{}", ActionRunId::generate()),
    }
}

/// Runs an action of the connection's provider. The body is the action's input (an empty body is
/// `{}`); it is validated against the action's input schema before anything is sent. Without
/// `Prefer: respond-async` the action runs now and the answer carries its output; with it, an
/// action run is queued (202) and executed by the connector, with retries for rate limits and, for
/// providers that deduplicate writes, outages.
#[utoipa::path(post, path = "/v1/connections/{connection_id}/actions/{action}", operation_id = "run_action", tag = "Actions",
    request_body(content = Option<Object>, description = "The action's input, as its `input_schema` in the provider catalog (GET /v1/providers/{provider}) describes it"),
    params(("connection_id" = String, Path, description = "Connection id (`conn_…`)", pattern = "^conn_[0-9a-f]{32}$"),
           ("action" = String, Path, description = "The action's name in the connection's provider spec", pattern = "^[a-z][a-z0-9_]{0,63}$"),
           ("Prefer" = Option<String>, Header, description = "`respond-async` to queue an action run instead of waiting for the provider"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h; the provider is never written twice for one key")),
    responses((status = 200, description = "The provider accepted it: its output", body = ActionResultOut),
              (status = 202, description = "Queued (`Prefer: respond-async`): the action run",
                   body = ActionRunOut,
                   headers(("Location" = String, description = "The action run (absent when the response is an idempotent replay)"),
                           ("Preference-Applied" = String, description = "`respond-async`"))),
              (status = 400, description = "The input does not satisfy the action's schema (one error per JSON Pointer)", body = ProblemDoc),
              (status = 403, description = "Requires `actions:execute`", body = ProblemDoc),
              (status = 404, description = "No such connection for this tenant, or no such action for its provider", body = ProblemDoc),
              (status = 409, description = "The connection needs its end user again (`needs_reauth`), is disabled, or the same Idempotency-Key is in progress", body = ProblemDoc),
              (status = 413, description = "The input is larger than 64 KiB", body = ProblemDoc),
              (status = 422, description = "The provider refused the request (`provider_rejected`, with its status and message), or the Idempotency-Key was reused with another body", body = ProblemDoc),
              (status = 429, description = "The provider's rate limit (`provider_rate_limited`, with `Retry-After`)", body = ProblemDoc),
              (status = 502, description = "The provider failed or could not be reached", body = ProblemDoc),
              (status = 504, description = "The provider did not answer in time", body = ProblemDoc)))]
#[allow(clippy::too_many_arguments)]
pub async fn run<S: ControlStore, Q: JobsQueue>(
    caller: TenantCaller<ActionsExecute>,
    store: Store<S>,
    jobs: Jobs<Q>,
    clock: Clock,
    vault: Secrets,
    engine: Providers,
    settings: Settings,
    headers: HeaderMap,
    Id(connection_id): Id<ConnectionId>,
    ActionName(name): ActionName,
    Idempotent(input): Idempotent<Option<Value>>,
) -> Result<Response, ApiError> {
    let input = input.unwrap_or_else(|| Value::Object(Default::default()));
    let size = serde_json::to_vec(&input).map_or(usize::MAX, |b| b.len());
    if size > MAX_INPUT_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_INPUT_BYTES,
        });
    }
    let connection =
        crate::routes::connections::load(&*store, &caller.tenant, &connection_id).await?;
    let spec = provider_of(&connection)?;
    let action = spec
        .action(&name)
        .ok_or(ApiError::NotFound { resource: "action" })?;
    let violations = input_violations(spec, action, &input).map_err(|e| {
        tracing::error!(provider = %spec.id, action = %name, error = %e, "an action's schema is unusable");
        ApiError::Internal
    })?;
    if !violations.is_empty() {
        return Err(ApiError::Validation {
            detail: format!(
                "The input does not satisfy the input schema of `{}` action `{name}` ({} problem{}); nothing was sent.",
                spec.id,
                violations.len(),
                if violations.len() == 1 { "" } else { "s" }
            ),
            errors: violations
                .into_iter()
                .map(|v| FieldError {
                    pointer: format!("/body{}", v.pointer),
                    detail: v.message,
                })
                .collect(),
        });
    }
    if prefers_async(&headers) {
        return queue(&caller, &*store, &jobs, &clock, connection, &name, input).await;
    }
    let (log, time, tenant) = (store.0.clone(), clock.0.clone(), caller.tenant.clone());
    let action = name.clone();
    crate::oplog::recorded(
        &*log,
        &*time,
        settings.operations_retention_days,
        &tenant,
        OperationKind::ActionRun,
        |d| d.op.name = Some(action),
        |_: &Response, _| {},
        run_now(
            &caller,
            &*store,
            &vault,
            &engine,
            &settings,
            &clock,
            &headers,
            connection_id,
            spec,
            name,
            input,
        ),
    )
    .await
}

/// Runs the action now, within the request.
#[allow(clippy::too_many_arguments)]
async fn run_now<S: ControlStore>(
    caller: &TenantCaller<ActionsExecute>,
    store: &S,
    vault: &Secrets,
    engine: &Providers,
    settings: &Settings,
    clock: &Clock,
    headers: &HeaderMap,
    connection_id: ConnectionId,
    spec: &'static tributary_engine::spec::ProviderSpec,
    name: String,
    input: Value,
) -> Result<Response, ApiError> {
    let deps = CallDeps {
        store,
        vault,
        engine,
        settings,
        clock,
    };
    let usable = usable(&deps, &caller.tenant, &connection_id).await?;
    let key = provider_key(caller, headers);
    let started = std::time::Instant::now();
    match engine
        .action_with_key(spec, &name, &usable.engine, &input, Some(&key))
        .await
    {
        Ok(output) => {
            tracing::info!(connection_id = %connection_id, provider = %spec.id, action = %name, elapsed_ms = started.elapsed().as_millis() as u64, "action ran");
            Ok(Json(ActionResultOut {
                connection_id: connection_id.to_string(),
                action: name,
                output,
            })
            .into_response())
        }
        Err(e) => {
            let class = action_failure(&e, false).error.class;
            tracing::info!(connection_id = %connection_id, provider = %spec.id, action = %name, class = %class_name(class), elapsed_ms = started.elapsed().as_millis() as u64, "action failed");
            Err(engine_failure(spec, &connection_id, e))
        }
    }
}

/// Queues an action run of the validated `input` and its job.
async fn queue<S: ControlStore, Q: JobsQueue>(
    caller: &TenantCaller<ActionsExecute>,
    store: &S,
    jobs: &Jobs<Q>,
    clock: &Clock,
    connection: tributary_core::connection::Connection,
    name: &str,
    input: Value,
) -> Result<Response, ApiError> {
    let now = clock.now_ms();
    let mut run = ActionRun {
        id: ActionRunId::generate(),
        tenant_id: caller.tenant.clone(),
        connection_id: connection.id.clone(),
        provider: connection.provider.clone(),
        action: name.to_owned(),
        input: Some(input),
        state: ActionRunState::Queued,
        attempts: 0,
        output: None,
        output_omitted: false,
        error: None,
        created_at_ms: now,
        updated_at_ms: now,
        completed_at_ms: None,
        version: 1,
    };
    store.create_action_run(&run).await.map_err(store_failure)?;
    let job = JobEnvelope::new(JobKind::ActionRun {
        tenant_id: run.tenant_id.clone(),
        action_run_id: run.id.clone(),
    });
    if let Err(e) = jobs.send(&job, Duration::ZERO).await {
        tracing::error!(action_run_id = %run.id, error = %e, "an action run's job could not be sent");
        // The run must not wait forever for a job that does not exist.
        let read_version = run.version;
        let event = run.finish(
            Err(tributary_core::action::ActionError {
                class: ActionErrorClass::Internal,
                message: "its job could not be queued".into(),
                provider_status: None,
            }),
            now,
        );
        if let Err(e) = store
            .update_action_run(&run, read_version, Some(&event))
            .await
        {
            tracing::error!(action_run_id = %run.id, error = %e, "an action run whose job was not sent could not be failed");
        }
        return Err(if e.is_retryable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal
        });
    }
    tracing::info!(action_run_id = %run.id, connection_id = %run.connection_id, action = %run.action, job_id = %job.id, max_attempts = MAX_ATTEMPTS, "action run queued");
    let mut response = AcceptedAt {
        location: format!("/v1/action-runs/{}", run.id),
        body: ActionRunOut::from(run),
    }
    .into_response();
    response.headers_mut().insert(
        PREFERENCE_APPLIED,
        HeaderValue::from_static("respond-async"),
    );
    Ok(response)
}

/// Reads an action run: its state, and its output or error once it ended. Ended runs are kept 30
/// days.
#[utoipa::path(get, path = "/v1/action-runs/{action_run_id}", operation_id = "get_action_run", tag = "Actions",
    params(("action_run_id" = String, Path, description = "Action run id (`arun_…`)", pattern = "^arun_[0-9a-f]{32}$")),
    responses((status = 200, description = "The action run", body = ActionRunOut),
              (status = 403, description = "Requires `actions:execute`", body = ProblemDoc),
              (status = 404, description = "No such action run for this tenant", body = ProblemDoc)))]
pub async fn get_run<S: ControlStore>(
    caller: TenantCaller<ActionsExecute>,
    store: Store<S>,
    Id(id): Id<ActionRunId>,
) -> Result<Json<ActionRunOut>, ApiError> {
    store
        .get_action_run(&caller.tenant, &id)
        .await
        .map_err(store_failure)?
        .map(|r| Json(ActionRunOut::from(r)))
        .ok_or(ApiError::NotFound {
            resource: "action run",
        })
}

/// The operations.
pub fn router<S: ControlStore, Q: JobsQueue>() -> Api<AppState<S, Q>> {
    operations![run, get_run]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_respond_async_is_found_among_preferences() {
        let mut h = HeaderMap::new();
        assert!(!prefers_async(&h));
        h.insert(
            "prefer",
            HeaderValue::from_static("return=minimal, Respond-Async; wait=5"),
        );
        assert!(prefers_async(&h));
        h.insert("prefer", HeaderValue::from_static("respond-asynchronously"));
        assert!(!prefers_async(&h));
    }
}
