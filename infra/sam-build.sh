#!/usr/bin/env bash
# `sam build` for one architecture, SAM_ARCH (`arm64`, the template's default and what deployments use,
# or `x86_64`), passed to the template as its Architecture parameter. cargo-lambda cross-compiles with
# zig but needs the Rust standard library of the target: when it is missing the build fails here,
# before sam runs, and says how to get it. There is no fallback to the other architecture; `make test`
# chooses x86_64 explicitly, and says so, on a machine without the aarch64 standard library.
#
#   infra/sam-build.sh                 SAM_ARCH from the environment (arm64 when unset)
#   infra/sam-build.sh --has-std ARCH  exit 0 when ARCH's standard library is installed (no build)
set -euo pipefail
cd "$(dirname "$0")/.."

triple() {
  case "$1" in
    arm64) echo aarch64-unknown-linux-gnu ;;
    x86_64) echo x86_64-unknown-linux-gnu ;;
    *) return 1 ;;
  esac
}

# Whether the active toolchain has the target's standard library (what `rustup target add` installs),
# read from the sysroot so that it also holds for toolchains not managed by rustup.
has_std() {
  local target sysroot
  target=$(triple "$1") || return 1
  sysroot=$("${RUSTC:-rustc}" --print sysroot 2>/dev/null) || return 1
  compgen -G "$sysroot/lib/rustlib/$target/lib/libstd-*.rlib" >/dev/null
}

if [ "${1:-}" = --has-std ]; then
  has_std "${2:?usage: $0 --has-std arm64|x86_64}"
  exit
fi

arch="${SAM_ARCH:-arm64}"
target=$(triple "$arch") || {
  echo "sam-build: SAM_ARCH=$arch: use arm64 or x86_64 (the template's Architecture values)" >&2
  exit 2
}
if ! has_std "$arch"; then
  cat >&2 <<EOF
sam-build: cannot build $arch functions: the $target Rust standard library is not installed
  ($("${RUSTC:-rustc}" --print sysroot 2>/dev/null || echo "rustc not found")/lib/rustlib/$target is missing).
  Install it with \`rustup target add $target\` (it downloads from static.rust-lang.org), or build
  on a machine that can. To build and deploy x86_64 instead, say so: \`make sam-build SAM_ARCH=x86_64\`
  and deploy with the Architecture=x86_64 parameter.
EOF
  exit 1
fi

echo "sam-build: $arch ($target)"
start=$(date +%s)
sam build --parameter-overrides "Architecture=$arch"
# ELF e_machine (little-endian u16 at offset 18): what the bootstrap actually runs on.
case "$arch" in arm64) machine=00b7 ;; x86_64) machine=003e ;; esac
for fn in ApiFunction AuthFunction ConnectorFunction MonitorFunction; do
  bootstrap=".aws-sam/build/$fn/bootstrap"
  test -x "$bootstrap" || { echo "sam build produced no bootstrap for $fn" >&2; exit 1; }
  got=$(od -An -tx2 -j18 -N2 "$bootstrap" | tr -d ' ')
  [ "$got" = "$machine" ] || { echo "sam build: $bootstrap is not a $arch binary (ELF machine $got)" >&2; exit 1; }
  # What keeps the zips small, checked on what ships (README, "Cold start and size"): no unwind
  # tables and a position-dependent executable (functions/link/build.rs), and no HTTP/2 stack
  # (every client speaks HTTP/1.1; h2 came in through the tests' wiremock, which
  # .config/hakari.toml keeps out of the workspace-hack). A stripped binary keeps the source paths
  # of its panic locations, which name each crate.
  if readelf -S -W "$bootstrap" | grep -E '\.eh_frame|\.gcc_except_table'; then
    echo "sam build: $bootstrap carries unwind tables (above): functions/link/build.rs did not apply" >&2
    exit 1
  fi
  # ELF e_type (offset 16): 2 is a position-dependent executable, 3 a position-independent one.
  etype=$(od -An -tx2 -j16 -N2 "$bootstrap" | tr -d ' ')
  want=0002; [ "${TRIBUTARY_PIE:-}" = 1 ] && want=0003
  [ "$etype" = "$want" ] || { echo "sam build: $bootstrap has ELF type $etype, not $want (functions/link/build.rs)" >&2; exit 1; }
  if grep -a -q -E '/h2-[0-9]+\.[0-9]+\.[0-9]+/src/' "$bootstrap"; then
    echo "sam build: $bootstrap links h2, the HTTP/2 stack: a dependency's http2 feature reaches the release build" >&2
    exit 1
  fi
done
echo "sam build: every function has its $arch bootstrap ($(( $(date +%s) - start )) s)"
