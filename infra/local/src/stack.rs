//! The whole local stack: moto with the template's resources, the functions, and the event sources
//! (gateway, SQS poller, schedules). Dropping a [`Stack`] stops every process it started.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use axum::body::Bytes;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::freshness::{self, Staleness};
use crate::gateway::{Gateway, Route};
use crate::invoke::{InvokeError, Invoker, WatchClient};
use crate::moto::{ACCESS_KEY_ID, MotoOptions, MotoServer, REGION, SECRET_ACCESS_KEY};
use crate::poller::{self, SqsSource};
use crate::process::{self, Group, Output};
use crate::resources::{self, ProvisionOptions, Provisioned};
use crate::runtime::{FunctionHost, ProcessSpec};
use crate::schedule::{self, Schedule};
use crate::template::{EventDef, FunctionDef, Template};
use crate::{watch, workspace};

/// The logical id of the secret holding the admin API key.
pub const ADMIN_KEY_SECRET: &str = "AdminApiKeySecret";
/// The environment variable that overrides where `cargo-lambda` is found.
pub const CARGO_LAMBDA_ENV: &str = "TRIBUTARY_CARGO_LAMBDA";

/// How long function processes get to initialise.
const FUNCTION_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time a `cargo lambda watch` invocation may take: it compiles after a change.
const WATCH_COMPILE_ALLOWANCE: Duration = Duration::from_secs(300);

/// How the functions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Prebuilt binaries from the cargo target directory behind the built-in Runtime API emulator
    /// (tests: no cargo runs inside `cargo test`).
    #[default]
    Binaries,
    /// `cargo lambda watch`, which rebuilds a function when its code changes (`make dev`).
    Watch,
}

/// How to start the stack. `Default` suits tests: binaries mode, free ports, no echo.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// How the functions run.
    pub mode: Mode,
    /// The SAM template; `infra/template.yaml` by default.
    pub template: PathBuf,
    /// Gateway port on 127.0.0.1; 0 picks a free one.
    pub gateway_port: u16,
    /// moto's port; 0 picks a free one.
    pub moto_port: u16,
    /// `cargo lambda watch`'s invoke port (watch mode); 0 picks a free one.
    pub invoke_port: u16,
    /// Fire every schedule at this interval instead of the template's rate.
    pub schedule_every: Option<Duration>,
    /// The admin API key; generated as the template says when `None`.
    pub admin_key: Option<String>,
    /// Template parameter values; `Stage` defaults to `local`. A template's `IssuerEgressAllowlist`
    /// and `ProviderEgressAllowlist`
    /// defaults to loopback, where local identity providers (a developer's, the tests') run. Settings
    /// of the emulated gateway that reference parameters follow them too (tests shorten the
    /// authorizer cache with `AuthorizerCacheTtlSeconds`).
    pub parameters: BTreeMap<String, String>,
    /// Prefix of physical resource names.
    pub stack_name: String,
    /// Where logs go; a fresh directory under the system temp directory when `None`.
    pub log_dir: Option<PathBuf>,
    /// Echo function (and `cargo lambda watch`) output to stderr, prefixed with the function name.
    pub echo_logs: bool,
    /// Where prebuilt binaries are (binaries mode); `<target dir>/debug` when `None`.
    pub binaries_dir: Option<PathBuf>,
    /// Override the template's `LoggingConfig.LogFormat` (`JSON` or `Text`).
    pub log_format: Option<String>,
    /// Override the template's application log level.
    pub log_level: Option<String>,
    /// Run moto one request at a time ([`MotoOptions::serialized`]): its threaded server copies a
    /// table for a transaction while other requests write it, and fails the transaction with a
    /// 500 AWS never gives. For runs with heavy concurrent traffic (`make fuzz-api`).
    pub serialized_moto: bool,
    /// Resource properties set over the template's: `(logical id, property, value)`, each of
    /// which must exist. Tests shorten the connector's `Timeout` and the jobs queue's
    /// `VisibilityTimeout` with it, so that a crashed invocation is retried within a test's time.
    pub property_overrides: Vec<(String, String, serde_json::Value)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Binaries,
            template: workspace::template_path(),
            gateway_port: 0,
            moto_port: 0,
            invoke_port: 0,
            schedule_every: None,
            admin_key: None,
            parameters: BTreeMap::from([("Stage".to_owned(), "local".to_owned())]),
            stack_name: "tributary-local".into(),
            log_dir: None,
            echo_logs: false,
            binaries_dir: None,
            log_format: None,
            log_level: None,
            serialized_moto: false,
            property_overrides: Vec::new(),
        }
    }
}

