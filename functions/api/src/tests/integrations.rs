//! `/v1/integrations`: checked against the provider's spec, the client secret sealed by the vault
//! and never shown, rotation re-seals on write, and deletion (its own or its tenant's) removes it.

use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tributary_core::ids::{IntegrationId, TenantId};
use tributary_core::integration::CLIENT_SECRET_PURPOSE;
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{CredentialStore as _, IntegrationStore as _, QueueDepth};
use tributary_core::vault::{Keyring, KeyringFuture, KeyringSource, Owner, Sealed};

use super::{admin, as_tenant, is_problem, tenant};
use crate::testing::{MemStore, Req, TestApi, call, deps, deps_with_keyring};

const SECRET: &str = "hubspot-client-secret-7f3a9";

fn oauth_body() -> Value {
    json!({
        "provider": "hubspot",
        "oauth_client_id": "client-1",
        "oauth_client_secret": SECRET,
        "return_urls": ["https://app.example.com/done", "http://localhost:3000/cb"]
    })
}

async fn create(d: &TestApi, t: &TenantId, body: Value) -> crate::testing::Res {
    call(
        d,
        as_tenant(Req::new("POST", "/v1/integrations"), t).json(body),
    )
    .await
}

async fn stored(d: &TestApi, t: &TenantId, id: &str) -> tributary_core::integration::Integration {
    d.store
        .get_integration(t, &id.parse::<IntegrationId>().unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn ring(doc: Value) -> Keyring {
    Keyring::from_secret(&SecretString::from(doc.to_string())).unwrap()
}

const K1: &str = "first-key-material-first-key-material-first";
const K2: &str = "second-key-material-second-key-material-2nd";

#[tokio::test]
async fn an_oauth_integration_keeps_its_client_secret_sealed_and_never_shows_it() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));

    let res = create(&d, &t, oauth_body()).await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(res.headers["location"], format!("/v1/integrations/{id}"));
    assert_eq!(res.body["auth_mode"], "oauth2_authorization_code");
    assert_eq!(res.body["has_oauth_client_secret"], true);
    assert_eq!(res.body["name"], "HubSpot");
    // The spec's default scopes.
    assert!(!res.body["scopes"].as_array().unwrap().is_empty());
    assert!(!res.body.to_string().contains(SECRET));

    // At rest: sealed, bound to this tenant and integration.
    let record = stored(&d, &t, &id).await;
    let sealed_text = record.oauth_client_secret.clone().unwrap();
    assert!(sealed_text.starts_with("v1.k1."), "{sealed_text}");
    assert!(!sealed_text.contains(SECRET));
    let keys = crate::testing::keyring();
    let sealed = Sealed::decode(&sealed_text).unwrap();
    let mine = Owner {
        tenant: t.as_str(),
        object: &id,
        purpose: CLIENT_SECRET_PURPOSE,
    };
    assert_eq!(
        keys.open(&mine, &sealed).unwrap().expose_secret(),
        SECRET.as_bytes()
    );
    let other = TenantId::generate();
    assert!(
        keys.open(
            &Owner {
                tenant: other.as_str(),
                ..mine
            },
            &sealed
        )
        .is_err()
    );

    for res in [
        call(
            &d,
            as_tenant(Req::new("GET", &format!("/v1/integrations/{id}")), &t),
        )
        .await,
        call(&d, as_tenant(Req::new("GET", "/v1/integrations"), &t)).await,
    ] {
        assert_eq!(res.status, 200);
        let text = res.body.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(&sealed_text),
            "{text}"
        );
    }
    let audit = d
        .store
        .list_audit(
            &t,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "integration.created" && e.target == id)
    );
    assert!(!format!("{:?}", audit.items).contains(SECRET));
}

