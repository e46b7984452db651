//! The errors of the local stack: reading the template, starting processes, talking to moto.

use std::path::PathBuf;

/// Why the local stack could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `infra/template.yaml` is not valid YAML.
    #[error("cannot parse {path}: {source}")]
    TemplateSyntax {
        /// The template's path.
        path: PathBuf,
        /// The parser's error.
        source: serde_norway::Error,
    },
    /// The template is valid YAML but uses something the local stack does not understand.
    #[error("infra/template.yaml: {0}")]
    Template(String),
    /// A `!Ref` or `!GetAtt` names something that does not exist (or does not exist yet).
    #[error("infra/template.yaml: unresolved reference {0}")]
    Unresolved(String),
    /// A tool the local stack runs is not installed.
    #[error("{tool} not found at {path}: run `make tools` (or set {env})")]
    ToolMissing {
        /// The tool.
        tool: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The environment variable that overrides the path.
        env: &'static str,
    },
    /// A function binary is missing from the cargo target directory.
    #[error(
        "function binary {path} is missing: build it first with `cargo build -p {package}` (or `make build`)"
    )]
    BinaryMissing {
        /// The expected path.
        path: PathBuf,
        /// The cargo package that builds it.
        package: String,
    },
    /// A function binary is older than the sources it is built from.
    #[error(
        "function binary {path} is stale ({why}): build it first with `make build` (or `cargo build -p {package}`)"
    )]
    BinaryStale {
        /// The binary.
        path: PathBuf,
        /// The cargo package that builds it.
        package: String,
        /// Which source is newer (or gone).
        why: String,
    },
    /// A child process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The process.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A child process did not become ready.
    #[error("{what} did not become ready: {reason} (log: {log})")]
    NotReady {
        /// The process.
        what: String,
        /// Why we gave up.
        reason: String,
        /// Where its output went.
        log: PathBuf,
    },
    /// A call to the local AWS emulator failed.
    #[error("moto: {action}: {message}")]
    Aws {
        /// The operation.
        action: String,
        /// The SDK error, rendered with its sources.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An option has a value the stack cannot use.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl Error {
    /// Wraps an AWS SDK error, keeping the whole source chain (the top level alone says only
    /// "service error").
    pub(crate) fn aws<E>(action: impl Into<String>, error: E) -> Self
    where
        E: std::error::Error,
    {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Aws {
            action: action.into(),
            message,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
