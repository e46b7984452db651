//! TLS for every reqwest client of the workspace: rustls on ring (the provider the AWS SDK's client
//! uses, so the binaries carry one) with the Mozilla roots compiled in, so building a client reads
//! no trust-store files. The roots are `webpki-root-certs`' certificates, the ones the AWS SDK's
//! client is given (`tributary_aws::sdk`), so a binary carries one copy of them (with
//! `webpki-roots`' anchors beside them it carried two).

use std::sync::Arc;

/// A rustls client configuration: ring, TLS 1.2 and 1.3, the `webpki-root-certs` roots (each
/// parsed into a trust anchor here, when a client is first built), and ALPN offering HTTP/2 before
/// HTTP/1.1.
///
/// # Panics
///
/// Never in practice: the ring provider supports rustls's safe default protocol versions.
#[must_use]
pub fn client_config() -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots())
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// The compiled-in roots as trust anchors.
fn roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots
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
        // Every compiled-in certificate is a trust anchor of the configuration.
        assert_eq!(
            roots().len(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(roots().len() > 100);
        assert!(reqwest_builder().build().is_ok());
    }
}
