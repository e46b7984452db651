//! The shared AWS SDK configuration: built once at cold start from the variables Lambda sets, with
//! bounded timeouts and the SDK's standard retry mode. `AWS_ENDPOINT_URL` points every client at
//! another endpoint, which is how the local stack reaches moto.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::lazy::Lazy;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::SdkConfig;
use tributary_core::config::{ConfigError, Env};

/// The SDK configuration of a function, from its environment.
///
/// Lambda gives every function its execution role's credentials and its region as environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`),
/// fixed for the life of the execution environment; the first provider of the SDK's default chain
/// reads exactly these. The chain's other providers (web identity with its STS client, profiles,
/// SSO, ECS, IMDS) never answer in Lambda, and `aws-config`, which builds them, was a twelfth of a
/// function's binary: it is not linked. A missing variable fails the cold start and names it.
pub fn config(env: &Env) -> Result<SdkConfig, ConfigError> {
    let region = env
        .optional("AWS_REGION")
        .or_else(|| env.optional("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Missing {
            name: "AWS_REGION",
            purpose: "the AWS region of the function's table, queue and secrets",
        })?;
    let credentials = Credentials::new(
        env.required(
            "AWS_ACCESS_KEY_ID",
            "the function's AWS credentials, which Lambda sets",
        )?,
        env.required(
            "AWS_SECRET_ACCESS_KEY",
            "the function's AWS credentials, which Lambda sets",
        )?,
        env.optional("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(25))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(endpoint) = env.optional("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    Ok(builder.build())
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

    /// Clients configured from the environment ([`config`]).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self::new(&config(env)?))
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

    /// A local endpoint that answers one request with the JSON `body`; the task yields the request
    /// it read, lowercased.
    async fn one_request_server(body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 16 * 1024];
            let n = socket.read(&mut request).await.unwrap();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request[..n]).to_lowercase()
        });
        (endpoint, server)
    }

    /// Building a service client builds no connector (and decodes no roots); the first request
    /// builds it, trust store included (a bundle the SDK could not parse would panic here).
    #[tokio::test]
    async fn the_https_client_is_built_by_the_first_request_not_by_the_clients() {
        let lazy = LazyHttps::default();
        let built = Arc::clone(&lazy.inner);
        let (endpoint, server) =
            one_request_server(r#"{"Attributes":{"ApproximateNumberOfMessages":"3"}}"#).await;
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

    fn lambda_env(endpoint: &str) -> Env {
        Env::from_pairs([
            ("AWS_REGION", "eu-west-3"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDAROLE"),
            ("AWS_SECRET_ACCESS_KEY", "role-secret"),
            ("AWS_SESSION_TOKEN", "role-session-token"),
            ("AWS_ENDPOINT_URL", endpoint),
        ])
    }

    /// What Lambda sets is the whole configuration: region (`AWS_REGION` before
    /// `AWS_DEFAULT_REGION`), the role's session credentials and the endpoint override; a request
    /// built from it is signed with them and goes to that endpoint.
    #[tokio::test]
    async fn the_configuration_is_what_lambda_sets_and_requests_are_signed_with_it() {
        let (endpoint, server) = one_request_server(r#"{"Attributes":{}}"#).await;

        let config = config(&lambda_env(&endpoint)).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(config.endpoint_url(), Some(endpoint.as_str()));
        aws_sdk_sqs::Client::new(&config)
            .get_queue_attributes()
            .queue_url(format!("{endpoint}/123456789012/jobs"))
            .send()
            .await
            .unwrap();
        let request = server.await.unwrap();
        assert!(
            request.contains("credential=asialambdarole/")
                && request.contains("/eu-west-3/sqs/aws4_request"),
            "not signed with the role's key for the region: {request}"
        );
        assert!(
            request.contains("x-amz-security-token: role-session-token"),
            "no session token: {request}"
        );
    }

    #[test]
    fn a_missing_region_or_credential_fails_the_cold_start_naming_the_variable() {
        let without = |name: &str| {
            let pairs = [
                ("AWS_REGION", "eu-west-3"),
                ("AWS_ACCESS_KEY_ID", "ASIALAMBDAROLE"),
                ("AWS_SECRET_ACCESS_KEY", "role-secret"),
            ];
            config(&Env::from_pairs(
                pairs.into_iter().filter(|(n, _)| *n != name),
            ))
            .err()
        };
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            assert!(
                matches!(without(name), Some(ConfigError::Missing { name: n, .. }) if n == name),
                "{name}: {:?}",
                without(name)
            );
        }
        // `AWS_DEFAULT_REGION` stands in for `AWS_REGION`; no session token and no endpoint are
        // allowed (long-term keys, the real endpoints).
        let config = config(&Env::from_pairs([
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ACCESS_KEY_ID", "AKIALONGTERM"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]))
        .unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("ap-south-1"));
        assert_eq!(config.endpoint_url(), None);
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
