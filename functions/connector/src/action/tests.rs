//! Action runs against a local Stripe (which deduplicates writes by their idempotency key) and a
//! local GitHub (which does not), over the in-memory store: success, retries through the queue,
//! refusals, duplicate deliveries, interrupted attempts, the attempt cap, unusable connections and
//! tenant isolation.

use std::sync::Arc;

use serde_json::{Value, json};
use tributary_core::action::ActionEvent;
use tributary_core::connection::{CREDENTIALS_PURPOSE, Connection};
use tributary_core::ids::{ConnectionId, IntegrationId};
use tributary_core::pagination::PageRequest;
use tributary_core::vault::{Owner, Vault};
use tributary_engine::Engine;
use tributary_engine::origins::ProviderOrigins;
use tributary_testing::fixtures::oauth_connection;
use tributary_testing::provider::STRIPE_KEY;
use tributary_testing::{FakeQueue, ManualClock, MemStore, keyring};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const T0: EpochMillis = 1_765_000_000_000;
const CUSTOMERS: &str = "/v1/customers";
const ISSUES: &str = "/repos/acme/widgets/issues";

struct World {
    stripe: MockServer,
    github: MockServer,
    store: MemStore,
    queue: FakeQueue,
    syncing: Syncing<MemStore, MemStore>,
    clock: ManualClock,
    tenant: TenantId,
    stripe_connection: Connection,
    github_connection: Connection,
}

/// An active API-key connection of `provider` with `credentials` sealed as the API seals them.
fn api_key_connection(tenant: &TenantId, provider: &str, credentials: &Value) -> Connection {
    let id = ConnectionId::generate();
    let sealed = keyring()
        .seal(
            &Owner {
                tenant: tenant.as_str(),
                object: id.as_str(),
                purpose: CREDENTIALS_PURPOSE,
            },
            credentials.to_string().as_bytes(),
        )
        .unwrap()
        .encode();
    Connection {
        auth_mode: "api_key".into(),
        tokens_obtained_at_ms: None,
        ..oauth_connection(tenant, &IntegrationId::generate(), &id, provider, sealed)
    }
}

fn stripe_customer() -> Value {
    json!({"id": "cus_N1", "object": "customer", "email": "ada@example.com", "name": "Ada"})
}

/// Stripe's answer to a failed create: `status`, with its error body.
fn stripe_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"type": kind, "message": message}}))
}

impl World {
    async fn new() -> Self {
        let stripe = MockServer::start().await;
        let github = MockServer::start().await;
        let store = MemStore::default();
        let tenant = TenantId::generate();
        let stripe_connection =
            api_key_connection(&tenant, "stripe", &json!({"api_key": STRIPE_KEY}));
        let github_connection =
            api_key_connection(&tenant, "github", &json!({"token": "ghp_local4242"}));
        store.put_connection(&stripe_connection);
        store.put_connection(&github_connection);
        let syncing = Syncing {
            records: store.clone(),
            store: store.clone(),
            vault: Vault::new(Arc::new(Arc::new(keyring()))),
            engine: Engine::new(tributary_engine::HttpConfig {
                max_attempts: 1,
                egress: tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
                ..tributary_engine::HttpConfig::default()
            })
            .unwrap(),
            origins: ProviderOrigins::from([
                ("stripe".to_owned(), stripe.uri()),
                ("github".to_owned(), github.uri()),
            ]),
            time_budget: None,
        };
        Self {
            stripe,
            github,
            store,
            queue: FakeQueue::default(),
            syncing,
            clock: ManualClock::at(T0),
            tenant,
            stripe_connection,
            github_connection,
        }
    }

