//! The authorizer over the shared in-memory doubles (`tributary-testing`), seeding helpers for what
//! it reads, and helpers to build and run events, shared by the integration tests. Its store is
//! read-only: the authorizer never writes, so a test that reaches a port write fails loudly.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use secrecy::ExposeSecret;
use serde_json::Value;
use tributary_auth::handler::{Deps, SimpleResponse, handle};
use tributary_auth::jwks::{KeySource, http_config};
use tributary_auth::jwt::JwtVerifier;
use tributary_core::apikey;
use tributary_core::ids::{ApiKeyId, IssuerId, TenantId};
use tributary_core::scope::Scope;
use tributary_core::tenancy::{
    ApiKeyRecord, DEFAULT_RATE_LIMIT_PER_MINUTE, OidcIssuer, Tenant, TenantStatus,
};
use tributary_core::time::EpochMillis;
use tributary_http::{EgressPolicy, HttpClient};
use tributary_testing::{FakeSecrets, ManualClock, MemStore};

/// 2026-11-24T00:00:00Z, the test clock's start.
pub const NOW: EpochMillis = 1_795_564_800_000;

/// The admin key the fake secret store holds.
pub const ADMIN_KEY: &str = "k3y0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

/// The id of the admin key's secret.
const ADMIN_SECRET_ID: &str = "admin-secret";

/// The records the authorizer reads, seeded with these tests' values.
pub trait Seed {
    /// Adds an active tenant.
    fn add_tenant(&self) -> TenantId;
    /// Disables a tenant.
    fn disable(&self, id: &TenantId);
    /// Deletes a tenant (its keys stay, as after a partial delete).
    fn delete(&self, id: &TenantId);
    /// Adds a key for `tenant`; returns the token to present.
    fn add_key(&self, tenant: &TenantId, scopes: Vec<Scope>) -> (ApiKeyId, String);
    /// Registers an issuer for `tenant` whose tokens may hold every tenant scope.
    fn add_issuer(&self, tenant: &TenantId, issuer: &str, audience: &str, scopes_claim: &str);
    /// Registers an issuer for `tenant` whose tokens hold at most `allowed`, until `expires_at_ms`.
    fn add_issuer_allowing(
        &self,
        tenant: &TenantId,
        issuer: &str,
        audience: &str,
        scopes_claim: &str,
        allowed: Vec<Scope>,
        expires_at_ms: Option<EpochMillis>,
    );
}

impl Seed for MemStore {
    fn add_tenant(&self) -> TenantId {
        let id = TenantId::generate();
        self.put_tenant(Tenant {
            id: id.clone(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 0,
        });
        id
    }

    fn disable(&self, id: &TenantId) {
        assert!(
            self.edit_tenant(id, |t| t.status = TenantStatus::Disabled),
            "no such tenant"
        );
    }

    fn delete(&self, id: &TenantId) {
        self.remove_tenant(id);
    }

    fn add_key(&self, tenant: &TenantId, scopes: Vec<Scope>) -> (ApiKeyId, String) {
        let generated = apikey::generate();
        self.put_key(ApiKeyRecord {
            id: generated.id.clone(),
            tenant_id: tenant.clone(),
            name: "ci".into(),
            scopes,
            secret_hash: generated.secret_hash,
            created_at_ms: 0,
            expires_at_ms: None,
            revoked_at_ms: None,
            created_by: "admin-key".into(),
        });
        (generated.id, generated.token.expose_secret().to_owned())
    }

    fn add_issuer(&self, tenant: &TenantId, issuer: &str, audience: &str, scopes_claim: &str) {
        let every: Vec<Scope> = Scope::ALL
            .iter()
            .copied()
            .filter(|s| s.is_tenant_grantable())
            .collect();
        self.add_issuer_allowing(tenant, issuer, audience, scopes_claim, every, None);
    }

    fn add_issuer_allowing(
        &self,
        tenant: &TenantId,
        issuer: &str,
        audience: &str,
        scopes_claim: &str,
        allowed: Vec<Scope>,
        expires_at_ms: Option<EpochMillis>,
    ) {
        self.put_issuer(OidcIssuer {
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
                secrets: FakeSecrets::with(ADMIN_SECRET_ID, ADMIN_KEY),
                admin_key_secret_id: ADMIN_SECRET_ID.into(),
                store: MemStore::read_only(),
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
