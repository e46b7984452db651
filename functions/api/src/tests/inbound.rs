//! `POST /v1/webhooks/{integration_id}`: a Stripe-signed delivery stored and queued as a pointer;
//! refusals (no secret, a wrong signature, a stale timestamp, a missing or unreadable header) that
//! store and queue nothing and never show the secret; replays acknowledged once; Slack's challenge
//! answered only when signed; HubSpot v3 over the public URL; a Notion token kept pending until
//! the tenant sets it as the secret; Airtable's per-connection secret; raw binary bodies; the size limit; unknown
//! integrations; and tenancy by the integration id alone.

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tributary_core::connection::CREDENTIALS_PURPOSE;
use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};
use tributary_core::inbound::{InboundState, VERIFICATION_TOKEN_PURPOSE};
use tributary_core::job::{JobEnvelope, JobKind};
use tributary_core::ports::{IntegrationStore as _, QueueDepth};
use tributary_core::vault::{Owner, Sealed};

use super::{as_tenant, is_problem, tenant};
use crate::testing::{MemStore, NOW, Req, Res, TestApi, call, deps};

const WHSEC: &str = "whsec_inbound-test-secret-9c1d";
const HOST: &str = "abcdef123.execute-api.us-east-1.amazonaws.com";

/// HMAC-SHA256 (RFC 2104), as the providers sign.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn now_s() -> i64 {
    NOW / 1000
}

struct Setup {
    d: TestApi,
    t: TenantId,
}

impl Setup {
    fn new() -> Self {
        let store = MemStore::default();
        let t = tenant(&store, 100_000);
        Self {
            d: deps(store, Ok(QueueDepth::default())),
            t,
        }
    }

    /// An integration of the tenant made through the API.
    async fn integration(&self, body: Value) -> IntegrationId {
        let res = call(
            &self.d,
            as_tenant(Req::new("POST", "/v1/integrations"), &self.t).json(body),
        )
        .await;
        assert_eq!(res.status, 201, "{:?}", res.body);
        res.body["id"].as_str().unwrap().parse().unwrap()
    }

    async fn stripe(&self) -> IntegrationId {
        self.integration(json!({"provider": "stripe", "webhook_secret": WHSEC}))
            .await
    }

    async fn send(&self, req: Req) -> Res {
        call(&self.d, req).await
    }

    fn stored(&self) -> Vec<tributary_core::inbound::InboundEvent> {
        self.d.store.inbound_of(&self.t)
    }

    fn jobs(&self) -> Vec<JobEnvelope> {
        self.d
            .jobs
            .sent()
            .into_iter()
            .filter(|j| matches!(j.kind, JobKind::InboundWebhook { .. }))
            .collect()
    }
}

fn path(id: &IntegrationId) -> String {
    format!("/v1/webhooks/{id}")
}

/// A Stripe event body.
fn stripe_event(id: &str) -> String {
    json!({"id": id, "object": "event", "type": "customer.updated", "account": "acct_1",
           "data": {"object": {"id": "cus_1", "email": "ada@example.com"}}})
    .to_string()
}

/// A delivery signed as Stripe signs: `t=<ts>,v1=<hex HMAC of "<ts>.<body>">`.
fn stripe_delivery(id: &IntegrationId, secret: &str, ts: i64, body: &str) -> Req {
    let sig = hex::encode(hmac(secret.as_bytes(), format!("{ts}.{body}").as_bytes()));
    Req::new("POST", &path(id))
        .raw(body, "application/json; charset=utf-8")
        .header("stripe-signature", &format!("t={ts},v1={sig}"))
}

#[tokio::test]
async fn a_stripe_signed_delivery_is_stored_and_queued_as_a_pointer() {
    let s = Setup::new();
    let id = s.stripe().await;
    let body = stripe_event("evt_1");

    let res = s
        .send(stripe_delivery(&id, WHSEC, now_s(), &body).header("x-forwarded-proto", "https"))
        .await;

    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body, json!({"status": "accepted"}));
    let [stored] = &s.stored()[..] else {
        panic!("one delivery stored");
    };
    assert_eq!(stored.integration_id, id);
    assert_eq!(stored.provider, "stripe");
    assert_eq!(stored.event_id.as_deref(), Some("evt_1"));
    assert_eq!(stored.event_type.as_deref(), Some("customer.updated"));
    assert_eq!(stored.connection_key.as_deref(), Some("acct_1"));
    assert_eq!(
        stored.payload,
        Some(serde_json::from_str::<Value>(&body).unwrap())
    );
    assert_eq!(stored.state, InboundState::Received);
    let [job] = &s.jobs()[..] else {
        panic!("one job queued");
    };
    assert_eq!(
        job.kind,
        JobKind::InboundWebhook {
            tenant_id: s.t.clone(),
            integration_id: id.clone(),
            inbound_id: stored.id.clone(),
        }
    );
    assert!(
        !job.to_body().contains("ada@example.com"),
        "a message carries a pointer, never the payload"
    );
}

