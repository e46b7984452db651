//! Loading a spec from YAML and the semantic checks, with errors located by file and line.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use serde_json::Value;

use super::{
    AuthMode, ErrorClass, ErrorRule, Handshake, NextUrlSource, Pagination, ProviderSpec,
    RequestTemplate, SPEC_VERSION, SignatureAlgorithm, SignatureEncoding, SignatureFormat,
    SyncMode, TimestampUnit, ValueSource, WebhookSecret, WebhookSpec,
};
use crate::selector::Selector;
use crate::template::{Template, Var, json_tree_strings};

/// The longest fixed wait an error rule may state: an hour.
const MAX_RULE_WAIT_SECS: u64 = 3600;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// YAML syntax or a shape serde rejected (unknown field, wrong type, missing field).
    Syntax,
    /// A rule of the format that the types alone do not enforce.
    Semantic,
}

/// One error in one spec file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// Kind.
    pub kind: SpecErrorKind,
    /// File (or other source name) the spec came from.
    pub file: String,
    /// Provider id when it could be read.
    pub spec_id: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path such as `streams[0].request.query.limit`.
    pub field: String,
    /// What to fix.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(id) = &self.spec_id {
            write!(f, "[{id}] ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All errors found in one spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses and validates a spec. `file` names the source in error messages.
pub fn load(text: &str, file: &str) -> Result<ProviderSpec, SpecErrors> {
    let spec: ProviderSpec = serde_norway::from_str(text).map_err(|e| {
        let loc = e.location();
        SpecErrors(vec![SpecError {
            kind: SpecErrorKind::Syntax,
            file: file.to_owned(),
            spec_id: None,
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            field: String::new(),
            message: e.to_string(),
        }])
    })?;
    check(spec, Some(text), file, |v, s| v.check_schemas(s))
}

/// A catalog spec the build script converted from YAML to JSON, checked like [`load`] except for
/// the actions' input JSON Schemas, which are compiled where actions run (`action::run`); the
/// catalog tests check the YAML of every embedded file with [`load`] and that both forms agree.
/// A function that serves the catalog so needs neither a YAML parser nor a JSON Schema compiler.
pub(crate) fn load_prebuilt(json: &str, file: &str) -> Result<ProviderSpec, SpecErrors> {
    let spec: ProviderSpec = serde_json::from_str(json).map_err(|e| {
        SpecErrors(vec![SpecError {
            kind: SpecErrorKind::Syntax,
            file: file.to_owned(),
            spec_id: None,
            line: None,
            column: None,
            field: String::new(),
            message: e.to_string(),
        }])
    })?;
    check(spec, None, file, |_, _| {})
}

/// Checks `spec`, then runs `more` (a separate function, so that a caller without it links none
/// of what it needs).
fn check(
    spec: ProviderSpec,
    text: Option<&str>,
    file: &str,
    more: fn(&mut Validator<'_>, &ProviderSpec),
) -> Result<ProviderSpec, SpecErrors> {
    let mut v = Validator {
        text,
        file,
        spec_id: spec.id.clone(),
        errors: Vec::new(),
    };
    v.check(&spec);
    more(&mut v, &spec);
    if v.errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(v.errors))
    }
}

/// A path step used to locate a field in the YAML text.
#[derive(Debug, Clone)]
enum P {
    K(&'static str),
    S(String),
    I(usize),
}

struct Validator<'a> {
    /// The YAML text, to give errors a line number.
    text: Option<&'a str>,
    file: &'a str,
    spec_id: String,
    errors: Vec<SpecError>,
}

/// Which placeholder scopes a template may use.
#[derive(Clone, Copy)]
struct Scopes<'s> {
    config: &'s BTreeSet<String>,
    credentials: Option<&'s BTreeSet<String>>,
    input: Option<&'s Value>,
    cursor: bool,
}

