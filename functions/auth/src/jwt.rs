//! JWTs from a tenant's registered OIDC issuer.
//!
//! The header and claims are decoded first *without trusting them*, only to find the registration
//! (`iss` + `aud`) and the key (`kid`). Then the signature is verified with a key from the issuer's
//! JWKS, never with a key the token names or embeds: `jku`, `x5u`, `jwk`, `x5c` (and `crit`) are
//! refused outright. Only RS256 and ES256 are accepted, so `alg: none` and HS256 signed with a public
//! key fail before any key is looked at. `exp` is required; `exp`, `nbf` and `iat` are checked against
//! the injected clock with [`LEEWAY`].

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use tributary_core::PortError;
use tributary_core::auth::Principal;
use tributary_core::ports::{CredentialStore, TenantStore};
use tributary_core::scope::{Scope, parse_known};
use tributary_core::tenancy::OidcIssuer;
use tributary_core::time::EpochMillis;

use crate::denial::{Denial, Verdict};
use crate::jwks::{FetchJson, KeySource};
use crate::tenant::require_active;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Header parameters that name or carry keys (or demand extensions): a token must not choose the key
/// it is verified with.
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// Longest `iss`, `kid` and `sub` we look at.
const MAX_FIELD_LEN: usize = 512;

/// Most audiences a token may name (each costs one registration lookup).
const MAX_AUDIENCES: usize = 5;

/// Whether a credential is shaped like a JWS compact serialization: three base64url segments, the
/// last possibly empty (an unsigned token, which is then refused as such rather than taken for an
/// admin key).
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let shaped = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(h), Some(p), Some(_), None) if !h.is_empty() && !p.is_empty()
    );
    shaped
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The facts read from a token before its signature is checked.
struct Untrusted {
    alg: Algorithm,
    kid: Option<String>,
    iss: String,
    aud: Vec<String>,
    exp: i64,
}

/// Verifies JWTs of registered issuers.
pub struct JwtVerifier<F> {
    keys: KeySource<F>,
}

impl<F: FetchJson> JwtVerifier<F> {
    /// A verifier taking keys from `keys`.
    pub fn new(keys: KeySource<F>) -> Self {
        Self { keys }
    }

    /// Checks a JWT at `now`. Store failures are errors; everything else is a verdict.
    pub async fn authorize<D>(
        &self,
        store: &D,
        now: EpochMillis,
        token: &str,
    ) -> Result<Verdict, PortError>
    where
        D: TenantStore + CredentialStore,
    {
        let untrusted = match read_untrusted(token, now) {
            Ok(u) => u,
            Err(reason) => {
                tracing::info!(reason = %reason, "denied");
                return Ok(Err(reason));
            }
        };
        let verdict = self.verify(store, now, token, &untrusted).await?;
        match &verdict {
            Ok(p) => tracing::info!(
                issuer = %untrusted.iss,
                kid = untrusted.kid.as_deref().unwrap_or_default(),
                principal = %p.principal,
                "allowed"
            ),
            Err(reason) => tracing::info!(
                issuer = %untrusted.iss,
                kid = untrusted.kid.as_deref().unwrap_or_default(),
                reason = %reason,
                "denied"
            ),
        }
        Ok(verdict)
    }

    async fn verify<D>(
        &self,
        store: &D,
        now: EpochMillis,
        token: &str,
        untrusted: &Untrusted,
    ) -> Result<Verdict, PortError>
    where
        D: TenantStore + CredentialStore,
    {
        // One read per audience the token names (at most MAX_AUDIENCES): the (iss, aud) pair is a
        // unique item, so no other tenant's registrations can hide or shadow the right one.
        let mut registrations = Vec::with_capacity(untrusted.aud.len());
        for aud in &untrusted.aud {
            if let Some(found) = store.issuer_registration(&untrusted.iss, aud).await? {
                registrations.push(found);
            }
        }
        let registration = match pick_registration(registrations, now) {
            Ok(r) => r,
            Err(reason) => return Ok(Err(reason)),
        };
        let key = match self
            .keys
            .key_for(
                &registration,
                &untrusted.iss,
                untrusted.kid.as_deref(),
                untrusted.alg,
                now,
            )
            .await
        {
            Ok(k) => k,
            Err(reason) => return Ok(Err(reason)),
        };

        // Time was checked by `read_untrusted` against our clock; the library checks the signature,
        // the algorithm, `iss` and `aud` again, now on verified bytes.
        let mut validation = Validation::new(untrusted.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[untrusted.iss.as_str()]);
        validation.set_audience(&[registration.audience.as_str()]);
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Ok(Err(library_denial(e.kind()))),
        };

