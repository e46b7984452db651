#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis generates requests from the checked-in OpenAPI document
# (functions/api/openapi.json) and sends them through the local stack (gateway → authorizer → API on
# moto), once as a tenant holding every tenant scope and once as the deployment admin, each on the
# operations that credential can succeed on (the others can only answer 403). Phases: examples,
# coverage, fuzzing and stateful (create → get → delete sequences, linked through the `Location`
# headers of creations); configuration in infra/local/schemathesis.toml.
#
# A run fails on any 5xx, on any response the document does not describe (status, content type,
# headers, schema), on any schemathesis warning (every request refused, every id route 404, valid
# data refused), and when an operation answers 2xx to under FUZZ_MIN_2XX_SHARE of the valid requests
# it was sent (a run where nothing succeeds proves nothing). Before that, a short run with a garbage
# credential must fail, which proves the gate is alive. Reports and schemathesis' working files go
# to a temporary directory, never into the workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# The helpers and the hooks file would leave __pycache__/ beside them.
export PYTHONDONTWRITEBYTECODE=1

st="$root/.tributary/tools/schemathesis/bin/schemathesis"
[ -x "$st" ] || { echo "fuzz-api: $st missing: run make tools" >&2; exit 1; }
# Per credential, all phases; up to 5 minutes of a 2-core machine (moto serves one DynamoDB request
# at a time, below).
budget="${FUZZ_SECONDS:-300}"
# The admin has a handful of operations (tenants and their keys): a shorter run covers them.
admin_budget="${FUZZ_ADMIN_SECONDS:-180}"
# The lowest share seen in passing runs is about 20% (issuer registrations, which conflict when
# generated issuer/audience pairs repeat; lists, whose generated cursors are refused): 10% leaves
# room for the seed's luck, and a broken run (every request 401/403/404) scores 0%.
min_share="${FUZZ_MIN_2XX_SHARE:-0.10}"
helper=(python3 "$root/infra/local/fuzz_api.py")

CHECK_NAME=fuzz-api
# Local providers (infra/local/connect/providers.py) behind the deployment-only ProviderOrigins, so
# that connections can be made and verified: the seeds below give the hooks real objects to use.
seeds_dir=$(mktemp -d)
stripe_key="sk_test_fuzz$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
python3 "$root/infra/local/connect/providers.py" "$seeds_dir/port" "$seeds_dir/secrets.txt" \
  fuzz-client fuzz-secret "$stripe_key" >"$seeds_dir/providers.log" 2>&1 &
providers_pid=$!
for _ in $(seq 1 50); do [ -s "$seeds_dir/port" ] && break; sleep 0.1; done
[ -s "$seeds_dir/port" ] || { echo "fuzz-api: the local providers did not start" >&2; exit 1; }
provider="http://127.0.0.1:$(cat "$seeds_dir/port")"
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
# Schedules every 5 s: the seeds' events become webhook messages (the monitor's outbox dispatch) in
# time to be fuzzed. moto one request at a time: under the background traffic of dispatches and
# deliveries, its threaded server fails transactions with 500s (a table copied while another
# request writes it) that AWS never gives.
start_stack --parameter "ProviderOrigins=airtable=$provider,stripe=$provider" --schedule-every 5s --serialized-moto
trap 'kill "$providers_pid" 2>/dev/null || true; kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true' EXIT
api="$TRIBUTARY_API_URL"
admin="Authorization: Bearer $TRIBUTARY_ADMIN_KEY"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

tenant_scopes="integrations:read,integrations:write,connections:read,connections:write,syncs:read,syncs:write,records:read,actions:execute,proxy,webhooks:read,webhooks:write,operations:read,keys:read,keys:write"
tenant=$(curl -fs -H "$admin" -H 'content-type: application/json' \
  -d '{"name":"fuzz","rate_limit_per_minute":100000}' "$api/v1/tenants" | json id)
scopes=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$tenant_scopes")
key=$(curl -fs -H "$admin" -H 'content-type: application/json' \
  -d "{\"name\":\"fuzz\",\"scopes\":$scopes}" "$api/v1/tenants/$tenant/keys" | json secret)

