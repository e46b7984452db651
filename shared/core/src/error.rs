//! The error every port returns. Adapters classify their SDK errors into these variants by type, never
//! by message text, so callers can decide to retry, report a conflict or give up.

/// Which backing service an error came from, for logs and health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The state store (DynamoDB).
    Store,
    /// The jobs queue (SQS).
    Queue,
    /// The secret store (Secrets Manager).
    Secrets,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Store => "store",
            Service::Queue => "queue",
            Service::Secrets => "secrets",
        })
    }
}

/// A failure behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A condition on a write did not hold (someone else wrote first).
    #[error("{service} {operation}: condition not met")]
    Conflict {
        /// Where.
        service: Service,
        /// The operation, e.g. `PutItem`.
        operation: &'static str,
    },
    /// The named thing does not exist.
    #[error("{service} {operation}: not found")]
    NotFound {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
    },
    /// The service asked us to slow down; retry later.
    #[error("{service} {operation}: throttled")]
    Throttled {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
    },
    /// The service did not answer, timed out or failed on its side; retry later.
    #[error("{service} {operation}: unavailable: {detail}")]
    Unavailable {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
        /// What the SDK said (no secrets: SDK errors carry none of ours).
        detail: String,
    },
    /// The service refused the request as invalid: a bug or a misconfiguration, not worth retrying.
    #[error("{service} {operation}: rejected: {detail}")]
    Rejected {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
        /// What the SDK said.
        detail: String,
    },
    /// A list position (a decoded cursor) lies outside the list it was used with: the caller's input
    /// is wrong, not the store.
    #[error("{service} {operation}: position outside the list")]
    OutOfRange {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
    },
    /// Stored data could not be decoded.
    #[error("{service} {operation}: corrupt data: {detail}")]
    Corrupt {
        /// Where.
        service: Service,
        /// The operation.
        operation: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl PortError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PortError::Throttled { .. } | PortError::Unavailable { .. }
        )
    }

    /// The service the error came from.
    pub fn service(&self) -> Service {
        match self {
            PortError::Conflict { service, .. }
            | PortError::NotFound { service, .. }
            | PortError::Throttled { service, .. }
            | PortError::Unavailable { service, .. }
            | PortError::Rejected { service, .. }
            | PortError::OutOfRange { service, .. }
            | PortError::Corrupt { service, .. } => *service,
        }
    }
}
