//! Token refresh against a local Airtable whose token endpoint rotates refresh tokens and revokes the
//! whole family when an old one comes back (as Airtable, Salesforce and Xero do): 50 concurrent
//! refreshes of one expired connection, from two execution environments (each its own engine and
//! HTTP client, one store), make exactly one token call, and every caller gets the new token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType, ConnectionStatus,
};
use tributary_core::ids::{AuditEventId, ConnectionId, EventId, IntegrationId, TenantId};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore as _, QueueDepth};
use tributary_core::refresh::{RefreshError, RefreshPolicy, Refresher};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::Clock as _;
use tributary_core::vault::{Owner, Sealed, Vault};
use tributary_testing::ManualClock;
use tributary_testing::fixtures::oauth_connection;
use tributary_testing::token_endpoint::TokenFamily;

use super::{as_tenant, tenant};
use crate::config::Config;
use crate::testing::{MemStore, NOW, Req, call, deps_with, keyring};
use tributary_engine::grant::EngineGrant;

struct Setup {
    store: MemStore,
    settings: Config,
    t: TenantId,
    connection: ConnectionId,
    family: TokenFamily,
}

async fn setup(outage: bool) -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    // Slow enough for every caller to arrive while the one refresh is in flight.
    let family = TokenFamily::start("/oauth2/v1/token", Duration::from_millis(150), outage).await;
    let mut settings = crate::testing::config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
    settings
        .provider_origins
        .insert("airtable".into(), family.server.uri());
    // The integration, through the API (its client secret sealed by it).
    let d = deps_with(store.clone(), Ok(QueueDepth::default()), settings.clone());
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({
            "provider": "airtable", "oauth_client_id": "client", "oauth_client_secret": "secret"
        })),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let integration: IntegrationId = res.body["id"].as_str().unwrap().parse().unwrap();
    // An OAuth connection whose access token expired.
    let id = ConnectionId::generate();
    let sealed = keyring()
        .seal(
            &Owner {
                tenant: t.as_str(),
                object: id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            br#"{"access_token":"at-0","refresh_token":"rt-0"}"#,
        )
        .unwrap()
        .encode();
    let connection = Connection {
        config: BTreeMap::from([
            ("base_id".to_owned(), "appAAAABBBBCCCCDD".to_owned()),
            ("table".to_owned(), "t".to_owned()),
        ]),
        token_expires_at_ms: Some(NOW - 1_000),
        ..oauth_connection(&t, &integration, &id, "airtable", sealed)
    };
    store
        .create_connection(
            &connection,
            &ConnectionEvent {
                id: EventId::generate(),
                tenant_id: t.clone(),
                connection_id: id.clone(),
                kind: ConnectionEventType::Created,
                status: ConnectionStatus::Active,
                reason: None,
                at_ms: 1,
            },
            &AuditEvent {
                id: AuditEventId::generate(),
                tenant_id: t.clone(),
                at_ms: 1,
                actor: "test".into(),
                action: "connection.created".into(),
                target: id.to_string(),
            },
        )
        .await
        .unwrap();
    Setup {
        store,
        settings,
        t,
        connection: id,
        family,
    }
}

/// An execution environment: its own engine (HTTP client), vault and clock; the shared store.
struct Environment {
    store: MemStore,
    settings: Config,
    engine: tributary_engine::Engine,
    vault: Vault,
    clock: ManualClock,
}

impl Environment {
    fn new(s: &Setup) -> Arc<Self> {
        Arc::new(Self {
            store: s.store.clone(),
            settings: s.settings.clone(),
            engine: tributary_engine::Engine::new(s.settings.provider_http()).unwrap(),
            vault: Vault::new(Arc::new(Arc::new(keyring()))),
            clock: ManualClock::at(NOW),
        })
    }