#[tokio::test]
async fn refusals_store_and_queue_nothing_and_never_show_the_secret() {
    let s = Setup::new();
    let id = s.stripe().await;
    let unconfigured = s.integration(json!({"provider": "stripe"})).await;
    let body = stripe_event("evt_1");
    let signed = stripe_delivery(&id, WHSEC, now_s(), &body);
    let sig_only = |header: &str| {
        Req::new("POST", &path(&id))
            .raw(&body, "application/json")
            .header("stripe-signature", header)
    };
    for (what, req, status, code, needle) in [
        (
            "no secret configured",
            stripe_delivery(&unconfigured, WHSEC, now_s(), &body),
            401,
            "webhook_unverified",
            "`webhook_secret`",
        ),
        (
            "a wrong signature",
            stripe_delivery(&id, "whsec_someone-else", now_s(), &body),
            401,
            "webhook_unverified",
            "does not match",
        ),
        (
            "a body altered after signing",
            stripe_delivery(&id, WHSEC, now_s(), &body)
                .raw(&stripe_event("evt_2"), "application/json"),
            401,
            "webhook_unverified",
            "does not match",
        ),
        (
            "a stale timestamp",
            stripe_delivery(&id, WHSEC, now_s() - 301, &body),
            401,
            "webhook_unverified",
            "300 s",
        ),
        (
            "a missing signature header",
            Req::new("POST", &path(&id)).raw(&body, "application/json"),
            401,
            "webhook_unverified",
            "`Stripe-Signature`",
        ),
        (
            "an unreadable signature header",
            sig_only(&format!("v1={}", "ab".repeat(32))),
            400,
            "webhook_malformed",
            "`Stripe-Signature`",
        ),
        (
            "a timestamp that is no number",
            sig_only("t=soon,v1=abcd"),
            400,
            "webhook_malformed",
            "not a number",
        ),
    ] {
        let res = s.send(req).await;
        is_problem(&res, status, code);
        let detail = res.body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{what}: {detail}");
        assert!(!res.body.to_string().contains(WHSEC), "{what}");
        assert!(!res.body.to_string().contains("whsec_someone"), "{what}");
    }
    assert!(s.stored().is_empty());
    assert!(s.jobs().is_empty());
    // The signed one still goes through.
    assert_eq!(s.send(signed).await.status, 200);
}

#[tokio::test]
async fn a_replayed_event_id_is_acknowledged_and_not_queued_again() {
    let s = Setup::new();
    let id = s.stripe().await;
    let other = s.stripe().await;
    let body = stripe_event("evt_1");

    let first = s.send(stripe_delivery(&id, WHSEC, now_s(), &body)).await;
    // The provider's retry, signed anew a minute later.
    s.d.clock.advance(60_000);
    let again = s
        .send(stripe_delivery(&id, WHSEC, now_s() + 60, &body))
        .await;

    assert_eq!(first.body["status"], "accepted");
    assert_eq!(
        again.status, 200,
        "a replay is acknowledged, so the provider stops"
    );
    assert_eq!(again.body, json!({"status": "duplicate"}));
    assert_eq!(s.stored().len(), 1);
    assert_eq!(s.jobs().len(), 1);
    // Another event id, or the same id sent to another integration, is new.
    let res = s
        .send(stripe_delivery(
            &id,
            WHSEC,
            now_s() + 60,
            &stripe_event("evt_2"),
        ))
        .await;
    assert_eq!(res.body["status"], "accepted");
    let res = s
        .send(stripe_delivery(&other, WHSEC, now_s() + 60, &body))
        .await;
    assert_eq!(res.body["status"], "accepted");
    assert_eq!(s.jobs().len(), 3);
    // Past the three days a marker is kept, the id is new again.
    s.d.clock.advance(3 * 86_400_000);
    let later = {
        use tributary_core::time::Clock as _;
        s.d.clock.now_ms() / 1000
    };
    let res = s.send(stripe_delivery(&id, WHSEC, later, &body)).await;
    assert_eq!(res.body["status"], "accepted");
}

