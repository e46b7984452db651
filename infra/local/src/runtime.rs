//! A Lambda Runtime API emulator (`/2018-06-01/runtime/...`) and the function process it serves.
//!
//! Each function gets its own listener and one process running its prebuilt binary, like one warm
//! execution environment: invocations are served one at a time. A process that exits (a panic
//! aborts in release builds) or overruns its timeout is replaced, as Lambda replaces a sandbox.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::invoke::InvokeError;
use crate::moto::{ACCOUNT_ID, REGION};
use crate::process::{Group, Output};

/// How long a replaced or crashed process waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_millis(500);
/// Extra time on top of the function timeout before an invocation is declared timed out.
const TIMEOUT_GRACE: Duration = Duration::from_millis(500);

type Reply = oneshot::Sender<Result<Bytes, InvokeError>>;

struct Invocation {
    id: String,
    payload: Bytes,
    deadline_ms: u128,
    reply: Reply,
}

struct Shared {
    function_arn: String,
    queue: Mutex<mpsc::Receiver<Invocation>>,
    in_flight: std::sync::Mutex<HashMap<String, Reply>>,
    polling: watch::Sender<bool>,
    /// Bumped whenever the process is replaced, which releases a `next` poll of the dead process.
    generation: watch::Sender<u64>,
}

impl Shared {
    fn take(&self, id: &str) -> Option<Reply> {
        self.in_flight.lock().ok().and_then(|mut m| m.remove(id))
    }

    fn fail_in_flight(&self, reason: &str) {
        let replies: Vec<Reply> = match self.in_flight.lock() {
            Ok(mut m) => m.drain().map(|(_, r)| r).collect(),
            Err(_) => Vec::new(),
        };
        for reply in replies {
            let _ = reply.send(Err(InvokeError::Unavailable(reason.to_owned())));
        }
    }
}

/// What the process of a function is started with.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// The function's name (the binary name).
    pub name: String,
    /// The prebuilt binary.
    pub binary: PathBuf,
    /// The function's environment (template, endpoint, credentials, log settings).
    pub environment: BTreeMap<String, String>,
    /// `MemorySize`.
    pub memory_mb: u64,
    /// `Timeout`.
    pub timeout: Duration,
    /// Where its output goes.
    pub output: Output,
}

