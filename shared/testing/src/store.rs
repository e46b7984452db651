//! [`MemStore`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tributary_core::PortError;
use tributary_core::canary::CanaryObservation;
use tributary_core::connect::{ConnectSession, OAuthFlow};
use tributary_core::connection::{Connection, ConnectionEvent, ConnectionFilter};
use tributary_core::error::Service;
use tributary_core::ids::ConnectionId;
use tributary_core::ids::{ApiKeyId, IntegrationId, IssuerId, JobId, TenantId};
use tributary_core::integration::Integration;
use tributary_core::pagination::{MAX_LIMIT, Page, PageRequest};
use tributary_core::ports::{
    CanaryStore, ConnectStore, ConnectionStore, CredentialStore, DueRefresh, IdempotencyBegin,
    IdempotencyStore, IntegrationStore, JobLedger, RateCounter, RefreshSchedule, RefreshSwap,
    StoredResponse, TenantStore,
};
use tributary_core::tenancy::{
    ApiKeyRecord, AuditEvent, IssuerCreated, OidcIssuer, PurgeProgress, Tenant, TenantStatus,
};
use tributary_core::time::{Clock, EpochMillis, SystemClock};

use crate::calls::Calls;

/// Items of a deleting tenant's partition that one [`TenantStore::purge_tenant`] step reads (and
/// removes or keeps), as the DynamoDB adapter does; [`MemStore::with_purge_batch`] changes it.
pub const PURGE_BATCH: usize = 25;

const METHODS: &[&str] = &[
    // CanaryStore
    "record",
    "latest",
    // JobLedger
    "is_done",
    "mark_done",
    // TenantStore
    "create_tenant",
    "get_tenant",
    "list_tenants",
    "update_tenant",
    "purge_tenant",
    // CredentialStore
    "create_key",
    "get_key",
    "list_keys",
    "revoke_key",
    "create_issuer",
    "get_issuer",
    "list_issuers",
    "delete_issuer",
    "issuer_registration",
    "list_audit",
    // IntegrationStore
    "create_integration",
    "get_integration",
    "list_integrations",
    "update_integration",
    "delete_integration",
    "integration_tenant",
    // InboundStore
    "record_inbound",
    "forget_inbound",
    "get_inbound",
    "update_inbound",
    "record_provider_event",
    // ConnectionStore
    "create_connection",
    "get_connection",
    "list_connections",
    "update_connection",
    "delete_connection",
    "list_connection_events",
    "lease_refresh",
    "swap_refreshed",
    "release_refresh",
    // RefreshSchedule
    "due_refreshes",
    "postpone_refresh",
    // ConnectStore
    "create_session",
    "session",
    "complete_session",
    "put_flow",
    "take_flow",
    // IdempotencyStore
    "begin",
    "complete",
    "abandon",
    // RateCounter
    "add",
    // ActionStore
    "create_action_run",
    "get_action_run",
    "update_action_run",
    "list_action_events",
    // EventOutbox
    "pending_events",
    "clear_outbox",
    // WebhookStore
    "create_endpoint",
    "get_endpoint",
    "list_endpoints",
    "update_endpoint",
    "disable_endpoint",
    "delete_endpoint",
    "create_message",
    "get_message",
    "list_messages",
    // OperationLog
    "record_operation",
    "list_operations",
    "get_operation",
    "add_usage",
    "list_usage",
    "list_sync_stats",
    // DashboardStore
    "put_dashboard_grant",
    "take_dashboard_grant",
    "dashboard_grant",
    "update_message",
    "list_attempts",
    // SyncStore
    "create_sync",
    "get_sync",
    "list_syncs",
    "update_sync",
    "delete_sync",
    "lease_sync",
    "release_sync",
    "create_run",
    "get_run",
    "list_runs",
    "update_run",
    "record_sync_event",
    "list_sync_events",
    // SyncSchedule
    "due_syncs",
    "reschedule_sync",
    "idle_runs",
    // RecordStore
    "record_meta",
    "put_records",
    "commit_page",
    "last_page",
    "pages_after",
    "get_records",
    "record_ids",
    "put_seen",
    "seen",
    "purge",
];

/// Sort-key prefixes of the tenant's lists, as the adapter writes them: list positions (the
/// `after` of a [`PageRequest`]) are these sort keys.
const KEY_SK: &str = "APIKEY#";
const ISSUER_SK: &str = "ISSUER#";
const AUDIT_SK: &str = "AUDIT#";
const INTEGRATION_SK: &str = "INTEGRATION#";
const CONNECTION_SK: &str = "CONN#";
const EVENT_SK: &str = "CONNEVENT#";
const ISSUER_COUNT_SK: &str = "ISSUERCOUNT";

/// An idempotency key's item.
#[derive(Debug, Clone)]
struct Claim {
    fingerprint: String,
    response: Option<StoredResponse>,
    lease_until_s: i64,
    expires_at_s: i64,
}

