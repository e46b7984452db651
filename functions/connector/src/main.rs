//! The connector Lambda: consumes the jobs queue through the SQS event source mapping.

// The release binary is linked without unwind tables (functions/link/build.rs), so it must never unwind.
#[cfg(all(tributary_no_unwind_tables, not(panic = "abort"), not(test)))]
compile_error!("release builds link without unwind tables and need `panic = \"abort\"`");

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{LambdaEvent, run, service_fn};
use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;
use tributary_core::vault::{CachedKeyring, Vault};
use tributary_engine::Engine;

use tributary_connector::config::Config;
use tributary_connector::handler::{Deps, Refreshing, handle};
use tributary_connector::sync::Syncing;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tributary_aws::logging::init();
    let env = Env::from_process();
    let config = Config::from_env(&env)?;
    let clients = Clients::from_env(&env)?;
    let control = clients.table(&config.control_table);
    let clock = Arc::new(SystemClock);
    // The keyring keeps its own TTL over the parsed keys, so the secret is not cached twice.
    let vault = Vault::new(Arc::new(CachedKeyring::new(
        clients.secrets(Duration::ZERO),
        config.keyring.secret_id.clone(),
        config.keyring.ttl,
        clock.clone(),
    )));
    let deps = Deps {
        queue: clients.queue(&config.jobs_queue_url),
        ledger: control.clone(),
        canaries: control.clone(),
        ledger_retention: config.ledger_retention,
        operations_retention_days: config.operations_retention_days,
        refreshing: Refreshing {
            store: control.clone(),
            vault: vault.clone(),
            engine: Engine::new(config.provider_http())?,
            origins: config.provider_origins.clone(),
        },
        delivering: tributary_connector::webhooks::Delivering {
            client: tributary_http::HttpClient::new(tributary_connector::webhooks::delivery_http(
                config.egress.clone(),
            ))?,
            vault: vault.clone(),
        },
        syncing: Syncing {
            store: control,
            records: clients.table(&config.records_table),
            vault,
            engine: Engine::new(config.sync_http())?,
            origins: config.provider_origins.clone(),
            time_budget: config.sync_time_budget,
        },
        clock,
    };
    run(service_fn(|event: LambdaEvent<_>| handle(&deps, event))).await
}
