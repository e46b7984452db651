//! `/v1/webhook-endpoints` and `/v1/webhook-messages`: the secret shown once and kept sealed,
//! URLs the egress guard refuses, rotation with an overlap, the message list and its filters,
//! replays, and the endpoint limit.

use base64::Engine as _;
use serde_json::json;
use tributary_core::ids::{EndpointId, TenantId};
use tributary_core::job::JobKind;
use tributary_core::outbound::ROTATION_OVERLAP_MS;
use tributary_core::ports::{QueueDepth, WebhookStore as _};

use super::{as_tenant, is_problem, seed_message, tenant};
use crate::testing::{MemStore, NOW, Req, Res, TestApi, call, deps};

struct Setup {
    d: TestApi,
    t: TenantId,
}

fn setup() -> Setup {
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    Setup {
        d: deps(store, Ok(QueueDepth::default())),
        t,
    }
}

impl Setup {
    async fn send(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Res {
        let mut req = as_tenant(Req::new(method, path), &self.t);
        if let Some(b) = body {
            req = req.json(b);
        }
        call(&self.d, req).await
    }

    async fn endpoint(&self, url: &str) -> Res {
        self.send("POST", "/v1/webhook-endpoints", Some(json!({"url": url})))
            .await
    }
}

#[tokio::test]
async fn the_secret_is_shown_once_and_kept_sealed() {
    let s = setup();
    let res = s
        .send(
            "POST",
            "/v1/webhook-endpoints",
            Some(json!({
                "url": "https://hooks.example.com/tributary",
                "description": "billing",
                "event_types": ["connection.created", "sync.run.failed", "connection.created"]
            })),
        )
        .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    let secret = res.body["secret"].as_str().unwrap().to_owned();
    let key = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        res.body["event_types"],
        json!(["connection.created", "sync.run.failed"])
    );
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        res.headers["location"],
        format!("/v1/webhook-endpoints/{id}").as_str()
    );
    let got = s
        .send("GET", &format!("/v1/webhook-endpoints/{id}"), None)
        .await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none());
    assert!(!got.body.to_string().contains(key));
    let listed = s.send("GET", "/v1/webhook-endpoints", None).await;
    assert!(!listed.body.to_string().contains(key));
    // A replayed creation never carries it: it was not kept.
    let create = || {
        as_tenant(Req::new("POST", "/v1/webhook-endpoints"), &s.t)
            .header("idempotency-key", "wep-1")
            .json(json!({"url": "https://hooks.example.com/other"}))
    };
    let made = call(&s.d, create()).await;
    assert!(made.body["secret"].is_string());
    let replayed = call(&s.d, create()).await;
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.body["id"], made.body["id"]);
    assert!(replayed.body.get("secret").is_none(), "{:?}", replayed.body);
    // At rest it is sealed, never the secret itself.
    let stored =
        s.d.store
            .get_endpoint(&s.t, &id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.secrets.len(), 1);
    assert!(!stored.secrets[0].sealed.contains(key));
}