#[tokio::test]
async fn a_delivery_whose_job_cannot_be_queued_is_refused_and_its_retry_taken_as_new() {
    let s = Setup::new();
    let id = s.stripe().await;
    let body = stripe_event("evt_1");
    s.d.jobs.fail(true);
    let res = s.send(stripe_delivery(&id, WHSEC, now_s(), &body)).await;
    assert!(res.status >= 500, "{:?}", res.body);
    assert!(
        s.stored().is_empty(),
        "nothing kept for a delivery not acknowledged"
    );

    s.d.jobs.fail(false);
    let res = s.send(stripe_delivery(&id, WHSEC, now_s(), &body)).await;
    assert_eq!(res.body["status"], "accepted", "the retry is not a replay");
    assert_eq!(s.jobs().len(), 1);
}

/// A request signed as Slack signs: `v0=<hex HMAC of "v0:<ts>:<body>">`.
fn slack_delivery(id: &IntegrationId, secret: &str, body: &str) -> Req {
    let ts = now_s();
    let sig = hex::encode(hmac(
        secret.as_bytes(),
        format!("v0:{ts}:{body}").as_bytes(),
    ));
    Req::new("POST", &path(id))
        .raw(body, "application/json")
        .header("x-slack-signature", &format!("v0={sig}"))
        .header("x-slack-request-timestamp", &ts.to_string())
}

#[tokio::test]
async fn slack_s_challenge_is_answered_only_when_signed() {
    let s = Setup::new();
    let signing = "slack-signing-secret-4a7";
    let id = s
        .integration(json!({"provider": "slack", "auth_mode": "oauth2_authorization_code",
                            "oauth_client_id": "c", "oauth_client_secret": "cs", "webhook_secret": signing}))
        .await;
    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).to_string();

    let res = s.send(slack_delivery(&id, signing, &challenge)).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.headers["content-type"], "text/plain");
    assert_eq!(
        res.body,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    for forged in [
        slack_delivery(&id, "not-the-secret", &challenge),
        Req::new("POST", &path(&id)).raw(&challenge, "application/json"),
    ] {
        let res = s.send(forged).await;
        is_problem(&res, 401, "webhook_unverified");
        assert!(!res.body.to_string().contains("3eZbrw1a"));
    }
    assert!(s.stored().is_empty(), "a challenge is no event");
    assert!(s.jobs().is_empty());

    let event = json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": {"type": "message"}}).to_string();
    let res = s.send(slack_delivery(&id, signing, &event)).await;
    assert_eq!(res.body["status"], "accepted");
    assert_eq!(s.stored()[0].connection_key.as_deref(), Some("T1"));
}

#[tokio::test]
async fn hubspot_v3_is_verified_over_the_public_url_it_was_sent_to() {
    use base64::Engine as _;
    let s = Setup::new();
    let client_secret = "hubspot-client-secret-e0f2";
    let id = s
        .integration(json!({"provider": "hubspot", "oauth_client_id": "c",
                            "oauth_client_secret": client_secret,
                            "return_urls": ["https://app.example.com/done"]}))
        .await;
    let body = json!([{"eventId": 1, "subscriptionType": "contact.creation", "portalId": 62515}])
        .to_string();
    let ts = NOW.to_string();
    let signed = |url: &str| {
        let mac = hmac(
            client_secret.as_bytes(),
            format!("POST{url}{body}{ts}").as_bytes(),
        );
        base64::engine::general_purpose::STANDARD.encode(mac)
    };
    let deliver = |sig: String| {
        Req::new("POST", &format!("{}?source=hubspot", path(&id)))
            .raw(&body, "application/json")
            .header("x-hubspot-signature-v3", &sig)
            .header("x-hubspot-request-timestamp", &ts)
    };

    let url = format!("https://{HOST}{}?source=hubspot", path(&id));
    let res = s.send(deliver(signed(&url))).await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body["status"], "accepted");
    assert_eq!(s.stored()[0].connection_key.as_deref(), Some("62515"));
    assert_eq!(
        s.stored()[0].event_type.as_deref(),
        Some("contact.creation")
    );

    // Signed for another host, or without the query, it is not this request.
    for other in [
        format!("https://elsewhere.example.com{}?source=hubspot", path(&id)),
        format!("https://{HOST}{}", path(&id)),
    ] {
        is_problem(
            &s.send(deliver(signed(&other))).await,
            401,
            "webhook_unverified",
        );
    }
    assert_eq!(s.stored().len(), 1);
}

