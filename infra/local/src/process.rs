//! Child processes in their own process groups, so that stopping one also stops everything it
//! started (`cargo lambda watch` runs the functions as its own children), with their output in a log
//! file and, optionally, echoed to the terminal with a prefix.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::Error;

/// Where a child's output goes.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// The log file (appended to).
    pub file: PathBuf,
    /// Echo each line to stderr with this prefix.
    pub echo: Option<String>,
}

/// A running child process that is the leader of its own process group.
#[derive(Debug)]
pub(crate) struct Group {
    what: String,
    child: Child,
    pgid: Option<Pid>,
}

impl Group {
    /// Starts `command` as a new process group with its output sent to `output`.
    pub(crate) async fn spawn(
        what: impl Into<String>,
        mut command: Command,
        output: &Output,
    ) -> Result<Self, Error> {
        let what = what.into();
        if let Some(dir) = output.file.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::io("create", dir, e))?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output.file)
            .await
            .map_err(|e| Error::io("open", &output.file, e))?;
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            what: what.clone(),
            source,
        })?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(stderr, tx));
        }
        tokio::spawn(write_lines(rx, file, output.echo.clone()));
        Ok(Self { what, child, pgid })
    }

    /// What this process is, for messages.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// Whether the group leader has exited (and with what status).
    pub(crate) fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the group leader to exit.
    pub(crate) async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Kills the whole group at once (SIGKILL), as a crash, and waits for the leader to exit.
    pub(crate) async fn kill(mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait().await;
    }

    /// Asks the whole group to stop (SIGTERM), waits up to `grace`, then kills it (SIGKILL).
    pub(crate) async fn stop(mut self, grace: Duration) {
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::debug!(process = %self.what, "did not stop within the grace period; killing");
        }
        // Grandchildren may outlive the leader: the group is killed in any case.
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait().await;
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH only means the group is already gone.
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

async fn read_lines<R>(reader: R, tx: tokio::sync::mpsc::UnboundedSender<String>)
where
    R: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

async fn write_lines(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    mut file: tokio::fs::File,
    echo: Option<String>,
) {
    while let Some(line) = rx.recv().await {
        if let Some(prefix) = &echo {
            eprintln!("{prefix} {line}");
        }
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        if file.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = file.flush().await;
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free TCP port on the loopback interface. Another process may take it before it is used, so
/// callers that can pass a bound listener should do that instead.
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| Error::Bind {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })
}
