#!/usr/bin/env bash
# `sam build` for the template's default architecture (arm64). cargo-lambda cross-compiles with zig,
# but needs the Rust standard library for the target: when rustup cannot provide it (an offline
# machine), build for x86_64 instead and say so loudly; deployments should build arm64.
set -euo pipefail
cd "$(dirname "$0")/.."

arch_args=()
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  if ! rustup target add aarch64-unknown-linux-gnu; then
    echo "WARNING: the aarch64-unknown-linux-gnu standard library is not available; building x86_64 functions instead" >&2
    arch_args=(--parameter-overrides Architecture=x86_64)
  fi
fi

start=$(date +%s)
sam build "${arch_args[@]}"
for fn in ApiFunction AuthFunction ConnectorFunction MonitorFunction; do
  test -x ".aws-sam/build/$fn/bootstrap" || { echo "sam build produced no bootstrap for $fn" >&2; exit 1; }
done
echo "sam build: every function has its bootstrap ($(( $(date +%s) - start )) s)"
