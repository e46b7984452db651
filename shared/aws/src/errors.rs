//! Classification of SDK errors into [`PortError`] by variant and HTTP status, never by message text.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use tributary_core::PortError;
use tributary_core::error::Service;

/// Turns an SDK error into a port error. `specific` maps the operation's own error variants
/// (conditional-check failure, not found, throttling) first; the HTTP status decides the rest.
pub(crate) fn classify<E>(
    service: Service,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
    specific: impl FnOnce(&E) -> Option<PortError>,
) -> PortError
where
    E: std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service_err) => {
            if let Some(mapped) = specific(service_err.err()) {
                return mapped;
            }
            let status = service_err.raw().status().as_u16();
            if status == 429 {
                PortError::Throttled { service, operation }
            } else if status >= 500 {
                PortError::Unavailable {
                    service,
                    operation,
                    detail: DisplayErrorContext(&err).to_string(),
                }
            } else {
                PortError::Rejected {
                    service,
                    operation,
                    detail: DisplayErrorContext(&err).to_string(),
                }
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Unavailable {
                service,
                operation,
                detail: DisplayErrorContext(&err).to_string(),
            }
        }
        _ => PortError::Rejected {
            service,
            operation,
            detail: DisplayErrorContext(&err).to_string(),
        },
    }
}
