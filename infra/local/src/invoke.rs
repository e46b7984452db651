//! Invoking a function, whichever way the functions run: prebuilt binaries behind our Runtime API
//! emulator, or `cargo lambda watch`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

use crate::runtime::FunctionHost;

/// Why an invocation produced no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The function returned an error (`/invocation/{id}/error`).
    #[error("function error {error_type}: {message}")]
    Function {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        message: String,
    },
    /// The function did not answer within its timeout.
    #[error("function timed out after {} s", .0.as_secs_f32())]
    Timeout(Duration),
    /// The function could not be reached (no such function, process gone, emulator down).
    #[error("function unavailable: {0}")]
    Unavailable(String),
}

/// Invokes functions by name (their binary name).
#[derive(Clone)]
pub(crate) enum Invoker {
    /// Prebuilt binaries, one process per function.
    Binaries(Arc<BTreeMap<String, FunctionHost>>),
    /// `cargo lambda watch`'s invoke endpoint.
    Watch(Arc<WatchClient>),
}

/// A client of `cargo lambda watch`'s invoke endpoint.
pub(crate) struct WatchClient {
    pub(crate) http: reqwest::Client,
    /// `http://127.0.0.1:<invoke port>`.
    pub(crate) base_url: String,
    /// Per-function timeouts; the first invocation after a change also compiles, so they are generous.
    pub(crate) timeouts: BTreeMap<String, Duration>,
}

impl Invoker {
    /// Invokes `function` synchronously with a JSON payload.
    pub(crate) async fn invoke(
        &self,
        function: &str,
        payload: Bytes,
    ) -> Result<Bytes, InvokeError> {
        match self {
            Self::Binaries(hosts) => match hosts.get(function) {
                Some(host) => host.invoke(payload).await,
                None => Err(InvokeError::Unavailable(format!("no function {function}"))),
            },
            Self::Watch(client) => client.invoke(function, payload).await,
        }
    }
}

impl WatchClient {
    async fn invoke(&self, function: &str, payload: Bytes) -> Result<Bytes, InvokeError> {
        let timeout = self
            .timeouts
            .get(function)
            .copied()
            .ok_or_else(|| InvokeError::Unavailable(format!("no function {function}")))?;
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.base_url
        );
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    InvokeError::Timeout(timeout)
                } else {
                    InvokeError::Unavailable(e.to_string())
                }
            })?;
        let function_error = response.headers().contains_key("x-amz-function-error");
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| InvokeError::Unavailable(e.to_string()))?;
        if function_error || !status.is_success() {
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = |key: &str| {
                parsed
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            return Err(InvokeError::Function {
                error_type: text("errorType").unwrap_or_else(|| status.to_string()),
                message: text("errorMessage")
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
            });
        }
        Ok(body)
    }
}
