//! Where things are: the workspace root, the cargo target directory, and a scratch directory outside
//! the workspace (so that writing logs there never wakes up `cargo lambda watch`).

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `infra/template.yaml`.
pub fn template_path() -> PathBuf {
    root().join("infra/template.yaml")
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        None => root().join("target"),
    }
}

/// `.tributary/local.env`, which scripts source to reach the local stack.
pub fn local_env_path() -> PathBuf {
    root().join(".tributary/local.env")
}

/// A directory for logs and generated files, outside the workspace.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join("tributary-local")
}
