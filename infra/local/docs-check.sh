#!/usr/bin/env bash
# The API reference page (/docs, Redoc) in headless Chromium, served by the local stack: it must render
# every operation of the OpenAPI document (Markdown as HTML) from assets the stack itself serves, and
# the page must request nothing from any other host (Chromium runs with networking to anything but the
# local stack disabled, and its net log is read back). Installs Debian's chromium when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECK_NAME=docs-check
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
ensure_chromium
start_stack
work="$stack_work"
port="${TRIBUTARY_API_URL##*:}"

# AutofillServerCommunication: Chromium would otherwise ask Google about the page's form (the search box).
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-features=AutofillServerCommunication
  --user-data-dir="$work/profile" --virtual-time-budget=10000
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
url="http://127.0.0.1:$port/docs"
"${chrome[@]}" --enable-logging=stderr --v=0 --log-net-log="$work/net-log.json" \
  --dump-dom "$url" >"$work/dom.html" 2>"$work/chromium.log" || fail "chromium failed: $(tail -5 "$work/chromium.log")"
"${chrome[@]}" --window-size=1280,1600 --screenshot="$work/docs.png" "$url" >/dev/null 2>&1 || true

python3 - "$work" "$port" functions/api/openapi.json <<'PY' || fail "see above (DOM: $work/dom.html, net log: $work/net-log.json, console: $work/chromium.log)"
import html
import json
import re
import sys
from urllib.parse import urlsplit

work, port, document = sys.argv[1:]
origin = f"http://127.0.0.1:{port}"
dom = open(f"{work}/dom.html", encoding="utf-8").read()
doc = json.load(open(document, encoding="utf-8"))
problems = []

# Redoc rendered the document (the page's callback marks the body either way).
if 'data-redoc="ready"' not in dom:
    error = re.search(r'id="error"[^>]*>([^<]*)<', dom)
    sys.exit(f"docs-check: Redoc did not render the document: {error.group(1) if error else 'no data-redoc mark'}")

# Every operation, by its operationId: Redoc gives each one a section `operation/<operationId>`.
documented = [
    op.get("operationId", f"{method} {path}")
    for path, item in doc["paths"].items()
    for method, op in item.items()
    if method in ("get", "put", "post", "delete", "patch", "options", "head", "trace")
]
rendered = re.findall(r'data-section-id="operation/([^"]+)"', dom)
if sorted(rendered) != sorted(documented):
    missing = sorted(set(documented) - set(rendered))
    extra = sorted(set(rendered) - set(documented))
    problems.append(
        f"Redoc rendered {len(rendered)} operations, the document has {len(documented)} "
        f"(missing: {missing}, not documented: {extra})"
    )

# Known text, and Markdown rendered: a description's `code span` is a <code> element.
for needle in ("/v1/keys", "keys:write", "Idempotency-Key", "application/problem+json"):
    if needle not in dom:
        problems.append(f"the page lacks {needle}")
def code_spans(text):
    return re.findall(r"`([^`\n]+)`", text or "")
operation_descriptions = [
    op.get("description") for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)
]
spans = code_spans(doc["info"].get("description"))[:1] + [s for d in operation_descriptions for s in code_spans(d)][:1]
if not spans:
    problems.append("no description has a code span to check Markdown rendering with")
for span in spans:
    if f"<code>{html.escape(span, quote=False)}</code>" not in dom:
        problems.append(f"the Markdown code span `{span}` is not rendered as <code>")

# What the page made the browser fetch (requests of the page's network isolation key or initiated by
# it); Chromium's own background requests, blocked by the resolver rules anyway, are left out.
try:
    text = open(f"{work}/net-log.json", encoding="utf-8").read()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # not closed properly: Chromium ends it with `]}`
        log = json.loads(text.rstrip().rstrip(",") + "]}")
except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"docs-check: the net log cannot be read: {e}")
start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
page, background = [], 0
for event in log["events"]:
    params = event.get("params") or {}
    if event["type"] != start or "url" not in params:
        continue
    top_site = (params.get("network_isolation_key") or "").split(" ")[0]
    if top_site == "http://127.0.0.1" or params.get("initiator") == origin:
        page.append(params["url"])
    else:
        background += 1
elsewhere = sorted({u for u in page if urlsplit(u).netloc != f"127.0.0.1:{port}"})
if elsewhere:
    problems.append(f"the page requested URLs of other hosts: {elsewhere}")
for needed in ("/docs", "/v1/openapi.json"):
    if f"{origin}{needed}" not in page:
        problems.append(f"the page did not load {needed} from the stack")
bundles = [u for u in page if re.fullmatch(re.escape(origin) + r"/docs/redoc-[0-9.]+\.standalone\.js", u)]
if not bundles:
    problems.append(f"the page did not load Redoc from the stack (it requested {sorted(set(page))})")

# Nor does the DOM point a load (not a link) at another host.
loads = re.findall(r'\b(?:src|srcset|poster|data)="(https?://[^"]*)"|<link\b[^>]*\bhref="(https?://[^"]*)"|url\((?:&quot;|["\'])?(https?://[^)"\'&]*)', dom)
foreign = sorted({u for group in loads for u in group if u and not u.startswith(origin + "/")})
if foreign:
    problems.append(f"the DOM loads from other hosts: {foreign}")

# The page's Content-Security-Policy blocks only what is expected (Redoc's remote sidebar logo).
console = open(f"{work}/chromium.log", encoding="utf-8", errors="replace").read()
blocked = [
    line.strip()
    for line in console.splitlines()
    if "Content Security Policy" in line and "'https://cdn.redoc.ly/redoc/logo-mini.svg'" not in line
]
if blocked:
    problems.append(f"the page's Content-Security-Policy blocked something else: {blocked}")

for p in problems:
    print(f"docs-check: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(
    f"docs-check: Redoc renders all {len(documented)} operations from {len(set(page))} same-origin requests "
    f"({background} of Chromium's own background requests ignored)"
)
PY
echo "docs-check: /docs renders offline (screenshot: $work/docs.png)"