/// The control table's items, by kind.
#[derive(Debug, Default)]
struct Tables {
    canary: Option<CanaryObservation>,
    /// Every observation `record` was called with and answered `Ok`.
    canary_log: Vec<CanaryObservation>,
    /// Completed jobs and when their record expires (epoch seconds).
    done: BTreeMap<JobId, i64>,
    tenants: BTreeMap<String, Tenant>,
    keys: BTreeMap<String, ApiKeyRecord>,
    issuers: BTreeMap<String, OidcIssuer>,
    /// Tenants whose partition holds the issuer-count item.
    issuer_counters: BTreeSet<TenantId>,
    audit: BTreeMap<String, AuditEvent>,
    integrations: BTreeMap<String, Integration>,
    connections: BTreeMap<String, Connection>,
    /// Connection events (they expire, so a tenant's deletion leaves them, as in the adapter).
    events: BTreeMap<String, ConnectionEvent>,
    /// Refresh leases by connection id: (holder, until).
    leases: HashMap<String, (String, EpochMillis)>,
    /// Idle-refresh due times the monitor postponed, by connection id: like the adapter's index
    /// attribute, replaced by the connection's own due time on its next write.
    postponed: HashMap<String, EpochMillis>,
    /// Connect sessions by token hash.
    sessions: HashMap<String, ConnectSession>,
    /// OAuth flows by state hash.
    flows: HashMap<String, OAuthFlow>,
    /// Audit events kept after their tenant's deletion, with their expiry (epoch seconds).
    kept_audit: HashMap<String, i64>,
    idempotency: HashMap<(String, String), Claim>,
    rates: HashMap<(String, i64), u64>,
    /// Syncs, runs, leases, events and the records table (`store/syncs.rs`).
    syncs: syncs::SyncTables,
    /// Action runs and their events (`store/actions.rs`).
    actions: actions::ActionTables,
    /// Webhook endpoints, messages, attempts and the outbox (`store/webhooks.rs`).
    webhooks: webhooks::WebhookTables,
    /// Inbound provider webhooks, replay markers and provider events (`store/inbound.rs`).
    inbound: inbound::InboundTables,
    /// The operations log, usage, per-sync day counters and dashboard grants
    /// (`store/operations.rs`).
    ops: operations::OperationTables,
}

/// What a tenant's partition holds, in sort-key order (what the adapter's purge walks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Owned {
    Key(String),
    Audit(String),
    Issuer(String),
    Integration(String),
    Connection(String),
    /// A sync, with its (connection, model) claim and its runs (as the adapter removes them).
    Sync(String),
    /// An action run.
    ActionRun(String),
    /// A webhook endpoint, with its messages.
    Endpoint(String),
    IssuerCount,
}

impl Tables {
    fn partition(&self, tenant: &TenantId) -> BTreeMap<String, Owned> {
        let mut items = BTreeMap::new();
        for (id, k) in &self.keys {
            if k.tenant_id == *tenant {
                items.insert(format!("{KEY_SK}{id}"), Owned::Key(id.clone()));
            }
        }
        for (id, o) in &self.issuers {
            if o.tenant_id == *tenant {
                items.insert(format!("{ISSUER_SK}{id}"), Owned::Issuer(id.clone()));
            }
        }
        for (id, e) in &self.audit {
            if e.tenant_id == *tenant {
                items.insert(format!("{AUDIT_SK}{id}"), Owned::Audit(id.clone()));
            }
        }
        for (id, i) in &self.integrations {
            if i.tenant_id == *tenant {
                items.insert(
                    format!("{INTEGRATION_SK}{id}"),
                    Owned::Integration(id.clone()),
                );
            }
        }
        for (id, c) in &self.connections {
            if c.tenant_id == *tenant {
                items.insert(
                    format!("{CONNECTION_SK}{id}"),
                    Owned::Connection(id.clone()),
                );
            }
        }
        for id in self.syncs.ids_of(tenant) {
            items.insert(format!("SYNC#{id}"), Owned::Sync(id));
        }
        for id in self.webhooks.ids_of(tenant) {
            items.insert(
                format!("{}{id}", webhooks::ENDPOINT_SK),
                Owned::Endpoint(id),
            );
        }
        for id in self.actions.ids_of(tenant) {
            items.insert(
                format!("{}{id}", actions::ACTION_RUN_SK),
                Owned::ActionRun(id),
            );
        }
        if self.issuer_counters.contains(tenant) {
            items.insert(ISSUER_COUNT_SK.to_owned(), Owned::IssuerCount);
        }
        items
    }

    fn pair_holder(&self, issuer: &str, audience: &str) -> Option<&OidcIssuer> {
        self.issuers
            .values()
            .find(|o| o.issuer == issuer && o.audience == audience)
    }
}

