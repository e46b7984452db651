#!/usr/bin/env bash
# The tenant dashboard in headless Chromium through the local stack, checked against the API: a tenant
# connects the local Stripe (infra/local/connect/providers.py, reached through the deployment-only
# ProviderOrigins parameter) with an API key, syncs its customers once, reads what the API reports
# (the run's operation, today's usage, insights) and makes a dashboard link. The browser
# (playwright-core, pinned by infra/local/connect/package-lock.json, driving Debian's chromium) opens
# the link on a phone-sized screen, goes through every view and the run's operation; the numbers it
# shows must be the API's, the link must work once, and the dashboard must show nothing without its
# cookie. Finally every line the functions logged is scanned for the credentials the run used (the
# Stripe key, the admin and tenant keys, the link and the session cookie): none may appear.
# Installs Debian's chromium when missing. Screenshots go to DASHBOARD_SCREENSHOT_DIR (default: a
# temporary directory); when DASHBOARD_SCREENSHOT_OUT is set, the overview's and usage's are also
# written to docs/dashboard-overview.png and docs/dashboard-usage.png (to the directory it names, when
# it names one) for the README.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECK_NAME=dashboard-check
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
ensure_chromium
# Its own copy of the pinned driver: connect-check replaces its copy when the pins change, and the
# two may run at once.
driver=.tributary/dashboard-check
pins=infra/local/connect
install_driver "$driver" dashboard.mjs

work=$(mktemp -d)
shots="${DASHBOARD_SCREENSHOT_DIR:-$work/screenshots}"
mkdir -p "$shots"
stripe_key="sk_test_$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
printf '%s\n' "$stripe_key" >"$work/secrets.txt"
# The local providers serve Airtable too; its client is not used here.
python3 "$pins/providers.py" "$work/port" "$work/secrets.txt" "unused-client" "unused-$RANDOM" "$stripe_key" \
  >"$work/providers.log" 2>&1 &
providers_pid=$!
for _ in $(seq 1 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "dashboard-check: the local providers did not start" >&2; cat "$work/providers.log" >&2; exit 1; }
provider="http://127.0.0.1:$(cat "$work/port")"

start_stack --parameter "ProviderOrigins=stripe=$provider"
trap 'kill "$providers_pid" 2>/dev/null || true; kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true' EXIT