# Seeds for the hooks (infra/local/fuzz_hooks.py): an integration of the local Stripe, connections
# through it, and connect links, made with a key of their own (the fuzzed key holds no
# integrations:* scope). Valid (positive) cases get these ids, the key and the return URL, and what
# a case uses up (a deletion, a form, an OAuth return) gets an object of its own; invalid ones are
# sent as generated.
seeder=$(curl -fs -H "$admin" -H 'content-type: application/json' \
  -d '{"name":"seeder","scopes":["integrations:write","connections:write","connections:read","syncs:write","syncs:read","records:read","actions:execute","webhooks:read","webhooks:write","operations:read"]}' \
  "$api/v1/tenants/$tenant/keys" | json secret)
python3 - "$api" "$seeder" "$provider" "$stripe_key" "$seeds_dir/seeds.json" <<'PY' || fail "seeding failed"
import json, sys, urllib.request
api, key, provider, stripe_key, out = sys.argv[1:]
def call(method, path, body, headers=None):
    req = urllib.request.Request(api + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json",
                                          **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
done = f"{provider}/app/done"
hooks = f"{provider}/app/hooks"
# Webhook endpoints first (the local receiver answers 204), so the connections' creations below are
# events that become messages.
# Only the first receives messages: every delivery is a transaction, and moto copies the whole table
# for each, so the others (changed and rotated by the fuzzing) stay disabled.
endpoints = [call("POST", "/v1/webhook-endpoints", {"url": hooks, "event_types": ["connection.created"],
                                                    "enabled": i == 0})["id"]
             for i in range(3)]
integration = call("POST", "/v1/integrations", {"provider": "stripe", "return_urls": [done]})["id"]
oauth = call("POST", "/v1/integrations", {"provider": "airtable", "oauth_client_id": "fuzz-client",
             "oauth_client_secret": "fuzz-secret", "return_urls": [done]})["id"]
connections = [
    call("POST", "/v1/connections", {"integration_id": integration, "end_user_id": f"seed-{i}",
         "credentials": {"api_key": stripe_key}})["id"]
    for i in range(20)
]
tokens = [
    call("POST", "/v1/connect/sessions", {"end_user_id": f"seed-{i}", "integration_ids": [integration, oauth],
         "return_url": done})["token"]
    for i in range(20)
]
# A sync of the first connection's customers, run once, so that its records can be read.
sync = call("POST", "/v1/syncs", {"connection_id": connections[0], "stream": "customers", "model": "customers",
            "frequency": {"every_seconds": 86400}})["id"]
run = call("POST", f"/v1/syncs/{sync}/runs", {})["id"]
import time
for _ in range(120):
    state = call("GET", f"/v1/syncs/{sync}/runs/{run}", None)["state"]
    if state in ("succeeded", "failed", "cancelled", "stalled"):
        break
    time.sleep(0.5)
if state != "succeeded":
    sys.exit(f"the seeded sync run ended {state}")
records = [r["id"] for r in call("GET", f"/v1/records?connection_id={connections[0]}&model=customers", None)["records"]]
# A Notion integration whose subscription's (unsigned) verification request left a token pending.
notion = call("POST", "/v1/integrations", {"provider": "notion", "auth_mode": "api_key"})["id"]
urllib.request.urlopen(urllib.request.Request(f"{api}/v1/webhooks/{notion}", method="POST",
                       data=json.dumps({"verification_token": "secret_fuzzNotionVerification"}).encode(),
                       headers={"content-type": "application/json"}), timeout=30).read()
# Action runs (queued, then run by the connector) and the webhook messages the connections'
# creations made, delivered to the local receiver.
action_runs = [call("POST", f"/v1/connections/{connections[0]}/actions/create_customer",
                    {"email": f"seed{i}@example.com"}, {"prefer": "respond-async"})["id"] for i in range(3)]
messages = []
for _ in range(120):
    page = call("GET", f"/v1/webhook-messages?endpoint_id={endpoints[0]}&state=succeeded&limit=100", None)
    messages = [m["id"] for m in page["data"]]
    if len(messages) >= 5:
        break
    time.sleep(0.5)
if len(messages) < 5:
    sys.exit(f"only {len(messages)} webhook messages were delivered")
# Operations of the log (the seeding above made connections, a sync run, actions and deliveries).
operations = [o["id"] for o in call("GET", "/v1/operations?limit=20", None)["data"]]
if not operations:
    sys.exit("the seeding left no operation in the log")
json.dump({"api": api, "key": key, "integration_id": integration, "oauth_integration_id": oauth,
           "operation_ids": operations,
           "connection_ids": connections, "tokens": tokens, "stripe_key": stripe_key, "return_url": done,
           "synced_connection_id": connections[0], "record_ids": records, "hooks_url": hooks,
           "endpoint_ids": endpoints, "message_ids": messages, "action_run_ids": action_runs,
           "notion_integration_id": notion},
          open(out, "w"))
PY
export FUZZ_SEEDS="$seeds_dir/seeds.json"

# The checked-in document itself: it states every constraint the API enforces (unique operation
# ids, the Idempotency-Key schema, grantable scopes, https issuer URLs, creation links), which the
# API's openapi tests hold it to.
document="$root/functions/api/openapi.json"

# run NAME CREDENTIAL SCOPES SECONDS [schemathesis options…]: one schemathesis run and the 2xx check.
run() {
  local who=$1 credential=$2 held=$3 seconds=$4
  shift 4
  local dir="$stack_work/$who" excluded=() op
  mkdir -p "$dir"
  while IFS= read -r op; do
    excluded+=("$op")
  done < <("${helper[@]}" operations "$document" --not-held-by "$held")
  local filters=() checks=()
  for op in "${excluded[@]}"; do
    filters+=(--exclude-name "$op")
    checks+=(--exclude "$op")
  done
  # Not fuzzed: the local providers have no PUT or PATCH endpoint (Stripe's API has none), so a
  # proxied one could only come back refused. The handler is the one POST, GET and DELETE share
  # (functions/api/src/routes/proxy.rs), fuzzed through those.
  for op in "PUT /v1/proxy/{proxy_path}" "PATCH /v1/proxy/{proxy_path}"; do
    [[ " ${excluded[*]} " == *" $op "* ]] && continue
    filters+=(--exclude-name "$op")
    checks+=(--exclude "$op")
  done
  # Nor a provider's webhook: only a provider's signature over the exact bytes is accepted, and the
  # generator cannot sign (the route's acceptance is tested in the API's and the e2e tests).
  checks+=(--exclude "POST /v1/webhooks/{integration_id}")
  echo "== schemathesis as $who (${seconds} s; ${#excluded[@]} operations it cannot succeed on left out)"
  local status=0
  # schemathesis writes .hypothesis/ and .schemathesis/ into its working directory.
  (cd "$dir" && SCHEMATHESIS_HOOKS="$root/infra/local/fuzz_hooks.py" \
    "$st" --config-file "$root/infra/local/schemathesis.toml" --no-color run "$document" --url "$api" \
      -H "Authorization: Bearer $credential" --max-time "$seconds" "${filters[@]}" \
      --report ndjson --report-ndjson-path "$dir/events.ndjson" "$@") || status=$?
  echo "== 2xx share of the valid requests per operation, as $who (at least ${min_share})"
  "${helper[@]}" check "$dir/events.ndjson" --document "$document" --min-share "$min_share" \
    "${checks[@]}" || status=$?
  return "$status"
}

# The gate itself: a credential the authorizer denies must fail the run.
if run garbage "trb_live_garbage_$RANDOM" "$tenant_scopes" 20 --phases examples,coverage >"$stack_work/garbage.log" 2>&1; then
  cat "$stack_work/garbage.log" >&2
  fail "a run where every authenticated request is refused passed: the checks prove nothing"
fi
echo "== a garbage credential fails the run, as it must"

run tenant "$key" "$tenant_scopes" "$budget" || fail "the tenant run failed"
run admin "$TRIBUTARY_ADMIN_KEY" admin "$admin_budget" || fail "the admin run failed"
echo "fuzz-api: no 5xx, no undocumented response, no warning, every operation mostly served"
