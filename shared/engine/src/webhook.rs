//! Inbound webhook verification over the exact raw request: an HMAC (SHA-256 or SHA-1) of a
//! signed payload built from the body, the timestamp, the method and the public URL, or an HS256
//! JWT; constant-time comparison, timestamp tolerance, subscription handshakes, and extraction
//! of the event id (for dedupe), event type and connection routing key.
//!
//! A route calls [`connection_key`] when the spec's secret lives on a connection, resolves the
//! secret the spec names ([`WebhookSecret`](crate::spec::WebhookSecret)), then calls [`verify`]
//! and acts on the [`Inbound`] it returns.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha1::Sha1;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::selector::Selector;
use crate::spec::{
    Handshake, SecretEncoding, SignatureAlgorithm, SignatureEncoding, SignatureFormat,
    TimestampUnit, ValueSource, WebhookSpec,
};

/// Longest handshake value (challenge or verification token) accepted, in bytes.
const MAX_HANDSHAKE_VALUE: usize = 1024;

/// Why a webhook was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A required header is absent or not text.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// The signature header (or the timestamp, or the token) cannot be read, or a header the
    /// scheme reads was sent more than once.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The timestamp is outside the tolerance (replay protection), or the token has expired.
    #[error("timestamp outside the {0} s tolerance")]
    Stale(u64),
    /// No signature matched.
    #[error("signature mismatch")]
    Mismatch,
    /// The route has no secret for this request (e.g. Notion before its handshake). Not the
    /// sender's fault alone: the integration may be incomplete.
    #[error("no secret is configured to verify this webhook")]
    MissingSecret,
    /// The configured secret is empty or not in the spec's `secret_encoding`: a configuration
    /// error, never the sender's.
    #[error("the configured webhook secret is empty or not {0}")]
    InvalidSecret(&'static str),
}

/// What a verified webhook carries for routing and dedupe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifiedWebhook {
    /// Provider event id.
    pub event_id: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Value routing the event to a connection.
    pub connection_key: Option<String>,
}

/// An inbound request as the route received it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// Request method.
    pub method: &'a Method,
    /// The public URL the provider called (scheme, host, path and query exactly as sent, not
    /// the gateway's internal one): signed by HubSpot.
    pub url: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The exact raw body (after any base64 decoding by the gateway).
    pub body: &'a [u8],
}

/// The response a verified challenge asks for: status 200 with this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    /// `Content-Type` of the reply.
    pub content_type: String,
    /// Body of the reply.
    pub body: String,
}

/// What an inbound request turned out to be.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A verified event to process.
    Event(VerifiedWebhook),
    /// A verified subscription challenge (Slack `url_verification`): answer 200 with the reply,
    /// process nothing.
    Challenge(HandshakeReply),
    /// An unsigned verification token (Notion): nothing vouches for it, so the route stores it
    /// as the integration's pending secret for an administrator to confirm (Notion asks for it
    /// back in its UI), answers 200 with an empty body, and never echoes or logs it.
    VerificationToken(SecretString),
}

/// Reads a header the scheme depends on: absent, not text, or sent more than once is an error
/// (a repeated header would let a proxy and this code read different values).
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, WebhookError> {
    let mut values = headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| WebhookError::MissingHeader(name.to_owned()))?;
    if values.next().is_some() {
        return Err(WebhookError::Malformed(format!(
            "header {name} sent more than once"
        )));
    }
    first
        .to_str()
        .map(str::trim)
        .map_err(|_| WebhookError::MissingHeader(name.to_owned()))
}

/// The routing key of a request, read WITHOUT verifying it: only to find the connection whose
/// secret then verifies the request ([`WebhookSecret::Connection`](crate::spec::WebhookSecret)).
/// Use the key [`verify`] returns for anything else.
pub fn connection_key(spec: &WebhookSpec, request: &WebhookRequest<'_>) -> Option<String> {
    let json: Option<Value> = serde_json::from_slice(request.body).ok();
    pick(spec.connection_key.as_ref(), request.headers, json.as_ref())
}

