//! Why the benchmark could not produce its table (a missed goal is not an error: it is in the table).

use std::path::PathBuf;

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or a listener could not be used.
    #[error("{action} {target}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file, program or address concerned.
        target: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The template could not be read or evaluated.
    #[error(transparent)]
    Template(#[from] tributary_local::Error),
    /// A binary to measure has not been built.
    #[error("{0} is missing: build it first (make bench-coldstart does)")]
    BinaryMissing(PathBuf),
    /// Zipping a bootstrap failed.
    #[error("zipping {path} with {python} failed: {detail}")]
    Zip {
        /// The bootstrap.
        path: PathBuf,
        /// The interpreter.
        python: String,
        /// Its stderr.
        detail: String,
    },
}

impl Error {
    /// An I/O error while `action` on `target`.
    pub fn io(action: &'static str, target: impl ToString, source: std::io::Error) -> Self {
        Self::Io {
            action,
            target: target.to_string(),
            source,
        }
    }
}