#[tokio::test]
async fn a_binary_body_is_verified_over_its_exact_bytes() {
    let s = Setup::new();
    let id = s.stripe().await;
    // Not UTF-8: the gateway base64-encodes it, the route verifies the decoded bytes.
    let body: Vec<u8> = [
        br#"{"id":"evt_bin","note":""#.as_slice(),
        &[0xff, 0xfe],
        b"\"}",
    ]
    .concat();
    let ts = now_s();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&body);
    let sig = hex::encode(hmac(WHSEC.as_bytes(), &signed));
    let res = s
        .send(
            Req::new("POST", &path(&id))
                .binary(&body, "application/octet-stream")
                .header("stripe-signature", &format!("t={ts},v1={sig}")),
        )
        .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let stored = &s.stored()[0];
    assert_eq!(stored.payload, None, "neither JSON nor text: not kept");
    assert_eq!(stored.payload_omitted.as_ref().unwrap().reason, "not_text");
}

#[tokio::test]
async fn a_body_over_256_kib_is_refused_before_anything_is_read() {
    let s = Setup::new();
    let id = s.stripe().await;
    let body = format!(r#"{{"id":"evt_big","pad":"{}"}}"#, "x".repeat(256 * 1024));
    let res = s.send(stripe_delivery(&id, WHSEC, now_s(), &body)).await;
    is_problem(&res, 413, "payload_too_large");
    assert!(s.stored().is_empty());
    assert_eq!(s.d.store.calls("integration_tenant"), 0);
}

#[tokio::test]
async fn unknown_integrations_and_providers_without_webhooks_are_404() {
    let s = Setup::new();
    let body = stripe_event("evt_1");
    let unknown = IntegrationId::generate();
    let res = s
        .send(stripe_delivery(&unknown, WHSEC, now_s(), &body))
        .await;
    is_problem(&res, 404, "not_found");
    let asana = s
        .integration(json!({"provider": "asana", "auth_mode": "api_key"}))
        .await;
    let res = s.send(stripe_delivery(&asana, WHSEC, now_s(), &body)).await;
    is_problem(&res, 404, "not_found");
    assert!(res.body["detail"].as_str().unwrap().contains("`asana`"));
    // A deleted integration receives nothing more.
    let id = s.stripe().await;
    let res = s
        .send(as_tenant(
            Req::new("DELETE", &format!("/v1/integrations/{id}")),
            &s.t,
        ))
        .await;
    assert_eq!(res.status, 204);
    is_problem(
        &s.send(stripe_delivery(&id, WHSEC, now_s(), &body)).await,
        404,
        "not_found",
    );
    assert!(s.stored().is_empty());
    assert!(s.jobs().is_empty());
}

#[tokio::test]
async fn the_integration_id_alone_decides_the_tenant_and_another_tenant_s_secret_verifies_nothing()
{
    let s = Setup::new();
    let a = s.stripe().await;
    let other = tenant(&s.d.store, 100_000);
    let b_secret = "whsec_tenant-b-secret";
    let res = call(
        &s.d,
        as_tenant(Req::new("POST", "/v1/integrations"), &other)
            .json(json!({"provider": "stripe", "webhook_secret": b_secret})),
    )
    .await;
    let b: IntegrationId = res.body["id"].as_str().unwrap().parse().unwrap();
    let body = stripe_event("evt_1");

    // B's secret does not open A's door, nor A's B's.
    is_problem(
        &s.send(stripe_delivery(&a, b_secret, now_s(), &body)).await,
        401,
        "webhook_unverified",
    );
    is_problem(
        &s.send(stripe_delivery(&b, WHSEC, now_s(), &body)).await,
        401,
        "webhook_unverified",
    );
    // Each accepted delivery stays in its integration's tenant.
    assert_eq!(
        s.send(stripe_delivery(&b, b_secret, now_s(), &body))
            .await
            .body["status"],
        "accepted"
    );
    assert!(s.stored().is_empty(), "nothing of B's lands in A");
    let [stored] = &s.d.store.inbound_of(&other)[..] else {
        panic!("B's delivery in B");
    };
    assert_eq!(stored.integration_id, b);
    let [job] = &s.jobs()[..] else {
        panic!("one job");
    };
    assert!(matches!(&job.kind, JobKind::InboundWebhook { tenant_id, .. } if *tenant_id == other));
}

#[tokio::test]
async fn notion_s_token_is_kept_sealed_and_verifies_nothing_until_the_tenant_confirms_it() {
    let s = Setup::new();
    let id = s
        .integration(json!({"provider": "notion", "auth_mode": "api_key"}))
        .await;
    let token = "secret_tZ8f1Hq2notion-verification-token";
    let handshake = json!({"verification_token": token}).to_string();

    let res = s
        .send(Req::new("POST", &path(&id)).raw(&handshake, "application/json"))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.body,
        json!({"status": "verification_token_received"}),
        "acknowledged, never echoed"
    );
    assert!(!res.body.to_string().contains(token));
    let stored = s.d.store.get_integration(&s.t, &id).await.unwrap().unwrap();
    let sealed = stored.webhook_verification_token.clone().unwrap();
    assert!(!sealed.contains(token));
    let opened = crate::testing::keyring()
        .open(
            &Owner {
                tenant: s.t.as_str(),
                object: id.as_str(),
                purpose: VERIFICATION_TOKEN_PURPOSE,
            },
            &Sealed::decode(&sealed).unwrap(),
        )
        .unwrap();
    assert_eq!(opened.expose_secret(), token.as_bytes());
    assert_eq!(stored.webhook_secret, None);

    // An event signed with the unconfirmed token: anyone could have sent that token.
    let event = json!({"id": "n-ev-1", "type": "page.created", "workspace_id": "ws_1"}).to_string();
    let notion = |secret: &str| {
        let sig = hex::encode(hmac(secret.as_bytes(), event.as_bytes()));
        Req::new("POST", &path(&id))
            .raw(&event, "application/json")
            .header("x-notion-signature", &format!("sha256={sig}"))
    };
    is_problem(&s.send(notion(token)).await, 401, "webhook_unverified");

    let res = call(
        &s.d,
        as_tenant(Req::new("PATCH", &format!("/v1/integrations/{id}")), &s.t)
            .json(json!({"webhook_secret": token})),
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    let res = s.send(notion(token)).await;
    assert_eq!(res.body["status"], "accepted", "{:?}", res.body);
    assert_eq!(s.stored()[0].connection_key.as_deref(), Some("ws_1"));
}

#[tokio::test]
async fn airtable_is_verified_with_the_secret_of_the_connection_its_webhook_id_names() {
    use base64::Engine as _;
    let s = Setup::new();
    let id = s
        .integration(
            json!({"provider": "airtable", "oauth_client_id": "c", "oauth_client_secret": "cs",
                            "return_urls": ["https://app.example.com/done"]}),
        )
        .await;
    let mac_key = b"airtable-mac-secret-bytes-0123456789";
    let conn = ConnectionId::generate();
    let credentials = crate::testing::keyring()
        .seal(
            &Owner {
                tenant: s.t.as_str(),
                object: conn.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            json!({"access_token": "at", "mac_secret_base64": base64::engine::general_purpose::STANDARD.encode(mac_key)})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
        .encode();
    let mut connection =
        tributary_testing::fixtures::oauth_connection(&s.t, &id, &conn, "airtable", credentials);
    connection.tags = [(
        "provider_account".to_owned(),
        "achW8cLjRUvd2Xr9W".to_owned(),
    )]
    .into();
    s.d.store.put_connection(&connection);
    let deliver = |webhook: &str| {
        let body = json!({"base": {"id": "appA"}, "webhook": {"id": webhook}, "timestamp": "2026-01-01T00:00:00.000Z"}).to_string();
        let sig = hex::encode(hmac(mac_key, body.as_bytes()));
        Req::new("POST", &path(&id))
            .raw(&body, "application/json")
            .header("x-airtable-content-mac", &format!("hmac-sha256={sig}"))
    };

    let res = s.send(deliver("achW8cLjRUvd2Xr9W")).await;
    assert_eq!(res.body["status"], "accepted", "{:?}", res.body);
    // Signed with that connection's secret but naming a webhook no connection is tagged with.
    let res = s.send(deliver("achOTHERwebhook00")).await;
    is_problem(&res, 401, "webhook_unverified");
    assert_eq!(s.stored().len(), 1);
}
