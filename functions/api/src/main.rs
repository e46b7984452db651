//! The API Lambda: every `/v1` operation behind API Gateway HTTP API, as an axum router.

// The release binary is linked without unwind tables (functions/link/build.rs), so it must never unwind.
#[cfg(all(tributary_no_unwind_tables, not(panic = "abort"), not(test)))]
compile_error!("release builds link without unwind tables and need `panic = \"abort\"`");

mod access;
mod config;
mod connect_page;
mod dashboard_page;
mod dto;
mod idempotency;
mod lambda;
// The document is generated in test builds only (`router::Api`); the release binary serves the
// checked-in one.
#[cfg_attr(not(test), allow(dead_code))]
mod openapi;
mod oplog;
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
use std::time::Duration;

use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;
use tributary_core::vault::CachedKeyring;

use crate::config::Config;
use crate::state::Deps;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tributary_aws::logging::init();
    let env = Env::from_process();
    let config = Config::from_env(&env)?;
    let clients = Clients::from_env(&env)?;
    let clock = Arc::new(SystemClock);
    let deps = Deps {
        store: clients.table(&config.control_table),
        records: clients.table(&config.records_table),
        jobs_queue: clients.queue(&config.jobs_queue_url),
        dead_letter_queue: clients.queue(&config.jobs_dlq_url),
        // The keyring keeps its own TTL over the parsed keys, so the secret is not cached twice.
        keyring: Arc::new(CachedKeyring::new(
            clients.secrets(Duration::ZERO),
            config.keyring.secret_id.clone(),
            config.keyring.ttl,
            clock.clone(),
        )),
        engine: tributary_engine::Engine::new(config.provider_http())?,
        clock,
        config,
    };
    lambda::run(router::app(deps)).await
}
