//! AWS adapters for the Tributary ports: DynamoDB for state, SQS for coordination, Secrets Manager for
//! platform secrets. Clients are built once per execution environment from [`sdk::config`], which honours
//! `AWS_ENDPOINT_URL`, so the same code runs against AWS and the local emulator.

pub mod actions;
pub mod backoff;
pub mod connect;
pub mod connections;
pub mod dynamo;
mod errors;
mod guards;
pub mod iam;
pub mod inbound;
pub mod integrations;
pub mod lazy;
pub mod logging;
pub mod metrics;
pub mod operations;
#[cfg(test)]
mod recorder;
pub mod records;
pub mod sdk;
pub mod secrets;
pub mod sqs;
pub mod syncs;
pub mod tenancy;
pub mod webhooks;

pub use dynamo::DynamoTable;
pub use lazy::Lazy;
pub use sdk::Clients;
pub use secrets::CachedSecrets;
pub use sqs::SqsQueue;
