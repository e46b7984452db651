//! The template's resources, created on moto, have the template's settings.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use aws_sdk_sqs::types::QueueAttributeName;
use tributary_local::{MotoServer, ProvisionOptions, Template, provision, workspace};

fn options() -> ProvisionOptions {
    ProvisionOptions {
        stack_name: "test".into(),
        parameters: BTreeMap::new(),
        secret_values: BTreeMap::new(),
    }
}

#[tokio::test]
async fn template_resources_are_created_with_their_settings() {
    // Arrange
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let template = Template::load(&workspace::template_path()).expect("template");

    // Act
    let created = provision(&template, &sdk, &options())
        .await
        .expect("provisioned");

    // Assert: tables with pk/sk and TTL on expires_at.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    for id in ["ControlTable", "RecordsTable"] {
        let name = &created.tables[id];
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("table exists");
        let keys: Vec<_> = table
            .table()
            .expect("description")
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("pk".to_owned(), "HASH".to_owned()),
                ("sk".to_owned(), "RANGE".to_owned())
            ]
        );
        let ttl = dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .expect("ttl");
        let ttl = ttl.time_to_live_description().expect("ttl description");
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    }

    // Assert: the jobs queue redrives to the DLQ after 5 receives.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let jobs = &created.queues["JobsQueue"];
    let dlq = &created.queues["JobsDeadLetterQueue"];
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&jobs.url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes")
        .attributes
        .expect("some");
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "1800");
    assert_eq!(
        attributes[&QueueAttributeName::MaximumMessageSize],
        "1048576"
    );
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).expect("json");
    assert_eq!(redrive["deadLetterTargetArn"], dlq.arn.as_str());
    assert_eq!(redrive["maxReceiveCount"].to_string(), "5");

    // Assert: the admin key is generated as the template says (48 characters, no punctuation).
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let value = secrets
        .get_secret_value()
        .secret_id(&created.secrets["AdminApiKeySecret"])
        .send()
        .await
        .expect("secret")
        .secret_string
        .expect("string");
    assert_eq!(value.len(), 48);
    assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "{value}");

    // Assert: references resolve to the local resources.
    assert_eq!(
        created.resolver.reference("JobsQueue"),
        Some(jobs.url.as_str())
    );
    assert_eq!(
        created.resolver.attribute("JobsQueue", "Arn"),
        Some(jobs.arn.as_str())
    );
}

#[tokio::test]
async fn given_secret_values_replace_generated_ones() {
    let moto = MotoServer::start().await.expect("moto starts");
    let sdk = moto.sdk_config().await;
    let template = Template::load(&workspace::template_path()).expect("template");
    let mut options = options();
    options
        .secret_values
        .insert("AdminApiKeySecret".into(), "kept-across-restarts".into());

    let created = provision(&template, &sdk, &options)
        .await
        .expect("provisioned");

    let value = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(&created.secrets["AdminApiKeySecret"])
        .send()
        .await
        .expect("secret")
        .secret_string;
    assert_eq!(value.as_deref(), Some("kept-across-restarts"));
}

#[tokio::test]
async fn dropping_moto_stops_its_process() {
    let moto = MotoServer::start().await.expect("moto starts");
    let port = moto.port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    drop(moto);

    let mut closed = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(closed, "moto still listens on {port}");
}
