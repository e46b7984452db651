#!/usr/bin/env bash
# The connect flow in headless Chromium through the local stack, as an end user goes through it: a
# tenant configures Airtable (OAuth with PKCE) and Stripe (an API key) against local providers
# (infra/local/connect/providers.py, reached through the deployment-only ProviderOrigins parameter),
# creates connect sessions, and the browser (playwright-core, pinned, driving Debian's chromium)
# connects both; the connections must then be `active` through the API. Finally every line the
# functions logged during the run is scanned for the credentials the run used (client secret, API
# keys, access and refresh tokens, the admin and tenant keys): none may appear.
# Installs Debian's chromium when missing; writes the page's phone screenshot to docs/connect-page.png
# when CONNECT_SCREENSHOT_OUT says so (README's screenshot is made that way).
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECK_NAME=connect-check
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
ensure_chromium
driver=.tributary/connect-check
pins=infra/local/connect
install_driver "$driver" drive.mjs

work=$(mktemp -d)
client_id="local-airtable-client"
client_secret="cs-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
stripe_key="sk_test_$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
printf '%s\n%s\n%s\n' "$client_secret" "$stripe_key" "sk_test_wrong000" >"$work/secrets.txt"
python3 "$pins/providers.py" "$work/port" "$work/secrets.txt" "$client_id" "$client_secret" "$stripe_key" \
  >"$work/providers.log" 2>&1 &
providers_pid=$!
for _ in $(seq 1 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "connect-check: the local providers did not start" >&2; cat "$work/providers.log" >&2; exit 1; }
provider="http://127.0.0.1:$(cat "$work/port")"

start_stack --parameter "ProviderOrigins=airtable=$provider,stripe=$provider"
trap 'kill "$providers_pid" 2>/dev/null || true; kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true' EXIT

# The tenant's side, through the API: a tenant, its key, two integrations, two connect sessions.
python3 - "$work" "$provider" "$client_id" "$client_secret" <<'PY' || fail "setting up the tenant failed"
import json, os, sys, urllib.request
work, provider, client_id, client_secret = sys.argv[1:]
api, admin = os.environ["TRIBUTARY_API_URL"], os.environ["TRIBUTARY_ADMIN_KEY"]
def call(method, path, body, key):
    req = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
tenant = call("POST", "/v1/tenants", {"name": "Connect check"}, admin)
key = call("POST", f"/v1/tenants/{tenant['id']}/keys",
           {"name": "check", "scopes": ["integrations:write", "connections:write", "connections:read"]}, admin)["secret"]
done = f"{provider}/app/done"
airtable = call("POST", "/v1/integrations", {"provider": "airtable", "oauth_client_id": client_id,
               "oauth_client_secret": client_secret, "scopes": ["data.records:read", "schema.bases:read"],
               "return_urls": [done]}, key)
stripe = call("POST", "/v1/integrations", {"provider": "stripe", "return_urls": [done]}, key)
oauth = call("POST", "/v1/connect/sessions", {"end_user_id": "user-1", "integration_ids": [airtable["id"]], "return_url": done}, key)
keyed = call("POST", "/v1/connect/sessions", {"end_user_id": "user-2", "integration_ids": [stripe["id"]], "return_url": done}, key)
with open(f"{work}/secrets.txt", "a") as f:
    f.write(f"{key}\n{admin}\n{oauth['token']}\n{keyed['token']}\n")
json.dump({"key": key, "oauth": oauth["connect_url"], "keyed": keyed["connect_url"]}, open(f"{work}/setup.json", "w"))
PY

screenshot="$work/connect-page.png"
CONNECT_OAUTH_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["oauth"])' "$work/setup.json") \
CONNECT_KEY_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keyed"])' "$work/setup.json") \
STRIPE_KEY="$stripe_key" BASE_ID="appLOCALBASE00001" SCREENSHOT="$screenshot" \
  node "$driver/drive.mjs" >"$work/browser.json" 2>"$work/browser.log" ||
  fail "the browser run failed: $(tail -20 "$work/browser.log")"

python3 - "$work" <<'PY' || fail "see above (browser: $work/browser.json)"
import json, os, sys, urllib.request
work = sys.argv[1]
api = os.environ["TRIBUTARY_API_URL"]
got = json.load(open(f"{work}/browser.json"))
key = json.load(open(f"{work}/setup.json"))["key"]
problems = []
if got.get("title") != "Connect an account":
    problems.append(f"the connect page's title is {got.get('title')!r}")
if not got.get("invalidBlocked"):
    problems.append("the browser submitted a base id that does not match the spec's pattern")
if not (got.get("refusedShown")):
    problems.append("a refused API key did not bring the form back with the provider's refusal")
for path, outcome in (("OAuth", got.get("oauth")), ("API key", got.get("key"))):
    if not outcome or outcome.get("status") != "connected" or not outcome.get("connection", "").startswith("conn_"):
        problems.append(f"the {path} path did not land on the return URL connected: {outcome}")
        continue
    req = urllib.request.Request(f"{api}/v1/connections/{outcome['connection']}", headers={"authorization": f"Bearer {key}"})
    connection = json.load(urllib.request.urlopen(req, timeout=30))
    if connection.get("status") != "active":
        problems.append(f"the {path} connection is {connection.get('status')!r}, not active")
if got.get("consoleErrors"):
    problems.append(f"the pages logged errors: {got['consoleErrors']}")
for p in problems:
    print(f"connect-check: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# No credential value in anything the functions logged.
logged=$(find "$TRIBUTARY_LOG_DIR" -type f | wc -l)
[ "$logged" -gt 0 ] || fail "the functions logged nothing to scan in $TRIBUTARY_LOG_DIR"
grep -rqF "connected through a connect session" "$TRIBUTARY_LOG_DIR" ||
  fail "the logs lack the connect flow's own lines: the scan would prove nothing"
secrets=$(grep -c . "$work/secrets.txt")
if grep -rlF -f "$work/secrets.txt" "$TRIBUTARY_LOG_DIR" >"$work/leaks.txt"; then
  fail "credentials appear in the functions' logs: $(cat "$work/leaks.txt")"
fi
if [ -n "${CONNECT_SCREENSHOT_OUT:-}" ]; then
  cp "$screenshot" "$CONNECT_SCREENSHOT_OUT"
fi
echo "connect-check: OAuth (PKCE) and API-key connections made in Chromium are active; $secrets credential values absent from $logged function log files"
