//! The authorizer Lambda: API Gateway calls it before every authenticated route.

// The handler's future nests the store, the key cache and the guarded client's futures deeply enough
// to exceed the default layout query depth.
#![recursion_limit = "256"]

// The release binary is linked without unwind tables (functions/link/build.rs), so it must never unwind.
#[cfg(all(tributary_no_unwind_tables, not(panic = "abort"), not(test)))]
compile_error!("release builds link without unwind tables and need `panic = \"abort\"`");

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, run, service_fn};
use tributary_auth::config::Config;
use tributary_auth::handler::{Deps, handle};
use tributary_auth::jwks::{KeySource, http_config};
use tributary_auth::jwt::JwtVerifier;
use tributary_aws::Clients;
use tributary_core::config::Env;
use tributary_core::time::SystemClock;
use tributary_http::HttpClient;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tributary_aws::logging::init();
    let env = Env::from_process();
    let config = Config::from_env(&env)?;
    let clients = Clients::from_env(&env)?;
    let http = HttpClient::new(http_config(config.egress.clone()))?;
    let deps = Deps {
        secrets: clients.secrets(config.secret_cache_ttl),
        admin_key_secret_id: config.admin_key_secret_id,
        store: clients.table(config.control_table),
        jwt: JwtVerifier::new(KeySource::new(http, config.egress, config.jwks_cache_ttl)),
        clock: Arc::new(SystemClock),
    };
    run(service_fn(|event: LambdaEvent<_>| handle(&deps, event))).await
}
