//! moto server, the local AWS (DynamoDB, SQS, Secrets Manager), as a child process on loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

use crate::error::Error;
use crate::process::{self, Group, Output};
use crate::workspace;

/// The region everything local lives in.
pub const REGION: &str = "us-east-1";
/// The account id moto uses.
pub const ACCOUNT_ID: &str = "123456789012";
/// The dummy access key id handed to every local client.
pub const ACCESS_KEY_ID: &str = "testing";
/// The dummy secret access key handed to every local client.
pub const SECRET_ACCESS_KEY: &str = "testing";
/// The environment variable that overrides where `moto_server` is found.
pub const MOTO_SERVER_ENV: &str = "TRIBUTARY_MOTO_SERVER";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;

/// How to start moto.
#[derive(Debug, Clone, Default)]
pub struct MotoOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where moto's output goes; by default a file under the system temp directory.
    pub log_file: Option<PathBuf>,
    /// Echo moto's output to stderr with this prefix.
    pub echo: Option<String>,
    /// Serve one request at a time, as DynamoDB applies a conditional write to an item: moto's
    /// own server is threaded and checks a condition and writes in separate steps, so two racing
    /// conditional writes can both succeed. Tests of races between processes use this.
    pub serialized: bool,
}

/// moto's application on werkzeug's threaded server (what `moto_server` runs), with three changes.
///
/// - **A Query reads its partition, as in DynamoDB.** moto's `Table.query` sorts every item of
///   the table (`all_items`) and then keeps the partition's: O(table) a Query, so the reads of
///   one tenant slowed down as the fuzzing filled other tenants' partitions (the dashboard's reads
///   took 8 s). Here a Query on the table's own key is handed its partition only; a Query
///   of an index is left as moto has it.
/// - **Transactions cost their items, as in DynamoDB.** moto's `TransactWriteItems` deep-copies
///   every table the transaction touches before applying it, to roll back on failure: O(table) a
///   transaction, which made a sync of 10,000 records (a transaction a page) quadratic and timed
///   out, and its rollback put back the whole copied table over other requests' writes. Here only
///   the items the transaction names are saved and put back when it fails.
/// - **With `serialized` (argument `1`), one DynamoDB request at a time:** a lock around the
///   application (the response read inside it), so connections stay open between requests
///   (keep-alive, as the SDK expects) while no two DynamoDB requests touch the backend at once.
///   SQS and Secrets Manager requests pass beside the lock: a queue's long poll (`ReceiveMessage`
///   waits for messages) held inside it would stall every other request for its wait, about a
///   second each.
const SERVER: &str = r#"import copy, sys, threading
import moto.dynamodb.models as dynamodb
from moto.dynamodb.models.table import Table
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

class _TablesAsIs:
    """`copy` for moto's DynamoDB backend: its tables are not copied (see below)."""
    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

dynamodb.copy = _TablesAsIs
_transact = dynamodb.DynamoDBBackend.transact_write_items

def _key(table, op):
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op["Key"]

def transact_write_items(self, transact_items):
    saved = []
    for action in transact_items:
        try:
            _, op = next(iter(action.items()))
            table = self.get_table(op["TableName"])
            key = _key(table, op)
            old = self.get_item(op["TableName"], key)
            saved.append((op["TableName"], key, None if old is None else old.to_json()["Attributes"]))
        except Exception:
            pass  # a malformed action: the transaction itself says what is wrong with it
    try:
        return _transact(self, transact_items)
    except Exception:
        for table_name, key, old in reversed(saved):
            if old is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, old)
        raise

dynamodb.DynamoDBBackend.transact_write_items = transact_write_items

_query = Table.query
_all_items = Table.all_items
_partition = threading.local()

def all_items(self):
    only = getattr(_partition, "of", None)
    if only is not None and only[0] is self:
        return list(only[1])
    return _all_items(self)

def query(self, hash_key, *args, **kwargs):
    index_name = kwargs["index_name"] if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
    if index_name or not self.range_key_attr:
        return _query(self, hash_key, *args, **kwargs)
    _partition.of = (self, self.items[hash_key].values() if hash_key in self.items else ())
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.of = None

