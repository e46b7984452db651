//! Tenant API keys through the handler: only a known, matching, unrevoked, unexpired key of an active
//! tenant is allowed, with the key's tenant and scopes in the context.

mod support;

use support::{NOW, Seed as _, World};
use tributary_core::scope::Scope;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn when_key_is_valid_should_allow_with_tenant_and_scopes() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (id, token) = w
        .store()
        .add_key(&tenant, vec![Scope::ConnectionsRead, Scope::SyncsWrite]);

    let out = w.authorize(Some(&bearer(&token))).await;

    assert!(out.is_authorized);
    assert_eq!(out.context["principal"], id.to_string());
    assert_eq!(out.context["tenant_id"], tenant.to_string());
    assert_eq!(out.context["scopes"], "connections:read syncs:write");
    assert_eq!(w.deps.secrets.calls("secret"), 0);
}

#[tokio::test]
async fn when_key_is_revoked_should_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (id, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    assert!(w.store().edit_key(&id, |k| k.revoked_at_ms = Some(NOW - 1)));

    assert!(!w.authorize(Some(&bearer(&token))).await.is_authorized);
}

#[tokio::test]
async fn when_key_has_expired_should_deny_and_before_expiry_allow() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (id, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    assert!(
        w.store()
            .edit_key(&id, |k| k.expires_at_ms = Some(NOW + 1_000))
    );

    assert!(w.authorize(Some(&bearer(&token))).await.is_authorized);
    w.clock.advance(1_000);
    assert!(!w.authorize(Some(&bearer(&token))).await.is_authorized);
}

#[tokio::test]
async fn when_secret_is_wrong_should_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    let (_, other) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    // The first key's id with the second key's secret.
    let forged = format!("{}{}", &token[..42], &other[42..]);
    assert_ne!(forged, token);

    assert!(!w.authorize(Some(&bearer(&forged))).await.is_authorized);
}

#[tokio::test]
async fn when_key_id_is_unknown_should_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w.store().add_key(&tenant, vec![]);
    let unknown = format!("trb_live_{}{}", "f".repeat(32), &token[41..]);

    assert!(!w.authorize(Some(&bearer(&unknown))).await.is_authorized);
}

#[tokio::test]
async fn when_tenant_is_disabled_should_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    w.store().disable(&tenant);

    assert!(!w.authorize(Some(&bearer(&token))).await.is_authorized);
}

#[tokio::test]
async fn when_tenant_is_deleted_should_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    w.store().delete(&tenant);

    assert!(!w.authorize(Some(&bearer(&token))).await.is_authorized);
}

#[tokio::test]
async fn when_key_is_malformed_should_deny() {
    let w = World::new(&[]);
    for token in [
        "trb_live_",
        "trb_live_zz",
        "trb_live_ééééééééééééééééééééééééééééééééééé_x",
    ] {
        assert!(
            !w.authorize(Some(&bearer(token))).await.is_authorized,
            "{token}"
        );
    }
}

#[tokio::test]
async fn when_store_is_down_should_error_not_deny() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w.store().add_key(&tenant, vec![Scope::ConnectionsRead]);
    w.store().fail(true);

    assert!(w.try_authorize(Some(&bearer(&token))).await.is_err());
}

#[tokio::test]
async fn a_tenant_key_never_carries_admin_even_if_its_record_says_so() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (_, token) = w
        .store()
        .add_key(&tenant, vec![Scope::Admin, Scope::KeysRead]);

    let out = w.authorize(Some(&bearer(&token))).await;

    assert!(out.is_authorized);
    assert_eq!(out.context["scopes"], "keys:read");
}

#[tokio::test]
async fn a_key_expiry_travels_in_the_context_so_the_api_can_enforce_it_past_the_cache() {
    let w = World::new(&[]);
    let tenant = w.store().add_tenant();
    let (id, token) = w.store().add_key(&tenant, vec![Scope::KeysRead]);
    assert_eq!(
        w.authorize(Some(&bearer(&token))).await.context["expires_at_ms"],
        ""
    );
    assert!(
        w.store()
            .edit_key(&id, |k| k.expires_at_ms = Some(NOW + 5_000))
    );
    let out = w.authorize(Some(&bearer(&token))).await;
    assert_eq!(out.context["expires_at_ms"], (NOW + 5_000).to_string());
}
