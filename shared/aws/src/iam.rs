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

/// The API: the control plane over tenants, keys, issuers, integrations (and their tenant pointers,
/// `INTEGRATIONROUTE#…`, which the public webhook route reads), connections, syncs and their runs,
/// inbound webhooks, audit events, idempotency keys and rate counters (`TENANTS`, `TENANT#…`,
/// `APIKEY#…`, `ISSUERAUD#…`, `IDEMP#…`, `RATE#…`, and the canary under `SYSTEM` for health), and the
/// credential keyring. It reaches nearly every partition prefix of the control table, so a
/// `LeadingKeys` condition would exclude little (the job ledger) and break the API in AWS whenever a
/// prefix is added; it has none. `BatchWriteItem` purges a deleted tenant's items and a deleted
/// sync's runs; no `Scan`. In the records table it reads feeds (`Query` for pages, `BatchGetItem`
/// for their records) and removes a deleted sync's feed (`Query`, `BatchWriteItem`); every
/// partition there is a feed's (`R#…`, `F#…`), so `LeadingKeys` would exclude nothing.
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
        resource: "RecordsTable",
        actions: &[
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
        ],
        leading_keys: &[],
    },
    Grant {
        resource: "CredentialKeyringSecret",
        actions: &["secretsmanager:GetSecretValue"],
        leading_keys: &[],
    },
    // Depth for health; jobs: a manual sync run, a deleted sync's purge, a provider webhook's
    // routing.
    Grant {
        resource: "JobsQueue",
        actions: &["sqs:GetQueueAttributes", "sqs:SendMessage"],
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

/// The connector: the job ledger (`JOB#…`), the canary (`SYSTEM`), tenants' connections,
/// integrations, syncs, runs, action runs, webhook endpoints, messages and attempts, inbound
/// webhook deliveries, and events (`TENANT#…`: a token refresh, a sync's run, a deleted sync's
/// removal, an action's attempt, an event's messages and their deliveries, a provider webhook's
/// routing and the provider event it forwards), the outbox index (`OUTBOX#…`), the records table (a
/// run's records, feed pages and seen ids, a deleted sync's feed), the credential keyring, and the
/// jobs queue, where it also sends: a run's continuation, an action's next attempt, a message's
/// delivery. Receiving, deleting and the queue's
/// attributes are what the SQS event source mapping does with the function's role;
/// `ChangeMessageVisibility` is the worker's backoff of a failed message.
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
        resource: "ControlTable",
        actions: &[
            "dynamodb:Query",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        ],
        leading_keys: &["TENANT#*"],
    },
    Grant {
        resource: "RecordsTable",
        actions: &[
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:BatchGetItem",
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
        resource: "ControlTable/index/Outbox",
        actions: &["dynamodb:Query"],
        leading_keys: &["OUTBOX#*"],
    },
    Grant {
        resource: "JobsQueue",
        actions: &[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",
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

/// The monitor: sends the canary, refresh, scheduled-sync, event-dispatch and run-check jobs;
/// reads the index of connections due for an idle refresh (its partitions are `REFRESH#<shard>`),
/// the index of syncs due to run (`SYNCDUE#<shard>`), the outbox of events waiting for their
/// webhooks (`OUTBOX#<shard>`) and the index of runs in progress (`ACTIVE#<shard>`), and postpones
/// each due connection and reschedules each due sync it enqueues (in tenants' partitions).
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
        resource: "ControlTable/index/SyncDue",
        actions: &["dynamodb:Query"],
        leading_keys: &["SYNCDUE#*"],
    },
    Grant {
        resource: "ControlTable/index/Outbox",
        actions: &["dynamodb:Query"],
        leading_keys: &["OUTBOX#*"],
    },
    Grant {
        resource: "ControlTable/index/ActiveRuns",
        actions: &["dynamodb:Query"],
        leading_keys: &["ACTIVE#*"],
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
    use std::time::Duration;

    use serde_json::Value;
    use tributary_core::canary::CanaryObservation;
    use tributary_core::ids::{
        ApiKeyId, ConnectionId, EventId, IntegrationId, JobId, SyncId, TenantId,
    };
    use tributary_core::job::{JobEnvelope, JobKind};
    use tributary_core::pagination::PageRequest;
    use tributary_core::ports::{
        ActionStore, CanaryStore, ConnectionStore, CredentialStore, EventOutbox, InboundStore,
        IntegrationStore, JobLedger, JobQueue, QueueStats, RefreshSchedule, SecretSource,
        SyncSchedule, SyncStore, TenantStore, WebhookStore,
    };
    use tributary_core::records::{
        FeedKey, FeedPage, FeedPosition, RecordAction, RecordStore, StoredRecord, content_hash,
    };
    use tributary_core::sync::{
        Frequency, RunStats, RunTrigger, SyncConfig, SyncEvent, SyncEventType, SyncMode, SyncRun,
        SyncStatus,
    };

    use crate::recorder::{CONTROL, Call, RECORDS, Recorder};

    /// One authorization of a request: the IAM action, the table (for DynamoDB) and the
    /// partition key it names.
    type Authorization = (String, Option<String>, Option<String>);

    /// The IAM actions a request is authorized as, with the tables and partition keys they name.
    fn authorized_as(call: &Call) -> Vec<Authorization> {
        let (service, operation) = call.target.split_once('.').unwrap_or_default();
        let prefix = match service {
            s if s.starts_with("DynamoDB") => "dynamodb",
            s if s.starts_with("AmazonSQS") => "sqs",
            s if s.starts_with("secretsmanager") => "secretsmanager",
            other => panic!("unknown service {other}"),
        };
        let pk = |v: &Value| v["pk"]["S"].as_str().map(str::to_owned);
        let table = |v: &Value| v["TableName"].as_str().map(str::to_owned);
        // Batch requests: each request of each table.
        let batch = |action: &str, requests: &dyn Fn(&Value) -> Vec<Value>| {
            call.body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(name, of_table)| {
                    requests(of_table)
                        .into_iter()
                        .map(|key| (action.to_owned(), Some(name.clone()), pk(&key)))
                })
                .collect()
        };
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
                    (format!("dynamodb:{action}"), table(op), pk(key))
                })
                .collect(),
            "BatchWriteItem" => batch("dynamodb:BatchWriteItem", &|requests| {
                requests
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        if r["PutRequest"].is_object() {
                            r["PutRequest"]["Item"].clone()
                        } else {
                            r["DeleteRequest"]["Key"].clone()
                        }
                    })
                    .collect()
            }),
            "BatchGetItem" => batch("dynamodb:BatchGetItem", &|of_table| {
                of_table["Keys"].as_array().cloned().unwrap_or_default()
            }),
            "Query" => vec![(
                "dynamodb:Query".to_owned(),
                table(&call.body),
                [":pk", ":shard"]
                    .iter()
                    .find_map(|p| call.body["ExpressionAttributeValues"][*p]["S"].as_str())
                    .map(str::to_owned),
            )],
            "SendMessageBatch" => vec![("sqs:SendMessage".to_owned(), None, None)],
            op if prefix == "dynamodb" => {
                let key = if op == "PutItem" {
                    &call.body["Item"]
                } else {
                    &call.body["Key"]
                };
                vec![(format!("dynamodb:{op}"), table(&call.body), pk(key))]
            }
            op => vec![(format!("{prefix}:{op}"), None, None)],
        }
    }

    /// The template's logical id of a table the stand-in serves.
    fn table_resource(name: &str) -> &'static str {
        match name {
            CONTROL => "ControlTable",
            RECORDS => "RecordsTable",
            other => panic!("unknown table {other}"),
        }
    }

    /// What a grant of `action` on `resource` is counted as: DynamoDB actions per table or index
    /// (the stand-in tells them apart), the others per action.
    fn granted(resource: &str, action: &str) -> (String, String) {
        if action.starts_with("dynamodb:") {
            (resource.to_owned(), action.to_owned())
        } else {
            (String::new(), action.to_owned())
        }
    }

    /// Asserts that `calls` are covered by `grants` and returns the grants they used.
    fn check(function: &str, grants: &[Grant], calls: &[Call]) -> BTreeSet<(String, String)> {
        let mut used = BTreeSet::new();
        for call in calls {
            // A request on an index is authorized on the index's ARN, any other on the table's.
            let index = call.body["IndexName"].as_str();
            for (action, table, pk) in authorized_as(call) {
                let resource = match (&table, index) {
                    (Some(t), Some(i)) => format!("{}/index/{i}", table_resource(t)),
                    (Some(t), None) => table_resource(t).to_owned(),
                    (None, _) => String::new(),
                };
                let grant = grants
                    .iter()
                    .filter(|g| !action.starts_with("dynamodb:") || g.resource == resource)
                    .find(|g| {
                        g.actions.contains(&action.as_str())
                            && (g.leading_keys.is_empty()
                                || pk.as_deref().is_some_and(|pk| {
                                    g.leading_keys.iter().any(|p| string_like(p, pk))
                                }))
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "{function} calls {action} on {resource:?} (partition {pk:?}), which it is not granted"
                        )
                    });
                if action.starts_with("dynamodb:") {
                    assert!(pk.is_some(), "{function}: {action} without a pk");
                }
                used.insert(granted(grant.resource, &action));
            }
        }
        used
    }

    fn listed(grants: &[Grant]) -> BTreeSet<(String, String)> {
        grants
            .iter()
            .flat_map(|g| g.actions.iter().map(|a| granted(g.resource, a)))
            .collect()
    }

    fn a_sync(tenant: &TenantId) -> SyncConfig {
        SyncConfig {
            id: SyncId::generate(),
            tenant_id: tenant.clone(),
            connection_id: ConnectionId::generate(),
            integration_id: IntegrationId::generate(),
            provider: "hubspot".into(),
            stream: "contacts".into(),
            model: "contact".into(),
            frequency: Frequency::Interval {
                every_seconds: 3600,
            },
            mode: SyncMode::FullRefresh,
            mapping: None,
            status: SyncStatus::Active,
            status_reason: None,
            deletion_guard_percent: 50,
            retention_days: None,
            checkpoint: None,
            next_run_at_ms: Some(5),
            active_run_id: None,
            last_run: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        }
    }

    fn feed_of(sync: &SyncConfig) -> FeedKey {
        FeedKey {
            tenant_id: sync.tenant_id.clone(),
            connection_id: sync.connection_id.clone(),
            model: sync.model.clone(),
        }
    }

    fn a_record(run: &SyncRun) -> StoredRecord {
        StoredRecord {
            id: "r1".into(),
            data: "{}".into(),
            hash: content_hash("{}"),
            action: RecordAction::Added,
            first_seen_ms: 1,
            last_modified_ms: 1,
            run_id: run.id.clone(),
            position: FeedPosition { page: 1, index: 0 },
            expires_at_s: None,
        }
    }

    fn a_page(run: &SyncRun) -> FeedPage {
        FeedPage {
            seq: 1,
            run_id: run.id.clone(),
            entries: vec!["r1".into()],
            committed_at_ms: 1,
            run_position: None,
            run_stats: RunStats::default(),
            expires_at_s: None,
        }
    }

    fn a_message(tenant: &TenantId) -> tributary_core::outbound::WebhookMessage {
        tributary_core::outbound::WebhookMessage {
            id: tributary_core::ids::MessageId::generate(),
            tenant_id: tenant.clone(),
            endpoint_id: tributary_core::ids::EndpointId::generate(),
            event_id: EventId::generate(),
            event_type: tributary_core::outbound::EventType::ConnectionCreated,
            body: "{}".into(),
            state: tributary_core::outbound::MessageState::Pending,
            attempts: 0,
            total_attempts: 0,
            next_attempt_at_ms: Some(1),
            last_status: None,
            last_error: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        }
    }

    fn an_attempt(
        m: &tributary_core::outbound::WebhookMessage,
    ) -> tributary_core::outbound::DeliveryAttempt {
        tributary_core::outbound::DeliveryAttempt {
            message_id: m.id.clone(),
            tenant_id: m.tenant_id.clone(),
            endpoint_id: m.endpoint_id.clone(),
            n: 1,
            at_ms: 2,
            status: Some(200),
            error: None,
            duration_ms: 5,
            succeeded: true,
        }
    }

    fn an_endpoint(
        m: &tributary_core::outbound::WebhookMessage,
    ) -> tributary_core::outbound::WebhookEndpoint {
        tributary_core::outbound::WebhookEndpoint {
            id: m.endpoint_id.clone(),
            tenant_id: m.tenant_id.clone(),
            url: "https://hooks.example.com/t".into(),
            description: None,
            event_types: Vec::new(),
            enabled: false,
            disabled_reason: Some("410".into()),
            secrets: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 2,
            version: 2,
        }
    }

    fn an_inbound(tenant: &TenantId) -> tributary_core::inbound::InboundEvent {
        tributary_core::inbound::InboundEvent {
            id: tributary_core::ids::InboundId::generate(),
            tenant_id: tenant.clone(),
            integration_id: IntegrationId::generate(),
            provider: "stripe".into(),
            event_id: Some("evt_1".into()),
            event_type: Some("customer.created".into()),
            connection_key: Some("acct_1".into()),
            payload: Some(serde_json::json!({"id": "evt_1"})),
            payload_omitted: None,
            state: tributary_core::inbound::InboundState::Received,
            routed_to: Vec::new(),
            received_at_ms: 1,
            processed_at_ms: None,
            version: 1,
        }
    }

    /// The sync's item as `GetItem` finds it.
    fn sync_item(sync: &SyncConfig) -> String {
        serde_json::json!({
            "pk": {"S": format!("TENANT#{}", sync.tenant_id)},
            "sk": {"S": format!("SYNC#{}", sync.id)},
            "doc": {"S": serde_json::to_string(sync).unwrap()},
        })
        .to_string()
    }

    /// Items every `Query` finds when something is to be removed: a key to delete.
    const FOUND_TO_REMOVE: &str =
        r#"[{"pk":{"S":"TENANT#t"},"sk":{"S":"RUN#sync_0190d6d8a0f47c0e9b6c7d2f1a3b4c5f#r"}}]"#;

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
        // A sync's run: the sync and its lease, the run, the feed's last page, the page's records
        // compared, written and committed, a full pass's walk of the ids and its tombstones, the
        // run's end with its event, the sync's next run.
        let records = aws.records();
        let sync = a_sync(&tenant);
        let feed = feed_of(&sync);
        let page = PageRequest::default();
        table.get_sync(&tenant, &sync.id).await.unwrap();
        table
            .list_syncs(&tenant, &Default::default(), &page)
            .await
            .unwrap();
        table
            .lease_sync(&tenant, &sync.id, "h", 1, 2)
            .await
            .unwrap();
        let run = SyncRun::queued(&sync, RunTrigger::Schedule, false, 1);
        table.create_run(&run).await.unwrap();
        table.get_run(&tenant, &sync.id, &run.id).await.unwrap();
        table.list_runs(&tenant, &sync.id, &page).await.unwrap();
        records.last_page(&feed).await.unwrap();
        records.record_meta(&feed, &["r1".into()]).await.unwrap();
        records
            .write_page(&feed, &[a_record(&run)], &a_page(&run))
            .await
            .unwrap();
        records
            .put_seen(&feed, &run.id, &["r2".into()], 9)
            .await
            .unwrap();
        records.seen(&feed, &run.id).await.unwrap();
        records.record_ids(&feed, None, 10).await.unwrap();
        records.get_records(&feed, &["r1".into()]).await.unwrap();
        records.pages_after(&feed, None, 10).await.unwrap();
        table.update_run(&run, 1).await.unwrap();
        table.update_sync(&sync, 1).await.unwrap();
        table
            .record_sync_event(&SyncEvent {
                id: EventId::generate(),
                tenant_id: tenant.clone(),
                sync_id: sync.id.clone(),
                run_id: Some(run.id.clone()),
                kind: SyncEventType::RunSucceeded,
                stats: None,
                error: None,
                at_ms: 1,
            })
            .await
            .unwrap();
        table.list_sync_events(&tenant, &page).await.unwrap();
        table.release_sync(&tenant, &sync.id, "h").await.unwrap();
        let audit = tributary_core::tenancy::AuditEvent {
            id: tributary_core::ids::AuditEventId::generate(),
            tenant_id: tenant.clone(),
            at_ms: 1,
            actor: "a".into(),
            action: "sync.created".into(),
            target: sync.id.to_string(),
        };
        table.create_sync(&sync, &audit).await.unwrap();
        // A run's continuation (and an action's next attempt, a message's next delivery): a job.
        queue
            .send(
                &JobEnvelope::new(JobKind::SyncRun {
                    tenant_id: tenant.clone(),
                    sync_id: sync.id.clone(),
                    run_id: run.id.clone(),
                    continuation: 1,
                }),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        // An action run's attempt: the run, claimed, then ended with its event.
        let mut action = tributary_core::action::ActionRun {
            id: tributary_core::ids::ActionRunId::generate(),
            tenant_id: tenant.clone(),
            connection_id: id.clone(),
            provider: "stripe".into(),
            action: "create_customer".into(),
            input: None,
            state: tributary_core::action::ActionRunState::Queued,
            attempts: 0,
            output: None,
            output_omitted: false,
            error: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            completed_at_ms: None,
            version: 1,
        };
        table.get_action_run(&tenant, &action.id).await.unwrap();
        let _ = table.update_action_run(&action, 1, None).await;
        let ended = action.finish(Ok(serde_json::json!({})), 2);
        let _ = table.update_action_run(&action, 2, Some(&ended)).await;
        // Events dispatched: the outbox, the tenant's endpoints, a message made (or found), the
        // event out of the outbox; a delivery: the message and its endpoint, the message updated
        // with its attempt, an endpoint that answered 410 disabled.
        table.pending_events(0, 10).await.unwrap();
        table.list_endpoints(&tenant, &page).await.unwrap();
        let message = a_message(&tenant);
        table.create_message(&message).await.unwrap();
        table.get_message(&tenant, &message.id).await.unwrap();
        let _ = table.clear_outbox(&tenant, "EVENT#ev_1").await;
        table
            .get_endpoint(&tenant, &message.endpoint_id)
            .await
            .unwrap();
        let _ = table
            .update_message(&message, 1, Some(&an_attempt(&message)))
            .await;
        let _ = table.update_endpoint(&an_endpoint(&message), 1).await;
        // An inbound webhook routed: the delivery, the integration's connections with the
        // account's tag, a provider event recorded in the outbox, the delivery settled.
        let inbound = an_inbound(&tenant);
        table.get_inbound(&tenant, &inbound.id).await.unwrap();
        table
            .list_connections(
                &tenant,
                &tributary_core::connection::ConnectionFilter {
                    integration_id: Some(inbound.integration_id.clone()),
                    tag: Some(("provider_account".into(), "acct_1".into())),
                    ..Default::default()
                },
                &page,
            )
            .await
            .unwrap();
        table
            .record_provider_event(&tributary_core::inbound::ProviderEvent::of(
                &inbound, &id, 2,
            ))
            .await
            .unwrap();
        let _ = table.update_inbound(&inbound, 1).await;
        let mut used = check("connector", CONNECTOR, &aws.take());
        // A deleted sync's purge: its feed, then the sync with its claim and runs.
        let aws = Recorder::finding(FOUND_TO_REMOVE);
        aws.get_finds(Some(sync_item(&sync)));
        assert!(aws.records().purge(&feed, 100).await.unwrap());
        assert!(
            aws.table()
                .delete_sync(&tenant, &sync.id, &audit)
                .await
                .unwrap()
        );
        used.extend(check("connector", CONNECTOR, &aws.take()));
        let mut expected = listed(CONNECTOR);
        for action in CONNECTOR_EVENT_SOURCE {
            expected.remove(&granted("JobsQueue", action));
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
    async fn the_monitor_sends_jobs_reads_the_due_indexes_and_reschedules_in_tenants_partitions() {
        // Each index query finds a due connection, a due sync and an idle run; each reader takes
        // its own.
        let aws = Recorder::finding(
            r#"[{"pk":{"S":"TENANT#ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"},"sk":{"S":"CONN#conn_0190d6d8a0f47c0e9b6c7d2f1a3b4c5e"},"refresh_shard":{"S":"REFRESH#3"},"refresh_due_ms":{"N":"5"}},
                {"pk":{"S":"TENANT#ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"},"sk":{"S":"SYNC#sync_0190d6d8a0f47c0e9b6c7d2f1a3b4c5f"},"sync_shard":{"S":"SYNCDUE#3"},"sync_due_ms":{"N":"6"}},
                {"pk":{"S":"TENANT#ten_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"},"sk":{"S":"RUN#sync_0190d6d8a0f47c0e9b6c7d2f1a3b4c5f#run_0190d6d8a0f47c0e9b6c7d2f1a3b4c60"},"active_shard":{"S":"ACTIVE#1"},"active_at":{"N":"7"}}]"#,
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
        // The syncs due, each rescheduled, then their jobs.
        let due = aws.table().due_syncs(10, 1).await.unwrap();
        assert_eq!(due.len(), 1, "{due:?}");
        aws.table().reschedule_sync(&due[0], 99).await.unwrap();
        let job = JobEnvelope::new(JobKind::ScheduledSync {
            tenant_id: due[0].tenant_id.clone(),
            sync_id: due[0].sync_id.clone(),
            due_ms: due[0].due_ms,
        });
        aws.queue().send_batch(&[job]).await.unwrap();
        // Each outbox shard peeked at; a dispatch for one that holds events.
        aws.table().pending_events(0, 1).await.unwrap();
        // The idle runs of each shard, then a check of each.
        let idle = aws.table().idle_runs(1, 10, 25).await.unwrap();
        assert_eq!(idle.len(), 1, "{idle:?}");
        let job = JobEnvelope::new(JobKind::CheckRun {
            tenant_id: idle[0].tenant_id.clone(),
            sync_id: idle[0].sync_id.clone(),
            run_id: idle[0].run_id.clone(),
        });
        aws.queue().send_batch(&[job]).await.unwrap();
        let used = check("monitor", MONITOR, &aws.take());
        assert_eq!(used, listed(MONITOR));
    }

    #[tokio::test]
    async fn the_api_calls_nothing_it_is_not_granted() {
        use tributary_core::ports::{IdempotencyStore, RateCounter};
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
        // The public webhook route: the integration's tenant by its pointer, the delivery and its
        // replay marker recorded (or, when its job could not be queued, forgotten).
        table
            .integration_tenant(&IntegrationId::generate())
            .await
            .unwrap();
        let inbound = an_inbound(&tenant);
        table.record_inbound(&inbound).await.unwrap();
        table.forget_inbound(&inbound).await.unwrap();
        aws.secrets()
            .secret("CredentialKeyringSecret")
            .await
            .unwrap();
        let mut used = check("api", API, &aws.take());

        // Purging a deleted tenant's partition: a key found there goes with its lookup item, an
        // integration with its tenant pointer.
        let aws = Recorder::finding(
            r#"[{"pk":{"S":"TENANT#t"},"sk":{"S":"APIKEY#key_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"}},
                {"pk":{"S":"TENANT#t"},"sk":{"S":"INTEGRATION#int_0190d6d8a0f47c0e9b6c7d2f1a3b4c5d"}}]"#,
        );
        aws.table().purge_tenant(&tenant, 1).await.unwrap();
        used.extend(check("api", API, &aws.take()));

        // Syncs: created (with their claim and audit), read, listed, changed; a manual run
        // created, read, listed and cancelled; events listed; a feed read (its pages, then their
        // records); a deleted sync's feed and the sync removed.
        let aws = Recorder::start();
        let (table, records) = (aws.table(), aws.records());
        let sync = a_sync(&tenant);
        let feed = feed_of(&sync);
        let audit = tributary_core::tenancy::AuditEvent {
            id: tributary_core::ids::AuditEventId::generate(),
            tenant_id: tenant.clone(),
            at_ms: 1,
            actor: "a".into(),
            action: "sync.created".into(),
            target: sync.id.to_string(),
        };
        table.create_sync(&sync, &audit).await.unwrap();
        table.get_sync(&tenant, &sync.id).await.unwrap();
        table
            .list_syncs(&tenant, &Default::default(), &page)
            .await
            .unwrap();
        table.update_sync(&sync, 1).await.unwrap();
        let run = SyncRun::queued(&sync, RunTrigger::Manual, false, 1);
        table.create_run(&run).await.unwrap();
        table.get_run(&tenant, &sync.id, &run.id).await.unwrap();
        table.list_runs(&tenant, &sync.id, &page).await.unwrap();
        table.update_run(&run, 1).await.unwrap();
        table.list_sync_events(&tenant, &page).await.unwrap();
        records.pages_after(&feed, None, 10).await.unwrap();
        records.get_records(&feed, &["r1".into()]).await.unwrap();
        used.extend(check("api", API, &aws.take()));
        // The manual run's job.
        let aws = Recorder::start();
        let job = tributary_core::job::JobEnvelope::new(tributary_core::job::JobKind::SyncRun {
            tenant_id: tenant.clone(),
            sync_id: sync.id.clone(),
            run_id: run.id.clone(),
            continuation: 0,
        });
        aws.queue().send(&job, Duration::ZERO).await.unwrap();
        used.extend(check("api", API, &aws.take()));
        let aws = Recorder::finding(FOUND_TO_REMOVE);
        aws.get_finds(Some(sync_item(&sync)));
        assert!(aws.records().purge(&feed, 100).await.unwrap());
        assert!(
            aws.table()
                .delete_sync(&tenant, &sync.id, &audit)
                .await
                .unwrap()
        );
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
