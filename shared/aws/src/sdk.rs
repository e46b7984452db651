//! The shared AWS SDK configuration: built once at cold start from the variables Lambda sets, with
//! bounded timeouts and the SDK's standard retry mode. `AWS_ENDPOINT_URL` points every client at
//! another endpoint, which is how the local stack reaches moto.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lazy::Lazy;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
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

/// The SDK's HTTP client: the workspace's reqwest on rustls and ring with the compiled-in trust
/// anchors (`tributary_http::tls`), HTTP/1.1, built on the first request rather than with each
/// service client.
///
/// The SDK's own client (`aws-smithy-http-client`) is a second HTTP stack beside the one provider
/// calls use, with HTTP/2 and a trust store that takes PEM certificates only, decoded at its first
/// request; this one shares the provider calls' code and builds from anchors in the binary.
///
/// It sends what the SDK signed and nothing it would have to undo: no `Accept-Encoding` (DynamoDB
/// computes its `x-amz-crc32` over the body as sent, so a body decompressed on the way would fail
/// the SDK's check), no redirect followed, no proxy from the environment. The SDK's connect and
/// read timeouts apply; its timeout and connection failures are reported as such, so its retry
/// policy retries them.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttp::new(tributary_http::tls::client_config))
}

/// The connect and read timeouts a connector was built for.
type Timeouts = (Option<Duration>, Option<Duration>);

/// Connectors by the timeouts the SDK asks for (one per distinct pair, as the SDK's own client
/// caches them), each a reqwest client with its own pool.
struct SdkHttp {
    tls: fn() -> rustls::ClientConfig,
    connectors: Arc<Mutex<Vec<(Timeouts, SharedHttpConnector)>>>,
}

impl SdkHttp {
    fn new(tls: fn() -> rustls::ClientConfig) -> Self {
        Self {
            tls,
            connectors: Arc::default(),
        }
    }
}

impl std::fmt::Debug for SdkHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkHttp").finish_non_exhaustive()
    }
}

impl HttpClient for SdkHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(SdkConnector::new((self.tls)(), timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new(
            "reqwest",
            Some(Cow::Borrowed("0.12")),
        ))
    }
}

/// Sends the SDK's requests on one reqwest client (or fails each with why it could not be built).
#[derive(Debug)]
struct SdkConnector {
    client: Result<reqwest::Client, String>,
}

