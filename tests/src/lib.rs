//! Helpers for the workspace-level tests.
//!
//! - Adapter tests start a private moto with [`MotoServer::start`] (a free port, stopped on drop) and
//!   build clients from [`MotoServer::sdk_config`].
//! - End-to-end tests start the whole local stack with [`Stack::start`] (binaries mode: the function
//!   binaries must have been built with `make build`, which `make cargo-test` runs first). It refuses
//!   to run a binary older than any source cargo built it from (`tributary_local::freshness`), so a
//!   `cargo test --workspace` after an edit fails with "run `make build`" instead of testing old code.
//!   The tests do not build the binaries themselves: a nested `cargo build` would build them with
//!   another feature set than `make build` (features unify over the packages of one invocation) and
//!   rebuild them back and forth.
//! - [`eventually`] waits for asynchronous effects (a canary, a dead-lettered message) with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

pub use tributary_local::{MotoServer, Stack, StackOptions};

/// A private moto with the template's resources, and clients of it (the adapter tests' world).
pub struct AwsEnv {
    _moto: MotoServer,
    /// Clients of the moto.
    pub clients: tributary_aws::Clients,
    /// The resources created from `infra/template.yaml`.
    pub provisioned: tributary_local::Provisioned,
}

impl AwsEnv {
    /// Starts a moto and creates the template's resources in it as stack `stack_name`, with
    /// `secret_values` for its secrets.
    pub async fn start(
        stack_name: &str,
        secret_values: std::collections::BTreeMap<String, String>,
    ) -> Self {
        let moto = MotoServer::start().await.expect("moto starts");
        let sdk = moto.sdk_config().await;
        let template =
            tributary_local::Template::load(&tributary_local::workspace::template_path())
                .expect("template loads");
        let provisioned = tributary_local::provision(
            &template,
            &sdk,
            &tributary_local::ProvisionOptions {
                stack_name: stack_name.into(),
                parameters: std::collections::BTreeMap::new(),
                secret_values,
            },
        )
        .await
        .expect("resources are created from the template");
        Self {
            _moto: moto,
            clients: tributary_aws::Clients::new(&sdk),
            provisioned,
        }
    }

    /// The control table.
    pub fn control(&self) -> tributary_aws::DynamoTable {
        self.clients.table(&self.provisioned.tables["ControlTable"])
    }

    /// The records table.
    pub fn records(&self) -> tributary_aws::DynamoTable {
        self.clients.table(&self.provisioned.tables["RecordsTable"])
    }
}

/// Calls `probe` every `every` until it returns `Ok`, or fails with the last error after `within`.
pub async fn eventually<T, F, Fut>(
    within: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => {
                return Err(format!("not true within {} s: {last}", within.as_secs()));
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// The last lines of every log of a stack, to make a failure explain itself.
pub fn stack_logs(stack: &Stack) -> String {
    let mut out = String::new();
    let mut names: Vec<String> = stack.functions().map(str::to_owned).collect();
    names.push("moto".into());
    for name in names {
        out.push_str(&format!(
            "--- {name} ---\n{}\n",
            tributary_local::tail(&stack.log_file(&name), 20)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success() {
        let mut calls = 0;
        let result = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            let n = calls;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("call {n}"))
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn eventually_reports_the_last_error_after_the_deadline() {
        let result: Result<(), String> = eventually(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Err("still false".to_owned()) },
        )
        .await;
        let err = result.expect_err("times out");
        assert!(err.contains("still false"), "{err}");
    }
}
