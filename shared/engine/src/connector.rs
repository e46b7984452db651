//! Code connectors: Rust implementations for streams a declarative spec cannot express
//! (GraphQL connections, query languages). A stream selects one with `connector: {kind, options}`;
//! the engine still supplies auth, the egress guard, retries and classification.

use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{HttpClient, SpecClassifier};
use crate::connection::Bound;
use crate::error::{EngineError, ErrorClass};
use crate::page::Record;
use crate::read::{Page, ReadOptions};
use crate::resume::{ResumeNext, ResumePoint, carries_secret};
use crate::selector::Selector;
use crate::spec::{BodyEncoding, CodeConnectorRef, Stream};

/// A stream reader written in Rust.
///
/// Resuming: a connector gives each page but the last a [`Page::resume`] point (a
/// [`ResumePoint::new`] with its own position, typically a [`ResumeNext::Cursor`]) and, given one
/// back in [`ReadOptions::resume`], continues from it with the page numbers and `max_records`
/// count it carries. A point it cannot use (made by another connector, or by the declarative
/// engine) is refused with [`EngineError::Resume`]. A connector whose position is not something it
/// can give back sets `resume: None` on every page; a run stopped mid-pass then reads the pass
/// again from its first page.
pub trait CodeConnector: Send + Sync {
    /// The `kind` a spec uses to select it.
    fn kind(&self) -> &'static str;

    /// Checks a stream's `options` at validation time.
    fn validate_options(&self, options: &Value) -> Result<(), String>;

    /// Reads the stream page by page, from `opts.resume` when it is set.
    fn read<'a>(
        &'a self,
        client: &'a HttpClient,
        bound: Bound<'a>,
        stream: &'a Stream,
        options: &'a Value,
        opts: ReadOptions,
    ) -> Result<BoxStream<'a, Result<Page, EngineError>>, EngineError>;
}

/// Every registered connector.
pub fn registry() -> &'static [&'static dyn CodeConnector] {
    &[&GraphqlCursor]
}

/// The connector registered as `kind`.
pub fn find(kind: &str) -> Option<&'static dyn CodeConnector> {
    registry().iter().copied().find(|c| c.kind() == kind)
}

/// Checks that a stream's connector reference names a registered kind with valid options.
pub fn validate_ref(r: &CodeConnectorRef) -> Result<(), String> {
    match find(&r.kind) {
        Some(c) => c.validate_options(&r.options),
        None => {
            let known: Vec<&str> = registry().iter().map(|c| c.kind()).collect();
            Err(format!(
                "unknown connector kind `{}` (known: {})",
                r.kind,
                known.join(", ")
            ))
        }
    }
}

pub(crate) fn read<'a>(
    client: &'a HttpClient,
    bound: Bound<'a>,
    stream: &'a Stream,
    r: &'a CodeConnectorRef,
    opts: ReadOptions,
) -> Result<BoxStream<'a, Result<Page, EngineError>>, EngineError> {
    let c = find(&r.kind).ok_or_else(|| EngineError::Spec {
        spec: bound.spec.id.clone(),
        message: format!("unknown connector kind `{}`", r.kind),
    })?;
    c.read(client, bound, stream, &r.options, opts)
}

/// Options of the `graphql_cursor` connector: a Relay-style connection read with `first`/`after`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlCursorOptions {
    /// The query; it must declare `$first: Int` and `$after: String` and select
    /// `pageInfo { hasNextPage endCursor }` and `edges { node { … } }` or `nodes { … }`.
    pub query: String,
    /// Selector of the connection in the response (e.g. `data.products`).
    pub connection_path: String,
    /// Records per page (`$first`).
    #[serde(default = "d_page")]
    pub page_size: u32,
    /// Extra variables.
    #[serde(default)]
    pub variables: serde_json::Map<String, Value>,
}

fn d_page() -> u32 {
    50
}

/// Reads a GraphQL connection (Shopify Admin, GitHub v4): POSTs the query with `first`/`after`,
/// takes `edges[].node` (or `nodes`), follows `pageInfo.endCursor` while `hasNextPage`, and turns
/// a `200` carrying `errors` without data into a classified error (`THROTTLED` → rate limited).
/// It resumes from the `endCursor` of the page it stopped after.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlCursor;

impl GraphqlCursor {
    fn options(options: &Value) -> Result<GraphqlCursorOptions, String> {
        let o: GraphqlCursorOptions = serde_json::from_value(options.clone())
            .map_err(|e| format!("graphql_cursor options: {e}"))?;
        if !o.query.contains("$after") || !o.query.contains("$first") {
            return Err("graphql_cursor query must declare `$first` and `$after`".into());
        }
        Selector::parse(&o.connection_path).map_err(|e| e.to_string())?;
        if o.page_size == 0 {
            return Err("graphql_cursor page_size must be positive".into());
        }
        Ok(o)
    }
}

