//! Signing keys of registered OIDC issuers: the discovery document
//! (`{iss}/.well-known/openid-configuration`) and the JWKS, fetched through the guarded client of
//! `tributary-http` and cached per URL for the life of the execution environment. Every URL passes
//! [`issuer_url::validate`] first, the rule the API applies when the issuer is registered.
//!
//! The issuer is reached only after a tenant registered it, so the set of URLs is bounded by the
//! registrations. A URL is fetched at most once per [`REFETCH_INTERVAL`]: a stream of tokens with
//! made-up `kid`s, or an issuer that is down, cannot make us hammer it. Junk `kid`s can spend that
//! allowance, though, and a fetch they trigger may fail; so an unknown `kid` against a key set older
//! than [`OLD_KEYS`] is looked up regardless, only [`MIN_REFETCH_GAP`] after the last attempt — a
//! rotated key is then found within seconds, not a minute. Keys whose refresh failed stay usable for
//! [`MAX_STALE`] past their TTL, so a short outage of the issuer does not lock its users out.
//!
//! The fetches of one authorization (discovery, then the JWKS) share one [`FETCH_DEADLINE`], well
//! inside the authorizer's 10 s Lambda timeout, however slowly the issuer answers or retries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::time::Instant;
use tributary_core::tenancy::OidcIssuer;
use tributary_core::time::EpochMillis;
use tributary_http::issuer_url;
use tributary_http::{EgressPolicy, HttpClient, HttpConfig, HttpError, OutRequest};
use url::Url;

use crate::denial::Denial;

/// The least time between two fetches of one URL.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Age past which a key set that lacks a token's `kid` is refetched despite [`REFETCH_INTERVAL`]
/// (bounded by [`MIN_REFETCH_GAP`]). A successful fetch makes the set young again, so this only
/// matters once the attempts of the interval failed.
pub const OLD_KEYS: Duration = Duration::from_secs(300);

/// The least time between two fetches of one URL under the [`OLD_KEYS`] rule: a stream of junk
/// `kid`s against an issuer that is down costs it one fetch per gap, not one per token.
pub const MIN_REFETCH_GAP: Duration = Duration::from_secs(10);

/// How long past their TTL keys stay usable while the issuer cannot be reached.
pub const MAX_STALE: Duration = Duration::from_secs(3600);

/// The time all issuer fetches of one authorization may take together. Each fetch has its own
/// client budget ([`http_config`]), which two in a row could spend past the Lambda timeout (10 s);
/// this bounds the chain, leaving time for the store and the response.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(6);

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The guarded client failed (egress refused, timeout, HTTP error, body too large…).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The body is not JSON.
    #[error("response is not JSON")]
    NotJson,
    /// The authorization's [`FETCH_DEADLINE`] passed before the document arrived.
    #[error("issuer fetches exceeded their {0:?} deadline")]
    Deadline(Duration),
}

/// Fetches a JSON document; the seam between the key cache and the network.
pub trait FetchJson: Send + Sync {
    /// `GET url`, parsed as JSON.
    fn get_json(&self, url: &Url) -> impl Future<Output = Result<Value, FetchError>> + Send;
}

impl FetchJson for HttpClient {
    async fn get_json(&self, url: &Url) -> Result<Value, FetchError> {
        let mut request = OutRequest::get(url.clone());
        request.headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let response = self.send(&request).await?;
        serde_json::from_slice(&response.body).map_err(|_| FetchError::NotJson)
    }
}

/// Client settings for issuer fetches: an authorizer answers within API Gateway's limits, so the
/// budget is seconds, not minutes, and documents are small.
pub fn http_config(egress: EgressPolicy) -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        max_attempts: 2,
        time_budget: Duration::from_secs(5),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        max_inline_wait: Duration::from_secs(1),
        max_response_bytes: 256 * 1024,
        max_redirects: 3,
        egress,
        // Keys fetched in clear text could be swapped on the way: a redirect to http is refused as
        // the first URL is (see `KeySource::secure_url`).
        require_https: true,
        ..HttpConfig::default()
    }
}