# The tenant's side, through the API: a Stripe connection, one sync run to its end, what the API
# reports about it, and a dashboard link. The end user's id has markup in it, the tenant's name an
# ampersand: the page must show both as text.
python3 - "$work" "$stripe_key" <<'PY' || fail "setting up through the API failed (see above)"
import datetime, json, os, sys, time, urllib.error, urllib.parse, urllib.request
work, stripe_key = sys.argv[1:]
api, admin = os.environ["TRIBUTARY_API_URL"], os.environ["TRIBUTARY_ADMIN_KEY"]
def call(method, path, body, key):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"dashboard-check: {method} {path} answered {e.code}: {e.read().decode(errors='replace')[:500]}")
def until(what, probe, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            sys.exit(f"dashboard-check: {what} within {seconds} s")
        time.sleep(0.5)

tenant_name = "Acme & Co."
end_user = "<b>jane</b> \"o'brien\""
tenant = call("POST", "/v1/tenants", {"name": tenant_name}, admin)
key = call("POST", f"/v1/tenants/{tenant['id']}/keys",
           {"name": "dashboard-check", "scopes": ["integrations:write", "connections:write", "connections:read",
                                                  "syncs:write", "syncs:read", "operations:read"]}, admin)["secret"]
with open(f"{work}/secrets.txt", "a") as f:
    f.write(f"{key}\n{admin}\n")
integration = call("POST", "/v1/integrations", {"provider": "stripe"}, key)["id"]
connection = call("POST", "/v1/connections", {"integration_id": integration, "end_user_id": end_user,
                  "credentials": {"api_key": stripe_key}}, key)["id"]
sync = call("POST", "/v1/syncs", {"connection_id": connection, "stream": "customers", "model": "customers",
            "frequency": {"every_seconds": 86400}}, key)["id"]
run = call("POST", f"/v1/syncs/{sync}/runs", {}, key)["id"]
def run_ended():
    state = call("GET", f"/v1/syncs/{sync}/runs/{run}", None, key)["state"]
    return state if state in ("succeeded", "failed", "cancelled", "stalled") else None
state = until("the sync run did not end", run_ended)
if state != "succeeded":
    sys.exit(f"dashboard-check: the sync run ended {state}")

# The run's operations (one per invocation), once written (after the run's own state).
def run_operations():
    page = call("GET", "/v1/operations?type=sync_run", None, key)
    ops = [op for op in page.get("data", []) if op.get("subject") == run]
    return ops if ops and all(op.get("state") == "succeeded" for op in ops) else None
operations = until("the sync run's operation was not listed by GET /v1/operations?type=sync_run", run_operations)

today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
COUNTERS = ("records_added", "records_updated", "records_deleted", "provider_requests", "api_calls",
            "action_runs", "proxy_calls", "webhook_deliveries", "webhook_failures", "inbound_webhooks", "compute_ms")
def usage_totals(doc):
    """The counters of a usage answer: its `totals`."""
    totals = doc.get("totals")
    if not isinstance(totals, dict) or any(not isinstance(totals.get(c), int) for c in COUNTERS):
        sys.exit(f"dashboard-check: the usage answer has no totals of {COUNTERS}: {json.dumps(doc)[:500]}")
    return totals
written = sum(op["counts"][c] for op in operations for c in ("records_added", "records_updated", "records_deleted"))
def usage_counted():
    doc = call("GET", f"/v1/usage?from={today}&to={today}&group_by=day", None, key)
    total = usage_totals(doc)
    got = total["records_added"] + total["records_updated"] + total["records_deleted"]
    return (doc, total) if got >= written else None
usage_doc, usage = until("today's usage did not count the run's records", usage_counted, 30)
insights = call("GET", "/v1/insights", None, key)
session = call("POST", "/v1/dashboard/sessions", {}, key)
if "/dashboard/dsl_" not in session.get("url", "") or "expires_at" not in session:
    sys.exit(f"dashboard-check: the dashboard session is not a /dashboard/dsl_… link with expires_at: {session}")
session["url"] = urllib.parse.urljoin(api + "/", session["url"])
with open(f"{work}/secrets.txt", "a") as f:
    f.write(session["url"].rsplit("/", 1)[1] + "\n")
json.dump({"key": key, "tenant_name": tenant_name, "end_user": end_user, "integration": integration, "connection": connection,
           "sync": sync, "run": run, "operations": operations, "today": today, "usage": usage,
           "usage_answer": usage_doc, "insights": insights, "session": session},
          open(f"{work}/api.json", "w"), indent=1)
PY

DASHBOARD_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session"]["url"])' "$work/api.json") \
OPERATION_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["operations"][0]["id"])' "$work/api.json") \
TENANT_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$work/api.json") \
STRIPE_KEY="$stripe_key" SCREENSHOT_DIR="$shots" SECRETS_FILE="$work/secrets.txt" \
  node "$driver/dashboard.mjs" >"$work/browser.json" 2>"$work/browser.log" ||
  fail "the browser run failed: $(tail -20 "$work/browser.log")"

python3 - "$work" <<'PY' || fail "see above (browser: $work/browser.json, API: $work/api.json, screenshots: $shots)"
import json, sys
from urllib.parse import urlsplit
work = sys.argv[1]
got = json.load(open(f"{work}/browser.json"))
api = json.load(open(f"{work}/api.json"))
problems = []
def expect(ok, message):
    if not ok:
        problems.append(message)