fn pick(src: Option<&ValueSource>, headers: &HeaderMap, json: Option<&Value>) -> Option<String> {
    match src? {
        ValueSource::Header { name } => header(headers, name).ok().map(str::to_owned),
        ValueSource::Body { path } => Selector::parse(path).ok()?.get_text(json?),
    }
}

/// Verifies a request against the spec with the secret the spec names (`None` when the route
/// has none yet), at `now`.
///
/// A Notion-style verification token is recognised before any secret is needed; a challenge
/// only after its signature verifies.
pub fn verify(
    spec: &WebhookSpec,
    secret: Option<&SecretString>,
    request: &WebhookRequest<'_>,
    now: OffsetDateTime,
) -> Result<Inbound, WebhookError> {
    if let Some(Handshake::VerificationToken { field }) = &spec.handshake
        && request.headers.get(&spec.signature_header).is_none()
        && let Some(token) = verification_token(request.body, field)
    {
        return Ok(Inbound::VerificationToken(token));
    }
    let key = key(spec, secret.ok_or(WebhookError::MissingSecret)?)?;
    let sig_header = header(request.headers, &spec.signature_header)?;
    match &spec.format {
        SignatureFormat::Jwt { prefix } => {
            let token = strip(sig_header, prefix)?;
            verify_jwt(token, &key, spec.tolerance_seconds, now)?;
        }
        SignatureFormat::Plain { prefix } => {
            let sig = strip(sig_header, prefix)?;
            let ts = match &spec.timestamp_header {
                Some(h) => Some(header(request.headers, h)?),
                None => None,
            };
            verify_mac(spec, &key, ts, &[sig], request, now)?;
        }
        SignatureFormat::KeyValue {
            timestamp_key,
            signature_key,
        } => {
            let mut ts = None;
            let mut sigs = Vec::new();
            for part in sig_header.split(',') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    if k == timestamp_key {
                        if ts.replace(v).is_some() {
                            return Err(WebhookError::Malformed(format!(
                                "`{timestamp_key}=` given more than once"
                            )));
                        }
                    } else if k == signature_key {
                        sigs.push(v);
                    }
                }
            }
            let ts = match (&spec.timestamp_header, ts) {
                (Some(h), _) => header(request.headers, h)?,
                (None, Some(t)) => t,
                (None, None) => {
                    return Err(WebhookError::Malformed(format!("no `{timestamp_key}=`")));
                }
            };
            verify_mac(spec, &key, Some(ts), &sigs, request, now)?;
        }
    }

    let json: Option<Value> = serde_json::from_slice(request.body).ok();
    if let Some(Handshake::Challenge {
        when,
        echo,
        content_type,
    }) = &spec.handshake
        && let Some(body) = &json
        && Selector::parse(&when.path)
            .ok()
            .and_then(|s| s.get(body))
            .is_some_and(|v| when.equals.contains(v))
    {
        let value = Selector::parse(echo)
            .ok()
            .and_then(|s| s.get(body))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= MAX_HANDSHAKE_VALUE)
            .ok_or_else(|| WebhookError::Malformed(format!("challenge without `{echo}`")))?;
        return Ok(Inbound::Challenge(HandshakeReply {
            content_type: content_type.clone(),
            body: value.to_owned(),
        }));
    }
    Ok(Inbound::Event(VerifiedWebhook {
        event_id: pick(spec.event_id.as_ref(), request.headers, json.as_ref()),
        event_type: pick(spec.event_type.as_ref(), request.headers, json.as_ref()),
        connection_key: pick(spec.connection_key.as_ref(), request.headers, json.as_ref()),
    }))
}

/// The token of a body that is exactly `{"<field>": "<token>"}`.
fn verification_token(body: &[u8], field: &str) -> Option<SecretString> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    let token = map.get(field)?.as_str()?;
    let plausible = !token.is_empty()
        && token.len() <= MAX_HANDSHAKE_VALUE
        && token.bytes().all(|b| b.is_ascii_graphic());
    plausible.then(|| SecretString::from(token.to_owned()))
}