#[tokio::test]
async fn an_integration_is_checked_against_its_provider_s_spec_and_nothing_bad_is_stored() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let with = |changes: Value| {
        let mut body = oauth_body();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (body, pointer, needle) in [
        (
            with(json!({"provider": "nope"})),
            "/provider",
            "Unknown provider",
        ),
        (
            with(json!({"auth_mode": "basic"})),
            "/auth_mode",
            "Supported: oauth2_authorization_code, api_key",
        ),
        (
            with(json!({"oauth_client_id": null})),
            "/oauth_client_id",
            "oauth_client_id",
        ),
        (
            with(json!({"oauth_client_secret": null})),
            "/oauth_client_secret",
            "`oauth_client_secret`",
        ),
        (
            with(json!({"oauth_client_id": "has space"})),
            "/oauth_client_id",
            "printable",
        ),
        (
            json!({"provider": "stripe", "oauth_client_id": "x", "oauth_client_secret": "y"}),
            "/oauth_client_id",
            "does not use",
        ),
        (
            json!({"provider": "stripe", "scopes": ["read"]}),
            "/scopes",
            "no scopes",
        ),
        (with(json!({"scopes": ["a b"]})), "/scopes/0", "scope"),
        (
            with(json!({"return_urls": ["http://app.example.com/cb"]})),
            "/return_urls/0",
            "https",
        ),
        (
            with(json!({"return_urls": ["https://app.example.com/cb#x"]})),
            "/return_urls/0",
            "fragment",
        ),
        (
            with(json!({"return_urls": ["https://user:pw@app.example.com/"]})),
            "/return_urls/0",
            "credentials",
        ),
        (
            with(json!({"return_urls": ["https://APP.example.com"]})),
            "/return_urls/0",
            "`https://app.example.com/`",
        ),
        (with(json!({"name": "  "})), "/name", "1 to 100"),
    ] {
        let res = create(&d, &t, body.clone()).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["pointer"], pointer,
            "{body}: {:?}",
            res.body
        );
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{body}: {detail}");
        assert!(!res.body.to_string().contains(SECRET));
    }
    let list = call(&d, as_tenant(Req::new("GET", "/v1/integrations"), &t)).await;
    assert_eq!(list.body["data"], json!([]));

    // The key-based mode of the same provider needs no client.
    let res = create(
        &d,
        &t,
        json!({"provider": "hubspot", "auth_mode": "api_key"}),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    assert_eq!(res.body["has_oauth_client_secret"], false);
    assert_eq!(res.body["scopes"], json!([]));
}

