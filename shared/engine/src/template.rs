//! Safe templating: `{scope.name}` placeholders substituted from a fixed context.
//!
//! There are no expressions, filters, loops or function calls, so a spec cannot run code or
//! read anything but the values the engine hands it. Scopes:
//! - `config.NAME` — connection configuration;
//! - `credentials.NAME` — credentials (secret; only ever rendered into outgoing requests);
//! - `input.PATH` — the action input (a selector such as `input.address.city`);
//! - `cursor` — the incremental cursor (after lookback);
//! - `idempotency_key` — an action's idempotency key, the same for every attempt of one request
//!   (for providers that deduplicate writes, e.g. Stripe's `Idempotency-Key`);
//! - a bare `NAME` — shorthand for `config.NAME`, else `credentials.NAME`.
//!
//! `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::selector::Selector;

/// A template syntax or rendering error. Callers wrap it with the spec id and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without a matching `}`.
    #[error("unclosed `{{` at byte {0}")]
    Unclosed(usize),
    /// A lone `}`.
    #[error("unmatched `}}` at byte {0}; write `}}}}` for a literal brace")]
    Unmatched(usize),
    /// Characters other than letters, digits, `_`, `-` and `.` in a placeholder.
    #[error("invalid placeholder `{{{0}}}`: only `scope.name` references are allowed")]
    Invalid(String),
    /// A scope that does not exist.
    #[error("unknown scope `{0}` (expected config, credentials, input or cursor)")]
    UnknownScope(String),
    /// No value for a placeholder.
    #[error("no value for `{{{0}}}`")]
    Missing(String),
    /// A value that cannot be rendered into text (an object or array inside a longer string).
    #[error("`{{{0}}}` is not a scalar and cannot be embedded in text")]
    NotScalar(String),
}

/// Where a placeholder reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `config.NAME`.
    Config(String),
    /// `credentials.NAME`.
    Credential(String),
    /// Bare `NAME`: config, else credentials.
    Either(String),
    /// `input.PATH`.
    Input(Selector),
    /// `cursor`.
    Cursor,
    /// `idempotency_key`.
    IdempotencyKey,
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Config(n) => write!(f, "config.{n}"),
            Var::Credential(n) => write!(f, "credentials.{n}"),
            Var::Either(n) => write!(f, "{n}"),
            Var::Input(s) => write!(f, "input.{s}"),
            Var::Cursor => write!(f, "cursor"),
            Var::IdempotencyKey => write!(f, "idempotency_key"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// Values available to templates.
#[derive(Clone, Copy, Default)]
pub struct Context<'a> {
    /// Connection configuration.
    pub config: Option<&'a BTreeMap<String, String>>,
    /// Credentials.
    pub credentials: Option<&'a BTreeMap<String, SecretString>>,
    /// Action input.
    pub input: Option<&'a Value>,
    /// Incremental cursor.
    pub cursor: Option<&'a str>,
    /// An action's idempotency key.
    pub idempotency_key: Option<&'a str>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field(
                "credentials",
                &self.credentials.map(|c| c.keys().collect::<Vec<_>>()),
            )
            .field("input", &self.input)
            .field("cursor", &self.cursor)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'}' => return Err(TemplateError::Unmatched(i)),
                b'{' => {
                    let rest = &text[i + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed(i))?;
                    let name = rest[..end].trim();
                    if !lit.is_empty() {
                        segments.push(Segment::Lit(std::mem::take(&mut lit)));
                    }
                    segments.push(Segment::Var(parse_var(name)?));
                    i += end + 2;
                }
                _ => {
                    // Copy a whole UTF-8 character.
                    let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                    lit.push_str(&text[i..i + ch_len]);
                    i += ch_len;
                }
            }
        }
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Self { segments })
    }

    /// The placeholders, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(v) => Some(v),
            Segment::Lit(_) => None,
        })
    }

    /// Whether the template has no placeholders.
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// The single placeholder when the template is exactly one placeholder.
    pub fn sole_var(&self) -> Option<&Var> {
        match self.segments.as_slice() {
            [Segment::Var(v)] => Some(v),
            _ => None,
        }
    }

    /// Renders to text, with each substituted value passed through `escape`.
    pub fn render_with(
        &self,
        ctx: &Context<'_>,
        escape: impl Fn(&str, &mut String),
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Lit(l) => out.push_str(l),
                Segment::Var(v) => {
                    let value = lookup(v, ctx)?;
                    match value {
                        Resolved::Text(t) => escape(t, &mut out),
                        Resolved::Json(j) => match j {
                            Value::String(s) => escape(s, &mut out),
                            Value::Number(n) => escape(&n.to_string(), &mut out),
                            Value::Bool(b) => escape(if *b { "true" } else { "false" }, &mut out),
                            Value::Null => {}
                            Value::Array(_) | Value::Object(_) => {
                                return Err(TemplateError::NotScalar(v.to_string()));
                            }
                        },
                    }
                }
            }
        }
        Ok(out)
    }

    /// Renders to text without escaping.
    pub fn render(&self, ctx: &Context<'_>) -> Result<String, TemplateError> {
        self.render_with(ctx, |s, out| out.push_str(s))
    }

    /// Renders to a JSON value: a sole placeholder keeps the value's JSON type.
    pub fn render_json(&self, ctx: &Context<'_>) -> Result<Value, TemplateError> {
        if let Some(v) = self.sole_var() {
            return Ok(match lookup(v, ctx)? {
                Resolved::Text(t) => Value::String(t.to_owned()),
                Resolved::Json(j) => j.clone(),
            });
        }
        self.render(ctx).map(Value::String)
    }
}