fn key(spec: &WebhookSpec, secret: &SecretString) -> Result<Vec<u8>, WebhookError> {
    let text = secret.expose_secret();
    // An empty key would let anyone compute a valid MAC: a secret the route failed to load
    // must fail closed.
    let key = match spec.secret_encoding {
        SecretEncoding::Utf8 => text.as_bytes().to_vec(),
        SecretEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| WebhookError::InvalidSecret("base64"))?,
    };
    if key.is_empty() {
        return Err(WebhookError::InvalidSecret(match spec.secret_encoding {
            SecretEncoding::Utf8 => "utf8",
            SecretEncoding::Base64 => "base64",
        }));
    }
    Ok(key)
}

fn strip<'s>(value: &'s str, prefix: &str) -> Result<&'s str, WebhookError> {
    let rest = value
        .strip_prefix(prefix)
        .ok_or_else(|| WebhookError::Malformed(format!("expected prefix `{prefix}`")))?;
    if rest.is_empty() {
        return Err(WebhookError::Malformed("no signature".into()));
    }
    Ok(rest)
}

/// Checks the timestamp, then compares every candidate signature with the MAC of the signed
/// payload.
fn verify_mac(
    spec: &WebhookSpec,
    key: &[u8],
    timestamp: Option<&str>,
    signatures: &[&str],
    request: &WebhookRequest<'_>,
    now: OffsetDateTime,
) -> Result<(), WebhookError> {
    if signatures.iter().all(|s| s.is_empty()) {
        return Err(WebhookError::Malformed("no signature".into()));
    }
    if let Some(ts) = timestamp {
        check_age(ts, spec.timestamp_unit, spec.tolerance_seconds, now)?;
    }
    let mut mac = Hmacs::new(spec.algorithm, key)?;
    // The signed payload is the template with the request's parts spliced in; `{body}` is the
    // exact raw bytes.
    let mut rest = spec.signed_payload.as_deref().unwrap_or_default();
    let url = unescape(request.url, &spec.url_unescape);
    while let Some(i) = rest.find('{') {
        mac.update(&rest.as_bytes()[..i]);
        let after = &rest[i..];
        let parts: [(&str, &[u8]); 4] = [
            ("{body}", request.body),
            ("{timestamp}", timestamp.unwrap_or_default().as_bytes()),
            ("{method}", request.method.as_str().as_bytes()),
            ("{url}", url.as_bytes()),
        ];
        match parts
            .iter()
            .find_map(|(name, value)| after.strip_prefix(name).map(|r| (r, value)))
        {
            Some((r, value)) => {
                mac.update(value);
                rest = r;
            }
            None => {
                mac.update(b"{");
                rest = &after[1..];
            }
        }
    }
    mac.update(rest.as_bytes());
    let ok = signatures.iter().any(|s| {
        // `verify_slice` compares in constant time and checks the length.
        decode(s, spec.encoding()).is_some_and(|d| mac.verify(&d))
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookError::Mismatch)
    }
}

/// Decodes a signature in its one canonical spelling: lowercase hex, or padded standard base64
/// (whose decoder refuses non-zero trailing bits).
fn decode(sig: &str, encoding: SignatureEncoding) -> Option<Vec<u8>> {
    match encoding {
        SignatureEncoding::Hex => sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            .then(|| hex::decode(sig).ok())
            .flatten(),
        SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(sig).ok(),
    }
}

