#!/usr/bin/env bash
# The API reference page (/docs) in headless Chromium, served by the local stack: it must render every
# operation of the OpenAPI document from assets that ship with the project (Chromium runs with
# networking to anything but the local stack disabled). Installs Debian's chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "docs-check: installing Debian's chromium"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

CHECK_NAME=docs-check
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
start_stack
work="$stack_work"
port="${TRIBUTARY_API_URL##*:}"

expected=$(python3 -c 'import json; d = json.load(open("functions/api/openapi.json")); print(sum(len(v) for v in d["paths"].values()))')
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --user-data-dir="$work/profile" --virtual-time-budget=10000
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
url="http://127.0.0.1:$port/docs"
dom=$("${chrome[@]}" --dump-dom "$url" 2>"$work/chromium.log") || fail "chromium failed: $(tail -5 "$work/chromium.log")"
"${chrome[@]}" --window-size=1280,1600 --screenshot="$work/docs.png" "$url" >/dev/null 2>&1 || true

grep -q 'data-ready="true"' <<<"$dom" || fail "the page did not render the API description: $(grep -o 'id="error"[^<]*<' <<<"$dom" || true)"
grep -q "data-operations=\"$expected\"" <<<"$dom" || fail "the page does not show all $expected operations"
for needle in 'data-path="/v1/keys"' 'keys:write' 'Idempotency-Key' 'problem'; do
  grep -q -- "$needle" <<<"$dom" || fail "the page lacks $needle"
done
grep -Eq '(src|href)="https?://' <<<"$dom" && fail "the page references an external asset"
echo "docs-check: /docs renders all $expected operations offline (screenshot: $work/docs.png)"
