//! Creates the template's DynamoDB tables, SQS queues and Secrets Manager secrets on moto, and
//! records what `!Ref` and `!GetAtt` resolve to locally.
//!
//! Resources are created in dependency order without a dependency graph: a resource whose properties
//! still reference something not yet created is retried in the next round.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ProvisionedThroughput,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use rand::seq::IndexedRandom;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::moto::{ACCOUNT_ID, REGION};
use crate::template::{Resolver, ResourceDef, Template, scalar_string};

const TABLE: &str = "AWS::DynamoDB::Table";
const QUEUE: &str = "AWS::SQS::Queue";
const SECRET: &str = "AWS::SecretsManager::Secret";

/// A queue created on moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Its URL (what `!Ref` gives).
    pub url: String,
    /// Its ARN.
    pub arn: String,
    /// Its name.
    pub name: String,
}

/// What was created, and the resolver that maps the template's references onto it.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// Resolves parameters, pseudo parameters and every created resource.
    pub resolver: Resolver,
    /// Tables by logical id: their names.
    pub tables: BTreeMap<String, String>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, QueueInfo>,
    /// Secrets by logical id: their ARNs.
    pub secrets: BTreeMap<String, String>,
}

/// What to create resources with.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Prefix of physical names, like a CloudFormation stack name.
    pub stack_name: String,
    /// Parameter values (template defaults are used for the others).
    pub parameters: BTreeMap<String, String>,
    /// Secret values by logical id, instead of generating them.
    pub secret_values: BTreeMap<String, String>,
}

/// Creates every table, queue and secret of the template.
pub async fn provision(
    template: &Template,
    sdk: &SdkConfig,
    options: &ProvisionOptions,
) -> Result<Provisioned, Error> {
    let mut out = Provisioned {
        resolver: base_resolver(template, options)?,
        ..Provisioned::default()
    };
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);

    let mut pending: Vec<ResourceDef<'_>> = template
        .resources()
        .filter(|r| [TABLE, QUEUE, SECRET].contains(&r.kind))
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        let mut first_unresolved = None;
        for resource in pending {
            let created = match resource.kind {
                TABLE => create_table(&dynamodb, &resource, options, &mut out).await,
                QUEUE => create_queue(&sqs, &resource, options, &mut out).await,
                _ => create_secret(&secrets, &resource, options, &mut out).await,
            };
            match created {
                Ok(()) => {}
                Err(Error::Unresolved(what)) => {
                    first_unresolved.get_or_insert(Error::Unresolved(format!(
                        "{what} in {}",
                        resource.logical_id
                    )));
                    waiting.push(resource);
                }
                Err(e) => return Err(e),
            }
        }
        if waiting.len() == before
            && let Some(error) = first_unresolved
        {
            // Nothing could be created this round: the rest reference each other or nothing.
            return Err(error);
        }
        pending = waiting;
    }
    Ok(out)
}

/// Parameters, pseudo parameters, and the functions and API (which the local stack runs itself).
fn base_resolver(template: &Template, options: &ProvisionOptions) -> Result<Resolver, Error> {
    let mut r = Resolver::default();
    let mut parameters = template.parameter_defaults();
    for (name, value) in &options.parameters {
        if !template.has_parameter(name) {
            return Err(Error::InvalidOption(format!(
                "the template has no parameter {name}"
            )));
        }
        parameters.insert(name.clone(), value.clone());
    }
    for (name, value) in parameters {
        r.set_ref(name, value);
    }
    r.set_ref("AWS::Region", REGION);
    r.set_ref("AWS::AccountId", ACCOUNT_ID);
    r.set_ref("AWS::StackName", &options.stack_name);
    r.set_ref("AWS::Partition", "aws");
    r.set_ref("AWS::URLSuffix", "amazonaws.com");
    for f in template.functions()? {
        r.set_ref(&f.logical_id, &f.binary);
        r.set_attribute(
            &f.logical_id,
            "Arn",
            format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}", f.binary),
        );
    }
    if let Some(api) = template.http_api()? {
        r.set_ref(&api.logical_id, "local");
    }
    Ok(r)
}

/// Evaluates only `keys` of `props` (others may use intrinsics the local stack does not need).
fn eval_keys(
    resolver: &Resolver,
    props: &Map<String, Value>,
    keys: &[&str],
) -> Result<Map<String, Value>, Error> {
    keys.iter()
        .filter_map(|k| props.get(*k).map(|v| (k, v)))
        .map(|(k, v)| Ok(((*k).to_owned(), resolver.eval(v)?)))
        .collect()
}

