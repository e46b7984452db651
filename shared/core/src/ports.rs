//! Ports: what the domain needs from the outside world. The AWS adapters in `tributary-aws` implement
//! them over DynamoDB, SQS and Secrets Manager; tests implement them in memory.
//!
//! Futures are `Send` so handlers can run them on the multi-threaded Lambda runtime.

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use crate::action::{ActionEvent, ActionRun};
use crate::canary::CanaryObservation;
use crate::connect::{ConnectSession, OAuthFlow};
use crate::connection::{Connection, ConnectionEvent, ConnectionFilter};
use crate::dashboard::DashboardGrant;
use crate::error::PortError;
use crate::ids::{
    ActionRunId, ApiKeyId, ConnectionId, EndpointId, InboundId, IntegrationId, IssuerId, JobId,
    MessageId, OperationId, SyncId, SyncRunId, TenantId,
};
use crate::inbound::{InboundEvent, ProviderEvent};
use crate::integration::Integration;
use crate::job::JobEnvelope;
use crate::operation::{Operation, OperationFilter, SyncDayStats, UsageCounts, UsageKey, UsageRow};
use crate::outbound::{
    DeliveryAttempt, MessageState, OutboxEvent, WebhookEndpoint, WebhookMessage,
};
use crate::pagination::{Page, PageRequest};
use crate::sync::{SyncConfig, SyncEvent, SyncFilter, SyncRun};
use crate::tenancy::{ApiKeyRecord, AuditEvent, IssuerCreated, OidcIssuer, PurgeProgress, Tenant};
use crate::time::EpochMillis;