/// One entry of a JWKS: its `kid`, and the verification key when it fits an algorithm we accept.
#[derive(Debug, Clone)]
pub struct JwkEntry {
    /// The key id.
    pub kid: Option<String>,
    /// The algorithm the key may verify and the key itself; `None` when the key is of a type, curve,
    /// use or algorithm we do not accept.
    pub usable: Option<(Algorithm, DecodingKey)>,
}

/// Reads a JWKS document. Keys we cannot use are kept without a verification key, so that a token
/// naming one is refused as a mismatch rather than triggering a refetch.
pub fn parse_jwks(doc: &Value) -> Result<Vec<JwkEntry>, &'static str> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS has no `keys` array")?;
    Ok(keys
        .iter()
        .filter_map(Value::as_object)
        .map(|jwk| JwkEntry {
            kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
            usable: usable_key(jwk),
        })
        .collect())
}

fn usable_key(jwk: &serde_json::Map<String, Value>) -> Option<(Algorithm, DecodingKey)> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    let declared = jwk.get("alg");
    let fits = |alg: &str| declared.is_none_or(|d| d.as_str() == Some(alg));
    match text("kty")? {
        "RSA" if fits("RS256") => {
            let key = DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?;
            Some((Algorithm::RS256, key))
        }
        "EC" if fits("ES256") && text("crv") == Some("P-256") => {
            let key = DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?;
            Some((Algorithm::ES256, key))
        }
        _ => None,
    }
}

/// Picks the key for a token. With a `kid`, the key must carry it and fit `alg`; without one, exactly
/// one key may fit `alg`.
pub fn select(keys: &[JwkEntry], kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, Denial> {
    let fitting = |e: &&JwkEntry| matches!(&e.usable, Some((a, _)) if *a == alg);
    match kid {
        Some(kid) => {
            let named: Vec<&JwkEntry> = keys
                .iter()
                .filter(|e| e.kid.as_deref() == Some(kid))
                .collect();
            if named.is_empty() {
                return Err(Denial::UnknownKid);
            }
            named
                .into_iter()
                .find(fitting)
                .and_then(|e| e.usable.as_ref().map(|(_, k)| k.clone()))
                .ok_or(Denial::KeyMismatch)
        }
        None => {
            let mut candidates = keys.iter().filter(fitting);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => only
                    .usable
                    .as_ref()
                    .map(|(_, k)| k.clone())
                    .ok_or(Denial::KeyMismatch),
                _ => Err(Denial::UnknownKid),
            }
        }
    }
}

/// A cached document and the bookkeeping that bounds refetches.
struct Slot<T> {
    value: Option<Arc<T>>,
    fetched_at: EpochMillis,
    last_attempt: Option<EpochMillis>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: None,
            fetched_at: 0,
            last_attempt: None,
        }
    }
}

/// Documents by URL.
struct DocCache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
}

/// Timings of a [`DocCache`], in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Timings {
    ttl: i64,
    max_stale: i64,
    refetch: i64,
    old: i64,
    min_gap: i64,
}

impl<T> DocCache<T> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Under one lock: the cached value still usable at `now`, and whether this caller should fetch
    /// (the value is missing, past its TTL, or does not `satisfy` the caller) — in which case the
    /// attempt is recorded before the lock is released, so concurrent callers do not fetch too.
    /// Attempts are at least `refetch` apart, or `min_gap` when a set older than `old` lacks what
    /// the caller wants. Without `time_left` nothing is fetched and no attempt is spent.
    fn plan(
        &self,
        url: &str,
        now: EpochMillis,
        t: Timings,
        time_left: bool,
        satisfies: impl Fn(&T) -> bool,
    ) -> (Option<Arc<T>>, bool) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(url.to_owned()).or_default();
        let age = now.saturating_sub(slot.fetched_at);
        let usable = slot
            .value
            .clone()
            .filter(|_| age < t.ttl.saturating_add(t.max_stale));
        let satisfied = usable.as_deref().is_some_and(satisfies);
        let wanted = satisfied && age < t.ttl;
        let since_attempt = slot.last_attempt.map(|last| now.saturating_sub(last));
        let old_keys_miss = usable.is_some() && !satisfied && age >= t.old;
        let may_fetch = since_attempt.is_none_or(|s| s >= t.refetch)
            || (old_keys_miss && since_attempt.is_none_or(|s| s >= t.min_gap));
        let fetch = !wanted && may_fetch && time_left;
        if fetch {
            slot.last_attempt = Some(now);
        }
        (usable, fetch)
    }

    fn store(&self, url: &str, now: EpochMillis, value: Arc<T>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(url.to_owned()).or_default();
        slot.value = Some(value);
        slot.fetched_at = now;
    }
}