fn parse_var(name: &str) -> Result<Var, TemplateError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(TemplateError::Invalid(name.to_owned()));
    }
    let (scope, rest) = match name.split_once('.') {
        Some((s, r)) => (s, Some(r)),
        None => (name, None),
    };
    match (scope, rest) {
        ("cursor", None) => Ok(Var::Cursor),
        ("idempotency_key", None) => Ok(Var::IdempotencyKey),
        ("config", Some(r)) if !r.is_empty() => Ok(Var::Config(r.to_owned())),
        ("credentials", Some(r)) if !r.is_empty() => Ok(Var::Credential(r.to_owned())),
        ("input", Some(r)) => Selector::parse(r)
            .map(Var::Input)
            .map_err(|_| TemplateError::Invalid(name.to_owned())),
        (s, Some(_)) => Err(TemplateError::UnknownScope(s.to_owned())),
        (n, None) => Ok(Var::Either(n.to_owned())),
    }
}

enum Resolved<'a> {
    Text(&'a str),
    Json(&'a Value),
}

fn lookup<'a>(var: &Var, ctx: &Context<'a>) -> Result<Resolved<'a>, TemplateError> {
    let missing = || TemplateError::Missing(var.to_string());
    let config = |n: &str| ctx.config.and_then(|c| c.get(n)).map(|s| Resolved::Text(s));
    let cred = |n: &str| {
        ctx.credentials
            .and_then(|c| c.get(n))
            .map(|s| Resolved::Text(s.expose_secret()))
    };
    match var {
        Var::Config(n) => config(n).ok_or_else(missing),
        Var::Credential(n) => cred(n).ok_or_else(missing),
        Var::Either(n) => config(n).or_else(|| cred(n)).ok_or_else(missing),
        Var::Input(sel) => ctx
            .input
            .and_then(|i| sel.get(i))
            .map(Resolved::Json)
            .ok_or_else(missing),
        Var::Cursor => ctx.cursor.map(Resolved::Text).ok_or_else(missing),
        Var::IdempotencyKey => ctx.idempotency_key.map(Resolved::Text).ok_or_else(missing),
    }
}

