//! Reading `infra/template.yaml`: the one list of resources, functions, routes and event sources.
//!
//! The YAML is normalised into JSON first: CloudFormation short tags (`!Ref X`, `!GetAtt X.Arn`,
//! `!Sub …`) become their long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["X", "Arn"]}`, …), so one
//! evaluator handles both spellings. Only the parts the local stack acts on are interpreted; anything
//! else (alarms, topics, IAM) is AWS-only and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::Error;

/// The route key of the catch-all route API Gateway uses when no other route matches.
const DEFAULT_ROUTE: &str = "$default";

/// A parsed SAM template.
#[derive(Debug, Clone)]
pub struct Template {
    parameters: Map<String, Value>,
    globals_function: Map<String, Value>,
    resources: Map<String, Value>,
}

/// One resource as written in the template.
#[derive(Debug, Clone)]
pub struct ResourceDef<'a> {
    /// Logical id.
    pub logical_id: &'a str,
    /// CloudFormation type, such as `AWS::SQS::Queue`.
    pub kind: &'a str,
    /// `Properties`, unevaluated (an empty map when absent).
    pub properties: &'a Map<String, Value>,
}

/// A Lambda function of the template, with `Globals` applied.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    /// Logical id, such as `ApiFunction`.
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`), which is also the package name.
    pub binary: String,
    /// `Timeout`.
    pub timeout: Duration,
    /// `MemorySize` in MB.
    pub memory_mb: u64,
    /// `Environment.Variables` of `Globals` merged with the function's, unevaluated.
    pub environment: BTreeMap<String, Value>,
    /// `LoggingConfig.LogFormat`.
    pub log_format: Option<String>,
    /// `LoggingConfig.ApplicationLogLevel`, unevaluated.
    pub log_level: Option<Value>,
    /// The function's event sources.
    pub events: Vec<EventDef>,
}

/// An event source of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum EventDef {
    /// An `HttpApi` route.
    HttpApi(RouteDef),
    /// An `SQS` event source mapping.
    Sqs(SqsSourceDef),
    /// A `Schedule` (EventBridge rule).
    Schedule {
        /// The event's name in the template.
        name: String,
        /// `rate(…)` or `cron(…)`.
        expression: String,
    },
}

/// A route of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDef {
    /// `GET`, `POST`, … or `ANY`.
    pub method: String,
    /// `/v1/health`, `/{proxy+}`, or `$default`.
    pub path: String,
    /// `None`: the API's default authorizer; `Some("NONE")`: public; `Some(name)`: that authorizer.
    pub authorizer: Option<String>,
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSourceDef {
    /// Logical id of the queue (from `Queue: !GetAtt X.Arn`).
    pub queue: String,
    /// `BatchSize` (default 10).
    pub batch_size: i32,
    /// `MaximumBatchingWindowInSeconds` (default 0).
    pub batching_window: Duration,
    /// Whether `FunctionResponseTypes` has `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
}

/// The HTTP API's authorization set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpApiDef {
    /// Logical id of the `AWS::Serverless::HttpApi`.
    pub logical_id: String,
    /// `Auth.DefaultAuthorizer`.
    pub default_authorizer: Option<String>,
    /// `Auth.Authorizers`, by name.
    pub authorizers: BTreeMap<String, AuthorizerDef>,
}

/// A Lambda REQUEST authorizer with payload 2.0 and simple responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerDef {
    /// Logical id of the authorizer function.
    pub function: String,
    /// The identity sources, in order, e.g. `$request.header.Authorization`.
    pub identity_sources: Vec<IdentitySource>,
    /// `Identity.ReauthorizeEvery` (API Gateway's default is 300 s; 0 disables caching).
    pub ttl: Duration,
}

