//! Deleting an OAuth connection revokes its token at the provider where the spec says how
//! (Pipedrive: RFC 7009 form with the client's HTTP Basic credentials), best effort: the
//! connection is deleted whatever the provider answers, and the deletion's event says which.

use std::collections::BTreeMap;

use serde_json::json;
use tributary_core::connection::{CREDENTIALS_PURPOSE, Connection, ConnectionEventType};
use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore as _, QueueDepth};
use tributary_core::vault::Owner;
use tributary_testing::fixtures::oauth_connection;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{as_tenant, tenant};
use crate::testing::{MemStore, Req, TestApi, call, deps_with, keyring};

async fn setup(status: u16) -> (TestApi, MemStore, TenantId, ConnectionId, MockServer) {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let server = MockServer::start().await;
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "client:secret");
    Mock::given(method("POST"))
        .and(path("/oauth/revoke"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(body_string_contains("token=rt-0"))
        .and(body_string_contains("token_type_hint=refresh_token"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    let mut settings = crate::testing::config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
    settings
        .provider_origins
        .insert("pipedrive".into(), server.uri());
    let d = deps_with(store.clone(), Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({
            "provider": "pipedrive", "auth_mode": "oauth2_authorization_code",
            "oauth_client_id": "client", "oauth_client_secret": "secret"
        })),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let integration: IntegrationId = res.body["id"].as_str().unwrap().parse().unwrap();
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
    store.put_connection(&Connection {
        config: BTreeMap::from([("api_domain".to_owned(), server.uri())]),
        ..oauth_connection(&t, &integration, &id, "pipedrive", sealed)
    });
    (d, store, t, id, server)
}

async fn deletion_reason(store: &MemStore, t: &TenantId) -> Option<String> {
    store
        .list_connection_events(
            t,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.kind == ConnectionEventType::Deleted)
        .and_then(|e| e.reason)
}

#[tokio::test]
async fn deleting_an_oauth_connection_revokes_its_refresh_token_at_the_provider() {
    let (d, store, t, id, server) = setup(200).await;
    let res = call(
        &d,
        as_tenant(Req::new("DELETE", &format!("/v1/connections/{id}")), &t),
    )
    .await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert!(store.get_connection(&t, &id).await.unwrap().is_none());
    assert_eq!(
        deletion_reason(&store, &t).await.as_deref(),
        Some("revoked at the provider")
    );
}

#[tokio::test]
async fn a_failed_revocation_still_deletes_and_says_so() {
    let (d, store, t, id, server) = setup(503).await;
    let res = call(
        &d,
        as_tenant(Req::new("DELETE", &format!("/v1/connections/{id}")), &t),
    )
    .await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    assert!(!server.received_requests().await.unwrap().is_empty());
    assert!(store.get_connection(&t, &id).await.unwrap().is_none());
    let reason = deletion_reason(&store, &t).await.unwrap();
    assert!(
        reason.starts_with("not revoked at the provider"),
        "{reason}"
    );
    assert!(!reason.contains("rt-0"), "no token in the event");
}

#[tokio::test]
async fn another_tenant_cannot_delete_or_revoke() {
    let (d, store, _t, id, server) = setup(200).await;
    let other = tenant(&store, 100_000);
    let res = call(
        &d,
        as_tenant(Req::new("DELETE", &format!("/v1/connections/{id}")), &other),
    )
    .await;
    assert_eq!(res.status, 404, "{:?}", res.body);
    assert!(server.received_requests().await.unwrap().is_empty());
}
