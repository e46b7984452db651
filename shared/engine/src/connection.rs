//! A connection's configuration and credentials, checked against a spec, and how requests are
//! rendered from request templates with auth applied.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::client::{AuthParts, OutRequest};
use crate::error::EngineError;
use crate::spec::{ApiKeyLocation, AuthMode, BodyEncoding, ProviderSpec, RequestTemplate};
use crate::template::{Context, Template, TemplateError, render_json_tree};

/// Characters left as-is in a path segment (RFC 3986 unreserved).
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One end user's account at a provider: connection configuration and credentials.
#[derive(Default, Clone)]
pub struct Connection {
    /// Connection configuration (`{config.*}`).
    pub config: BTreeMap<String, String>,
    /// Credentials (`{credentials.*}`).
    pub credentials: BTreeMap<String, SecretString>,
    /// Auth mode (`type`) to use; default: the first whose required credentials are present.
    pub auth_mode: Option<String>,
    /// Replaces the spec's (or the auth mode's) base URL (local mocks, sandboxes); a template
    /// like theirs (`{config.*}` values are filled in).
    pub base_url: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("config", &self.config)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("auth_mode", &self.auth_mode)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A connection validated against a spec, ready to render requests.
#[derive(Debug)]
pub struct Bound<'a> {
    /// The spec.
    pub spec: &'a ProviderSpec,
    /// Configuration with defaults applied.
    pub config: BTreeMap<String, String>,
    /// Credentials.
    pub credentials: &'a BTreeMap<String, SecretString>,
    /// Auth mode in use.
    pub auth: &'a AuthMode,
    /// Base URL.
    pub base_url: Url,
}

fn tpl_err(spec: &ProviderSpec, field: &str, source: TemplateError) -> EngineError {
    EngineError::Template {
        spec: spec.id.clone(),
        field: field.to_owned(),
        source,
    }
}