/// Sends jobs to the jobs queue.
pub trait JobQueue: Send + Sync {
    /// Sends one job, visible after `delay` (at most 15 minutes, the SQS limit).
    fn send(
        &self,
        job: &JobEnvelope,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Sends many jobs, in as few requests as the queue's limits allow. Either every job is accepted or
    /// an error is returned; a retried call may send some jobs twice, which consumers tolerate because
    /// they are idempotent on the job id.
    fn send_batch(
        &self,
        jobs: &[JobEnvelope],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Makes a received message visible again after `delay` (a retry with backoff).
    fn retry_after(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages not yet visible because of a delay.
    pub delayed: u64,
}

/// Reads a queue's depth.
pub trait QueueStats: Send + Sync {
    /// The queue's approximate depth (SQS counts are approximate by design).
    fn depth(&self) -> impl Future<Output = Result<QueueDepth, PortError>> + Send;
}

/// Stores the pipeline canary's observations.
pub trait CanaryStore: Send + Sync {
    /// Records a processed canary, unless a newer one (by enqueue time) is already recorded: redelivered
    /// or out-of-order canaries never move the observation backwards.
    fn record(
        &self,
        observation: &CanaryObservation,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The newest recorded canary, if any.
    fn latest(&self) -> impl Future<Output = Result<Option<CanaryObservation>, PortError>> + Send;
}

/// Remembers which jobs completed, so a redelivered message does not run its job twice.
pub trait JobLedger: Send + Sync {
    /// Whether the job already completed.
    fn is_done(&self, id: &JobId) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Records that the job completed; the record expires after `keep`.
    fn mark_done(
        &self,
        id: &JobId,
        keep: Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Reads platform secrets (the admin API key, the keyring).
pub trait SecretSource: Send + Sync {
    /// The current value of the secret `id`.
    fn secret(&self, id: &str) -> impl Future<Output = Result<SecretString, PortError>> + Send;
}

impl<T: SecretSource + ?Sized> SecretSource for std::sync::Arc<T> {
    fn secret(&self, id: &str) -> impl Future<Output = Result<SecretString, PortError>> + Send {
        (**self).secret(id)
    }
}

/// Stores tenants.
pub trait TenantStore: Send + Sync {
    /// Creates a tenant; [`PortError::Conflict`] when the id exists.
    fn create_tenant(&self, tenant: &Tenant) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant, if it exists.
    fn get_tenant(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Tenant>, PortError>> + Send;
    /// Tenants in id order.
    fn list_tenants(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Tenant>, PortError>> + Send;
    /// Replaces an existing tenant whose stored version is `expected_version`, storing
    /// `tenant.version`; `false` when it does not exist, [`PortError::Conflict`] when another write
    /// changed it since it was read.
    fn update_tenant(
        &self,
        tenant: &Tenant,
        expected_version: u64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes one batch of what the deleting tenant owns: keys (with their lookup items), issuer
    /// registrations (with their (issuer, audience) items) and counters. Audit events are kept and
    /// expire `audit_expires_at_s` (epoch seconds). Once nothing else remains the tenant item itself is
    /// removed and [`PurgeProgress::Done`] returned. Safe to call again after any failure: each batch
    /// is removed idempotently. Call only for a tenant whose status is `deleting`.
    fn purge_tenant(
        &self,
        id: &TenantId,
        audit_expires_at_s: i64,
    ) -> impl Future<Output = Result<PurgeProgress, PortError>> + Send;
}

/// Stores API keys, registered issuers and the audit trail. Every change to a credential is written
/// atomically with its audit event.
pub trait CredentialStore: Send + Sync {
    /// Stores a new key.
    fn create_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The key with this id, whatever its tenant (the authorizer's lookup).
    fn get_key(
        &self,
        id: &ApiKeyId,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, PortError>> + Send;
    /// The tenant's keys, newest last.
    fn list_keys(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ApiKeyRecord>, PortError>> + Send;
    /// Revokes the tenant's key; `None` when the tenant has no such key. Revoking twice keeps the
    /// first revocation time.
    fn revoke_key(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        at_ms: EpochMillis,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, PortError>> + Send;
    /// Registers an issuer, atomically with its (issuer, audience) item — which makes the pair unique
    /// across tenants even under concurrent registrations — and within the tenant's limit of
    /// `max_per_tenant` registrations.
    fn create_issuer(
        &self,
        issuer: &OidcIssuer,
        audit: &AuditEvent,
        max_per_tenant: u32,
    ) -> impl Future<Output = Result<IssuerCreated, PortError>> + Send;
    /// The tenant's issuer.
    fn get_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
    ) -> impl Future<Output = Result<Option<OidcIssuer>, PortError>> + Send;
    /// The tenant's issuers.
    fn list_issuers(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<OidcIssuer>, PortError>> + Send;
    /// Removes the tenant's issuer; `false` when it does not exist.
    fn delete_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The registration of this exact (`iss`, `aud`) pair, whatever its tenant (the authorizer's
    /// lookup: one read).
    fn issuer_registration(
        &self,
        issuer: &str,
        audience: &str,
    ) -> impl Future<Output = Result<Option<OidcIssuer>, PortError>> + Send;
    /// The tenant's audit events, oldest first.
    fn list_audit(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<AuditEvent>, PortError>> + Send;
}

/// Stores integrations. Every change is written atomically with its audit event.
pub trait IntegrationStore: Send + Sync {
    /// Stores a new integration.
    fn create_integration(
        &self,
        integration: &Integration,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's integration.
    fn get_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
    ) -> impl Future<Output = Result<Option<Integration>, PortError>> + Send;
    /// The tenant's integrations, oldest first.
    fn list_integrations(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Integration>, PortError>> + Send;
    /// Replaces the tenant's integration whose stored version is `expected_version`, storing
    /// `integration.version`; `false` when it does not exist, [`PortError::Conflict`] when another
    /// write changed it since it was read.
    fn update_integration(
        &self,
        integration: &Integration,
        expected_version: u64,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes the tenant's integration; `false` when it does not exist.
    fn delete_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The tenant of the integration `id`, whatever it is (the public webhook route knows only
    /// the integration id): one read of a pointer written with the integration and removed with
    /// it.
    fn integration_tenant(
        &self,
        id: &IntegrationId,
    ) -> impl Future<Output = Result<Option<TenantId>, PortError>> + Send;
}

/// Stores verified provider webhooks ([`crate::inbound`]), their replay markers and the provider
/// events they forward.
pub trait InboundStore: Send + Sync {
    /// Records a delivery with, when it carries a provider event id, that id's replay marker (per
    /// integration), in one write on the condition that the marker does not exist: `false`, and
    /// nothing written, when the id was recorded before (a replay). Both expire after
    /// [`crate::inbound::INBOUND_RETENTION_SECS`].
    fn record_inbound(
        &self,
        inbound: &InboundEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes a delivery and its replay marker: its job could not be queued, so the provider's
    /// retry must be taken as new.
    fn forget_inbound(
        &self,
        inbound: &InboundEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's delivery (`None` once expired).
    fn get_inbound(
        &self,
        tenant: &TenantId,
        id: &InboundId,
    ) -> impl Future<Output = Result<Option<InboundEvent>, PortError>> + Send;
    /// Replaces the delivery whose stored version is `expected_version`; `false` when it does not
    /// exist, [`PortError::Conflict`] when another write changed it.
    fn update_inbound(
        &self,
        inbound: &InboundEvent,
        expected_version: u64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Records a forwarded provider event, in the event outbox, unless one with its id exists:
    /// `false` when it was recorded before.
    fn record_provider_event(
        &self,
        event: &ProviderEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// What a refresh's write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSwap {
    /// Written, and the lease released.
    Swapped,
    /// The lease was no longer the writer's: nothing written.
    LeaseLost,
}

/// Stores connections and their events. Every change is written atomically with the event it
/// records (and, for creation and deletion, its audit event).
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection.
    fn create_connection(
        &self,
        connection: &Connection,
        event: &ConnectionEvent,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's connection.
    fn get_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<Connection>, PortError>> + Send;
    /// The tenant's connections that pass `filter`, oldest first. A page may hold fewer than
    /// `page.limit` items (even none) and still have a next one: the filter is applied as the
    /// partition is read, and one call reads a bounded number of items.
    fn list_connections(
        &self,
        tenant: &TenantId,
        filter: &ConnectionFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Connection>, PortError>> + Send;
    /// Replaces the tenant's connection whose stored version is `expected_version`, with `event`
    /// when it records something; `false` when it does not exist, [`PortError::Conflict`] when
    /// another write changed it since it was read.
    fn update_connection(
        &self,
        connection: &Connection,
        expected_version: u64,
        event: Option<&ConnectionEvent>,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes the tenant's connection and its sealed credentials; `false` when it does not exist.
    fn delete_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        event: &ConnectionEvent,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Takes the connection's refresh lease for `holder` until `until_ms`, if nobody holds it (or
    /// the lease expired by `now_ms`); `false` when someone else holds it or the connection is gone.
    /// The lease is kept by every other write, so that exactly one refresh runs at a time.
    fn lease_refresh(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Writes `connection` (refreshed tokens, or a refresh's definitive failure) and releases the
    /// lease, if `holder` still holds it and the stored version is `expected_version`:
    /// [`RefreshSwap::LeaseLost`] when the lease is no longer `holder`'s (or the connection is gone),
    /// [`PortError::Conflict`] when another write changed it since it was read.
    fn swap_refreshed(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
        event: &ConnectionEvent,
    ) -> impl Future<Output = Result<RefreshSwap, PortError>> + Send;
    /// Gives the lease back if `holder` holds it (a refresh that found nothing to do, or failed for
    /// now).
    fn release_refresh(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's connection events, oldest first.
    fn list_connection_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ConnectionEvent>, PortError>> + Send;
}

/// A connection whose idle refresh is due ([`Connection::idle_refresh_due_ms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRefresh {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The connection.
    pub connection_id: ConnectionId,
    /// When it was due (as indexed).
    pub due_ms: EpochMillis,
}

/// The index of connections by when their idle refresh is due, which the monitor reads.
pub trait RefreshSchedule: Send + Sync {
    /// Up to `limit` connections whose idle refresh was due at or before `now_ms`.
    fn due_refreshes(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueRefresh>, PortError>> + Send;
    /// Moves a due connection's next attempt to `next_ms` if it is still due at `due.due_ms`, so
    /// that a job in flight is not enqueued again on every tick and a refresh that failed is tried
    /// again later; `false` when something changed it meanwhile (or it is gone).
    fn postpone_refresh(
        &self,
        due: &DueRefresh,
        next_ms: EpochMillis,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// Stores connect sessions and OAuth flows, both found by a token's hash and kept until a while
/// after they expire.
pub trait ConnectStore: Send + Sync {
    /// Stores a new session.
    fn create_session(
        &self,
        session: &ConnectSession,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The session whose token has this hash.
    fn session(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<ConnectSession>, PortError>> + Send;
    /// Marks the session completed with `connection`, if it is not yet: `false` when another
    /// request completed it first (or it is gone). Exactly one caller wins.
    fn complete_session(
        &self,
        token_hash: &str,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Stores a flow.
    fn put_flow(&self, flow: &OAuthFlow) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Removes and returns the flow whose `state` has this hash: of concurrent callers, one gets
    /// it, the others `None`.
    fn take_flow(
        &self,
        state_hash: &str,
    ) -> impl Future<Output = Result<Option<OAuthFlow>, PortError>> + Send;
}

/// A response kept for idempotent replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// What starting an idempotent request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use of the key: go ahead, then complete or abandon.
    Started,
    /// The key completed before with the same request: answer with this.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// The same request is being processed right now.
    InProgress,
}

/// Remembers `Idempotency-Key`s and their responses for a while (24 h).
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` within `scope` (a tenant, or the deployment admin) for a request with the given
    /// fingerprint. A claim left pending longer than `lease` (a crashed request) may be taken over.
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now_ms: EpochMillis,
        lease: Duration,
        keep: Duration,
    ) -> impl Future<Output = Result<IdempotencyBegin, PortError>> + Send;

    /// Stores the response of a claimed key.
    fn complete(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Releases a claimed key without a response (the request failed on our side; a retry may run).
    fn abandon(&self, scope: &str, key: &str)
    -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Counts requests per bucket and time window, shared across execution environments.
pub trait RateCounter: Send + Sync {
    /// Adds `amount` to the bucket's count for `window` and returns the new count. The counter
    /// expires after `keep`.
    fn add(
        &self,
        bucket: &str,
        window: i64,
        amount: u32,
        keep: Duration,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;
}

/// Stores syncs, their runs and their events.
pub trait SyncStore: Send + Sync {
    /// Stores a new sync, claiming its (connection, model): [`PortError::Conflict`] when another
    /// sync of the tenant writes that model of that connection.
    fn create_sync(
        &self,
        sync: &SyncConfig,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's sync.
    fn get_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
    ) -> impl Future<Output = Result<Option<SyncConfig>, PortError>> + Send;
    /// The tenant's syncs that pass `filter`, oldest first (a page may hold fewer than the limit
    /// and still have a next one).
    fn list_syncs(
        &self,
        tenant: &TenantId,
        filter: &SyncFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<SyncConfig>, PortError>> + Send;
    /// Replaces the sync whose stored version is `expected_version` (its run lease is kept);
    /// `false` when it does not exist, [`PortError::Conflict`] when another write changed it.
    fn update_sync(
        &self,
        sync: &SyncConfig,
        expected_version: u64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes the sync, its (connection, model) claim and its runs; `false` when it does not
    /// exist. Its records are removed before (see [`crate::records::RecordStore::purge`]).
    fn delete_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Takes the sync's run lease for `holder` until `until_ms` if nobody holds it (or it expired
    /// by `now_ms`): one run of a sync executes at a time. `false` when held or the sync is gone.
    fn lease_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Gives the run lease back if `holder` holds it.
    fn release_sync(
        &self,
        tenant: &TenantId,
        id: &SyncId,
        holder: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stores a new run.
    fn create_run(&self, run: &SyncRun) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The sync's run.
    fn get_run(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        id: &SyncRunId,
    ) -> impl Future<Output = Result<Option<SyncRun>, PortError>> + Send;
    /// The sync's runs, newest first.
    fn list_runs(
        &self,
        tenant: &TenantId,
        sync: &SyncId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<SyncRun>, PortError>> + Send;
    /// Replaces the run whose stored version is `expected_version`; `false` when it does not
    /// exist, [`PortError::Conflict`] when another write changed it.
    fn update_run(
        &self,
        run: &SyncRun,
        expected_version: u64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Records a sync event (kept for the tenant's webhooks).
    fn record_sync_event(
        &self,
        event: &SyncEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's sync events, oldest first.
    fn list_sync_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<SyncEvent>, PortError>> + Send;
}

/// Stores action runs and their completion events.
pub trait ActionStore: Send + Sync {
    /// Stores a new run.
    fn create_action_run(
        &self,
        run: &ActionRun,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's run.
    fn get_action_run(
        &self,
        tenant: &TenantId,
        id: &ActionRunId,
    ) -> impl Future<Output = Result<Option<ActionRun>, PortError>> + Send;
    /// Replaces the run whose stored version is `expected_version`, with the completion `event`
    /// when it ends (in one write); `false` when it does not exist, [`PortError::Conflict`] when
    /// another write changed it since it was read.
    fn update_action_run(
        &self,
        run: &ActionRun,
        expected_version: u64,
        event: Option<&ActionEvent>,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The tenant's action events, oldest first.
    fn list_action_events(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ActionEvent>, PortError>> + Send;
}

/// How many partitions the outbox index spreads events over.
pub const OUTBOX_SHARDS: u32 = 4;

/// Events waiting to be made into messages for their tenant's webhook endpoints. An event enters
/// the outbox in the same write that records it (a transactional outbox: no event is lost between
/// what happened and its webhooks), and leaves it once its messages exist.
pub trait EventOutbox: Send + Sync {
    /// Up to `limit` events waiting in `shard` (of [`OUTBOX_SHARDS`]), oldest first.
    fn pending_events(
        &self,
        shard: u32,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEvent>, PortError>> + Send;
    /// Takes the event out of the outbox.
    fn clear_outbox(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Which messages a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this endpoint's.
    pub endpoint_id: Option<EndpointId>,
    /// Only in this state.
    pub state: Option<MessageState>,
}

/// Stores webhook endpoints, their messages and the messages' attempts.
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint.
    fn create_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's endpoint.
    fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>, PortError>> + Send;
    /// The tenant's endpoints, oldest first.
    fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<WebhookEndpoint>, PortError>> + Send;
    /// Replaces the endpoint whose stored version is `expected_version`; `false` when it does not
    /// exist, [`PortError::Conflict`] when another write changed it.
    fn update_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected_version: u64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Replaces the endpoint (now disabled) whose stored version is `expected_version`, with
    /// `event` recorded (and put in the outbox) in the same write; `false` when it does not exist,
    /// [`PortError::Conflict`] when another write changed it.
    fn disable_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected_version: u64,
        event: &crate::outbound::EndpointEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Removes the endpoint (its messages expire); `false` when it does not exist.
    fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        audit: &AuditEvent,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Stores a new message; `false` when a message with its id exists (it was made before).
    fn create_message(
        &self,
        message: &WebhookMessage,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The tenant's message.
    fn get_message(
        &self,
        tenant: &TenantId,
        id: &MessageId,
    ) -> impl Future<Output = Result<Option<WebhookMessage>, PortError>> + Send;
    /// The tenant's messages that pass `filter`, newest first (a page may hold fewer than the
    /// limit and still have a next one).
    fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<WebhookMessage>, PortError>> + Send;
    /// Replaces the message whose stored version is `expected_version`, with the attempt that
    /// changed it, in one write; `false` when it does not exist, [`PortError::Conflict`] when
    /// another write changed it.
    fn update_message(
        &self,
        message: &WebhookMessage,
        expected_version: u64,
        attempt: Option<&DeliveryAttempt>,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// The message's attempts, oldest first.
    fn list_attempts(
        &self,
        tenant: &TenantId,
        message: &MessageId,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<DeliveryAttempt>, PortError>> + Send;
}

/// A sync whose next run is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSync {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The sync.
    pub sync_id: SyncId,
    /// When it was due (as indexed).
    pub due_ms: EpochMillis,
}

/// How many partitions the index of runs in progress spreads them over.
pub const ACTIVE_RUN_SHARDS: u32 = 4;

/// A run in progress that has not been saved since `active_at_ms` (see
/// [`crate::sync::SyncRun::active_at_ms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleRun {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its sync.
    pub sync_id: SyncId,
    /// The run.
    pub run_id: SyncRunId,
    /// When it was last saved (as indexed).
    pub active_at_ms: EpochMillis,
}

/// The indexes of active syncs by next run time and of runs in progress by last save, which the
/// monitor reads.
pub trait SyncSchedule: Send + Sync {
    /// Up to `limit` syncs due at or before `now_ms`.
    fn due_syncs(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueSync>, PortError>> + Send;
    /// Moves a due sync's next run to `next_ms` if it is still due at `due.due_ms` (so that two
    /// overlapping ticks do not both start it); `false` when something changed it meanwhile.
    fn reschedule_sync(
        &self,
        due: &DueSync,
        next_ms: EpochMillis,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Up to `limit` runs of `shard` (of [`ACTIVE_RUN_SHARDS`]) that are not over and were last
    /// saved before `before_ms`, oldest first. The index may lag a write by a moment: a run read
    /// here may have ended or moved since.
    fn idle_runs(
        &self,
        shard: u32,
        before_ms: EpochMillis,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<IdleRun>, PortError>> + Send;
}

/// The operations log, the usage counters and the per-sync day counters insights read.
pub trait OperationLog: Send + Sync {
    /// Writes a finished operation (kept `retention_days`), adds its usage to its tenant's counters
    /// and, for a sync run, its day's counters: a few writes per operation, however many requests
    /// and records it holds. Writing it again (a redelivered job) replaces the operation; the
    /// counters then count it twice, which the caller avoids by deriving the operation's id.
    fn record_operation(
        &self,
        op: &Operation,
        retention_days: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// A page of the tenant's operations passing `filter`, newest first.
    fn list_operations(
        &self,
        tenant: &TenantId,
        filter: &OperationFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Operation>, PortError>> + Send;
    /// One of the tenant's operations.
    fn get_operation(
        &self,
        tenant: &TenantId,
        id: &OperationId,
    ) -> impl Future<Output = Result<Option<Operation>, PortError>> + Send;
    /// Adds `counts` to the tenant's counters under `key` (one atomic write).
    fn add_usage(
        &self,
        tenant: &TenantId,
        key: &UsageKey,
        counts: &UsageCounts,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tenant's usage rows of the days `from_day` to `to_day` (`YYYY-MM-DD`, both included).
    fn list_usage(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> impl Future<Output = Result<Vec<UsageRow>, PortError>> + Send;
    /// The tenant's per-sync day counters of the days `from_day` to `to_day` (both included).
    fn list_sync_stats(
        &self,
        tenant: &TenantId,
        from_day: &str,
        to_day: &str,
    ) -> impl Future<Output = Result<Vec<SyncDayStats>, PortError>> + Send;
}

/// Dashboard links and sessions, stored under their tokens' hashes.
pub trait DashboardStore: Send + Sync {
    /// Stores a grant.
    fn put_dashboard_grant(
        &self,
        grant: &DashboardGrant,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Removes and returns the grant with this token hash: of concurrent callers, one gets it.
    fn take_dashboard_grant(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<DashboardGrant>, PortError>> + Send;
    /// The grant with this token hash.
    fn dashboard_grant(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<DashboardGrant>, PortError>> + Send;
}
