//! An in-memory control store, the API over it, and request builders for the handler tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use lambda_http::Request;
use tower::ServiceExt as _;
use tributary_core::PortError;
use tributary_core::canary::CanaryObservation;
use tributary_core::error::Service;
use tributary_core::ids::{ApiKeyId, IssuerId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{
    CanaryStore, CredentialStore, IdempotencyBegin, IdempotencyStore, QueueDepth, QueueStats,
    RateCounter, StoredResponse, TenantStore,
};
use tributary_core::tenancy::{
    ApiKeyRecord, AuditEvent, IssuerCreated, OidcIssuer, PurgeProgress, Tenant, TenantStatus,
};
use tributary_core::time::{EpochMillis, ManualClock};

use crate::config::Config;
use crate::state::Deps;

#[derive(Default)]
pub(crate) struct Inner {
    canary: Option<CanaryObservation>,
    tenants: BTreeMap<String, Tenant>,
    keys: BTreeMap<String, ApiKeyRecord>,
    issuers: BTreeMap<String, OidcIssuer>,
    audit: BTreeMap<String, AuditEvent>,
    idempotency: HashMap<(String, String), (String, Option<StoredResponse>)>,
    rates: HashMap<(String, i64), u64>,
}

/// The control store in memory.
#[derive(Default, Clone)]
pub struct MemStore {
    pub(crate) inner: Arc<Mutex<Inner>>,
    /// Makes canary reads slower than any probe timeout.
    pub slow_canary: bool,
    /// While set, every operation fails as an unavailable store would.
    pub failing: Arc<AtomicBool>,
    /// Audit events kept after their tenant's deletion, with their expiry (epoch seconds).
    pub(crate) kept_audit: Arc<Mutex<BTreeMap<String, i64>>>,
}

fn page<T: Clone>(
    items: Vec<(String, T)>,
    prefix: &str,
    req: &PageRequest,
) -> Result<Page<T>, PortError> {
    if req.after.as_deref().is_some_and(|a| !a.starts_with(prefix)) {
        return Err(PortError::OutOfRange {
            service: Service::Store,
            operation: "Query",
        });
    }
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| req.after.as_ref().is_none_or(|a| k > a))
        .collect();
    let more = rest.len() > req.limit as usize;
    rest.truncate(req.limit as usize);
    Ok(Page {
        next_after: if more {
            rest.last().map(|(k, _)| k.clone())
        } else {
            None
        },
        items: rest.into_iter().map(|(_, v)| v).collect(),
    })
}

fn down() -> PortError {
    PortError::Unavailable {
        service: Service::Store,
        operation: "test",
        detail: "arn:aws:dynamodb:secret-internal-detail".into(),
    }
}

impl MemStore {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    /// Like `with`, failing while the failure switch is on.
    fn try_with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> Result<R, PortError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(down());
        }
        Ok(self.with(f))
    }

    /// Turns the failure switch on or off.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// How many items the store holds for `tenant` (keys, issuers, live audit events).
    pub fn owned_by(&self, tenant: &TenantId) -> usize {
        let kept = self.kept_audit.lock().unwrap().clone();
        self.with(|i| {
            i.keys.values().filter(|k| k.tenant_id == *tenant).count()
                + i.issuers
                    .values()
                    .filter(|o| o.tenant_id == *tenant)
                    .count()
                + i.audit
                    .iter()
                    .filter(|(id, e)| e.tenant_id == *tenant && !kept.contains_key(*id))
                    .count()
        })
    }

    /// The tenant's audit events kept after deletion.
    pub fn kept_audit_of(&self, tenant: &TenantId) -> usize {
        let kept = self.kept_audit.lock().unwrap().clone();
        self.with(|i| {
            i.audit
                .iter()
                .filter(|(id, e)| e.tenant_id == *tenant && kept.contains_key(*id))
                .count()
        })
    }

    /// Seeds a canary observation.
    pub fn set_canary(&self, c: CanaryObservation) {
        self.with(|i| i.canary = Some(c));
    }

    /// Seeds a tenant.
    pub fn put_tenant(&self, t: Tenant) {
        self.with(|i| i.tenants.insert(t.id.to_string(), t));
    }
}