        let Some(sub) = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_FIELD_LEN)
        else {
            return Ok(Err(Denial::MissingClaim("sub")));
        };
        if let Err(reason) = require_active(store, &registration.tenant_id).await? {
            return Ok(Err(reason));
        }
        // The token is accepted until `exp` plus leeway, and never after its registration expires:
        // the API function enforces this on requests the gateway's cache lets through.
        let leeway_ms = i64::try_from(LEEWAY.as_millis()).unwrap_or(i64::MAX);
        let token_expiry = untrusted.exp.saturating_mul(1000).saturating_add(leeway_ms);
        let expires_at_ms = registration
            .expires_at_ms
            .map_or(token_expiry, |r| r.min(token_expiry));
        let mut scopes = scopes_of(&claims, &registration.scopes_claim);
        scopes.retain(|s| registration.allowed_scopes.contains(s));
        Ok(Ok(Principal {
            principal: format!("jwt:{sub}"),
            tenant_id: Some(registration.tenant_id.clone()),
            scopes,
            expires_at_ms: Some(expires_at_ms),
        }))
    }
}

/// Decodes header and claims and applies every check that needs no key. Nothing read here is
/// trusted until the signature verifies.
fn read_untrusted(token: &str, now: EpochMillis) -> Result<Untrusted, Denial> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return Err(Denial::MalformedJwt("not three segments"));
    };
    let header = json_object(header)?;
    for name in FORBIDDEN_HEADERS {
        if header.contains_key(name) {
            return Err(Denial::ForbiddenHeader(name));
        }
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        _ => return Err(Denial::AlgorithmNotAllowed),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_FIELD_LEN => Some(k.clone()),
        Some(_) => return Err(Denial::MalformedJwt("kid is not a short string")),
    };

    let claims = json_object(payload)?;
    let iss = match claims.get("iss") {
        None => return Err(Denial::MissingClaim("iss")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_FIELD_LEN => s.clone(),
        Some(_) => return Err(Denial::MalformedJwt("iss is not a short string")),
    };
    let aud = match claims.get("aud") {
        None => return Err(Denial::MissingClaim("aud")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(Denial::MalformedJwt(
                "aud is not a string or an array of strings",
            ))?,
        Some(_) => {
            return Err(Denial::MalformedJwt(
                "aud is not a string or an array of strings",
            ));
        }
    };
    let mut aud = aud;
    aud.sort();
    aud.dedup();
    if aud.is_empty() || aud.len() > MAX_AUDIENCES {
        return Err(Denial::MalformedJwt("aud names no audience or too many"));
    }

    let now_s = now.div_euclid(1000);
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX);
    let exp = numeric_date(&claims, "exp")?.ok_or(Denial::MissingClaim("exp"))?;
    if now_s > exp.saturating_add(leeway) {
        return Err(Denial::Expired);
    }
    if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now_s.saturating_add(leeway)) {
        return Err(Denial::NotYetValid);
    }
    if numeric_date(&claims, "iat")?.is_some_and(|iat| iat > now_s.saturating_add(leeway)) {
        return Err(Denial::IssuedInFuture);
    }
    Ok(Untrusted {
        alg,
        kid,
        iss,
        aud,
        exp,
    })
}

fn json_object(segment: &str) -> Result<Map<String, Value>, Denial> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Denial::MalformedJwt("segment is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Denial::MalformedJwt("segment is not a JSON object")),
    }
}

