//! One cold start: exec a binary, wait for its first `/next`, kill it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::Error;
use crate::listeners::{AwsEndpoint, RuntimeApi};
use crate::subjects::Subject;

/// A process's environment: the subject's, and the listeners standing in for Lambda and AWS. The
/// instance metadata endpoint points at the AWS endpoint too, so an SDK that looked for credentials
/// or a region there would be counted as well.
pub fn environment(
    subject: &Subject,
    api: &RuntimeApi,
    aws: &AwsEndpoint,
) -> BTreeMap<String, String> {
    let mut env = subject.env.clone();
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), api.authority());
    env.insert("AWS_ENDPOINT_URL".into(), aws.url());
    env.insert("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), aws.url());
    env
}

/// How a run ended when it did not reach `/next`.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The process exited first (a configuration error, say).
    Exited(ExitStatus),
    /// It was still initialising after the timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "exited before its first /next ({status})"),
            Self::TimedOut(after) => write!(f, "no /next within {} s", after.as_secs()),
        }
    }
}

/// One measured cold start.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From just before spawn to the arrival of the first `/next`.
    pub init: Duration,
    /// Connections to the AWS endpoint in that time.
    pub aws_connections: usize,
}

/// Starts `subject` with its output in `log`, measures it, and kills it.
pub async fn cold_start(
    subject: &Subject,
    api: &RuntimeApi,
    aws: &AwsEndpoint,
    log: &Path,
    timeout: Duration,
) -> Result<Result<Sample, Failure>, Error> {
    let env = environment(subject, api, aws);
    let (started, outcome) =
        run_until_next(subject.program.as_os_str(), &[], &env, api, log, timeout).await?;
    Ok(outcome.map(|next| Sample {
        init: next.duration_since(started),
        aws_connections: aws.connections_between(started, next),
    }))
}

/// Spawns `program` in a process group of its own, with exactly `env`, stdin closed and its output in
/// `log`; waits for the first `/next`; then kills the group (a tracer and its tracee alike) and reaps
/// it. Returns the instant just before spawn and the instant `/next` arrived.
pub(crate) async fn run_until_next(
    program: &OsStr,
    args: &[&OsStr],
    env: &BTreeMap<String, String>,
    api: &RuntimeApi,
    log: &Path,
    timeout: Duration,
) -> Result<(Instant, Result<Instant, Failure>), Error> {
    let out = File::create(log).map_err(|e| Error::io("create", log.display(), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io("open", log.display(), e))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    let next = api.arm();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| Error::io("start", program.to_string_lossy(), e))?;
    let outcome = tokio::select! {
        at = next => at.map_err(|_| Failure::TimedOut(timeout)),
        status = child.wait() => Err(match status {
            Ok(status) => Failure::Exited(status),
            Err(_) => Failure::TimedOut(timeout),
        }),
        () = tokio::time::sleep(timeout) => Err(Failure::TimedOut(timeout)),
    };
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // The group is gone already when the process exited on its own.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    api.release();
    Ok((started, outcome))
}