fn physical_name(options: &ProvisionOptions, logical_id: &str) -> String {
    format!("{}-{logical_id}", options.stack_name)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableProps {
    table_name: Option<String>,
    attribute_definitions: Vec<AttributeDef>,
    key_schema: Vec<KeyDef>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<Throughput>,
    #[serde(default)]
    global_secondary_indexes: Vec<IndexDef>,
    time_to_live_specification: Option<TtlDef>,
    point_in_time_recovery_specification: Option<PitrDef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeDef {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyDef {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Throughput {
    read_capacity_units: i64,
    write_capacity_units: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexDef {
    index_name: String,
    key_schema: Vec<KeyDef>,
    projection: ProjectionDef,
    provisioned_throughput: Option<Throughput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProjectionDef {
    projection_type: Option<String>,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TtlDef {
    attribute_name: String,
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PitrDef {
    point_in_time_recovery_enabled: bool,
}

fn parse_props<T: for<'de> Deserialize<'de>>(
    logical_id: &str,
    map: Map<String, Value>,
) -> Result<T, Error> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| Error::Template(format!("{logical_id}: {e}")))
}

fn key_schema(keys: &[KeyDef]) -> Result<Vec<KeySchemaElement>, Error> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| Error::aws("build key schema", e))
        })
        .collect()
}

fn throughput(t: &Throughput) -> Result<ProvisionedThroughput, Error> {
    ProvisionedThroughput::builder()
        .read_capacity_units(t.read_capacity_units)
        .write_capacity_units(t.write_capacity_units)
        .build()
        .map_err(|e| Error::aws("build throughput", e))
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    resource: &ResourceDef<'_>,
    options: &ProvisionOptions,
    out: &mut Provisioned,
) -> Result<(), Error> {
    let id = resource.logical_id;
    let evaluated = eval_keys(
        &out.resolver,
        resource.properties,
        &[
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "TimeToLiveSpecification",
            "PointInTimeRecoverySpecification",
        ],
    )?;
    if resource.properties.contains_key("LocalSecondaryIndexes") {
        return Err(Error::Template(format!(
            "{id}: LocalSecondaryIndexes are not created by the local stack yet"
        )));
    }
    let props: TableProps = parse_props(id, evaluated)?;
    let name = props
        .table_name
        .clone()
        .unwrap_or_else(|| physical_name(options, id));
    let mut request = client.create_table().table_name(&name);
    for a in &props.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| Error::aws("build attribute definition", e))?,
        );
    }
    request = request.set_key_schema(Some(key_schema(&props.key_schema)?));
    let on_demand = props.billing_mode.as_deref() == Some("PAY_PER_REQUEST");
    if on_demand {
        request = request.billing_mode(BillingMode::PayPerRequest);
    } else {
        let t = props.provisioned_throughput.as_ref().ok_or_else(|| {
            Error::Template(format!(
                "{id}: ProvisionedThroughput is required without PAY_PER_REQUEST"
            ))
        })?;
        request = request
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(throughput(t)?);
    }
    for index in &props.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(
                index.projection.projection_type.as_deref().unwrap_or("ALL"),
            ))
            .set_non_key_attributes(
                (!index.projection.non_key_attributes.is_empty())
                    .then(|| index.projection.non_key_attributes.clone()),
            )
            .build();
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.index_name)
            .set_key_schema(Some(key_schema(&index.key_schema)?))
            .projection(projection);
        if let Some(t) = &index.provisioned_throughput {
            gsi = gsi.provisioned_throughput(throughput(t)?);
        }
        request = request
            .global_secondary_indexes(gsi.build().map_err(|e| Error::aws("build index", e))?);
    }
    let created = request
        .send()
        .await
        .map_err(|e| Error::aws(format!("CreateTable {name}"), e))?;
    if let Some(ttl) = &props.time_to_live_specification {
        client
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(&ttl.attribute_name)
                    .enabled(ttl.enabled)
                    .build()
                    .map_err(|e| Error::aws("build TTL", e))?,
            )
            .send()
            .await
            .map_err(|e| Error::aws(format!("UpdateTimeToLive {name}"), e))?;
    }
    if let Some(pitr) = &props.point_in_time_recovery_specification {
        client
            .update_continuous_backups()
            .table_name(&name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(pitr.point_in_time_recovery_enabled)
                    .build()
                    .map_err(|e| Error::aws("build PITR", e))?,
            )
            .send()
            .await
            .map_err(|e| Error::aws(format!("UpdateContinuousBackups {name}"), e))?;
    }
    let arn = created
        .table_description()
        .and_then(|d| d.table_arn())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"));
    out.resolver.set_ref(id, &name);
    out.resolver.set_attribute(id, "Arn", arn);
    tracing::debug!(logical_id = id, table = %name, "created table");
    out.tables.insert(id.to_owned(), name);
    Ok(())
}