#[tokio::test]
async fn an_update_is_checked_like_a_creation_and_keeps_what_it_does_not_name() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let id = create(&d, &t, oauth_body()).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/integrations/{id}");
    let patch = |body: Value| as_tenant(Req::new("PATCH", &path), &t).json(body);

    let res = call(
        &d,
        patch(json!({"enabled": false, "scopes": ["crm.objects.contacts.read"]})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["enabled"], false);
    assert_eq!(res.body["scopes"], json!(["crm.objects.contacts.read"]));
    assert_eq!(res.body["oauth_client_id"], "client-1");
    assert_eq!(res.body["return_urls"].as_array().unwrap().len(), 2);
    let before = stored(&d, &t, &id).await;
    assert_eq!(before.version, 2);

    // The provider and auth mode are fixed; a bad change is refused and changes nothing.
    is_problem(
        &call(&d, patch(json!({"provider": "stripe"}))).await,
        400,
        "validation_failed",
    );
    let res = call(&d, patch(json!({"return_urls": ["ftp://x.example.com/"]}))).await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(stored(&d, &t, &id).await, before);

    // A new secret is sealed anew; the old ciphertext is gone.
    let res = call(
        &d,
        patch(json!({"oauth_client_secret": "rotated-client-secret"})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert!(!res.body.to_string().contains("rotated-client-secret"));
    let after = stored(&d, &t, &id).await;
    assert_ne!(after.oauth_client_secret, before.oauth_client_secret);
    let opened = crate::testing::keyring()
        .open(
            &Owner {
                tenant: t.as_str(),
                object: &id,
                purpose: CLIENT_SECRET_PURPOSE,
            },
            &Sealed::decode(after.oauth_client_secret.as_deref().unwrap()).unwrap(),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), b"rotated-client-secret");

    // A key-based integration refuses a client.
    let key_id = create(&d, &t, json!({"provider": "stripe"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(
        &d,
        as_tenant(Req::new("PATCH", &format!("/v1/integrations/{key_id}")), &t)
            .json(json!({"oauth_client_id": "c"})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/oauth_client_id");
}

/// A keyring that an operator can rotate while the API runs.
struct Rotating(Mutex<Arc<Keyring>>);

impl KeyringSource for Rotating {
    fn keyring(&self) -> KeyringFuture<'_> {
        let ring = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(ring) })
    }
}

#[tokio::test]
async fn after_a_rotation_old_secrets_still_open_and_are_resealed_when_next_written() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let keys = Arc::new(Rotating(Mutex::new(Arc::new(ring(
        json!({"active": "k1", "k1": K1}),
    )))));
    let d = deps_with_keyring(store, keys.clone());
    let id = create(&d, &t, oauth_body()).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stored(&d, &t, &id)
            .await
            .oauth_client_secret
            .unwrap()
            .starts_with("v1.k1.")
    );

    *keys.0.lock().unwrap() = Arc::new(ring(json!({"active": "k2", "k1": K1, "k2": K2})));
    let res = call(
        &d,
        as_tenant(Req::new("PATCH", &format!("/v1/integrations/{id}")), &t)
            .json(json!({"name": "CRM"})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let resealed = stored(&d, &t, &id).await.oauth_client_secret.unwrap();
    assert!(resealed.starts_with("v1.k2."), "{resealed}");
    // Readable with the new key alone: k1 can now be retired.
    let only_k2 = ring(json!({"active": "k2", "k2": K2}));
    let opened = only_k2
        .open(
            &Owner {
                tenant: t.as_str(),
                object: &id,
                purpose: CLIENT_SECRET_PURPOSE,
            },
            &Sealed::decode(&resealed).unwrap(),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), SECRET.as_bytes());
}

#[tokio::test]
async fn a_deleted_integration_is_gone_and_a_deleted_tenant_takes_its_integrations() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let id = create(&d, &t, oauth_body()).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/integrations/{id}");
    let res = call(&d, as_tenant(Req::new("DELETE", &path), &t)).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    is_problem(
        &call(&d, as_tenant(Req::new("GET", &path), &t)).await,
        404,
        "not_found",
    );
    is_problem(
        &call(&d, as_tenant(Req::new("DELETE", &path), &t)).await,
        404,
        "not_found",
    );
    let audit = d
        .store
        .list_audit(
            &t,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "integration.deleted" && e.target == id)
    );

    create(&d, &t, oauth_body()).await;
    assert!(d.store.owned_by(&t) > 0);
    let res = call(&d, admin(Req::new("DELETE", &format!("/v1/tenants/{t}")))).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    assert_eq!(d.store.owned_by(&t), 0);
}

const WHSEC: &str = "whsec_stripe-endpoint-secret-5d2c";

