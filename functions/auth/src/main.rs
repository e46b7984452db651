//! The authorizer Lambda: API Gateway calls it before every authenticated route.

mod config;
mod handler;

use lambda_runtime::{LambdaEvent, run, service_fn};
use tributary_aws::Clients;
use tributary_core::config::Env;

use crate::config::Config;
use crate::handler::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&Env::from_process())?;
    let clients = Clients::from_env().await;
    let deps = Deps {
        secrets: clients.secrets(config.secret_cache_ttl),
        admin_key_secret_id: config.admin_key_secret_id,
    };
    run(service_fn(|event: LambdaEvent<_>| handle(&deps, event))).await
}
