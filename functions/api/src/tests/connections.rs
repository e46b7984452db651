//! `/v1/connections` against a local Stripe: nothing is saved that the spec or the provider
//! refuses, credentials are sealed and never shown, every change is an event, and a test moves a
//! connection between `active` and `needs_reauth`.

use serde_json::{Value, json};
use tributary_core::connection::{CREDENTIALS_PURPOSE, ConnectionEventType};
use tributary_core::ids::{ConnectionId, TenantId};
use tributary_core::pagination::PageRequest;
use tributary_core::ports::{ConnectionStore as _, CredentialStore as _, QueueDepth};
use tributary_core::vault::{Owner, Sealed};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{as_tenant, is_problem, tenant};
use crate::testing::{GOOD_KEY, MemStore, Req, Res, TestApi, call, deps_with, stripe_mock};

const ALL_PAGES: PageRequest = PageRequest {
    limit: 100,
    after: None,
};

struct Setup {
    d: TestApi,
    t: TenantId,
    stripe: String,
    provider: MockServer,
}

async fn setup() -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let (provider, settings) = stripe_mock().await;
    let d = deps_with(store, Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t).json(json!({"provider": "stripe"})),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    Setup {
        stripe: res.body["id"].as_str().unwrap().to_owned(),
        d,
        t,
        provider,
    }
}

impl Setup {
    async fn connect(&self, body: Value) -> Res {
        call(
            &self.d,
            as_tenant(Req::new("POST", "/v1/connections"), &self.t).json(body),
        )
        .await
    }

    fn body(&self, key: &str) -> Value {
        json!({"integration_id": self.stripe, "end_user_id": "user-1", "credentials": {"api_key": key}})
    }

    async fn events(&self) -> Vec<(ConnectionEventType, String)> {
        self.d
            .store
            .list_connection_events(&self.t, &ALL_PAGES)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.kind, e.connection_id.to_string()))
            .collect()
    }

    async fn connections(&self) -> usize {
        self.d
            .store
            .list_connections(&self.t, &Default::default(), &ALL_PAGES)
            .await
            .unwrap()
            .items
            .len()
    }
}

#[tokio::test]
async fn a_verified_connection_is_saved_with_its_credentials_sealed_and_never_shown() {
    let s = setup().await;
    let res = s
        .connect(json!({
            "integration_id": s.stripe,
            "end_user_id": "user-1",
            "credentials": {"api_key": GOOD_KEY},
            "tags": {"workspace": "acme"},
            "metadata": {"plan": "pro"}
        }))
        .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(res.headers["location"], format!("/v1/connections/{id}"));
    assert_eq!(res.body["status"], "active");
    assert_eq!(res.body["provider"], "stripe");
    assert_eq!(res.body["auth_mode"], "api_key");
    assert_eq!(res.body["tags"], json!({"workspace": "acme"}));
    assert_eq!(res.body["metadata"], json!({"plan": "pro"}));
    assert!(res.body["last_verified_at"].is_string());
    assert!(!res.body.to_string().contains(GOOD_KEY));
    // The provider was asked once, with the key.
    assert_eq!(s.provider.received_requests().await.unwrap().len(), 1);

    let stored =
        s.d.store
            .get_connection(&s.t, &id.parse::<ConnectionId>().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert!(stored.credentials.starts_with("v1.k1."));
    assert!(!stored.credentials.contains(GOOD_KEY));
    let opened = crate::testing::keyring()
        .open(
            &Owner {
                tenant: s.t.as_str(),
                object: &id,
                purpose: CREDENTIALS_PURPOSE,
            },
            &Sealed::decode(&stored.credentials).unwrap(),
        )
        .unwrap();
    let opened: Value =
        serde_json::from_slice(secrecy::ExposeSecret::expose_secret(&opened)).unwrap();
    assert_eq!(opened, json!({"api_key": GOOD_KEY}));

    for res in [
        call(
            &s.d,
            as_tenant(Req::new("GET", &format!("/v1/connections/{id}")), &s.t),
        )
        .await,
        call(&s.d, as_tenant(Req::new("GET", "/v1/connections"), &s.t)).await,
    ] {
        assert_eq!(res.status, 200);
        let text = res.body.to_string();
        assert!(
            !text.contains(GOOD_KEY) && !text.contains(&stored.credentials),
            "{text}"
        );
    }
    assert_eq!(
        s.events().await,
        vec![(ConnectionEventType::Created, id.clone())]
    );
    let audit = s.d.store.list_audit(&s.t, &ALL_PAGES).await.unwrap().items;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "connection.created" && e.target == id)
    );
    assert!(!format!("{audit:?}").contains(GOOD_KEY));
}