impl<'a> Bound<'a> {
    /// Checks required fields and patterns, applies defaults, picks the auth mode and renders
    /// the base URL.
    pub fn new(spec: &'a ProviderSpec, conn: &'a Connection) -> Result<Self, EngineError> {
        let cerr = |message: String| EngineError::Connection {
            spec: spec.id.clone(),
            message,
        };
        let mut config = conn.config.clone();
        for f in &spec.connection_config {
            match (config.get(&f.name), &f.default) {
                (None, Some(d)) => {
                    config.insert(f.name.clone(), d.clone());
                }
                (None, None) if f.required => {
                    return Err(cerr(format!(
                        "missing connection config `{}` ({})",
                        f.name, f.label
                    )));
                }
                _ => {}
            }
            if let (Some(v), Some(p)) = (config.get(&f.name), &f.pattern) {
                let re = regex_lite::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| cerr(format!("pattern of `{}`: {e}", f.name)))?;
                if !re.is_match(v) {
                    return Err(cerr(format!("`{}` does not match {p}", f.name)));
                }
            }
        }
        let auth = match &conn.auth_mode {
            Some(kind) => spec
                .auth
                .iter()
                .find(|m| m.kind() == kind)
                .ok_or_else(|| cerr(format!("auth mode `{kind}` is not supported")))?,
            None => spec
                .auth
                .iter()
                .find(|m| has_required(m, &conn.credentials))
                .or_else(|| spec.auth.first())
                .ok_or_else(|| cerr("the spec has no auth mode".into()))?,
        };
        for f in auth.credential_fields() {
            if f.required && !conn.credentials.contains_key(&f.name) {
                return Err(cerr(format!(
                    "missing credential `{}` ({})",
                    f.name, f.label
                )));
            }
        }
        let ctx = Context {
            config: Some(&config),
            ..Context::default()
        };
        let template = conn
            .base_url
            .as_deref()
            .unwrap_or_else(|| spec.base_url_for(Some(auth), &config));
        let t = Template::parse(template).map_err(|e| tpl_err(spec, "base_url", e))?;
        let raw = if template.starts_with('{') {
            t.render(&ctx)
        } else {
            // Values may not change the host or path structure.
            t.render_with(&ctx, |v, out| out.extend(utf8_percent_encode(v, SEGMENT)))
        }
        .map_err(|e| tpl_err(spec, "base_url", e))?;
        let base_url = Url::parse(&raw).map_err(|e| cerr(format!("base URL `{raw}`: {e}")))?;
        Ok(Self {
            spec,
            config,
            credentials: &conn.credentials,
            auth,
            base_url,
        })
    }

    /// A template context with this connection's values.
    pub fn context<'c>(&'c self, input: Option<&'c Value>, cursor: Option<&'c str>) -> Context<'c> {
        Context {
            config: Some(&self.config),
            credentials: Some(self.credentials),
            input,
            cursor,
            idempotency_key: None,
        }
    }

    /// Renders a request. `field` names the template in errors. `extra_query` and `body_fields`
    /// come from pagination and incremental settings.
    pub fn render(
        &self,
        field: &str,
        tpl: &RequestTemplate,
        ctx: &Context<'_>,
        extra_query: &[(String, String)],
        body_fields: &[(String, Value)],
        encoding: BodyEncoding,
    ) -> Result<OutRequest, EngineError> {
        let spec = self.spec;
        let path = Template::parse(&tpl.path)
            .and_then(|t| t.render_with(ctx, |v, out| out.extend(utf8_percent_encode(v, SEGMENT))))
            .map_err(|e| tpl_err(spec, &format!("{field}.path"), e))?;
        let mut url = self.base_url.clone();
        let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        {
            let mut pairs = url.query_pairs_mut();
            for (k, t) in spec.query.iter().chain(tpl.query.iter()) {
                match Template::parse(t).and_then(|t| t.render(ctx)) {
                    Ok(v) => {
                        pairs.append_pair(k, &v);
                    }
                    // An optional value that is absent drops the parameter.
                    Err(TemplateError::Missing(_)) => {}
                    Err(e) => return Err(tpl_err(spec, &format!("{field}.query.{k}"), e)),
                }
            }
            for (k, v) in extra_query {
                pairs.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut headers = HeaderMap::new();
        for (k, t) in spec.headers.iter().chain(tpl.headers.iter()) {
            let v = Template::parse(t)
                .and_then(|t| t.render(ctx))
                .map_err(|e| tpl_err(spec, &format!("{field}.headers.{k}"), e))?;
            insert_header(&mut headers, k, &v, false)
                .map_err(|m| self.spec_err(format!("{field}.headers.{k}: {m}")))?;
        }
        let mut body_value = match &tpl.body {
            Some(b) => {
                Some(render_body(b, ctx).map_err(|e| tpl_err(spec, &format!("{field}.body"), e))?)
            }
            None => None,
        };
        if !body_fields.is_empty() {
            let obj = body_value.get_or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(m) = obj {
                for (k, v) in body_fields {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        let body = match body_value {
            None => None,
            Some(v) => Some(match encoding {
                BodyEncoding::Json => {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Bytes::from(
                        serde_json::to_vec(&v)
                            .map_err(|e| self.spec_err(format!("{field}.body: {e}")))?,
                    )
                }
                BodyEncoding::Form => {
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    );
                    Bytes::from(form_encode(&v))
                }
            }),
        };
        Ok(OutRequest {
            method: tpl.method.as_http(),
            url,
            headers,
            auth: self.auth_parts()?,
            body,
            idempotent: !matches!(
                tpl.method,
                crate::spec::Method::Post | crate::spec::Method::Patch
            ),
        })
    }

    fn spec_err(&self, message: String) -> EngineError {
        EngineError::Spec {
            spec: self.spec.id.clone(),
            message,
        }
    }

    /// The query parameter the auth mode sends its credential in, when it uses the query. The
    /// client adds it to every request ([`Self::auth_parts`]), so a URL from the provider that
    /// already carries it must lose its copy.
    pub fn auth_query_param(&self) -> Option<&str> {
        let (location, name) = match self.auth {
            AuthMode::ApiKey(a) => (a.location, &a.name),
            AuthMode::OAuth2AuthorizationCode(o) => (o.apply.location, &o.apply.name),
            AuthMode::OAuth2ClientCredentials(o) => (o.apply.location, &o.apply.name),
            AuthMode::Basic(_) => return None,
        };
        (location == ApiKeyLocation::Query).then_some(name.as_str())
    }

    /// The credentials of the auth mode, as headers or query parameters.
    pub fn auth_parts(&self) -> Result<AuthParts, EngineError> {
        let ctx = self.context(None, None);
        let mut parts = AuthParts::default();
        let render = |field: &str, t: &str| {
            Template::parse(t)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| tpl_err(self.spec, field, e))
        };
        let (loc, name, value) = match self.auth {
            AuthMode::ApiKey(a) => (a.location, &a.name, render("auth.api_key.value", &a.value)?),
            AuthMode::Basic(b) => {
                let user = render("auth.basic.username", &b.username)?;
                let pass = render("auth.basic.password", &b.password)?;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let mut v = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    self.spec_err("basic credentials are not valid header text".into())
                })?;
                v.set_sensitive(true);
                parts.headers.insert(http::header::AUTHORIZATION, v);
                return Ok(parts);
            }
            AuthMode::OAuth2AuthorizationCode(o) => (
                o.apply.location,
                &o.apply.name,
                render("auth.apply.value", &o.apply.value)?,
            ),
            AuthMode::OAuth2ClientCredentials(o) => (
                o.apply.location,
                &o.apply.name,
                render("auth.apply.value", &o.apply.value)?,
            ),
        };
        match loc {
            ApiKeyLocation::Header => insert_header(&mut parts.headers, name, &value, true)
                .map_err(|m| self.spec_err(format!("auth header {name}: {m}")))?,
            ApiKeyLocation::Query => parts.query.push((name.clone(), SecretString::from(value))),
        }
        Ok(parts)
    }
}

