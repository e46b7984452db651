//! The AWS permissions of each function: exactly the actions its adapters call, on the resources of
//! `infra/template.yaml` it calls them on, and, where the key design allows, only the control-table
//! partitions it touches (`dynamodb:LeadingKeys`).
//!
//! The template's policies are held to these lists by `infra/local/tests/template.rs` (nothing
//! granted that is not listed, nothing listed that is not granted); the tests below hold the adapters
//! to them (every call a function makes is listed, with its partition key). moto does not enforce
//! IAM, so these tests are what stands between a new adapter call and an `AccessDenied` in AWS: when
//! a function starts calling something new, list it here and grant it in the template.
//!
//! Notes on IAM semantics the lists rely on:
//! - `TransactWriteItems` is not an IAM action: each item of a transaction is authorized as the
//!   `PutItem`, `UpdateItem` or `DeleteItem` it performs.
//! - `SendMessageBatch` is authorized as `sqs:SendMessage`.
//! - `BatchWriteItem` is one action whatever its requests do (puts and deletes alike).
//! - `ForAllValues:StringLike` on `dynamodb:LeadingKeys` holds vacuously for a request without a
//!   partition key (`Scan`); the template pairs it with a `Null` check so that such requests are
//!   refused, and no conditioned grant lists `Scan`.

/// Actions on one resource of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The resource's logical id in `infra/template.yaml` (`ControlTable`, `JobsQueue`, …).
    pub resource: &'static str,
    /// IAM actions, such as `dynamodb:GetItem`.
    pub actions: &'static [&'static str],
    /// `dynamodb:LeadingKeys` patterns (IAM `StringLike`: `*` matches any characters) that every
    /// partition key the function reads or writes matches; empty for any item (or not DynamoDB).
    pub leading_keys: &'static [&'static str],
}

/// The API: the control plane over tenants, keys, issuers, integrations, audit events, idempotency
/// keys and rate counters (`TENANTS`, `TENANT#…`, `APIKEY#…`, `ISSUERAUD#…`, `IDEMP#…`, `RATE#…`,
/// and the canary under `SYSTEM` for health), and the credential keyring. It reaches nearly every partition prefix of the control table, so a
/// `LeadingKeys` condition would exclude little (the job ledger) and break the API in AWS whenever a
/// prefix is added; it has none. `BatchWriteItem` purges a deleted tenant's items; no `Scan`.
pub const API: &[Grant] = &[
    Grant {
        resource: "ControlTable",
        actions: &[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        ],
        leading_keys: &[],
    },
    Grant {
        resource: "CredentialKeyringSecret",
        actions: &["secretsmanager:GetSecretValue"],
        leading_keys: &[],
    },
    Grant {
        resource: "JobsQueue",
        actions: &["sqs:GetQueueAttributes"],
        leading_keys: &[],
    },
    Grant {
        resource: "JobsDeadLetterQueue",
        actions: &["sqs:GetQueueAttributes"],
        leading_keys: &[],
    },
];

/// The authorizer: reads API keys (`APIKEY#…`), tenants (`TENANTS`) and (issuer, audience)
/// registrations (`ISSUERAUD#…`) by key, and the admin key secret. It writes nothing and queries
/// nothing: every lookup is one `GetItem`.
pub const AUTH: &[Grant] = &[
    Grant {
        resource: "ControlTable",
        actions: &["dynamodb:GetItem"],
        leading_keys: &["APIKEY#*", "TENANTS", "ISSUERAUD#*"],
    },
    Grant {
        resource: "AdminApiKeySecret",
        actions: &["secretsmanager:GetSecretValue"],
        leading_keys: &[],
    },
];

/// The connector: the job ledger (`JOB#…`), the canary (`SYSTEM`), tenants' connections and
/// integrations (`TENANT#…`: a token refresh), the credential keyring, and the jobs queue. Receiving,
/// deleting and the queue's attributes are what the SQS event source mapping does with the
/// function's role; `ChangeMessageVisibility` is the worker's backoff of a failed message.
pub const CONNECTOR: &[Grant] = &[
    Grant {
        resource: "ControlTable",
        actions: &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
        leading_keys: &["JOB#*", "SYSTEM", "TENANT#*"],
    },
    Grant {
        resource: "CredentialKeyringSecret",
        actions: &["secretsmanager:GetSecretValue"],
        leading_keys: &[],
    },
    Grant {
        resource: "JobsQueue",
        actions: &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        ],
        leading_keys: &[],
    },
];

