//! The API Lambda: every `/v1` route behind API Gateway HTTP API.

mod config;
mod dto;
mod handler;
mod ratelimit;
mod request;
mod response;
mod routes;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use lambda_http::{Request, run, service_fn};
use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;

use crate::config::Config;
use crate::handler::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env(&Env::from_process())?;
    let clients = Clients::from_env().await;
    let deps = Deps {
        store: clients.table(&config.control_table),
        jobs_queue: clients.queue(&config.jobs_queue_url),
        dead_letter_queue: clients.queue(&config.jobs_dlq_url),
        clock: Arc::new(SystemClock),
        config,
        limiter: Default::default(),
        limits: Default::default(),
        health: Default::default(),
    };
    run(service_fn(|request: Request| handle(&deps, request))).await
}