fn check_age(
    ts: &str,
    unit: TimestampUnit,
    tolerance_seconds: u64,
    now: OffsetDateTime,
) -> Result<(), WebhookError> {
    let digits = ts.strip_prefix('-').unwrap_or(ts);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::Malformed("timestamp is not a number".into()));
    }
    let t: i64 = ts
        .parse()
        .map_err(|_| WebhookError::Malformed("timestamp is not a number".into()))?;
    // i128 holds any i64 difference, so a sender's extreme value is stale, not an overflow.
    let (now, per_second) = match unit {
        TimestampUnit::Seconds => (i128::from(now.unix_timestamp()), 1),
        TimestampUnit::Milliseconds => (now.unix_timestamp_nanos() / 1_000_000, 1000),
    };
    if (now - i128::from(t)).abs() > i128::from(tolerance_seconds) * per_second {
        return Err(WebhookError::Stale(tolerance_seconds));
    }
    Ok(())
}

/// The JWT's time claims; `exp` is required.
#[derive(serde::Deserialize)]
struct JwtTimes {
    exp: f64,
    nbf: Option<f64>,
    iat: Option<f64>,
}

/// The JWT header's one field read: the algorithm.
#[derive(serde::Deserialize)]
struct JwtHeader {
    alg: String,
}

/// Verifies an HS256 JWS in compact form (RFC 7515 §7.1, RFC 7518 §3.2) and its time claims.
///
/// Written here rather than through `jsonwebtoken`: HS256 is one HMAC over the first two parts,
/// which the other schemes already compute, and that crate links every algorithm it supports
/// (RSA, ECDSA, EdDSA with their big-number code), about 0.1 MB of each function's zip. The tests
/// verify tokens minted outside the engine.
fn verify_jwt(
    token: &str,
    key: &[u8],
    tolerance_seconds: u64,
    now: OffsetDateTime,
) -> Result<(), WebhookError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let malformed = |what: &str| WebhookError::Malformed(format!("token: {what}"));
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("the {what} is not unpadded base64url")))
    };
    let head: JwtHeader = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|_| malformed("the header is not a JSON object with an `alg`"))?;
    // HS256 only: no `none`, no other algorithm, so no key confusion.
    if head.alg != "HS256" {
        return Err(malformed(&format!("algorithm `{}` is not HS256", head.alg)));
    }
    let signature = decode(signature, "signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| malformed("unusable key"))?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(claims.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::Mismatch)?;
    // The time claims are checked below against `now`, not against a library's clock.
    let claims: JwtTimes = serde_json::from_slice(&decode(claims, "claims set")?)
        .map_err(|_| malformed("the claims are not a JSON object with a numeric `exp`"))?;
    let now = now.unix_timestamp() as f64;
    let leeway = tolerance_seconds as f64;
    let times = [Some(claims.exp), claims.nbf, claims.iat];
    if times.iter().flatten().any(|t| !t.is_finite()) {
        return Err(WebhookError::Malformed(
            "token times are not numbers".into(),
        ));
    }
    let expired = claims.exp + leeway < now;
    let early = [claims.nbf, claims.iat]
        .iter()
        .flatten()
        .any(|t| t - leeway > now);
    if expired || early {
        return Err(WebhookError::Stale(tolerance_seconds));
    }
    Ok(())
}

