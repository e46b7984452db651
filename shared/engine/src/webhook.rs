//! Inbound webhook verification over the exact raw body: HMAC-SHA256 in constant time, timestamp
//! tolerance, and extraction of the event id (for dedupe), event type and connection routing key.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::selector::Selector;
use crate::spec::{SignatureEncoding, SignatureFormat, ValueSource, WebhookSpec};

/// Why a webhook was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A required header is absent or not text.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// The signature header cannot be read.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// The timestamp is outside the tolerance (replay protection).
    #[error("timestamp outside the {0} s tolerance")]
    Stale(u64),
    /// No signature matched.
    #[error("signature mismatch")]
    Mismatch,
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

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| WebhookError::MissingHeader(name.to_owned()))
}

/// Verifies a webhook given its headers and raw body (after any base64 decoding by the gateway).
pub fn verify(
    spec: &WebhookSpec,
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedWebhook, WebhookError> {
    let sig_header = header(headers, &spec.signature_header)?;
    let (timestamp, signatures): (Option<String>, Vec<&str>) = match &spec.format {
        SignatureFormat::Plain { prefix } => {
            let sig = sig_header
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| WebhookError::Malformed(format!("expected prefix `{prefix}`")))?;
            let ts = match &spec.timestamp_header {
                Some(h) => Some(header(headers, h)?.to_owned()),
                None => None,
            };
            (ts, vec![sig])
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
                        ts = Some(v.to_owned());
                    } else if k == signature_key {
                        sigs.push(v);
                    }
                }
            }
            let ts = match (&spec.timestamp_header, ts) {
                (Some(h), _) => Some(header(headers, h)?.to_owned()),
                (None, Some(t)) => Some(t),
                (None, None) => {
                    return Err(WebhookError::Malformed(format!("no `{timestamp_key}=`")));
                }
            };
            (ts, sigs)
        }
    };
    if signatures.is_empty() {
        return Err(WebhookError::Malformed("no signature".into()));
    }
    if let Some(ts) = &timestamp {
        let t: i64 = ts
            .parse()
            .map_err(|_| WebhookError::Malformed("timestamp is not a number".into()))?;
        // `t` is the sender's: a difference that does not fit is as stale as it gets.
        let age = now.unix_timestamp().checked_sub(t).map(i64::unsigned_abs);
        if age.is_none_or(|age| age > spec.tolerance_seconds) {
            return Err(WebhookError::Stale(spec.tolerance_seconds));
        }
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|_| WebhookError::Mismatch)?;
    // The signed payload is the template with `{timestamp}` and the exact body bytes spliced in.
    let ts = timestamp.as_deref().unwrap_or_default();
    let mut rest = spec.signed_payload.as_str();
    while let Some(i) = rest.find('{') {
        mac.update(&rest.as_bytes()[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("{body}") {
            mac.update(body);
            rest = r;
        } else if let Some(r) = after.strip_prefix("{timestamp}") {
            mac.update(ts.as_bytes());
            rest = r;
        } else {
            mac.update(b"{");
            rest = &after[1..];
        }
    }
    mac.update(rest.as_bytes());
    let ok = signatures.iter().any(|s| {
        let decoded = match spec.encoding {
            SignatureEncoding::Hex => hex::decode(s).ok(),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(s).ok(),
        };
        // `verify_slice` compares in constant time and checks the length.
        decoded.is_some_and(|d| mac.clone().verify_slice(&d).is_ok())
    });
    if !ok {
        return Err(WebhookError::Mismatch);
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let pick = |src: &Option<ValueSource>| -> Option<String> {
        match src.as_ref()? {
            ValueSource::Header { name } => header(headers, name).ok().map(str::to_owned),
            ValueSource::Body { path } => Selector::parse(path).ok()?.get_text(json.as_ref()?),
        }
    };
    Ok(VerifiedWebhook {
        event_id: pick(&Some(spec.event_id.clone())),
        event_type: pick(&spec.event_type),
        connection_key: pick(&spec.connection_key),
    })
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

    const STRIPE: &str = "signature_header: Stripe-Signature\nformat: {type: key_value, timestamp_key: t, signature_key: v1}\nsigned_payload: '{timestamp}.{body}'\nevent_id: {from: body, path: id}\nconnection_key: {from: body, path: account}\n";
    const GITHUB: &str = "signature_header: X-Hub-Signature-256\nformat: {type: plain, prefix: 'sha256='}\nsigned_payload: '{body}'\nevent_id: {from: header, name: X-GitHub-Delivery}\n";
    const SLACK: &str = "signature_header: X-Slack-Signature\nformat: {type: plain, prefix: 'v0='}\ntimestamp_header: X-Slack-Request-Timestamp\nsigned_payload: 'v0:{timestamp}:{body}'\nevent_id: {from: body, path: event_id}\nconnection_key: {from: body, path: team_id}\n";

    #[test]
    fn stripe_signature_with_rotated_secrets_verifies() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let body = br#"{"id":"evt_1","account":"acct_9"}"#;
        let good = sign(
            "whsec_a",
            format!("{t}.")
                .as_bytes()
                .iter()
                .chain(body)
                .copied()
                .collect::<Vec<_>>()
                .as_slice(),
        );
        let mut h = HeaderMap::new();
        h.insert(
            "stripe-signature",
            HeaderValue::from_str(&format!("t={t},v1={},v1={good}", "00".repeat(32))).unwrap(),
        );
        let v = verify(&spec(STRIPE), &"whsec_a".into(), &h, body, now).unwrap();
        assert_eq!(v.event_id.as_deref(), Some("evt_1"));
        assert_eq!(v.connection_key.as_deref(), Some("acct_9"));
        assert_eq!(
            verify(&spec(STRIPE), &"whsec_b".into(), &h, body, now),
            Err(WebhookError::Mismatch)
        );
        let later = now + time::Duration::seconds(301);
        assert_eq!(
            verify(&spec(STRIPE), &"whsec_a".into(), &h, body, later),
            Err(WebhookError::Stale(300))
        );
    }

    #[test]
    fn github_signature_covers_exact_body() {
        let body = br#"{"action":"opened"}"#;
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&format!("sha256={}", sign("s3", body))).unwrap(),
        );
        h.insert("x-github-delivery", HeaderValue::from_static("d-1"));
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            verify(&spec(GITHUB), &"s3".into(), &h, body, now)
                .unwrap()
                .event_id
                .as_deref(),
            Some("d-1")
        );
        assert_eq!(
            verify(
                &spec(GITHUB),
                &"s3".into(),
                &h,
                br#"{"action":"opened" }"#,
                now
            ),
            Err(WebhookError::Mismatch)
        );
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_static("sha256=abc"),
        );
        assert_eq!(
            verify(&spec(GITHUB), &"s3".into(), &h, body, now),
            Err(WebhookError::Mismatch)
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
                verify(&spec(STRIPE), &"whsec_a".into(), &stripe, body, now),
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
                verify(&spec(SLACK), &"sl".into(), &slack, body, now),
                Err(WebhookError::Stale(300)),
                "slack t={t}"
            );
        }
        // Beyond i64 the timestamp is not a number we accept.
        let huge = "99999999999999999999999";
        assert!(matches!(
            verify(
                &spec(STRIPE),
                &"whsec_a".into(),
                &stripe_header("whsec_a", huge, body),
                body,
                now
            ),
            Err(WebhookError::Malformed(_))
        ));
        // The edge of the tolerance still verifies.
        let edge = (now.unix_timestamp() - 300).to_string();
        let h = stripe_header("whsec_a", &edge, body);
        assert!(verify(&spec(STRIPE), &"whsec_a".into(), &h, body, now).is_ok());
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
        let v = verify(&spec(SLACK), &"sl".into(), &h, body, now).unwrap();
        assert_eq!(v.connection_key.as_deref(), Some("T1"));
        h.remove("x-slack-request-timestamp");
        assert!(matches!(
            verify(&spec(SLACK), &"sl".into(), &h, body, now),
            Err(WebhookError::MissingHeader(_))
        ));
    }
}
