//! The refresh race across operating-system processes: 50 concurrent refreshes of one expired
//! connection, 25 in each of two child processes (each its own engine, HTTP client, vault and AWS
//! clients), against one control table (moto serving a request at a time, as DynamoDB applies a
//! conditional write) and a token endpoint that rotates refresh tokens and revokes the whole family
//! when an old one comes back. Exactly one token call is made, every caller gets the new access
//! token, and no `invalid_grant` is ever answered.
//!
//! The children are this test binary run again with `RACE_CHILD` set, running only
//! [`race_child`], which does nothing in a normal run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tributary_aws::Clients;
use tributary_core::connection::{
    CREDENTIALS_PURPOSE, Connection, ConnectionEvent, ConnectionEventType,
};
use tributary_core::ids::{ConnectionId, IntegrationId, TenantId};
use tributary_core::integration::{CLIENT_SECRET_PURPOSE, Integration};
use tributary_core::ports::{ConnectionStore as _, IntegrationStore as _};
use tributary_core::refresh::{RefreshPolicy, Refresher};
use tributary_core::tenancy::AuditEvent;
use tributary_core::time::{Clock as _, SystemClock};
use tributary_core::vault::{Owner, Vault};
use tributary_local::{MotoOptions, MotoServer, ProvisionOptions, Template, provision, workspace};
use tributary_testing::fixtures::oauth_connection;
use tributary_testing::keyring;
use tributary_testing::token_endpoint::TokenFamily;

const CHILD: &str = "RACE_CHILD";
const PER_CHILD: usize = 25;

fn owner<'a>(t: &'a TenantId, object: &'a str, purpose: &'a str) -> Owner<'a> {
    Owner {
        tenant: t.as_str(),
        object,
        purpose,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_from_two_processes_make_one_token_call() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let moto = MotoServer::start_with(MotoOptions {
        serialized: true,
        ..MotoOptions::default()
    })
    .await
    .expect("moto starts");
    let sdk = moto.sdk_config().await;
    let template = Template::load(&workspace::template_path()).expect("template loads");
    let provisioned = provision(
        &template,
        &sdk,
        &ProvisionOptions {
            stack_name: "race".into(),
            parameters: BTreeMap::new(),
            secret_values: BTreeMap::from([("AdminApiKeySecret".into(), "x".into())]),
        },
    )
    .await
    .expect("resources are created from the template");
    let table_name = provisioned.tables["ControlTable"].clone();
    let table = Clients::new(&sdk).table(&table_name);

    // Slow enough for every caller of both processes to arrive while the one refresh is in flight.
    let family = TokenFamily::start("/oauth2/v1/token", Duration::from_millis(300), false).await;

    // An Airtable integration with its sealed client secret, and an expired connection.
    let ring = keyring();
    let t = TenantId::generate();
    let integration_id = IntegrationId::generate();
    let integration = Integration {
        id: integration_id.clone(),
        tenant_id: t.clone(),
        provider: "airtable".into(),
        name: "Airtable".into(),
        auth_mode: "oauth2_authorization_code".into(),
        oauth_client_id: Some("client".into()),
        oauth_client_secret: Some(
            ring.seal(
                &owner(&t, integration_id.as_str(), CLIENT_SECRET_PURPOSE),
                b"secret",
            )
            .unwrap()
            .encode(),
        ),
        scopes: vec![],
        return_urls: vec![],
        enabled: true,
        webhook_secret: None,
        webhook_verification_token: None,
        webhook_routing: Default::default(),
        created_at_ms: 1,
        updated_at_ms: 1,
        version: 1,
    };
    table
        .create_integration(
            &integration,
            &AuditEvent::new(&t, "test", 1, "integration.created", &integration_id),
        )
        .await
        .unwrap();
    let id = ConnectionId::generate();
    let sealed = ring
        .seal(
            &owner(&t, id.as_str(), CREDENTIALS_PURPOSE),
            br#"{"access_token":"at-0","refresh_token":"rt-0"}"#,
        )
        .unwrap()
        .encode();
    let connection = Connection {
        config: BTreeMap::from([
            ("base_id".to_owned(), "appAAAABBBBCCCCDD".to_owned()),
            ("table".to_owned(), "t".to_owned()),
        ]),
        token_expires_at_ms: Some(SystemClock.now_ms() - 1_000),
        ..oauth_connection(&t, &integration_id, &id, "airtable", sealed)
    };
    table
        .create_connection(
            &connection,
            &ConnectionEvent::of(&connection, ConnectionEventType::Created, None, 1),
            &AuditEvent::new(&t, "test", 1, "connection.created", &id),
        )
        .await
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<tokio::process::Child> = (0..2)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args(["race_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env("RACE_ENDPOINT", moto.endpoint_url())
                .env("RACE_TABLE", &table_name)
                .env("RACE_TENANT", t.as_str())
                .env("RACE_CONNECTION", id.as_str())
                .env("RACE_PROVIDER", family.server.uri())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("the child starts")
        })
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("the child finishes")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "a child failed: {stdout}");
        tokens.extend(
            stdout
                .lines()
                // libtest may print its `test race_child ... ` on the line of the first outcome.
                .filter_map(|l| l.find("RACE ").map(|i| l[i + 5..].to_owned())),
        );
    }
    assert_eq!(tokens.len(), 2 * PER_CHILD, "every caller answered");
    assert!(tokens.iter().all(|t| t == "token at-1"), "{tokens:?}");
    let f = family.counts();
    assert_eq!(f.calls, 1, "exactly one token call");
    assert_eq!(f.invalid_grants, 0);
    assert!(!f.revoked);
}

