//! TLS for every HTTP client of the workspace, the AWS SDK's included (`tributary_aws::sdk`):
//! rustls on ring, with the Mozilla roots compiled in as trust anchors (`webpki-roots`), so
//! building a client reads no trust-store file and parses no certificate.

use std::sync::Arc;

/// A rustls client configuration: ring, TLS 1.2 and 1.3, the compiled-in trust anchors, and ALPN
/// offering HTTP/1.1 only (the clients are built without HTTP/2).
#[must_use]
pub fn client_config() -> rustls::ClientConfig {
    client_config_trusting(roots())
}

/// [`client_config`] trusting `roots` instead of the compiled-in anchors: for tests that serve TLS
/// with a certificate authority of their own.
///
/// # Panics
///
/// Never in practice: the ring provider supports rustls's safe default protocol versions.
#[must_use]
pub fn client_config_trusting(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The compiled-in trust anchors (subject, key and name constraints of each Mozilla root; no
/// certificate is parsed).
fn roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A reqwest builder using [`client_config`]. reqwest is built without a crypto provider of its
/// own, so a client must start here (`reqwest::Client::new()` would panic for want of one).
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    reqwest_builder_with(client_config())
}

/// A reqwest builder using `tls` (a [`client_config`] or a [`client_config_trusting`]).
pub fn reqwest_builder_with(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder().use_preconfigured_tls(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_trusts_the_compiled_in_anchors_and_offers_http_1_1_only() {
        let config = client_config();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(roots().len(), webpki_roots::TLS_SERVER_ROOTS.len());
        assert!(roots().len() > 100);
        assert!(reqwest_builder().build().is_ok());
    }

    /// AWS's endpoints chain to Amazon's roots (Amazon Root CA 1 to 4, and Starfield Services
    /// Root Certificate Authority - G2, which cross-signs them): the SDK's client must trust them.
    #[test]
    fn the_anchors_include_the_roots_aws_endpoints_chain_to() {
        let roots = roots();
        let subjects: Vec<&[u8]> = roots
            .roots
            .iter()
            .map(|anchor| anchor.subject.as_ref())
            .collect();
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(
                subjects
                    .iter()
                    .any(|subject| subject.windows(name.len()).any(|w| w == name.as_bytes())),
                "{name} is not a compiled-in anchor"
            );
        }
    }
}
