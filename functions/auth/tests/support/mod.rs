//! In-memory fakes of the authorizer's ports and helpers to build events, shared by the integration
//! tests. Port methods the authorizer never calls panic, so a test that reaches one fails loudly.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tributary_auth::handler::{Deps, SimpleResponse, handle};
use tributary_auth::jwks::{KeySource, http_config};
use tributary_auth::jwt::JwtVerifier;
use tributary_core::PortError;
use tributary_core::apikey;
use tributary_core::error::Service;
use tributary_core::ids::{ApiKeyId, IssuerId, TenantId};
use tributary_core::pagination::{Page, PageRequest};
use tributary_core::ports::{CredentialStore, SecretSource, TenantStore};
use tributary_core::scope::Scope;
use tributary_core::tenancy::{
    ApiKeyRecord, AuditEvent, DEFAULT_RATE_LIMIT_PER_MINUTE, IssuerCreated, OidcIssuer,
    PurgeProgress, Tenant, TenantStatus,
};
use tributary_core::time::{EpochMillis, ManualClock};
use tributary_http::{EgressPolicy, HttpClient};

/// 2026-11-24T00:00:00Z, the test clock's start.
pub const NOW: EpochMillis = 1_795_564_800_000;

/// The admin key the fake secret store holds.
pub const ADMIN_KEY: &str = "k3y0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

/// Secrets Manager in memory.
#[derive(Default)]
pub struct FakeSecrets {
    pub reads: AtomicUsize,
    pub down: AtomicBool,
}

impl SecretSource for FakeSecrets {
    async fn secret(&self, id: &str) -> Result<SecretString, PortError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        assert_eq!(id, "admin-secret");
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable("GetSecretValue"));
        }
        Ok(SecretString::from(ADMIN_KEY))
    }
}

fn unavailable(operation: &'static str) -> PortError {
    PortError::Unavailable {
        service: Service::Store,
        operation,
        detail: "down".into(),
    }
}

/// The control table in memory.
#[derive(Default)]
pub struct MemStore {
    pub tenants: Mutex<HashMap<TenantId, Tenant>>,
    pub keys: Mutex<HashMap<ApiKeyId, ApiKeyRecord>>,
    pub issuers: Mutex<Vec<OidcIssuer>>,
    pub down: AtomicBool,
}

impl MemStore {
    fn check(&self, operation: &'static str) -> Result<(), PortError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(unavailable(operation));
        }
        Ok(())
    }

    /// Adds an active tenant.
    pub fn add_tenant(&self) -> TenantId {
        let id = TenantId::generate();
        self.tenants.lock().unwrap().insert(
            id.clone(),
            Tenant {
                id: id.clone(),
                name: "Acme".into(),
                status: TenantStatus::Active,
                rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
                created_at_ms: 0,
                updated_at_ms: 0,
                version: 0,
            },
        );
        id
    }

    /// Disables a tenant.
    pub fn disable(&self, id: &TenantId) {
        self.tenants.lock().unwrap().get_mut(id).unwrap().status = TenantStatus::Disabled;
    }

    /// Deletes a tenant (its keys stay, as after a partial delete).
    pub fn delete(&self, id: &TenantId) {
        self.tenants.lock().unwrap().remove(id);
    }

    /// Adds a key for `tenant`; returns the token to present.
    pub fn add_key(&self, tenant: &TenantId, scopes: Vec<Scope>) -> (ApiKeyId, String) {
        let generated = apikey::generate();
        self.keys.lock().unwrap().insert(
            generated.id.clone(),
            ApiKeyRecord {
                id: generated.id.clone(),
                tenant_id: tenant.clone(),
                name: "ci".into(),
                scopes,
                secret_hash: generated.secret_hash,
                created_at_ms: 0,
                expires_at_ms: None,
                revoked_at_ms: None,
                created_by: "admin-key".into(),
            },
        );
        (generated.id, generated.token.expose_secret().to_owned())
    }

    /// Changes a stored key.
    pub fn edit_key(&self, id: &ApiKeyId, f: impl FnOnce(&mut ApiKeyRecord)) {
        f(self.keys.lock().unwrap().get_mut(id).unwrap());
    }

    /// Registers an issuer for `tenant` whose tokens may hold every tenant scope.
    pub fn add_issuer(&self, tenant: &TenantId, issuer: &str, audience: &str, scopes_claim: &str) {
        let every: Vec<Scope> = Scope::ALL
            .iter()
            .copied()
            .filter(|s| s.is_tenant_grantable())
            .collect();
        self.add_issuer_allowing(tenant, issuer, audience, scopes_claim, every, None);
    }

    /// Registers an issuer for `tenant` whose tokens hold at most `allowed`, until `expires_at_ms`.
    pub fn add_issuer_allowing(
        &self,
        tenant: &TenantId,
        issuer: &str,
        audience: &str,
        scopes_claim: &str,
        allowed: Vec<Scope>,
        expires_at_ms: Option<EpochMillis>,
    ) {
        self.issuers.lock().unwrap().push(OidcIssuer {
            id: IssuerId::generate(),
            tenant_id: tenant.clone(),
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            scopes_claim: scopes_claim.into(),
            allowed_scopes: allowed,
            created_at_ms: 0,
            expires_at_ms,
            created_by: "key_test".into(),
        });
    }
}