/// A NumericDate claim in whole seconds; fractions are truncated, as RFC 7519 allows them.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Denial> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .map(Some)
            .ok_or(Denial::MalformedJwt("a time claim is not a number")),
    }
}

/// The registration the token belongs to, among those of its (`iss`, `aud`) pairs: one tenant's, and
/// not expired.
fn pick_registration(
    mut registrations: Vec<OidcIssuer>,
    now: EpochMillis,
) -> Result<OidcIssuer, Denial> {
    registrations.sort_by(|a, b| a.id.cmp(&b.id));
    let tenants: BTreeSet<_> = registrations.iter().map(|r| &r.tenant_id).collect();
    if tenants.len() > 1 {
        return Err(Denial::AmbiguousRegistration);
    }
    registrations.retain(|r| r.is_usable(now));
    registrations
        .into_iter()
        .next()
        .ok_or(Denial::IssuerNotRegistered)
}

/// Scopes from the registration's claim (a space-separated string or an array of names). Unknown
/// names are ignored, and `admin` is never taken from a token: a tenant's identity provider must not
/// mint deployment administrators.
fn scopes_of(claims: &Map<String, Value>, claim: &str) -> Vec<Scope> {
    let list = match claims.get(claim) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let mut scopes = parse_known(&list);
    scopes.retain(|s| *s != Scope::Admin);
    scopes
}

