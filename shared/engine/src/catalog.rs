//! The provider catalog, embedded at build time so binaries need no files at run time.

use crate::spec::{ProviderSpec, SpecErrors, load, load_prebuilt};

include!(concat!(env!("OUT_DIR"), "/catalog/files.rs"));

/// Parses and checks the whole embedded catalog from its YAML.
pub fn load_all() -> Result<Vec<ProviderSpec>, SpecErrors> {
    collect(FILES, load)
}

fn collect(
    files: &[(&str, &str)],
    parse: fn(&str, &str) -> Result<ProviderSpec, SpecErrors>,
) -> Result<Vec<ProviderSpec>, SpecErrors> {
    let mut specs = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for (name, text) in files {
        match parse(text, &format!("catalog/{name}")) {
            Ok(s) => specs.push(s),
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(SpecErrors(errors))
    }
}

/// The whole embedded catalog, parsed once per process from the JSON the build script made of it
/// (see [`load_prebuilt`]): what the functions use, without a YAML parser.
pub fn shared() -> Result<&'static [ProviderSpec], &'static SpecErrors> {
    static CATALOG: std::sync::OnceLock<Result<Vec<ProviderSpec>, SpecErrors>> =
        std::sync::OnceLock::new();
    CATALOG
        .get_or_init(|| collect(PARSED, load_prebuilt))
        .as_ref()
        .map(Vec::as_slice)
}

/// The embedded spec with this id.
pub fn get(id: &str) -> Option<Result<ProviderSpec, SpecErrors>> {
    FILES
        .iter()
        .find(|(name, _)| name.strip_suffix(".yaml") == Some(id))
        .map(|(name, text)| load(text, &format!("catalog/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prebuilt_catalog_is_the_yaml_catalog() {
        let yaml = load_all().unwrap_or_else(|e| panic!("{e}"));
        let prebuilt = shared().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(yaml.len(), prebuilt.len());
        for (y, p) in yaml.iter().zip(prebuilt) {
            assert_eq!(format!("{y:?}"), format!("{p:?}"), "{} differs", y.id);
        }
    }

    #[test]
    fn a_prebuilt_spec_is_checked_too() {
        let (name, json) = PARSED[0];
        let mut doc: serde_json::Value = serde_json::from_str(json).unwrap();
        let first = doc["actions"][0].clone();
        doc["actions"].as_array_mut().unwrap().push(first);
        let errors = load_prebuilt(&doc.to_string(), name).unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.message.starts_with("duplicate action")),
            "{errors}"
        );
    }

    #[test]
    fn every_catalog_file_is_embedded_and_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "the build script embeds every catalog file"
        );
        let specs = load_all().unwrap_or_else(|e| panic!("{e}"));
        for s in &specs {
            assert_eq!(
                get(&s.id).map(|r| r.is_ok()),
                Some(true),
                "file name must be {}.yaml",
                s.id
            );
            assert!(
                !s.streams.is_empty() && !s.actions.is_empty(),
                "{} needs a stream and an action",
                s.id
            );
        }
    }
}