#[tokio::test]
async fn nothing_is_saved_that_the_spec_or_the_provider_refuses() {
    let s = setup().await;
    let with = |credentials: Value, extra: Value| {
        let mut body = s.body(GOOD_KEY);
        body["credentials"] = credentials;
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, pointer, needle) in [
        (
            with(json!({}), json!({})),
            "/credentials/api_key",
            "is required",
        ),
        (
            with(json!({"api_key": "pk_live_123"}), json!({})),
            "/credentials/api_key",
            "must match",
        ),
        (
            with(json!({"api_key": GOOD_KEY, "password": "x"}), json!({})),
            "/credentials/password",
            "no credential field",
        ),
        (
            with(
                json!({"api_key": GOOD_KEY}),
                json!({"config": {"subdomain": "x"}}),
            ),
            "/config/subdomain",
            "no configuration field",
        ),
        (
            with(json!({"api_key": GOOD_KEY}), json!({"end_user_id": ""})),
            "/end_user_id",
            "1 to 256",
        ),
        (
            with(
                json!({"api_key": GOOD_KEY}),
                json!({"tags": {"bad key": "v"}}),
            ),
            "/tags/bad key",
            "tag key",
        ),
        (
            with(json!({"api_key": GOOD_KEY}), json!({"metadata": [1]})),
            "/metadata",
            "JSON object",
        ),
        (
            with(
                json!({"api_key": GOOD_KEY}),
                json!({"integration_id": "int_nope"}),
            ),
            "/integration_id",
            "integration",
        ),
    ] {
        let res = s.connect(body.clone()).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["pointer"], pointer,
            "{body}: {:?}",
            res.body
        );
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{body}: {detail}");
        assert!(!res.body.to_string().contains(GOOD_KEY), "{:?}", res.body);
    }
    // None of those reached the provider.
    assert!(s.provider.received_requests().await.unwrap().is_empty());

    // The provider refuses the key: 400, nothing saved, the key not echoed.
    let res = s.connect(s.body("sk_test_revoked99")).await;
    is_problem(&res, 400, "credentials_rejected");
    assert!(res.body["detail"].as_str().unwrap().contains("HTTP 401"));
    assert!(!res.body.to_string().contains("sk_test_revoked99"));

    // OAuth integrations connect through a connect session.
    let oauth = call(
        &s.d,
        as_tenant(Req::new("POST", "/v1/integrations"), &s.t).json(json!({
            "provider": "hubspot", "oauth_client_id": "c", "oauth_client_secret": "s"
        })),
    )
    .await;
    let mut body = s.body(GOOD_KEY);
    body["integration_id"] = oauth.body["id"].clone();
    let res = s.connect(body).await;
    is_problem(&res, 400, "validation_failed");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("connect session")
    );

    // A disabled integration makes no connections.
    let res = call(
        &s.d,
        as_tenant(
            Req::new("PATCH", &format!("/v1/integrations/{}", s.stripe)),
            &s.t,
        )
        .json(json!({"enabled": false})),
    )
    .await;
    assert_eq!(res.status, 200);
    let res = s.connect(s.body(GOOD_KEY)).await;
    is_problem(&res, 400, "validation_failed");
    assert!(res.body["detail"].as_str().unwrap().contains("disabled"));

    assert_eq!(s.connections().await, 0);
    assert!(s.events().await.is_empty());
}