/// Where an identity source is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `$request.header.<name>`.
    Header(String),
    /// `$request.querystring.<name>`.
    QueryString(String),
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::parse(&text, path)
    }

    /// Parses template text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let yaml: serde_norway::Value =
            serde_norway::from_str(text).map_err(|source| Error::TemplateSyntax {
                path: PathBuf::from(path),
                source,
            })?;
        let Value::Object(mut root) = normalise(yaml)? else {
            return Err(Error::Template("the document is not a mapping".into()));
        };
        let mut section = |name: &str| match root.remove(name) {
            Some(Value::Object(map)) => Ok(map),
            None => Ok(Map::new()),
            Some(_) => Err(Error::Template(format!("`{name}` is not a mapping"))),
        };
        let parameters = section("Parameters")?;
        let resources = section("Resources")?;
        let globals = section("Globals")?;
        let globals_function = match globals.get("Function") {
            Some(Value::Object(map)) => map.clone(),
            None => Map::new(),
            Some(_) => {
                return Err(Error::Template(
                    "`Globals.Function` is not a mapping".into(),
                ));
            }
        };
        Ok(Self {
            parameters,
            globals_function,
            resources,
        })
    }

    /// Sets property `property` of resource `logical_id` (which must exist, and have it): how tests
    /// shorten a function's `Timeout` or a queue's `VisibilityTimeout`.
    pub fn override_property(
        &mut self,
        logical_id: &str,
        property: &str,
        value: Value,
    ) -> Result<(), Error> {
        let slot = self
            .resources
            .get_mut(logical_id)
            .and_then(|r| r.get_mut("Properties"))
            .and_then(Value::as_object_mut)
            .and_then(|props| props.get_mut(property))
            .ok_or_else(|| {
                Error::Template(format!(
                    "cannot override {logical_id}.Properties.{property}: the template has no such property"
                ))
            })?;
        *slot = value;
        Ok(())
    }

    /// Refuses an SQS event source whose queue's visibility timeout (SQS's default is 30 s) is
    /// shorter than its function's timeout, as Lambda refuses to create that event source mapping:
    /// a message would come back while its invocation still runs.
    pub fn check_event_sources(&self, functions: &[FunctionDef]) -> Result<(), Error> {
        for f in functions {
            for event in &f.events {
                let EventDef::Sqs(source) = event else {
                    continue;
                };
                let visibility = match self
                    .resources
                    .get(&source.queue)
                    .and_then(|q| q.pointer("/Properties/VisibilityTimeout"))
                {
                    None => 30,
                    Some(v) => match v.as_u64().or_else(|| v.as_str()?.parse().ok()) {
                        Some(seconds) => seconds,
                        // A parameter or another intrinsic: judged where it resolves.
                        None => continue,
                    },
                };
                if visibility < f.timeout.as_secs() {
                    return Err(Error::Template(format!(
                        "{}: the visibility timeout of {} ({visibility} s) is less than the \
                         function's timeout ({} s), which Lambda refuses for an SQS event source",
                        f.logical_id,
                        source.queue,
                        f.timeout.as_secs()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every parameter's `Default`, as CloudFormation passes parameters: strings.
    pub fn parameter_defaults(&self) -> BTreeMap<String, String> {
        self.parameters
            .iter()
            .filter_map(|(name, def)| {
                def.get("Default")
                    .and_then(scalar_string)
                    .map(|v| (name.clone(), v))
            })
            .collect()
    }

    /// Whether the template declares a parameter.
    pub fn has_parameter(&self, name: &str) -> bool {
        self.parameters.contains_key(name)
    }

    /// A parameter's declaration (`Type`, `Default`, `Description`, …), as written.
    pub fn parameter(&self, name: &str) -> Option<&Map<String, Value>> {
        self.parameters.get(name).and_then(Value::as_object)
    }

    /// The resources in template order.
    pub fn resources(&self) -> impl Iterator<Item = ResourceDef<'_>> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.resources.iter().map(|(id, def)| ResourceDef {
            logical_id: id,
            kind: def.get("Type").and_then(Value::as_str).unwrap_or_default(),
            properties: def
                .get("Properties")
                .and_then(Value::as_object)
                .unwrap_or_else(|| EMPTY.get_or_init(Map::new)),
        })
    }

    /// The `AWS::Serverless::Function` resources with `Globals.Function` applied.
    pub fn functions(&self) -> Result<Vec<FunctionDef>, Error> {
        self.resources()
            .filter(|r| r.kind == "AWS::Serverless::Function")
            .map(|r| self.function(r.logical_id))
            .collect()
    }

    fn function(&self, logical_id: &str) -> Result<FunctionDef, Error> {
        let resource = &self.resources[logical_id];
        let props = resource
            .get("Properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let global = |key: &str| props.get(key).or_else(|| self.globals_function.get(key));
        let binary = resource
            .pointer("/Metadata/BuildProperties/Binary")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::Template(format!(
                    "{logical_id} has no Metadata.BuildProperties.Binary (the cargo binary to run)"
                ))
            })?
            .to_owned();
        let timeout = match global("Timeout") {
            None => 3,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| Error::Template(format!("{logical_id}: Timeout is not a number")))?,
        };
        let memory_mb = match global("MemorySize") {
            None => 128,
            Some(v) => v.as_u64().ok_or_else(|| {
                Error::Template(format!("{logical_id}: MemorySize is not a number"))
            })?,
        };
        let mut environment = BTreeMap::new();
        for source in [
            self.globals_function.get("Environment"),
            props.get("Environment"),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(vars) = source.get("Variables").and_then(Value::as_object) {
                environment.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let logging = global("LoggingConfig");
        let log_format = logging
            .and_then(|l| l.get("LogFormat"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let log_level = logging.and_then(|l| l.get("ApplicationLogLevel")).cloned();
        let mut events = Vec::new();
        if let Some(map) = props.get("Events").and_then(Value::as_object) {
            for (name, event) in map {
                if let Some(event) = event_def(logical_id, name, event)? {
                    events.push(event);
                }
            }
        }
        Ok(FunctionDef {
            logical_id: logical_id.to_owned(),
            binary,
            timeout: Duration::from_secs(timeout),
            memory_mb,
            environment,
            log_format,
            log_level,
            events,
        })
    }

    /// The `AWS::Serverless::HttpApi`, if the template has one, with parameters at their defaults.
    pub fn http_api(&self) -> Result<Option<HttpApiDef>, Error> {
        let mut defaults = Resolver::default();
        for (name, value) in self.parameter_defaults() {
            defaults.set_ref(name, value);
        }
        self.http_api_resolved(&defaults)
    }

    /// The `AWS::Serverless::HttpApi`, with settings that reference parameters (such as
    /// `ReauthorizeEvery: !Ref …`) resolved by `resolver`.
    pub fn http_api_resolved(&self, resolver: &Resolver) -> Result<Option<HttpApiDef>, Error> {
        let mut apis = self
            .resources()
            .filter(|r| r.kind == "AWS::Serverless::HttpApi");
        let Some(api) = apis.next() else {
            return Ok(None);
        };
        if apis.next().is_some() {
            return Err(Error::Template(
                "the local gateway serves exactly one AWS::Serverless::HttpApi".into(),
            ));
        }
        let auth = api.properties.get("Auth");
        let default_authorizer = auth
            .and_then(|a| a.get("DefaultAuthorizer"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut authorizers = BTreeMap::new();
        if let Some(map) = auth
            .and_then(|a| a.get("Authorizers"))
            .and_then(Value::as_object)
        {
            for (name, def) in map {
                authorizers.insert(name.clone(), authorizer_def(name, def, resolver)?);
            }
        }
        if let Some(name) = &default_authorizer
            && !authorizers.contains_key(name)
        {
            return Err(Error::Template(format!(
                "DefaultAuthorizer {name} is not among Auth.Authorizers"
            )));
        }
        Ok(Some(HttpApiDef {
            logical_id: api.logical_id.to_owned(),
            default_authorizer,
            authorizers,
        }))
    }
}

fn authorizer_def(name: &str, def: &Value, resolver: &Resolver) -> Result<AuthorizerDef, Error> {
    let unsupported = |what: &str| {
        Error::Template(format!(
            "authorizer {name}: {what} (the local gateway emulates Lambda REQUEST authorizers with payload 2.0 and simple responses)"
        ))
    };
    let function = def
        .get("FunctionArn")
        .and_then(get_att_target)
        .ok_or_else(|| unsupported("FunctionArn is not `!GetAtt <Function>.Arn`"))?;
    if def
        .get("AuthorizerPayloadFormatVersion")
        .and_then(scalar_string)
        != Some("2.0".into())
    {
        return Err(unsupported("AuthorizerPayloadFormatVersion is not 2.0"));
    }
    if def.get("EnableSimpleResponses").and_then(Value::as_bool) != Some(true) {
        return Err(unsupported("EnableSimpleResponses is not true"));
    }
    let identity = def.get("Identity");
    let names = |key: &str| -> Vec<String> {
        identity
            .and_then(|i| i.get(key))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(scalar_string).collect())
            .unwrap_or_default()
    };
    let mut identity_sources: Vec<IdentitySource> = names("Headers")
        .into_iter()
        .map(IdentitySource::Header)
        .collect();
    identity_sources.extend(
        names("QueryStrings")
            .into_iter()
            .map(IdentitySource::QueryString),
    );
    let ttl = identity
        .and_then(|i| i.get("ReauthorizeEvery"))
        .map(|v| {
            let not_a_number = || unsupported("ReauthorizeEvery is not a number of seconds");
            match v.as_u64() {
                Some(n) => Ok(n),
                // `!Ref <Parameter>`: CloudFormation passes parameters as strings.
                None => resolver
                    .eval_string(v)?
                    .parse::<u64>()
                    .map_err(|_| not_a_number()),
            }
        })
        .transpose()?
        .unwrap_or(300);
    Ok(AuthorizerDef {
        function,
        identity_sources,
        ttl: Duration::from_secs(ttl),
    })
}

fn event_def(function: &str, name: &str, event: &Value) -> Result<Option<EventDef>, Error> {
    let kind = event
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let props = event.get("Properties").cloned().unwrap_or(Value::Null);
    let bad = |what: &str| Error::Template(format!("{function}.Events.{name}: {what}"));
    match kind {
        "HttpApi" => {
            let method = props
                .get("Method")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase)
                .unwrap_or_else(|| "ANY".into());
            let path = props
                .get("Path")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_ROUTE)
                .to_owned();
            let authorizer = props
                .pointer("/Auth/Authorizer")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(Some(EventDef::HttpApi(RouteDef {
                method,
                path,
                authorizer,
            })))
        }
        "SQS" => {
            let queue = props
                .get("Queue")
                .and_then(get_att_target)
                .ok_or_else(|| bad("Queue is not `!GetAtt <Queue>.Arn`"))?;
            let batch_size = match props.get("BatchSize") {
                None => 10,
                Some(v) => v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| bad("BatchSize is not a number"))?,
            };
            let window = match props.get("MaximumBatchingWindowInSeconds") {
                None => 0,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| bad("MaximumBatchingWindowInSeconds is not a number"))?,
            };
            let report_batch_item_failures = props
                .get("FunctionResponseTypes")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|t| t == "ReportBatchItemFailures"));
            Ok(Some(EventDef::Sqs(SqsSourceDef {
                queue,
                batch_size,
                batching_window: Duration::from_secs(window),
                report_batch_item_failures,
            })))
        }
        "Schedule" | "ScheduleV2" => {
            let key = if kind == "Schedule" {
                "Schedule"
            } else {
                "ScheduleExpression"
            };
            let expression = props
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| bad("the schedule expression is not a string"))?
                .to_owned();
            let enabled = props.get("Enabled").and_then(Value::as_bool) != Some(false)
                && props.get("State").and_then(Value::as_str) != Some("DISABLED");
            Ok(enabled.then(|| EventDef::Schedule {
                name: name.to_owned(),
                expression,
            }))
        }
        other => {
            tracing::warn!(
                function,
                event = name,
                kind = other,
                "event source type not emulated locally"
            );
            Ok(None)
        }
    }
}