impl CanaryStore for MemStore {
    async fn record(&self, o: &CanaryObservation) -> Result<(), PortError> {
        self.try_with(|i| i.canary = Some(o.clone()))
    }
    async fn latest(&self) -> Result<Option<CanaryObservation>, PortError> {
        if self.slow_canary {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        self.try_with(|i| i.canary.clone())
    }
}

impl TenantStore for MemStore {
    async fn create_tenant(&self, t: &Tenant) -> Result<(), PortError> {
        self.try_with(|i| {
            i.tenants.insert(t.id.to_string(), t.clone());
        })
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.try_with(|i| i.tenants.get(id.as_str()).cloned())
    }
    async fn list_tenants(&self, req: &PageRequest) -> Result<Page<Tenant>, PortError> {
        self.try_with(|i| {
            page(
                i.tenants.clone().into_iter().collect(),
                TenantId::PREFIX,
                req,
            )
        })?
    }
    async fn update_tenant(&self, t: &Tenant, expected: u64) -> Result<bool, PortError> {
        self.try_with(|i| match i.tenants.get_mut(t.id.as_str()) {
            None => Ok(false),
            Some(slot) if slot.version != expected => Err(PortError::Conflict {
                service: Service::Store,
                operation: "PutItem",
            }),
            Some(slot) => {
                *slot = t.clone();
                Ok(true)
            }
        })?
    }
    async fn purge_tenant(
        &self,
        id: &TenantId,
        audit_expires_at_s: i64,
    ) -> Result<PurgeProgress, PortError> {
        let kept = self.kept_audit.clone();
        self.try_with(|i| {
            if i.tenants
                .get(id.as_str())
                .is_some_and(|t| t.status != TenantStatus::Deleting)
            {
                return Err(PortError::Rejected {
                    service: Service::Store,
                    operation: "purge",
                    detail: "tenant is not being deleted".into(),
                });
            }
            // One item a step, so that tests see a deletion that takes several steps.
            if let Some(k) = i
                .keys
                .iter()
                .find(|(_, k)| k.tenant_id == *id)
                .map(|(k, _)| k.clone())
            {
                i.keys.remove(&k);
                return Ok(PurgeProgress::More);
            }
            if let Some(k) = i
                .issuers
                .iter()
                .find(|(_, o)| o.tenant_id == *id)
                .map(|(k, _)| k.clone())
            {
                i.issuers.remove(&k);
                return Ok(PurgeProgress::More);
            }
            let mut kept = kept.lock().unwrap();
            for (event, e) in &i.audit {
                if e.tenant_id == *id {
                    kept.entry(event.clone()).or_insert(audit_expires_at_s);
                }
            }
            i.tenants.remove(id.as_str());
            Ok(PurgeProgress::Done)
        })?
    }
}

impl CredentialStore for MemStore {
    async fn create_key(&self, k: &ApiKeyRecord, a: &AuditEvent) -> Result<(), PortError> {
        self.try_with(|i| {
            i.keys.insert(k.id.to_string(), k.clone());
            i.audit.insert(a.id.to_string(), a.clone());
        })
    }
    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, PortError> {
        self.try_with(|i| i.keys.get(id.as_str()).cloned())
    }
    async fn list_keys(
        &self,
        t: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, PortError> {
        self.try_with(|i| {
            let mine = i
                .keys
                .iter()
                .filter(|(_, k)| k.tenant_id == *t)
                .map(|(id, k)| (format!("APIKEY#{id}"), k.clone()))
                .collect();
            page(mine, "APIKEY#", req)
        })?
    }
    async fn revoke_key(
        &self,
        t: &TenantId,
        id: &ApiKeyId,
        at: EpochMillis,
        a: &AuditEvent,
    ) -> Result<Option<ApiKeyRecord>, PortError> {
        self.try_with(|i| {
            let key = i.keys.get_mut(id.as_str()).filter(|k| k.tenant_id == *t)?;
            if key.revoked_at_ms.is_none() {
                key.revoked_at_ms = Some(at);
                i.audit.insert(a.id.to_string(), a.clone());
            }
            i.keys.get(id.as_str()).cloned()
        })
    }
    async fn create_issuer(
        &self,
        o: &OidcIssuer,
        a: &AuditEvent,
        max: u32,
    ) -> Result<IssuerCreated, PortError> {
        self.try_with(|i| {
            if i.issuers
                .values()
                .any(|x| x.issuer == o.issuer && x.audience == o.audience)
            {
                return IssuerCreated::PairTaken;
            }
            let held = i
                .issuers
                .values()
                .filter(|x| x.tenant_id == o.tenant_id)
                .count();
            if held >= max as usize {
                return IssuerCreated::LimitReached;
            }
            i.issuers.insert(o.id.to_string(), o.clone());
            i.audit.insert(a.id.to_string(), a.clone());
            IssuerCreated::Created
        })
    }
    async fn get_issuer(
        &self,
        t: &TenantId,
        id: &IssuerId,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.try_with(|i| {
            i.issuers
                .get(id.as_str())
                .filter(|o| o.tenant_id == *t)
                .cloned()
        })
    }
    async fn list_issuers(
        &self,
        t: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<OidcIssuer>, PortError> {
        self.try_with(|i| {
            let mine = i
                .issuers
                .iter()
                .filter(|(_, o)| o.tenant_id == *t)
                .map(|(id, o)| (format!("ISSUER#{id}"), o.clone()))
                .collect();
            page(mine, "ISSUER#", req)
        })?
    }
    async fn delete_issuer(
        &self,
        t: &TenantId,
        id: &IssuerId,
        a: &AuditEvent,
    ) -> Result<bool, PortError> {
        self.try_with(|i| {
            let mine = i
                .issuers
                .get(id.as_str())
                .is_some_and(|o| o.tenant_id == *t);
            if mine {
                i.issuers.remove(id.as_str());
                i.audit.insert(a.id.to_string(), a.clone());
            }
            mine
        })
    }
    async fn issuer_registration(
        &self,
        issuer: &str,
        audience: &str,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.try_with(|i| {
            i.issuers
                .values()
                .find(|o| o.issuer == issuer && o.audience == audience)
                .cloned()
        })
    }
    async fn list_audit(
        &self,
        t: &TenantId,
        req: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortError> {
        self.try_with(|i| {
            let mine = i
                .audit
                .iter()
                .filter(|(_, e)| e.tenant_id == *t)
                .map(|(id, e)| (format!("AUDIT#{id}"), e.clone()))
                .collect();
            page(mine, "AUDIT#", req)
        })?
    }
}

impl IdempotencyStore for MemStore {
    async fn begin(
        &self,
        scope: &str,
        key: &str,
        fp: &str,
        _: EpochMillis,
        _: Duration,
        _: Duration,
    ) -> Result<IdempotencyBegin, PortError> {
        self.try_with(
            |i| match i.idempotency.get(&(scope.to_owned(), key.to_owned())) {
                None => {
                    i.idempotency
                        .insert((scope.to_owned(), key.to_owned()), (fp.to_owned(), None));
                    IdempotencyBegin::Started
                }
                Some((stored, _)) if stored != fp => IdempotencyBegin::Mismatch,
                Some((_, None)) => IdempotencyBegin::InProgress,
                Some((_, Some(r))) => IdempotencyBegin::Replay(r.clone()),
            },
        )
    }
    async fn complete(&self, scope: &str, key: &str, r: &StoredResponse) -> Result<(), PortError> {
        self.try_with(|i| {
            if let Some(slot) = i.idempotency.get_mut(&(scope.to_owned(), key.to_owned())) {
                slot.1 = Some(r.clone());
            }
        })
    }
    async fn abandon(&self, scope: &str, key: &str) -> Result<(), PortError> {
        self.try_with(|i| {
            i.idempotency.remove(&(scope.to_owned(), key.to_owned()));
        })
    }
}

impl RateCounter for MemStore {
    async fn add(
        &self,
        bucket: &str,
        window: i64,
        amount: u32,
        _: Duration,
    ) -> Result<u64, PortError> {
        self.try_with(|i| {
            let slot = i.rates.entry((bucket.to_owned(), window)).or_default();
            *slot += u64::from(amount);
            *slot
        })
    }
}

/// A queue whose depth is fixed, or failing.
pub struct FakeQueue(pub Result<QueueDepth, ()>);

impl QueueStats for FakeQueue {
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        self.0.map_err(|()| PortError::Unavailable {
            service: Service::Queue,
            operation: "GetQueueAttributes",
            detail: "arn:aws:sqs:secret-internal-detail".into(),
        })
    }
}

/// The test clock's time.
pub const NOW: i64 = 1_800_000_030_000;

/// The test settings.
pub fn config() -> Config {
    Config {
        stage: "test".into(),
        control_table: "t".into(),
        jobs_queue_url: "q".into(),
        jobs_dlq_url: "d".into(),
        canary_stale_after: Duration::from_secs(180),
        probe_timeout: Duration::from_millis(200),
        max_issuers_per_tenant: 20,
    }
}

/// The API over an in-memory store, built once like at cold start.
pub struct TestApi {
    /// The store (shared with the router).
    pub store: MemStore,
    router: Router,
}

/// The API over `store`, with a jobs queue answering `queue`.
pub fn deps(store: MemStore, queue: Result<QueueDepth, ()>) -> TestApi {
    deps_with(store, queue, config())
}

/// The API over `store` with `config`.
pub fn deps_with(store: MemStore, queue: Result<QueueDepth, ()>, config: Config) -> TestApi {
    TestApi {
        store: store.clone(),
        router: crate::router::app(Deps {
            store,
            jobs_queue: FakeQueue(queue),
            dead_letter_queue: FakeQueue(Ok(QueueDepth::default())),
            clock: Arc::new(ManualClock::at(NOW)),
            config,
        }),
    }
}

/// A request built from the payload 2.0 fixture.
pub struct Req {
    event: serde_json::Value,
}

impl Req {
    /// `method path`, unauthenticated.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../events/http-request.json")).unwrap();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        event["rawPath"] = path.into();
        event["rawQueryString"] = query.into();
        let params: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        event["queryStringParameters"] = params.into();
        event["requestContext"]["http"]["method"] = method.into();
        event["requestContext"]["http"]["path"] = path.into();
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        Self { event }
    }

    /// As `principal` of `tenant` (empty for none) with `scopes`.
    pub fn auth(mut self, principal: &str, tenant: &str, scopes: &str) -> Self {
        self.event["requestContext"]["authorizer"] = serde_json::json!({
            "lambda": {"principal": principal, "tenant_id": tenant, "scopes": scopes}
        });
        self
    }

    /// With the credential expiring at `expires_at_ms`, as the authorizer puts it in the context.
    pub fn with_expiry(mut self, expires_at_ms: i64) -> Self {
        self.event["requestContext"]["authorizer"]["lambda"]["expires_at_ms"] =
            expires_at_ms.to_string().into();
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.event["body"] = body.to_string().into();
        self.event["headers"]["content-type"] = "application/json".into();
        self
    }

    /// With a raw body and content type.
    pub fn raw(mut self, body: &str, content_type: &str) -> Self {
        self.event["body"] = body.into();
        self.event["headers"]["content-type"] = content_type.into();
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.event["headers"][name] = value.into();
        self
    }

    fn build(&self) -> Request {
        lambda_http::request::from_str(&self.event.to_string()).unwrap()
    }
}

/// What a call answered.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: serde_json::Value,
}

/// Sends the request through the router.
pub async fn call(api: &TestApi, req: Req) -> Res {
    let res = api.router.clone().oneshot(req.build()).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into(),
        ))
    };
    Res {
        status,
        headers,
        body,
    }
}
