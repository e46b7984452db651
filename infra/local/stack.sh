# Sourced by the checks that need the local stack in binaries mode (fuzz-api.sh, docs-check.sh,
# connect-check.sh):
# `start_stack` runs tributary-local on free ports with its own env file (never touching a running
# `make dev`), waits for the gateway to answer, exports TRIBUTARY_API_URL and friends, and stops it on
# exit. `fail MESSAGE` prints the stack's log tail and exits.

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# install_driver DIR SCRIPT: the pinned playwright-core (infra/local/connect's lock file) in DIR,
# installed again only when the pins change, and SCRIPT (a driver of infra/local/connect) beside it.
# Each check keeps its own DIR: one replaces its copy when the pins change while another may run.
install_driver() {
  local driver=$1 script=$2 pins=infra/local/connect
  if ! cmp -s "$pins/package-lock.json" "$driver/package-lock.json" || [ ! -d "$driver/node_modules/playwright-core" ]; then
    rm -rf "$driver"
    mkdir -p "$driver"
    cp "$pins/package.json" "$pins/package-lock.json" "$driver/"
    (cd "$driver" && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null) ||
      fail "npm ci failed in $driver"
  fi
  cp "$pins/$script" "$driver/$script"
}

# Installs Debian's chromium when it is missing (the browser checks need it).
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  echo "${CHECK_NAME:-check}: installing Debian's chromium"
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

fail() {
  echo "${CHECK_NAME:-check}: $*" >&2
  [ -n "${stack_log:-}" ] && tail -40 "$stack_log" >&2
  exit 1
}

start_stack() {
  stack_work=$(mktemp -d)
  stack_log="$stack_work/tributary-local.log"
  local port
  port=$(free_port)
  target/debug/tributary-local --mode binaries --port "$port" --quiet \
    --env-file "$stack_work/local.env" "$@" >"$stack_log" 2>&1 &
  stack_pid=$!
  trap 'kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true' EXIT
  local start=$SECONDS
  until [ -s "$stack_work/local.env" ] && curl -fs -m 5 -o /dev/null "http://127.0.0.1:$port/v1/health"; do
    kill -0 "$stack_pid" 2>/dev/null || fail "tributary-local exited"
    (( SECONDS - start < 120 )) || fail "the stack did not come up within 120 s"
    sleep 1
  done
  set -a
  # shellcheck disable=SC1091
  . "$stack_work/local.env"
  set +a
}
