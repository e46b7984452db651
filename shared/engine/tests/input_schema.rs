//! The engine's input-schema checker against the `jsonschema` crate (JSON Schema 2020-12, its
//! defaults: `format` not asserted): the same verdict and the same places for every catalog
//! action's schema over generated inputs, and for a corpus exercising each supported keyword.

use serde_json::{Map, Value, json};
use tributary_engine::input_schema::InputSchema;

/// The sorted pointers of the violations each checker finds.
fn both(schema: &Value, input: &Value) -> (Vec<String>, Vec<String>) {
    let mut ours: Vec<String> = InputSchema::compile(schema)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
        .violations(input)
        .into_iter()
        .map(|v| v.pointer)
        .collect();
    let reference = jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    let mut theirs: Vec<String> = reference
        .iter_errors(input)
        .map(|e| e.instance_path.to_string())
        .collect();
    ours.sort();
    theirs.sort();
    (ours, theirs)
}

fn agree(schema: &Value, input: &Value) {
    let (ours, theirs) = both(schema, input);
    assert_eq!(
        ours, theirs,
        "schema {schema}\ninput {input}\nours {ours:?}, jsonschema {theirs:?}"
    );
}

/// Values of every JSON type, at edges the keywords care about.
fn samples() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(1.0),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!("ch_1"),
        json!("pi_1"),
        json!("ada@example.com"),
        json!("2026-12-07"),
        json!("ééé"),
        json!([]),
        json!([1]),
        json!(["a", "b", "c"]),
        json!({}),
        json!({"a": "b"}),
        json!({"a": 1}),
    ]
}

/// A value the schema accepts where one is easy to build: each required and optional property
/// filled from the samples the reference accepts, then mutated one property at a time.
fn inputs_for(schema: &Value) -> Vec<Value> {
    let mut out = samples();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    let accepted = |s: &Value| -> Option<Value> {
        let v = jsonschema::validator_for(s).ok()?;
        samples()
            .into_iter()
            .chain(inputs_for_nested(s))
            .find(|x| v.is_valid(x))
    };
    let mut base = Map::new();
    for (name, s) in props {
        if let Some(v) = accepted(s) {
            base.insert(name.clone(), v);
        }
    }
    out.push(Value::Object(base.clone()));
    for name in props.keys() {
        let mut without = base.clone();
        without.remove(name);
        out.push(Value::Object(without));
        for sample in samples() {
            let mut changed = base.clone();
            changed.insert(name.clone(), sample);
            out.push(Value::Object(changed));
        }
        if let Some(nested) = props.get(name) {
            for inner in inputs_for_nested(nested) {
                let mut changed = base.clone();
                changed.insert(name.clone(), inner);
                out.push(Value::Object(changed));
            }
        }
    }
    let mut extra = base;
    extra.insert("unexpected".into(), json!(1));
    out.push(Value::Object(extra));
    out
}

/// Inputs for an object or array property one level down.
fn inputs_for_nested(schema: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if schema.get("properties").is_some() {
        out.extend(inputs_for(schema).into_iter().filter(Value::is_object));
    }
    if let Some(items) = schema.get("items") {
        for s in samples() {
            out.push(json!([s]));
            out.push(json!([s, s]));
        }
        if items.get("properties").is_some() {
            out.extend(
                inputs_for(items)
                    .into_iter()
                    .filter(Value::is_object)
                    .map(|o| json!([o])),
            );
        }
    }
    if let Some(Value::Object(_)) = schema.get("additionalProperties") {
        for s in samples() {
            out.push(json!({"k": s}));
        }
    }
    out
}

#[test]
fn every_catalog_action_schema_gets_the_reference_verdicts() {
    let catalog = tributary_engine::catalog::shared().expect("the catalog loads");
    let mut actions = 0;
    let mut checked = 0;
    let mut refused = 0;
    for spec in catalog {
        for action in &spec.actions {
            actions += 1;
            for input in inputs_for(&action.input_schema) {
                let (ours, theirs) = both(&action.input_schema, &input);
                assert_eq!(
                    ours, theirs,
                    "{} action {}: input {input}\nours {ours:?}, jsonschema {theirs:?}",
                    spec.id, action.name
                );
                checked += 1;
                refused += usize::from(!ours.is_empty());
            }
        }
    }
    assert!(actions >= 16, "{actions} actions");
    // The generated inputs reach both verdicts in quantity.
    assert!(
        refused > 500 && checked - refused > 50,
        "{refused} of {checked}"
    );
}

#[test]
fn each_supported_keyword_gets_the_reference_verdicts() {
    let corpus = [
        json!(true),
        json!(false),
        json!({}),
        json!({"type": "string"}),
        json!({"type": ["string", "null"]}),
        json!({"type": "integer"}),
        json!({"type": "number"}),
        json!({"type": "boolean"}),
        json!({"type": "array"}),
        json!({"type": "object"}),
        json!({"type": "null"}),
        json!({"enum": ["a", 1, null, {"a": "b"}, [1]]}),
        json!({"const": 1}),
        json!({"const": {"a": 1}}),
        json!({"minLength": 2, "maxLength": 3}),
        json!({"pattern": "^ch_"}),
        json!({"pattern": "[0-9]+"}),
        json!({"minimum": 0, "maximum": 1}),
        json!({"exclusiveMinimum": 0, "exclusiveMaximum": 1.5}),
        json!({"minimum": -1}),
        json!({"maximum": 18446744073709551615_u64}),
        json!({"minItems": 1, "maxItems": 2}),
        json!({"items": {"type": "string"}}),
        json!({"items": false}),
        json!({"minProperties": 1, "maxProperties": 1}),
        json!({"required": ["a", "b"]}),
        json!({"properties": {"a": {"type": "string"}}, "additionalProperties": false}),
        json!({"properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}}),
        json!({"additionalProperties": false}),
        json!({"allOf": [{"type": "string"}, {"minLength": 2}]}),
        json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        json!({"oneOf": [{"type": "number"}, {"type": "integer"}]}),
        json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}),
        json!({"not": {"type": "string"}}),
        json!({"type": "string", "format": "email"}),
        json!({"type": "string", "format": "date"}),
        json!({"title": "t", "description": "d", "default": 1, "examples": [2]}),
    ];
    for schema in &corpus {
        for input in samples().iter().chain(&[
            json!({"a": "x", "b": 1}),
            json!({"b": 1}),
            json!({"a": 1, "c": "x"}),
            json!({"a": 1.0}),
        ]) {
            agree(schema, input);
        }
    }
}

#[test]
fn the_reference_and_the_checker_accept_the_same_catalog_schemas() {
    // Every catalog schema compiles under both; the checker refuses what it does not assert.
    for spec in tributary_engine::catalog::shared().expect("the catalog loads") {
        for action in &spec.actions {
            assert!(jsonschema::validator_for(&action.input_schema).is_ok());
            InputSchema::compile(&action.input_schema)
                .unwrap_or_else(|e| panic!("{} {}: {e}", spec.id, action.name));
        }
    }
    for unsupported in [
        json!({"$ref": "#/$defs/a", "$defs": {"a": {}}}),
        json!({"uniqueItems": true}),
        json!({"multipleOf": 2}),
        json!({"dependentRequired": {"a": ["b"]}}),
        json!({"unevaluatedProperties": false}),
        json!({"if": {}, "then": {}}),
    ] {
        assert!(jsonschema::validator_for(&unsupported).is_ok());
        assert!(InputSchema::compile(&unsupported).is_err(), "{unsupported}");
    }
}
