//! `spec.schema.json` is generated from the spec types; this fails when the two drift.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test -p tributary-engine --test schema`.

use tributary_engine::ProviderSpec;

#[test]
fn published_schema_matches_the_spec_types() {
    let schema = schemars::schema_for!(ProviderSpec);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "spec.schema.json is out of date: run UPDATE_SCHEMA=1 cargo test -p tributary-engine --test schema"
    );
}

#[test]
fn catalog_specs_satisfy_the_published_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (name, text) in tributary_engine::catalog::FILES {
        let doc: serde_json::Value = serde_norway::from_str(text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}