#[tokio::test]
async fn a_provider_that_does_not_answer_usably_is_a_502_and_nothing_is_saved() {
    let s = setup().await;
    s.provider.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .mount(&s.provider)
        .await;
    let res = s.connect(s.body(GOOD_KEY)).await;
    is_problem(&res, 502, "provider_unavailable");
    // Retried once within the API's budget, not more.
    assert_eq!(s.provider.received_requests().await.unwrap().len(), 2);
    assert_eq!(s.connections().await, 0);
}

#[tokio::test]
async fn lists_filter_by_integration_provider_end_user_tag_and_status_and_walk_every_page() {
    let s = setup().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut body = s.body(GOOD_KEY);
        body["end_user_id"] = format!("user-{}", i % 2).into();
        body["tags"] = json!({"tier": if i < 3 { "gold" } else { "free" }});
        let res = s.connect(body).await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        ids.push(res.body["id"].as_str().unwrap().to_owned());
    }
    // One disabled.
    let res = call(
        &s.d,
        as_tenant(
            Req::new("PATCH", &format!("/v1/connections/{}", ids[0])),
            &s.t,
        )
        .json(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(res.body["status"], "disabled", "{:?}", res.body);

    let count = |query: String| {
        let (d, t) = (&s.d, &s.t);
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/connections?limit=2&{query}&cursor={c}"),
                    None => format!("/v1/connections?limit=2&{query}"),
                };
                let res = call(d, as_tenant(Req::new("GET", &path), t)).await;
                assert_eq!(res.status, 200, "{path}: {:?}", res.body);
                for c in res.body["data"].as_array().unwrap() {
                    seen.push(c["id"].as_str().unwrap().to_owned());
                }
                match res.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break seen,
                }
            }
        }
    };
    assert_eq!(count(String::new()).await, ids);
    assert_eq!(count("end_user_id=user-0".into()).await.len(), 4);
    assert_eq!(count("tag=tier:gold".into()).await, ids[..3].to_vec());
    assert_eq!(count("status=disabled".into()).await, vec![ids[0].clone()]);
    assert_eq!(
        count("status=active&tag=tier:gold".into()).await,
        ids[1..3].to_vec()
    );
    assert_eq!(count(format!("integration_id={}", s.stripe)).await.len(), 7);
    assert_eq!(count("provider=hubspot".into()).await.len(), 0);
    for bad in [
        "status=gone",
        "tag=novalue",
        "integration_id=int_x",
        "color=red",
    ] {
        let res = call(
            &s.d,
            as_tenant(Req::new("GET", &format!("/v1/connections?{bad}")), &s.t),
        )
        .await;
        is_problem(&res, 400, "validation_failed");
    }
}

#[tokio::test]
async fn a_test_moves_a_connection_to_needs_reauth_and_back_with_an_event_each_time() {
    let s = setup().await;
    let id = s.connect(s.body(GOOD_KEY)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let test = || {
        call(
            &s.d,
            as_tenant(
                Req::new("POST", &format!("/v1/connections/{id}/test")),
                &s.t,
            ),
        )
    };

    let res = test().await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "active");

    // The end user revokes the key at the provider.
    s.provider.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"message": "Expired API Key provided"}})),
        )
        .mount(&s.provider)
        .await;
    let res = test().await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "needs_reauth");
    assert!(
        res.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 401")
    );

    // Turning it back on verifies it first: still refused, nothing changes.
    let patch = |status: &str| {
        as_tenant(Req::new("PATCH", &format!("/v1/connections/{id}")), &s.t)
            .json(json!({"status": status}))
    };
    is_problem(
        &call(&s.d, patch("active")).await,
        400,
        "credentials_rejected",
    );

    // The provider accepts it again (the key was restored).
    s.provider.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "balance"})))
        .mount(&s.provider)
        .await;
    let res = test().await;
    assert_eq!(res.body["status"], "active", "{:?}", res.body);
    assert_eq!(res.body["status_reason"], Value::Null);

    let res = call(&s.d, patch("disabled")).await;
    assert_eq!(res.body["status"], "disabled");
    let res = call(&s.d, patch("active")).await;
    assert_eq!(res.body["status"], "active", "{:?}", res.body);

    let kinds: Vec<ConnectionEventType> = s.events().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            ConnectionEventType::Created,
            ConnectionEventType::VerificationFailed,
            ConnectionEventType::Reauthorized,
            ConnectionEventType::Updated,
            ConnectionEventType::Updated,
        ]
    );
}

