//! The Tributary local stack: what `make dev` runs and what the end-to-end tests start.
//!
//! It reads `infra/template.yaml` (the one list of resources) and does locally what AWS does for it:
//!
//! - starts [moto](https://docs.getmoto.org) on loopback and creates the template's DynamoDB tables,
//!   SQS queues (with their redrive policies) and Secrets Manager secrets;
//! - runs the functions with the environment the template gives them (references resolved to the
//!   local resources, plus `AWS_ENDPOINT_URL`), either as prebuilt binaries behind a built-in Lambda
//!   Runtime API emulator ([`Mode::Binaries`], for tests) or under `cargo lambda watch`
//!   ([`Mode::Watch`], for `make dev`);
//! - emulates API Gateway (HTTP API routes, the Lambda REQUEST authorizer with its cache, payload
//!   2.0), the SQS event source mapping (batches, partial batch failures) and the schedules.
//!
//! # For tests
//!
//! ```no_run
//! # async fn example() -> Result<(), tributary_local::Error> {
//! use std::time::Duration;
//! use tributary_local::{MotoServer, Stack, StackOptions};
//!
//! // Adapter tests: a private moto on a free port, stopped when dropped.
//! let moto = MotoServer::start().await?;
//! let sdk = moto.sdk_config().await; // endpoint, us-east-1, dummy credentials
//! let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
//! # let _ = dynamodb;
//!
//! // End-to-end tests: the whole stack on free ports, from `cargo build`'s debug binaries.
//! let stack = Stack::start(StackOptions {
//!     schedule_every: Some(Duration::from_secs(2)),
//!     ..StackOptions::default()
//! })
//! .await?;
//! let health = format!("{}/v1/health", stack.api_url());
//! let key = stack.admin_key();
//! # let _ = (health, key);
//! # Ok(()) }
//! ```
//!
//! [`MotoServer::start`] needs `.tributary/tools/moto/bin/moto_server` (`make tools`) or
//! `TRIBUTARY_MOTO_SERVER`; [`Stack::start`] in binaries mode also needs the function binaries in
//! `target/debug` (`make build`), and refuses to start when one is older than a source it is built
//! from ([`freshness`]).

mod error;
pub mod freshness;
mod gateway;
mod invoke;
mod moto;
mod poller;
mod process;
mod resources;
mod runtime;
mod schedule;
mod stack;
mod template;
mod watch;
pub mod workspace;

pub use error::Error;
pub use invoke::InvokeError;
pub use moto::{
    ACCESS_KEY_ID, ACCOUNT_ID, MOTO_SERVER_ENV, MotoOptions, MotoServer, REGION, SECRET_ACCESS_KEY,
    moto_server_path, sdk_config,
};
pub use process::tail;
pub use resources::{ProvisionOptions, Provisioned, QueueInfo, provision};
pub use schedule::parse_interval;
pub use stack::{ADMIN_KEY_SECRET, CARGO_LAMBDA_ENV, Mode, Stack, StackOptions};
pub use template::{
    AuthorizerDef, EventDef, FunctionDef, HttpApiDef, IdentitySource, Resolver, RouteDef,
    SqsSourceDef, Template,
};