/// Actions of `CONNECTOR` that the Lambda service calls on the function's behalf (the SQS event
/// source mapping), not the function's code.
pub const CONNECTOR_EVENT_SOURCE: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// The monitor: sends the canary and refresh jobs; reads the index of connections due for an idle
/// refresh (its partitions are `REFRESH#<shard>`) and postpones each due connection it enqueues.
pub const MONITOR: &[Grant] = &[
    Grant {
        resource: "JobsQueue",
        actions: &["sqs:SendMessage"],
        leading_keys: &[],
    },
    Grant {
        resource: "ControlTable/index/RefreshDue",
        actions: &["dynamodb:Query"],
        leading_keys: &["REFRESH#*"],
    },
    Grant {
        resource: "ControlTable",
        actions: &["dynamodb:UpdateItem"],
        leading_keys: &["TENANT#*"],
    },
];

/// Every function's grants, by the function's logical id in `infra/template.yaml`.
pub const FUNCTIONS: &[(&str, &[Grant])] = &[
    ("ApiFunction", API),
    ("AuthFunction", AUTH),
    ("ConnectorFunction", CONNECTOR),
    ("MonitorFunction", MONITOR),
];

/// Whether `value` matches an IAM `StringLike` pattern (`*`: any characters, `?`: one character).
pub fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

#[cfg(test)]
mod tests {
    //! The adapters, driven as each function drives them, against a recording stand-in for the AWS
    //! endpoints: every call must be listed for that function, with its partition keys inside the
    //! grant's `LeadingKeys`, and every listed action must be called (or documented as not).

    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use serde_json::Value;
    use tributary_core::canary::CanaryObservation;
    use tributary_core::ids::{ApiKeyId, JobId, TenantId};
    use tributary_core::job::{JobEnvelope, JobKind};
    use tributary_core::ports::{
        CanaryStore, ConnectionStore, CredentialStore, IntegrationStore, JobLedger, JobQueue,
        QueueStats, RefreshSchedule, SecretSource, TenantStore,
    };

    use crate::{CachedSecrets, DynamoTable, SqsQueue};

    /// One request: its `X-Amz-Target` (`DynamoDB_20120810.GetItem`) and JSON body.
    #[derive(Debug, Clone)]
    struct Call {
        target: String,
        body: Value,
    }

    /// A loopback HTTP server that records every request and answers what `answer` says.
    struct Recorder {
        url: String,
        calls: Arc<Mutex<Vec<Call>>>,
    }

    /// The items every `Query` finds by default: none.
    const NO_ITEMS: &str = "[]";

