//! The one rule for the URLs of an OIDC issuer: its identifier, its discovery document and its
//! JWKS.
//!
//! The authorizer trusts the keys it fetches from these URLs, so nothing may read or change them on
//! the way: https only, except plain http to the loopback or private hosts that the egress allowlist
//! opens (the local stack and tests; the same exception the client's `require_https` makes on every
//! redirect). A URL is logged and stored, so it must not carry credentials.
//!
//! The authorizer checks every URL before fetching with [`validate`] and its deployment's
//! [`EgressPolicy`]. The API checks a registration with [`validate_registration`], which does not
//! know that allowlist: it opens plain http to `localhost`, `127.0.0.1` and `[::1]` only, and bounds
//! what is stored to [`MAX_LEN`] bytes.

use url::Url;

use crate::egress::EgressPolicy;

/// The longest issuer or JWKS URL a tenant may register, in bytes.
pub const MAX_LEN: usize = 512;

/// Why an issuer URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssuerUrlError {
    /// It does not parse as an absolute URL.
    #[error("issuer URL does not parse")]
    NotAbsolute,
    /// It is neither https nor plain http to a host the policy opens.
    #[error("issuer URL is not https")]
    NotHttps,
    /// It has a user name or password.
    #[error("issuer URL carries credentials")]
    Credentials,
    /// It is longer than [`MAX_LEN`] bytes (registration only).
    #[error("issuer URL is longer than {MAX_LEN} bytes")]
    TooLong,
}

/// Parses `raw` and applies the rule with the policy the fetching client enforces: https, or plain
/// http to a host `egress` opens ([`EgressPolicy::opens_plain_http`]); no credentials. Checks run in
/// that order and the first failure is returned. Reachability (public addresses only) is left to
/// the client, which checks it on connecting.
pub fn validate(raw: &str, egress: &EgressPolicy) -> Result<Url, IssuerUrlError> {
    let url = Url::parse(raw).map_err(|_| IssuerUrlError::NotAbsolute)?;
    egress
        .check_https(&url)
        .map_err(|_| IssuerUrlError::NotHttps)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(IssuerUrlError::Credentials);
    }
    Ok(url)
}

/// The rule for a URL a tenant registers (an issuer, or its `jwks_uri`), without a deployment's
/// policy: [`validate`] with plain http opened to `localhost`, `127.0.0.1` and `[::1]` only, then at
/// most [`MAX_LEN`] bytes. Store `raw` itself, not the returned URL's serialization: that adds a `/`
/// to a bare origin, and a token's `iss` must equal the registered issuer byte for byte.
pub fn validate_registration(raw: &str) -> Result<Url, IssuerUrlError> {
    let url = validate(raw, &EgressPolicy::loopback_hosts())?;
    if raw.len() > MAX_LEN {
        return Err(IssuerUrlError::TooLong);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_required_unless_the_policy_opens_the_host() {
        let public = EgressPolicy::public_only();
        assert!(validate("https://idp.example.com", &public).is_ok());
        for insecure in [
            "http://idp.example.com",
            "http://127.0.0.1:8080",
            "http://localhost",
            "ftp://idp.example.com",
            "data:text/plain,x",
        ] {
            assert_eq!(
                validate(insecure, &public),
                Err(IssuerUrlError::NotHttps),
                "{insecure}"
            );
        }

        let local = EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
        assert!(validate("http://127.0.0.1:8080/jwks", &local).is_ok());
        assert!(validate("http://localhost:8080/jwks", &local).is_ok());
        // Not opened: a private address off the list, a public address, any other name.
        for insecure in [
            "http://10.0.0.1/jwks",
            "http://93.184.216.34/jwks",
            "http://idp.example.com",
        ] {
            assert_eq!(
                validate(insecure, &local),
                Err(IssuerUrlError::NotHttps),
                "{insecure}"
            );
        }
    }

    #[test]
    fn credentials_and_relative_urls_are_refused() {
        let public = EgressPolicy::public_only();
        for (raw, why) in [
            (
                "https://user:pw@idp.example.com",
                IssuerUrlError::Credentials,
            ),
            ("https://user@idp.example.com", IssuerUrlError::Credentials),
            ("not a url", IssuerUrlError::NotAbsolute),
            ("/relative/path", IssuerUrlError::NotAbsolute),
            ("", IssuerUrlError::NotAbsolute),
        ] {
            assert_eq!(validate(raw, &public), Err(why), "{raw}");
        }
    }

    #[test]
    fn a_registration_opens_plain_http_to_loopback_hosts_only() {
        for ok in [
            "https://idp.example.com",
            "https://idp.example.com/tenant/",
            "http://localhost:9000/realms/x",
            "http://LocalHost/x",
            "http://127.0.0.1:8080",
            "http://[::1]:8080/jwks",
        ] {
            assert!(validate_registration(ok).is_ok(), "{ok}");
        }
        for insecure in [
            "http://idp.example.com/",
            "http://127.0.0.2/",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://localhost.example.com/",
        ] {
            assert_eq!(
                validate_registration(insecure),
                Err(IssuerUrlError::NotHttps),
                "{insecure}"
            );
        }
    }

    #[test]
    fn a_registration_is_at_most_max_len_bytes() {
        let base = "https://idp.example.com/";
        let at_max = format!("{base}{}", "a".repeat(MAX_LEN - base.len()));
        assert!(validate_registration(&at_max).is_ok());
        let over = format!("{at_max}a");
        assert_eq!(validate_registration(&over), Err(IssuerUrlError::TooLong));
        // The fetch rule does not bound length: a discovery URL is the issuer plus a suffix.
        assert!(validate(&over, &EgressPolicy::public_only()).is_ok());
    }

    #[test]
    fn checks_run_scheme_then_credentials_then_length() {
        let long_creds = format!("https://u:p@idp.example.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(
            validate_registration("http://u:p@idp.example.com"),
            Err(IssuerUrlError::NotHttps)
        );
        assert_eq!(
            validate_registration(&long_creds),
            Err(IssuerUrlError::Credentials)
        );
    }
}
