//! The API's build script: the functions' link settings (`../link/build.rs`), and the OpenAPI
//! document as the API serves it: `openapi.json` without the whitespace between its tokens,
//! gzip-compressed, in `OUT_DIR` (`routes::docs` embeds it). The checked-in file stays
//! pretty-printed for review; the tests hold the two to the same document, in the same order.

#[path = "../link/build.rs"]
mod link;
mod minify;

use std::io::Write as _;
use std::path::PathBuf;
use std::{env, fs};

use flate2::Compression;
use flate2::write::GzEncoder;

fn main() {
    link::main();
    println!("cargo::rerun-if-changed=openapi.json");
    let var = |name: &str| PathBuf::from(env::var_os(name).unwrap_or_default());
    let source = var("CARGO_MANIFEST_DIR").join("openapi.json");
    let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let written = gz.write_all(minify::minify(&text).as_bytes());
    let out = var("OUT_DIR").join("openapi.json.gz");
    let done = written
        .and_then(|()| gz.finish())
        .and_then(|bytes| fs::write(&out, bytes));
    if let Err(e) = done {
        panic!("{}: {e}", out.display());
    }
}
