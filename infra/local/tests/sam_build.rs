//! `infra/sam-build.sh` builds the architecture it is asked for or fails before `sam` runs: never a
//! silent fallback to the other one. Runs the script with a fake `rustc` (whose sysroot has or lacks
//! a target's standard library) and a fake `sam` that records its arguments.

use std::path::{Path, PathBuf};
use std::process::Command;

use tributary_local::workspace;

/// A scratch directory with a fake toolchain; removed on drop.
struct FakeTools {
    dir: PathBuf,
}

impl FakeTools {
    /// Fakes whose sysroot holds the standard library of each of `targets`.
    fn with_std_for(targets: &[&str]) -> Self {
        let dir = workspace::scratch_dir().join(format!("sam-build-test-{}", uuid::Uuid::new_v4()));
        let sysroot = dir.join("sysroot");
        for target in targets {
            let lib = sysroot.join("lib/rustlib").join(target).join("lib");
            std::fs::create_dir_all(&lib).expect("create the fake sysroot");
            std::fs::write(lib.join("libstd-0123456789abcdef.rlib"), b"").expect("write libstd");
        }
        std::fs::create_dir_all(dir.join("bin")).expect("create the fake bin dir");
        write_script(
            &dir.join("bin/rustc"),
            &format!(
                "[ \"$*\" = '--print sysroot' ] && echo '{}'",
                sysroot.display()
            ),
        );
        // Records how it was called and fails, so that nothing after it runs.
        write_script(
            &dir.join("bin/sam"),
            &format!(
                "echo \"$*\" > '{}'; exit 42",
                dir.join("sam-args").display()
            ),
        );
        Self { dir }
    }

    /// Runs the script with `SAM_ARCH=arch`; returns (exit code, stderr, sam's arguments if it ran).
    fn run(&self, arch: &str) -> (Option<i32>, String, Option<String>) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.join("bin")];
        paths.extend(std::env::split_paths(&path));
        let output = Command::new("bash")
            .arg(workspace::root().join("infra/sam-build.sh"))
            .env("SAM_ARCH", arch)
            .env("RUSTC", self.dir.join("bin/rustc"))
            .env(
                "PATH",
                std::env::join_paths(paths).expect("a PATH of valid entries"),
            )
            .output()
            .expect("run infra/sam-build.sh");
        let sam_args = std::fs::read_to_string(self.dir.join("sam-args")).ok();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            sam_args.map(|a| a.trim().to_owned()),
        )
    }
}

impl Drop for FakeTools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/usr/bin/env bash\n{body}\n")).expect("write a fake tool");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn when_the_aarch64_std_is_missing_arm64_fails_before_sam_runs_and_says_how_to_get_it() {
    let tools = FakeTools::with_std_for(&["x86_64-unknown-linux-gnu"]);

    let (code, stderr, sam_args) = tools.run("arm64");

    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(sam_args, None, "sam ran: {stderr}");
    assert!(
        stderr.contains("rustup target add aarch64-unknown-linux-gnu"),
        "{stderr}"
    );
    assert!(stderr.contains("SAM_ARCH=x86_64"), "{stderr}");
}

#[test]
fn when_the_aarch64_std_is_installed_arm64_is_what_sam_builds() {
    let tools = FakeTools::with_std_for(&["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"]);

    let (code, stderr, sam_args) = tools.run("arm64");

    assert_eq!(
        code,
        Some(42),
        "the fake sam's failure is the script's: {stderr}"
    );
    assert_eq!(
        sam_args.as_deref(),
        Some("build --parameter-overrides Architecture=arm64")
    );
}

#[test]
fn x86_64_is_built_only_when_asked_for() {
    let tools = FakeTools::with_std_for(&["x86_64-unknown-linux-gnu"]);

    let (_, stderr, sam_args) = tools.run("x86_64");

    assert_eq!(
        sam_args.as_deref(),
        Some("build --parameter-overrides Architecture=x86_64"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_architecture_is_refused() {
    let tools = FakeTools::with_std_for(&["x86_64-unknown-linux-gnu"]);

    let (code, stderr, sam_args) = tools.run("amd64");

    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(sam_args, None);
}