# The link became a cookie: no token in the URL, an HttpOnly cookie, the page's own headers.
opened = got.get("open", {})
expect(opened.get("path") == "/dashboard", f"the link landed on {opened.get('path')!r}, not /dashboard")
expect(not opened.get("tokenInUrl"), "the dashboard's URL still holds a dsl_/dsc_ token")
expect(opened.get("status") == 200, f"the dashboard answered {opened.get('status')} after the link")
expect(opened.get("redirects") and all(300 <= s < 400 for s in opened["redirects"]),
       f"opening the link was not a redirect: {opened.get('redirects')}")
csp = opened.get("csp") or ""
for part in ("default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"):
    expect(part in csp, f"the dashboard's Content-Security-Policy lacks {part}: {csp!r}")
expect("no-store" in (opened.get("cacheControl") or ""), f"the dashboard may be cached: {opened.get('cacheControl')!r}")
sessions = [c for c in got.get("cookies", []) if c.get("session")]
expect(len(sessions) == 1, f"expected one dsc_ session cookie, the browser holds {got.get('cookies')}")
for c in sessions:
    expect(c.get("httpOnly"), f"the session cookie {c['name']} is not HttpOnly")
    expect(c.get("sameSite") in ("Strict", "Lax"), f"the session cookie {c['name']} is SameSite={c.get('sameSite')}")

# Every view: the tenant's name as text, its link marked current, nothing that scrolls the page
# sideways on a phone, no script, no secret, no token.
views = got.get("views", {})
labels = {"overview": "Overview", "runs": "Runs", "failures": "Failures", "usage": "Usage", "insights": "Insights"}
for view, label in labels.items():
    seen = views.get(view)
    if not seen:
        problems.append(f"the {view} view was not visited")
        continue
    expect(seen.get("status") == 200, f"{view}: answered {seen.get('status')}")
    expect(seen.get("query") == f"?view={view}", f"{view}: the navigation led to {seen.get('query')!r}")
    expect(seen.get("h1") == api["tenant_name"], f"{view}: the heading is {seen.get('h1')!r}, not the tenant's name as text")
    expect(seen.get("h1Elements") == 0, f"{view}: the tenant's name became markup")
    expect(seen.get("current") == label, f"{view}: the navigation marks {seen.get('current')!r} as current")
    expect(not seen.get("overflowsSideways"), f"{view}: the page scrolls sideways on a 390 px screen")
    expect(seen.get("scripts") == 0, f"{view}: the page has {seen.get('scripts')} script elements")
    expect(not seen.get("secretShown"), f"{view}: the page shows the Stripe key or the tenant's key")
    expect(not seen.get("tokenShown"), f"{view}: the page shows a dsl_/dsc_ token")