/// Fault switches and settings, shared by every clone of a store.
#[derive(Debug)]
struct Knobs {
    failing: AtomicBool,
    /// Fails the operations log's writes only.
    oplog_failing: AtomicBool,
    slow_canary: AtomicBool,
    read_only: AtomicBool,
    purge_batch: AtomicUsize,
    calls: Calls,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            failing: AtomicBool::new(false),
            oplog_failing: AtomicBool::new(false),
            slow_canary: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            purge_batch: AtomicUsize::new(PURGE_BATCH),
            calls: Calls::new("MemStore", METHODS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The control table in memory: one implementation of every store port the functions use
/// ([`CanaryStore`], [`JobLedger`], [`TenantStore`], [`CredentialStore`], [`IntegrationStore`],
/// [`ConnectionStore`], [`ConnectStore`], [`IdempotencyStore`], [`RateCounter`]), with the DynamoDB adapter's semantics where tests rely on them:
///
/// - conditional writes: creating a tenant, key, issuer, integration or connection whose id exists
///   is a [`PortError::Conflict`]; a tenant, integration or connection update checks the stored
///   version; a canary older than the
///   recorded one is ignored; an idempotency key is claimed only when absent, expired or pending past
///   its lease (times in whole seconds, as the adapter stores them);
/// - an (issuer, audience) pair belongs to one registration across tenants, and a tenant holds at
///   most `max_per_tenant` registrations ([`IssuerCreated::PairTaken`] wins when both fail);
/// - lists are read in sort-key order (`APIKEY#<id>`, `ISSUER#<id>`, `AUDIT#<id>`, tenant ids), at
///   most [`MAX_LIMIT`] a page, and a position (`PageRequest::after`) is a sort key of that list
///   only: one of another list is [`PortError::OutOfRange`], and it never reaches another tenant's
///   items;
/// - a deleting tenant is purged in batches of [`PURGE_BATCH`] partition items a step, keys and
///   issuers (with their lookup and pair items) removed, audit events kept with an expiry, and the
///   tenant removed by the step that finds nothing left;
/// - completed jobs expire after their `keep`, judged by the system clock like the adapter's ledger.
///
/// Where the port's contract is stricter than the adapter, the double follows the contract: purging
/// a tenant that is not `deleting` is [`PortError::Rejected`], and a cap of 0 refuses even the first
/// registration.
///
/// Clones share their items and switches (like two handles on one table). Every port call yields
/// once to the runtime before it acts, as a real store call would, and is counted per method (see
/// [`MemStore::calls`]). Faults: [`MemStore::fail`] (every call fails), [`MemStore::slow_canary`];
/// [`MemStore::read_only`] makes any write panic, for components that must only read. Seeding
/// (`put_*`, `edit_*`, `remove_tenant`, `set_canary`) and inspection helpers bypass the ports, their
/// faults and their counts.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    tables: Arc<Mutex<Tables>>,
    knobs: Arc<Knobs>,
}

fn unavailable(operation: &'static str) -> PortError {
    PortError::Unavailable {
        service: Service::Store,
        operation,
        detail: "arn:aws:dynamodb:secret-internal-detail (injected fault)".into(),
    }
}

fn conflict(operation: &'static str) -> PortError {
    PortError::Conflict {
        service: Service::Store,
        operation,
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn now_secs() -> i64 {
    SystemClock.now_ms() / 1000
}

/// One page of `items` (sort key → item, so in sort-key order) whose sort keys start with `prefix`.
fn page<T: Clone>(
    items: BTreeMap<String, T>,
    prefix: &str,
    req: &PageRequest,
) -> Result<Page<T>, PortError> {
    let limit = req.limit.clamp(1, MAX_LIMIT) as usize;
    if req.after.as_deref().is_some_and(|a| !a.starts_with(prefix)) {
        return Err(PortError::OutOfRange {
            service: Service::Store,
            operation: "Query",
        });
    }
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(sk, _)| sk.starts_with(prefix))
        .filter(|(sk, _)| req.after.as_ref().is_none_or(|a| sk > a))
        .take(limit + 1)
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    Ok(Page {
        next_after: if more {
            rest.last().map(|(sk, _)| sk.clone())
        } else {
            None
        },
        items: rest.into_iter().map(|(_, v)| v).collect(),
    })
}

impl MemStore {
    /// An empty store whose port writes panic: for a component that must only read (the
    /// authorizer), so that a test reaching a write fails loudly. Seeding still works.
    pub fn read_only() -> Self {
        let store = Self::default();
        store.knobs.read_only.store(true, Ordering::SeqCst);
        store
    }

    /// This store, purging `batch` partition items a step instead of [`PURGE_BATCH`] (at least 1),
    /// so that a test sees a deletion that takes several steps.
    pub fn with_purge_batch(self, batch: usize) -> Self {
        self.knobs.purge_batch.store(batch.max(1), Ordering::SeqCst);
        self
    }

    /// Turns the failure switch on or off: while on, every port call fails as an unavailable store
    /// would ([`PortError::Unavailable`], with a detail that looks internal, an ARN, so that tests can
    /// check it never reaches a client).
    pub fn fail(&self, on: bool) {
        self.knobs.failing.store(on, Ordering::SeqCst);
    }

    /// While on, writing to the operations log fails (as an unavailable store), and nothing else.
    pub fn fail_operations_log(&self, on: bool) {
        self.knobs.oplog_failing.store(on, Ordering::SeqCst);
    }

    fn operations_log_failing(&self) -> bool {
        self.knobs.oplog_failing.load(Ordering::SeqCst)
    }

    /// While on, [`CanaryStore::latest`] takes 5 s, longer than any probe timeout.
    pub fn slow_canary(&self, on: bool) {
        self.knobs.slow_canary.store(on, Ordering::SeqCst);
    }

    /// How many times the port method `method` (its name, e.g. `"latest"`, `"add"`) was called,
    /// failed calls included. Panics on a name that is not one of the store ports' methods.
    pub fn calls(&self, method: &str) -> usize {
        self.knobs.calls.of(method)
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a port call: counts it, yields, applies the switches, then `f`. `operation` is the
    /// DynamoDB operation the adapter would send, for the injected error.
    async fn port<R>(
        &self,
        method: &'static str,
        access: Access,
        operation: &'static str,
        f: impl FnOnce(&mut Tables) -> R,
    ) -> Result<R, PortError> {
        self.knobs.calls.count(method);
        tokio::task::yield_now().await;
        if access == Access::Write && self.knobs.read_only.load(Ordering::SeqCst) {
            panic!("MemStore is read-only here, yet `{method}` was called");
        }
        if self.knobs.failing.load(Ordering::SeqCst) {
            return Err(unavailable(operation));
        }
        Ok(f(&mut self.tables()))
    }

    // Seeding: bypasses the ports, their faults and their counts.

    /// Sets the recorded canary, whatever is recorded.
    pub fn set_canary(&self, c: CanaryObservation) {
        self.tables().canary = Some(c);
    }

    /// Stores a tenant, replacing any with its id.
    pub fn put_tenant(&self, t: Tenant) {
        self.tables().tenants.insert(t.id.to_string(), t);
    }

    /// Seeds an integration (no audit).
    pub fn put_integration(&self, i: &Integration) {
        self.tables()
            .integrations
            .insert(i.id.to_string(), i.clone());
    }

    /// Seeds a connection (no event, no audit).
    pub fn put_connection(&self, c: &Connection) {
        self.tables()
            .connections
            .insert(c.id.to_string(), c.clone());
    }

    /// Changes a stored connection; `false` (and nothing changed) when it does not exist.
    #[must_use]
    pub fn edit_connection(&self, id: &ConnectionId, f: impl FnOnce(&mut Connection)) -> bool {
        self.tables()
            .connections
            .get_mut(id.as_str())
            .map(f)
            .is_some()
    }

    /// Forgets every idempotency key, as if the requests that claimed them had never been
    /// recorded (a function that stopped before its answer was stored).
    pub fn forget_idempotency(&self) {
        self.tables().idempotency.clear();
    }

    /// Changes a stored tenant; `false` (and nothing changed) when it does not exist.
    #[must_use]
    pub fn edit_tenant(&self, id: &TenantId, f: impl FnOnce(&mut Tenant)) -> bool {
        self.tables().tenants.get_mut(id.as_str()).map(f).is_some()
    }

    /// Removes the tenant item only: what it owns stays (as if its deletion had been interrupted
    /// before the end and the item lost).
    pub fn remove_tenant(&self, id: &TenantId) {
        self.tables().tenants.remove(id.as_str());
    }

    /// Stores a key (no audit event), replacing any with its id.
    pub fn put_key(&self, k: ApiKeyRecord) {
        self.tables().keys.insert(k.id.to_string(), k);
    }

    /// Changes a stored key; `false` (and nothing changed) when it does not exist.
    #[must_use]
    pub fn edit_key(&self, id: &ApiKeyId, f: impl FnOnce(&mut ApiKeyRecord)) -> bool {
        self.tables().keys.get_mut(id.as_str()).map(f).is_some()
    }

    /// Stores an issuer registration (no audit event, no cap). Panics when another registration
    /// holds its (issuer, audience) pair: the table can never hold that.
    pub fn put_issuer(&self, o: OidcIssuer) {
        let mut t = self.tables();
        if let Some(holder) = t.pair_holder(&o.issuer, &o.audience)
            && holder.id != o.id
        {
            panic!(
                "({}, {}) is registered already, by {}",
                o.issuer, o.audience, holder.id
            );
        }
        t.issuer_counters.insert(o.tenant_id.clone());
        t.issuers.insert(o.id.to_string(), o);
    }

    // Inspection.

    /// Every observation [`CanaryStore::record`] answered `Ok` for, in order (those ignored because
    /// a newer canary was recorded included: the real store answers them `Ok` too).
    pub fn recorded_canaries(&self) -> Vec<CanaryObservation> {
        self.tables().canary_log.clone()
    }

    /// The jobs marked done (expired records included).
    pub fn done_jobs(&self) -> Vec<JobId> {
        self.tables().done.keys().cloned().collect()
    }

    /// How many items the store holds for `tenant` (keys, issuers, integrations, audit events not kept after a
    /// deletion).
    pub fn owned_by(&self, tenant: &TenantId) -> usize {
        let t = self.tables();
        t.keys.values().filter(|k| k.tenant_id == *tenant).count()
            + t.issuers
                .values()
                .filter(|o| o.tenant_id == *tenant)
                .count()
            + t.integrations
                .values()
                .filter(|i| i.tenant_id == *tenant)
                .count()
            + t.connections
                .values()
                .filter(|c| c.tenant_id == *tenant)
                .count()
            + t.audit
                .iter()
                .filter(|(id, e)| e.tenant_id == *tenant && !t.kept_audit.contains_key(*id))
                .count()
    }

    /// How many of the tenant's audit events are kept after its deletion (with an expiry).
    pub fn kept_audit_of(&self, tenant: &TenantId) -> usize {
        let t = self.tables();
        t.audit
            .iter()
            .filter(|(id, e)| e.tenant_id == *tenant && t.kept_audit.contains_key(*id))
            .count()
    }
}

impl CanaryStore for MemStore {
    async fn record(&self, o: &CanaryObservation) -> Result<(), PortError> {
        self.port("record", Access::Write, "PutItem", |t| {
            // `attribute_not_exists(pk) OR enqueued_at_ms <= :enqueued`; a newer one stays, and
            // the call still succeeds.
            if t.canary
                .as_ref()
                .is_none_or(|c| c.enqueued_at_ms <= o.enqueued_at_ms)
            {
                t.canary = Some(o.clone());
            }
            t.canary_log.push(o.clone());
        })
        .await
    }

    async fn latest(&self) -> Result<Option<CanaryObservation>, PortError> {
        if self.knobs.slow_canary.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.port("latest", Access::Read, "GetItem", |t| t.canary.clone())
            .await
    }
}

impl JobLedger for MemStore {
    async fn is_done(&self, id: &JobId) -> Result<bool, PortError> {
        // TTL deletion lags: an expired record counts as absent.
        self.port("is_done", Access::Read, "GetItem", |t| {
            t.done.get(id).is_some_and(|&expires| expires > now_secs())
        })
        .await
    }

    async fn mark_done(&self, id: &JobId, keep: Duration) -> Result<(), PortError> {
        self.port("mark_done", Access::Write, "PutItem", |t| {
            t.done
                .insert(id.clone(), now_secs().saturating_add(secs(keep)));
        })
        .await
    }
}

impl TenantStore for MemStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), PortError> {
        self.port("create_tenant", Access::Write, "PutItem", |t| {
            if t.tenants.contains_key(tenant.id.as_str()) {
                return Err(conflict("PutItem"));
            }
            t.tenants.insert(tenant.id.to_string(), tenant.clone());
            Ok(())
        })
        .await?
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.port("get_tenant", Access::Read, "GetItem", |t| {
            t.tenants.get(id.as_str()).cloned()
        })
        .await
    }

    async fn list_tenants(&self, req: &PageRequest) -> Result<Page<Tenant>, PortError> {
        self.port("list_tenants", Access::Read, "Query", |t| {
            page(t.tenants.clone(), TenantId::PREFIX, req)
        })
        .await?
    }

    async fn update_tenant(&self, tenant: &Tenant, expected: u64) -> Result<bool, PortError> {
        self.port("update_tenant", Access::Write, "PutItem", |t| {
            match t.tenants.get_mut(tenant.id.as_str()) {
                None => Ok(false),
                Some(slot) if slot.version != expected => Err(conflict("PutItem")),
                Some(slot) => {
                    *slot = tenant.clone();
                    Ok(true)
                }
            }
        })
        .await?
    }

    async fn purge_tenant(
        &self,
        id: &TenantId,
        audit_expires_at_s: i64,
    ) -> Result<PurgeProgress, PortError> {
        let batch = self.knobs.purge_batch.load(Ordering::SeqCst);
        self.port("purge_tenant", Access::Write, "Query", |t| {
            // Stricter than the adapter, which trusts its caller: purging a live tenant is a bug.
            if t.tenants
                .get(id.as_str())
                .is_some_and(|x| x.status != TenantStatus::Deleting)
            {
                return Err(PortError::Rejected {
                    service: Service::Store,
                    operation: "purge",
                    detail: "tenant is not being deleted".into(),
                });
            }
            // The adapter's query: pages of `batch` items of the partition in sort-key order,
            // kept audit events filtered out (but counted in the page, as DynamoDB's Limit does),
            // reading on past pages holding nothing else.
            let partition: Vec<Owned> = t.partition(id).into_values().collect();
            let pages: Vec<&[Owned]> = partition.chunks(batch).collect();
            let pending = |item: &Owned| match item {
                Owned::Audit(event) => !t.kept_audit.contains_key(event),
                _ => true,
            };
            let Some(at) = pages.iter().position(|p| p.iter().any(pending)) else {
                t.tenants.remove(id.as_str());
                return Ok(PurgeProgress::Done);
            };
            let work: Vec<Owned> = pages[at].iter().filter(|i| pending(i)).cloned().collect();
            for item in work {
                match item {
                    Owned::Key(key) => {
                        t.keys.remove(&key);
                    }
                    // The pair item goes with the registration.
                    Owned::Issuer(issuer) => {
                        t.issuers.remove(&issuer);
                    }
                    Owned::Audit(event) => {
                        t.kept_audit.insert(event, audit_expires_at_s);
                    }
                    Owned::Integration(integration) => {
                        t.integrations.remove(&integration);
                    }
                    Owned::Connection(connection) => {
                        t.connections.remove(&connection);
                    }
                    Owned::Sync(sync) => t.syncs.remove(&sync),
                    Owned::ActionRun(run) => t.actions.remove(&run),
                    Owned::Endpoint(endpoint) => t.webhooks.remove(&endpoint),
                    Owned::IssuerCount => {
                        t.issuer_counters.remove(id);
                    }
                }
            }
            Ok(PurgeProgress::More)
        })
        .await?
    }
}

impl CredentialStore for MemStore {
    async fn create_key(&self, k: &ApiKeyRecord, a: &AuditEvent) -> Result<(), PortError> {
        self.port("create_key", Access::Write, "TransactWriteItems", |t| {
            if t.keys.contains_key(k.id.as_str()) {
                return Err(conflict("TransactWriteItems"));
            }
            t.keys.insert(k.id.to_string(), k.clone());
            t.audit.insert(a.id.to_string(), a.clone());
            Ok(())
        })
        .await?
    }

    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, PortError> {
        self.port("get_key", Access::Read, "GetItem", |t| {
            t.keys.get(id.as_str()).cloned()
        })
        .await
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, PortError> {
        self.port("list_keys", Access::Read, "Query", |t| {
            let mine = t
                .keys
                .iter()
                .filter(|(_, k)| k.tenant_id == *tenant)
                .map(|(id, k)| (format!("{KEY_SK}{id}"), k.clone()))
                .collect();
            page(mine, KEY_SK, req)
        })
        .await?
    }

    async fn revoke_key(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        at: EpochMillis,
        a: &AuditEvent,
    ) -> Result<Option<ApiKeyRecord>, PortError> {
        self.port("revoke_key", Access::Write, "TransactWriteItems", |t| {
            let key = t
                .keys
                .get_mut(id.as_str())
                .filter(|k| k.tenant_id == *tenant)?;
            // Revoking twice keeps the first time, and writes nothing (no second audit event).
            if key.revoked_at_ms.is_none() {
                key.revoked_at_ms = Some(at);
                let key = key.clone();
                t.audit.insert(a.id.to_string(), a.clone());
                return Some(key);
            }
            Some(key.clone())
        })
        .await
    }

    async fn create_issuer(
        &self,
        o: &OidcIssuer,
        a: &AuditEvent,
        max_per_tenant: u32,
    ) -> Result<IssuerCreated, PortError> {
        self.port("create_issuer", Access::Write, "TransactWriteItems", |t| {
            // One transaction: every condition is checked, and the pair's failure is reported
            // first, then the cap's, then a duplicate id's.
            let pair_taken = t.pair_holder(&o.issuer, &o.audience).is_some();
            let held = t
                .issuers
                .values()
                .filter(|x| x.tenant_id == o.tenant_id)
                .count();
            if pair_taken {
                return Ok(IssuerCreated::PairTaken);
            }
            if held >= max_per_tenant as usize {
                return Ok(IssuerCreated::LimitReached);
            }
            if t.issuers.contains_key(o.id.as_str()) {
                return Err(conflict("TransactWriteItems"));
            }
            t.issuer_counters.insert(o.tenant_id.clone());
            t.issuers.insert(o.id.to_string(), o.clone());
            t.audit.insert(a.id.to_string(), a.clone());
            Ok(IssuerCreated::Created)
        })
        .await?
    }

    async fn get_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.port("get_issuer", Access::Read, "GetItem", |t| {
            t.issuers
                .get(id.as_str())
                .filter(|o| o.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_issuers(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<OidcIssuer>, PortError> {
        self.port("list_issuers", Access::Read, "Query", |t| {
            let mine = t
                .issuers
                .iter()
                .filter(|(_, o)| o.tenant_id == *tenant)
                .map(|(id, o)| (format!("{ISSUER_SK}{id}"), o.clone()))
                .collect();
            page(mine, ISSUER_SK, req)
        })
        .await?
    }

    async fn delete_issuer(
        &self,
        tenant: &TenantId,
        id: &IssuerId,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port("delete_issuer", Access::Write, "TransactWriteItems", |t| {
            let mine = t
                .issuers
                .get(id.as_str())
                .is_some_and(|o| o.tenant_id == *tenant);
            if mine {
                // The pair item goes with it: the pair is free again.
                t.issuers.remove(id.as_str());
                t.audit.insert(a.id.to_string(), a.clone());
            }
            mine
        })
        .await
    }

    async fn issuer_registration(
        &self,
        issuer: &str,
        audience: &str,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.port("issuer_registration", Access::Read, "GetItem", |t| {
            t.pair_holder(issuer, audience).cloned()
        })
        .await
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortError> {
        self.port("list_audit", Access::Read, "Query", |t| {
            let mine = t
                .audit
                .iter()
                .filter(|(_, e)| e.tenant_id == *tenant)
                .map(|(id, e)| (format!("{AUDIT_SK}{id}"), e.clone()))
                .collect();
            page(mine, AUDIT_SK, req)
        })
        .await?
    }
}

impl IntegrationStore for MemStore {
    async fn create_integration(&self, i: &Integration, a: &AuditEvent) -> Result<(), PortError> {
        self.port(
            "create_integration",
            Access::Write,
            "TransactWriteItems",
            |t| {
                if t.integrations.contains_key(i.id.as_str()) {
                    return Err(conflict("TransactWriteItems"));
                }
                t.integrations.insert(i.id.to_string(), i.clone());
                t.audit.insert(a.id.to_string(), a.clone());
                Ok(())
            },
        )
        .await?
    }

    async fn get_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
    ) -> Result<Option<Integration>, PortError> {
        self.port("get_integration", Access::Read, "GetItem", |t| {
            t.integrations
                .get(id.as_str())
                .filter(|i| i.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_integrations(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<Integration>, PortError> {
        self.port("list_integrations", Access::Read, "Query", |t| {
            let mine = t
                .integrations
                .iter()
                .filter(|(_, i)| i.tenant_id == *tenant)
                .map(|(id, i)| (format!("{INTEGRATION_SK}{id}"), i.clone()))
                .collect();
            page(mine, INTEGRATION_SK, req)
        })
        .await?
    }

    async fn update_integration(
        &self,
        i: &Integration,
        expected: u64,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port(
            "update_integration",
            Access::Write,
            "TransactWriteItems",
            |t| match t
                .integrations
                .get_mut(i.id.as_str())
                .filter(|x| x.tenant_id == i.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected => Err(conflict("TransactWriteItems")),
                Some(stored) => {
                    *stored = i.clone();
                    t.audit.insert(a.id.to_string(), a.clone());
                    Ok(true)
                }
            },
        )
        .await?
    }

    async fn delete_integration(
        &self,
        tenant: &TenantId,
        id: &IntegrationId,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port(
            "delete_integration",
            Access::Write,
            "TransactWriteItems",
            |t| {
                let mine = t
                    .integrations
                    .get(id.as_str())
                    .is_some_and(|i| i.tenant_id == *tenant);
                if mine {
                    t.integrations.remove(id.as_str());
                    t.audit.insert(a.id.to_string(), a.clone());
                }
                mine
            },
        )
        .await
    }

    // The adapter's pointer item is written and removed with the integration: the integration
    // itself answers for it here.
    async fn integration_tenant(&self, id: &IntegrationId) -> Result<Option<TenantId>, PortError> {
        self.port("integration_tenant", Access::Read, "GetItem", |t| {
            t.integrations.get(id.as_str()).map(|i| i.tenant_id.clone())
        })
        .await
    }
}

impl ConnectionStore for MemStore {
    async fn create_connection(
        &self,
        c: &Connection,
        e: &ConnectionEvent,
        a: &AuditEvent,
    ) -> Result<(), PortError> {
        self.port(
            "create_connection",
            Access::Write,
            "TransactWriteItems",
            |t| {
                if t.connections.contains_key(c.id.as_str()) {
                    return Err(conflict("TransactWriteItems"));
                }
                t.connections.insert(c.id.to_string(), c.clone());
                t.events.insert(e.id.to_string(), e.clone());
                t.audit.insert(a.id.to_string(), a.clone());
                Ok(())
            },
        )
        .await?
    }

    async fn get_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
    ) -> Result<Option<Connection>, PortError> {
        self.port("get_connection", Access::Read, "GetItem", |t| {
            t.connections
                .get(id.as_str())
                .filter(|c| c.tenant_id == *tenant)
                .cloned()
        })
        .await
    }

    async fn list_connections(
        &self,
        tenant: &TenantId,
        filter: &ConnectionFilter,
        req: &PageRequest,
    ) -> Result<Page<Connection>, PortError> {
        self.port("list_connections", Access::Read, "Query", |t| {
            let mine = t
                .connections
                .iter()
                .filter(|(_, c)| c.tenant_id == *tenant && filter.matches(c))
                .map(|(id, c)| (format!("{CONNECTION_SK}{id}"), c.clone()))
                .collect();
            page(mine, CONNECTION_SK, req)
        })
        .await?
    }

    async fn update_connection(
        &self,
        c: &Connection,
        expected: u64,
        e: Option<&ConnectionEvent>,
    ) -> Result<bool, PortError> {
        self.port(
            "update_connection",
            Access::Write,
            "TransactWriteItems",
            |t| match t
                .connections
                .get_mut(c.id.as_str())
                .filter(|x| x.tenant_id == c.tenant_id)
            {
                None => Ok(false),
                Some(stored) if stored.version != expected => Err(conflict("TransactWriteItems")),
                Some(stored) => {
                    *stored = c.clone();
                    t.postponed.remove(c.id.as_str());
                    if let Some(e) = e {
                        t.events.insert(e.id.to_string(), e.clone());
                    }
                    Ok(true)
                }
            },
        )
        .await?
    }

    async fn delete_connection(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        e: &ConnectionEvent,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.port(
            "delete_connection",
            Access::Write,
            "TransactWriteItems",
            |t| {
                let mine = t
                    .connections
                    .get(id.as_str())
                    .is_some_and(|c| c.tenant_id == *tenant);
                if mine {
                    t.connections.remove(id.as_str());
                    t.leases.remove(id.as_str());
                    t.postponed.remove(id.as_str());
                    t.events.insert(e.id.to_string(), e.clone());
                    t.audit.insert(a.id.to_string(), a.clone());
                }
                mine
            },
        )
        .await
    }

    async fn lease_refresh(
        &self,
        tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
        now_ms: EpochMillis,
        until_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        self.port("lease_refresh", Access::Write, "UpdateItem", |t| {
            let exists = t
                .connections
                .get(id.as_str())
                .is_some_and(|c| c.tenant_id == *tenant);
            let free = t
                .leases
                .get(id.as_str())
                .is_none_or(|(_, until)| *until < now_ms);
            if exists && free {
                t.leases
                    .insert(id.to_string(), (holder.to_owned(), until_ms));
            }
            exists && free
        })
        .await
    }

    async fn swap_refreshed(
        &self,
        c: &Connection,
        expected: u64,
        holder: &str,
        e: &ConnectionEvent,
    ) -> Result<RefreshSwap, PortError> {
        self.port("swap_refreshed", Access::Write, "TransactWriteItems", |t| {
            let held = t
                .leases
                .get(c.id.as_str())
                .is_some_and(|(h, _)| h == holder);
            let stored = t
                .connections
                .get_mut(c.id.as_str())
                .filter(|x| x.tenant_id == c.tenant_id);
            match stored {
                Some(stored) if held && stored.version == expected => {
                    *stored = c.clone();
                    t.leases.remove(c.id.as_str());
                    t.postponed.remove(c.id.as_str());
                    t.events.insert(e.id.to_string(), e.clone());
                    Ok(RefreshSwap::Swapped)
                }
                Some(_) if held => Err(conflict("TransactWriteItems")),
                _ => Ok(RefreshSwap::LeaseLost),
            }
        })
        .await?
    }

    async fn release_refresh(
        &self,
        _tenant: &TenantId,
        id: &ConnectionId,
        holder: &str,
    ) -> Result<(), PortError> {
        self.port("release_refresh", Access::Write, "UpdateItem", |t| {
            if t.leases.get(id.as_str()).is_some_and(|(h, _)| h == holder) {
                t.leases.remove(id.as_str());
            }
        })
        .await
    }

    async fn list_connection_events(
        &self,
        tenant: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<ConnectionEvent>, PortError> {
        self.port("list_connection_events", Access::Read, "Query", |t| {
            let mine = t
                .events
                .iter()
                .filter(|(_, e)| e.tenant_id == *tenant)
                .map(|(id, e)| (format!("{EVENT_SK}{id}"), e.clone()))
                .collect();
            page(mine, EVENT_SK, req)
        })
        .await?
    }
}

impl Tables {
    fn refresh_due(&self, c: &Connection) -> Option<EpochMillis> {
        c.idle_refresh_due_ms()
            .map(|due| self.postponed.get(c.id.as_str()).copied().unwrap_or(due))
    }
}

impl RefreshSchedule for MemStore {
    async fn due_refreshes(
        &self,
        now_ms: EpochMillis,
        limit: usize,
    ) -> Result<Vec<DueRefresh>, PortError> {
        self.port("due_refreshes", Access::Read, "Query", |t| {
            let mut due: Vec<DueRefresh> = t
                .connections
                .values()
                .filter_map(|c| {
                    t.refresh_due(c)
                        .filter(|due| *due <= now_ms)
                        .map(|due_ms| DueRefresh {
                            tenant_id: c.tenant_id.clone(),
                            connection_id: c.id.clone(),
                            due_ms,
                        })
                })
                .collect();
            due.sort_by_key(|d| d.due_ms);
            due.truncate(limit);
            due
        })
        .await
    }

    async fn postpone_refresh(
        &self,
        due: &DueRefresh,
        next_ms: EpochMillis,
    ) -> Result<bool, PortError> {
        self.port("postpone_refresh", Access::Write, "UpdateItem", |t| {
            let current = t
                .connections
                .get(due.connection_id.as_str())
                .filter(|c| c.tenant_id == due.tenant_id)
                .and_then(|c| t.refresh_due(c));
            if current != Some(due.due_ms) {
                return false;
            }
            t.postponed.insert(due.connection_id.to_string(), next_ms);
            true
        })
        .await
    }
}

impl ConnectStore for MemStore {
    async fn create_session(&self, session: &ConnectSession) -> Result<(), PortError> {
        self.port("create_session", Access::Write, "PutItem", |t| {
            if t.sessions.contains_key(&session.token_hash) {
                return Err(conflict("PutItem"));
            }
            t.sessions
                .insert(session.token_hash.clone(), session.clone());
            Ok(())
        })
        .await?
    }

    async fn session(&self, token_hash: &str) -> Result<Option<ConnectSession>, PortError> {
        self.port("session", Access::Read, "GetItem", |t| {
            t.sessions.get(token_hash).cloned()
        })
        .await
    }

    async fn complete_session(
        &self,
        token_hash: &str,
        connection: &ConnectionId,
    ) -> Result<bool, PortError> {
        self.port("complete_session", Access::Write, "PutItem", |t| {
            match t.sessions.get_mut(token_hash) {
                Some(session) if session.completed_with.is_none() => {
                    session.completed_with = Some(connection.clone());
                    true
                }
                _ => false,
            }
        })
        .await
    }

    async fn put_flow(&self, flow: &OAuthFlow) -> Result<(), PortError> {
        self.port("put_flow", Access::Write, "PutItem", |t| {
            if t.flows.contains_key(&flow.state_hash) {
                return Err(conflict("PutItem"));
            }
            t.flows.insert(flow.state_hash.clone(), flow.clone());
            Ok(())
        })
        .await?
    }

    async fn take_flow(&self, state_hash: &str) -> Result<Option<OAuthFlow>, PortError> {
        self.port("take_flow", Access::Write, "DeleteItem", |t| {
            t.flows.remove(state_hash)
        })
        .await
    }
}

impl IdempotencyStore for MemStore {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now_ms: EpochMillis,
        lease: Duration,
        keep: Duration,
    ) -> Result<IdempotencyBegin, PortError> {
        let now_s = now_ms / 1000;
        self.port("begin", Access::Write, "PutItem", |t| {
            let slot = (scope.to_owned(), key.to_owned());
            // `attribute_not_exists(pk) OR expires_at < :now OR (state = pending AND lease_until <
            // :now)`.
            let claimable = t.idempotency.get(&slot).is_none_or(|c| {
                c.expires_at_s < now_s || (c.response.is_none() && c.lease_until_s < now_s)
            });
            if claimable {
                t.idempotency.insert(
                    slot,
                    Claim {
                        fingerprint: fingerprint.to_owned(),
                        response: None,
                        lease_until_s: now_s.saturating_add(secs(lease)),
                        expires_at_s: now_s.saturating_add(secs(keep)),
                    },
                );
                return IdempotencyBegin::Started;
            }
            match &t.idempotency[&slot] {
                c if c.fingerprint != fingerprint => IdempotencyBegin::Mismatch,
                Claim { response: None, .. } => IdempotencyBegin::InProgress,
                Claim {
                    response: Some(r), ..
                } => IdempotencyBegin::Replay(r.clone()),
            }
        })
        .await
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), PortError> {
        self.port("complete", Access::Write, "UpdateItem", |t| {
            match t.idempotency.get_mut(&(scope.to_owned(), key.to_owned())) {
                Some(claim) => {
                    claim.response = Some(response.clone());
                    Ok(())
                }
                // `attribute_exists(pk)` failed: DynamoDB answers 400.
                None => Err(PortError::Rejected {
                    service: Service::Store,
                    operation: "UpdateItem",
                    detail: "ConditionalCheckFailedException: the key is not claimed".into(),
                }),
            }
        })
        .await?
    }

    async fn abandon(&self, scope: &str, key: &str) -> Result<(), PortError> {
        self.port("abandon", Access::Write, "DeleteItem", |t| {
            t.idempotency.remove(&(scope.to_owned(), key.to_owned()));
        })
        .await
    }
}

impl RateCounter for MemStore {
    async fn add(
        &self,
        bucket: &str,
        window: i64,
        amount: u32,
        _keep: Duration,
    ) -> Result<u64, PortError> {
        // Each (bucket, window) is its own item: a new window starts from zero.
        self.port("add", Access::Write, "UpdateItem", |t| {
            let count = t.rates.entry((bucket.to_owned(), window)).or_default();
            *count += u64::from(amount);
            *count
        })
        .await
    }
}

mod actions;
mod inbound;
mod operations;
mod syncs;
#[cfg(test)]
mod tests;
mod webhooks;