/// The template parameters that open private addresses to the authorizer's issuer fetches and to
/// the requests the functions send providers; locally they default to loopback, where local
/// identity providers and local providers run.
const LOOPBACK_EGRESS_PARAMETERS: [&str; 2] = ["IssuerEgressAllowlist", "ProviderEgressAllowlist"];

/// A running local stack.
pub struct Stack {
    api_url: String,
    admin_key: String,
    log_dir: PathBuf,
    moto: Option<MotoServer>,
    provisioned: Provisioned,
    functions: Vec<FunctionDef>,
    invoker: Invoker,
    watch: Option<Group>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("api_url", &self.api_url)
            .field("endpoint_url", &self.endpoint_url())
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Starts moto, creates the template's resources, starts the functions and the event sources,
    /// and returns once the gateway accepts requests and every function has initialised.
    pub async fn start(options: StackOptions) -> Result<Self, Error> {
        let mut template = Template::load(&options.template)?;
        for (logical_id, property, value) in &options.property_overrides {
            template.override_property(logical_id, property, value.clone())?;
        }
        let functions = template.functions()?;
        template.check_event_sources(&functions)?;
        // Bound first: a port in use (another `make dev`) fails before anything is started.
        let listener = bind_gateway(options.gateway_port).await?;
        let log_dir = match &options.log_dir {
            Some(dir) => dir.clone(),
            None => fresh_log_dir(),
        };
        std::fs::create_dir_all(&log_dir).map_err(|e| Error::io("create", &log_dir, e))?;
        let binaries = match options.mode {
            Mode::Binaries => Some(locate_binaries(&functions, &options)?),
            Mode::Watch => None,
        };

        let moto = MotoServer::start_with(MotoOptions {
            port: options.moto_port,
            log_file: Some(log_dir.join("moto.log")),
            echo: None,
            serialized: options.serialized_moto,
        })
        .await?;
        let sdk = moto.sdk_config().await;
        let mut secret_values = BTreeMap::new();
        if let Some(key) = &options.admin_key {
            secret_values.insert(ADMIN_KEY_SECRET.to_owned(), key.clone());
        }
        let mut parameters = options.parameters.clone();
        for name in LOOPBACK_EGRESS_PARAMETERS {
            if template.has_parameter(name) {
                parameters
                    .entry(name.to_owned())
                    .or_insert_with(|| "127.0.0.1".to_owned());
            }
        }
        let provisioned = resources::provision(
            &template,
            &sdk,
            &ProvisionOptions {
                stack_name: options.stack_name.clone(),
                parameters,
                secret_values,
            },
        )
        .await?;
        let admin_key = read_secret(&sdk, &provisioned, ADMIN_KEY_SECRET).await?;

        let mut environments = BTreeMap::new();
        for f in &functions {
            environments.insert(
                f.binary.clone(),
                function_environment(f, &provisioned, moto.endpoint_url(), &options)?,
            );
        }

        let (invoker, watch) = match binaries {
            Some(binaries) => {
                let mut hosts = BTreeMap::new();
                for f in &functions {
                    let spec = ProcessSpec {
                        name: f.binary.clone(),
                        binary: binaries[&f.binary].clone(),
                        environment: environments[&f.binary].clone(),
                        memory_mb: f.memory_mb,
                        timeout: f.timeout,
                        output: Output {
                            file: log_dir.join(format!("{}.log", f.binary)),
                            echo: options.echo_logs.then(|| format!("[{}]", f.binary)),
                        },
                    };
                    hosts.insert(f.binary.clone(), FunctionHost::start(spec).await?);
                }
                for host in hosts.values() {
                    if !host.ready(FUNCTION_READY_TIMEOUT).await {
                        let log = log_dir.join(format!("{}.log", host.name()));
                        return Err(Error::NotReady {
                            what: format!("function {}", host.name()),
                            reason: format!(
                                "it never asked for an invocation: {}",
                                process::tail(&log, 10)
                            ),
                            log,
                        });
                    }
                }
                (Invoker::Binaries(Arc::new(hosts)), None)
            }
            None => {
                let (client, group) =
                    start_watch(&functions, &environments, &log_dir, &options).await?;
                (Invoker::Watch(Arc::new(client)), Some(group))
            }
        };

        let mut tasks = Vec::new();
        let api_url = start_gateway(
            listener,
            &template,
            &provisioned,
            &functions,
            &invoker,
            &options,
            &mut tasks,
        )?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for f in &functions {
            for event in &f.events {
                match event {
                    EventDef::Sqs(def) => {
                        let queue =
                            provisioned.queues.get(&def.queue).cloned().ok_or_else(|| {
                                Error::Template(format!(
                                    "{}: SQS event source on {}, which is not a queue",
                                    f.logical_id, def.queue
                                ))
                            })?;
                        let source = SqsSource {
                            function: f.binary.clone(),
                            queue,
                            def: def.clone(),
                        };
                        tasks.push(tokio::spawn(poller::run(
                            source,
                            sqs.clone(),
                            invoker.clone(),
                        )));
                    }
                    EventDef::Schedule { name, expression } => {
                        let every = match options.schedule_every {
                            Some(every) => every,
                            None => schedule::parse_rate(expression)?,
                        };
                        let s = Schedule {
                            function: f.binary.clone(),
                            rule: format!("{}-{}{}", options.stack_name, f.logical_id, name),
                            every,
                        };
                        tasks.push(tokio::spawn(schedule::run(s, invoker.clone())));
                    }
                    EventDef::HttpApi(_) => {}
                }
            }
        }

        Ok(Self {
            api_url,
            admin_key,
            log_dir,
            moto: Some(moto),
            provisioned,
            functions,
            invoker,
            watch,
            tasks,
        })
    }