#[tokio::test]
async fn an_update_changes_tags_and_metadata_and_a_deletion_destroys_the_credentials() {
    let s = setup().await;
    let id = s.connect(s.body(GOOD_KEY)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/connections/{id}");
    let res = call(
        &s.d,
        as_tenant(Req::new("PATCH", &path), &s.t)
            .json(json!({"tags": {"plan": "pro"}, "metadata": {"seats": 5}})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["tags"], json!({"plan": "pro"}));
    assert_eq!(res.body["metadata"], json!({"seats": 5}));
    // Unknown fields (credentials cannot be patched) are refused.
    let res = call(
        &s.d,
        as_tenant(Req::new("PATCH", &path), &s.t).json(json!({"credentials": {"api_key": "x"}})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");

    let res = call(&s.d, as_tenant(Req::new("DELETE", &path), &s.t)).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
    is_problem(
        &call(&s.d, as_tenant(Req::new("GET", &path), &s.t)).await,
        404,
        "not_found",
    );
    is_problem(
        &call(&s.d, as_tenant(Req::new("DELETE", &path), &s.t)).await,
        404,
        "not_found",
    );
    assert_eq!(s.connections().await, 0);
    let events = s.events().await;
    assert_eq!(
        events.last().unwrap(),
        &(ConnectionEventType::Deleted, id.clone())
    );
}

#[tokio::test]
async fn an_integration_with_connections_is_not_deleted_until_they_are() {
    let s = setup().await;
    let res = s.connect(s.body(GOOD_KEY)).await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let connection = res.body["id"].as_str().unwrap().to_owned();
    let integration = format!("/v1/integrations/{}", s.stripe);
    is_problem(
        &call(&s.d, as_tenant(Req::new("DELETE", &integration), &s.t)).await,
        409,
        "conflict",
    );
    let res = call(&s.d, as_tenant(Req::new("GET", &integration), &s.t)).await;
    assert_eq!(res.status, 200, "still there");
    let res = call(
        &s.d,
        as_tenant(
            Req::new("DELETE", &format!("/v1/connections/{connection}")),
            &s.t,
        ),
    )
    .await;
    assert_eq!(res.status, 204);
    let res = call(&s.d, as_tenant(Req::new("DELETE", &integration), &s.t)).await;
    assert_eq!(res.status, 204, "{:?}", res.body);
}

/// A Jira connection with a scoped API token (a `cloud_id`) is verified through Atlassian's
/// gateway path, one with a classic token on its site's: the mode's base is chosen per
/// connection, also under a deployment's origin override.
#[tokio::test]
async fn a_scoped_jira_token_is_verified_through_the_gateway_path() {
    use wiremock::matchers::header;
    let server = MockServer::start().await;
    // Basic `me@acme.com:tok`.
    let basic = "Basic bWVAYWNtZS5jb206dG9r";
    for at in ["/ex/jira/c-1/rest/api/3/myself", "/rest/api/3/myself"] {
        Mock::given(method("GET"))
            .and(path(at))
            .and(header("authorization", basic))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accountId": "5b10"})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let mut settings = crate::testing::config();
    settings.egress = tributary_http::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
    settings
        .provider_origins
        .insert("jira".into(), server.uri());
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = deps_with(store, Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/integrations"), &t)
            .json(json!({"provider": "jira", "auth_mode": "basic"})),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let jira = res.body["id"].as_str().unwrap().to_owned();
    for (user, config) in [
        ("scoped", json!({"site": "acme", "cloud_id": "c-1"})),
        ("classic", json!({"site": "acme"})),
    ] {
        let res = call(
            &d,
            as_tenant(Req::new("POST", "/v1/connections"), &t).json(json!({
                "integration_id": jira, "end_user_id": user,
                "config": config,
                "credentials": {"email": "me@acme.com", "api_token": "tok"}
            })),
        )
        .await;
        assert_eq!(res.status, 201, "{user}: {:?}", res.body);
        assert_eq!(res.body["status"], "active", "{user}");
    }
    server.verify().await;
}
