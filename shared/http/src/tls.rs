//! TLS for every reqwest client of the workspace: rustls on ring (the provider the AWS SDK's client
//! uses, so the binaries carry one) with the Mozilla roots compiled in, so building a client reads
//! no trust-store files.

use std::sync::Arc;

/// A rustls client configuration: ring, TLS 1.2 and 1.3, the `webpki-roots` anchors, and ALPN
/// offering HTTP/2 before HTTP/1.1.
///
/// # Panics
///
/// Never in practice: the ring provider supports rustls's safe default protocol versions.
#[must_use]
pub fn client_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A reqwest builder using [`client_config`]. reqwest is built without a crypto provider of its
/// own, so a client must start here (`reqwest::Client::new()` would panic for want of one).
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().use_preconfigured_tls(client_config())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_trusts_the_compiled_in_roots_and_offers_h2() {
        let config = client_config();
        assert!(config.alpn_protocols.first().is_some_and(|p| p == b"h2"));
        assert!(reqwest_builder().build().is_ok());
    }
}