    /// The gateway's base URL, `http://127.0.0.1:<port>`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The admin API key (send it as `Authorization: Bearer <key>`).
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// moto's URL, what `AWS_ENDPOINT_URL` should be.
    pub fn endpoint_url(&self) -> &str {
        self.moto.as_ref().map_or("", MotoServer::endpoint_url)
    }

    /// Where the logs of moto and the functions are (`<binary>.log`, `moto.log`).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The log file of a function (binaries mode), or of `cargo lambda watch`.
    pub fn log_file(&self, function: &str) -> PathBuf {
        self.log_dir.join(format!("{function}.log"))
    }

    /// The URL of a queue by logical id (e.g. `JobsQueue`).
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.provisioned
            .queues
            .get(logical_id)
            .map(|q| q.url.as_str())
    }

    /// The name of a table by logical id (e.g. `ControlTable`).
    pub fn table_name(&self, logical_id: &str) -> Option<&str> {
        self.provisioned.tables.get(logical_id).map(String::as_str)
    }

    /// The ARN of a secret by logical id (e.g. `AdminApiKeySecret`).
    pub fn secret_arn(&self, logical_id: &str) -> Option<&str> {
        self.provisioned.secrets.get(logical_id).map(String::as_str)
    }

    /// The functions' binary names.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.binary.as_str())
    }

    /// An SDK configuration for the stack's moto.
    pub async fn sdk_config(&self) -> SdkConfig {
        crate::moto::sdk_config(self.endpoint_url()).await
    }

    /// Kills a function's process (SIGKILL, binaries mode), as a crashed sandbox: what it was
    /// invoked with fails, and a new process takes the next invocation.
    pub fn crash(&self, function: &str) -> Result<(), InvokeError> {
        match &self.invoker {
            Invoker::Binaries(hosts) => match hosts.get(function) {
                Some(host) => {
                    host.crash();
                    Ok(())
                }
                None => Err(InvokeError::Unavailable(format!("no function {function}"))),
            },
            Invoker::Watch(_) => Err(InvokeError::Unavailable(
                "cargo lambda watch's processes are not the stack's to kill".into(),
            )),
        }
    }

    /// Invokes a function directly (as `aws lambda invoke` would), bypassing the event sources.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let answer = self
            .invoker
            .invoke(function, Bytes::from(payload.to_string()))
            .await?;
        if answer.trim_ascii().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&answer)
            .map_err(|e| InvokeError::Unavailable(format!("the answer is not JSON: {e}")))
    }

    /// `.tributary/local.env` contents: how scripts reach the stack.
    pub fn env_file(&self) -> String {
        format!(
            "TRIBUTARY_API_URL={}\nTRIBUTARY_ADMIN_KEY={}\nTRIBUTARY_LOG_DIR={}\nAWS_ENDPOINT_URL={}\nAWS_REGION={REGION}\nAWS_ACCESS_KEY_ID={ACCESS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY}\n",
            self.api_url,
            self.admin_key,
            self.log_dir.display(),
            self.endpoint_url()
        )
    }

    /// Stops everything, waiting for processes to exit (dropping does the same without waiting).
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        if let Some(watch) = self.watch.take() {
            watch.stop(Duration::from_secs(5)).await;
        }
        // Function hosts go with the last invoker clone: the tasks holding others are gone.
        self.invoker = Invoker::Binaries(Arc::new(BTreeMap::new()));
        tokio::task::yield_now().await;
        if let Some(moto) = self.moto.take() {
            moto.stop().await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A new directory for this stack's logs, outside the workspace.
fn fresh_log_dir() -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    workspace::scratch_dir().join(format!(
        "stack-{stamp}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or_default()
    ))
}

