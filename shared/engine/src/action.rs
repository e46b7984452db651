//! Running an action: input validated against its JSON Schema, body rendered and encoded,
//! output selected from the response.

use serde_json::Value;

use crate::client::{HttpClient, SpecClassifier};
use crate::connection::Bound;
use crate::error::EngineError;
use crate::selector::Selector;
use crate::spec::Action;
use crate::template::Template;

/// Validates `input` against the action's schema; one message per violation.
pub fn validate_input(
    bound: &Bound<'_>,
    action: &Action,
    input: &Value,
) -> Result<(), EngineError> {
    let spec_err = |message: String| EngineError::Spec {
        spec: bound.spec.id.clone(),
        message,
    };
    let validator = jsonschema::validator_for(&action.input_schema)
        .map_err(|e| spec_err(format!("action {}: invalid input_schema: {e}", action.name)))?;
    let errors: Vec<String> = validator
        .iter_errors(input)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
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

/// Runs `action` with `input` and returns the selected output.
pub async fn run_action(
    client: &HttpClient,
    bound: &Bound<'_>,
    action: &Action,
    input: &Value,
) -> Result<Value, EngineError> {
    validate_input(bound, action, input)?;
    let ctx = bound.context(Some(input), None);
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
