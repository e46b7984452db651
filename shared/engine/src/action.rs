//! Running an action: input validated against its JSON Schema, body rendered and encoded,
//! output selected from the response.

use serde_json::Value;

use crate::client::{HttpClient, SpecClassifier};
use crate::connection::Bound;
use crate::error::{EngineError, ErrorClass};
use crate::input_schema::InputSchema;
use crate::selector::Selector;
use crate::spec::{Action, ProviderSpec};
use crate::template::Template;

pub use crate::input_schema::Violation;

/// The places where `input` breaks the action's schema, in the validator's order (none when it is
/// valid; [`crate::input_schema`] says which keywords are asserted). The spec's schema is checked when the catalog is built, so an error here is a spec
/// error.
pub fn input_violations(
    spec: &ProviderSpec,
    action: &Action,
    input: &Value,
) -> Result<Vec<Violation>, EngineError> {
    let schema = InputSchema::compile(&action.input_schema).map_err(|e| EngineError::Spec {
        spec: spec.id.clone(),
        message: format!("action {}: invalid input_schema: {e}", action.name),
    })?;
    Ok(schema.violations(input))
}

/// Validates `input` against the action's schema; one message per violation.
pub fn validate_input(
    bound: &Bound<'_>,
    action: &Action,
    input: &Value,
) -> Result<(), EngineError> {
    let errors: Vec<String> = input_violations(bound.spec, action, input)?
        .into_iter()
        .map(|v| {
            if v.pointer.is_empty() {
                v.message
            } else {
                format!("{}: {}", v.pointer, v.message)
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Input {
            spec: bound.spec.id.clone(),
            action: action.name.clone(),
            errors,
        })
    }
}

/// Whether the action sends an idempotency key (`{idempotency_key}` in one of its headers), so
/// that the provider deduplicates a request sent twice and a retry after an interrupted attempt is
/// safe.
pub fn deduplicated_by_provider(action: &Action) -> bool {
    action
        .headers
        .values()
        .any(|t| t.contains("{idempotency_key}"))
}

/// Runs `action` with `input` and returns the selected output. `idempotency_key` fills
/// `{idempotency_key}` in the action's headers; an action that uses it needs one.
pub async fn run_action(
    client: &HttpClient,
    bound: &Bound<'_>,
    action: &Action,
    input: &Value,
    idempotency_key: Option<&str>,
) -> Result<Value, EngineError> {
    validate_input(bound, action, input)?;
    let mut ctx = bound.context(Some(input), None);
    ctx.idempotency_key = idempotency_key;
    let field = format!("actions[{}].request", action.name);
    let mut req = bound.render(&field, &action.request, &ctx, &[], &[], action.encoding)?;
    for (k, t) in &action.headers {
        let v = Template::parse(t)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| EngineError::Template {
                spec: bound.spec.id.clone(),
                field: format!("actions[{}].headers.{k}", action.name),
                source: e,
            })?;
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| EngineError::Spec {
            spec: bound.spec.id.clone(),
            message: format!(
                "actions[{}].headers: invalid header name `{k}`",
                action.name
            ),
        })?;
        let value = http::HeaderValue::from_str(&v).map_err(|_| EngineError::Spec {
            spec: bound.spec.id.clone(),
            message: format!(
                "actions[{}].headers.{k}: not valid header text",
                action.name
            ),
        })?;
        if name.as_str().eq_ignore_ascii_case("idempotency-key") {
            req.idempotent = true;
        }
        req.headers.insert(name, value);
    }
    let resp = client
        .send_with(&req, &SpecClassifier::new(bound.spec))
        .await?;
    if resp.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let body: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        let mut u = resp.url.clone();
        u.set_query(None);
        EngineError::Malformed {
            url: u.to_string(),
            message: e.to_string(),
        }
    })?;
    let sel = Selector::parse(&action.output).map_err(|e| EngineError::Spec {
        spec: bound.spec.id.clone(),
        message: e.to_string(),
    })?;
    Ok(sel.get(&body).cloned().unwrap_or(Value::Null))
}

/// What a failed action means for its caller: a class to act on, a message without secrets, the
/// provider's status and requested wait, and whether another attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFailure {
    /// The class.
    pub error: tributary_core::action::ActionError,
    /// The provider's `Retry-After`, for rate limits and outages.
    pub retry_after: Option<std::time::Duration>,
    /// Whether another attempt may succeed and is safe: a rate limit always (the provider did not
    /// act), an outage or a lost answer only when the provider deduplicates the action.
    pub retryable: bool,
}

/// Classifies an action's failure; `deduplicated` says whether the provider deduplicates the
/// request ([`deduplicated_by_provider`]).
pub fn action_failure(e: &EngineError, deduplicated: bool) -> ActionFailure {
    use tributary_core::action::{ActionError, ActionErrorClass as C};
    let (class, status, retry_after) = match e {
        EngineError::Exhausted { last, .. } => return action_failure(last, deduplicated),
        EngineError::Input { .. } => (C::InvalidInput, None, None),
        EngineError::Upstream {
            class,
            status,
            retry_after,
            ..
        } => {
            let c = match class {
                ErrorClass::Auth => C::NeedsReauth,
                ErrorClass::RateLimited => C::RateLimited,
                ErrorClass::Transient => C::ProviderError,
                ErrorClass::Config => C::Config,
                ErrorClass::NotFound | ErrorClass::Permanent => C::ProviderRejected,
            };
            (c, Some(*status), *retry_after)
        }
        EngineError::Timeout(_) => (C::Timeout, None, None),
        EngineError::Transport(_) => (C::Network, None, None),
        EngineError::ResponseTooLarge { .. }
        | EngineError::Malformed { .. }
        | EngineError::Redirect(_) => (C::ProviderError, None, None),
        EngineError::Connector { class, .. } => match class {
            ErrorClass::Auth => (C::NeedsReauth, None, None),
            ErrorClass::RateLimited => (C::RateLimited, None, None),
            ErrorClass::Transient => (C::ProviderError, None, None),
            _ => (C::ProviderRejected, None, None),
        },
        EngineError::Spec { .. }
        | EngineError::Template { .. }
        | EngineError::Connection { .. }
        | EngineError::Egress(_)
        | EngineError::RecordTooLarge { .. }
        | EngineError::Resume(_) => (C::Config, None, None),
    };
    let retryable = match class {
        C::RateLimited => true,
        C::ProviderError | C::Timeout | C::Network => {
            deduplicated && !matches!(e, EngineError::ResponseTooLarge { .. })
        }
        _ => false,
    };
    ActionFailure {
        error: ActionError {
            class,
            message: e.to_string(),
            provider_status: status,
        },
        retry_after,
        retryable,
    }
}
