//! Embeds the catalog twice: each spec's YAML text as written (for `tributary spec check`, the
//! schema test and error messages with line numbers), and the same document converted to JSON here,
//! at build time, so that a function serving the catalog parses it with the `serde_json` it already
//! links instead of carrying a YAML parser (see `catalog::shared`).

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("catalog");
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("catalog");
    println!("cargo::rerun-if-changed={}", dir.display());
    fs::create_dir_all(&out).expect("create OUT_DIR/catalog");

    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("read shared/engine/catalog")
        .map(|e| {
            e.expect("catalog entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();

    let mut files = String::from("&[\n");
    let mut parsed = String::from("&[\n");
    for name in &names {
        let path = dir.join(name);
        println!("cargo::rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path).expect("read catalog file");
        // A syntax error fails the build with the file and position; semantic checks are the
        // engine's (`spec::load`, run over every file by the catalog tests).
        let value: serde_json::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("catalog/{name}: {e}"));
        let json = out.join(name.replace(".yaml", ".json"));
        fs::write(
            &json,
            serde_json::to_string(&value).expect("JSON of a YAML value"),
        )
        .expect("write catalog JSON");
        writeln!(
            files,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("string");
        writeln!(
            parsed,
            "    ({name:?}, include_str!({:?})),",
            json.display().to_string()
        )
        .expect("string");
    }
    files.push(']');
    parsed.push(']');
    let code = format!(
        "/// Every catalog file: (file name, YAML text), sorted by name.\n\
         pub const FILES: &[(&str, &str)] = {files};\n\n\
         /// The same files as JSON, converted by the build script: (file name, JSON text).\n\
         const PARSED: &[(&str, &str)] = {parsed};\n"
    );
    fs::write(out.join("files.rs"), code).expect("write files.rs");
}