/// A child: 25 concurrent refreshes with its own clients; prints each outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let sdk = tributary_local::sdk_config(&var("RACE_ENDPOINT")).await;
    let table = Arc::new(Clients::new(&sdk).table(var("RACE_TABLE")));
    let vault = Arc::new(Vault::new(Arc::new(Arc::new(keyring()))));
    let engine = Arc::new(
        tributary_engine::Engine::new(tributary_engine::HttpConfig {
            max_attempts: 1,
            egress: tributary_engine::EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap(),
            ..tributary_engine::HttpConfig::default()
        })
        .unwrap(),
    );
    let origins = Arc::new(BTreeMap::from([(
        "airtable".to_owned(),
        var("RACE_PROVIDER"),
    )]));
    let t: TenantId = var("RACE_TENANT").parse().unwrap();
    let id: ConnectionId = var("RACE_CONNECTION").parse().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..PER_CHILD {
        let (table, vault, engine, origins) = (
            table.clone(),
            vault.clone(),
            engine.clone(),
            origins.clone(),
        );
        let (t, id) = (t.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let grant = tributary_engine::grant::EngineGrant {
                store: &*table,
                vault: &vault,
                engine: &engine,
                origins: &origins,
                clock: &SystemClock,
            };
            Refresher {
                store: &*table,
                vault: &vault,
                grant: &grant,
                clock: &SystemClock,
                policy: RefreshPolicy {
                    poll: Duration::from_millis(50),
                    wait: Duration::from_secs(30),
                    ..RefreshPolicy::default()
                },
            }
            .access_token(&t, &id)
            .await
            .map(|token: SecretString| token.expose_secret().to_owned())
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            Ok(token) => println!("RACE token {token}"),
            Err(e) => println!("RACE error {e}"),
        }
    }
}

/// The serialized moto serializes DynamoDB only: a queue's long poll (the local poller's
/// `ReceiveMessage`) held inside its lock stalled every other request for its wait, and the
/// monitor's ticks timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_s_long_poll_does_not_hold_back_dynamodb_on_the_serialized_moto() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let moto = MotoServer::start_with(MotoOptions {
        serialized: true,
        ..MotoOptions::default()
    })
    .await
    .expect("moto starts");
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name("idle")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let poll = tokio::spawn(async move {
        sqs.receive_message()
            .queue_url(url)
            .wait_time_seconds(5)
            .send()
            .await
            .expect("long poll")
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    dynamodb.list_tables().send().await.expect("list tables");
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(2),
        "a DynamoDB call waited {waited:?} behind the queue's long poll"
    );
    poll.await.expect("the poll ends");
}
