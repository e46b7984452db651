//! What `cargo lambda watch` restarts the functions for: changes to the sources of the functions and
//! of the workspace crates they depend on, and to the workspace's manifests, never to anything else
//! in the workspace (a `customers.jsonl` the CLI wrote, schemathesis' `.hypothesis/`, an editor's
//! scratch file).
//!
//! cargo-lambda's watcher only honours ignore files (gitignore syntax): `.gitignore`, a
//! `.cargolambdaignore` in the root, and the file `CARGO_LAMBDA_IGNORE_FILE` names (it has no option
//! that narrows the watched paths). The stack writes such a file: it ignores everything, then
//! re-includes the packages `cargo metadata` says the functions are built from, minus their
//! `tests/`, `benches/` and `examples/`. The watcher matches a path against these rules and its
//! parents' (the nearest match wins, the last rule among those that match a path), so
//! `functions/api/src/main.rs` is re-included through `!/functions/api/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// The environment variable cargo-lambda reads the extra ignore file from.
pub(crate) const IGNORE_FILE_ENV: &str = "CARGO_LAMBDA_IGNORE_FILE";

/// Files of the workspace root that change what cargo builds.
const ROOT_BUILD_FILES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// Directories of a package that do not go into its binaries.
const NOT_BUILT: &[&str] = &["tests", "benches", "examples"];

#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    #[serde(default)]
    dependencies: Vec<Dependency>,
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    /// `None` for normal dependencies, `"dev"` or `"build"`.
    kind: Option<String>,
    /// Set for path (workspace) dependencies.
    path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// The directories (relative to `root`) of the packages that build `binaries` and of every workspace
/// package they depend on (normal and build dependencies, not dev ones), from `cargo metadata`'s JSON.
pub(crate) fn package_dirs(
    metadata_json: &[u8],
    root: &Path,
    binaries: &[&str],
) -> Result<BTreeSet<PathBuf>, Error> {
    let metadata: Metadata = serde_json::from_slice(metadata_json)
        .map_err(|e| Error::InvalidOption(format!("cargo metadata: unexpected output: {e}")))?;
    let dir_of = |p: &Package| p.manifest_path.parent().map(Path::to_path_buf);
    let by_dir: BTreeMap<PathBuf, &Package> = metadata
        .packages
        .iter()
        .filter_map(|p| dir_of(p).map(|d| (d, p)))
        .collect();
    let mut pending: Vec<&Package> = Vec::new();
    for binary in binaries {
        let package = metadata
            .packages
            .iter()
            .find(|p| {
                p.targets
                    .iter()
                    .any(|t| t.name == *binary && t.kind.iter().any(|k| k == "bin"))
            })
            .ok_or_else(|| {
                Error::Template(format!(
                    "no package of the workspace has a binary named {binary}"
                ))
            })?;
        pending.push(package);
    }
    let mut dirs = BTreeSet::new();
    while let Some(package) = pending.pop() {
        let Some(dir) = dir_of(package) else { continue };
        let relative = dir.strip_prefix(root).map_err(|_| {
            Error::Template(format!(
                "package {} ({}) is outside the workspace {}",
                package.name,
                dir.display(),
                root.display()
            ))
        })?;
        if !dirs.insert(relative.to_path_buf()) {
            continue;
        }
        for dependency in &package.dependencies {
            if dependency.kind.as_deref() == Some("dev") {
                continue;
            }
            if let Some(next) = dependency.path.as_ref().and_then(|p| by_dir.get(p)) {
                pending.push(next);
            }
        }
    }
    Ok(dirs)
}

/// Ignore rules (gitignore syntax, anchored at the workspace root) that leave only `package_dirs`
/// (minus what does not go into their binaries) and the root's build files watched.
pub(crate) fn ignore_rules(package_dirs: &BTreeSet<PathBuf>) -> String {
    let mut out = String::from(
        "# Written by tributary-local for `cargo lambda watch` (CARGO_LAMBDA_IGNORE_FILE): only the\n\
         # functions' packages and the workspace crates they depend on restart the functions.\n",
    );
    // Every directory on the way to a package, with the children that lead to one.
    let mut children: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for dir in package_dirs {
        let mut child = dir.as_path();
        while let Some(parent) = child.parent() {
            children
                .entry(parent.to_path_buf())
                .or_default()
                .insert(child.to_path_buf());
            child = parent;
        }
    }
    for (parent, kept) in &children {
        // A package that contains another one is kept whole.
        if package_dirs.contains(parent) {
            continue;
        }
        out.push_str(&format!("{}*\n", anchored(parent)));
        if parent.as_os_str().is_empty() {
            for file in ROOT_BUILD_FILES {
                out.push_str(&format!("!/{file}\n"));
            }
        }
        for child in kept {
            out.push_str(&format!("!{}\n", anchored(child)));
        }
    }
    for dir in package_dirs {
        for sub in NOT_BUILT {
            let path = dir.join(sub);
            if !children.contains_key(&path) {
                out.push_str(&format!("{}\n", anchored(&path)));
            }
        }
    }
    out
}

