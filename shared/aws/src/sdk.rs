//! The shared AWS SDK configuration: built once at cold start, with bounded timeouts and the SDK's
//! standard retry mode. `AWS_ENDPOINT_URL` (and the per-service variants) is honoured by `aws-config`
//! itself, which is how the local stack points every client at moto.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment (region, credentials, endpoint).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
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

/// The service clients every function shares, built once from one [`SdkConfig`]. Clients are cheap to
/// clone (they share their connection pool).
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Builds the clients from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }

    /// Loads the configuration from the environment and builds the clients.
    pub async fn from_env() -> Self {
        Self::new(&load().await)
    }

    /// The DynamoDB table `name`.
    pub fn table(&self, name: impl Into<String>) -> crate::DynamoTable {
        crate::DynamoTable::new(self.dynamodb.clone(), name)
    }

    /// The SQS queue at `url`.
    pub fn queue(&self, url: impl Into<String>) -> crate::SqsQueue {
        crate::SqsQueue::new(self.sqs.clone(), url)
    }

    /// A Secrets Manager reader caching values for `ttl`.
    pub fn secrets(&self, ttl: Duration) -> crate::CachedSecrets {
        crate::CachedSecrets::new(self.secrets.clone(), ttl)
    }
}