fn gql_error(body: &Value) -> Option<EngineError> {
    let errors = body.get("errors")?.as_array()?;
    if errors.is_empty() {
        return None;
    }
    let has_data = body.get("data").is_some_and(|d| !d.is_null());
    let throttled = errors.iter().any(|e| {
        e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED")
            || e.get("type").and_then(Value::as_str) == Some("RATE_LIMITED")
    });
    if has_data && !throttled {
        return None;
    }
    let message = errors
        .iter()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("; ");
    Some(EngineError::Connector {
        kind: "graphql_cursor".into(),
        class: if throttled {
            ErrorClass::RateLimited
        } else {
            ErrorClass::Permanent
        },
        message,
    })
}

impl CodeConnector for GraphqlCursor {
    fn kind(&self) -> &'static str {
        "graphql_cursor"
    }

    fn validate_options(&self, options: &Value) -> Result<(), String> {
        Self::options(options).map(|_| ())
    }

    fn read<'a>(
        &'a self,
        client: &'a HttpClient,
        bound: Bound<'a>,
        stream: &'a Stream,
        options: &'a Value,
        opts: ReadOptions,
    ) -> Result<BoxStream<'a, Result<Page, EngineError>>, EngineError> {
        let o = Self::options(options).map_err(|message| EngineError::Spec {
            spec: bound.spec.id.clone(),
            message,
        })?;
        let conn_sel = Selector::parse(&o.connection_path).map_err(|e| EngineError::Spec {
            spec: bound.spec.id.clone(),
            message: e.to_string(),
        })?;
        Ok(Box::pin(async_stream::try_stream! {
            let cls = SpecClassifier::for_stream(bound.spec, stream);
            let ctx = bound.context(None, None);
            let field = format!("streams[{}].request", stream.name);
            let (mut after, mut number, mut emitted) = match &opts.resume {
                None => (None, 0u64, 0u64),
                Some(r) => match (&r.next, &r.cursor, &r.best) {
                    (ResumeNext::Cursor(c), None, None) => (Some(c.clone()), r.page, r.emitted),
                    _ => Err(EngineError::Resume("it was not made by a graphql_cursor read".into()))?,
                },
            };
            loop {
                let mut vars = o.variables.clone();
                vars.insert("first".into(), json!(o.page_size));
                vars.insert("after".into(), after.clone().map_or(Value::Null, Value::String));
                let body = vec![("query".to_owned(), Value::String(o.query.clone())), ("variables".to_owned(), Value::Object(vars))];
                let mut req = bound.render(&field, &stream.request, &ctx, &[], &body, BodyEncoding::Json)?;
                req.idempotent = true;
                let resp = client.send_with(&req, &cls).await?;
                let doc: Value = serde_json::from_slice(&resp.body).map_err(|e| EngineError::Malformed {
                    url: resp.url.path().to_owned(),
                    message: e.to_string(),
                })?;
                if let Some(e) = gql_error(&doc) {
                    Err(e)?;
                }
                let Some(conn) = conn_sel.get(&doc) else {
                    Err(EngineError::Malformed { url: resp.url.path().to_owned(), message: format!("no connection at `{}`", o.connection_path) })?;
                    break;
                };
                let nodes: Vec<&Value> = match (conn.get("edges"), conn.get("nodes")) {
                    (Some(Value::Array(edges)), _) => edges.iter().filter_map(|e| e.get("node")).collect(),
                    (_, Some(Value::Array(nodes))) => nodes.iter().collect(),
                    _ => Vec::new(),
                };
                let mut records = nodes.into_iter().map(Record::from_value).collect::<Result<Vec<_>, _>>().map_err(|e| EngineError::Malformed {
                    url: resp.url.path().to_owned(),
                    message: e.to_string(),
                })?;
                number += 1;
                let has_next = conn.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true);
                after = conn.pointer("/pageInfo/endCursor").and_then(Value::as_str).map(str::to_owned);
                let mut last = !has_next || after.is_none() || records.is_empty();
                if let Some(max) = opts.max_records {
                    let room = max.saturating_sub(emitted) as usize;
                    if records.len() >= room {
                        records.truncate(room);
                        last = true;
                    }
                }
                emitted += records.len() as u64;
                let resume = match &after {
                    Some(c) if !last => {
                        let at = ResumeNext::Cursor(c.clone());
                        if carries_secret(&at, bound.credentials) {
                            tracing::warn!(stream = %stream.name, page = number, "the next page's cursor holds a credential; the read cannot be resumed after this page");
                            None
                        } else {
                            Some(ResumePoint::new(at, number, emitted))
                        }
                    }
                    _ => None,
                };
                yield Page { number, records, last, checkpoint: None, resume };
                if last {
                    break;
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_graphql_errors_are_rate_limited() {
        let body =
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]});
        assert_eq!(gql_error(&body).unwrap().class(), ErrorClass::RateLimited);
        let ok = json!({"data": {"products": {"edges": []}}});
        assert!(gql_error(&ok).is_none());
    }

    #[test]
    fn options_must_declare_cursor_variables() {
        let bad = json!({"query": "{ products { edges { node { id } } } }", "connection_path": "data.products"});
        assert!(
            validate_ref(&CodeConnectorRef {
                kind: "graphql_cursor".into(),
                options: bad
            })
            .is_err()
        );
        assert!(
            validate_ref(&CodeConnectorRef {
                kind: "nope".into(),
                options: Value::Null
            })
            .is_err()
        );
    }
}