impl SdkConnector {
    fn new(tls: rustls::ClientConfig, (connect, read): Timeouts) -> Self {
        let mut builder = tributary_http::tls::reqwest_builder_with(tls)
            .no_gzip()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(connect) = connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        Self {
            client: builder.build().map_err(|e| e.to_string()),
        }
    }
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                let e = format!("the HTTP client could not be built: {e}");
                return HttpConnectorFuture::ready(Err(ConnectorError::other(e.into(), None)));
            }
        };
        let request = match to_reqwest(request) {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e))),
        };
        HttpConnectorFuture::new(async move {
            let mut response = client.execute(request).await.map_err(connector_error)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let body = response.bytes().await.map_err(connector_error)?;
            let mut answer = http::Response::new(SdkBody::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's request as reqwest's: method, URI, headers and body as signed. Every request of
/// these services has its body in memory; a streaming body is refused rather than buffered.
fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, BoxError> {
    let body = request
        .body()
        .bytes()
        .map(bytes::Bytes::copy_from_slice)
        .ok_or("a streaming request body cannot be sent by this client")?;
    let (parts, _) = request.try_into_http1x()?.into_parts();
    Ok(reqwest::Request::try_from(http::Request::from_parts(
        parts, body,
    ))?)
}

/// A reqwest failure as the SDK classifies it: timeouts as timeouts, failures to connect or of
/// the connection (refused, reset, closed mid-response) as I/O, which its retry policy retries.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
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
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A local endpoint that answers one request with the JSON `body`; the task yields the request
    /// it read, lowercased.
    async fn one_request_server(body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            answer_one(&mut socket, body).await
        });
        (endpoint, server)
    }

    /// Reads one request from `socket` and answers it with the JSON `body`; yields the request,
    /// lowercased.
    async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S, body: &str) -> String {
        let mut request = vec![0; 16 * 1024];
        let n = socket.read(&mut request).await.unwrap();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        String::from_utf8_lossy(&request[..n]).to_lowercase()
    }

    fn sqs_client(endpoint: &str, http: SdkHttp) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .http_client(SharedHttpClient::new(http))
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    async fn approximate_messages(
        client: &aws_sdk_sqs::Client,
        endpoint: &str,
    ) -> Result<Option<String>, String> {
        let out = client
            .get_queue_attributes()
            .queue_url(format!("{endpoint}/123456789012/jobs"))
            .send()
            .await
            .map_err(|e| format!("{:?}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(out
            .attributes
            .unwrap_or_default()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
    }

    /// Building a service client builds no connector; the first request builds one, and requests
    /// with the same timeouts share it.
    #[tokio::test]
    async fn a_connector_is_built_by_the_first_request_and_shared_after() {
        let http = SdkHttp::new(tributary_http::tls::client_config);
        let built = Arc::clone(&http.connectors);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            // One connection, kept alive: the second request reuses it.
            let (mut socket, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                answer_one(
                    &mut socket,
                    r#"{"Attributes":{"ApproximateNumberOfMessages":"3"}}"#,
                )
                .await;
            }
        });
        let client = sqs_client(&endpoint, http);
        assert!(built.lock().unwrap().is_empty(), "built with the client");

        for _ in 0..2 {
            assert_eq!(
                approximate_messages(&client, &endpoint).await.unwrap(),
                Some("3".to_owned())
            );
        }
        assert_eq!(built.lock().unwrap().len(), 1);
        server.await.unwrap();
    }

    /// The test certificate authority of `testdata/` (its `localhost` certificate is valid for
    /// `localhost` and 127.0.0.1 until 2126).
    fn test_ca() -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(include_bytes!("../testdata/test-ca.der").to_vec().into())
            .unwrap();
        tributary_http::tls::client_config_trusting(roots)
    }

    /// A TLS endpoint on `localhost` with the test certificate: it answers every connection that
    /// completes a handshake with the JSON `body`, and reports each (negotiated ALPN protocol,
    /// request) or handshake failure.
    async fn tls_server(
        body: &'static str,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<Result<(Option<Vec<u8>>, String), String>>,
    ) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = CertificateDer::from(include_bytes!("../testdata/localhost.der").to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
            include_bytes!("../testdata/localhost.key.der").to_vec(),
        ));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let (seen, seen_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                match acceptor.accept(socket).await {
                    Ok(mut tls) => {
                        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        let request = answer_one(&mut tls, body).await;
                        let _ = seen.send(Ok((alpn, request)));
                    }
                    Err(e) => {
                        let _ = seen.send(Err(e.to_string()));
                    }
                }
            }
        });
        (endpoint, seen_rx)
    }

    /// Over TLS with a server its roots trust, a request goes as the SDK signed it, on HTTP/1.1,
    /// without asking for a compressed answer (DynamoDB's CRC32 is of the body as sent).
    #[tokio::test]
    async fn requests_go_as_signed_over_tls_to_a_server_the_roots_trust() {
        let (endpoint, mut seen) =
            tls_server(r#"{"Attributes":{"ApproximateNumberOfMessages":"7"}}"#).await;
        let client = sqs_client(&endpoint, SdkHttp::new(test_ca));
        assert_eq!(
            approximate_messages(&client, &endpoint).await.unwrap(),
            Some("7".to_owned())
        );
        let (alpn, request) = seen.recv().await.unwrap().unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(request.starts_with("post / http/1.1\r\n"), "{request}");
        assert!(
            request.contains("authorization: aws4-hmac-sha256 credential=akidtest/")
                && request.contains("x-amz-date: ")
                && request.contains(&format!("host: {}", &endpoint["https://".len()..])),
            "not as signed: {request}"
        );
        assert!(
            !request.contains("accept-encoding"),
            "asks for compression: {request}"
        );
    }

    /// The compiled-in roots do not trust the test authority: the handshake fails, and no request
    /// is sent.
    #[tokio::test]
    async fn a_server_no_root_trusts_gets_no_request() {
        let (endpoint, mut seen) = tls_server(r#"{"Attributes":{}}"#).await;
        let client = sqs_client(&endpoint, SdkHttp::new(tributary_http::tls::client_config));
        let error = approximate_messages(&client, &endpoint).await.unwrap_err();
        assert!(error.contains("DispatchFailure"), "{error}");
        assert!(seen.recv().await.unwrap().is_err(), "a handshake completed");
    }

    fn request_to(endpoint: &str) -> HttpRequest {
        HttpRequest::try_from(
            http::Request::post(format!("{endpoint}/"))
                .body(SdkBody::from("{}"))
                .unwrap(),
        )
        .unwrap()
    }

    /// The SDK retries timeouts and I/O failures: a server that never answers is a read timeout,
    /// a refused connection is an I/O failure, each reported as such.
    #[tokio::test]
    async fn timeouts_and_refused_connections_are_reported_as_the_sdk_retries_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            loop {
                sockets.push(listener.accept().await.unwrap());
            }
        });
        let connector = SdkConnector::new(
            tributary_http::tls::client_config(),
            (
                Some(Duration::from_secs(1)),
                Some(Duration::from_millis(200)),
            ),
        );
        let error = connector.call(request_to(&silent)).await.unwrap_err();
        assert!(error.is_timeout(), "{error:?}");

        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let error = connector.call(request_to(&closed)).await.unwrap_err();
        assert!(error.is_io(), "{error:?}");

        // A streaming body is refused before anything is sent.
        let streaming = HttpRequest::try_from(
            http::Request::post(format!("{closed}/"))
                .body(SdkBody::taken())
                .unwrap(),
        )
        .unwrap();
        let error = connector.call(streaming).await.unwrap_err();
        assert!(error.is_user(), "{error:?}");
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
}