/// Renders every string leaf of a JSON template.
pub fn render_json_tree(tpl: &Value, ctx: &Context<'_>) -> Result<Value, TemplateError> {
    Ok(match tpl {
        Value::String(s) => Template::parse(s)?.render_json(ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json_tree(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), render_json_tree(v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Every template string in a JSON template, for validation.
pub fn json_tree_strings<'a>(tpl: &'a Value, out: &mut Vec<&'a str>) {
    match tpl {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| json_tree_strings(i, out)),
        Value::Object(map) => map.values().for_each(|v| json_tree_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx_with<'a>(
        config: &'a BTreeMap<String, String>,
        creds: &'a BTreeMap<String, SecretString>,
        input: Option<&'a Value>,
    ) -> Context<'a> {
        Context {
            config: Some(config),
            credentials: Some(creds),
            input,
            cursor: Some("2024-01-01T00:00:00Z"),
            idempotency_key: None,
        }
    }

    #[test]
    fn renders_scoped_and_shorthand_placeholders() {
        let config = BTreeMap::from([("subdomain".to_owned(), "acme".to_owned())]);
        let creds = BTreeMap::from([("api_key".to_owned(), SecretString::from("sk_1"))]);
        let ctx = ctx_with(&config, &creds, None);
        let t = Template::parse(
            "https://{subdomain}.zendesk.com/{{v2}}?k={credentials.api_key}&c={cursor}",
        )
        .unwrap();
        assert_eq!(
            t.render(&ctx).unwrap(),
            "https://acme.zendesk.com/{v2}?k=sk_1&c=2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn rejects_expressions_and_unknown_scopes() {
        assert_eq!(
            Template::parse("{a + b}"),
            Err(TemplateError::Invalid("a + b".into()))
        );
        assert_eq!(
            Template::parse("{env.HOME}"),
            Err(TemplateError::UnknownScope("env".into()))
        );
        assert_eq!(Template::parse("abc {x"), Err(TemplateError::Unclosed(4)));
        assert_eq!(Template::parse("a}b"), Err(TemplateError::Unmatched(1)));
    }

    #[test]
    fn missing_value_names_the_placeholder() {
        let config = BTreeMap::new();
        let creds = BTreeMap::new();
        let ctx = ctx_with(&config, &creds, None);
        let err = Template::parse("Bearer {credentials.token}")
            .unwrap()
            .render(&ctx)
            .unwrap_err();
        assert_eq!(err.to_string(), "no value for `{credentials.token}`");
    }

    #[test]
    fn json_tree_keeps_types_of_sole_placeholders() {
        let config = BTreeMap::new();
        let creds = BTreeMap::new();
        let input = json!({"amount": 1200, "meta": {"a": "b"}, "email": "x@y.z"});
        let ctx = ctx_with(&config, &creds, Some(&input));
        let tpl = json!({"amount": "{input.amount}", "metadata": "{input.meta}", "note": "for {input.email}", "fixed": true});
        assert_eq!(
            render_json_tree(&tpl, &ctx).unwrap(),
            json!({"amount": 1200, "metadata": {"a": "b"}, "note": "for x@y.z", "fixed": true})
        );
        let bad = json!({"note": "see {input.meta}"});
        assert!(matches!(
            render_json_tree(&bad, &ctx),
            Err(TemplateError::NotScalar(_))
        ));
    }

    #[test]
    fn escape_function_applies_only_to_values() {
        let config = BTreeMap::from([("id".to_owned(), "a/b c".to_owned())]);
        let creds = BTreeMap::new();
        let ctx = ctx_with(&config, &creds, None);
        let t = Template::parse("/items/{config.id}/x").unwrap();
        let out = t
            .render_with(&ctx, |s, o| {
                o.push_str(&s.replace('/', "%2F").replace(' ', "%20"))
            })
            .unwrap();
        assert_eq!(out, "/items/a%2Fb%20c/x");
    }
}
