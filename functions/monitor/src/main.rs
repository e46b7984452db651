//! The monitor Lambda: invoked by the schedule in `infra/template.yaml`.

// The release binary is linked without unwind tables (functions/link/build.rs), so it must never unwind.
#[cfg(all(tributary_no_unwind_tables, not(panic = "abort"), not(test)))]
compile_error!("release builds link without unwind tables and need `panic = \"abort\"`");

mod config;
mod handler;

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, run, service_fn};
use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;

use crate::config::Config;
use crate::handler::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tributary_aws::logging::init();
    let env = Env::from_process();
    let config = Config::from_env(&env)?;
    let clients = Clients::from_env(&env)?;
    let deps = Deps {
        queue: clients.queue(&config.jobs_queue_url),
        schedule: clients.table(&config.control_table),
        clock: Arc::new(SystemClock),
    };
    run(service_fn(|event: LambdaEvent<_>| handle(&deps, event))).await
}
