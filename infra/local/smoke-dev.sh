#!/usr/bin/env bash
# Smoke test of the `make dev` path: tributary-local in watch mode (cargo lambda watch runs the
# functions) on free ports, until the health details (read with the admin key, so through the
# authorizer) show a pipeline canary round trip. Then the watcher's scope: files written in the
# workspace outside the functions' packages (a `tributary read > customers.jsonl`, schemathesis'
# `.hypothesis/`) must leave every function process running and requests answered, and a file added
# to a function's package must restart them. Then SIGTERM, and nothing it started may be left running.
# It never touches a running `make dev` (its port or .tributary/local.env), and removes what it wrote.
set -euo pipefail
cd "$(dirname "$0")/../.."

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
work=$(mktemp -d)
env_file="$work/local.env"
log="$work/tributary-local.log"

target/debug/tributary-local --mode watch --port "$port" --schedule-every 3s --quiet \
  --env-file "$env_file" >"$log" 2>&1 &
pid=$!
# Files this script writes into the workspace, removed on any exit.
tag="smoke-dev-$$"
written=("$tag.jsonl" ".hypothesis/$tag" "infra/local/$tag.tmp" "functions/monitor/$tag.probe")
made_hypothesis=false
[ -e .hypothesis ] || made_hypothesis=true
remove_written() {
  rm -rf "${written[@]}"
  if $made_hypothesis; then rmdir .hypothesis 2>/dev/null || true; fi
}
cleanup() { kill -TERM "$pid" 2>/dev/null || true; remove_written; }
trap cleanup EXIT

fail() {
  echo "smoke-dev: $*" >&2
  tail -40 "$log" >&2 || true
  logs=$(sed -n 's/^  Logs *//p' "$log")
  [ -n "$logs" ] && tail -40 "$logs/cargo-lambda-watch.log" >&2 || true
  exit 1
}

start=$SECONDS
until [ -s "$env_file" ]; do
  kill -0 "$pid" 2>/dev/null || fail "tributary-local exited"
  (( SECONDS - start < 120 )) || fail "the stack did not come up within 120 s"
  sleep 1
done
# shellcheck disable=SC1090
. "$env_file"

canary_ok() { python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["canary"]["status"] != "ok")'; }
until curl -fs -m 60 -H "Authorization: Bearer $TRIBUTARY_ADMIN_KEY" "$TRIBUTARY_API_URL/v1/health/details" \
  | canary_ok 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || fail "tributary-local exited"
  (( SECONDS - start < 240 )) || fail "no canary round trip within 240 s"
  sleep 2
done
status=$(curl -s -o /dev/null -w '%{http_code}' -m 60 "$TRIBUTARY_API_URL/v1/me")
[ "$status" = 401 ] || fail "GET /v1/me without a credential answered $status, not 401"
status=$(curl -s -o /dev/null -w '%{http_code}' -m 60 -H "Authorization: Bearer $TRIBUTARY_ADMIN_KEY" "$TRIBUTARY_API_URL/v1/me")
[ "$status" = 200 ] || fail "GET /v1/me with the admin key answered $status, not 200"

# The function processes cargo lambda watch runs for this stack: `binary=pid` lines.
function_pids() {
  local p exe
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in
      */target/debug/tributary-*) grep -qsa "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" "$p/environ" \
        && echo "${exe##*/}=${p#/proc/}" ;;
    esac
  done | sort
}
me_ok() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' -m "$1" -H "Authorization: Bearer $TRIBUTARY_ADMIN_KEY" \
    "$TRIBUTARY_API_URL/v1/me")" = 200 ]
}
before=$(function_pids)
[ "$(wc -l <<<"$before")" -ge 4 ] || fail "expected the 4 function processes to run, found: ${before:-none}"

# Outside the functions' packages: nothing restarts. The watcher acts on changes within 3 s (its
# throttle); requests keep being answered for 12 s, each within 5 s.
echo '{"id":"cus_1"}' >"$tag.jsonl"
mkdir -p ".hypothesis/$tag" && echo x >".hypothesis/$tag/examples"
echo x >"infra/local/$tag.tmp"
for _ in $(seq 24); do
  me_ok 5 || fail "GET /v1/me failed or took over 5 s after files were written outside the functions"
  sleep 0.5
done
after=$(function_pids)
[ "$before" = "$after" ] || fail "writing files outside the functions' packages restarted them: $before -> $after"
remove_written

# Inside a function's package: the watcher restarts the functions (it is alive and watching).
echo x >"functions/monitor/$tag.probe"
restart=$SECONDS
until now=$(function_pids) && [ -n "$now" ] && [ "$now" != "$before" ]; do
  (( SECONDS - restart < 60 )) || fail "a file added to functions/monitor restarted no function within 60 s"
  sleep 1
done
remove_written
until me_ok 60; do
  (( SECONDS - restart < 120 )) || fail "the functions did not answer again after their restart"
  sleep 1
done
echo "smoke-dev: files outside the functions restarted nothing; a file in functions/monitor restarted them"

logs=$(sed -n 's/^  Logs *//p' "$log")
kill -TERM "$pid"
wait "$pid" || fail "tributary-local did not exit cleanly"
trap - EXIT
sleep 1
# Whatever the stack started carries its moto endpoint in its environment (functions, cargo lambda
# watch) or its port on the command line (moto).
left=$(grep -lsa "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" /proc/[0-9]*/environ | cut -d/ -f3 || true)
left="$left $(pgrep -f -- "--env-file $logs/functions.env" || true) $(pgrep -f -- "moto_server -H 127.0.0.1 -p ${AWS_ENDPOINT_URL##*:}\$" || true)"
if [ -n "${left// /}" ]; then
  ps -o pid,pgid,cmd -p ${left} >&2 || true
  fail "processes were left running after SIGTERM"
fi
rm -rf "$work"
echo "smoke-dev: canary round trip, 401 and 200 through cargo lambda watch in $(( SECONDS - start )) s; clean shutdown"
