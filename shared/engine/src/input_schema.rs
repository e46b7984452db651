//! The JSON Schema an action's input is checked against: the assertions of JSON Schema 2020-12
//! that provider inputs need, compiled once, with every other keyword refused when the catalog is
//! built (so a spec never relies on a keyword that would be silently ignored).
//!
//! Asserted: `type`, `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `minProperties`, `maxProperties`, `items`, `minItems`, `maxItems`, `minLength`, `maxLength`
//! (in Unicode code points), `pattern` (unanchored, `regex-lite` syntax), `minimum`, `maximum`,
//! `exclusiveMinimum`, `exclusiveMaximum`, `allOf`, `anyOf`, `oneOf`, `not`, and the boolean
//! schemas. Annotations are accepted and not asserted: `title`, `description`, `default`,
//! `examples`, `deprecated`, `readOnly`, `writeOnly`, `$comment`, and `format` (an annotation in
//! 2020-12 unless a validator opts in, as the `jsonschema` crate's default does not).
//!
//! Why not the `jsonschema` crate: with its two regex engines it was about 0.4 MB of the zip of
//! each function that checks inputs (the API and the connector), and spec inputs use a dozen
//! keywords. The tests hold this module's verdicts and pointers equal to that crate's for every
//! catalog action and a corpus of schemas and inputs.

use std::fmt;

use regex_lite::Regex;
use serde_json::{Map, Number, Value};

/// One place where an input breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer (RFC 6901) into the input; empty for the input as a whole.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// A schema that cannot be used, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// JSON Pointer into the schema.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.pointer, self.message)
        }
    }
}

impl std::error::Error for SchemaError {}

/// A compiled input schema.
#[derive(Debug)]
pub struct InputSchema(Node);

impl InputSchema {
    /// Compiles `schema`, refusing keywords outside the supported set and malformed values.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        Node::compile(schema, &mut String::new()).map(Self)
    }

    /// The places where `input` breaks the schema (none when it is valid).
    pub fn violations(&self, input: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.0.check(input, &mut String::new(), &mut out);
        out
    }
}

/// The keywords accepted and not asserted.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "format",
];

/// The keywords asserted.
const ASSERTIONS: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// The draft this module implements, the only `$schema` accepted.
const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

#[derive(Debug)]
enum Node {
    Bool(bool),
    Object(Box<Keywords>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

impl Type {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            "number" => Self::Number,
            "integer" => Self::Integer,
            "string" => Self::String,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::String => "string",
        }
    }

    fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Null, Value::Null)
            | (Self::Boolean, Value::Bool(_))
            | (Self::Object, Value::Object(_))
            | (Self::Array, Value::Array(_))
            | (Self::Number, Value::Number(_))
            | (Self::String, Value::String(_)) => true,
            // 2020-12: a number with a zero fractional part is an integer (`1.0`).
            (Self::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct Keywords {
    types: Option<Vec<Type>>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    additional: Option<Node>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    items: Option<Node>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(String, Regex)>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    all_of: Vec<Node>,
    any_of: Option<Vec<Node>>,
    one_of: Option<Vec<Node>>,
    not: Option<Node>,
}

/// `pointer` extended by one reference token, escaped (RFC 6901).
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Runs `f` with `pointer` extended by `token`, then restores it.
fn under<T>(pointer: &mut String, token: &str, f: impl FnOnce(&mut String) -> T) -> T {
    let len = pointer.len();
    push_token(pointer, token);
    let out = f(pointer);
    pointer.truncate(len);
    out
}

fn schema_error(pointer: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

impl Node {
    fn compile(schema: &Value, at: &mut String) -> Result<Self, SchemaError> {
        match schema {
            Value::Bool(b) => Ok(Self::Bool(*b)),
            Value::Object(map) => Keywords::compile(map, at).map(|k| Self::Object(Box::new(k))),
            _ => Err(schema_error(at, "a schema is an object or a boolean")),
        }
    }

    fn compile_list(value: &Value, at: &mut String) -> Result<Vec<Self>, SchemaError> {
        match value {
            Value::Array(list) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, s)| under(at, &i.to_string(), |at| Self::compile(s, at)))
                .collect(),
            _ => Err(schema_error(at, "must be a non-empty array of schemas")),
        }
    }

    fn check(&self, value: &Value, at: &mut String, out: &mut Vec<Violation>) {
        match self {
            Self::Bool(true) => {}
            Self::Bool(false) => refuse(out, at, "False schema does not allow this value".into()),
            Self::Object(k) => k.check(value, at, out),
        }
    }

    fn accepts(&self, value: &Value) -> bool {
        let mut out = Vec::new();
        self.check(value, &mut String::new(), &mut out);
        out.is_empty()
    }
}

