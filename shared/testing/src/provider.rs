//! A local Stripe for sync tests: `GET /v1/customers` as Stripe documents its list endpoints
//! (<https://docs.stripe.com/api/pagination>: `limit` 1–100, `starting_after` the last id of the
//! previous page, `{"object":"list","data":[…],"has_more":…,"url":"/v1/customers"}`), and
//! `GET /v1/balance` for the verification request. The dataset can be changed between requests
//! (customers added, updated, deleted), 429s with `Retry-After` can be injected, and every page
//! request is counted by its `starting_after`, so a test can tell a page fetched twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The secret key the local Stripe accepts.
pub const STRIPE_KEY: &str = "sk_test_local4242";

#[derive(Debug, Default)]
struct State {
    customers: BTreeMap<String, Value>,
    /// Page requests by their `starting_after` (`""` for the first page).
    pages: HashMap<String, usize>,
    /// How many of the next list requests answer 429, and with which `Retry-After` (seconds).
    throttle: Option<(usize, u64)>,
    throttled: usize,
    /// Pretty-print bodies, as a Stripe emulator does.
    pretty: bool,
    /// How long each list page takes to answer.
    delay: Option<std::time::Duration>,
}

/// The local Stripe. Clones share the dataset and the counts.
#[derive(Debug, Clone, Default)]
pub struct LocalStripe {
    state: Arc<Mutex<State>>,
}

/// A customer of `n`, about 500 bytes of JSON.
pub fn customer(n: usize, version: u32) -> Value {
    json!({
        "id": format!("cus_{n:08}"),
        "object": "customer",
        "address": {"city": "Lyon", "country": "FR", "line1": format!("{n} rue de la République"), "postal_code": "69002"},
        "balance": 0,
        "created": 1_700_000_000 + n,
        "currency": "eur",
        "description": format!("Customer number {n}, version {version}"),
        "email": format!("customer{n}@example.com"),
        "invoice_prefix": format!("INV{n:06}"),
        "livemode": false,
        "metadata": {"version": version.to_string(), "segment": if n.is_multiple_of(2) { "smb" } else { "enterprise" }},
        "name": format!("Customer {n}"),
        "phone": "+33 4 00 00 00 00",
        "preferred_locales": ["fr-FR"],
        "tax_exempt": "none"
    })
}

impl LocalStripe {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A local Stripe holding customers `0..count`, version 1.
    pub fn with_customers(count: usize) -> Self {
        let stripe = Self::default();
        for n in 0..count {
            stripe.put(customer(n, 1));
        }
        stripe
    }

    /// Adds or replaces a customer (by its `id`).
    pub fn put(&self, customer: Value) {
        let id = customer["id"].as_str().unwrap_or_default().to_owned();
        self.state().customers.insert(id, customer);
    }

    /// Removes a customer.
    pub fn remove(&self, id: &str) {
        self.state().customers.remove(id);
    }

    /// Every customer, by id.
    pub fn customers(&self) -> BTreeMap<String, Value> {
        self.state().customers.clone()
    }

    /// The next `count` list requests answer 429 with `Retry-After: retry_after_s`.
    pub fn throttle(&self, count: usize, retry_after_s: u64) {
        self.state().throttle = Some((count, retry_after_s));
    }

    /// How many list requests were answered 429.
    pub fn throttled(&self) -> usize {
        self.state().throttled
    }

    /// Pretty-prints every body from now on.
    pub fn pretty(&self) {
        self.state().pretty = true;
    }

    /// Answers each list page after `delay`: a slow provider, so that a test can act while a
    /// page is in flight.
    pub fn delay(&self, delay: std::time::Duration) {
        self.state().delay = Some(delay);
    }

    /// Page requests answered with data, by their `starting_after` (`""` for the first page).
    pub fn page_requests(&self) -> HashMap<String, usize> {
        self.state().pages.clone()
    }

    /// How many pages were fetched more than once.
    pub fn pages_fetched_twice(&self) -> usize {
        self.state().pages.values().filter(|n| **n > 1).count()
    }

    /// Forgets the page counts.
    pub fn reset_counts(&self) {
        self.state().pages.clear();
    }

    /// Mounts the endpoints on `server`.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/v1/balance"))
            .and(header(
                "authorization",
                format!("Bearer {STRIPE_KEY}").as_str(),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"object": "balance", "available": []})),
            )
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/customers"))
            .and(header(
                "authorization",
                format!("Bearer {STRIPE_KEY}").as_str(),
            ))
            .respond_with(self.clone())
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}
            })))
            .mount(server)
            .await;
    }

    /// Starts a server with the endpoints mounted.
    pub async fn start(&self) -> MockServer {
        let server = MockServer::start().await;
        self.mount(&server).await;
        server
    }
}

impl Respond for LocalStripe {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let mut state = self.state();
        if let Some((left, retry_after)) = state.throttle
            && left > 0
        {
            state.throttle = Some((left - 1, retry_after));
            state.throttled += 1;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after.to_string().as_str())
                .set_body_json(
                    json!({"error": {"type": "rate_limit_error", "message": "Too many requests"}}),
                );
        }
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(10);
        if !(1..=100).contains(&limit)
            || query.keys().any(|k| k != "limit" && k != "starting_after")
        {
            return ResponseTemplate::new(400).set_body_json(json!({
                "error": {"type": "invalid_request_error", "message": "Invalid parameters"}
            }));
        }
        let after = query.get("starting_after").cloned().unwrap_or_default();
        *state.pages.entry(after.clone()).or_default() += 1;
        let rest: Vec<&Value> = state
            .customers
            .iter()
            .filter(|(id, _)| after.is_empty() || id.as_str() > after.as_str())
            .map(|(_, c)| c)
            .take(limit + 1)
            .collect();
        let has_more = rest.len() > limit;
        let data: Vec<Value> = rest.into_iter().take(limit).cloned().collect();
        let body =
            json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/customers"});
        let text = if state.pretty {
            serde_json::to_string_pretty(&body)
        } else {
            serde_json::to_string(&body)
        }
        .unwrap_or_default();
        let answer = ResponseTemplate::new(200).set_body_raw(text, "application/json");
        match state.delay {
            Some(delay) => answer.set_delay(delay),
            None => answer,
        }
    }
}
