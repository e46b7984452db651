//! The build script of every function (`build = "../link/build.rs"`): a release build for Linux
//! links its binary without unwind tables (`no-unwind-tables.ld` says why).
//!
//! Only the binary is linked so (`rustc-link-arg-bins`): the crate's test harness, which unwinds,
//! is not. A release profile changed to `panic = "unwind"` would need the tables; the function's
//! `main.rs` refuses to compile then (the `tributary_no_unwind_tables` cfg set here), rather than
//! build a binary that cannot unwind.

use std::env;
use std::path::PathBuf;

pub fn main() {
    println!("cargo::rustc-check-cfg=cfg(tributary_no_unwind_tables)");
    println!("cargo::rerun-if-changed=../link");
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
}