/// The logical id in `{"Fn::GetAtt": [id, "Arn"]}`.
fn get_att_target(value: &Value) -> Option<String> {
    let args = value.get("Fn::GetAtt")?.as_array()?;
    match args.as_slice() {
        [Value::String(id), Value::String(attr)] if attr == "Arn" => Some(id.clone()),
        _ => None,
    }
}

/// A scalar as CloudFormation would pass it: strings as they are, numbers and booleans printed.
pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Turns YAML into JSON, rewriting short-form intrinsics into their long form.
fn normalise(value: serde_norway::Value) -> Result<Value, Error> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(normalise).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(Error::Template(format!(
                            "unsupported mapping key {other:?}"
                        )));
                    }
                };
                out.insert(key, normalise(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = normalise(tagged.value)?;
            let (key, arg) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                "GetAtt" => {
                    let arg = match inner {
                        Value::String(s) => {
                            let (id, attr) = s.split_once('.').ok_or_else(|| {
                                Error::Template(format!("!GetAtt {s} lacks an attribute"))
                            })?;
                            Value::Array(vec![id.into(), attr.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), arg)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, arg);
            Value::Object(out)
        }
    })
}

/// Values that intrinsics resolve to: parameters, pseudo parameters, physical ids and attributes.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    values: BTreeMap<String, String>,
    attributes: BTreeMap<(String, String), String>,
}

