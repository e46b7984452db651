//! The dashboard's access: a link opened once within 5 minutes becomes a session cookie of an
//! hour (HttpOnly, SameSite=Strict, Secure over https); the page answers only to the cookie, shows
//! only its tenant, and no credential ever travels in the page's URL.

use serde_json::json;
use tributary_core::ids::TenantId;

use super::{as_tenant, deps, is_problem, tenant};
use crate::testing::{Req, TestApi, call};
use tributary_core::ports::QueueDepth;
use tributary_testing::MemStore;

/// A dashboard link of `t`: its path (`/dashboard/dsl_…`).
async fn link(d: &TestApi, t: &TenantId) -> String {
    let res = call(
        d,
        as_tenant(Req::new("POST", "/v1/dashboard/sessions"), t)
            .header("host", "api.example.com")
            .json(json!({})),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let url = res.body["url"].as_str().unwrap();
    let path = url.strip_prefix("https://api.example.com").unwrap();
    assert!(path.starts_with("/dashboard/dsl_"), "{url}");
    path.to_owned()
}

/// Opens a new link of `t`; the cookie (`name=value`) it sets.
pub(super) async fn open_session(d: &TestApi, t: &TenantId) -> String {
    let res = call(d, Req::new("GET", &link(d, t).await)).await;
    assert_eq!(res.status, 303, "{:?}", res.body);
    assert_eq!(res.headers["location"], "/dashboard");
    let set = res.headers["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_link_opens_once_into_a_session_cookie_of_an_hour() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let path = link(&d, &t).await;
    let res = call(&d, Req::new("GET", &path)).await;
    assert_eq!(res.status, 303);
    let set = res.headers["set-cookie"].to_str().unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=3600",
        "Secure",
    ] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    assert!(set.starts_with("tributary_dashboard=dsc_"), "{set}");
    assert_eq!(
        res.headers["location"], "/dashboard",
        "no token in the page's URL"
    );
    let cookie = set.split(';').next().unwrap();

    // Single use.
    let again = call(&d, Req::new("GET", &path)).await;
    assert_eq!(again.status, 410);
    assert!(again.headers.get("set-cookie").is_none());

    let page = call(&d, Req::new("GET", "/dashboard").cookie(cookie)).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("acme"), "the tenant's name");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    assert_eq!(page.headers["cache-control"], "no-store");

    // An hour later the session is over.
    d.clock.advance(3_600_001);
    let late = call(&d, Req::new("GET", "/dashboard").cookie(cookie)).await;
    assert_eq!(late.status, 401);
}

#[tokio::test]
async fn a_link_not_opened_within_five_minutes_or_unknown_does_not_open() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let path = link(&d, &t).await;
    d.clock.advance(5 * 60 * 1000 + 1);
    assert_eq!(call(&d, Req::new("GET", &path)).await.status, 410);
    let unknown = tributary_core::connect::new_token("dsl_");
    assert_eq!(
        call(&d, Req::new("GET", &format!("/dashboard/{unknown}")))
            .await
            .status,
        410
    );
    assert_eq!(
        call(&d, Req::new("GET", "/dashboard/not-a-token"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_page_answers_only_a_session_cookie() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    assert_eq!(call(&d, Req::new("GET", "/dashboard")).await.status, 401);
    // A link is not a session, nor is a made-up session token.
    let link_token = link(&d, &t)
        .await
        .trim_start_matches("/dashboard/")
        .to_owned();
    for cookie in [
        format!("tributary_dashboard={link_token}"),
        format!(
            "tributary_dashboard={}",
            tributary_core::connect::new_token("dsc_")
        ),
    ] {
        let res = call(&d, Req::new("GET", "/dashboard").cookie(&cookie)).await;
        assert_eq!(res.status, 401, "{cookie}");
    }
    // An API key is not a dashboard session either.
    let res = call(&d, as_tenant(Req::new("GET", "/dashboard"), &t)).await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn views_and_operations_are_checked_and_each_view_renders() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let cookie = open_session(&d, &t).await;
    for view in ["overview", "runs", "failures", "usage", "insights"] {
        let res = call(
            &d,
            Req::new("GET", &format!("/dashboard?view={view}")).cookie(&cookie),
        )
        .await;
        assert_eq!(res.status, 200, "{view}");
        assert!(!res.body.as_str().unwrap().contains("<script"), "{view}");
    }
    let res = call(
        &d,
        Req::new("GET", "/dashboard?view=secrets").cookie(&cookie),
    )
    .await;
    assert_eq!(res.status, 400);
    let res = call(
        &d,
        Req::new("GET", "/dashboard?operation=op_1").cookie(&cookie),
    )
    .await;
    assert_eq!(res.status, 400);
    let unknown = tributary_core::ids::OperationId::generate();
    let res = call(
        &d,
        Req::new("GET", &format!("/dashboard?operation={unknown}")).cookie(&cookie),
    )
    .await;
    assert_eq!(res.status, 404);
}

#[tokio::test]
async fn making_a_link_needs_operations_read_and_a_tenant() {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps(store, Ok(QueueDepth::default()));
    let res = call(
        &d,
        Req::new("POST", "/v1/dashboard/sessions")
            .auth("key_x", t.as_str(), "syncs:read")
            .json(json!({})),
    )
    .await;
    is_problem(&res, 403, "missing_scope");
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/dashboard/sessions"), &t).json(json!({"tenant_id": "x"})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
}
