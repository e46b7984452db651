//! The API Lambda: every `/v1` operation behind API Gateway HTTP API, as an axum router.

mod access;
mod config;
mod dto;
mod idempotency;
// The document is generated in test builds only (`router::Api`); the release binary serves the
// checked-in one.
#[cfg_attr(not(test), allow(dead_code))]
mod openapi;
mod pagination;
mod problem;
mod ratelimit;
mod request;
mod response;
mod router;
mod routes;
mod state;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;

use crate::config::Config;
use crate::state::Deps;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tributary_aws::logging::init();
    let config = Config::from_env(&Env::from_process())?;
    let clients = Clients::from_env().await;
    let deps = Deps {
        store: clients.table(&config.control_table),
        jobs_queue: clients.queue(&config.jobs_queue_url),
        dead_letter_queue: clients.queue(&config.jobs_dlq_url),
        clock: Arc::new(SystemClock),
        config,
    };
    lambda_http::run(router::app(deps)).await
}