    /// Stripe answers every create with `response`.
    async fn stripe_answers(&self, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(CUSTOMERS))
            .respond_with(response)
            .mount(&self.stripe)
            .await;
    }

    /// Stripe answers the next `times` creates with `response` (before any other answer).
    async fn stripe_first_answers(&self, response: ResponseTemplate, times: u64) {
        Mock::given(method("POST"))
            .and(path(CUSTOMERS))
            .respond_with(response)
            .up_to_n_times(times)
            .with_priority(1)
            .mount(&self.stripe)
            .await;
    }

    async fn github_answers(&self, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path(ISSUES))
            .respond_with(response)
            .mount(&self.github)
            .await;
    }

    /// A run as the API stores it, `queued` with no attempt yet.
    fn new_run(&self, connection: &Connection, action: &str, input: Value) -> ActionRun {
        ActionRun {
            id: ActionRunId::generate(),
            tenant_id: self.tenant.clone(),
            connection_id: connection.id.clone(),
            provider: connection.provider.clone(),
            action: action.into(),
            input: Some(input),
            state: ActionRunState::Queued,
            attempts: 0,
            output: None,
            output_omitted: false,
            error: None,
            created_at_ms: T0,
            updated_at_ms: T0,
            completed_at_ms: None,
            version: 1,
        }
    }

    fn customer_run(&self) -> ActionRun {
        self.new_run(
            &self.stripe_connection,
            "create_customer",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
    }

    fn issue_run(&self) -> ActionRun {
        self.new_run(
            &self.github_connection,
            "create_issue",
            json!({"owner": "acme", "repo": "widgets", "title": "It broke"}),
        )
    }

    async fn store_run(&self, run: ActionRun) -> ActionRun {
        self.store.create_action_run(&run).await.unwrap();
        run
    }

    /// A run whose attempt `attempts` started `ago_ms` ago and never ended.
    async fn interrupted(&self, mut run: ActionRun, attempts: u32, ago_ms: i64) -> ActionRun {
        run.state = ActionRunState::Running;
        run.attempts = attempts;
        run.updated_at_ms = T0 - ago_ms;
        run.version = 1 + u64::from(attempts);
        self.store_run(run).await
    }

    /// One delivery of the run's job.
    async fn execute(&self, run: &ActionRun) -> Result<(), ActionJobError> {
        execute(
            &self.syncing,
            &self.queue,
            &self.clock,
            &self.tenant,
            &run.id,
        )
        .await
    }

    async fn stored(&self, run: &ActionRun) -> ActionRun {
        self.store
            .get_action_run(&self.tenant, &run.id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn events(&self) -> Vec<ActionEvent> {
        self.store
            .list_action_events(&self.tenant, &PageRequest::default())
            .await
            .unwrap()
            .items
    }

    /// The `action_run` jobs sent, with their delays.
    fn jobs(&self) -> Vec<(ActionRunId, Duration)> {
        self.queue
            .sent_with_delays()
            .into_iter()
            .map(|(job, delay)| match job.kind {
                JobKind::ActionRun {
                    tenant_id,
                    action_run_id,
                } => {
                    assert_eq!(tenant_id, self.tenant);
                    (action_run_id, delay)
                }
                other => panic!("unexpected job {other:?}"),
            })
            .collect()
    }
}

/// The `Idempotency-Key` of each request `server` received, in order (`""` when absent).
async fn idempotency_keys(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_queued_run_succeeds_with_one_request_keyed_by_the_run() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w.store_run(w.customer_run()).await;

    w.execute(&run).await.unwrap();

    let done = w.stored(&run).await;
    assert_eq!(done.state, ActionRunState::Succeeded);
    assert_eq!(done.output, Some(stripe_customer()));
    assert_eq!(done.input, None, "the input is dropped once the run ends");
    assert_eq!(done.error, None);
    assert_eq!((done.attempts, done.completed_at_ms), (1, Some(T0)));
    let events = w.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action_run_id, run.id);
    assert_eq!(events[0].state, ActionRunState::Succeeded);
    assert_eq!(events[0].connection_id, w.stripe_connection.id);
    assert!(w.jobs().is_empty());

    let received = w.stripe.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let key = run.provider_idempotency_key();
    assert!(key.starts_with("tributary-arun_"), "{key}");
    assert_eq!(idempotency_keys(&w.stripe).await, [key]);
    let auth = received[0].headers.get("authorization").unwrap();
    assert_eq!(auth.to_str().unwrap(), format!("Bearer {STRIPE_KEY}"));
    let body = String::from_utf8_lossy(&received[0].body);
    assert!(body.contains("email=ada%40example.com"), "{body}");
}

#[tokio::test]
async fn a_stripe_outage_queues_the_run_again_and_the_retry_sends_the_same_key() {
    let w = World::new().await;
    w.stripe_first_answers(stripe_error(503, "api_error", "Try again later"), 1)
        .await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w.store_run(w.customer_run()).await;

    w.execute(&run).await.unwrap();

    let queued = w.stored(&run).await;
    assert_eq!(queued.state, ActionRunState::Queued);
    assert_eq!(queued.attempts, 1);
    let error = queued.error.clone().unwrap();
    assert_eq!(error.class, ActionErrorClass::ProviderError);
    assert_eq!(error.provider_status, Some(503));
    assert!(queued.input.is_some(), "the next attempt needs the input");
    let jobs = w.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0, run.id);
    assert!(jobs[0].1 >= Duration::from_secs(1), "{:?}", jobs[0].1);
    assert!(w.events().await.is_empty(), "the run has not ended");

    w.clock.advance(jobs[0].1.as_millis() as i64);
    w.execute(&run).await.unwrap();

    let done = w.stored(&run).await;
    assert_eq!(done.state, ActionRunState::Succeeded);
    assert_eq!((done.attempts, done.error), (2, None));
    assert_eq!(done.output, Some(stripe_customer()));
    assert_eq!(w.events().await.len(), 1);
    assert_eq!(w.jobs().len(), 1, "no job after the success");
    let key = run.provider_idempotency_key();
    assert_eq!(idempotency_keys(&w.stripe).await, [key.clone(), key]);
}

