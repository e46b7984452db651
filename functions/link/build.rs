//! The build script of every function (`build = "../link/build.rs"`; the API's own build script
//! calls it): how a release build for Linux links a function's binary.
//!
//! - **Without unwind tables** (`no-unwind-tables.ld` says why). Only the binary is linked so
//!   (`rustc-link-arg-bins`): the crate's test harness, which unwinds, is not. A release profile
//!   changed to `panic = "unwind"` would need the tables; the function's `main.rs` refuses to
//!   compile then (the `tributary_no_unwind_tables` cfg set here), rather than build a binary that
//!   cannot unwind.
//! - **As a position-dependent executable** (`-no-pie`), as Go links every Go function on Lambda:
//!   addresses are fixed at link time, so the loader applies no relocations at start (the API has
//!   about 15,000) and the zip carries no relocation table (0.04 MB of the API's zip). The cost is
//!   that the binary's own code and data load at the same address in every sandbox; the heap,
//!   stacks and shared libraries stay randomized. `TRIBUTARY_PIE=1` at build time keeps a
//!   position-independent executable, at the zip size the README gives.

use std::env;
use std::path::PathBuf;

pub fn main() {
    println!("cargo::rustc-check-cfg=cfg(tributary_no_unwind_tables)");
    println!("cargo::rerun-if-changed=../link");
    println!("cargo::rerun-if-env-changed=TRIBUTARY_PIE");
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    let script = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("../link/no-unwind-tables.ld");
    let script = match script.canonicalize() {
        Ok(script) => script,
        Err(e) => panic!("{}: {e}", script.display()),
    };
    println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    println!("cargo::rustc-cfg=tributary_no_unwind_tables");
    if var("TRIBUTARY_PIE") != "1" {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
