//! Embeds the catalog twice: each spec's YAML text as written (for `tributary spec check`, the
//! schema test and error messages with line numbers), and the same document converted to JSON here,
//! at build time, so that a function serving the catalog parses it with the `serde_json` it already
//! links instead of carrying a YAML parser (see `catalog::shared`).
//!
//! Any failure fails the build with what and where: a catalog file that cannot be read or is not
//! YAML, or an output that cannot be written.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

type BuildResult<T> = Result<T, Box<dyn Error>>;

/// An environment variable cargo sets for every build script.
fn cargo_var(name: &str) -> BuildResult<PathBuf> {
    env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name} is not set: run this build script through cargo").into())
}

fn context<T, E: std::fmt::Display>(result: Result<T, E>, what: &Path) -> BuildResult<T> {
    result.map_err(|e| format!("{}: {e}", what.display()).into())
}

fn main() -> BuildResult<()> {
    let dir = cargo_var("CARGO_MANIFEST_DIR")?.join("catalog");
    let out = cargo_var("OUT_DIR")?.join("catalog");
    println!("cargo::rerun-if-changed={}", dir.display());
    context(fs::create_dir_all(&out), &out)?;

    let mut names = Vec::new();
    for entry in context(fs::read_dir(&dir), &dir)? {
        let name = context(entry, &dir)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") {
            names.push(name);
        }
    }
    names.sort();

    let mut files = String::from("&[\n");
    let mut parsed = String::from("&[\n");
    for name in &names {
        let path = dir.join(name);
        println!("cargo::rerun-if-changed={}", path.display());
        let text = context(fs::read_to_string(&path), &path)?;
        // A syntax error fails the build with the file and position; semantic checks are the
        // engine's (`spec::load`, run over every file by the catalog tests).
        let value: serde_json::Value = context(serde_norway::from_str(&text), &path)?;
        let json = out.join(name.replace(".yaml", ".json"));
        context(fs::write(&json, value.to_string()), &json)?;
        writeln!(
            files,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
        writeln!(
            parsed,
            "    ({name:?}, include_str!({:?})),",
            json.display().to_string()
        )?;
    }
    files.push(']');
    parsed.push(']');
    let code = format!(
        "/// Every catalog file: (file name, YAML text), sorted by name.\n\
         pub const FILES: &[(&str, &str)] = {files};\n\n\
         /// The same files as JSON, converted by the build script: (file name, JSON text).\n\
         const PARSED: &[(&str, &str)] = {parsed};\n"
    );
    let generated = out.join("files.rs");
    context(fs::write(&generated, code), &generated)
}