Table.all_items = all_items
Table.query = query
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def one_at_a_time(environ, start_response):
    if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        return list(app(environ, start_response))
    with lock:
        return list(app(environ, start_response))
serialized = sys.argv[3] == "1"
run_simple(sys.argv[1], int(sys.argv[2]), one_at_a_time if serialized else app, threaded=True)
"#;

/// A running moto server, stopped (with its whole process group) when dropped.
#[derive(Debug)]
pub struct MotoServer {
    group: Option<Group>,
    port: u16,
    endpoint_url: String,
    log_file: PathBuf,
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(MotoOptions::default()).await
    }

    /// Starts moto as `options` say and waits until it answers.
    pub async fn start_with(options: MotoOptions) -> Result<Self, Error> {
        let binary = moto_server_path();
        if !binary.exists() {
            return Err(Error::ToolMissing {
                tool: "moto_server",
                path: binary,
                env: MOTO_SERVER_ENV,
            });
        }
        let mut last_error = None;
        // A free port can be taken by someone else between our probe and moto's bind: retry then.
        let attempts = if options.port == 0 { PORT_ATTEMPTS } else { 1 };
        for _ in 0..attempts {
            let port = match options.port {
                0 => process::free_port()?,
                fixed => fixed,
            };
            match Self::start_on(&binary, port, &options).await {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::InvalidOption("no attempt to start moto".into())))
    }

    async fn start_on(binary: &Path, port: u16, options: &MotoOptions) -> Result<Self, Error> {
        let log_file = options.log_file.clone().unwrap_or_else(|| {
            workspace::scratch_dir()
                .join("moto")
                .join(format!("moto-{port}.log"))
        });
        // The venv's interpreter, beside its `moto_server`.
        let python = binary.with_file_name("python");
        let mut command = tokio::process::Command::new(python);
        command.args([
            "-c",
            SERVER,
            "127.0.0.1",
            &port.to_string(),
            if options.serialized { "1" } else { "0" },
        ]);
        command.env("MOTO_PORT", port.to_string());
        let mut group = Group::spawn(
            format!("moto server on port {port}"),
            command,
            &Output {
                file: log_file.clone(),
                echo: options.echo.clone(),
            },
        )
        .await?;
        let endpoint_url = format!("http://127.0.0.1:{port}");
        let client = tributary_http::tls::reqwest_builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::InvalidOption(e.to_string()))?;
        let started = Instant::now();
        loop {
            if let Some(status) = group.try_exit_status() {
                return Err(Error::NotReady {
                    what: group.what().to_owned(),
                    reason: format!("exited with {status}: {}", process::tail(&log_file, 5)),
                    log: log_file,
                });
            }
            let probe = client.get(format!("{endpoint_url}/")).send().await;
            if probe.is_ok() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    what: group.what().to_owned(),
                    reason: format!("no answer within {} s", READY_TIMEOUT.as_secs()),
                    log: log_file,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::debug!(%endpoint_url, "moto is ready");
        Ok(Self {
            group: Some(group),
            port,
            endpoint_url,
            log_file,
        })
    }

    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL` should be.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where moto's output goes.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// An SDK configuration for this server: its endpoint, [`REGION`] and dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint_url).await
    }

    /// Stops moto now (dropping it does the same, without waiting).
    pub async fn stop(mut self) {
        if let Some(group) = self.group.take() {
            group.stop(Duration::from_secs(2)).await;
        }
    }
}

/// An SDK configuration for a local endpoint: [`REGION`] and dummy credentials.
pub async fn sdk_config(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The SDK crates are built without a default client; the functions' serves plain HTTP too.
        .http_client(tributary_aws::sdk::https_client())
        .region(Region::new(REGION))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "tributary-local",
        ))
        .load()
        .await
}

/// `$TRIBUTARY_MOTO_SERVER`, or `moto_server` in the venv `make tools` installs.
pub fn moto_server_path() -> PathBuf {
    std::env::var_os(MOTO_SERVER_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join(".tributary/tools/moto/bin/moto_server"))
}