fn locate_binaries(
    functions: &[FunctionDef],
    options: &StackOptions,
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let dir = options
        .binaries_dir
        .clone()
        .unwrap_or_else(|| workspace::target_dir().join("debug"));
    // Binaries from elsewhere (a release build copied around) may come without dep-info.
    let from_cargo = options.binaries_dir.is_none();
    functions
        .iter()
        .map(|f| {
            let path = dir.join(&f.binary);
            if !path.is_file() {
                return Err(Error::BinaryMissing {
                    path,
                    package: f.binary.clone(),
                });
            }
            match freshness::check(&path)
                .map_err(|e| Error::io("check the freshness of", &path, e))?
            {
                None => {}
                Some(Staleness::NoDepInfo(_)) if !from_cargo => {}
                Some(why) => {
                    return Err(Error::BinaryStale {
                        path,
                        package: f.binary.clone(),
                        why: why.to_string(),
                    });
                }
            }
            Ok((f.binary.clone(), path))
        })
        .collect()
}

async fn read_secret(
    sdk: &SdkConfig,
    provisioned: &Provisioned,
    logical_id: &str,
) -> Result<String, Error> {
    let arn = provisioned
        .secrets
        .get(logical_id)
        .ok_or_else(|| Error::Template(format!("the template has no secret {logical_id}")))?;
    aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| Error::aws("GetSecretValue", e))?
        .secret_string
        .ok_or_else(|| Error::Aws {
            action: "GetSecretValue".into(),
            message: format!("{logical_id} has no string value"),
        })
}

/// The environment a function sees: the template's (Globals and function, references resolved to
/// local resources), the local endpoint and credentials, and Lambda's logging variables.
fn function_environment(
    f: &FunctionDef,
    provisioned: &Provisioned,
    endpoint_url: &str,
    options: &StackOptions,
) -> Result<BTreeMap<String, String>, Error> {
    let mut env = BTreeMap::new();
    for (name, value) in &f.environment {
        let value = provisioned
            .resolver
            .eval_string(value)
            .map_err(|e| Error::Template(format!("{}: environment {name}: {e}", f.logical_id)))?;
        env.insert(name.clone(), value);
    }
    env.insert("AWS_ENDPOINT_URL".into(), endpoint_url.to_owned());
    env.insert("AWS_REGION".into(), REGION.into());
    env.insert("AWS_DEFAULT_REGION".into(), REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY_ID.into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), SECRET_ACCESS_KEY.into());
    let format = options.log_format.clone().or_else(|| f.log_format.clone());
    if let Some(format) = format {
        env.insert("AWS_LAMBDA_LOG_FORMAT".into(), format);
    }
    let level = match (&options.log_level, &f.log_level) {
        (Some(level), _) => Some(level.clone()),
        (None, Some(value)) => Some(provisioned.resolver.eval_string(value)?),
        (None, None) => None,
    };
    if let Some(level) = level {
        env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level);
    }
    Ok(env)
}