impl Validator<'_> {
    /// Every action's input schema compiles.
    fn check_schemas(&mut self, spec: &ProviderSpec) {
        for (i, a) in spec.actions.iter().enumerate() {
            if let Err(e) = crate::input_schema::InputSchema::compile(&a.input_schema) {
                self.err(
                    &[P::K("actions"), P::I(i), P::K("input_schema")],
                    format!("unusable JSON Schema: {e}"),
                );
            }
        }
    }

    fn err(&mut self, path: &[P], message: impl Into<String>) {
        let field = path_string(path);
        self.errors.push(SpecError {
            kind: SpecErrorKind::Semantic,
            file: self.file.to_owned(),
            spec_id: Some(self.spec_id.clone()),
            line: self.text.and_then(|t| locate(t, path)),
            column: None,
            field,
            message: message.into(),
        });
    }

    fn selector(&mut self, path: &[P], text: &str) {
        if let Err(e) = Selector::parse(text) {
            self.err(path, e.to_string());
        }
    }

    fn template(&mut self, path: &[P], text: &str, scopes: Scopes<'_>) {
        let tpl = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.err(path, format!("template `{text}`: {e}"));
                return;
            }
        };
        for var in tpl.vars() {
            let problem = match var {
                Var::Config(n) if !scopes.config.contains(n) => Some(format!(
                    "`{{{var}}}` is not a declared connection_config field"
                )),
                Var::Credential(n) => match scopes.credentials {
                    None => Some(format!("`{{{var}}}`: credentials are not available here")),
                    Some(c) if !c.contains(n) => Some(format!(
                        "`{{{var}}}` is not a credential of the auth mode(s)"
                    )),
                    _ => None,
                },
                Var::Either(n) => {
                    let in_config = scopes.config.contains(n);
                    let in_creds = scopes.credentials.is_some_and(|c| c.contains(n));
                    (!in_config && !in_creds).then(|| {
                        format!("`{{{n}}}` is neither a connection_config field nor an available credential")
                    })
                }
                Var::Input(sel) => match scopes.input {
                    None => Some(format!("`{{{var}}}`: action input is not available here")),
                    Some(schema) => {
                        let first = sel.steps().first();
                        let props = schema.get("properties").and_then(Value::as_object);
                        match (first, props) {
                            (Some(f), Some(p)) if !p.contains_key(f) => {
                                Some(format!("`{{{var}}}` is not a property of input_schema"))
                            }
                            _ => None,
                        }
                    }
                },
                Var::Cursor if !scopes.cursor => {
                    Some("`{cursor}` is only available in incremental streams".to_owned())
                }
                _ => None,
            };
            if let Some(p) = problem {
                self.err(path, format!("template `{text}`: {p}"));
            }
        }
    }

    fn request(&mut self, path: &[P], req: &RequestTemplate, scopes: Scopes<'_>) {
        let mut p = path.to_vec();
        p.push(P::K("path"));
        if !req.path.starts_with('/') && !req.path.is_empty() {
            self.err(&p, "a path starts with `/`");
        }
        self.template(&p, &req.path, scopes);
        p.pop();
        for (name, map) in [("query", &req.query), ("headers", &req.headers)] {
            for (k, t) in map {
                let q = [path, &[P::K(name), P::S(k.clone())]].concat();
                self.template(&q, t, scopes);
            }
        }
        if let Some(body) = &req.body {
            let mut strings = Vec::new();
            json_tree_strings(body, &mut strings);
            let q = [path, &[P::K("body")]].concat();
            for s in strings {
                self.template(&q, s, scopes);
            }
        }
    }

    /// Error rules at `path` (the provider's or a stream's).
    fn error_rules(&mut self, path: &[P], rules: &[ErrorRule]) {
        for (i, rule) in rules.iter().enumerate() {
            let at = |keys: &[P]| [path, &[P::I(i)], keys].concat();
            if rule.status.is_none() && rule.header.is_none() && rule.body.is_none() {
                self.err(
                    &at(&[]),
                    "a rule needs at least one of status, header, body",
                );
            }
            if let Some(b) = &rule.body {
                self.selector(&at(&[P::K("body"), P::K("path")]), &b.path);
            }
            if let Some(m) = &rule.message_path {
                self.selector(&at(&[P::K("message_path")]), m);
            }
            if rule.message.as_deref().is_some_and(|m| m.trim().is_empty()) {
                self.err(&at(&[P::K("message")]), "must not be empty");
            }
            if let Some(wait) = rule.retry_after {
                if !matches!(rule.class, ErrorClass::RateLimited | ErrorClass::Transient) {
                    self.err(
                        &at(&[P::K("retry_after")]),
                        "a wait is only for a rate_limited or transient class: other failures are not retried",
                    );
                }
                if !(1..=MAX_RULE_WAIT_SECS).contains(&wait) {
                    self.err(
                        &at(&[P::K("retry_after")]),
                        format!("must be 1 to {MAX_RULE_WAIT_SECS} seconds"),
                    );
                }
            }
        }
    }

    fn pagination(&mut self, path: &[P], pag: &Pagination) {
        let sel = |v: &mut Self, name: &'static str, s: &str| {
            v.selector(&[path, &[P::K(name)]].concat(), s);
        };
        match pag {
            Pagination::None => {}
            Pagination::Cursor(c) => {
                sel(self, "cursor_path", &c.cursor_path);
                if let Some(h) = &c.has_more_path {
                    sel(self, "has_more_path", h);
                }
                if let Some(s) = &c.stop_when {
                    sel(self, "stop_when", &s.path);
                }
            }
            Pagination::NextUrl(n) => {
                if let NextUrlSource::Body { path: p } = &n.source {
                    sel(self, "source", p);
                }
                if let Some(s) = &n.stop_when {
                    sel(self, "stop_when", &s.path);
                }
            }
            Pagination::Offset(o) => {
                if o.page_size.value == 0 {
                    self.err(
                        &[path, &[P::K("page_size")]].concat(),
                        "page size must be positive",
                    );
                }
                for (name, s) in [
                    ("total_path", &o.total_path),
                    ("has_more_path", &o.has_more_path),
                ] {
                    if let Some(s) = s {
                        sel(self, name, s);
                    }
                }
                if let Some(s) = &o.stop_when {
                    sel(self, "stop_when", &s.path);
                }
            }
            Pagination::PageNumber(pn) => {
                for (name, s) in [
                    ("total_pages_path", &pn.total_pages_path),
                    ("has_more_path", &pn.has_more_path),
                ] {
                    if let Some(s) = s {
                        sel(self, name, s);
                    }
                }
                if let Some(s) = &pn.stop_when {
                    sel(self, "stop_when", &s.path);
                }
            }
            Pagination::LastId(l) => {
                sel(self, "id_path", &l.id_path);
                sel(self, "has_more_path", &l.has_more_path);
            }
        }
    }

    fn value_source(&mut self, path: &[P], src: &ValueSource) {
        if let ValueSource::Body { path: p } = src {
            self.selector(path, p);
        }
    }

    fn check(&mut self, spec: &ProviderSpec) {
        if spec.spec_version != SPEC_VERSION {
            self.err(
                &[P::K("spec_version")],
                format!(
                    "unsupported spec_version {}; this engine reads {SPEC_VERSION}",
                    spec.spec_version
                ),
            );
        }
        let id_ok = !spec.id.is_empty()
            && spec
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            self.err(
                &[P::K("id")],
                "id must be lowercase letters, digits, `-` or `_`",
            );
        }

        if let Some(day) = &spec.checked
            && super::dates::parse_day(day).is_none()
        {
            self.err(
                &[P::K("checked")],
                format!("`{day}` is not a YYYY-MM-DD day"),
            );
        }
        for (i, d) in spec.deprecations.iter().enumerate() {
            if super::dates::parse_day(&d.sunset).is_none() {
                self.err(
                    &[P::K("deprecations"), P::I(i), P::K("sunset")],
                    format!("`{}` is not a YYYY-MM-DD day", d.sunset),
                );
            }
            for (name, value) in [("endpoint", &d.endpoint), ("replacement", &d.replacement)] {
                if value.trim().is_empty() {
                    self.err(
                        &[P::K("deprecations"), P::I(i), P::K(name)],
                        "must not be empty",
                    );
                }
            }
        }

        let mut config = BTreeSet::new();
        for (i, f) in spec.connection_config.iter().enumerate() {
            if !config.insert(f.name.clone()) {
                self.err(
                    &[P::K("connection_config"), P::I(i)],
                    format!("duplicate field `{}`", f.name),
                );
            }
            if let Some(p) = &f.pattern
                && let Err(e) = regex_lite::Regex::new(p)
            {
                self.err(
                    &[P::K("connection_config"), P::I(i), P::K("pattern")],
                    format!("invalid regex: {e}"),
                );
            }
        }
        let config_only = Scopes {
            config: &config,
            credentials: None,
            input: None,
            cursor: false,
        };

        self.template(&[P::K("base_url")], &spec.base_url, config_only);
        // A base URL either is literal https or starts with a placeholder (an instance URL,
        // which the field's `pattern` should constrain).
        if !(spec.base_url.starts_with("https://") || spec.base_url.starts_with('{')) {
            self.err(&[P::K("base_url")], "base_url must be an https:// URL");
        }

        if spec.auth.is_empty() {
            self.err(&[P::K("auth")], "at least one auth mode is required");
        }
        let mut all_creds = BTreeSet::new();
        for (i, mode) in spec.auth.iter().enumerate() {
            let creds: BTreeSet<String> = mode.credential_names().into_iter().collect();
            all_creds.extend(creds.iter().cloned());
            let base = [P::K("auth"), P::I(i)];
            let scopes = Scopes {
                config: &config,
                credentials: Some(&creds),
                input: None,
                cursor: false,
            };
            let (own_base, when) = mode.base_parts();
            if let Some(url) = own_base {
                let at = [&base[..], &[P::K("base_url")]].concat();
                self.template(&at, url, config_only);
                if !(url.starts_with("https://") || url.starts_with('{')) {
                    self.err(&at, "base_url must be an https:// URL");
                }
            }
            if let Some(name) = when {
                let at = [&base[..], &[P::K("base_url_when")]].concat();
                match spec.connection_config.iter().find(|f| f.name == name) {
                    None => self.err(
                        &at,
                        format!("`{name}` is not a declared connection_config field"),
                    ),
                    Some(f) if f.required || f.default.is_some() => self.err(
                        &at,
                        format!(
                            "`{name}` is always set (required or defaulted), so the mode's base_url would always apply: drop base_url_when"
                        ),
                    ),
                    Some(_) => {}
                }
                if own_base.is_none() {
                    self.err(&at, "set without a `base_url` to choose");
                }
            }
            let mut seen = HashSet::new();
            for f in mode.credential_fields() {
                if !seen.insert(&f.name) {
                    self.err(&base, format!("duplicate credential `{}`", f.name));
                }
            }
            match mode {
                AuthMode::ApiKey(a) => {
                    self.template(&[&base[..], &[P::K("value")]].concat(), &a.value, scopes);
                }
                AuthMode::Basic(b) => {
                    self.template(
                        &[&base[..], &[P::K("username")]].concat(),
                        &b.username,
                        scopes,
                    );
                    self.template(
                        &[&base[..], &[P::K("password")]].concat(),
                        &b.password,
                        scopes,
                    );
                }
                AuthMode::OAuth2AuthorizationCode(o) => {
                    self.template(
                        &[&base[..], &[P::K("authorization_url")]].concat(),
                        &o.authorization_url,
                        config_only,
                    );
                    self.template(
                        &[&base[..], &[P::K("token_url")]].concat(),
                        &o.token_url,
                        config_only,
                    );
                    self.template(
                        &[&base[..], &[P::K("apply"), P::K("value")]].concat(),
                        &o.apply.value,
                        scopes,
                    );
                    let token_only = BTreeSet::from(["access_token".to_owned()]);
                    let with_token = Scopes {
                        credentials: Some(&token_only),
                        ..config_only
                    };
                    for (j, r) in o.config_requests.iter().enumerate() {
                        let at = [&base[..], &[P::K("config_requests"), P::I(j)]].concat();
                        self.template(&[&at[..], &[P::K("url")]].concat(), &r.url, config_only);
                        for (name, t) in &r.headers {
                            self.template(
                                &[&at[..], &[P::K("headers"), P::S(name.clone())]].concat(),
                                t,
                                with_token,
                            );
                        }
                        if let Some(pick) = &r.pick {
                            self.selector(
                                &[&at[..], &[P::K("pick"), P::K("path")]].concat(),
                                &pick.path,
                            );
                            self.template(
                                &[&at[..], &[P::K("pick"), P::K("equals")]].concat(),
                                &pick.equals,
                                config_only,
                            );
                        }
                        if r.config.is_empty() {
                            self.err(&at, "a config request sets at least one `config` value");
                        }
                        for path in r.config.values() {
                            self.selector(&[&at[..], &[P::K("config")]].concat(), path);
                        }
                    }
                    for name in o.obtained_config() {
                        if !config.contains(name) {
                            self.err(
                                &base,
                                format!("`{name}` is obtained as connection config but not declared in `connection_config`"),
                            );
                        }
                    }
                    if let Some(r) = &o.revoke {
                        self.template(
                            &[&base[..], &[P::K("revoke"), P::K("url")]].concat(),
                            &r.url,
                            config_only,
                        );
                        if http::Method::from_bytes(r.method.as_bytes()).is_err() {
                            self.err(
                                &[&base[..], &[P::K("revoke"), P::K("method")]].concat(),
                                format!("`{}` is not an HTTP method", r.method),
                            );
                        }
                    }
                }
                AuthMode::OAuth2ClientCredentials(o) => {
                    self.template(
                        &[&base[..], &[P::K("token_url")]].concat(),
                        &o.token_url,
                        config_only,
                    );
                    self.template(
                        &[&base[..], &[P::K("apply"), P::K("value")]].concat(),
                        &o.apply.value,
                        scopes,
                    );
                }
            }
        }
        let shared = Scopes {
            config: &config,
            credentials: Some(&all_creds),
            input: None,
            cursor: false,
        };
        for (k, t) in &spec.headers {
            self.template(&[P::K("headers"), P::S(k.clone())], t, shared);
        }
        for (k, t) in &spec.query {
            self.template(&[P::K("query"), P::S(k.clone())], t, shared);
        }
        if let Some(v) = &spec.verify {
            self.request(&[P::K("verify")], &v.request, shared);
        }
        self.error_rules(&[P::K("errors")], &spec.errors);
        if let Some(p) = &spec.pagination {
            self.pagination(&[P::K("pagination")], p);
        }

        let mut names = HashSet::new();
        for (i, s) in spec.streams.iter().enumerate() {
            let base = [P::K("streams"), P::I(i)];
            if !names.insert(&s.name) {
                self.err(
                    &[&base[..], &[P::K("name")]].concat(),
                    format!("duplicate stream `{}`", s.name),
                );
            }
            let incremental = s.sync == SyncMode::Incremental;
            let scopes = Scopes {
                config: &config,
                credentials: Some(&all_creds),
                input: None,
                cursor: incremental,
            };
            self.request(
                &[&base[..], &[P::K("request")]].concat(),
                &s.request,
                scopes,
            );
            self.selector(&[&base[..], &[P::K("records")]].concat(), &s.records);
            if s.primary_key.is_empty() {
                self.err(
                    &[&base[..], &[P::K("primary_key")]].concat(),
                    "at least one primary key field is required",
                );
            }
            for k in &s.primary_key {
                self.selector(&[&base[..], &[P::K("primary_key")]].concat(), k);
            }
            if let Some(p) = &s.pagination {
                self.pagination(&[&base[..], &[P::K("pagination")]].concat(), p);
            }
            self.error_rules(&[&base[..], &[P::K("errors")]].concat(), &s.errors);
            if let Some(schema) = &s.record_schema
                && schema.get("type").and_then(serde_json::Value::as_str) != Some("object")
            {
                self.err(
                    &[&base[..], &[P::K("record_schema")]].concat(),
                    "a record schema describes an object: `type: object`",
                );
            }
            match (incremental, &s.incremental) {
                (true, None) => self.err(
                    &[&base[..], &[P::K("sync")]].concat(),
                    "`sync: incremental` needs an `incremental` block",
                ),
                (false, Some(_)) => self.err(
                    &[&base[..], &[P::K("incremental")]].concat(),
                    "`incremental` is set but `sync` is not `incremental`",
                ),
                (true, Some(inc)) => {
                    self.selector(
                        &[&base[..], &[P::K("incremental"), P::K("cursor_field")]].concat(),
                        &inc.cursor_field,
                    );
                    if let Some(param) = &inc.param {
                        self.template(
                            &[
                                &base[..],
                                &[P::K("incremental"), P::K("param"), P::K("value")],
                            ]
                            .concat(),
                            &param.value,
                            scopes,
                        );
                    }
                    if let Some(start) = &inc.start
                        && crate::cursor::CursorValue::parse(start, inc.format).is_none()
                    {
                        self.err(
                            &[&base[..], &[P::K("incremental"), P::K("start")]].concat(),
                            format!("`{start}` is not a {:?} cursor", inc.format),
                        );
                    }
                }
                (false, None) => {}
            }
            if let Some(c) = &s.connector
                && let Err(e) = crate::connector::validate_ref(c)
            {
                self.err(&[&base[..], &[P::K("connector")]].concat(), e);
            }
        }

        let mut names = HashSet::new();
        for (i, a) in spec.actions.iter().enumerate() {
            let base = [P::K("actions"), P::I(i)];
            if !names.insert(&a.name) {
                self.err(
                    &[&base[..], &[P::K("name")]].concat(),
                    format!("duplicate action `{}`", a.name),
                );
            }
            let scopes = Scopes {
                config: &config,
                credentials: Some(&all_creds),
                input: Some(&a.input_schema),
                cursor: false,
            };
            self.request(
                &[&base[..], &[P::K("request")]].concat(),
                &a.request,
                scopes,
            );
            for (k, t) in &a.headers {
                self.template(
                    &[&base[..], &[P::K("headers"), P::S(k.clone())]].concat(),
                    t,
                    scopes,
                );
            }
            self.selector(&[&base[..], &[P::K("output")]].concat(), &a.output);
        }

        if let Some(w) = &spec.webhooks {
            self.webhooks(w);
        }
    }

    fn webhooks(&mut self, w: &WebhookSpec) {
        let at = |key: &'static str| [P::K("webhooks"), P::K(key)];
        let jwt = matches!(w.format, SignatureFormat::Jwt { .. });
        if w.signature_header.trim().is_empty() {
            self.err(&at("signature_header"), "must not be empty");
        }
        if w.algorithm == SignatureAlgorithm::HmacSha1 && w.encoding() != SignatureEncoding::Hex {
            self.err(
                &at("encoding"),
                "hmac_sha1 is only accepted hex-encoded (Intercom's `sha1=` form)",
            );
        }
        let uses = |p: &str| w.signed_payload.as_deref().is_some_and(|sp| sp.contains(p));
        if jwt {
            if w.algorithm != SignatureAlgorithm::HmacSha256 {
                self.err(
                    &at("algorithm"),
                    "a `jwt` format is verified as HS256: use hmac_sha256",
                );
            }
            for (key, set) in [
                ("signed_payload", w.signed_payload.is_some()),
                ("encoding", w.encoding.is_some()),
                ("timestamp_header", w.timestamp_header.is_some()),
                ("url_unescape", !w.url_unescape.is_empty()),
            ] {
                if set {
                    self.err(&at(key), "not used by a `jwt` format (the token carries its own signature and times)");
                }
            }
        } else {
            match w.signed_payload.as_deref() {
                None => self.err(&at("signed_payload"), "required unless the format is `jwt`"),
                Some(sp) => {
                    if !sp.contains("{body}") {
                        self.err(
                            &at("signed_payload"),
                            "signed_payload must include `{body}`",
                        );
                    }
                    let rest = ["{body}", "{timestamp}", "{method}", "{url}"]
                        .iter()
                        .fold(sp.to_owned(), |r, p| r.replace(p, ""));
                    if rest.contains('{') || rest.contains('}') {
                        self.err(
                            &at("signed_payload"),
                            "signed_payload may only use `{body}`, `{timestamp}`, `{method}` and `{url}`",
                        );
                    }
                }
            }
        }
        if uses("{timestamp}") && !w.has_timestamp() {
            self.err(
                &at("signed_payload"),
                "`{timestamp}` is signed but no timestamp source is set",
            );
        }
        if w.has_timestamp() && !uses("{timestamp}") {
            // An unsigned timestamp guards nothing: anyone could refresh it.
            self.err(
                &at("signed_payload"),
                "the timestamp is read but not signed: add `{timestamp}`",
            );
        }
        if w.timestamp_unit != TimestampUnit::Seconds && !w.has_timestamp() {
            self.err(&at("timestamp_unit"), "set without a timestamp source");
        }
        if !w.url_unescape.is_empty() && !uses("{url}") {
            self.err(
                &at("url_unescape"),
                "only meaningful when `{url}` is signed",
            );
        }
        for c in &w.url_unescape {
            let ok = c.len() == 1 && c.bytes().all(|b| b.is_ascii_punctuation());
            if !ok {
                self.err(
                    &at("url_unescape"),
                    format!("`{c}` is not one ASCII punctuation character"),
                );
            }
        }
        if w.tolerance_seconds == 0 && (w.has_timestamp() || jwt) {
            self.err(&at("tolerance_seconds"), "must be positive");
        }
        match (&w.secret, &w.handshake) {
            (WebhookSecret::Handshake, Some(Handshake::VerificationToken { .. })) => {}
            (WebhookSecret::Handshake, _) => self.err(
                &at("secret"),
                "`from: handshake` needs a `verification_token` handshake that delivers it",
            ),
            (_, Some(Handshake::VerificationToken { .. })) => self.err(
                &at("handshake"),
                "a captured verification token is only used with `secret: {from: handshake}`",
            ),
            _ => {}
        }
        if let WebhookSecret::Connection { name } = &w.secret {
            if name.trim().is_empty() {
                self.err(
                    &at("secret"),
                    "`from: connection` needs the `name` it is stored under",
                );
            }
            if w.connection_key.is_none() {
                self.err(
                    &at("secret"),
                    "a per-connection secret needs `connection_key` to find the connection",
                );
            }
        }
        match &w.handshake {
            Some(Handshake::Challenge {
                when,
                echo,
                content_type,
            }) => {
                let base = [P::K("webhooks"), P::K("handshake")];
                self.selector(
                    &[&base[..], &[P::K("when"), P::K("path")]].concat(),
                    &when.path,
                );
                if when.equals.is_empty() {
                    self.err(
                        &[&base[..], &[P::K("when")]].concat(),
                        "`equals` must list a value",
                    );
                }
                self.selector(&[&base[..], &[P::K("echo")]].concat(), echo);
                if content_type.trim().is_empty() {
                    self.err(
                        &[&base[..], &[P::K("content_type")]].concat(),
                        "must not be empty",
                    );
                }
            }
            Some(Handshake::VerificationToken { field })
                if field.is_empty() || field.contains('.') =>
            {
                self.err(&at("handshake"), "`field` is one top-level key of the body");
            }
            Some(Handshake::VerificationToken { .. }) | None => {}
        }
        if let Some(c) = &w.event_id {
            self.value_source(&at("event_id"), c);
        }
        if let Some(c) = &w.connection_key {
            self.value_source(&at("connection_key"), c);
        }
        if let Some(c) = &w.event_type {
            self.value_source(&at("event_type"), c);
        }
    }
}

