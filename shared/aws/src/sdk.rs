//! The shared AWS SDK configuration: built once at cold start, with bounded timeouts and the SDK's
//! standard retry mode. `AWS_ENDPOINT_URL` (and the per-service variants) is honoured by `aws-config`
//! itself, which is how the local stack points every client at moto.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::lazy::Lazy;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Loads the SDK configuration from the environment (region, credentials, endpoint).
///
/// Where the environment holds credentials (Lambda always sets them) they are used directly: that
/// is the first provider of the SDK's default chain, and building the rest of the chain (web
/// identity with its STS client, profiles, SSO, ECS, IMDS) would cost the cold start for nothing.
/// Elsewhere the default chain applies.
pub async fn load() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The SDK's HTTPS client: hyper 1 and rustls on ring, trusting the Mozilla roots compiled
/// into the binary, and built on the first request rather than with each service client.
///
/// The SDK's default client builds its TLS connector when each service client is built, to load
/// the system trust store at initialization: on Debian 146 files under `/etc/ssl/certs`, on Amazon
/// Linux one bundle, and in both a constant-time base64 decode of every certificate, repeated for
/// every service client. That was most of a function's cold start (`make bench-coldstart`).
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(LazyHttps::default())
}

/// Builds the real client (and decodes the roots) once, on the first `http_connector` call; the
/// SDK then caches a connector per connector settings as usual.
#[derive(Debug, Default)]
struct LazyHttps {
    inner: Arc<OnceLock<SharedHttpClient>>,
}

impl HttpClient for LazyHttps {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner
            .get_or_init(build_https_client)
            .http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

fn build_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(root_bundle());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        // Building a context only stores the trust store: it cannot fail for rustls.
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https()
}

/// The `webpki-root-certs` certificates as one PEM bundle, the only form the SDK's trust store takes.
fn root_bundle() -> Vec<u8> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        pem.extend_from_slice(engine.encode(cert.as_ref()).as_bytes());
        pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    }
    pem
}

/// The service clients, each built from one [`SdkConfig`] when first used, so a function builds
/// only those its requests use. Clients are cheap to clone (they share their connection pool).
#[derive(Debug, Clone)]
pub struct Clients {
    dynamodb: Lazy<aws_sdk_dynamodb::Client>,
    sqs: Lazy<aws_sdk_sqs::Client>,
    secrets: Lazy<aws_sdk_secretsmanager::Client>,
}

impl Clients {
    /// Clients of `config`, none built yet.
    pub fn new(config: &SdkConfig) -> Self {
        let (c1, c2, c3) = (config.clone(), config.clone(), config.clone());
        Self {
            dynamodb: Lazy::new(move || aws_sdk_dynamodb::Client::new(&c1)),
            sqs: Lazy::new(move || aws_sdk_sqs::Client::new(&c2)),
            secrets: Lazy::new(move || aws_sdk_secretsmanager::Client::new(&c3)),
        }
    }

    /// Loads the configuration from the environment.
    pub async fn from_env() -> Self {
        Self::new(&load().await)
    }

    /// DynamoDB.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb.get()
    }

    /// SQS.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs.get()
    }

    /// Secrets Manager.
    pub fn secrets_manager(&self) -> &aws_sdk_secretsmanager::Client {
        self.secrets.get()
    }

    /// The DynamoDB table `name`. Every function reads its table on nearly every request, so the
    /// client is built now.
    pub fn table(&self, name: impl Into<String>) -> crate::DynamoTable {
        crate::DynamoTable::new(self.dynamodb().clone(), name)
    }

    /// The SQS queue at `url`; the client is built by the queue's first call.
    pub fn queue(&self, url: impl Into<String>) -> crate::SqsQueue {
        crate::SqsQueue::new(self.sqs.clone(), url)
    }

    /// A Secrets Manager reader caching values for `ttl`; the client is built by its first read.
    pub fn secrets(&self, ttl: Duration) -> crate::CachedSecrets {
        crate::CachedSecrets::new(self.secrets.clone(), ttl)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Building a service client builds no connector (and decodes no roots); the first request
    /// builds it, trust store included (a bundle the SDK could not parse would panic here).
    #[tokio::test]
    async fn the_https_client_is_built_by_the_first_request_not_by_the_clients() {
        let lazy = LazyHttps::default();
        let built = Arc::clone(&lazy.inner);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 16 * 1024];
            let _ = socket.read(&mut request).await.unwrap();
            let body = r#"{"Attributes":{"ApproximateNumberOfMessages":"3"}}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(endpoint.clone())
            .http_client(SharedHttpClient::new(lazy))
            .build();
        let client = aws_sdk_sqs::Client::from_conf(config);
        assert!(
            built.get().is_none(),
            "the client was built with the service client"
        );

        let out = client
            .get_queue_attributes()
            .queue_url(format!("{endpoint}/123456789012/jobs"))
            .send()
            .await
            .unwrap();
        assert!(built.get().is_some());
        let attributes = out.attributes.unwrap_or_default();
        assert_eq!(
            attributes
                .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .map(String::as_str),
            Some("3")
        );
        server.await.unwrap();
    }

    /// The bundle holds every compiled-in root, each decoding to the same certificate.
    #[test]
    fn the_root_bundle_holds_every_compiled_in_root() {
        use base64::Engine as _;
        let bundle = String::from_utf8(root_bundle()).unwrap();
        let decoded: Vec<Vec<u8>> = bundle
            .split("-----END CERTIFICATE-----\n")
            .filter(|block| !block.is_empty())
            .map(|block| {
                let body = block
                    .trim_start_matches("-----BEGIN CERTIFICATE-----\n")
                    .trim();
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap()
            })
            .collect();
        assert!(decoded.len() > 100);
        assert_eq!(
            decoded.len(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        for (ours, theirs) in decoded.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
            assert_eq!(ours.as_slice(), theirs.as_ref());
        }
    }
}
