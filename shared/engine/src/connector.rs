//! Code connectors: Rust implementations for streams a declarative spec cannot express
//! (GraphQL connections, query languages). A stream selects one with `connector: {kind, options}`.

use serde::Deserialize;
use serde_json::Value;

use crate::spec::CodeConnectorRef;

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

/// Checks that a stream's connector reference names a registered kind with valid options.
pub fn validate_ref(r: &CodeConnectorRef) -> Result<(), String> {
    match r.kind.as_str() {
        "graphql_cursor" => {
            let o: GraphqlCursorOptions = serde_json::from_value(r.options.clone())
                .map_err(|e| format!("graphql_cursor options: {e}"))?;
            if !o.query.contains("$after") || !o.query.contains("$first") {
                return Err("graphql_cursor query must declare `$first` and `$after`".into());
            }
            crate::selector::Selector::parse(&o.connection_path).map_err(|e| e.to_string())?;
            Ok(())
        }
        other => Err(format!(
            "unknown connector kind `{other}` (known: graphql_cursor)"
        )),
    }
}
