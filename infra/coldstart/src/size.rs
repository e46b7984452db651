//! Zip sizes as `sam deploy` uploads them: the `bootstrap` alone, deflated by Python's `zipfile`
//! (what the SAM CLI packages with). Taken from `sam build`'s output when it is there, since that is
//! what deploys (arm64 by default); otherwise from the benchmark's own release binaries, labelled so.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

const ZIP_BOOTSTRAP: &str = "import sys, zipfile
with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], 'bootstrap')
";

/// Where a zipped binary came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `.aws-sam/build/<LogicalId>/bootstrap`.
    SamBuild,
    /// The benchmark's release build (no `sam build` output for this function).
    Release,
}

/// A binary and its zipped size.
#[derive(Debug, Clone)]
pub struct Zipped {
    /// What was zipped.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
    /// Its instruction set, from the ELF header.
    pub arch: String,
    /// Bytes of the zip.
    pub bytes: u64,
}

impl Zipped {
    /// `1.84 MB (sam build, arm64)`.
    pub fn label(&self) -> String {
        let origin = match self.origin {
            Origin::SamBuild => "sam build",
            Origin::Release => "release build",
        };
        format!("{:.2} MB ({origin}, {})", mb(self.bytes), self.arch)
    }
}

/// Bytes in decimal megabytes.
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// `sam build`'s bootstrap for `logical_id` under `sam_build_dir`, else `release`.
pub fn pick(sam_build_dir: &Path, logical_id: Option<&str>, release: &Path) -> (PathBuf, Origin) {
    match logical_id.map(|id| sam_build_dir.join(id).join("bootstrap")) {
        Some(bootstrap) if bootstrap.is_file() => (bootstrap, Origin::SamBuild),
        _ => (release.to_path_buf(), Origin::Release),
    }
}

/// Zips `binary` into `zip` with `python` and measures the result.
pub fn zip(python: &str, binary: &Path, origin: Origin, zip: &Path) -> Result<Zipped, Error> {
    let output = Command::new(python)
        .arg("-c")
        .arg(ZIP_BOOTSTRAP)
        .arg(binary)
        .arg(zip)
        .output()
        .map_err(|e| Error::io("run", python, e))?;
    if !output.status.success() {
        return Err(Error::Zip {
            path: binary.to_path_buf(),
            python: python.to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let bytes = std::fs::metadata(zip)
        .map_err(|e| Error::io("read", zip.display(), e))?
        .len();
    Ok(Zipped {
        path: binary.to_path_buf(),
        origin,
        arch: elf_arch(binary)?,
        bytes,
    })
}

/// The ELF header's machine (`e_machine`, a little-endian u16 at offset 18).
fn elf_arch(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path.display(), e))?;
    Ok(match bytes.get(18..20) {
        Some([0x3e, 0x00]) => "x86_64".into(),
        Some([0xb7, 0x00]) => "arm64".into(),
        Some([lo, hi]) => format!("ELF machine {:#06x}", u16::from_le_bytes([*lo, *hi])),
        _ => "not an ELF file".into(),
    })
}