impl Resolver {
    /// Makes `!Ref name` resolve to `value` (parameters, pseudo parameters and physical ids).
    pub fn set_ref(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// Makes `!GetAtt id.attribute` resolve to `value`.
    pub fn set_attribute(
        &mut self,
        id: impl Into<String>,
        attribute: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.attributes
            .insert((id.into(), attribute.into()), value.into());
    }

    /// What `!Ref name` resolves to.
    pub fn reference(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// What `!GetAtt id.attribute` resolves to.
    pub fn attribute(&self, id: &str, attribute: &str) -> Option<&str> {
        self.attributes
            .get(&(id.to_owned(), attribute.to_owned()))
            .map(String::as_str)
    }

    /// Evaluates `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join` anywhere inside `value`.
    pub fn eval(&self, value: &Value) -> Result<Value, Error> {
        match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|v| self.eval(v))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(map) if map.len() == 1 => {
                let Some((key, arg)) = map.iter().next() else {
                    return Ok(value.clone());
                };
                match key.as_str() {
                    "Ref" => {
                        let name = arg
                            .as_str()
                            .ok_or_else(|| Error::Template("Ref of a non-string".into()))?;
                        self.reference(name)
                            .map(|v| Value::String(v.to_owned()))
                            .ok_or_else(|| Error::Unresolved(format!("!Ref {name}")))
                    }
                    "Fn::GetAtt" => {
                        let (id, attr) = match arg.as_array().map(Vec::as_slice) {
                            Some([Value::String(id), Value::String(attr)]) => (id, attr),
                            _ => return Err(Error::Template(format!("malformed GetAtt {arg}"))),
                        };
                        self.attribute(id, attr)
                            .map(|v| Value::String(v.to_owned()))
                            .ok_or_else(|| Error::Unresolved(format!("!GetAtt {id}.{attr}")))
                    }
                    "Fn::Sub" => self.sub(arg).map(Value::String),
                    "Fn::Join" => {
                        let (sep, items) = match arg.as_array().map(Vec::as_slice) {
                            Some([Value::String(sep), items]) => (sep, self.eval(items)?),
                            _ => return Err(Error::Template(format!("malformed Join {arg}"))),
                        };
                        let parts: Option<Vec<String>> = items
                            .as_array()
                            .map(|a| a.iter().map(scalar_string).collect())
                            .unwrap_or_default();
                        parts
                            .map(|p| Value::String(p.join(sep)))
                            .ok_or_else(|| Error::Template(format!("malformed Join {arg}")))
                    }
                    k if k.starts_with("Fn::") || k == "Condition" => Err(Error::Template(
                        format!("{k} is not evaluated by the local stack"),
                    )),
                    _ => Ok(Value::Object(self.eval_map(map)?)),
                }
            }
            Value::Object(map) => Ok(Value::Object(self.eval_map(map)?)),
            other => Ok(other.clone()),
        }
    }