/// One function: its Runtime API listener and the supervised process that polls it.
pub(crate) struct FunctionHost {
    name: String,
    timeout: Duration,
    queue: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    replace: Arc<Notify>,
    crash: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl FunctionHost {
    /// Binds the Runtime API on a free loopback port and starts the function's process.
    pub(crate) async fn start(spec: ProcessSpec) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| Error::Bind {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
        let (queue, rx) = mpsc::channel(64);
        let (polling, _) = watch::channel(false);
        let (generation, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            function_arn: format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
                spec.name
            ),
            queue: Mutex::new(rx),
            in_flight: std::sync::Mutex::new(HashMap::new()),
            polling,
            generation,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "runtime API server stopped");
            }
        });
        let replace = Arc::new(Notify::new());
        let crash = Arc::new(Notify::new());
        let supervisor = tokio::spawn(supervise(
            spec.clone(),
            addr,
            shared.clone(),
            replace.clone(),
            crash.clone(),
        ));
        Ok(Self {
            name: spec.name,
            timeout: spec.timeout,
            queue,
            shared,
            replace,
            crash,
            tasks: vec![server, supervisor],
        })
    }

    /// Waits until the process asks for its first invocation (its init succeeded).
    pub(crate) async fn ready(&self, within: Duration) -> bool {
        let mut polling = self.shared.polling.subscribe();
        tokio::time::timeout(within, polling.wait_for(|p| *p))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Kills the process at once (SIGKILL), as a crashed sandbox; it is replaced like one.
    pub(crate) fn crash(&self) {
        self.crash.notify_one();
    }

    /// The function's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Invokes the function synchronously.
    pub(crate) async fn invoke(&self, payload: Bytes) -> Result<Bytes, InvokeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Invocation {
                id: id.clone(),
                payload,
                deadline_ms,
                reply,
            })
            .await
            .map_err(|_| InvokeError::Unavailable(format!("{} is shut down", self.name)))?;
        match tokio::time::timeout(self.timeout + TIMEOUT_GRACE, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(InvokeError::Unavailable(format!(
                "{} dropped the invocation",
                self.name
            ))),
            Err(_) => {
                // Only an invocation the process had picked up means the process is stuck.
                if self.shared.take(&id).is_some() {
                    self.replace.notify_one();
                }
                Err(InvokeError::Timeout(self.timeout))
            }
        }
    }
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn supervise(
    spec: ProcessSpec,
    addr: SocketAddr,
    shared: Arc<Shared>,
    replace: Arc<Notify>,
    crash: Arc<Notify>,
) {
    loop {
        let mut command = tokio::process::Command::new(&spec.binary);
        command
            .env_clear()
            .envs(&spec.environment)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let mut group =
            match Group::spawn(format!("function {}", spec.name), command, &spec.output).await {
                Ok(group) => group,
                Err(e) => {
                    tracing::error!(function = %spec.name, error = %e, "cannot start the function");
                    tokio::time::sleep(RESTART_DELAY * 10).await;
                    continue;
                }
            };
        let reason = tokio::select! {
            status = group.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(function = %spec.name, %status, log = %spec.output.file.display(), "function process exited; restarting");
                format!("the function process exited ({status})")
            }
            () = replace.notified() => {
                tracing::warn!(function = %spec.name, "function timed out; replacing its process");
                group.stop(Duration::ZERO).await;
                "the function process was replaced after a timeout".to_owned()
            }
            () = crash.notified() => {
                tracing::warn!(function = %spec.name, "function process killed (a crash); restarting");
                group.kill().await;
                "the function process crashed (killed)".to_owned()
            }
        };
        // First release the dead process's pending poll, so no invocation is handed to it, then fail
        // what it had picked up.
        shared.generation.send_modify(|g| *g += 1);
        shared.fail_in_flight(&reason);
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.polling.send_replace(true);
    let mut generation = shared.generation.subscribe();
    let started = *generation.borrow_and_update();
    let replaced = async move {
        let _ = generation.wait_for(|g| *g != started).await;
    };
    tokio::pin!(replaced);
    let mut queue = tokio::select! {
        biased;
        () = &mut replaced => return StatusCode::GONE.into_response(),
        queue = shared.queue.lock() => queue,
    };
    loop {
        let received = tokio::select! {
            biased;
            () = &mut replaced => return StatusCode::GONE.into_response(),
            received = queue.recv() => received,
        };
        let Some(invocation) = received else {
            return StatusCode::GONE.into_response();
        };
        if invocation.reply.is_closed() {
            // The caller gave up while the invocation waited for the process.
            continue;
        }
        let Invocation {
            id,
            payload,
            deadline_ms,
            reply,
        } = invocation;
        if let Ok(mut in_flight) = shared.in_flight.lock() {
            in_flight.insert(id.clone(), reply);
        }
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("lambda-runtime-aws-request-id", id);
        set("lambda-runtime-deadline-ms", deadline_ms.to_string());
        set(
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        );
        set("lambda-runtime-trace-id", trace_id());
        set("content-type", "application/json".into());
        return (StatusCode::OK, headers, payload).into_response();
    }
}

/// An X-Ray trace header as Lambda passes it (`Root=1-<time>-<96 bits>;Parent=…;Sampled=0`).
fn trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &random[16..32]
    )
}

