#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis generates requests from the checked-in OpenAPI document
# (functions/api/openapi.json) and sends them through the local stack (gateway → authorizer → API
# on moto), once as a tenant holding every tenant scope and once as the deployment admin. It fails on
# any 5xx and on any response that the document does not describe (status, content type, schema).
set -euo pipefail
cd "$(dirname "$0")/../.."

st=".tributary/tools/schemathesis/bin/schemathesis"
[ -x "$st" ] || { echo "fuzz-api: $st missing: run make tools" >&2; exit 1; }
budget="${FUZZ_SECONDS:-45}"

CHECK_NAME=fuzz-api
# shellcheck source=infra/local/stack.sh
. infra/local/stack.sh
start_stack
api="$TRIBUTARY_API_URL"
admin="Authorization: Bearer $TRIBUTARY_ADMIN_KEY"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

tenant=$(curl -fs -H "$admin" -H 'content-type: application/json' \
  -d '{"name":"fuzz","rate_limit_per_minute":100000}' "$api/v1/tenants" | json id)
scopes=$(python3 -c 'import json; print(json.dumps(["connections:read","connections:write","syncs:read","syncs:write","records:read","actions:execute","proxy","webhooks:read","webhooks:write","keys:read","keys:write"]))')
key=$(curl -fs -H "$admin" -H 'content-type: application/json' \
  -d "{\"name\":\"fuzz\",\"scopes\":$scopes}" "$api/v1/tenants/$tenant/keys" | json secret)

run() {
  local who=$1 credential=$2
  echo "== schemathesis as $who (${budget} s)"
  "$st" --no-color run functions/api/openapi.json --url "$api" \
    -H "Authorization: Bearer $credential" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-time "$budget" --workers 1 \
    --suppress-health-check too_slow,filter_too_much --warnings off \
    --seed 20261124
}
run tenant "$key"
run admin "$TRIBUTARY_ADMIN_KEY"
echo "fuzz-api: no 5xx and no undocumented response"