#[tokio::test]
async fn a_rate_limit_waits_at_least_the_providers_retry_after() {
    let w = World::new().await;
    w.stripe_answers(
        stripe_error(429, "rate_limit_error", "Too many requests")
            .insert_header("Retry-After", "40"),
    )
    .await;
    let run = w.store_run(w.customer_run()).await;

    w.execute(&run).await.unwrap();

    let queued = w.stored(&run).await;
    assert_eq!(queued.state, ActionRunState::Queued);
    let error = queued.error.unwrap();
    assert_eq!(error.class, ActionErrorClass::RateLimited);
    assert_eq!(error.provider_status, Some(429));
    let jobs = w.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].1 >= Duration::from_secs(40), "{:?}", jobs[0].1);
    assert_eq!(requests(&w.stripe).await, 1);
}

#[tokio::test]
async fn an_outage_of_a_provider_without_idempotency_keys_fails_at_once() {
    let w = World::new().await;
    w.github_answers(
        ResponseTemplate::new(503).set_body_json(json!({"message": "Service unavailable"})),
    )
    .await;
    let run = w.store_run(w.issue_run()).await;

    w.execute(&run).await.unwrap();

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.class, ActionErrorClass::ProviderError);
    assert_eq!(error.provider_status, Some(503));
    assert_eq!(failed.attempts, 1);
    assert!(
        w.jobs().is_empty(),
        "a second write could duplicate the issue"
    );
    assert_eq!(
        idempotency_keys(&w.github).await,
        [""],
        "GitHub gets no key"
    );
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn a_refusal_fails_the_run_with_the_providers_status_and_message() {
    let w = World::new().await;
    w.stripe_answers(stripe_error(
        400,
        "invalid_request_error",
        "Invalid email address: ada@example.com",
    ))
    .await;
    let run = w.store_run(w.customer_run()).await;

    w.execute(&run).await.unwrap();

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.class, ActionErrorClass::ProviderRejected);
    assert_eq!(error.provider_status, Some(400));
    assert!(
        error
            .message
            .contains("Invalid email address: ada@example.com"),
        "{}",
        error.message
    );
    assert!(w.jobs().is_empty());
    assert_eq!(requests(&w.stripe).await, 1);
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn duplicate_deliveries_send_one_request() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w.store_run(w.customer_run()).await;

    // Both deliveries read the queued run before either claims it: one claim wins.
    let (a, b) = tokio::join!(w.execute(&run), w.execute(&run));
    a.unwrap();
    b.unwrap();
    assert_eq!(requests(&w.stripe).await, 1);
    // The claim of each, and the end of the winner's attempt: the loser lost the claim, it did not
    // see the winner's attempt in progress.
    assert_eq!(w.store.calls("update_action_run"), 3);
    let done = w.stored(&run).await;
    assert_eq!((done.state, done.attempts), (ActionRunState::Succeeded, 1));

    // A third delivery after the end.
    w.execute(&run).await.unwrap();

    assert_eq!(requests(&w.stripe).await, 1);
    assert_eq!(w.stored(&run).await, done, "an ended run is left as it is");
    assert_eq!(w.events().await.len(), 1);
    assert!(w.jobs().is_empty());
}

#[tokio::test]
async fn an_interrupted_attempt_without_idempotency_key_ends_as_unknown_outcome() {
    let w = World::new().await;
    w.github_answers(ResponseTemplate::new(201).set_body_json(json!({"number": 7})))
        .await;
    let run = w.interrupted(w.issue_run(), 1, ATTEMPT_LEASE_MS).await;

    w.execute(&run).await.unwrap();

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    assert_eq!(
        failed.error.unwrap().class,
        ActionErrorClass::UnknownOutcome
    );
    assert_eq!(failed.attempts, 1);
    assert_eq!(requests(&w.github).await, 0, "not sent a second time");
    assert!(w.jobs().is_empty());
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn an_interrupted_attempt_with_idempotency_key_is_made_again_with_the_same_key() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w.interrupted(w.customer_run(), 1, ATTEMPT_LEASE_MS).await;

    w.execute(&run).await.unwrap();

    let done = w.stored(&run).await;
    assert_eq!((done.state, done.attempts), (ActionRunState::Succeeded, 2));
    assert_eq!(
        idempotency_keys(&w.stripe).await,
        [run.provider_idempotency_key()]
    );
    assert_eq!(w.events().await.len(), 1);
}