    /// What the stand-in answers: enough for the adapters to go on. `Query` finds `query_items`.
    fn answer(target: &str, query_items: &str) -> String {
        let operation = target.rsplit('.').next().unwrap_or_default();
        if operation == "Query" {
            return format!(r#"{{"Items":{query_items},"Count":0,"ScannedCount":0}}"#);
        }
        match operation {
            "GetSecretValue" => r#"{"ARN":"arn:x","Name":"x","SecretString":"s3cret"}"#,
            "UpdateItem" => r#"{"Attributes":{"count":{"N":"1"}}}"#,
            "SendMessage" => {
                r#"{"MessageId":"m","MD5OfMessageBody":"d41d8cd98f00b204e9800998ecf8427e"}"#
            }
            _ => "{}",
        }
        .to_owned()
    }

    /// Answers every request on one connection (the SDK reuses connections).
    fn serve(mut socket: std::net::TcpStream, recorded: &Mutex<Vec<Call>>, query_items: &str) {
        use std::io::{Read, Write};
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match socket.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buffer.extend_from_slice(&chunk[..n]);
            while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_owned())
                };
                let length: usize = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buffer.len() < end + 4 + length {
                    break;
                }
                let body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                let target = header("x-amz-target").unwrap_or_default();
                let reply = answer(&target, query_items);
                recorded.lock().unwrap().push(Call {
                    target,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: r\r\ncontent-length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                if socket.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }

    impl Recorder {
        /// Serves on a thread of its own (plain `std::net`: no runtime features needed).
        fn start() -> Self {
            Self::finding(NO_ITEMS)
        }

        /// A stand-in whose `Query` answers `query_items` (a JSON array of items).
        fn finding(query_items: &'static str) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let calls = Arc::new(Mutex::new(Vec::new()));
            let recorded = calls.clone();
            std::thread::spawn(move || {
                for socket in listener.incoming() {
                    let Ok(socket) = socket else {
                        return;
                    };
                    let recorded = recorded.clone();
                    std::thread::spawn(move || serve(socket, &recorded, query_items));
                }
            });
            Self { url, calls }
        }

        fn take(&self) -> Vec<Call> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }

        fn sdk(&self) -> aws_types::SdkConfig {
            aws_types::SdkConfig::builder()
                .http_client(crate::sdk::https_client())
                .endpoint_url(&self.url)
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                    Credentials::new("test", "test", None, None, "test"),
                ))
                .behavior_version(BehaviorVersion::latest())
                .build()
        }

        fn table(&self) -> DynamoTable {
            DynamoTable::new(aws_sdk_dynamodb::Client::new(&self.sdk()), "control")
        }

        fn queue(&self) -> SqsQueue {
            SqsQueue::new(
                aws_sdk_sqs::Client::new(&self.sdk()),
                format!("{}/000000000000/jobs", self.url),
            )
        }

        fn secrets(&self) -> CachedSecrets {
            CachedSecrets::new(
                aws_sdk_secretsmanager::Client::new(&self.sdk()),
                Duration::from_secs(60),
            )
        }
    }

    /// The IAM actions a request is authorized as, with the partition keys it names.
    fn authorized_as(call: &Call) -> Vec<(String, Option<String>)> {
        let (service, operation) = call.target.split_once('.').unwrap_or_default();
        let prefix = match service {
            s if s.starts_with("DynamoDB") => "dynamodb",
            s if s.starts_with("AmazonSQS") => "sqs",
            s if s.starts_with("secretsmanager") => "secretsmanager",
            other => panic!("unknown service {other}"),
        };
        let pk = |v: &Value| v["pk"]["S"].as_str().map(str::to_owned);
        match operation {
            "TransactWriteItems" => call.body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| item.as_object().into_iter().flatten())
                .map(|(kind, op)| {
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        other => panic!("unknown transaction item {other}"),
                    };
                    let key = if kind == "Put" {
                        &op["Item"]
                    } else {
                        &op["Key"]
                    };
                    (format!("dynamodb:{action}"), pk(key))
                })
                .collect(),
            "BatchWriteItem" => call.body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(_, requests)| requests.as_array().into_iter().flatten())
                .map(|r| {
                    let key = if r["PutRequest"].is_object() {
                        &r["PutRequest"]["Item"]
                    } else {
                        &r["DeleteRequest"]["Key"]
                    };
                    ("dynamodb:BatchWriteItem".to_owned(), pk(key))
                })
                .collect(),
            "Query" => vec![(
                "dynamodb:Query".to_owned(),
                [":pk", ":shard"]
                    .iter()
                    .find_map(|p| call.body["ExpressionAttributeValues"][*p]["S"].as_str())
                    .map(str::to_owned),
            )],
            "SendMessageBatch" => vec![("sqs:SendMessage".to_owned(), None)],
            op if prefix == "dynamodb" => {
                let key = if op == "PutItem" {
                    &call.body["Item"]
                } else {
                    &call.body["Key"]
                };
                vec![(format!("dynamodb:{op}"), pk(key))]
            }
            op => vec![(format!("{prefix}:{op}"), None)],
        }
    }

    /// Asserts that `calls` are covered by `grants` and returns the actions they used.
    fn check(function: &str, grants: &[Grant], calls: &[Call]) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        for call in calls {
            // A request on an index is authorized on the index's ARN, any other on the table's.
            let index = call.body["IndexName"].as_str();
            for (action, pk) in authorized_as(call) {
                let grant = grants
                    .iter()
                    .filter(|g| {
                        !action.starts_with("dynamodb:")
                            || g.resource.split_once("/index/").map(|(_, i)| i) == index
                    })
                    .find(|g| g.actions.contains(&action.as_str()))
                    .unwrap_or_else(|| {
                        panic!(
                            "{function} calls {action} (index {index:?}), which it is not granted"
                        )
                    });
                if action.starts_with("dynamodb:") {
                    let pk = pk.unwrap_or_else(|| panic!("{function}: {action} without a pk"));
                    assert!(
                        grant.leading_keys.is_empty()
                            || grant.leading_keys.iter().any(|p| string_like(p, &pk)),
                        "{function}: {action} on partition {pk}, outside {:?}",
                        grant.leading_keys
                    );
                }
                used.insert(action);
            }
        }
        used
    }

    fn listed(grants: &[Grant]) -> BTreeSet<String> {
        grants
            .iter()
            .flat_map(|g| g.actions.iter().map(|a| (*a).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn the_connector_calls_only_its_actions_on_the_ledger_and_canary_partitions() {
        let aws = Recorder::start();
        let (table, queue) = (aws.table(), aws.queue());
        let job = JobId::generate();
        // What functions/connector does with a message: ledger check, the job's effect, ledger
        // entry; on failure, a shorter visibility.
        table.is_done(&job).await.unwrap();
        table
            .record(&CanaryObservation {
                job_id: job.clone(),
                enqueued_at_ms: 1,
                processed_at_ms: 2,
            })
            .await
            .unwrap();
        table
            .mark_done(&job, Duration::from_secs(60))
            .await
            .unwrap();
        queue
            .retry_after("receipt", Duration::from_secs(5))
            .await
            .unwrap();
        // A refresh job: the keyring, the connection and its integration, the lease, the tokens
        // written with an event (or the lease given back).
        aws.secrets().secret("keyring-secret").await.unwrap();
        let tenant = TenantId::generate();
        let id = tributary_core::ids::ConnectionId::generate();
        table.get_connection(&tenant, &id).await.unwrap();
        table
            .get_integration(&tenant, &tributary_core::ids::IntegrationId::generate())
            .await
            .unwrap();
        table.lease_refresh(&tenant, &id, "h", 1, 2).await.unwrap();
        let connection = tributary_core::connection::Connection {
            id: id.clone(),
            tenant_id: tenant.clone(),
            integration_id: tributary_core::ids::IntegrationId::generate(),
            provider: "airtable".into(),
            auth_mode: "oauth2_authorization_code".into(),
            end_user_id: "u".into(),
            config: Default::default(),
            credentials: "v1.k1.sealed".into(),
            tags: Default::default(),
            metadata: serde_json::json!({}),
            status: tributary_core::connection::ConnectionStatus::Active,
            status_reason: None,
            status_changed_at_ms: 1,
            last_verified_at_ms: None,
            token_expires_at_ms: Some(2),
            tokens_obtained_at_ms: Some(3),
            created_at_ms: 1,
            updated_at_ms: 3,
            version: 2,
        };
        let event = tributary_core::connection::ConnectionEvent::of(
            &connection,
            tributary_core::connection::ConnectionEventType::Refreshed,
            None,
            3,
        );
        let _ = table.swap_refreshed(&connection, 1, "h", &event).await;
        table.release_refresh(&tenant, &id, "h").await.unwrap();
        let used = check("connector", CONNECTOR, &aws.take());
        let mut expected = listed(CONNECTOR);
        for action in CONNECTOR_EVENT_SOURCE {
            expected.remove(*action);
        }
        assert_eq!(used, expected, "granted but not called");
    }

    #[tokio::test]
    async fn the_authorizer_reads_only_keys_tenants_and_issuer_registrations() {
        let aws = Recorder::start();
        let table = aws.table();
        // What functions/auth looks up: the admin key, an API key, its tenant, an issuer pair.
        aws.secrets().secret("admin-key-secret").await.unwrap();
        table.get_key(&ApiKeyId::generate()).await.unwrap();
        table.get_tenant(&TenantId::generate()).await.unwrap();
        table
            .issuer_registration("https://idp.example/", "api")
            .await
            .unwrap();
        let used = check("authorizer", AUTH, &aws.take());
        assert_eq!(used, listed(AUTH), "granted but not called");
    }

    #[tokio::test]
    async fn the_monitor_sends_jobs_reads_the_refresh_index_and_postpones_in_tenants_partitions() {
        let aws = Recorder::finding(
            r#"[{"pk":{"S":"TENANT#ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"},"sk":{"S":"CONN#conn_0190d6d8a0f47c0e9b6c7d2f1a3b4c5e"},"refresh_shard":{"S":"REFRESH#3"},"refresh_due_ms":{"N":"5"}}]"#,
        );
        let canary = JobEnvelope::new(JobKind::Canary { enqueued_at_ms: 1 });
        aws.queue().send(&canary, Duration::ZERO).await.unwrap();
        // What functions/monitor does on a tick: the due connections, each postponed, then their
        // jobs.
        let due = aws.table().due_refreshes(10, 1).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        aws.table().postpone_refresh(&due[0], 99).await.unwrap();
        let job = JobEnvelope::new(JobKind::RefreshConnection {
            tenant_id: due[0].tenant_id.clone(),
            connection_id: due[0].connection_id.clone(),
        });
        aws.queue().send_batch(&[job]).await.unwrap();
        let used = check("monitor", MONITOR, &aws.take());
        assert_eq!(used, listed(MONITOR));
    }

    #[tokio::test]
    async fn the_api_calls_nothing_it_is_not_granted() {
        use tributary_core::ids::IntegrationId;
        use tributary_core::pagination::PageRequest;
        use tributary_core::ports::{
            ConnectionStore, IdempotencyStore, IntegrationStore, RateCounter, SecretSource,
        };
        let aws = Recorder::start();
        let (table, queue) = (aws.table(), aws.queue());
        let tenant = TenantId::generate();
        let page = PageRequest {
            limit: 10,
            after: None,
        };
        // Health, the caller's tenant and rate limit, idempotency, reads and lists. Transactions
        // (credential changes with their audit event) are authorized per item as PutItem,
        // UpdateItem and DeleteItem, which these calls use too.
        table.latest().await.unwrap();
        queue.depth().await.unwrap();
        table.get_tenant(&tenant).await.unwrap();
        table
            .add("bucket", 0, 1, Duration::from_secs(60))
            .await
            .unwrap();
        table
            .begin(
                "scope",
                "key",
                "fp",
                1_000,
                Duration::from_secs(1),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        table.abandon("scope", "key").await.unwrap();
        table.get_key(&ApiKeyId::generate()).await.unwrap();
        table.list_tenants(&page).await.unwrap();
        table.list_keys(&tenant, &page).await.unwrap();
        table.list_issuers(&tenant, &page).await.unwrap();
        table.list_audit(&tenant, &page).await.unwrap();
        table.list_integrations(&tenant, &page).await.unwrap();
        table
            .list_connections(&tenant, &Default::default(), &page)
            .await
            .unwrap();
        table
            .get_integration(&tenant, &IntegrationId::generate())
            .await
            .unwrap();
        table.purge_tenant(&tenant, 1).await.unwrap();
        aws.secrets()
            .secret("CredentialKeyringSecret")
            .await
            .unwrap();
        let mut used = check("api", API, &aws.take());

        // Purging a deleted tenant's partition: a key found there goes with its lookup item.
        let aws = Recorder::finding(
            r#"[{"pk":{"S":"TENANT#t"},"sk":{"S":"APIKEY#key_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"}}]"#,
        );
        aws.table().purge_tenant(&tenant, 1).await.unwrap();
        used.extend(check("api", API, &aws.take()));
        assert_eq!(used, listed(API), "granted but not called");
    }

    #[test]
    fn string_like_matches_as_iam_does() {
        assert!(string_like("JOB#*", "JOB#job_1"));
        assert!(string_like("SYSTEM", "SYSTEM"));
        assert!(!string_like("SYSTEM", "SYSTEMS"));
        assert!(!string_like("JOB#*", "APIKEY#k"));
        assert!(string_like("A?C", "ABC"));
        assert!(string_like("*", ""));
    }
}