fn count(value: &Value, at: &str) -> Result<u64, SchemaError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| schema_error(at, "must be a non-negative integer")),
        _ => Err(schema_error(at, "must be a non-negative integer")),
    }
}

fn number(value: &Value, at: &str) -> Result<Number, SchemaError> {
    match value {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(schema_error(at, "must be a number")),
    }
}

impl Keywords {
    fn compile(map: &Map<String, Value>, at: &mut String) -> Result<Self, SchemaError> {
        let mut k = Self::default();
        for (name, value) in map {
            let len = at.len();
            push_token(at, name);
            let p: &str = at;
            match name.as_str() {
                "$schema" if value.as_str() == Some(DRAFT) && len == 0 => {}
                "$schema" => {
                    return Err(schema_error(
                        p,
                        format!("only `{DRAFT}` is supported, at the root"),
                    ));
                }
                "type" => {
                    let names: Vec<&Value> = match value {
                        Value::Array(list) if !list.is_empty() => list.iter().collect(),
                        Value::String(_) => vec![value],
                        _ => {
                            return Err(schema_error(
                                p,
                                "must be a type name or a non-empty array of them",
                            ));
                        }
                    };
                    let mut types = Vec::new();
                    for n in names {
                        let t = n.as_str().and_then(Type::parse).ok_or_else(|| {
                            schema_error(p, format!("{n} is not a JSON Schema type"))
                        })?;
                        if types.contains(&t) {
                            return Err(schema_error(p, format!("{n} is listed twice")));
                        }
                        types.push(t);
                    }
                    k.types = Some(types);
                }
                "enum" => match value {
                    Value::Array(list) => k.enumeration = Some(list.clone()),
                    _ => return Err(schema_error(p, "must be an array")),
                },
                "const" => k.constant = Some(value.clone()),
                "properties" => {
                    let Value::Object(props) = value else {
                        return Err(schema_error(p, "must be an object of schemas"));
                    };
                    for (prop, schema) in props {
                        let node = under(at, prop, |at| Node::compile(schema, at))?;
                        k.properties.push((prop.clone(), node));
                    }
                }
                "required" => {
                    let list = value
                        .as_array()
                        .and_then(|l| l.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| schema_error(p, "must be an array of property names"))?;
                    for (i, name) in list.iter().enumerate() {
                        if list[..i].contains(name) {
                            return Err(schema_error(p, format!("`{name}` is listed twice")));
                        }
                    }
                    k.required = list.into_iter().map(str::to_owned).collect();
                }
                "additionalProperties" => k.additional = Some(Node::compile(value, at)?),
                "minProperties" => k.min_properties = Some(count(value, p)?),
                "maxProperties" => k.max_properties = Some(count(value, p)?),
                "items" => k.items = Some(Node::compile(value, at)?),
                "minItems" => k.min_items = Some(count(value, p)?),
                "maxItems" => k.max_items = Some(count(value, p)?),
                "minLength" => k.min_length = Some(count(value, p)?),
                "maxLength" => k.max_length = Some(count(value, p)?),
                "pattern" => {
                    let source = value
                        .as_str()
                        .ok_or_else(|| schema_error(p, "must be a regular expression"))?;
                    let regex = Regex::new(source).map_err(|e| {
                        schema_error(p, format!("`{source}` is not a supported pattern: {e}"))
                    })?;
                    k.pattern = Some((source.to_owned(), regex));
                }
                "minimum" => k.minimum = Some(number(value, p)?),
                "maximum" => k.maximum = Some(number(value, p)?),
                "exclusiveMinimum" => k.exclusive_minimum = Some(number(value, p)?),
                "exclusiveMaximum" => k.exclusive_maximum = Some(number(value, p)?),
                "allOf" => k.all_of = Node::compile_list(value, at)?,
                "anyOf" => k.any_of = Some(Node::compile_list(value, at)?),
                "oneOf" => k.one_of = Some(Node::compile_list(value, at)?),
                "not" => k.not = Some(Node::compile(value, at)?),
                other if ANNOTATIONS.contains(&other) => {}
                other => {
                    return Err(schema_error(
                        p,
                        format!(
                            "`{other}` is not a supported keyword (supported: {}; annotations: {})",
                            ASSERTIONS.join(", "),
                            ANNOTATIONS.join(", ")
                        ),
                    ));
                }
            }
            at.truncate(len);
        }
        Ok(k)
    }

