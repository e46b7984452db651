//! What the operations that call a provider for the caller (actions, the proxy) share: the
//! tenant's connection made usable (its token refreshed first when it is due, its credentials
//! opened), and the engine's failures as problems the caller can act on.

use tributary_core::connection::{Connection, ConnectionStatus};
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::refresh::RefreshError;
use tributary_engine::grant::{UseError, catalog_spec, usable_connection};
use tributary_engine::spec::ProviderSpec;
use tributary_engine::{EngineError, ErrorClass};

use crate::problem::ApiError;
use crate::routes::connections::load;
use crate::state::{Clock, ControlStore, Providers, Secrets, Settings};

/// A connection ready for a provider call: its spec, and the engine's view with opened
/// credentials (which live only here).
pub struct Usable {
    /// Its provider's spec.
    pub spec: &'static ProviderSpec,
    /// Configuration, credentials and base URL for the engine.
    pub engine: tributary_engine::Connection,
}

/// What a provider call needs from the router's state.
pub struct CallDeps<'a, S> {
    /// The control store.
    pub store: &'a S,
    /// The credential vault.
    pub vault: &'a Secrets,
    /// The engine.
    pub engine: &'a Providers,
    /// Settings (provider origins).
    pub settings: &'a Settings,
    /// The time source.
    pub clock: &'a Clock,
}

/// The tenant's connection `id`, checked (404 when it is not the tenant's, 409 when it is
/// disabled or needs its end user) and made usable.
pub async fn usable<S: ControlStore>(
    deps: &CallDeps<'_, S>,
    tenant: &TenantId,
    id: &ConnectionId,
) -> Result<Usable, ApiError> {
    let connection = load(deps.store, tenant, id).await?;
    tributary_core::operation::describe(|d| {
        d.op.connection_id = Some(connection.id.clone());
        d.op.integration_id = Some(connection.integration_id.clone());
        d.op.provider = Some(connection.provider.clone());
    });
    let spec = provider_of(&connection)?;
    match connection.status {
        ConnectionStatus::Active => {}
        ConnectionStatus::NeedsReauth => {
            return Err(ApiError::NeedsReauth {
                connection_id: id.to_string(),
                reason: connection
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "its credentials were refused".into()),
            });
        }
        ConnectionStatus::Disabled => {
            return Err(ApiError::Conflict {
                detail: format!(
                    "Connection `{id}` is disabled. Enable it (PATCH /v1/connections/{id} with `\"status\": \"active\"`) to call its provider."
                ),
            });
        }
    }
    let opened = usable_connection(
        deps.store,
        deps.vault,
        deps.engine,
        &deps.settings.provider_origins,
        &**deps.clock,
        &connection,
    )
    .await;
    match opened {
        Ok(engine) => Ok(Usable { spec, engine }),
        Err(UseError::Refresh(RefreshError::NeedsReauth(reason))) => Err(ApiError::NeedsReauth {
            connection_id: id.to_string(),
            reason,
        }),
        Err(UseError::Refresh(RefreshError::NotFound)) => Err(ApiError::NotFound {
            resource: "connection",
        }),
        Err(UseError::Refresh(RefreshError::Busy)) => Err(token_busy()),
        Err(UseError::Refresh(RefreshError::Transient(_))) => Err(ApiError::ProviderFailed {
            provider: spec.name.clone(),
            detail: "the connection's access token could not be refreshed for now".into(),
        }),
        Err(e) => {
            tracing::error!(connection_id = %id, error = %e, "a connection could not be made usable");
            Err(ApiError::Internal)
        }
    }
}

/// Another request holds the connection's refresh lease (it is renewing the token): a 409 to retry.
pub fn token_busy() -> ApiError {
    ApiError::Conflict {
        detail: "The connection's access token is being refreshed by another request. Retry in a moment.".into(),
    }
}

/// The catalog spec of the connection's provider (409 when the catalog no longer has it).
pub fn provider_of(connection: &Connection) -> Result<&'static ProviderSpec, ApiError> {
    catalog_spec(&connection.provider).ok_or_else(|| ApiError::Conflict {
        detail: format!(
            "The connection's provider `{}` is not in this deployment's catalog.",
            connection.provider
        ),
    })
}

/// A failed provider call as the caller's problem: the provider's rate limit as a 429 with its
/// wait, a refused credential as `needs_reauth`, another refusal as a 422 with the provider's
/// status and message, a timeout as a 504, anything else as a 502.
pub fn engine_failure(spec: &ProviderSpec, connection: &ConnectionId, e: EngineError) -> ApiError {
    let provider = spec.name.clone();
    match e {
        EngineError::Exhausted { last, .. } => engine_failure(spec, connection, *last),
        EngineError::Upstream {
            class,
            status,
            message,
            retry_after,
        } => match class {
            ErrorClass::RateLimited => ApiError::ProviderRateLimited {
                provider,
                retry_after_secs: retry_after.map_or(1, |d| d.as_secs().max(1)),
            },
            ErrorClass::Auth => ApiError::NeedsReauth {
                connection_id: connection.to_string(),
                reason: format!("{provider} refused its credentials (HTTP {status})"),
            },
            ErrorClass::Transient | ErrorClass::Config => ApiError::ProviderFailed {
                provider,
                detail: format!("HTTP {status}"),
            },
            ErrorClass::NotFound | ErrorClass::Permanent => ApiError::ProviderRejected {
                provider,
                status,
                message,
            },
        },
        EngineError::Timeout(_) => ApiError::ProviderTimeout { provider },
        EngineError::Spec { .. } | EngineError::Template { .. } => {
            tracing::error!(provider = %spec.id, error = %e, "a provider spec could not be used");
            ApiError::Internal
        }
        other => ApiError::ProviderFailed {
            provider,
            detail: other.to_string(),
        },
    }
}