/// An interrupted last attempt may have written, even where the provider deduplicates: no
/// attempt is left to find out with the same key, so the run says it does not know.
#[tokio::test]
async fn an_interrupted_last_attempt_ends_as_unknown_outcome_unsent() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w
        .interrupted(w.customer_run(), MAX_ATTEMPTS, ATTEMPT_LEASE_MS)
        .await;

    w.execute(&run).await.unwrap();

    let done = w.stored(&run).await;
    assert_eq!(done.state, ActionRunState::Failed);
    assert_eq!(
        done.error.as_ref().map(|e| e.class),
        Some(ActionErrorClass::UnknownOutcome)
    );
    assert_eq!(requests(&w.stripe).await, 0);
    assert!(w.jobs().is_empty());
}

#[tokio::test]
async fn an_attempt_within_its_lease_is_left_to_finish() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    w.github_answers(ResponseTemplate::new(201).set_body_json(json!({"number": 7})))
        .await;
    let customer = w
        .interrupted(w.customer_run(), 1, ATTEMPT_LEASE_MS - 1)
        .await;
    let issue = w.interrupted(w.issue_run(), 1, ATTEMPT_LEASE_MS - 1).await;

    for run in [&customer, &issue] {
        let result = w.execute(run).await;

        assert!(matches!(result, Err(ActionJobError::Busy)), "{result:?}");
        assert_eq!(&w.stored(run).await, run, "the run is untouched");
    }
    assert_eq!(requests(&w.stripe).await, 0);
    assert_eq!(requests(&w.github).await, 0);
    assert!(w.jobs().is_empty());
    assert!(w.events().await.is_empty());
}

#[tokio::test]
async fn a_run_fails_after_its_last_attempt_and_is_not_queued_again() {
    let w = World::new().await;
    w.stripe_answers(stripe_error(503, "api_error", "Try again later"))
        .await;
    let run = w.store_run(w.customer_run()).await;

    for attempt in 1..=MAX_ATTEMPTS {
        w.execute(&run).await.unwrap();
        let stored = w.stored(&run).await;
        assert_eq!(stored.attempts, attempt);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(stored.state, ActionRunState::Queued, "attempt {attempt}");
            assert_eq!(w.jobs().len(), attempt as usize);
            w.clock.advance(900_000);
        }
    }

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.class, ActionErrorClass::ProviderError);
    assert_eq!(error.provider_status, Some(503));
    assert_eq!(
        w.jobs().len(),
        MAX_ATTEMPTS as usize - 1,
        "no job after the last"
    );
    let key = run.provider_idempotency_key();
    assert_eq!(
        idempotency_keys(&w.stripe).await,
        vec![key; MAX_ATTEMPTS as usize]
    );
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn a_connection_that_needs_reauthorization_fails_the_run_unsent() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    w.store.put_connection(&Connection {
        status: ConnectionStatus::NeedsReauth,
        status_reason: Some("the API key was revoked".into()),
        ..w.stripe_connection.clone()
    });
    let run = w.store_run(w.customer_run()).await;

    w.execute(&run).await.unwrap();

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.class, ActionErrorClass::NeedsReauth);
    assert!(error.message.contains("revoked"), "{}", error.message);
    assert_eq!(requests(&w.stripe).await, 0);
    assert!(w.jobs().is_empty());
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn a_deleted_connection_fails_the_run_as_config_unsent() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    // The run of a connection the store no longer has.
    let gone = api_key_connection(&w.tenant, "stripe", &json!({"api_key": STRIPE_KEY}));
    let run = w
        .store_run(w.new_run(
            &gone,
            "create_customer",
            json!({"email": "ada@example.com"}),
        ))
        .await;

    w.execute(&run).await.unwrap();

    let failed = w.stored(&run).await;
    assert_eq!(failed.state, ActionRunState::Failed);
    assert_eq!(failed.error.unwrap().class, ActionErrorClass::Config);
    assert_eq!(requests(&w.stripe).await, 0);
    assert!(w.jobs().is_empty());
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn a_job_naming_another_tenant_leaves_the_run_alone() {
    let w = World::new().await;
    w.stripe_answers(ResponseTemplate::new(200).set_body_json(stripe_customer()))
        .await;
    let run = w.store_run(w.customer_run()).await;
    let other = TenantId::generate();

    execute(&w.syncing, &w.queue, &w.clock, &other, &run.id)
        .await
        .unwrap();

    assert_eq!(w.stored(&run).await, run, "the run is untouched");
    assert_eq!(requests(&w.stripe).await, 0);
    assert!(w.jobs().is_empty());
    assert!(w.events().await.is_empty());
    assert_eq!(w.store.calls("update_action_run"), 0);
    // The same job with the run's own tenant does run it: the id alone was not enough.
    w.execute(&run).await.unwrap();
    assert_eq!(w.stored(&run).await.state, ActionRunState::Succeeded);
}
