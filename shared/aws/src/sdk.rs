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