#[tokio::test]
async fn urls_the_guard_refuses_are_400s_that_say_why() {
    let s = setup();
    for (url, why) in [
        ("http://hooks.example.com/t", "https"),
        ("https://127.0.0.1/t", "egress"),
        ("https://10.1.2.3/t", "egress"),
        ("https://[::1]/t", "egress"),
        ("https://169.254.169.254/latest", "egress"),
        ("https://localhost/t", "egress"),
        ("https://user:pass@hooks.example.com/t", "Credentials"),
        ("https://hooks.example.com/t#frag", "fragment"),
        ("hooks.example.com/t", "absolute"),
        ("ftp://hooks.example.com/t", "https"),
    ] {
        let res = s.endpoint(url).await;
        is_problem(&res, 400, "validation_failed");
        assert_eq!(res.body["errors"][0]["pointer"], "/url", "{url}");
        let detail = res.body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{url}: {detail}");
    }
    let res = s
        .send(
            "POST",
            "/v1/webhook-endpoints",
            Some(json!({"url": "https://hooks.example.com/t", "event_types": ["connection.exploded"]})),
        )
        .await;
    is_problem(&res, 400, "validation_failed");
    assert_eq!(res.body["errors"][0]["pointer"], "/event_types/0");
    assert!(
        s.send("GET", "/v1/webhook-endpoints", None).await.body["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The deployment's allowlist opens a local receiver, in plain http too.
    let (_server, settings) = crate::testing::stripe_mock().await;
    let store = MemStore::default();
    let t = tenant(&store, 100_000);
    let d = crate::testing::deps_with(store, Ok(QueueDepth::default()), settings);
    let res = call(
        &d,
        as_tenant(Req::new("POST", "/v1/webhook-endpoints"), &t)
            .json(json!({"url": "http://127.0.0.1:9/hooks"})),
    )
    .await;
    assert_eq!(res.status, 201, "{:?}", res.body);
    // A PATCH is checked as a creation is.
    let id = res.body["id"].as_str().unwrap();
    let res = call(
        &d,
        as_tenant(
            Req::new("PATCH", &format!("/v1/webhook-endpoints/{id}")),
            &t,
        )
        .json(json!({"url": "https://192.168.1.1/x"})),
    )
    .await;
    is_problem(&res, 400, "validation_failed");
}

#[tokio::test]
async fn a_rotation_keeps_the_previous_secret_signing_for_a_day() {
    let s = setup();
    let made = s.endpoint("https://hooks.example.com/t").await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let first = made.body["secret"].as_str().unwrap().to_owned();
    let rotated = s
        .send(
            "POST",
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let second = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(
        rotated.body["previous_secret_expires_at"],
        tributary_core::time::rfc3339(NOW + ROTATION_OVERLAP_MS).unwrap()
    );
    let endpoint_id: EndpointId = id.parse().unwrap();
    let stored =
        s.d.store
            .get_endpoint(&s.t, &endpoint_id)
            .await
            .unwrap()
            .unwrap();
    let signing: Vec<_> = stored.signing_secrets(NOW).collect();
    assert_eq!(signing.len(), 2, "both sign during the overlap");
    assert_eq!(
        stored
            .signing_secrets(NOW + ROTATION_OVERLAP_MS + 1)
            .count(),
        1,
        "then only the new one"
    );
    // Another rotation ends the older overlap: never more than two.
    s.send(
        "POST",
        &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
        None,
    )
    .await;
    let stored =
        s.d.store
            .get_endpoint(&s.t, &endpoint_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.secrets.len(), 2);
}

#[tokio::test]
async fn an_ended_message_is_replayed_with_its_id_and_a_pending_one_is_not() {
    let s = setup();
    let made = s.endpoint("https://hooks.example.com/t").await;
    let endpoint = made.body["id"].as_str().unwrap().to_owned();
    let message = seed_message(&s.d, &s.t, &endpoint).await;
    let res = s
        .send("GET", &format!("/v1/webhook-messages/{message}"), None)
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["state"], "exhausted");
    assert_eq!(res.body["payload"]["type"], "connection.created");

    let res = s
        .send(
            "POST",
            &format!("/v1/webhook-messages/{message}/replay"),
            None,
        )
        .await;
    assert_eq!(res.status, 202, "{:?}", res.body);
    assert_eq!(res.body["id"], message.as_str());
    assert_eq!(res.body["state"], "pending");
    assert_eq!(res.body["attempts"], 0);
    assert_eq!(res.body["total_attempts"], 8);
    let jobs = s.d.jobs.sent();
    assert_eq!(jobs.len(), 1);
    assert!(matches!(
        &jobs[0].kind,
        JobKind::DeliverWebhook { message_id, .. } if message_id.as_str() == message
    ));
    // Pending now: not replayed again.
    let res = s
        .send(
            "POST",
            &format!("/v1/webhook-messages/{message}/replay"),
            None,
        )
        .await;
    is_problem(&res, 409, "conflict");
    assert_eq!(s.d.jobs.sent().len(), 1);

    // A message whose endpoint is disabled is not replayed.
    let other = seed_message(&s.d, &s.t, &endpoint).await;
    s.send(
        "PATCH",
        &format!("/v1/webhook-endpoints/{endpoint}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let res = s
        .send(
            "POST",
            &format!("/v1/webhook-messages/{other}/replay"),
            None,
        )
        .await;
    is_problem(&res, 409, "conflict");
    assert!(res.body["detail"].as_str().unwrap().contains("disabled"));
}

#[tokio::test]
async fn messages_are_listed_newest_first_and_filtered() {
    let s = setup();
    let a = s.endpoint("https://hooks.example.com/a").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = s.endpoint("https://hooks.example.com/b").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = seed_message(&s.d, &s.t, &a).await;
    s.d.clock.advance(1_000);
    let second = seed_message(&s.d, &s.t, &b).await;
    let all = s.send("GET", "/v1/webhook-messages", None).await;
    let ids: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    let only_a = s
        .send(
            "GET",
            &format!("/v1/webhook-messages?endpoint_id={a}"),
            None,
        )
        .await;
    assert_eq!(only_a.body["data"][0]["id"], first.as_str());
    assert_eq!(only_a.body["data"].as_array().unwrap().len(), 1);
    let pending = s
        .send("GET", "/v1/webhook-messages?state=pending", None)
        .await;
    assert!(pending.body["data"].as_array().unwrap().is_empty());
    let exhausted = s
        .send("GET", "/v1/webhook-messages?state=exhausted&limit=1", None)
        .await;
    assert_eq!(exhausted.body["data"].as_array().unwrap().len(), 1);
    assert!(exhausted.body["next_cursor"].is_string());
    is_problem(
        &s.send("GET", "/v1/webhook-messages?state=lost", None).await,
        400,
        "validation_failed",
    );
}

#[tokio::test]
async fn a_tenant_has_at_most_twenty_endpoints() {
    let s = setup();
    for i in 0..tributary_core::outbound::MAX_ENDPOINTS {
        let res = s.endpoint(&format!("https://hooks.example.com/{i}")).await;
        assert_eq!(res.status, 201, "{i}");
    }
    let res = s.endpoint("https://hooks.example.com/one-more").await;
    is_problem(&res, 409, "conflict");
}