async fn bind_gateway(port: u16) -> Result<tokio::net::TcpListener, Error> {
    let addr = format!("127.0.0.1:{port}");
    tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

fn start_gateway(
    listener: tokio::net::TcpListener,
    template: &Template,
    provisioned: &Provisioned,
    functions: &[FunctionDef],
    invoker: &Invoker,
    options: &StackOptions,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<String, Error> {
    // Resolved with the stack's parameters: the authorizer cache TTL may be one.
    let api = template.http_api_resolved(&provisioned.resolver)?;
    let routes: Vec<Route> = functions
        .iter()
        .flat_map(|f| {
            f.events.iter().filter_map(|e| match e {
                EventDef::HttpApi(def) => Some(Route {
                    def: def.clone(),
                    function: f.binary.clone(),
                }),
                _ => None,
            })
        })
        .collect();
    let by_logical_id: BTreeMap<String, String> = functions
        .iter()
        .map(|f| (f.logical_id.clone(), f.binary.clone()))
        .collect();
    let gateway = Arc::new(Gateway::new(
        api.as_ref(),
        routes,
        |id| by_logical_id.get(id).cloned(),
        invoker.clone(),
        match options.mode {
            Mode::Binaries => Duration::ZERO,
            Mode::Watch => WATCH_COMPILE_ALLOWANCE,
        },
    )?);
    let bound = listener.local_addr().map_err(|source| Error::Bind {
        addr: format!("127.0.0.1:{}", options.gateway_port),
        source,
    })?;
    let app = gateway
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "gateway stopped");
        }
    }));
    Ok(format!("http://{bound}"))
}

fn cargo_lambda_path() -> PathBuf {
    std::env::var_os(CARGO_LAMBDA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join(".tributary/tools/cargo-lambda/bin/cargo-lambda"))
}

/// Starts `cargo lambda watch` with every function's environment in one env file (it serves all
/// functions of the workspace from one process).
async fn start_watch(
    functions: &[FunctionDef],
    environments: &BTreeMap<String, BTreeMap<String, String>>,
    log_dir: &Path,
    options: &StackOptions,
) -> Result<(WatchClient, Group), Error> {
    let cargo_lambda = cargo_lambda_path();
    if !cargo_lambda.exists() {
        return Err(Error::ToolMissing {
            tool: "cargo-lambda",
            path: cargo_lambda,
            env: CARGO_LAMBDA_ENV,
        });
    }
    let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
    for (function, env) in environments {
        for (name, value) in env {
            if let Some(previous) = merged.insert(name, value)
                && previous != value
            {
                return Err(Error::Template(format!(
                    "cargo lambda watch shares one environment between functions, but {name} differs for {function}"
                )));
            }
        }
    }
    let env_file = log_dir.join("functions.env");
    let contents: String = merged.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, contents).map_err(|e| Error::io("write", &env_file, e))?;
    let port = match options.invoke_port {
        0 => process::free_port()?,
        port => port,
    };
    // Without it, any file written anywhere in the workspace restarts every function.
    let ignore_file = log_dir.join("watch.ignore");
    let binaries: Vec<&str> = functions.iter().map(|f| f.binary.as_str()).collect();
    watch::write_ignore_file(&workspace::root(), &binaries, &ignore_file).await?;
    let mut command = tokio::process::Command::new(&cargo_lambda);
    command
        .current_dir(workspace::root())
        .env(watch::IGNORE_FILE_ENV, &ignore_file)
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--env-file")
        .arg(&env_file);
    if let Some(bin_dir) = cargo_lambda.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin_dir.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("PATH", joined);
        }
    }
    let log = log_dir.join("cargo-lambda-watch.log");
    let mut group = Group::spawn(
        format!("cargo lambda watch on port {port}"),
        command,
        &Output {
            file: log.clone(),
            echo: options.echo_logs.then(|| "[watch]".to_owned()),
        },
    )
    .await?;
    let started = Instant::now();
    loop {
        if let Some(status) = group.try_exit_status() {
            return Err(Error::NotReady {
                what: group.what().to_owned(),
                reason: format!("exited with {status}: {}", process::tail(&log, 10)),
                log,
            });
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if started.elapsed() > FUNCTION_READY_TIMEOUT {
            return Err(Error::NotReady {
                what: group.what().to_owned(),
                reason: "its invoke port never opened".into(),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let timeouts = functions
        .iter()
        .map(|f| (f.binary.clone(), f.timeout + WATCH_COMPILE_ALLOWANCE))
        .collect();
    let http = tributary_http::tls::reqwest_builder()
        .build()
        .map_err(|e| Error::InvalidOption(e.to_string()))?;
    Ok((
        WatchClient {
            http,
            base_url: format!("http://127.0.0.1:{port}"),
            timeouts,
        },
        group,
    ))
}
