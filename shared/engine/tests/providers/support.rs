//! Shared harness for the provider tests: the embedded spec, an engine allowed to reach the
//! loopback mock, connections pointed at the mock, and helpers to drain a stream.

use std::time::Duration;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use tributary_engine::connection::Bound;
use tributary_engine::{
    Connection, EgressPolicy, Engine, EngineError, HttpConfig, ProviderSpec, ReadOptions,
};
use wiremock::MockServer;

/// The catalog spec with this id, as embedded in the binary.
pub fn spec(id: &str) -> ProviderSpec {
    match tributary_engine::catalog::get(id) {
        Some(Ok(s)) => s,
        Some(Err(e)) => panic!("{id}: {e}"),
        None => panic!("{id} is not in catalog::FILES"),
    }
}

/// An engine that may reach the loopback mock. Backoff is near zero, so a test that sees a
/// retry wait of about a second knows the provider's own delay header was honoured.
pub fn engine() -> Engine {
    let egress = EgressPolicy::with_allowlist(["127.0.0.1", "::1"]).expect("allowlist");
    Engine::new(HttpConfig {
        egress,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        max_inline_wait: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..HttpConfig::default()
    })
    .expect("engine")
}

/// A connection with the given configuration and credentials.
pub fn conn(config: &[(&str, &str)], credentials: &[(&str, &str)]) -> Connection {
    Connection {
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        credentials: credentials
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
            .collect(),
        ..Connection::default()
    }
}

/// `conn` with its base URL replaced by the mock server's URI plus `path`.
pub fn mocked(
    server: &MockServer,
    path: &str,
    config: &[(&str, &str)],
    credentials: &[(&str, &str)],
) -> Connection {
    Connection {
        base_url: Some(format!("{}{path}", server.uri())),
        ..conn(config, credentials)
    }
}

/// The base URL the spec renders for a real (unmocked) connection.
pub fn real_base_url(spec: &ProviderSpec, conn: &Connection) -> String {
    Bound::new(spec, conn)
        .unwrap_or_else(|e| panic!("{e}"))
        .base_url
        .to_string()
}

/// What a full read returned.
#[derive(Debug)]
pub struct ReadResult {
    /// Every record, in order.
    pub records: Vec<Value>,
    /// Pages yielded.
    pub pages: u64,
    /// Retries the client made.
    pub retries: u64,
}

impl ReadResult {
    /// The string values at `field` of each record.
    pub fn ids(&self, field: &str) -> Vec<String> {
        self.records
            .iter()
            .map(|r| match &r[field] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }
}

/// Reads `stream` to the end.
pub async fn read_all(
    engine: &Engine,
    spec: &ProviderSpec,
    stream: &str,
    conn: &Connection,
) -> Result<ReadResult, EngineError> {
    let before = engine
        .client()
        .stats()
        .retries
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut pages = engine.read(spec, stream, conn, ReadOptions::default())?;
    let mut out = ReadResult {
        records: Vec::new(),
        pages: 0,
        retries: 0,
    };
    while let Some(page) = pages.next().await {
        let page = page?;
        out.pages += 1;
        for r in page.records {
            out.records.push(r.to_value().expect("record is JSON"));
        }
    }
    out.retries = engine
        .client()
        .stats()
        .retries
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    Ok(out)
}

/// Lowercase hex HMAC-SHA256.
pub fn hmac_hex(secret: &str, data: &[u8]) -> String {
    hex::encode(hmac_raw(secret, data))
}

/// Standard base64 HMAC-SHA256.
pub fn hmac_base64(secret: &str, data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hmac_raw(secret, data))
}

fn hmac_raw(secret: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Headers from name/value pairs; a name given twice is sent twice.
pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    h
}

/// The public URL webhook tests pretend the provider called.
pub const HOOK_URL: &str = "https://hooks.example.com/webhooks/in";

/// `webhook::verify` of a POST to [`HOOK_URL`] with the given secret.
pub fn verify_webhook(
    hooks: &tributary_engine::spec::WebhookSpec,
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Result<tributary_engine::webhook::Inbound, tributary_engine::webhook::WebhookError> {
    let request = tributary_engine::webhook::WebhookRequest {
        method: &http::Method::POST,
        url: HOOK_URL,
        headers,
        body,
    };
    tributary_engine::webhook::verify(
        hooks,
        Some(&SecretString::from(secret.to_owned())),
        &request,
        now,
    )
}

/// The event of a verified webhook; panics on anything else.
pub fn verified_event(
    inbound: Result<tributary_engine::webhook::Inbound, tributary_engine::webhook::WebhookError>,
) -> tributary_engine::webhook::VerifiedWebhook {
    match inbound {
        Ok(tributary_engine::webhook::Inbound::Event(v)) => v,
        other => panic!("expected a verified event, got {other:?}"),
    }
}

/// Matches a request whose query is exactly these name/value pairs (decoded, in any order, a
/// pair given twice expected twice): a parameter the spec sends twice, or one the test does not
/// name, makes the request unmatched (the mock server then answers 404 and the read fails).
pub fn query_exactly(pairs: &[(&str, &str)]) -> ExactQuery {
    let mut expected: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    expected.sort();
    ExactQuery(expected)
}

/// See [`query_exactly`].
#[derive(Debug, Clone)]
pub struct ExactQuery(Vec<(String, String)>);

impl wiremock::Match for ExactQuery {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let mut got: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        got.sort();
        got == self.0
    }
}