    fn eval_map(&self, map: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
        map.iter()
            .map(|(k, v)| Ok((k.clone(), self.eval(v)?)))
            .collect()
    }

    /// Evaluates `value` and requires a scalar, returned as CloudFormation would pass it.
    pub fn eval_string(&self, value: &Value) -> Result<String, Error> {
        let evaluated = self.eval(value)?;
        scalar_string(&evaluated)
            .ok_or_else(|| Error::Template(format!("expected a scalar, found {evaluated}")))
    }

    fn sub(&self, arg: &Value) -> Result<String, Error> {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), BTreeMap::new()),
            Value::Array(items) => match items.as_slice() {
                [Value::String(s), Value::Object(vars)] => {
                    let vars = vars
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), self.eval_string(v)?)))
                        .collect::<Result<BTreeMap<_, _>, Error>>()?;
                    (s.as_str(), vars)
                }
                _ => return Err(Error::Template(format!("malformed Sub {arg}"))),
            },
            _ => return Err(Error::Template(format!("malformed Sub {arg}"))),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| Error::Template(format!("unterminated ${{ in Sub {text}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(
                    self.attribute(id, attr)
                        .ok_or_else(|| Error::Unresolved(format!("${{{name}}}")))?,
                );
            } else {
                out.push_str(
                    self.reference(name)
                        .ok_or_else(|| Error::Unresolved(format!("${{{name}}}")))?,
                );
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Parameters:
  Stage: { Type: String, Default: dev }
  Size: { Type: Number, Default: 10 }
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        STAGE: !Ref Stage
        QUEUE: !Ref Queue
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Lambda
        Authorizers:
          Lambda:
            FunctionArn: !GetAtt AuthFn.Arn
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity: { Headers: [Authorization], ReauthorizeEvery: 60 }
  AuthFn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: auth-bin } }
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: worker-bin } }
    Properties:
      Timeout: 60
      Environment: { Variables: { EXTRA: "1", QUEUE: override } }
      Events:
        Jobs:
          Type: SQS
          Properties: { Queue: !GetAtt Queue.Arn, BatchSize: 5, FunctionResponseTypes: [ReportBatchItemFailures] }
        Tick:
          Type: Schedule
          Properties: { Schedule: rate(1 minute) }
        Route:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: get, Path: /x, Auth: { Authorizer: NONE } }