fn has_required(mode: &AuthMode, creds: &BTreeMap<String, SecretString>) -> bool {
    match mode {
        AuthMode::OAuth2AuthorizationCode(_) | AuthMode::OAuth2ClientCredentials(_) => {
            creds.contains_key("access_token")
        }
        _ => mode
            .credential_fields()
            .iter()
            .filter(|f| f.required)
            .all(|f| creds.contains_key(&f.name)),
    }
}

fn insert_header(
    h: &mut HeaderMap,
    name: &str,
    value: &str,
    sensitive: bool,
) -> Result<(), String> {
    let n =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name".to_owned())?;
    let mut v =
        HeaderValue::from_str(value).map_err(|_| "value is not valid header text".to_owned())?;
    v.set_sensitive(sensitive);
    h.insert(n, v);
    Ok(())
}

/// Renders a JSON body template; keys whose value is exactly one missing `{input.*}` placeholder
/// are omitted, so optional inputs need no special syntax.
fn render_body(tpl: &Value, ctx: &Context<'_>) -> Result<Value, TemplateError> {
    match tpl {
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                if let Value::String(s) = v {
                    let t = Template::parse(s)?;
                    if let Some(crate::template::Var::Input(_)) = t.sole_var() {
                        match t.render_json(ctx) {
                            Ok(val) => {
                                out.insert(k.clone(), val);
                            }
                            Err(TemplateError::Missing(_)) => {}
                            Err(e) => return Err(e),
                        }
                        continue;
                    }
                }
                out.insert(k.clone(), render_body(v, ctx)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|i| render_body(i, ctx))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => render_json_tree(other, ctx),
    }
}

/// `application/x-www-form-urlencoded` with Stripe-style nesting (`a[b]=c`, `a[0]=c`).
pub fn form_encode(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, out: &mut url::form_urlencoded::Serializer<'_, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::String(s) => {
                out.append_pair(prefix, s);
            }
            Value::Null => {}
            other => {
                out.append_pair(prefix, &other.to_string());
            }
        }
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    walk("", v, &mut ser);
    ser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn form_encoding_nests_objects_like_stripe() {
        let v = json!({"email": "a@b.c", "metadata": {"plan": "pro"}, "items": [{"price": "p_1"}], "n": 3});
        assert_eq!(
            form_encode(&v),
            "email=a%40b.c&items%5B0%5D%5Bprice%5D=p_1&metadata%5Bplan%5D=pro&n=3"
        );
    }

    /// A spec whose Basic mode has a second base, chosen by an optional `cloud_id`.
    const TWO_BASES: &str = r#"
spec_version: 1
id: two-bases
name: Two bases
docs_url: https://example.com/docs
connection_config:
  - {name: site, label: Site, pattern: "[a-z]+"}
  - {name: cloud_id, label: Cloud id, required: false, pattern: "[a-z0-9-]+"}
base_url: https://{config.site}.example.com/api
auth:
  - type: basic
    credentials: [{name: email, label: Email}, {name: token, label: Token, secret: true}]
    username: "{credentials.email}"
    password: "{credentials.token}"
    base_url: https://gateway.example.com/ex/{config.cloud_id}/api
    base_url_when: cloud_id
