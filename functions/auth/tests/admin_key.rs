//! The deployment admin key: still accepted, read from the secret store only when the credential is
//! neither a tenant key nor a JWT, and a secret store outage is an error (a 500), not a denial.

mod support;

use lambda_runtime::LambdaEvent;
use support::{ADMIN_KEY, World};

#[tokio::test]
async fn when_admin_key_matches_should_allow_with_admin_context() {
    let w = World::new(&[]);
    let out = w.authorize(Some(&format!("Bearer {ADMIN_KEY}"))).await;
    assert!(out.is_authorized);
    assert_eq!(out.context["principal"], "admin-key");
    assert_eq!(out.context["scopes"], "admin");
    assert_eq!(out.context["tenant_id"], "");
}

#[tokio::test]
async fn when_credential_differs_should_deny() {
    let w = World::new(&[]);
    for bad in [
        format!("Bearer {ADMIN_KEY}x"),
        format!("Bearer {}", &ADMIN_KEY[..ADMIN_KEY.len() - 1]),
        "Bearer wrong".to_owned(),
        format!("Basic {ADMIN_KEY}"),
        ADMIN_KEY.to_owned(),
        format!("Bearer {}", "a".repeat(10_000)),
    ] {
        let out = w.authorize(Some(&bad)).await;
        assert!(!out.is_authorized, "{bad:.40} should be denied");
        assert!(out.context.is_empty());
    }
}

#[tokio::test]
async fn when_header_is_missing_should_deny_without_reading_secrets() {
    let w = World::new(&[]);
    let out = w.authorize(None).await;
    assert!(!out.is_authorized);
    assert_eq!(w.deps.secrets.calls("secret"), 0);
}

#[tokio::test]
async fn when_credential_is_a_tenant_key_or_jwt_should_not_read_the_admin_secret() {
    let w = World::new(&[]);
    let tenant_key = format!("trb_live_{}_{}", "0".repeat(32), "A".repeat(43));
    for token in [
        tenant_key.as_str(),
        "trb_live_short",
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        let out = w.authorize(Some(&format!("Bearer {token}"))).await;
        assert!(!out.is_authorized);
    }
    assert_eq!(w.deps.secrets.calls("secret"), 0);
}

#[tokio::test]
async fn when_event_is_garbage_should_deny_not_fail() {
    let w = World::new(&[]);
    for garbage in [
        serde_json::json!(null),
        serde_json::json!("x"),
        serde_json::json!({"headers": "nope"}),
        serde_json::json!({"headers": {"authorization": 5}}),
        serde_json::json!([1, 2, 3]),
    ] {
        let out = tributary_auth::handler::handle(
            &w.deps,
            LambdaEvent::new(garbage, lambda_runtime::Context::default()),
        )
        .await
        .unwrap();
        assert!(!out.is_authorized);
    }
}

#[tokio::test]
async fn when_secret_store_is_down_should_error_not_deny() {
    let w = World::new(&[]);
    w.deps.secrets.fail(true);
    let result = w.try_authorize(Some(&format!("Bearer {ADMIN_KEY}"))).await;
    assert!(result.is_err());
}