"#;

    fn sample() -> Template {
        Template::parse(SAMPLE, Path::new("sample.yaml")).expect("sample parses")
    }

    #[test]
    fn a_property_is_overridden_only_where_the_template_has_it() {
        let mut t = sample();
        t.override_property("Worker", "Timeout", serde_json::json!(5))
            .expect("overridden");
        assert_eq!(
            t.function("Worker").expect("function").timeout,
            Duration::from_secs(5)
        );
        // The worker's queue (visibility 30 s, SQS's default) must outlast its timeout.
        t.check_event_sources(&t.functions().expect("functions"))
            .expect("5 s < 30 s");
        t.override_property("Worker", "Timeout", serde_json::json!(31))
            .expect("overridden");
        let e = t
            .check_event_sources(&t.functions().expect("functions"))
            .expect_err("31 s > 30 s");
        assert!(e.to_string().contains("(30 s) is less than"), "{e}");
        for (id, property) in [("Worker", "Timeut"), ("Nobody", "Timeout")] {
            let e = t
                .override_property(id, property, serde_json::json!(5))
                .expect_err("refused");
            assert!(e.to_string().contains(property), "{e}");
        }
    }

    #[test]
    fn short_form_intrinsics_become_long_form() {
        let t = sample();
        let f = t.function("AuthFn").expect("function");
        assert_eq!(f.environment["STAGE"], serde_json::json!({"Ref": "Stage"}));
    }

    #[test]
    fn function_level_settings_override_globals_and_environments_merge() {
        let t = sample();
        let f = t.function("Worker").expect("function");
        assert_eq!(f.binary, "worker-bin");
        assert_eq!(f.timeout, Duration::from_secs(60));
        assert_eq!(f.environment["QUEUE"], "override");
        assert_eq!(f.environment["EXTRA"], "1");
        assert_eq!(f.environment["STAGE"], serde_json::json!({"Ref": "Stage"}));
        assert_eq!(
            t.function("AuthFn").expect("function").timeout,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn events_are_read_with_aws_defaults() {
        let f = sample().function("Worker").expect("function");
        assert!(f.events.contains(&EventDef::Sqs(SqsSourceDef {
            queue: "Queue".into(),
            batch_size: 5,
            batching_window: Duration::ZERO,
            report_batch_item_failures: true,
        })));
        assert!(f.events.contains(&EventDef::Schedule {
            name: "Tick".into(),
            expression: "rate(1 minute)".into()
        }));
        assert!(f.events.contains(&EventDef::HttpApi(RouteDef {
            method: "GET".into(),
            path: "/x".into(),
            authorizer: Some("NONE".into()),
        })));
    }

    #[test]
    fn http_api_authorizer_is_read() {
        let api = sample().http_api().expect("valid").expect("present");
        assert_eq!(api.default_authorizer.as_deref(), Some("Lambda"));
        let a = &api.authorizers["Lambda"];
        assert_eq!(a.function, "AuthFn");
        assert_eq!(
            a.identity_sources,
            vec![IdentitySource::Header("Authorization".into())]
        );
        assert_eq!(a.ttl, Duration::from_secs(60));
    }

    #[test]
    fn reauthorize_every_may_reference_a_parameter() {
        let text = SAMPLE
            .replace("ReauthorizeEvery: 60", "ReauthorizeEvery: !Ref CacheTtl")
            .replace(
                "  Size: { Type: Number, Default: 10 }",
                "  Size: { Type: Number, Default: 10 }\n  CacheTtl: { Type: Number, Default: 300 }",
            );
        let t = Template::parse(&text, Path::new("sample.yaml")).expect("parses");
        let ttl = |api: Option<HttpApiDef>| api.expect("present").authorizers["Lambda"].ttl;
        assert_eq!(ttl(t.http_api().expect("valid")), Duration::from_secs(300));
        let mut r = Resolver::default();
        r.set_ref("CacheTtl", "3");
        assert_eq!(
            ttl(t.http_api_resolved(&r).expect("valid")),
            Duration::from_secs(3)
        );
        r.set_ref("CacheTtl", "soon");
        assert!(t.http_api_resolved(&r).is_err());
    }

    #[test]
    fn parameter_defaults_are_strings() {
        let d = sample().parameter_defaults();
        assert_eq!(d["Stage"], "dev");
        assert_eq!(d["Size"], "10");
    }

    #[test]
    fn resolver_evaluates_ref_getatt_sub_and_join() {
        let mut r = Resolver::default();
        r.set_ref("Queue", "http://q");
        r.set_attribute("Queue", "Arn", "arn:q");
        r.set_ref("AWS::Region", "us-east-1");
        let v = serde_json::json!({
            "a": {"Ref": "Queue"},
            "b": {"Fn::GetAtt": ["Queue", "Arn"]},
            "c": {"Fn::Sub": "${Queue}|${Queue.Arn}|${AWS::Region}|${!Literal}"},
            "d": {"Fn::Sub": ["${X}-${Queue}", {"X": {"Ref": "AWS::Region"}}]},
            "e": {"Fn::Join": [",", ["a", {"Ref": "Queue"}]]},
            "f": [1, true]
        });
        let out = r.eval(&v).expect("evaluates");
        assert_eq!(
            out,
            serde_json::json!({
                "a": "http://q",
                "b": "arn:q",
                "c": "http://q|arn:q|us-east-1|${Literal}",
                "d": "us-east-1-http://q",
                "e": "a,http://q",
                "f": [1, true]
            })
        );
    }

    #[test]
    fn resolver_reports_unknown_references() {
        let r = Resolver::default();
        let err = r
            .eval(&serde_json::json!({"Ref": "Nope"}))
            .expect_err("unresolved");
        assert!(matches!(err, Error::Unresolved(_)), "{err}");
    }
}