fn unknown_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "errorMessage": "Invalid request ID",
            "errorType": "InvalidRequestID"
        })),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match shared.take(&id) {
        Some(reply) => {
            let _ = reply.send(Ok(body));
            accepted()
        }
        None => unknown_request(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ErrorBody {
    error_type: String,
    error_message: String,
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
        error_type: "Unknown".into(),
        error_message: String::from_utf8_lossy(&body).into_owned(),
    });
    match shared.take(&id) {
        Some(reply) => {
            let _ = reply.send(Err(InvokeError::Function {
                error_type: parsed.error_type,
                message: parsed.error_message,
            }));
            accepted()
        }
        None => unknown_request(),
    }
}

async fn init_error(body: Bytes) -> Response {
    tracing::error!(error = %String::from_utf8_lossy(&body), "function init failed");
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace;

    /// The newest build of `examples/fake_function.rs`: `cargo test` builds examples (with a hash
    /// in their names) before it runs tests.
    fn fake_function_binary() -> PathBuf {
        let dir = workspace::target_dir().join("debug/examples");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("fake_function") && !name.contains('.')
            })
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.path())
            .unwrap_or_else(|| panic!("fake_function is not built in {}", dir.display()))
    }

    async fn fake_function(timeout: Duration) -> FunctionHost {
        let binary = fake_function_binary();
        let dir = workspace::scratch_dir()
            .join(format!("runtime-test-{}", uuid::Uuid::new_v4().simple()));
        let host = FunctionHost::start(ProcessSpec {
            name: "fake".into(),
            binary,
            environment: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            memory_mb: 128,
            timeout,
            output: Output {
                file: dir.join("fake.log"),
                echo: None,
            },
        })
        .await
        .expect("starts");
        assert!(host.ready(Duration::from_secs(30)).await, "never polled");
        host
    }

    async fn invoke(
        host: &FunctionHost,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let answer = host.invoke(Bytes::from(payload.to_string())).await?;
        Ok(serde_json::from_slice(&answer).expect("json answer"))
    }

    #[tokio::test]
    async fn invocation_reaches_the_function_with_its_environment_and_returns_its_answer() {
        let host = fake_function(Duration::from_secs(5)).await;

        let answer = invoke(&host, serde_json::json!({"n": 1}))
            .await
            .expect("answer");

        assert_eq!(answer["echo"], serde_json::json!({"n": 1}));
        assert_eq!(answer["function"], "fake");
        assert_eq!(answer["greeting"], "hello");
        assert!(
            answer["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }

    #[tokio::test]
    async fn function_error_is_reported_with_its_message() {
        let host = fake_function(Duration::from_secs(5)).await;

        let error = invoke(&host, serde_json::json!({"fail": "no such job"}))
            .await
            .expect_err("fails");

        assert!(
            matches!(&error, InvokeError::Function { message, .. } if message.contains("no such job")),
            "{error}"
        );
        assert!(
            invoke(&host, serde_json::json!({})).await.is_ok(),
            "still serves"
        );
    }

    #[tokio::test]
    async fn timed_out_function_is_replaced_and_serves_the_next_invocation() {
        let host = fake_function(Duration::from_secs(1)).await;

        let error = invoke(&host, serde_json::json!({"sleep_ms": 5000}))
            .await
            .expect_err("times out");

        assert!(matches!(error, InvokeError::Timeout(_)), "{error}");
        let answer = invoke(&host, serde_json::json!({"after": "timeout"}))
            .await
            .expect("a fresh process answers");
        assert_eq!(answer["echo"]["after"], "timeout");
    }

    #[tokio::test]
    async fn crashed_function_is_restarted() {
        let host = fake_function(Duration::from_secs(5)).await;

        let error = invoke(&host, serde_json::json!({"exit": true}))
            .await
            .expect_err("the process dies");

        assert!(matches!(error, InvokeError::Unavailable(_)), "{error}");
        let answer = invoke(&host, serde_json::json!({"after": "crash"}))
            .await
            .expect("a fresh process answers");
        assert_eq!(answer["echo"]["after"], "crash");
    }
}