/// `url` with the percent-encodings of `chars` decoded (either hex case).
fn unescape(url: &str, chars: &[String]) -> String {
    if chars.is_empty() {
        return url.to_owned();
    }
    let bytes = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|b| b.is_ascii())
            .map(char::from)
            .filter(|c| chars.iter().any(|s| s.len() == 1 && s.starts_with(*c)));
        match decoded {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                // `url` is a str: copy the whole character starting here.
                let ch = url[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    out
}

/// The HMACs a spec can name.
#[derive(Clone)]
enum Hmacs {
    Sha256(Hmac<Sha256>),
    Sha1(Hmac<Sha1>),
}

impl Hmacs {
    fn new(algorithm: SignatureAlgorithm, key: &[u8]) -> Result<Self, WebhookError> {
        let bad = |_| WebhookError::InvalidSecret("a usable HMAC key");
        Ok(match algorithm {
            SignatureAlgorithm::HmacSha256 => Self::Sha256(Hmac::new_from_slice(key).map_err(bad)?),
            SignatureAlgorithm::HmacSha1 => Self::Sha1(Hmac::new_from_slice(key).map_err(bad)?),
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(m) => m.update(data),
            Self::Sha1(m) => m.update(data),
        }
    }

    fn verify(&self, tag: &[u8]) -> bool {
        match self.clone() {
            Self::Sha256(m) => m.verify_slice(tag).is_ok(),
            Self::Sha1(m) => m.verify_slice(tag).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn sign(secret: &str, payload: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(payload);
        hex::encode(m.finalize().into_bytes())
    }

    fn spec(yaml: &str) -> WebhookSpec {
        serde_norway::from_str(yaml).unwrap()
    }

    fn run(
        spec: &WebhookSpec,
        secret: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Inbound, WebhookError> {
        let req = WebhookRequest {
            method: &Method::POST,
            url: "https://hooks.example.com/in",
            headers,
            body,
        };
        verify(spec, Some(&secret.into()), &req, now)
    }

    fn event(r: Result<Inbound, WebhookError>) -> Result<VerifiedWebhook, WebhookError> {
        match r? {
            Inbound::Event(v) => Ok(v),
            other => panic!("not an event: {other:?}"),
        }
    }

    /// A compact JWS with `header` and `claims`, signed with HMAC-SHA256 whatever `alg` says.
    fn hs256_token(key: &[u8], header: &str, claims: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(signing.as_bytes());
        format!(
            "{signing}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        )
    }

    #[test]
    fn a_jwt_is_verified_only_as_hs256_with_an_exp_and_in_its_times() {
        let key = b"jira-secret";
        let now = OffsetDateTime::from_unix_timestamp(1_765_012_600).unwrap();
        let claims = r#"{"iss":"jira","iat":1765012500,"exp":1765012800}"#;
        let good = hs256_token(key, r#"{"alg":"HS256","typ":"JWT"}"#, claims);
        assert!(verify_jwt(&good, key, 60, now).is_ok());
        assert!(matches!(
            verify_jwt(&good, b"another-secret", 60, now),
            Err(WebhookError::Mismatch)
        ));
        // Whatever the MAC, only HS256 is accepted: an `alg` the HMAC does not match is refused.
        for alg in ["none", "HS512", "RS256", "hs256"] {
            let t = hs256_token(key, &format!(r#"{{"alg":"{alg}"}}"#), claims);
            assert!(
                matches!(verify_jwt(&t, key, 60, now), Err(WebhookError::Malformed(m)) if m.contains("not HS256")),
                "{alg}"
            );
        }
        let no_exp = hs256_token(key, r#"{"alg":"HS256"}"#, r#"{"iat":1765012500}"#);
        assert!(matches!(
            verify_jwt(&no_exp, key, 60, now),
            Err(WebhookError::Malformed(_))
        ));
        let later = OffsetDateTime::from_unix_timestamp(1_765_012_900).unwrap();
        assert!(matches!(
            verify_jwt(&good, key, 60, later),
            Err(WebhookError::Stale(60))
        ));
        assert!(verify_jwt(&good, key, 120, later).is_ok());
        for broken in [
            good.replacen('.', "..", 1),
            format!("{good}.x"),
            format!("{good}="),
            good.rsplit_once('.').unwrap().0.to_owned(),
        ] {
            assert!(
                matches!(
                    verify_jwt(&broken, key, 60, now),
                    Err(WebhookError::Malformed(_))
                ),
                "{broken}"
            );
        }
    }

    const STRIPE: &str = "secret: {from: webhook_secret}\nsignature_header: Stripe-Signature\nformat: {type: key_value, timestamp_key: t, signature_key: v1}\nsigned_payload: '{timestamp}.{body}'\nevent_id: {from: body, path: id}\nconnection_key: {from: body, path: account}\n";
    const SLACK: &str = "secret: {from: webhook_secret}\nsignature_header: X-Slack-Signature\nformat: {type: plain, prefix: 'v0='}\ntimestamp_header: X-Slack-Request-Timestamp\nsigned_payload: 'v0:{timestamp}:{body}'\nevent_id: {from: body, path: event_id}\nconnection_key: {from: body, path: team_id}\n";

    #[test]
    fn stripe_signature_with_rotated_secrets_verifies() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let body = br#"{"id":"evt_1","account":"acct_9"}"#;
        let good = sign("whsec_a", &[format!("{t}.").as_bytes(), body].concat());
        let mut h = HeaderMap::new();
        h.insert(
            "stripe-signature",
            HeaderValue::from_str(&format!("t={t},v1={},v1={good}", "00".repeat(32))).unwrap(),
        );
        let v = event(run(&spec(STRIPE), "whsec_a", &h, body, now)).unwrap();
        assert_eq!(v.event_id.as_deref(), Some("evt_1"));
        assert_eq!(v.connection_key.as_deref(), Some("acct_9"));
        assert_eq!(
            event(run(&spec(STRIPE), "whsec_b", &h, body, now)),
            Err(WebhookError::Mismatch)
        );
        let later = now + time::Duration::seconds(301);
        assert_eq!(
            event(run(&spec(STRIPE), "whsec_a", &h, body, later)),
            Err(WebhookError::Stale(300))
        );
    }

    /// A Stripe header signed correctly over `t`, so only the tolerance check can refuse it.
    fn stripe_header(secret: &str, t: &str, body: &[u8]) -> HeaderMap {
        let sig = sign(secret, &[format!("{t}.").as_bytes(), body].concat());
        let mut h = HeaderMap::new();
        h.insert(
            "stripe-signature",
            HeaderValue::from_str(&format!("t={t},v1={sig}")).unwrap(),
        );
        h
    }

    #[test]
    fn extreme_timestamps_are_stale_not_overflows() {
        let now = OffsetDateTime::now_utc();
        let body = br#"{"id":"evt_1"}"#;
        for t in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            -1,
            -now.unix_timestamp(),
            now.unix_timestamp() + 400,
            now.unix_timestamp() - 400,
        ] {
            let t = t.to_string();
            let stripe = stripe_header("whsec_a", &t, body);
            assert_eq!(
                event(run(&spec(STRIPE), "whsec_a", &stripe, body, now)),
                Err(WebhookError::Stale(300)),
                "stripe t={t}"
            );
            let payload = [format!("v0:{t}:").as_bytes(), body].concat();
            let mut slack = HeaderMap::new();
            slack.insert(
                "x-slack-signature",
                HeaderValue::from_str(&format!("v0={}", sign("sl", &payload))).unwrap(),
            );
            slack.insert(
                "x-slack-request-timestamp",
                HeaderValue::from_str(&t).unwrap(),
            );
            assert_eq!(
                event(run(&spec(SLACK), "sl", &slack, body, now)),
                Err(WebhookError::Stale(300)),
                "slack t={t}"
            );
        }
        // Beyond i64, or not plain digits, the timestamp is not a number we accept.
        for bad in [
            "99999999999999999999999",
            "+1",
            " 1",
            "1e9",
            "0x10",
            "",
            "-",
        ] {
            assert!(
                matches!(
                    event(run(
                        &spec(STRIPE),
                        "whsec_a",
                        &stripe_header("whsec_a", bad, body),
                        body,
                        now
                    )),
                    Err(WebhookError::Malformed(_))
                ),
                "t={bad:?}"
            );
        }
        // The edge of the tolerance still verifies.
        let edge = (now.unix_timestamp() - 300).to_string();
        let h = stripe_header("whsec_a", &edge, body);
        assert!(event(run(&spec(STRIPE), "whsec_a", &h, body, now)).is_ok());
    }

    #[test]
    fn millisecond_timestamps_use_the_same_tolerance_in_seconds() {
        let s = spec(
            "secret: {from: client_secret}\nsignature_header: X-Sig\nformat: {type: plain}\nencoding: base64\ntimestamp_header: X-Ts\ntimestamp_unit: milliseconds\nsigned_payload: '{body}{timestamp}'\n",
        );
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let body = b"[]";
        let signed = |ts: i64| {
            let mut m = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
            m.update(body);
            m.update(ts.to_string().as_bytes());
            let mut h = HeaderMap::new();
            h.insert(
                "x-sig",
                HeaderValue::from_str(
                    &base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()),
                )
                .unwrap(),
            );
            h.insert("x-ts", HeaderValue::from_str(&ts.to_string()).unwrap());
            h
        };
        let ms = 1_700_000_000_000_i64;
        assert!(event(run(&s, "k", &signed(ms - 300_000), body, now)).is_ok());
        assert!(event(run(&s, "k", &signed(ms + 300_000), body, now)).is_ok());
        assert_eq!(
            event(run(&s, "k", &signed(ms - 300_001), body, now)),
            Err(WebhookError::Stale(300))
        );
        assert_eq!(
            event(run(&s, "k", &signed(ms + 300_001), body, now)),
            Err(WebhookError::Stale(300))
        );
        // A seconds value read as milliseconds is 1970: stale.
        assert_eq!(
            event(run(&s, "k", &signed(1_700_000_000), body, now)),
            Err(WebhookError::Stale(300))
        );
    }

    #[test]
    fn slack_signature_uses_timestamp_header() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp().to_string();
        let body = br#"{"event_id":"Ev1","team_id":"T1"}"#;
        let payload = [format!("v0:{t}:").as_bytes(), body].concat();
        let mut h = HeaderMap::new();
        h.insert(
            "x-slack-signature",
            HeaderValue::from_str(&format!("v0={}", sign("sl", &payload))).unwrap(),
        );
        h.insert(
            "x-slack-request-timestamp",
            HeaderValue::from_str(&t).unwrap(),
        );
        let v = event(run(&spec(SLACK), "sl", &h, body, now)).unwrap();
        assert_eq!(v.connection_key.as_deref(), Some("T1"));
        h.remove("x-slack-request-timestamp");
        assert!(matches!(
            event(run(&spec(SLACK), "sl", &h, body, now)),
            Err(WebhookError::MissingHeader(_))
        ));
    }

    #[test]
    fn url_unescape_decodes_only_the_listed_characters() {
        let listed: Vec<String> = [":", "/", "?", "@", "!", "$", "'", "(", ")", "*", ",", ";"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            unescape(
                "https://h.example/p%2Fq?a=%3A%3a%40%21%24%27%28%29%2A%2C%3B%3F&b=%20%26%3D%25%2",
                &listed
            ),
            "https://h.example/p/q?a=::@!$'()*,;?&b=%20%26%3D%25%2"
        );
        assert_eq!(
            unescape("https://h.example/ü%3A", &[]),
            "https://h.example/ü%3A"
        );
        assert_eq!(
            unescape("https://h.example/ü%3A%", &listed),
            "https://h.example/ü:%"
        );
    }

    #[test]
    fn an_empty_or_undecodable_secret_fails_closed() {
        let body = br#"{"id":"evt_1"}"#;
        let now = OffsetDateTime::now_utc();
        let h = stripe_header("", &now.unix_timestamp().to_string(), body);
        assert_eq!(
            event(run(&spec(STRIPE), "", &h, body, now)),
            Err(WebhookError::InvalidSecret("utf8"))
        );
        let req = WebhookRequest {
            method: &Method::POST,
            url: "https://hooks.example.com/in",
            headers: &h,
            body,
        };
        assert!(matches!(
            verify(&spec(STRIPE), None, &req, now),
            Err(WebhookError::MissingSecret)
        ));
        let b64 = spec(&format!("{STRIPE}secret_encoding: base64\n"));
        assert_eq!(
            event(run(&b64, "not base64!", &h, body, now)),
            Err(WebhookError::InvalidSecret("base64"))
        );
    }
}