const UNUSED: &str = "the authorizer does not call this";

impl TenantStore for MemStore {
    async fn create_tenant(&self, _: &Tenant) -> Result<(), PortError> {
        unreachable!("{UNUSED}")
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.check("GetItem")?;
        Ok(self.tenants.lock().unwrap().get(id).cloned())
    }
    async fn list_tenants(&self, _: &PageRequest) -> Result<Page<Tenant>, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn update_tenant(&self, _: &Tenant, _: u64) -> Result<bool, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn purge_tenant(&self, _: &TenantId, _: i64) -> Result<PurgeProgress, PortError> {
        unreachable!("{UNUSED}")
    }
}

impl CredentialStore for MemStore {
    async fn create_key(&self, _: &ApiKeyRecord, _: &AuditEvent) -> Result<(), PortError> {
        unreachable!("{UNUSED}")
    }
    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, PortError> {
        self.check("GetItem")?;
        Ok(self.keys.lock().unwrap().get(id).cloned())
    }
    async fn list_keys(
        &self,
        _: &TenantId,
        _: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn revoke_key(
        &self,
        _: &TenantId,
        _: &ApiKeyId,
        _: EpochMillis,
        _: &AuditEvent,
    ) -> Result<Option<ApiKeyRecord>, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn create_issuer(
        &self,
        _: &OidcIssuer,
        _: &AuditEvent,
        _: u32,
    ) -> Result<IssuerCreated, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn get_issuer(
        &self,
        _: &TenantId,
        _: &IssuerId,
    ) -> Result<Option<OidcIssuer>, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn list_issuers(
        &self,
        _: &TenantId,
        _: &PageRequest,
    ) -> Result<Page<OidcIssuer>, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn delete_issuer(
        &self,
        _: &TenantId,
        _: &IssuerId,
        _: &AuditEvent,
    ) -> Result<bool, PortError> {
        unreachable!("{UNUSED}")
    }
    async fn issuer_registration(
        &self,
        issuer: &str,
        audience: &str,
    ) -> Result<Option<OidcIssuer>, PortError> {
        self.check("GetItem")?;
        Ok(self
            .issuers
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.issuer == issuer && i.audience == audience)
            .cloned())
    }
    async fn list_audit(
        &self,
        _: &TenantId,
        _: &PageRequest,
    ) -> Result<Page<AuditEvent>, PortError> {
        unreachable!("{UNUSED}")
    }
}

/// A handler's dependencies with real issuer fetching through the guarded client.
pub struct World {
    pub deps: Deps<FakeSecrets, MemStore, HttpClient>,
    pub clock: Arc<ManualClock>,
}

impl World {
    /// Fetches may reach `allow` (e.g. `127.0.0.1` for a local mock issuer).
    pub fn new(allow: &[&str]) -> Self {
        let egress = EgressPolicy::with_allowlist(allow).unwrap();
        let http = HttpClient::new(http_config(egress.clone())).unwrap();
        let clock = Arc::new(ManualClock::at(NOW));
        Self {
            deps: Deps {
                secrets: FakeSecrets::default(),
                admin_key_secret_id: "admin-secret".into(),
                store: MemStore::default(),
                jwt: JwtVerifier::new(KeySource::new(http, egress, Duration::from_secs(600))),
                clock: clock.clone(),
            },
            clock,
        }
    }

    pub fn store(&self) -> &MemStore {
        &self.deps.store
    }

    /// Runs the handler with this `Authorization` header; panics if it errs.
    pub async fn authorize(&self, authorization: Option<&str>) -> SimpleResponse {
        self.try_authorize(authorization)
            .await
            .expect("the authorizer must deny, not fail")
    }

    /// Runs the handler with this `Authorization` header.
    pub async fn try_authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<SimpleResponse, lambda_runtime::Error> {
        handle(&self.deps, event_with_authorization(authorization)).await
    }
}

/// The fixture event with its `Authorization` header replaced.
pub fn event_with_authorization(value: Option<&str>) -> LambdaEvent<Value> {
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/authorizer-request.json")).unwrap();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.retain(|k, _| !k.eq_ignore_ascii_case("authorization"));
    if let Some(v) = value {
        headers.insert("authorization".into(), Value::String(v.into()));
    }
    LambdaEvent::new(event, lambda_runtime::Context::default())
}