/// Queue properties that are SQS attributes of the same name.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    resource: &ResourceDef<'_>,
    options: &ProvisionOptions,
    out: &mut Provisioned,
) -> Result<(), Error> {
    let id = resource.logical_id;
    let mut keys = QUEUE_ATTRIBUTES.to_vec();
    keys.push("QueueName");
    let evaluated = eval_keys(&out.resolver, resource.properties, &keys)?;
    let fifo = evaluated
        .get("FifoQueue")
        .and_then(scalar_string)
        .as_deref()
        == Some("true");
    let name = match evaluated.get("QueueName").and_then(Value::as_str) {
        Some(name) => name.to_owned(),
        None if fifo => format!("{}.fifo", physical_name(options, id)),
        None => physical_name(options, id),
    };
    let mut request = client.create_queue().queue_name(&name);
    for key in QUEUE_ATTRIBUTES {
        let Some(value) = evaluated.get(*key) else {
            continue;
        };
        let text = match value {
            Value::Object(_) => value.to_string(),
            other => scalar_string(other).ok_or_else(|| {
                Error::Template(format!("{id}: {key} is neither a scalar nor a policy"))
            })?,
        };
        request = request.attributes(QueueAttributeName::from(*key), text);
    }
    let url = request
        .send()
        .await
        .map_err(|e| Error::aws(format!("CreateQueue {name}"), e))?
        .queue_url
        .ok_or_else(|| Error::Aws {
            action: format!("CreateQueue {name}"),
            message: "no queue URL in the answer".into(),
        })?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| Error::aws(format!("GetQueueAttributes {name}"), e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_else(|| format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"));
    out.resolver.set_ref(id, &url);
    out.resolver.set_attribute(id, "Arn", &arn);
    out.resolver.set_attribute(id, "QueueName", &name);
    out.resolver.set_attribute(id, "QueueUrl", &url);
    tracing::debug!(logical_id = id, queue = %url, "created queue");
    out.queues
        .insert(id.to_owned(), QueueInfo { url, arn, name });
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct GenerateDef {
    password_length: Option<usize>,
    exclude_punctuation: bool,
    exclude_numbers: bool,
    exclude_uppercase: bool,
    exclude_lowercase: bool,
    include_space: bool,
    exclude_characters: String,
    secret_string_template: Option<String>,
    generate_string_key: Option<String>,
}

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A random string as Secrets Manager's `GenerateSecretString` would make it.
fn generate(def: &GenerateDef) -> Result<String, Error> {
    let mut alphabet: Vec<char> = Vec::new();
    if !def.exclude_lowercase {
        alphabet.extend('a'..='z');
    }
    if !def.exclude_uppercase {
        alphabet.extend('A'..='Z');
    }
    if !def.exclude_numbers {
        alphabet.extend('0'..='9');
    }
    if !def.exclude_punctuation {
        alphabet.extend(PUNCTUATION.chars());
    }
    if def.include_space {
        alphabet.push(' ');
    }
    alphabet.retain(|c| !def.exclude_characters.contains(*c));
    let mut rng = rand::rng();
    let length = def.password_length.unwrap_or(32);
    (0..length)
        .map(|_| alphabet.choose(&mut rng).copied())
        .collect::<Option<String>>()
        .ok_or_else(|| Error::Template("GenerateSecretString excludes every character".into()))
}

async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    resource: &ResourceDef<'_>,
    options: &ProvisionOptions,
    out: &mut Provisioned,
) -> Result<(), Error> {
    let id = resource.logical_id;
    let evaluated = eval_keys(
        &out.resolver,
        resource.properties,
        &["Name", "SecretString", "GenerateSecretString"],
    )?;
    let name = evaluated
        .get("Name")
        .and_then(Value::as_str)
        .map_or_else(|| physical_name(options, id), str::to_owned);
    let value = if let Some(value) = options.secret_values.get(id) {
        value.clone()
    } else if let Some(value) = evaluated.get("SecretString").and_then(Value::as_str) {
        value.to_owned()
    } else {
        let def: GenerateDef = match evaluated.get("GenerateSecretString") {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::Template(format!("{id}.GenerateSecretString: {e}")))?,
            None => GenerateDef::default(),
        };
        let generated = generate(&def)?;
        match (&def.secret_string_template, &def.generate_string_key) {
            (Some(template), Some(key)) => {
                let mut object: Map<String, Value> = serde_json::from_str(template)
                    .map_err(|e| Error::Template(format!("{id}.SecretStringTemplate: {e}")))?;
                object.insert(key.clone(), Value::String(generated));
                Value::Object(object).to_string()
            }
            _ => generated,
        }
    };
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| Error::aws(format!("CreateSecret {name}"), e))?
        .arn
        .ok_or_else(|| Error::Aws {
            action: format!("CreateSecret {name}"),
            message: "no ARN in the answer".into(),
        })?;
    out.resolver.set_ref(id, &arn);
    out.resolver.set_attribute(id, "Id", &arn);
    tracing::debug!(logical_id = id, secret = %arn, "created secret");
    out.secrets.insert(id.to_owned(), arn);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_honours_length_and_exclusions() {
        let def = GenerateDef {
            password_length: Some(48),
            exclude_punctuation: true,
            ..GenerateDef::default()
        };
        let secret = generate(&def).expect("generates");
        assert_eq!(secret.chars().count(), 48);
        assert!(
            secret.chars().all(|c| c.is_ascii_alphanumeric()),
            "{secret}"
        );
    }

    #[test]
    fn generating_from_an_empty_alphabet_is_an_error() {
        let def = GenerateDef {
            exclude_punctuation: true,
            exclude_numbers: true,
            exclude_lowercase: true,
            exclude_uppercase: true,
            ..GenerateDef::default()
        };
        assert!(generate(&def).is_err());
    }
}
