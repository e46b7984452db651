//! Whether a prebuilt function binary still matches its sources, so that the end-to-end tests (and
//! any binaries-mode stack) never run code older than the working tree.
//!
//! Beside each binary cargo writes a dep-info file (`target/debug/<bin>.d`, Makefile syntax): every
//! source file the compiler read for it, across the workspace crates it depends on, `include_str!`
//! assets included. Cargo itself rebuilds when one of them is newer than its last build, and a
//! rebuild rewrites the binary, so a binary older than one of them is stale, and one that is not is
//! what `cargo build` would leave as it is. Dependency changes that touch no source (a `Cargo.lock`
//! bump) are not seen here: `make build`, which `make cargo-test` runs first, covers them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a binary is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// A source is newer than the binary.
    Newer(PathBuf),
    /// A source the binary was built from no longer exists.
    Missing(PathBuf),
    /// There is no dep-info beside the binary (cargo did not build it, or is building it): its
    /// sources are unknown.
    NoDepInfo(PathBuf),
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Newer(path) => write!(f, "{} changed after it was built", path.display()),
            Self::Missing(path) => write!(
                f,
                "{} was deleted since it was built from it",
                path.display()
            ),
            Self::NoDepInfo(path) => write!(
                f,
                "{} is missing, so its sources are unknown",
                path.display()
            ),
        }
    }
}

/// The first source (by dep-info order) that makes `binary` stale, [`Staleness::NoDepInfo`] when
/// there is no dep-info beside it, or `None` when it is fresh.
pub fn check(binary: &Path) -> std::io::Result<Option<Staleness>> {
    let Some(name) = binary.file_name() else {
        return Ok(None);
    };
    let mut dep_info_name = name.to_os_string();
    dep_info_name.push(".d");
    let dep_info = binary.with_file_name(dep_info_name);
    let text = match std::fs::read_to_string(&dep_info) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(Staleness::NoDepInfo(dep_info)));
        }
        Err(e) => return Err(e),
    };
    let built = std::fs::metadata(binary)?.modified()?;
    for source in dependencies(&text) {
        match std::fs::metadata(&source) {
            Ok(meta) => {
                if meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) > built {
                    return Ok(Some(Staleness::Newer(source)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(Staleness::Missing(source)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The prerequisites of a dep-info file's rules (`target: dep dep…`, spaces in paths escaped as `\ `).
fn dependencies(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !current.is_empty() {
                        out.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            out.push(PathBuf::from(current));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::Duration;

    use super::*;

    /// A scratch directory with a "binary", two "sources" and the dep-info tying them; removed on
    /// drop.
    struct Built {
        dir: PathBuf,
        binary: PathBuf,
        sources: [PathBuf; 2],
    }

    impl Built {
        fn new() -> Self {
            let dir = crate::workspace::scratch_dir()
                .join(format!("freshness-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(dir.join("src dir")).expect("create");
            let sources = [dir.join("src dir/main.rs"), dir.join("assets.html")];
            let binary = dir.join("fn-bin");
            for path in sources.iter().chain([&binary]) {
                std::fs::write(path, b"x").expect("write");
            }
            let escaped: Vec<String> = sources
                .iter()
                .map(|p| p.display().to_string().replace(' ', "\\ "))
                .collect();
            std::fs::write(
                dir.join("fn-bin.d"),
                format!("{}: {}\n", binary.display(), escaped.join(" ")),
            )
            .expect("write dep-info");
            let built = Self {
                dir,
                binary,
                sources,
            };
            let now = SystemTime::now();
            built.set_mtime(&built.sources[0], now - Duration::from_secs(60));
            built.set_mtime(&built.sources[1], now - Duration::from_secs(60));
            built.set_mtime(&built.binary, now - Duration::from_secs(30));
            built
        }

        fn set_mtime(&self, path: &Path, when: SystemTime) {
            File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(when))
                .expect("set mtime");
        }
    }

    impl Drop for Built {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_binary_newer_than_all_its_sources_is_fresh() {
        let built = Built::new();

        assert_eq!(check(&built.binary).expect("check"), None);
    }

    #[test]
    fn a_source_changed_after_the_build_makes_the_binary_stale() {
        let built = Built::new();
        built.set_mtime(&built.sources[1], SystemTime::now());

        assert_eq!(
            check(&built.binary).expect("check"),
            Some(Staleness::Newer(built.sources[1].clone()))
        );
    }

    #[test]
    fn paths_with_spaces_are_read_whole() {
        let built = Built::new();
        built.set_mtime(&built.sources[0], SystemTime::now());

        assert_eq!(
            check(&built.binary).expect("check"),
            Some(Staleness::Newer(built.sources[0].clone()))
        );
    }

    #[test]
    fn a_deleted_source_makes_the_binary_stale() {
        let built = Built::new();
        std::fs::remove_file(&built.sources[0]).expect("remove");

        assert_eq!(
            check(&built.binary).expect("check"),
            Some(Staleness::Missing(built.sources[0].clone()))
        );
    }

    #[test]
    fn without_dep_info_freshness_is_unknown() {
        let built = Built::new();
        std::fs::remove_file(built.dir.join("fn-bin.d")).expect("remove");

        assert_eq!(
            check(&built.binary).expect("check"),
            Some(Staleness::NoDepInfo(built.dir.join("fn-bin.d")))
        );
    }
}
