//! The engine facade: one HTTP client, shared by every read, action and verification.

use futures::stream::BoxStream;
use serde_json::Value;

use crate::client::{HttpClient, HttpConfig, SpecClassifier};
use crate::connection::{Bound, Connection};
use crate::error::EngineError;
use crate::read::{Page, ReadOptions, read_declarative};
use crate::spec::ProviderSpec;

/// Engine settings: the HTTP client's, and the cap on one record.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The guarded client's settings.
    pub http: HttpConfig,
    /// Cap on one record of a stream, in bytes of its JSON.
    pub max_record_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            max_record_bytes: 2 * 1024 * 1024,
        }
    }
}

impl From<HttpConfig> for EngineConfig {
    fn from(http: HttpConfig) -> Self {
        Self {
            http,
            ..Self::default()
        }
    }
}

/// Tells the operation being recorded on this task (if any) of a request attempt, made by any
/// client of the process: provider reads, actions, token refreshes, proxied calls, deliveries.
fn report_attempt(a: &tributary_http::observe::Attempt<'_>) {
    use tributary_core::time::Clock as _;
    let duration_ms = u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX);
    let sent_at = tributary_core::time::SystemClock
        .now_ms()
        .saturating_sub(i64::try_from(duration_ms).unwrap_or(0));
    tributary_core::operation::observe_request(
        &tributary_core::operation::ObservedRequest {
            method: a.method.as_str(),
            host: a.url.host_str().unwrap_or_default(),
            path: a.url.path(),
            query: a.url.query(),
            status: a.status,
            duration_ms,
            attempt: a.attempt,
            error_class: a.error_class,
        },
        sent_at,
    );
}

/// Reads streams, runs actions and verifies credentials. Build once per process.
#[derive(Debug, Clone)]
pub struct Engine {
    client: HttpClient,
    max_record_bytes: usize,
}

impl Engine {
    /// Builds the engine and its HTTP client, from an [`EngineConfig`] or only the client's
    /// [`HttpConfig`].
    pub fn new(cfg: impl Into<EngineConfig>) -> Result<Self, EngineError> {
        let cfg = cfg.into();
        tributary_http::observe::install(report_attempt);
        Ok(Self {
            client: HttpClient::new(cfg.http)?,
            max_record_bytes: cfg.max_record_bytes,
        })
    }

    /// The HTTP client (for its counters).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Reads `stream` page by page, from the first page or from `opts.resume` (a page's
    /// [`Page::resume`], possibly from another process). Streams with a `connector` are read by
    /// that code connector.
    pub fn read<'a>(
        &'a self,
        spec: &'a ProviderSpec,
        stream: &str,
        conn: &'a Connection,
        opts: ReadOptions,
    ) -> Result<BoxStream<'a, Result<Page, EngineError>>, EngineError> {
        let s = spec.stream(stream).ok_or_else(|| EngineError::Spec {
            spec: spec.id.clone(),
            message: format!("no stream `{stream}`"),
        })?;
        let bound = Bound::new(spec, conn)?;
        match &s.connector {
            Some(c) => crate::connector::read(&self.client, bound, s, c, opts),
            None => Ok(read_declarative(
                &self.client,
                bound,
                s,
                opts,
                self.max_record_bytes,
            )),
        }
    }

    /// Runs `action` with `input` (with a fresh idempotency key, for actions that send one).
    pub async fn action(
        &self,
        spec: &ProviderSpec,
        action: &str,
        conn: &Connection,
        input: &Value,
    ) -> Result<Value, EngineError> {
        let key = format!("tributary-{}", tributary_core::ids::JobId::generate());
        self.action_with_key(spec, action, conn, input, Some(&key))
            .await
    }

    /// Runs `action` with `input`, sending `idempotency_key` where the action's headers use it:
    /// the same key for every attempt of one request, so the provider writes once.
    pub async fn action_with_key(
        &self,
        spec: &ProviderSpec,
        action: &str,
        conn: &Connection,
        input: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, EngineError> {
        let a = spec.action(action).ok_or_else(|| EngineError::Spec {
            spec: spec.id.clone(),
            message: format!("no action `{action}`"),
        })?;
        let bound = Bound::new(spec, conn)?;
        crate::action::run_action(&self.client, &bound, a, input, idempotency_key).await
    }

    /// Sends the spec's verification request; `Ok` when the credentials work.
    pub async fn verify(&self, spec: &ProviderSpec, conn: &Connection) -> Result<(), EngineError> {
        let v = spec.verify.as_ref().ok_or_else(|| EngineError::Spec {
            spec: spec.id.clone(),
            message: "the spec has no verify request".into(),
        })?;
        let bound = Bound::new(spec, conn)?;
        let ctx = bound.context(None, None);
        let mut req = bound.render(
            "verify",
            &v.request,
            &ctx,
            &[],
            &[],
            crate::spec::BodyEncoding::Json,
        )?;
        req.idempotent = true;
        let resp = self
            .client
            .send_with(&req, &SpecClassifier::new(spec))
            .await?;
        if !v.expect_status.is_empty() && !v.expect_status.contains(&resp.status.as_u16()) {
            return Err(EngineError::Upstream {
                class: crate::error::ErrorClass::Auth,
                status: resp.status.as_u16(),
                message: Some("unexpected status for the verification request".into()),
                retry_after: None,
            });
        }
        Ok(())
    }
}