    fn check(&self, value: &Value, at: &mut String, out: &mut Vec<Violation>) {
        if let Some(types) = &self.types
            && !types.iter().any(|t| t.admits(value))
        {
            let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
            let expected = if let [one] = names[..] {
                format!("\"{one}\"")
            } else {
                format!("{names:?}")
            };
            refuse(out, at, format!("{value} is not of type {expected}"));
        }
        if let Some(options) = &self.enumeration
            && !options.iter().any(|o| equal(o, value))
        {
            refuse(
                out,
                at,
                format!("{value} is not one of {}", Value::from(options.clone())),
            );
        }
        if let Some(constant) = &self.constant
            && !equal(constant, value)
        {
            refuse(out, at, format!("{constant} was expected"));
        }
        match value {
            Value::Object(map) => self.check_object(map, at, out),
            Value::Array(list) => self.check_array(list, at, out),
            Value::String(s) => self.check_string(s, at, out),
            Value::Number(n) => self.check_number(n, at, out),
            _ => {}
        }
        for schema in &self.all_of {
            schema.check(value, at, out);
        }
        if let Some(any) = &self.any_of
            && !any.iter().any(|s| s.accepts(value))
        {
            refuse(
                out,
                at,
                format!(
                    "{value} is not valid under any of the schemas listed in the 'anyOf' keyword"
                ),
            );
        }
        if let Some(one) = &self.one_of {
            let valid = one.iter().filter(|s| s.accepts(value)).count();
            if valid != 1 {
                let message = if valid == 0 {
                    format!(
                        "{value} is not valid under any of the schemas listed in the 'oneOf' keyword"
                    )
                } else {
                    format!(
                        "{value} is valid under more than one of the schemas listed in the 'oneOf' keyword"
                    )
                };
                refuse(out, at, message);
            }
        }
        if let Some(not) = &self.not
            && not.accepts(value)
        {
            refuse(
                out,
                at,
                format!("{value} is not allowed here (it matches the 'not' schema)"),
            );
        }
    }