fn path_string(path: &[P]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            P::K(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            P::S(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            P::I(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

struct Line<'a> {
    indent: usize,
    dash: bool,
    key_indent: usize,
    key: Option<&'a str>,
    blank: bool,
}

fn scan(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .map(|raw| {
            let trimmed = raw.trim_start_matches(' ');
            let indent = raw.len() - trimmed.len();
            let blank = trimmed.is_empty() || trimmed.starts_with('#');
            let (dash, body, key_indent) = match trimmed.strip_prefix("- ") {
                Some(b) => {
                    let b2 = b.trim_start_matches(' ');
                    (true, b2, indent + 2 + (b.len() - b2.len()))
                }
                None => (trimmed == "-", trimmed, indent),
            };
            let key = body.split_once(':').and_then(|(k, _)| {
                let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
                (!k.is_empty() && !k.contains(' ') || k.contains('[')).then_some(k)
            });
            Line {
                indent,
                dash,
                key_indent,
                key,
                blank,
            }
        })
        .collect()
}

/// Best-effort line of a field in block-style YAML; falls back to the nearest located parent.
fn locate(text: &str, path: &[P]) -> Option<usize> {
    let lines = scan(text);
    let mut from = 0usize;
    let mut parent: isize = -1;
    let mut inclusive_dash = false;
    let mut found: Option<usize> = None;
    for step in path {
        let result = match step {
            P::K(_) | P::S(_) => {
                let want = match step {
                    P::K(k) => *k,
                    P::S(s) => s.as_str(),
                    P::I(_) => "",
                };
                let mut level: Option<usize> = None;
                let mut hit = None;
                for (i, l) in lines.iter().enumerate().skip(from) {
                    if l.blank {
                        continue;
                    }
                    let first = inclusive_dash && i == from;
                    let ind = if first { l.key_indent } else { l.indent };
                    if !first && (ind as isize) <= parent {
                        break;
                    }
                    let lvl = *level.get_or_insert(l.key_indent);
                    if l.key_indent == lvl
                        && l.key == Some(want)
                        && (first || !l.dash || l.indent as isize > parent)
                    {
                        hit = Some(i);
                        break;
                    }
                }
                hit.map(|i| (i, i + 1, lines[i].key_indent as isize, false))
            }
            P::I(n) => {
                let mut count = 0;
                let mut level: Option<usize> = None;
                let mut hit = None;
                for (i, l) in lines.iter().enumerate().skip(from) {
                    if l.blank {
                        continue;
                    }
                    if (l.indent as isize) < parent || (!l.dash && (l.indent as isize) <= parent) {
                        break;
                    }
                    if l.dash {
                        let lvl = *level.get_or_insert(l.indent);
                        if l.indent == lvl {
                            if count == *n {
                                hit = Some(i);
                                break;
                            }
                            count += 1;
                        }
                    }
                }
                hit.map(|i| (i, i, lines[i].indent as isize, true))
            }
        };
        match result {
            Some((line, next_from, next_parent, incl)) => {
                found = Some(line + 1);
                from = next_from;
                parent = next_parent;
                inclusive_dash = incl;
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
id: x
streams:
  - name: a
    request:
      path: /a
  - name: b
    request:
      path: /b
      query:
        limit: '{nope}'
";

    #[test]
    fn locates_nested_fields_in_lists() {
        let p = [
            P::K("streams"),
            P::I(1),
            P::K("request"),
            P::K("query"),
            P::S("limit".into()),
        ];
        assert_eq!(locate(YAML, &p), Some(10));
        assert_eq!(
            locate(YAML, &[P::K("streams"), P::I(1), P::K("name")]),
            Some(6)
        );
        assert_eq!(
            locate(
                YAML,
                &[P::K("streams"), P::I(0), P::K("request"), P::K("path")]
            ),
            Some(5)
        );
    }

    #[test]
    fn unknown_field_falls_back_to_parent_line() {
        assert_eq!(
            locate(YAML, &[P::K("streams"), P::I(1), P::K("missing")]),
            Some(6)
        );
    }

    /// Semantic error messages of a spec text, by field.
    fn semantic(text: &str) -> Vec<(String, String)> {
        match load(text, "t.yaml") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        }
    }

    const BASE_SPEC: &str = r#"
spec_version: 1
id: t
name: T
docs_url: https://example.com/docs
connection_config:
  - {name: site, label: Site}
  - {name: cloud_id, label: Cloud id, required: false}
  - {name: region, label: Region, required: false, default: eu}
base_url: https://{config.site}.example.com/api
auth:
  - type: api_key
    credentials: [{name: key, label: Key}]
    in: header
    name: Authorization
    value: "Bearer {credentials.key}"
MODE
streams:
  - name: items
    request: {path: /items}
    records: items
    primary_key: [id]
STREAM
actions: []
"#;

    fn spec_with(mode: &str, stream: &str) -> String {
        BASE_SPEC
            .replace("MODE\n", mode)
            .replace("STREAM\n", stream)
    }

    #[test]
    fn a_conditional_base_url_needs_an_optional_field_and_a_base() {
        assert_eq!(
            semantic(&spec_with(
                "    base_url: https://gw.example.com/{config.cloud_id}\n    base_url_when: cloud_id\n",
                ""
            )),
            []
        );
        let got = semantic(&spec_with(
            "    base_url: http://gw.example.com/{config.nope}\n    base_url_when: site\n",
            "",
        ));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "auth[0].base_url",
                "auth[0].base_url",
                "auth[0].base_url_when"
            ],
            "{got:?}"
        );
        assert!(got[0].1.contains("`{config.nope}`"), "{got:?}");
        assert!(got[1].1.contains("https://"), "{got:?}");
        assert!(got[2].1.contains("always set"), "{got:?}");
        for (when, want) in [
            ("region", "always set"),
            ("nope", "not a declared connection_config field"),
        ] {
            let got = semantic(&spec_with(
                &format!("    base_url: https://gw.example.com\n    base_url_when: {when}\n"),
                "",
            ));
            assert!(got.len() == 1 && got[0].1.contains(want), "{when}: {got:?}");
        }
        let got = semantic(&spec_with("    base_url_when: cloud_id\n", ""));
        assert!(
            got.len() == 1 && got[0].1.contains("without a `base_url`"),
            "{got:?}"
        );
    }

    #[test]
    fn stream_error_rules_are_checked_like_the_providers() {
        assert_eq!(
            semantic(&spec_with(
                "",
                "    errors:\n      - {status: 403, class: config, message: An admin token is needed.}\n"
            )),
            []
        );
        let got = semantic(&spec_with(
            "",
            "    errors:\n      - {class: config, message: ' '}\n      - {status: 403, class: auth, message_path: 'a..b'}\n",
        ));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "streams[0].errors[0]",
                "streams[0].errors[0].message",
                "streams[0].errors[1].message_path"
            ],
            "{got:?}"
        );
    }

    /// A fixed wait belongs to a failure that is retried, and is bounded.
    #[test]
    fn an_error_rules_wait_is_for_retried_classes_and_bounded() {
        assert_eq!(
            semantic(&spec_with(
                "",
                "    errors:\n      - {status: 429, class: rate_limited, retry_after: 30}\n      - {status: 503, class: transient, retry_after: 3600}\n"
            )),
            []
        );
        let got = semantic(&spec_with(
            "",
            "    errors:\n      - {status: 403, class: auth, retry_after: 30}\n      - {status: 429, class: rate_limited, retry_after: 0}\n      - {status: 429, class: rate_limited, retry_after: 3601}\n",
        ));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "streams[0].errors[0].retry_after",
                "streams[0].errors[1].retry_after",
                "streams[0].errors[2].retry_after"
            ],
            "{got:?}"
        );
        assert!(
            got[0].1.contains("only for a rate_limited or transient"),
            "{got:?}"
        );
        assert!(got[1].1.contains("1 to 3600 seconds"), "{got:?}");
    }

    /// The Stripe spec with its `webhooks` section replaced by `webhooks` (YAML at column 0).
    fn with_webhooks(webhooks: &str) -> Result<ProviderSpec, SpecErrors> {
        let text = include_str!("../../catalog/stripe.yaml");
        let start = text.find("\nwebhooks:\n").expect("stripe has webhooks") + 1;
        load(&format!("{}{webhooks}", &text[..start]), "stripe.yaml")
    }

    fn messages(webhooks: &str) -> Vec<String> {
        match with_webhooks(webhooks) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect()
            }
        }
    }

    const BASE: &str = "webhooks:\n  secret: {from: webhook_secret}\n  signature_header: X-Sig\n";

    #[test]
    fn webhook_rules_accept_each_catalog_shape() {
        for extra in [
            "  format: {type: plain, prefix: 'sha256='}\n  signed_payload: '{body}'\n",
            "  algorithm: hmac_sha1\n  format: {type: plain, prefix: 'sha1='}\n  encoding: hex\n  signed_payload: '{body}'\n",
            "  format: {type: plain}\n  encoding: base64\n  timestamp_header: X-Ts\n  timestamp_unit: milliseconds\n  signed_payload: '{method}{url}{body}{timestamp}'\n  url_unescape: [':', '/']\n",
            "  format: {type: jwt, prefix: 'Bearer '}\n  tolerance_seconds: 60\n",
        ] {
            assert_eq!(
                messages(&format!("{BASE}{extra}")),
                Vec::<String>::new(),
                "{extra}"
            );
        }
    }

    #[test]
    fn webhook_rules_refuse_meaningless_or_unsafe_combinations() {
        for (extra, expected) in [
            (
                "  algorithm: hmac_sha1\n  format: {type: plain}\n  encoding: base64\n  signed_payload: '{body}'\n",
                "hmac_sha1 is only accepted hex-encoded",
            ),
            (
                "  format: {type: jwt}\n  signed_payload: '{method}{body}'\n",
                "webhooks.signed_payload: not used by a `jwt` format",
            ),
            (
                "  format: {type: jwt}\n  encoding: hex\n",
                "webhooks.encoding: not used by a `jwt` format",
            ),
            (
                "  algorithm: hmac_sha1\n  format: {type: jwt}\n",
                "a `jwt` format is verified as HS256",
            ),
            (
                "  format: {type: plain}\n",
                "signed_payload: required unless the format is `jwt`",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{host}{body}'\n",
                "may only use `{body}`, `{timestamp}`, `{method}` and `{url}`",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{method}{url}'\n",
                "signed_payload must include `{body}`",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{timestamp}{body}'\n",
                "`{timestamp}` is signed but no timestamp source is set",
            ),
            (
                "  format: {type: plain}\n  timestamp_header: X-Ts\n  signed_payload: '{body}'\n",
                "the timestamp is read but not signed",
            ),
            (
                "  format: {type: plain}\n  timestamp_unit: milliseconds\n  signed_payload: '{body}'\n",
                "timestamp_unit: set without a timestamp source",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{body}'\n  url_unescape: [':']\n",
                "url_unescape: only meaningful when `{url}` is signed",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{url}{body}'\n  url_unescape: ['ab']\n",
                "is not one ASCII punctuation character",
            ),
            (
                "  format: {type: plain}\n  signed_payload: '{body}'\n  handshake: {type: verification_token, field: verification_token}\n",
                "a captured verification token is only used with `secret: {from: handshake}`",
            ),
        ] {
            let got = messages(&format!("{BASE}{extra}"));
            assert!(
                got.iter().any(|m| m.contains(expected)),
                "{extra}: expected `{expected}` in {got:?}"
            );
        }
        for (webhooks, expected) in [
            (
                "webhooks:\n  secret: {from: handshake}\n  signature_header: X-Sig\n  format: {type: plain}\n  signed_payload: '{body}'\n",
                "`from: handshake` needs a `verification_token` handshake",
            ),
            (
                "webhooks:\n  secret: {from: connection, name: mac}\n  signature_header: X-Sig\n  format: {type: plain}\n  signed_payload: '{body}'\n",
                "a per-connection secret needs `connection_key`",
            ),
            (
                "webhooks:\n  signature_header: X-Sig\n  format: {type: plain}\n  signed_payload: '{body}'\n",
                "missing field `secret`",
            ),
        ] {
            let got = match with_webhooks(webhooks) {
                Ok(_) => Vec::new(),
                Err(e) => e.0.iter().map(ToString::to_string).collect(),
            };
            assert!(
                got.iter().any(|m| m.contains(expected)),
                "{webhooks}: expected `{expected}` in {got:?}"
            );
        }
    }
}