/// `/a/b/` for `a/b`, `/` for the root.
fn anchored(dir: &Path) -> String {
    let mut s = String::from("/");
    for part in dir.components() {
        s.push_str(&part.as_os_str().to_string_lossy());
        s.push('/');
    }
    s
}

/// Asks cargo for the workspace's packages and writes the ignore file for `binaries` to `path`.
pub(crate) async fn write_ignore_file(
    root: &Path,
    binaries: &[&str],
    path: &Path,
) -> Result<(), Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = tokio::process::Command::new(&cargo)
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .await
        .map_err(|source| Error::Spawn {
            what: "cargo metadata".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::InvalidOption(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let dirs = package_dirs(&output.stdout, root, binaries)?;
    std::fs::write(path, ignore_rules(&dirs)).map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Vec<u8> {
        serde_json::json!({"packages": [
            {"name": "core", "manifest_path": "/ws/shared/core/Cargo.toml", "dependencies": [], "targets": [{"name": "core", "kind": ["lib"]}]},
            {"name": "aws", "manifest_path": "/ws/shared/aws/Cargo.toml",
             "dependencies": [{"name": "core", "kind": null, "path": "/ws/shared/core"}], "targets": []},
            {"name": "engine", "manifest_path": "/ws/shared/engine/Cargo.toml", "dependencies": [], "targets": []},
            {"name": "fakes", "manifest_path": "/ws/shared/fakes/Cargo.toml", "dependencies": [], "targets": []},
            {"name": "api", "manifest_path": "/ws/functions/api/Cargo.toml",
             "dependencies": [{"name": "aws", "kind": null, "path": "/ws/shared/aws"},
                              {"name": "fakes", "kind": "dev", "path": "/ws/shared/fakes"},
                              {"name": "serde", "kind": null}],
             "targets": [{"name": "api-bin", "kind": ["bin"]}]},
            {"name": "monitor", "manifest_path": "/ws/functions/monitor/Cargo.toml",
             "dependencies": [{"name": "core", "kind": null, "path": "/ws/shared/core"}],
             "targets": [{"name": "monitor", "kind": ["bin"]}]},
            {"name": "local", "manifest_path": "/ws/infra/local/Cargo.toml",
             "dependencies": [{"name": "engine", "kind": null, "path": "/ws/shared/engine"}],
             "targets": [{"name": "local", "kind": ["bin"]}]}
        ]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn package_dirs_are_the_functions_and_their_workspace_dependencies_without_dev_ones() {
        let dirs =
            package_dirs(&metadata(), Path::new("/ws"), &["api-bin", "monitor"]).expect("resolves");

        let dirs: Vec<&str> = dirs.iter().filter_map(|d| d.to_str()).collect();
        assert_eq!(
            dirs,
            [
                "functions/api",
                "functions/monitor",
                "shared/aws",
                "shared/core"
            ]
        );
    }

    #[test]
    fn an_unknown_binary_is_an_error() {
        let err = package_dirs(&metadata(), Path::new("/ws"), &["nope"]).expect_err("unknown");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn rules_ignore_everything_but_the_packages_and_the_root_build_files() {
        let dirs: BTreeSet<PathBuf> = ["functions/api", "shared/core", "shared/aws"]
            .into_iter()
            .map(PathBuf::from)
            .collect();

        let rules = ignore_rules(&dirs);

        let lines: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "/*",
                "!/Cargo.toml",
                "!/Cargo.lock",
                "!/.cargo/",
                "!/rust-toolchain",
                "!/rust-toolchain.toml",
                "!/functions/",
                "!/shared/",
                "/functions/*",
                "!/functions/api/",
                "/shared/*",
                "!/shared/aws/",
                "!/shared/core/",
                "/functions/api/tests/",
                "/functions/api/benches/",
                "/functions/api/examples/",
                "/shared/aws/tests/",
                "/shared/aws/benches/",
                "/shared/aws/examples/",
                "/shared/core/tests/",
                "/shared/core/benches/",
                "/shared/core/examples/",
            ]
        );
    }

    #[test]
    fn a_package_inside_another_is_covered_by_it() {
        let dirs: BTreeSet<PathBuf> = ["crate", "crate/tests/helper"]
            .into_iter()
            .map(PathBuf::from)
            .collect();

        let rules = ignore_rules(&dirs);

        // `crate/tests` leads to a package: it is not ignored, and `crate` is not narrowed.
        assert!(!rules.lines().any(|l| l == "/crate/tests/"), "{rules}");
        assert!(!rules.lines().any(|l| l == "/crate/*"), "{rules}");
        assert!(rules.lines().any(|l| l == "/crate/tests/*"), "{rules}");
        assert!(
            rules.lines().any(|l| l == "!/crate/tests/helper/"),
            "{rules}"
        );
    }
}