/// Finds the verification key of a token from its issuer's published keys.
pub struct KeySource<F> {
    fetch: F,
    egress: EgressPolicy,
    timings: Timings,
    fetch_deadline: Duration,
    discovery: DocCache<Url>,
    jwks: DocCache<Vec<JwkEntry>>,
}

impl<F: FetchJson> KeySource<F> {
    /// A key source fetching through `fetch`, caching documents for `ttl`. `egress` is the policy the
    /// client enforces; hosts it opens (the local stack, tests) may be reached over plain http.
    pub fn new(fetch: F, egress: EgressPolicy, ttl: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            fetch,
            egress,
            timings: Timings {
                ttl: ms(ttl),
                max_stale: ms(MAX_STALE),
                refetch: ms(REFETCH_INTERVAL),
                old: ms(OLD_KEYS),
                min_gap: ms(MIN_REFETCH_GAP),
            },
            fetch_deadline: FETCH_DEADLINE,
            discovery: DocCache::new(),
            jwks: DocCache::new(),
        }
    }

    /// Replaces [`FETCH_DEADLINE`], the time the fetches of one [`Self::key_for`] may take together.
    pub fn with_fetch_deadline(mut self, deadline: Duration) -> Self {
        self.fetch_deadline = deadline;
        self
    }

    /// The key that verifies a token of `issuer` (whose `iss` claim is `iss`) with this `kid` and
    /// `alg`. Unreachable or unusable issuer documents are denials, not errors: they are the tenant's
    /// infrastructure, and an error would turn them into our 500s.
    pub async fn key_for(
        &self,
        issuer: &OidcIssuer,
        iss: &str,
        kid: Option<&str>,
        alg: Algorithm,
        now: EpochMillis,
    ) -> Result<DecodingKey, Denial> {
        let deadline = Instant::now() + self.fetch_deadline;
        let jwks_url = match &issuer.jwks_uri {
            Some(raw) => self.secure_url(raw)?,
            None => self.discover(iss, now, deadline).await?,
        };
        let keys = self.keys(&jwks_url, kid, now, deadline).await?;
        select(&keys, kid, alg)
    }

    /// `GET url` unless `deadline` passes first.
    async fn get_json_by(&self, url: &Url, deadline: Instant) -> Result<Value, FetchError> {
        tokio::time::timeout_at(deadline, self.fetch.get_json(url))
            .await
            .unwrap_or(Err(FetchError::Deadline(self.fetch_deadline)))
    }

    /// The `jwks_uri` from the issuer's discovery document, whose `issuer` must be `iss` exactly.
    async fn discover(
        &self,
        iss: &str,
        now: EpochMillis,
        deadline: Instant,
    ) -> Result<Url, Denial> {
        self.secure_url(iss)?;
        let raw = format!(
            "{}/.well-known/openid-configuration",
            iss.trim_end_matches('/')
        );
        let url = self.secure_url(&raw)?;
        let (cached, fetch) = self.discovery.plan(
            url.as_str(),
            now,
            self.timings,
            Instant::now() < deadline,
            |_| true,
        );
        let mut failure = "discovery document not fetched (refetch interval)".to_owned();
        if fetch {
            match self.get_json_by(&url, deadline).await {
                Ok(doc) => match self.read_discovery(&doc, iss) {
                    Ok(jwks_url) => {
                        self.discovery
                            .store(url.as_str(), now, Arc::new(jwks_url.clone()));
                        return Ok(jwks_url);
                    }
                    Err(denial) => failure = denial.to_string(),
                },
                Err(e) => failure = format!("discovery fetch failed: {e}"),
            }
            tracing::warn!(host = url.host_str().unwrap_or_default(), reason = %failure, "issuer discovery failed");
        }
        cached
            .map(|u| (*u).clone())
            .ok_or(Denial::KeysUnavailable(failure))
    }

    fn read_discovery(&self, doc: &Value, iss: &str) -> Result<Url, Denial> {
        if doc.get("issuer").and_then(Value::as_str) != Some(iss) {
            return Err(Denial::KeysUnavailable(
                "discovery `issuer` differs from the token's `iss`".into(),
            ));
        }
        let raw = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| Denial::KeysUnavailable("discovery has no `jwks_uri`".into()))?;
        self.secure_url(raw)
    }

    async fn keys(
        &self,
        url: &Url,
        kid: Option<&str>,
        now: EpochMillis,
        deadline: Instant,
    ) -> Result<Arc<Vec<JwkEntry>>, Denial> {
        let knows = |keys: &Vec<JwkEntry>| match kid {
            Some(kid) => keys.iter().any(|e| e.kid.as_deref() == Some(kid)),
            None => true,
        };
        let time_left = Instant::now() < deadline;
        let (cached, fetch) = self
            .jwks
            .plan(url.as_str(), now, self.timings, time_left, knows);
        let mut failure = "JWKS not fetched (refetch interval)".to_owned();
        if fetch {
            match self.get_json_by(url, deadline).await {
                Ok(doc) => match parse_jwks(&doc) {
                    Ok(keys) => {
                        let keys = Arc::new(keys);
                        self.jwks.store(url.as_str(), now, Arc::clone(&keys));
                        tracing::info!(
                            host = url.host_str().unwrap_or_default(),
                            keys = keys.len(),
                            "JWKS fetched"
                        );
                        return Ok(keys);
                    }
                    Err(reason) => failure = reason.to_owned(),
                },
                Err(e) => failure = format!("JWKS fetch failed: {e}"),
            }
            tracing::warn!(host = url.host_str().unwrap_or_default(), reason = %failure, "JWKS refresh failed");
        }
        cached.ok_or(Denial::KeysUnavailable(failure))
    }

    /// Parses an issuer-supplied URL under [`issuer_url::validate`]: https, except for hosts the
    /// egress allowlist opens (loopback or private addresses of the local stack and tests), and no
    /// credentials.
    pub fn secure_url(&self, raw: &str) -> Result<Url, Denial> {
        issuer_url::validate(raw, &self.egress).map_err(|e| Denial::KeysUnavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // The modulus of tests/fixtures/rsa_private.der (a test-only key), base64url.
    const N: &str = "0YGmSI7T-wVRvTzRWxeM-h2AeZdFRJ06nU1vihR0ASzRTdZkosl-H-5vC3dWqqGiaaQvU3VDi-UYCv6ViXwtRZlmB4YUxJq2RxCLCd88IcwWx76F8M7BvRuV6WEMBAj3xqTnFmb6kl1jcVdf_hanm1fOe90Z_yvYYLfv2LnrW0hNeYQKlpaGtLo6JI38HGLLRjrVHOD0Eq_L3je16bIGGvucZriN5DNqyHxnFmi7u7dVvPshTcJI50eViQot8A7amTzGokBA_5mj7vNiU8GrB-nEOV5z7lg_MMEbXI6ZNXf4KRuq-YTMlT28QP-JC7APsy8rELHNSniJWGnnE0cxlQ";

    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": N, "e": "AQAB"})
    }

    #[test]
    fn keys_of_other_types_uses_or_algorithms_are_kept_but_unusable() {
        let doc = json!({"keys": [
            rsa("good"),
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "rs384", "alg": "RS384", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "no-verify", "key_ops": ["encrypt"], "n": N, "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            "not an object",
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.len(), 6);
        let usable: Vec<_> = keys
            .iter()
            .filter(|k| k.usable.is_some())
            .map(|k| k.kid.as_deref())
            .collect();
        assert_eq!(usable, vec![Some("good")]);
    }

    #[test]
    fn a_document_without_keys_is_refused() {
        assert!(parse_jwks(&json!({"keys": "x"})).is_err());
        assert!(parse_jwks(&json!([])).is_err());
    }

    #[test]
    fn selection_needs_the_kid_and_a_fitting_algorithm() {
        let keys = parse_jwks(&json!({"keys": [rsa("a"), rsa("b")]})).unwrap();
        assert!(select(&keys, Some("a"), Algorithm::RS256).is_ok());
        assert_eq!(
            select(&keys, Some("zzz"), Algorithm::RS256).unwrap_err(),
            Denial::UnknownKid
        );
        assert_eq!(
            select(&keys, Some("a"), Algorithm::ES256).unwrap_err(),
            Denial::KeyMismatch
        );
        // Without a kid the choice must be unambiguous.
        assert_eq!(
            select(&keys, None, Algorithm::RS256).unwrap_err(),
            Denial::UnknownKid
        );
        let one = parse_jwks(&json!({"keys": [rsa("a")]})).unwrap();
        assert!(select(&one, None, Algorithm::RS256).is_ok());
    }

    struct CountingFetch {
        calls: AtomicUsize,
        doc: Value,
    }

    impl FetchJson for CountingFetch {
        async fn get_json(&self, _url: &Url) -> Result<Value, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.doc.clone())
        }
    }

    fn issuer(jwks_uri: Option<&str>) -> OidcIssuer {
        OidcIssuer {
            id: tributary_core::ids::IssuerId::generate(),
            tenant_id: tributary_core::ids::TenantId::generate(),
            issuer: "https://idp.example.com".into(),
            audience: "api".into(),
            jwks_uri: jwks_uri.map(str::to_owned),
            scopes_claim: "scope".into(),
            allowed_scopes: Vec::new(),
            created_at_ms: 0,
            expires_at_ms: None,
            created_by: String::new(),
        }
    }

    fn source(doc: Value) -> KeySource<CountingFetch> {
        KeySource::new(
            CountingFetch {
                calls: AtomicUsize::new(0),
                doc,
            },
            EgressPolicy::public_only(),
            Duration::from_secs(600),
        )
    }

    #[tokio::test]
    async fn when_kids_are_unknown_should_refetch_at_most_once_per_interval() {
        let src = source(json!({"keys": [rsa("a")]}));
        let iss = issuer(Some("https://idp.example.com/jwks"));
        let at = 1_000_000;
        let key = |kid: &'static str, now| {
            src.key_for(&iss, &iss.issuer, Some(kid), Algorithm::RS256, now)
        };
        assert!(key("a", at).await.is_ok());
        // Keys fetched less than a minute ago are not fetched again for an unknown kid.
        for i in 0..50 {
            assert_eq!(
                key("garbage", at + i * 1_000).await.unwrap_err(),
                Denial::UnknownKid
            );
        }
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 1);
        // After the interval, one refetch, then none for the rest of the new window.
        let later = at + 61_000;
        for i in 0..50 {
            assert_eq!(
                key("garbage", later + i * 1_000).await.unwrap_err(),
                Denial::UnknownKid
            );
        }
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 2);
        assert!(key("a", later + 100).await.is_ok());
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn when_ttl_passes_should_refetch_and_keep_known_keys_meanwhile() {
        let src = source(json!({"keys": [rsa("a")]}));
        let iss = issuer(Some("https://idp.example.com/jwks"));
        for now in [0, 1_000, 599_000] {
            assert!(
                src.key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, now)
                    .await
                    .is_ok()
            );
        }
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 1);
        assert!(
            src.key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, 601_000)
                .await
                .is_ok()
        );
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn plain_http_is_refused_unless_the_allowlist_opens_the_host() {
        let public = source(json!({}));
        assert!(public.secure_url("https://idp.example.com").is_ok());
        assert!(public.secure_url("http://idp.example.com").is_err());
        assert!(public.secure_url("http://127.0.0.1:8080").is_err());
        assert!(
            public
                .secure_url("https://user:pw@idp.example.com")
                .is_err()
        );
        assert!(public.secure_url("ftp://idp.example.com").is_err());
        assert!(public.secure_url("not a url").is_err());

        let local = KeySource::new(
            CountingFetch {
                calls: AtomicUsize::new(0),
                doc: json!({}),
            },
            EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
            Duration::from_secs(600),
        );
        assert!(local.secure_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(local.secure_url("http://localhost:8080/jwks").is_ok());
        assert!(local.secure_url("http://10.0.0.1/jwks").is_err());
        // A public host is not "opened" by the allowlist: it must use https.
        assert!(local.secure_url("http://93.184.216.34/jwks").is_err());
    }

    #[tokio::test]
    async fn issuer_fetches_refuse_a_redirect_to_plain_http() {
        use tributary_http::EgressDenied;
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let server = MockServer::start().await;
        // `.invalid` never resolves: only the scheme check can refuse it as egress.
        Mock::given(path("/.well-known/openid-configuration"))
            .respond_with(
                ResponseTemplate::new(302).insert_header("location", "http://idp.invalid/oidc"),
            )
            .mount(&server)
            .await;
        let egress = EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
        let http = HttpClient::new(http_config(egress)).unwrap();
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            server.uri()
        ))
        .unwrap();

        let err = http.get_json(&url).await.unwrap_err();

        assert!(
            matches!(
                err,
                FetchError::Http(HttpError::Egress(EgressDenied::InsecureScheme { .. }))
            ),
            "{err}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    /// An issuer serving `doc`, or failing while it is `None`.
    struct ScriptedFetch {
        calls: AtomicUsize,
        doc: Mutex<Option<Value>>,
    }

    impl ScriptedFetch {
        fn serve(&self, doc: Option<Value>) {
            *self.doc.lock().unwrap() = doc;
        }
    }

    impl FetchJson for ScriptedFetch {
        async fn get_json(&self, _url: &Url) -> Result<Value, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let doc = self.doc.lock().unwrap().clone();
            doc.ok_or(FetchError::NotJson)
        }
    }

    fn scripted(doc: Value) -> KeySource<ScriptedFetch> {
        KeySource::new(
            ScriptedFetch {
                calls: AtomicUsize::new(0),
                doc: Mutex::new(Some(doc)),
            },
            EgressPolicy::public_only(),
            Duration::from_secs(600),
        )
    }

    #[tokio::test]
    async fn when_keys_are_old_a_rotated_kid_is_fetched_despite_a_recent_junk_attempt() {
        let src = scripted(json!({"keys": [rsa("a")]}));
        let iss = issuer(Some("https://idp.example.com/jwks"));
        let calls = || src.fetch.calls.load(Ordering::SeqCst);
        let key = |kid: &'static str, now| {
            src.key_for(&iss, &iss.issuer, Some(kid), Algorithm::RS256, now)
        };
        let t0 = 1_000_000;
        assert!(key("a", t0).await.is_ok());
        // Junk a minute later: one fetch for the whole minute.
        let t1 = t0 + 61_000;
        for i in 0..50 {
            assert_eq!(
                key("junk", t1 + i * 1_000).await.unwrap_err(),
                Denial::UnknownKid
            );
        }
        assert_eq!(calls(), 2);

        // The issuer stumbles just as junk arrives at keys over five minutes old: that attempt fails
        // and spends the interval's allowance.
        src.fetch.serve(None);
        let t2 = t1 + 301_000;
        assert_eq!(key("junk", t2).await.unwrap_err(), Denial::UnknownKid);
        assert_eq!(calls(), 3);
        // More junk within the gap does not reach the issuer.
        for i in 1..10 {
            assert_eq!(
                key("junk", t2 + i * 1_000).await.unwrap_err(),
                Denial::UnknownKid
            );
        }
        assert_eq!(calls(), 3);

        // It recovers with a rotated key; a token naming it seconds later is not held back.
        src.fetch.serve(Some(json!({"keys": [rsa("a"), rsa("b")]})));
        assert!(key("b", t2 + 15_000).await.is_ok());
        assert_eq!(calls(), 4);
        // The set is young again: junk is back to once a minute.
        for i in 0..40 {
            assert_eq!(
                key("junk", t2 + 16_000 + i * 1_000).await.unwrap_err(),
                Denial::UnknownKid
            );
        }
        assert_eq!(calls(), 4);
    }

    #[tokio::test]
    async fn junk_against_old_keys_of_a_down_issuer_is_bounded_by_the_gap() {
        let src = scripted(json!({"keys": [rsa("a")]}));
        let iss = issuer(Some("https://idp.example.com/jwks"));
        let t0 = 1_000_000;
        assert!(
            src.key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, t0)
                .await
                .is_ok()
        );
        src.fetch.serve(None);
        let start = t0 + 400_000;
        // One junk token every 100 ms for a minute: 600 tokens.
        for i in 0..600 {
            let denial = src
                .key_for(
                    &iss,
                    &iss.issuer,
                    Some("junk"),
                    Algorithm::RS256,
                    start + i * 100,
                )
                .await
                .unwrap_err();
            assert_eq!(denial, Denial::UnknownKid);
        }
        let fetches = src.fetch.calls.load(Ordering::SeqCst) - 1;
        assert_eq!(fetches, 6, "one per 10 s gap");
        // Known keys stay usable meanwhile, without fetching.
        assert!(
            src.key_for(
                &iss,
                &iss.issuer,
                Some("a"),
                Algorithm::RS256,
                start + 60_000
            )
            .await
            .is_ok()
        );
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst) - 1, 6);
    }

    /// An issuer answering every request after `delay`.
    struct SlowFetch {
        delay: Duration,
        calls: AtomicUsize,
    }

    impl FetchJson for SlowFetch {
        async fn get_json(&self, url: &Url) -> Result<Value, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if url.path().ends_with("/openid-configuration") {
                Ok(json!({
                    "issuer": "https://idp.example.com",
                    "jwks_uri": "https://idp.example.com/jwks",
                }))
            } else {
                Ok(json!({"keys": [rsa("a")]}))
            }
        }
    }

    #[tokio::test]
    async fn discovery_and_jwks_together_end_by_one_deadline() {
        let deadline = Duration::from_millis(500);
        let src = KeySource::new(
            SlowFetch {
                delay: Duration::from_millis(400),
                calls: AtomicUsize::new(0),
            },
            EgressPolicy::public_only(),
            Duration::from_secs(600),
        )
        .with_fetch_deadline(deadline);
        let iss = issuer(None);
        let started = std::time::Instant::now();

        let got = src
            .key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, 0)
            .await;

        // Each fetch fits the deadline alone (400 ms); both (800 ms) do not.
        let elapsed = started.elapsed();
        assert!(
            elapsed < deadline + Duration::from_millis(200),
            "{elapsed:?}"
        );
        let err = got.err().unwrap();
        assert!(
            matches!(&err, Denial::KeysUnavailable(m) if m.contains("deadline")),
            "{err:?}"
        );
        assert_eq!(src.fetch.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hanging_issuer_is_given_up_at_the_deadline() {
        let deadline = Duration::from_millis(300);
        let src = KeySource::new(
            SlowFetch {
                // Long enough to fail the test plainly, not hang it, without the deadline.
                delay: Duration::from_secs(20),
                calls: AtomicUsize::new(0),
            },
            EgressPolicy::public_only(),
            Duration::from_secs(600),
        )
        .with_fetch_deadline(deadline);
        let iss = issuer(Some("https://idp.example.com/jwks"));
        let started = std::time::Instant::now();

        let got = src
            .key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, 0)
            .await;

        assert!(started.elapsed() < deadline + Duration::from_millis(200));
        assert!(matches!(got, Err(Denial::KeysUnavailable(_))));
    }

    #[test]
    fn the_default_deadline_leaves_room_in_the_lambda_timeout() {
        const LAMBDA_TIMEOUT: Duration = Duration::from_secs(10);
        let src = source(json!({}));
        assert_eq!(src.fetch_deadline, FETCH_DEADLINE);
        assert!(FETCH_DEADLINE + Duration::from_secs(3) <= LAMBDA_TIMEOUT);
    }

    #[tokio::test]
    async fn discovery_must_name_the_same_issuer() {
        let src = source(json!({
            "issuer": "https://evil.example.com",
            "jwks_uri": "https://idp.example.com/jwks"
        }));
        let iss = issuer(None);
        let err = src
            .key_for(&iss, &iss.issuer, Some("a"), Algorithm::RS256, 0)
            .await
            .unwrap_err();
        assert!(matches!(err, Denial::KeysUnavailable(_)), "{err:?}");
    }
}