streams: []
actions: []
"#;

    fn bound_base(spec: &ProviderSpec, config: &[(&str, &str)]) -> String {
        let conn = Connection {
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            credentials: [("email", "me@acme.com"), ("token", "t")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
                .collect(),
            ..Connection::default()
        };
        Bound::new(spec, &conn).unwrap().base_url.to_string()
    }

    #[test]
    fn a_mode_base_url_applies_only_when_its_config_value_is_set() {
        let spec = crate::spec::load(TWO_BASES, "two-bases.yaml").unwrap();

        assert_eq!(
            bound_base(&spec, &[("site", "acme")]),
            "https://acme.example.com/api"
        );
        assert_eq!(
            bound_base(&spec, &[("site", "acme"), ("cloud_id", "c-1")]),
            "https://gateway.example.com/ex/c-1/api"
        );
        let mode = &spec.auth[0];
        assert_eq!(
            mode.base_url(),
            None,
            "conditional, so not every connection's"
        );
        let empty = BTreeMap::from([("cloud_id".to_owned(), String::new())]);
        assert_eq!(
            mode.base_url_for(&empty),
            None,
            "an empty value is no value"
        );
    }

    #[test]
    fn body_omits_missing_optional_inputs() {
        let input = json!({"email": "a@b.c"});
        let ctx = Context {
            input: Some(&input),
            ..Context::default()
        };
        let out = render_body(
            &json!({"email": "{input.email}", "name": "{input.name}"}),
            &ctx,
        )
        .unwrap();
        assert_eq!(out, json!({"email": "a@b.c"}));
    }
}

/// What is wrong with the value given for a field (or a value given for no field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// A required field has no value.
    Missing,
    /// No field of this name.
    Unknown,
    /// The value does not match the field's pattern (shown).
    Mismatch(String),
    /// The value is empty, too long (over [`MAX_FIELD_CHARS`]) or holds control characters.
    Malformed,
}

/// The longest value a field takes.
pub const MAX_FIELD_CHARS: usize = 4096;

/// Checks the values an end user gave against the spec's fields: every required field present,
/// none unknown, each value well-formed and matching its field's pattern (anchored, as
/// [`Bound::new`] applies it). Returns the problems by field name, in name order; never the values.
pub fn check_fields<'a>(
    fields: &[crate::spec::FieldSpec],
    values: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, FieldProblem)> {
    let given: BTreeMap<&str, &str> = values.into_iter().collect();
    let mut problems = BTreeMap::new();
    for (name, value) in &given {
        let Some(field) = fields.iter().find(|f| f.name == *name) else {
            problems.insert((*name).to_owned(), FieldProblem::Unknown);
            continue;
        };
        if value.is_empty()
            || value.chars().count() > MAX_FIELD_CHARS
            || value.chars().any(char::is_control)
        {
            problems.insert(field.name.clone(), FieldProblem::Malformed);
            continue;
        }
        if let Some(pattern) = &field.pattern {
            // The catalog's patterns are checked when it loads; one that does not compile refuses
            // every value rather than none.
            let matched = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
                .is_ok_and(|re| re.is_match(value));
            if !matched {
                problems.insert(field.name.clone(), FieldProblem::Mismatch(pattern.clone()));
            }
        }
    }
    for field in fields {
        if field.required && field.default.is_none() && !given.contains_key(field.name.as_str()) {
            problems.insert(field.name.clone(), FieldProblem::Missing);
        }
    }
    problems.into_iter().collect()
}

#[cfg(test)]
mod field_tests {
    use super::*;
    use crate::spec::FieldSpec;

    fn field(
        name: &str,
        required: bool,
        pattern: Option<&str>,
        default: Option<&str>,
    ) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            label: name.into(),
            description: None,
            required,
            secret: false,
            pattern: pattern.map(Into::into),
            default: default.map(Into::into),
        }
    }

    #[test]
    fn fields_are_checked_for_presence_names_patterns_and_shape_without_echoing_values() {
        let fields = [
            field("subdomain", true, Some("[a-z0-9-]+"), None),
            field("region", true, None, Some("us")),
            field("note", false, None, None),
        ];
        assert!(check_fields(&fields, [("subdomain", "acme")]).is_empty());
        let problems = check_fields(
            &fields,
            [
                ("subdomain", "evil.com/x"),
                ("note", "a\nb"),
                ("extra", "secret-value"),
            ],
        );
        assert_eq!(
            problems,
            vec![
                ("extra".to_owned(), FieldProblem::Unknown),
                ("note".to_owned(), FieldProblem::Malformed),
                (
                    "subdomain".to_owned(),
                    FieldProblem::Mismatch("[a-z0-9-]+".into())
                ),
            ]
        );
        assert!(!format!("{problems:?}").contains("secret-value"));
        // Anchored: a match inside the value is not a match.
        assert_eq!(
            check_fields(&fields, [("subdomain", "ok-but/then")]).len(),
            1
        );
        assert_eq!(
            check_fields(&fields, []),
            vec![("subdomain".to_owned(), FieldProblem::Missing)]
        );
        assert_eq!(
            check_fields(&fields, [("subdomain", "")]),
            vec![("subdomain".to_owned(), FieldProblem::Malformed)]
        );
    }
}