    async fn access_token(
        &self,
        t: &TenantId,
        id: &ConnectionId,
    ) -> Result<SecretString, RefreshError> {
        let grant = EngineGrant {
            store: &self.store,
            vault: &self.vault,
            engine: &self.engine,
            origins: &self.settings.provider_origins,
            clock: &self.clock,
        };
        Refresher {
            store: &self.store,
            vault: &self.vault,
            grant: &grant,
            clock: &self.clock,
            policy: RefreshPolicy {
                poll: Duration::from_millis(20),
                ..RefreshPolicy::default()
            },
        }
        .access_token(t, id)
        .await
    }
}

async fn stored_refresh_token(s: &Setup) -> String {
    let c = s
        .store
        .get_connection(&s.t, &s.connection)
        .await
        .unwrap()
        .unwrap();
    let plain = keyring()
        .open(
            &Owner {
                tenant: s.t.as_str(),
                object: s.connection.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            &Sealed::decode(&c.credentials).unwrap(),
        )
        .unwrap();
    let creds: BTreeMap<String, String> = serde_json::from_slice(plain.expose_secret()).unwrap();
    creds["refresh_token"].clone()
}

async fn kinds(s: &Setup) -> Vec<ConnectionEventType> {
    s.store
        .list_connection_events(
            &s.t,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_from_two_environments_make_one_token_call() {
    let s = setup(false).await;
    let (a, b) = (Environment::new(&s), Environment::new(&s));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let env = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (t, id) = (s.t.clone(), s.connection.clone());
        tasks.push(tokio::spawn(async move { env.access_token(&t, &id).await }));
    }
    for task in tasks {
        let token = task.await.unwrap().expect("every caller gets a token");
        assert_eq!(token.expose_secret(), "at-1");
    }
    {
        let f = s.family.counts();
        assert_eq!(f.calls, 1, "exactly one token call");
        assert_eq!(f.invalid_grants, 0);
        assert!(!f.revoked);
    }
    // Access and refresh token swapped together; the old refresh token never written back.
    assert_eq!(stored_refresh_token(&s).await, "rt-1");
    let c = s
        .store
        .get_connection(&s.t, &s.connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.token_expires_at_ms,
        Some(a.clock.now_ms() / 1000 * 1000 + 3_600_000)
    );
    assert_eq!(
        kinds(&s).await,
        [ConnectionEventType::Created, ConnectionEventType::Refreshed]
    );

    // Fresh now: no call at all.
    assert_eq!(
        a.access_token(&s.t, &s.connection)
            .await
            .unwrap()
            .expose_secret(),
        "at-1"
    );
    assert_eq!(s.family.counts().calls, 1);
}

#[tokio::test]
async fn a_refused_refresh_token_moves_the_connection_to_needs_reauth_once() {
    let s = setup(false).await;
    // The provider no longer knows the family.
    s.family.forget();
    let env = Environment::new(&s);
    let err = env.access_token(&s.t, &s.connection).await.unwrap_err();
    assert!(
        matches!(err, RefreshError::NeedsReauth(ref r) if r.contains("invalid_grant")),
        "{err:?}"
    );
    let c = s
        .store
        .get_connection(&s.t, &s.connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert_eq!(
        kinds(&s).await,
        [
            ConnectionEventType::Created,
            ConnectionEventType::RefreshFailed
        ]
    );
    // Later callers are told without asking the provider again.
    assert!(matches!(
        env.access_token(&s.t, &s.connection).await,
        Err(RefreshError::NeedsReauth(_))
    ));
    assert_eq!(s.family.counts().calls, 1);
}

#[tokio::test]
async fn a_provider_outage_gives_the_lease_back_and_changes_nothing() {
    let s = setup(true).await;
    let env = Environment::new(&s);
    assert!(matches!(
        env.access_token(&s.t, &s.connection).await,
        Err(RefreshError::Transient(_))
    ));
    let c = s
        .store
        .get_connection(&s.t, &s.connection)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    assert_eq!(stored_refresh_token(&s).await, "rt-0");
    // The lease was given back: the next attempt asks again at once.
    let before = s.family.counts().calls;
    let _ = env.access_token(&s.t, &s.connection).await;
    assert!(s.family.counts().calls > before);
}