#[tokio::test]
async fn a_webhook_secret_is_sealed_write_only_and_refused_where_the_spec_verifies_otherwise() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));

    let res = create(
        &d,
        &t,
        json!({"provider": "stripe", "webhook_secret": WHSEC, "webhook_routing": "forward"}),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    assert_eq!(res.body["has_webhook_secret"], true);
    assert_eq!(res.body["has_pending_verification_token"], false);
    assert_eq!(res.body["webhook_routing"], "forward");
    assert!(!res.body.to_string().contains(WHSEC));
    let id = res.body["id"].as_str().unwrap().to_owned();
    let sealed = stored(&d, &t, &id).await.webhook_secret.unwrap();
    assert!(!sealed.contains(WHSEC));
    let opened = crate::testing::keyring()
        .open(
            &Owner {
                tenant: t.as_str(),
                object: &id,
                purpose: tributary_core::inbound::WEBHOOK_SECRET_PURPOSE,
            },
            &Sealed::decode(&sealed).unwrap(),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), WHSEC.as_bytes());
    let got = call(
        &d,
        as_tenant(Req::new("GET", &format!("/v1/integrations/{id}")), &t),
    )
    .await;
    assert!(!got.body.to_string().contains(WHSEC));
    assert!(!got.body.to_string().contains(&sealed));

    // Routing and a new secret by PATCH; the default routing is `both`.
    let res = call(
        &d,
        as_tenant(Req::new("PATCH", &format!("/v1/integrations/{id}")), &t)
            .json(json!({"webhook_routing": "sync", "webhook_secret": "whsec_rotated"})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["webhook_routing"], "sync");
    assert_ne!(stored(&d, &t, &id).await.webhook_secret.unwrap(), sealed);
    let plain = create(&d, &t, json!({"provider": "stripe"})).await;
    assert_eq!(plain.body["webhook_routing"], "both");
    assert_eq!(plain.body["has_webhook_secret"], false);

    // HubSpot signs with the OAuth client secret; Asana sends no verified webhooks.
    let mut hubspot = oauth_body();
    hubspot["webhook_secret"] = WHSEC.into();
    let res = create(&d, &t, hubspot).await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/webhook_secret");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("`oauth_client_secret`"),
        "{:?}",
        res.body
    );
    assert!(!res.body.to_string().contains(WHSEC));
    let res = create(
        &d,
        &t,
        json!({"provider": "asana", "auth_mode": "api_key", "webhook_routing": "sync"}),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/webhook_routing");
    let res = create(
        &d,
        &t,
        json!({"provider": "stripe", "webhook_routing": "sometimes"}),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
}

#[tokio::test]
async fn a_verification_token_is_shown_to_the_tenant_and_verifies_nothing_until_confirmed() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let res = create(
        &d,
        &t,
        json!({"provider": "notion", "auth_mode": "api_key"}),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let id: IntegrationId = res.body["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/v1/integrations/{id}");
    let token_path = format!("{path}/webhook-verification-token");

    // None pending yet: nothing to read.
    is_problem(
        &call(&d, as_tenant(Req::new("GET", &token_path), &t)).await,
        409,
        "conflict",
    );

    // The provider's handshake stored one (as the webhook route does).
    let token = "secret_notion-verification-token-81b2";
    let mut integration = stored(&d, &t, id.as_str()).await;
    integration.webhook_verification_token = Some(
        crate::testing::keyring()
            .seal(
                &Owner {
                    tenant: t.as_str(),
                    object: id.as_str(),
                    purpose: tributary_core::inbound::VERIFICATION_TOKEN_PURPOSE,
                },
                token.as_bytes(),
            )
            .unwrap()
            .encode(),
    );
    d.store.put_integration(&integration);
    let got = call(&d, as_tenant(Req::new("GET", &path), &t)).await;
    assert_eq!(got.body["has_pending_verification_token"], true);
    assert_eq!(got.body["has_webhook_secret"], false);
    assert!(!got.body.to_string().contains(token));
    // Read with `integrations:write` only.
    let res = call(
        &d,
        Req::new("GET", &token_path).auth("key_x", t.as_str(), "integrations:read"),
    )
    .await;
    is_problem(&res, 403, "missing_scope");
    let res = call(&d, as_tenant(Req::new("GET", &token_path), &t)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["verification_token"], token);

    // Other changes keep it pending.
    let res = call(
        &d,
        as_tenant(Req::new("PATCH", &path), &t).json(json!({"name": "Docs"})),
    )
    .await;
    assert_eq!(res.body["has_pending_verification_token"], true);
    // The tenant pasted it into Notion, then confirms that very value as the secret.
    let res = call(
        &d,
        as_tenant(Req::new("PATCH", &path), &t).json(json!({"webhook_secret": token})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["has_pending_verification_token"], false);
    assert_eq!(res.body["has_webhook_secret"], true);
    let confirmed = stored(&d, &t, id.as_str()).await;
    assert_eq!(confirmed.webhook_verification_token, None);
    let opened = crate::testing::keyring()
        .open(
            &Owner {
                tenant: t.as_str(),
                object: id.as_str(),
                purpose: tributary_core::inbound::WEBHOOK_SECRET_PURPOSE,
            },
            &Sealed::decode(confirmed.webhook_secret.as_deref().unwrap()).unwrap(),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), token.as_bytes());
}