    fn check_object(&self, map: &Map<String, Value>, at: &mut String, out: &mut Vec<Violation>) {
        for name in &self.required {
            if !map.contains_key(name) {
                refuse(out, at, format!("\"{name}\" is a required property"));
            }
        }
        let n = map.len() as u64;
        if let Some(min) = self.min_properties
            && n < min
        {
            refuse(
                out,
                at,
                format!("the object has fewer than {min} properties"),
            );
        }
        if let Some(max) = self.max_properties
            && n > max
        {
            refuse(
                out,
                at,
                format!("the object has more than {max} properties"),
            );
        }
        let mut unexpected = Vec::new();
        for (name, value) in map {
            match self.properties.iter().find(|(p, _)| p == name) {
                Some((_, schema)) => under(at, name, |at| schema.check(value, at, out)),
                None => match &self.additional {
                    Some(Node::Bool(false)) => unexpected.push(name.as_str()),
                    Some(schema) => under(at, name, |at| schema.check(value, at, out)),
                    None => {}
                },
            }
        }
        if !unexpected.is_empty() {
            let names: Vec<String> = unexpected.iter().map(|n| format!("'{n}'")).collect();
            refuse(
                out,
                at,
                format!(
                    "Additional properties are not allowed ({} {} unexpected)",
                    names.join(", "),
                    if names.len() == 1 { "was" } else { "were" }
                ),
            );
        }
    }

    fn check_array(&self, list: &[Value], at: &mut String, out: &mut Vec<Violation>) {
        let n = list.len() as u64;
        if let Some(min) = self.min_items
            && n < min
        {
            refuse(
                out,
                at,
                format!("the array has fewer than {min} item{}", plural(min)),
            );
        }
        if let Some(max) = self.max_items
            && n > max
        {
            refuse(
                out,
                at,
                format!("the array has more than {max} item{}", plural(max)),
            );
        }
        if let Some(items) = &self.items {
            for (i, item) in list.iter().enumerate() {
                under(at, &i.to_string(), |at| items.check(item, at, out));
            }
        }
    }

    fn check_string(&self, s: &str, at: &str, out: &mut Vec<Violation>) {
        let chars = s.chars().count() as u64;
        if let Some(min) = self.min_length
            && chars < min
        {
            refuse(
                out,
                at,
                format!("{:?} is shorter than {min} character{}", s, plural(min)),
            );
        }
        if let Some(max) = self.max_length
            && chars > max
        {
            refuse(
                out,
                at,
                format!("{:?} is longer than {max} character{}", s, plural(max)),
            );
        }
        if let Some((source, regex)) = &self.pattern
            && !regex.is_match(s)
        {
            refuse(out, at, format!("{s:?} does not match {source:?}"));
        }
    }

    fn check_number(&self, n: &Number, at: &str, out: &mut Vec<Violation>) {
        use std::cmp::Ordering::{Greater, Less};
        let bounds = [
            (&self.minimum, "less than the minimum of", &[Less][..]),
            (&self.maximum, "greater than the maximum of", &[Greater][..]),
            (
                &self.exclusive_minimum,
                "less than or equal to the exclusive minimum of",
                &[Less, std::cmp::Ordering::Equal][..],
            ),
            (
                &self.exclusive_maximum,
                "greater than or equal to the exclusive maximum of",
                &[Greater, std::cmp::Ordering::Equal][..],
            ),
        ];
        for (bound, words, refused) in bounds {
            if let Some(bound) = bound
                && compare(n, bound).is_some_and(|o| refused.contains(&o))
            {
                refuse(out, at, format!("{n} is {words} {bound}"));
            }
        }
    }
}