fn library_denial(kind: &ErrorKind) -> Denial {
    match kind {
        ErrorKind::InvalidSignature => Denial::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            Denial::AlgorithmNotAllowed
        }
        ErrorKind::InvalidIssuer => Denial::ClaimsRefused("iss"),
        ErrorKind::InvalidAudience => Denial::ClaimsRefused("aud"),
        ErrorKind::MissingRequiredClaim(_) => Denial::ClaimsRefused("a required claim is missing"),
        ErrorKind::InvalidClaimFormat(_) => Denial::ClaimsRefused("a claim has the wrong type"),
        _ => Denial::ClaimsRefused("the token did not verify"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&claims))
    }

    const NOW: EpochMillis = 1_800_000_000_000;

    fn claims() -> Value {
        json!({"iss": "https://idp.example.com", "aud": "api", "sub": "u1", "exp": 1_800_000_300})
    }

    #[test]
    fn jwt_shape_is_three_base64url_segments() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJi."));
        assert!(!looks_like_jwt("eyJh.eyJi"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt(".b.c"));
        assert!(!looks_like_jwt("a b.c.d"));
        assert!(!looks_like_jwt("local-admin-key"));
    }

    #[test]
    fn only_rs256_and_es256_are_accepted() {
        for alg in [
            "none", "None", "HS256", "HS512", "RS384", "PS256", "EdDSA", "",
        ] {
            let t = token(json!({"alg": alg, "kid": "k"}), claims());
            assert_eq!(
                read_untrusted(&t, NOW).err(),
                Some(Denial::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        let t = token(json!({"kid": "k"}), claims());
        assert_eq!(
            read_untrusted(&t, NOW).err(),
            Some(Denial::AlgorithmNotAllowed)
        );
        for alg in ["RS256", "ES256"] {
            assert!(read_untrusted(&token(json!({"alg": alg}), claims()), NOW).is_ok());
        }
    }

    #[test]
    fn key_carrying_header_parameters_are_refused_even_when_null() {
        for name in FORBIDDEN_HEADERS {
            let mut header = json!({"alg": "RS256", "kid": "k"});
            header[name] = Value::Null;
            assert_eq!(
                read_untrusted(&token(header, claims()), NOW).err(),
                Some(Denial::ForbiddenHeader(name))
            );
        }
    }

    #[test]
    fn time_claims_are_checked_with_leeway() {
        let h = json!({"alg": "RS256"});
        let at = |exp: i64, extra: Value| {
            let mut c = claims();
            c["exp"] = json!(exp);
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            read_untrusted(&token(h.clone(), c), NOW).err()
        };
        let now_s = NOW / 1000;
        assert_eq!(at(now_s - 59, json!({})), None);
        assert_eq!(at(now_s - 61, json!({})), Some(Denial::Expired));
        assert_eq!(at(now_s + 600, json!({"nbf": now_s + 59})), None);
        assert_eq!(
            at(now_s + 600, json!({"nbf": now_s + 61})),
            Some(Denial::NotYetValid)
        );
        assert_eq!(
            at(now_s + 600, json!({"iat": now_s + 120})),
            Some(Denial::IssuedInFuture)
        );
        assert_eq!(
            at(now_s + 600, json!({"nbf": "soon"})),
            Some(Denial::MalformedJwt("a time claim is not a number"))
        );
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            read_untrusted(&token(h, no_exp), NOW).err(),
            Some(Denial::MissingClaim("exp"))
        );
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        let h = json!({"alg": "ES256"});
        let mut c = claims();
        c["aud"] = json!(["other", "api"]);
        assert_eq!(
            read_untrusted(&token(h.clone(), c.clone()), NOW)
                .unwrap()
                .aud
                .len(),
            2
        );
        c["aud"] = json!(["api", 5]);
        assert!(read_untrusted(&token(h.clone(), c.clone()), NOW).is_err());
        c["aud"] = json!(5);
        assert!(read_untrusted(&token(h, c), NOW).is_err());
    }

    #[test]
    fn garbage_segments_are_malformed_not_panics() {
        for t in [
            "e30.e30.",
            "%%%.e30.x",
            "bnVsbA.bnVsbA.x",
            "W10.W10.x",
            "eyJhbGciOiJSUzI1NiJ9.!!!.x",
            "..",
            ".",
            "",
        ] {
            assert!(read_untrusted(t, NOW).is_err(), "{t}");
        }
    }

    fn registration(tenant: &tributary_core::ids::TenantId, aud: &str) -> OidcIssuer {
        OidcIssuer {
            id: tributary_core::ids::IssuerId::generate(),
            tenant_id: tenant.clone(),
            issuer: "https://idp.example.com".into(),
            audience: aud.into(),
            jwks_uri: None,
            scopes_claim: "scope".into(),
            allowed_scopes: vec![Scope::ConnectionsRead],
            created_at_ms: 0,
            expires_at_ms: None,
            created_by: "key_x".into(),
        }
    }

    #[test]
    fn the_registration_must_be_one_tenants_and_unexpired() {
        let (a, b) = (
            tributary_core::ids::TenantId::generate(),
            tributary_core::ids::TenantId::generate(),
        );
        assert_eq!(
            pick_registration(vec![registration(&b, "api-b")], NOW)
                .unwrap()
                .tenant_id,
            b
        );
        assert_eq!(
            pick_registration(
                vec![registration(&a, "api-a"), registration(&b, "api-b")],
                NOW
            )
            .unwrap_err(),
            Denial::AmbiguousRegistration
        );
        assert_eq!(
            pick_registration(vec![], NOW).unwrap_err(),
            Denial::IssuerNotRegistered
        );
        let mut expired = registration(&a, "api-a");
        expired.expires_at_ms = Some(NOW);
        assert_eq!(
            pick_registration(vec![expired], NOW).unwrap_err(),
            Denial::IssuerNotRegistered
        );
    }

    #[test]
    fn audiences_are_bounded() {
        let mut c = claims();
        c["aud"] = json!(["a", "b", "c", "d", "e", "f"]);
        assert!(matches!(
            read_untrusted(&token(json!({"alg": "RS256"}), c), NOW),
            Err(Denial::MalformedJwt(_))
        ));
    }

    #[test]
    fn scopes_come_from_the_registered_claim_without_admin() {
        let c = json!({
            "scope": "openid connections:read admin",
            "perms": ["records:read", "bogus", 7, "syncs:write"],
        });
        let c = c.as_object().unwrap();
        assert_eq!(scopes_of(c, "scope"), vec![Scope::ConnectionsRead]);
        assert_eq!(
            scopes_of(c, "perms"),
            vec![Scope::SyncsWrite, Scope::RecordsRead]
        );
        assert!(scopes_of(c, "missing").is_empty());
    }
}
