//! Stripe: the secret key as a Bearer token and the pinned `Stripe-Version` on every request,
//! `starting_after`/`limit` paging while `has_more`, customers read whole (no `created` filter),
//! form-encoded actions with `a[b]` nesting, verification on `/balance`, and the webhook
//! signature as `stripe.yaml` configures it.

use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    engine, headers, hmac_hex, mocked, query_exactly, read_all, spec, verified_event,
    verify_webhook,
};

const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

fn creds() -> [(&'static str, &'static str); 1] {
    [("api_key", KEY)]
}

fn pinned_version() -> String {
    spec("stripe").headers["Stripe-Version"].clone()
}

#[tokio::test]
async fn stripe_customers_page_by_starting_after_and_are_read_whole() {
    let server = MockServer::start().await;
    let version = pinned_version();
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("stripe-version", version.as_str()))
        .and(query_exactly(&[("limit", "100")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "url": "/v1/customers",
            "has_more": true,
            "data": [
                {"id": "cus_3", "object": "customer", "created": 1_700_000_300, "email": "c@example.com"},
                {"id": "cus_2", "object": "customer", "created": 1_700_000_200, "email": "b@example.com"}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(header("stripe-version", version.as_str()))
        .and(query_exactly(&[
            ("limit", "100"),
            ("starting_after", "cus_2"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "url": "/v1/customers",
            "has_more": false,
            "data": [{"id": "cus_1", "object": "customer", "created": 1_700_000_100}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let spec = spec("stripe");
    let customers = spec.streams.iter().find(|s| s.name == "customers").unwrap();
    assert!(
        customers.incremental.is_none(),
        "an incremental read on `created` would never see an updated customer"
    );
    let got = read_all(
        &engine(),
        &spec,
        "customers",
        &mocked(&server, "/v1", &[], &creds()),
    )
    .await
    .unwrap();
    assert_eq!(got.ids("id"), ["cus_3", "cus_2", "cus_1"]);
    assert_eq!(got.pages, 2);
}

/// Charges and invoices page like customers: `limit` on every page, `starting_after` the id of the
/// last object of the page before, until `has_more` is false.
#[tokio::test]
async fn stripe_charges_and_invoices_page_the_same_way() {
    let cases = [
        (
            "charges",
            [
                json!({"id": "ch_3", "object": "charge", "amount": 1099, "currency": "usd", "status": "succeeded"}),
                json!({"id": "ch_2", "object": "charge", "amount": 500, "currency": "usd", "status": "succeeded"}),
                json!({"id": "ch_1", "object": "charge", "amount": 2000, "currency": "eur", "status": "failed"}),
            ],
            ["ch_3", "ch_2", "ch_1"],
        ),
        (
            "invoices",
            [
                json!({"id": "in_3", "object": "invoice", "customer": "cus_1", "status": "open", "amount_due": 1099}),
                json!({"id": "in_2", "object": "invoice", "customer": "cus_1", "status": "paid", "amount_due": 500}),
                json!({"id": "in_1", "object": "invoice", "customer": "cus_2", "status": "draft", "amount_due": 0}),
            ],
            ["in_3", "in_2", "in_1"],
        ),
    ];
    for (stream, [first, second, third], ids) in cases {
        let server = MockServer::start().await;
        let list_path = format!("/v1/{stream}");
        Mock::given(method("GET"))
            .and(path(list_path.as_str()))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("stripe-version", pinned_version().as_str()))
            .and(query_exactly(&[("limit", "100")]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "url": list_path, "has_more": true, "data": [first, second]
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(list_path.as_str()))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("stripe-version", pinned_version().as_str()))
            .and(query_exactly(&[
                ("limit", "100"),
                ("starting_after", ids[1]),
            ]))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "object": "list", "url": list_path, "has_more": false, "data": [third]
            })))
            .expect(1)
            .mount(&server)
            .await;

        let got = read_all(
            &engine(),
            &spec("stripe"),
            stream,
            &mocked(&server, "/v1", &[], &creds()),
        )
        .await
        .unwrap_or_else(|e| panic!("{stream}: {e}"));

        assert_eq!(got.ids("id"), ids, "{stream}");
        assert_eq!(got.pages, 2, "{stream}");
    }
}

#[tokio::test]
async fn stripe_create_customer_posts_a_form_with_nested_metadata() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("stripe-version", pinned_version().as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "email=ada%40example.com&metadata%5Bplan%5D=pro&name=Ada+Lovelace",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cus_NffrFeUfNV2Hib", "object": "customer", "email": "ada@example.com"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("stripe"),
            "create_customer",
            &mocked(&server, "/v1", &[], &creds()),
            &json!({"email": "ada@example.com", "name": "Ada Lovelace", "metadata": {"plan": "pro"}}),
        )
        .await
        .unwrap();
    assert_eq!(out["id"], "cus_NffrFeUfNV2Hib");
}

#[tokio::test]
async fn stripe_create_refund_posts_the_charge_and_amount() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("amount=500&charge=ch_3MmlLrLkdIwHu7ix0snN0B15"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ", "object": "refund", "amount": 500, "status": "succeeded"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let out = engine()
        .action(
            &spec("stripe"),
            "create_refund",
            &mocked(&server, "/v1", &[], &creds()),
            &json!({"charge": "ch_3MmlLrLkdIwHu7ix0snN0B15", "amount": 500}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "succeeded");

    // The input schema refuses what is not a charge before any request.
    let err = engine()
        .action(
            &spec("stripe"),
            "create_refund",
            &mocked(&server, "/v1", &[], &creds()),
            &json!({"charge": "pi_123"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("charge"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Stripe deduplicates a POST by its `Idempotency-Key`: an action sends the key it is given, the
/// same on the engine's retry of an outage, so the provider writes once.
#[tokio::test]
async fn stripe_actions_send_the_given_idempotency_key_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("idempotency-key", "tributary-key-1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header("idempotency-key", "tributary-key-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "cus_1"})))
        .mount(&server)
        .await;
    let out = engine()
        .action_with_key(
            &spec("stripe"),
            "create_customer",
            &mocked(&server, "/v1", &[], &creds()),
            &json!({"email": "ada@example.com"}),
            Some("tributary-key-1"),
        )
        .await
        .unwrap();
    assert_eq!(out["id"], "cus_1");
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2, "the outage was retried");
    assert!(
        sent.iter()
            .all(|r| r.headers.get("idempotency-key").unwrap() == "tributary-key-1")
    );
}

#[tokio::test]
async fn stripe_verifies_on_the_balance() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(query_exactly(&[]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "balance", "available": [], "pending": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    engine()
        .verify(&spec("stripe"), &mocked(&server, "/v1", &[], &creds()))
        .await
        .unwrap();
}

/// The signature Stripe sends (`t=<unix>,v1=<hex HMAC of "{t}.{body}">`) verifies with the
/// configuration in `stripe.yaml`; the event id, type and connected account come from the body.
#[test]
fn stripe_webhook_verifies_as_the_catalog_configures_it() {
    let spec = spec("stripe");
    let hooks = spec.webhooks.as_ref().expect("stripe has webhooks");
    let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"customer.updated","account":"acct_1032D82eZvKYlo2C","data":{"object":{"id":"cus_1"}}}"#;
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp().to_string();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let header_value = format!("t={t},v1={}", hmac_hex("whsec_test", &signed));
    let got = verified_event(verify_webhook(
        hooks,
        "whsec_test",
        &headers(&[("Stripe-Signature", header_value.as_str())]),
        body,
        now,
    ));
    assert_eq!(
        got.event_id.as_deref(),
        Some("evt_1NG8Du2eZvKYlo2CUI79vXWy")
    );
    assert_eq!(got.event_type.as_deref(), Some("customer.updated"));
    assert_eq!(got.connection_key.as_deref(), Some("acct_1032D82eZvKYlo2C"));

    // Another secret, or a timestamp outside the tolerance, does not verify.
    let sig = headers(&[("Stripe-Signature", header_value.as_str())]);
    assert!(verify_webhook(hooks, "whsec_other", &sig, body, now).is_err());
    let later = now + time::Duration::seconds(hooks.tolerance_seconds as i64 + 60);
    assert!(verify_webhook(hooks, "whsec_test", &sig, body, later).is_err());
}

/// Every field of Stripe's documented example customer
/// (<https://docs.stripe.com/api/customers/object>) is one `customers` records can have; a
/// misspelt field, a field inside a scalar, or one the Customer object does not list is not.
#[test]
fn stripe_customers_declare_the_fields_a_mapping_may_read() {
    let example = json!({
        "id": "cus_NffrFeUfNV2Hib", "object": "customer", "address": null, "balance": 0,
        "created": 1_680_893_993, "currency": null, "default_source": null, "delinquent": false,
        "description": null, "discount": null, "email": "jennyrosen@example.com",
        "invoice_prefix": "0759376C",
        "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
        "livemode": false, "metadata": {}, "name": "Jenny Rosen", "next_invoice_sequence": 1,
        "phone": null, "preferred_locales": [], "shipping": null, "tax_exempt": "none",
        "test_clock": null
    });
    let spec = spec("stripe");
    let customers = spec.stream("customers").unwrap();
    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v.as_object() {
            Some(o) if !o.is_empty() => {
                for (k, v) in o {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut paths = Vec::new();
    leaves("", &example, &mut paths);
    assert_eq!(paths.len(), 25);
    for p in &paths {
        assert_eq!(customers.cannot_have(p), None, "{p}");
    }
    for p in [
        "address.city",
        "shipping.address.postal_code",
        "metadata.crm_id",
        "preferred_locales.0",
        "invoice_settings.custom_fields.0.value",
        "tax_ids.data.0.value",
    ] {
        assert_eq!(customers.cannot_have(p), None, "{p}");
    }
    for (p, why) in [
        ("emial", "has no field `emial`"),
        ("address.street", "has no field `street`"),
        ("email.domain", "`email` is a string"),
        (
            "preferred_locales.0.code",
            "`preferred_locales.0` is a string",
        ),
        ("invoice_settings.footer_text", "has no field `footer_text`"),
    ] {
        let refused = customers
            .cannot_have(p)
            .unwrap_or_else(|| panic!("{p} accepted"));
        assert!(refused.contains(why), "{p}: {refused}");
    }
    // A stream that declares nothing refuses nothing.
    assert_eq!(
        spec.stream("charges")
            .unwrap()
            .cannot_have("anything.at.all"),
        None
    );
}
