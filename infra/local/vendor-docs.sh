#!/usr/bin/env bash
# Vendors the Redoc bundle that /docs serves (make docs-vendor): installs exactly the redoc pinned by
# infra/local/docs/package-lock.json (npm ci --ignore-scripts, into the git-ignored
# .tributary/docs-vendor/) and writes functions/api/assets/redoc.standalone.js.gz plus Redoc's licence
# texts beside it. The gzip member is zopfli's (ZOPFLI, the pinned tool `make docs-vendor` installs):
# 3 % smaller than `gzip -9`, the same bytes on every run, and read by every gzip decoder.
# --check (make docs-check): installs the same way and fails unless the committed .gz decompresses to
# exactly the pinned bundle (sha256) and the licence texts are the pinned ones; writes nothing.
# Bumping redoc: edit the exact version in infra/local/docs/package.json, run
# `npm install --package-lock-only --ignore-scripts` there, then this script; the versioned path
# (/docs/redoc-<version>.standalone.js) is then renamed where the tests point at.
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
fail() { echo "vendor-docs: $*" >&2; exit 1; }

pins=infra/local/docs
vendor=.tributary/docs-vendor
assets=functions/api/assets
gz="$assets/redoc.standalone.js.gz"

pinned=$(node -p 'require(process.argv[1]).dependencies.redoc' "./$pins/package.json")
[[ "$pinned" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "$pins/package.json must pin an exact redoc version, not '$pinned'"

# A fresh install from the lock: npm ci checks every tarball against the lock's integrity hash. Peer
# dependencies (react, mobx, ...) are compiled into the standalone bundle, so they are not installed.
rm -rf "$vendor"
mkdir -p "$vendor"
cp "$pins/package.json" "$pins/package-lock.json" "$vendor/"
(cd "$vendor" && npm ci --ignore-scripts --omit=peer --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null) ||
  fail "npm ci failed in $vendor"
redoc="$vendor/node_modules/redoc"
installed=$(node -p 'require(process.argv[1]).version' "./$redoc/package.json")
[ "$installed" = "$pinned" ] || fail "npm installed redoc $installed, but $pins/package.json pins $pinned"
bundle="$redoc/bundles/redoc.standalone.js"
[ -s "$bundle" ] || fail "redoc $pinned has no $bundle"
# Licence texts kept next to the asset: Redoc's own (MIT) and the bundle's third-party notices.
licences=("$redoc/LICENSE:$assets/redoc.LICENSE" "$bundle.LICENSE.txt:$assets/redoc.standalone.js.LICENSE.txt")

if [ "$mode" = write ]; then
  zopfli="${ZOPFLI:?set ZOPFLI to the zopfli binary (make docs-vendor installs the pinned one)}"
  cp "$bundle" "$vendor/redoc.standalone.js"
  "$zopfli" "$vendor/redoc.standalone.js"
  gzip -t "$vendor/redoc.standalone.js.gz"
  mv "$vendor/redoc.standalone.js.gz" "$gz"
  for pair in "${licences[@]}"; do cp "${pair%%:*}" "${pair##*:}"; done
  echo "vendor-docs: redoc $pinned: $(wc -c <"$bundle") bytes -> $gz ($(wc -c <"$gz") bytes, sha256 of the bundle $(sha256sum "$bundle" | cut -d' ' -f1))"
  exit 0
fi

[ -f "$gz" ] || fail "$gz is missing (make docs-vendor)"
want=$(sha256sum <"$bundle" | cut -d' ' -f1)
got=$(gzip -dc "$gz" | sha256sum | cut -d' ' -f1) || fail "$gz is not a valid gzip file (make docs-vendor)"
[ "$got" = "$want" ] || fail "$gz decompresses to sha256 $got, but redoc $pinned's bundle is $want (make docs-vendor)"
for pair in "${licences[@]}"; do
  src="${pair%%:*}" dst="${pair##*:}"
  cmp -s "$src" "$dst" || fail "$dst is not redoc $pinned's ${src#"$redoc/"} (make docs-vendor)"
done
echo "vendor-docs: $gz is redoc $pinned's bundle (sha256 $want)"
