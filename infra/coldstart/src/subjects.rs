//! What is started: every function of `infra/template.yaml` with the environment the template gives
//! it (`Globals` and its own `Environment`, references resolved to plausible deployed values) plus the
//! variables Lambda itself sets, and the hello world with Lambda's variables alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tributary_local::{Resolver, Template};

use crate::Error;

/// The hello world's binary (`src/bin/coldstart-hello.rs`).
pub const HELLO: &str = "coldstart-hello";

const REGION: &str = "us-east-1";
const ACCOUNT_ID: &str = "123456789012";
const STACK: &str = "tributary";

/// A binary to measure and the environment it starts with.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The cargo binary, which names it in the table.
    pub binary: String,
    /// The template's logical id (`ApiFunction`); `None` for the hello world.
    pub logical_id: Option<String>,
    /// The executable.
    pub program: PathBuf,
    /// Its whole environment, except the listeners' addresses (added at launch).
    pub env: BTreeMap<String, String>,
}

impl Subject {
    /// Whether this is the baseline.
    pub fn is_hello(&self) -> bool {
        self.logical_id.is_none()
    }
}

/// The hello world first, then the template's functions in template order, run from `bin_dir`.
pub fn from_template(template: &Template, bin_dir: &Path) -> Result<Vec<Subject>, Error> {
    let resolver = resolver(template);
    let functions = template.functions()?;
    let mut subjects = Vec::with_capacity(functions.len() + 1);
    // The hello world logs as the functions do: the template's `Globals` set one logging config.
    let logging_of = |f: &tributary_local::FunctionDef| -> Result<Logging, Error> {
        Ok(Logging {
            format: f.log_format.clone(),
            level: f
                .log_level
                .as_ref()
                .map(|l| resolver.eval_string(l))
                .transpose()?,
        })
    };
    let logging = match functions.first() {
        Some(f) => logging_of(f)?,
        None => Logging::default(),
    };
    subjects.push(Subject {
        binary: HELLO.into(),
        logical_id: None,
        program: bin_dir.join(HELLO),
        env: lambda_env(&format!("{STACK}-ColdstartHello"), 256, &logging),
    });
    for f in functions {
        let logging = logging_of(&f)?;
        let mut env = lambda_env(&physical_id(&f.logical_id), f.memory_mb, &logging);
        for (name, value) in &f.environment {
            env.insert(name.clone(), resolver.eval_string(value)?);
        }
        subjects.push(Subject {
            program: bin_dir.join(&f.binary),
            binary: f.binary,
            logical_id: Some(f.logical_id),
            env,
        });
    }
    Ok(subjects)
}

#[derive(Debug, Default)]
struct Logging {
    format: Option<String>,
    level: Option<String>,
}

fn physical_id(logical_id: &str) -> String {
    format!("{STACK}-{logical_id}-1A2B3C4D5E6F")
}

/// What Lambda sets in every execution environment of a `provided.al2023` function (credentials
/// included: the execution role's arrive as variables, so the SDK needs no network to find them).
fn lambda_env(function_name: &str, memory_mb: u64, logging: &Logging) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("_HANDLER", "bootstrap"),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2025/01/01/[$LATEST]0123456789abcdef",
        ),
        ("AWS_ACCESS_KEY_ID", "ASIACOLDSTARTBENCH00"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "coldstart-bench-secret-access-key-000000",
        ),
        ("AWS_SESSION_TOKEN", "coldstart-bench-session-token"),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), function_name.into());
    env.insert(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        memory_mb.to_string(),
    );
    env.insert(
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{function_name}"),
    );
    if let Some(format) = &logging.format {
        env.insert("AWS_LAMBDA_LOG_FORMAT".into(), format.clone());
    }
    if let Some(level) = &logging.level {
        env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.clone());
    }
    env
}

/// Parameters at their defaults, pseudo parameters, and for each resource the shape of the physical
/// id and attributes CloudFormation would give it.
fn resolver(template: &Template) -> Resolver {
    let mut r = Resolver::default();
    for (name, value) in template.parameter_defaults() {
        r.set_ref(name, value);
    }
    for (name, value) in [
        ("AWS::Region", REGION),
        ("AWS::AccountId", ACCOUNT_ID),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", STACK),
    ] {
        r.set_ref(name, value);
    }
    for resource in template.resources() {
        let id = resource.logical_id;
        let name = physical_id(id);
        let (reference, arn) = match resource.kind {
            "AWS::DynamoDB::Table" => (
                name.clone(),
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"),
            ),
            "AWS::SQS::Queue" => {
                r.set_attribute(id, "QueueName", name.clone());
                (
                    format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"),
                    format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"),
                )
            }
            "AWS::SecretsManager::Secret" => {
                let arn =
                    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{id}-AbCdEf");
                (arn.clone(), arn)
            }
            "AWS::Serverless::Function" => (
                name.clone(),
                format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"),
            ),
            _ => (name.clone(), format!("arn:aws:::{name}")),
        };
        r.set_ref(id, reference);
        r.set_attribute(id, "Arn", arn);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    MemorySize: 256
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: INFO
    Environment:
      Variables:
        TRIBUTARY_STAGE: !Ref Stage
        CONTROL_TABLE: !Ref ControlTable
        JOBS_QUEUE_URL: !Ref JobsQueue
        ADMIN_KEY_SECRET_ID: !Ref AdminApiKeySecret
Resources:
  AuthFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: tributary-auth
    Properties:
      Environment:
        Variables:
          EGRESS_ALLOWLIST: ""
  ControlTable:
    Type: AWS::DynamoDB::Table
  JobsQueue:
    Type: AWS::SQS::Queue
  AdminApiKeySecret:
    Type: AWS::SecretsManager::Secret
"#;

    #[test]
    fn functions_get_the_template_environment_resolved_and_lambda_variables() {
        let template = Template::parse(TEMPLATE, Path::new("template.yaml")).unwrap();

        let subjects = from_template(&template, Path::new("/bin")).unwrap();

        let [hello, auth] = subjects.as_slice() else {
            panic!("expected the hello world and one function: {subjects:?}");
        };
        assert!(hello.is_hello());
        assert!(!hello.env.contains_key("CONTROL_TABLE"));
        assert_eq!(hello.env["AWS_LAMBDA_LOG_FORMAT"], "JSON");
        assert_eq!(auth.program, Path::new("/bin/tributary-auth"));
        assert_eq!(auth.env["TRIBUTARY_STAGE"], "dev");
        assert_eq!(
            auth.env["CONTROL_TABLE"],
            "tributary-ControlTable-1A2B3C4D5E6F"
        );
        assert!(auth.env["JOBS_QUEUE_URL"].starts_with("https://sqs.us-east-1.amazonaws.com/"));
        assert!(auth.env["ADMIN_KEY_SECRET_ID"].starts_with("arn:aws:secretsmanager:"));
        assert_eq!(auth.env["EGRESS_ALLOWLIST"], "");
        assert_eq!(auth.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(auth.env["AWS_LAMBDA_LOG_LEVEL"], "INFO");
        assert!(auth.env.contains_key("AWS_SESSION_TOKEN"));
    }
}
