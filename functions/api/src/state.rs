//! What the API is built from (the ports and settings `main` wires once at cold start) and the
//! router's state, from which each handler extracts only what it uses: the store, the records
//! table, the jobs queue, the clock, the settings, the health probe.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tributary_core::ports::{
    ActionStore, CanaryStore, ConnectStore, ConnectionStore, CredentialStore, DashboardStore,
    IdempotencyStore, InboundStore, IntegrationStore, JobQueue, OperationLog, QueueStats,
    RateCounter, SyncStore, TenantStore, WebhookStore,
};
use tributary_core::records::RecordStore;
use tributary_core::time;
use tributary_core::vault::{KeyringSource, Vault};
use tributary_engine::Engine;

use crate::config::Config;
use crate::ratelimit::RateLimit;
use crate::routes::health::HealthProbe;

/// Everything the API's store must offer: the control plane's ports and, for the records table
/// (the same adapter type over another table), the records and their change feeds.
pub trait ControlStore:
    CanaryStore
    + TenantStore
    + CredentialStore
    + IntegrationStore
    + ConnectionStore
    + ConnectStore
    + IdempotencyStore
    + RateCounter
    + SyncStore
    + RecordStore
    + ActionStore
    + WebhookStore
    + InboundStore
    + OperationLog
    + DashboardStore
    + 'static
{
}
impl<T> ControlStore for T where
    T: CanaryStore
        + TenantStore
        + CredentialStore
        + IntegrationStore
        + ConnectionStore
        + ConnectStore
        + IdempotencyStore
        + RateCounter
        + SyncStore
        + RecordStore
        + ActionStore
        + WebhookStore
        + InboundStore
        + OperationLog
        + DashboardStore
        + 'static
{
}

/// What the API needs of the jobs queue: its depth (health) and sending jobs (sync runs and
/// purges).
pub trait JobsQueue: QueueStats + JobQueue + 'static {}
impl<T> JobsQueue for T where T: QueueStats + JobQueue + 'static {}

/// The ports and settings the API runs on.
pub struct Deps<S, Q> {
    /// The control-plane store.
    pub store: S,
    /// The records table (records and their change feeds).
    pub records: S,
    /// The jobs queue.
    pub jobs_queue: Q,
    /// The jobs dead-letter queue.
    pub dead_letter_queue: Q,
    /// The credential vault's keyring.
    pub keyring: Arc<dyn KeyringSource>,
    /// Requests to providers (verifying a connection's credentials).
    pub engine: Engine,
    /// The time source.
    pub clock: Arc<dyn time::Clock>,
    /// Settings.
    pub config: Config,
}

/// The router's state: the ports, and what this execution environment caches (rate-limit leases,
/// tenants' limits, the last health report).
pub struct AppState<S, Q> {
    pub(crate) store: Arc<S>,
    pub(crate) records: Arc<S>,
    pub(crate) jobs: Arc<Q>,
    pub(crate) clock: Arc<dyn time::Clock>,
    pub(crate) vault: Vault,
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<Config>,
    pub(crate) rate_limit: Arc<RateLimit>,
    pub(crate) api_calls: Arc<crate::oplog::ApiCalls>,
    pub(crate) health: Arc<HealthProbe<S, Q>>,
}

impl<S, Q> Clone for AppState<S, Q> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            records: self.records.clone(),
            jobs: self.jobs.clone(),
            clock: self.clock.clone(),
            vault: self.vault.clone(),
            engine: self.engine.clone(),
            config: self.config.clone(),
            rate_limit: self.rate_limit.clone(),
            api_calls: self.api_calls.clone(),
            health: self.health.clone(),
        }
    }
}

impl<S, Q> AppState<S, Q> {
    /// The state over `deps`.
    pub fn new(deps: Deps<S, Q>) -> Self {
        let store = Arc::new(deps.store);
        let jobs = Arc::new(deps.jobs_queue);
        let config = Arc::new(deps.config);
        Self {
            health: Arc::new(HealthProbe::new(
                store.clone(),
                jobs.clone(),
                deps.dead_letter_queue,
                deps.clock.clone(),
                config.clone(),
            )),
            store,
            records: Arc::new(deps.records),
            jobs,
            clock: deps.clock,
            vault: Vault::new(deps.keyring),
            engine: Arc::new(deps.engine),
            config,
            rate_limit: Arc::default(),
            api_calls: Arc::default(),
        }
    }
}

/// Implements an extractor that clones one part of the state.
macro_rules! part_of_state {
    ($(#[$doc:meta])* $name:ident $(<$param:ident>)? ($inner:ty) = $field:ident) => {
        $(#[$doc])*
        pub struct $name $(<$param>)? (pub $inner);

        impl<S, Q> FromRequestParts<AppState<S, Q>> for $name $(<$param>)?
        where
            S: Send + Sync,
            Q: Send + Sync,
        {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                _: &mut Parts,
                state: &AppState<S, Q>,
            ) -> Result<Self, Self::Rejection> {
                Ok(Self(state.$field.clone()))
            }
        }
    };
}

part_of_state!(
    /// The control-plane store.
    Store<S>(Arc<S>) = store
);
part_of_state!(
    /// The records table.
    Records<S>(Arc<S>) = records
);
part_of_state!(
    /// The jobs queue.
    Jobs<Q>(Arc<Q>) = jobs
);
part_of_state!(
    /// The time source.
    Clock(Arc<dyn time::Clock>) = clock
);
part_of_state!(
    /// The credential vault.
    Secrets(Vault) = vault
);
part_of_state!(
    /// Requests to providers.
    Providers(Arc<Engine>) = engine
);
part_of_state!(
    /// The settings.
    Settings(Arc<Config>) = config
);

impl<S> Deref for Store<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.0
    }
}

impl<S> Deref for Records<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.0
    }
}

impl<Q> Deref for Jobs<Q> {
    type Target = Q;
    fn deref(&self) -> &Q {
        &self.0
    }
}

impl Deref for Clock {
    type Target = dyn time::Clock;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl Deref for Secrets {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.0
    }
}

impl Deref for Providers {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.0
    }
}

impl Deref for Settings {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.0
    }
}