def num(text):
    """A number as the page shows it; the page writes them plainly (no separators)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return None

# Runs: each of the run's operations, with the API's records written and requests.
runs = views.get("runs", {}).get("runs") or []
for op in api["operations"]:
    rows = [r for r in runs if f"?operation={op['id']}" in r.get("_links", [])]
    if len(rows) != 1:
        problems.append(f"runs: {len(rows)} rows link to the operation {op['id']}")
        continue
    row, c = rows[0], op["counts"]
    expect(num(row.get("Records written")) == c["records_added"] + c["records_updated"] + c["records_deleted"],
           f"runs: records written {row.get('Records written')!r}, the API says {c}")
    expect(num(row.get("Requests")) == c["requests"], f"runs: requests {row.get('Requests')!r}, the API says {c['requests']}")
    expect(row.get("Type") == "sync_run" and row.get("Name") == "customers" and row.get("State") == "succeeded",
           f"runs: the row reads {row}")
    expect(row.get("Provider") == "stripe", f"runs: provider {row.get('Provider')!r}")

# Overview: the connection is active, its integration counts it, the run is among the latest.
overview = views.get("overview", {})
conns = [r for r in overview.get("connections") or [] if r.get("Connection") == api["connection"]]
expect(len(conns) == 1 and conns[0].get("Health") == "active",
       f"overview: the connection {api['connection']} is not listed as active: {overview.get('connections')}")
expect(len(conns) == 1 and conns[0].get("End user") == api["end_user"],
       f"overview: the end user's id is not shown as text: {conns[0].get('End user') if conns else None!r}")
ints = [r for r in overview.get("integrations") or [] if r.get("Integration") == api["integration"]]
expect(len(ints) == 1 and num(ints[0].get("Active")) == 1,
       f"overview: the integration {api['integration']} does not count one active connection: {overview.get('integrations')}")
expect(any(f"?operation={api['operations'][0]['id']}" in r.get("_links", []) for r in overview.get("latest") or []),
       "overview: the run's operation is not among the latest")

# Failures: none happened.
failures = views.get("failures", {})
expect(failures.get("failures") is None and "No operation failed" in (failures.get("main") or ""),
       f"failures: expected none, the page shows {failures.get('failures')}")

# Usage: the totals and today's row are the usage API's (a new tenant: today is its whole history).
usage, seen = api["usage"], views.get("usage", {})
records = usage["records_added"] + usage["records_updated"] + usage["records_deleted"]
totals = seen.get("totals") or {}
expect(num(totals.get("records")) == records, f"usage: #total-records {totals.get('records')!r}, the API says {records}")
expect(num(totals.get("provider-requests")) == usage["provider_requests"],
       f"usage: #total-provider-requests {totals.get('provider-requests')!r}, the API says {usage['provider_requests']}")
expect(records > 0 and usage["provider_requests"] > 0, f"usage: the API counted nothing to compare: {usage}")
for name in ("api-calls", "action-runs", "proxy-calls", "webhook-deliveries", "webhook-failures"):
    expect(num(totals.get(name)) is not None, f"usage: #total-{name} is {totals.get(name)!r}, not a number")
tables = seen.get("tables") or {}
for name, rows in tables.items():
    expect(rows is not None and len(rows) == 30, f"usage: table-{name} has {len(rows or [])} days, not 30")
today_rows = [r for r in tables.get("records") or [] if r.get("Day") == api["today"]]
expect(len(today_rows) == 1 and num(today_rows[0].get("Total")) == records,
       f"usage: today's row of table-records is {today_rows}, the API says {records} written")
today_rows = [r for r in tables.get("provider-requests") or [] if r.get("Day") == api["today"]]
expect(len(today_rows) == 1 and num(today_rows[0].get("Provider requests")) == usage["provider_requests"],
       f"usage: today's row of table-provider-requests is {today_rows}")
charts = seen.get("charts") or []
expect(len(charts) == 4 and all(c.get("labelled") for c in charts), f"usage: the charts are {charts}")
expect(any(c.get("id") == "chart-records" and c.get("bars", 0) > 0 for c in charts), "usage: the records chart draws no bar")

# Insights: the same lists as the API.
insights, seen = api["insights"], views.get("insights", {})
for key, table in (("slowest_streams", "slowest-streams"), ("deferred_providers", "deferred-providers"),
                   ("failing_syncs", "failing-syncs")):
    if key not in insights:
        problems.append(f"insights: the API's answer has no {key}: {sorted(insights)}")
        continue
    expect(len(seen.get(table) or []) == len(insights[key]),
           f"insights: #{table} has {len(seen.get(table) or [])} rows, the API lists {len(insights[key])}")
expect(seen.get("recommendations") == [r["message"] for r in insights.get("recommendations", [])],
       f"insights: the recommendations shown are {seen.get('recommendations')}")

# The operation's page: its fields, its requests to the local Stripe, no secret.
op, seen = api["operations"][0], got.get("operation", {})
expect(seen.get("status") == 200 and seen.get("query") == f"?operation={op['id']}", f"operation: {seen.get('status')} at {seen.get('query')}")
for value in (op["id"], api["connection"], api["run"], "sync_run", "succeeded"):
    expect(value in (seen.get("fields") or ""), f"operation: the fields lack {value}")
requests = [r for r in seen.get("entries") or [] if r.get("Entry") == "request"]
expect(any(r.get("Method") == "GET" and r.get("Host") == "127.0.0.1" and r.get("Path", "").startswith("/v1/customers")
           for r in requests), f"operation: no GET request to 127.0.0.1/v1/customers among its entries: {seen.get('entries')}")
expect(not seen.get("secretShown") and not seen.get("tokenShown"), "operation: the page shows a secret or a token")
expect({"?view=failures", "?view=runs"} <= set(seen.get("back") or []), f"operation: the links back are {seen.get('back')}")

# Single use, and nothing without the cookie.
replay = got.get("replay", {})
expect(replay.get("status") is not None and 400 <= replay["status"] < 500,
       f"the link opened a second time answered {replay.get('status')}, not a 4xx page")
expect(not replay.get("showsOperation") and replay.get("h1") != api["tenant_name"], "the link opened a second time shows the dashboard")
for bare in got.get("withoutCookie") or []:
    expect(bare.get("status") == 401, f"{bare['path']} without the cookie answered {bare.get('status')}, not 401")
    expect(not bare.get("showsOperation") and not bare.get("showsTenant") and bare.get("tables") == 0,
           f"{bare['path']} without the cookie shows data")
expect(len(got.get("withoutCookie") or []) == 3, "the dashboard was not tried without the cookie")

# Nothing but the stack was asked for anything, and nothing failed in the console (a blocked style
# or asset would be a CSP report there).
origin = urlsplit(api["session"]["url"]).netloc
elsewhere = sorted({u for u in got.get("requests", []) if urlsplit(u).netloc != origin})
expect(not elsewhere, f"the pages requested other hosts: {elsewhere}")
expect(not got.get("consoleErrors"), f"the pages logged errors: {got.get('consoleErrors')}")

for p in problems:
    print(f"dashboard-check: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"dashboard-check: {len(labels)} views and the operation page show the API's numbers "
      f"({records} records written, {usage['provider_requests']} provider requests); the link works once, "
      f"the dashboard shows nothing without its cookie")
PY

# No credential value in anything the functions logged.
logged=$(find "$TRIBUTARY_LOG_DIR" -type f | wc -l)
[ "$logged" -gt 0 ] || fail "the functions logged nothing to scan in $TRIBUTARY_LOG_DIR"
run_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"])' "$work/api.json")
grep -rqF "$run_id" "$TRIBUTARY_LOG_DIR" ||
  fail "the logs lack the sync run ($run_id): the scan would prove nothing"
secrets=$(grep -c . "$work/secrets.txt")
[ "$secrets" -ge 5 ] || fail "only $secrets credential values to scan for (the Stripe key, the admin and tenant keys, the link, the cookie)"
if grep -rlF -f "$work/secrets.txt" "$TRIBUTARY_LOG_DIR" >"$work/leaks.txt"; then
  # Which kinds (their first characters), never the values.
  kinds=$(grep -rhoF -f "$work/secrets.txt" "$TRIBUTARY_LOG_DIR" | cut -c1-4 | sort -u | sed 's/$/…/' | paste -sd' ')
  fail "credentials ($kinds) appear in the functions' logs: $(paste -sd' ' "$work/leaks.txt")"
fi
if [ -n "${DASHBOARD_SCREENSHOT_OUT:-}" ]; then
  out=docs
  [ -d "$DASHBOARD_SCREENSHOT_OUT" ] && out="$DASHBOARD_SCREENSHOT_OUT"
  cp "$shots/dashboard-overview.png" "$out/dashboard-overview.png"
  cp "$shots/dashboard-usage.png" "$out/dashboard-usage.png"
fi
echo "dashboard-check: $secrets credential values absent from $logged function log files (screenshots: $shots)"
