//! The provider catalog, embedded at build time so binaries need no files at run time.

use crate::spec::{ProviderSpec, SpecErrors, load};

/// Every catalog file: (file name, YAML text).
pub const FILES: &[(&str, &str)] = &[
    ("stripe.yaml", include_str!("../catalog/stripe.yaml")),
    ("hubspot.yaml", include_str!("../catalog/hubspot.yaml")),
    ("github.yaml", include_str!("../catalog/github.yaml")),
    ("slack.yaml", include_str!("../catalog/slack.yaml")),
    (
        "salesforce.yaml",
        include_str!("../catalog/salesforce.yaml"),
    ),
    ("shopify.yaml", include_str!("../catalog/shopify.yaml")),
    ("zendesk.yaml", include_str!("../catalog/zendesk.yaml")),
    ("jira.yaml", include_str!("../catalog/jira.yaml")),
    ("pipedrive.yaml", include_str!("../catalog/pipedrive.yaml")),
    ("intercom.yaml", include_str!("../catalog/intercom.yaml")),
    ("notion.yaml", include_str!("../catalog/notion.yaml")),
    ("airtable.yaml", include_str!("../catalog/airtable.yaml")),
    ("asana.yaml", include_str!("../catalog/asana.yaml")),
    ("mailchimp.yaml", include_str!("../catalog/mailchimp.yaml")),
    (
        "google-drive.yaml",
        include_str!("../catalog/google-drive.yaml"),
    ),
];

/// Parses the whole embedded catalog.
pub fn load_all() -> Result<Vec<ProviderSpec>, SpecErrors> {
    let mut specs = Vec::with_capacity(FILES.len());
    let mut errors = Vec::new();
    for (name, text) in FILES {
        match load(text, &format!("catalog/{name}")) {
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

/// The whole embedded catalog, parsed once per process.
pub fn shared() -> Result<&'static [ProviderSpec], &'static SpecErrors> {
    static CATALOG: std::sync::OnceLock<Result<Vec<ProviderSpec>, SpecErrors>> =
        std::sync::OnceLock::new();
    CATALOG.get_or_init(load_all).as_ref().map(Vec::as_slice)
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
        assert_eq!(on_disk, embedded, "add new catalog files to catalog::FILES");
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