/// Records that the value at `at` breaks the schema.
fn refuse(out: &mut Vec<Violation>, at: &str, message: String) {
    out.push(Violation {
        pointer: at.to_owned(),
        message,
    });
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Compares two JSON numbers by value: exactly when both are integers, as `f64` otherwise.
fn compare(a: &Number, b: &Number) -> Option<std::cmp::Ordering> {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => Some(x.cmp(&y)),
        (_, _, Some(x), Some(y)) => Some(x.cmp(&y)),
        // One is an i64 below zero and the other a u64 above i64::MAX.
        (Some(_), None, None, Some(_)) => Some(std::cmp::Ordering::Less),
        (None, Some(_), Some(_), None) => Some(std::cmp::Ordering::Greater),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality as JSON Schema defines it: numbers by value (`1` equals `1.0`), objects
/// regardless of member order.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(std::cmp::Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The pointers of the violations, sorted.
    fn pointers(schema: Value, input: Value) -> Vec<String> {
        let mut p: Vec<String> = InputSchema::compile(&schema)
            .unwrap()
            .violations(&input)
            .into_iter()
            .map(|v| v.pointer)
            .collect();
        p.sort();
        p
    }

    #[test]
    fn keywords_outside_the_supported_set_are_refused_where_they_are() {
        for (schema, pointer, words) in [
            (
                json!({"properties": {"a": {"$ref": "#/x"}}}),
                "/properties/a/$ref",
                "`$ref` is not a supported keyword",
            ),
            (
                json!({"patternProperties": {"^a": {}}}),
                "/patternProperties",
                "not a supported keyword",
            ),
            (
                json!({"type": "text"}),
                "/type",
                "is not a JSON Schema type",
            ),
            (
                json!({"pattern": "(?=a)"}),
                "/pattern",
                "not a supported pattern",
            ),
            (
                json!({"minLength": -1}),
                "/minLength",
                "non-negative integer",
            ),
            (
                json!({"minLength": 1.5}),
                "/minLength",
                "non-negative integer",
            ),
            (json!({"required": ["a", "a"]}), "/required", "listed twice"),
            (json!({"anyOf": []}), "/anyOf", "non-empty array"),
            (json!({"items": 3}), "/items", "object or a boolean"),
            (
                json!({"$schema": "http://json-schema.org/draft-07/schema#"}),
                "/$schema",
                "only",
            ),
            (
                json!({"properties": {"a/b~": {"minimum": "1"}}}),
                "/properties/a~1b~0/minimum",
                "must be a number",
            ),
        ] {
            let e = InputSchema::compile(&schema).unwrap_err();
            assert_eq!(e.pointer, pointer, "{schema}");
            assert!(e.message.contains(words), "{schema}: {e}");
        }
        assert!(
            InputSchema::compile(&json!({
                "$schema": DRAFT, "title": "t", "description": "d", "format": "email",
                "examples": [1], "default": 1, "deprecated": false, "$comment": "c"
            }))
            .is_ok()
        );
    }

    #[test]
    fn violations_point_at_the_value_or_at_the_object_that_lacks_a_property() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["email", "items"],
            "properties": {
                "email": {"type": "string", "minLength": 3},
                "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                "a/b": {"const": 1}
            }
        });
        assert_eq!(
            pointers(schema.clone(), json!({"email": "ada@x", "items": [1, 2.0]})),
            Vec::<String>::new()
        );
        assert_eq!(
            pointers(
                schema.clone(),
                json!({"email": "a", "items": [1, "2", 3], "a/b": 1.0, "x": 1, "y": 2})
            ),
            ["", "/email", "/items", "/items/1"]
        );
        assert_eq!(
            pointers(schema.clone(), json!({"a/b": 2})),
            ["", "", "/a~1b"]
        );
        let v = InputSchema::compile(&schema)
            .unwrap()
            .violations(&json!({"email": "ada@x", "items": [], "x": 1, "y": 2}));
        assert_eq!(
            v[0].message,
            "Additional properties are not allowed ('x', 'y' were unexpected)"
        );
    }

    #[test]
    fn numbers_compare_by_value_at_the_edges() {
        assert!(pointers(json!({"minimum": 1}), json!(1.0)).is_empty());
        assert_eq!(pointers(json!({"exclusiveMinimum": 1}), json!(1)), [""]);
        assert_eq!(pointers(json!({"maximum": -1}), json!(u64::MAX)), [""]);
        assert!(pointers(json!({"minimum": -1}), json!(u64::MAX)).is_empty());
        assert!(pointers(json!({"enum": [1, {"a": [2]}]}), json!({"a": [2.0]})).is_empty());
        assert_eq!(pointers(json!({"type": "integer"}), json!(1.5)), [""]);
        assert_eq!(pointers(json!({"maxLength": 2}), json!("ééé")), [""]);
        assert!(pointers(json!({"maxLength": 3}), json!("ééé")).is_empty());
    }
}
