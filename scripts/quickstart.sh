#!/usr/bin/env bash
# See it run: scripts/quickstart.sh
#
# On a fresh machine with only Python 3.11+: creates .venv and installs the project when
# needed, starts `gateway serve` in the background with the embedded PostgreSQL and Redis
# (no URLs: data under the configured data_dir, var/ by default), waits for /readyz, runs a
# short headless locust weekend-peak (loadtests/locustfile.py), prints its summary, prints the
# ledger check (`gateway verify-ledger`) and stops the gateway (always, on any exit).
#
# Environment:
#   PORT                   port to serve on (default 8080)
#   LOCUST_SHAPE_SECONDS   load test duration in seconds (default 30)
#   LOCUST_PEAK_USERS      concurrent players at the peak (locustfile default: 20)
#   READY_TIMEOUT_S        how long to wait for /readyz (default 120)
#   QUICKSTART_LOG         gateway log file (default var/quickstart/gateway.log)
# Any GATEWAY_* setting is passed through, except the database and Redis URLs, which are
# removed so that the embedded servers are used.
#
# Exit code: 0 when locust saw no failed request and the ledger check passed.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"

PORT="${PORT:-8080}"
export LOCUST_SHAPE_SECONDS="${LOCUST_SHAPE_SECONDS:-30}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
LOG="${QUICKSTART_LOG:-$ROOT/var/quickstart/gateway.log}"
BASE_URL="http://127.0.0.1:$PORT"
GATEWAY="$VENV/bin/gateway"
LOCUST="$VENV/bin/locust"

unset GATEWAY_DATABASE_URL GATEWAY_REDIS_URL GATEWAY_DATABASE__URL GATEWAY_REDIS__URL

mkdir -p "$(dirname "$LOG")"
: >"$LOG"

say() { printf '\n==> %s\n' "$*"; }

port_in_use() {
    "$VENV_PY" - "$PORT" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

is_ready() {
    "$VENV_PY" -c '
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).read()
except Exception:
    sys.exit(1)
' "$BASE_URL/readyz"
}

GW_PID=""
stop_gateway() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
        say "stopping the gateway (pid $GW_PID)"
        kill -TERM "$GW_PID" 2>/dev/null || true
        local waited=0
        while kill -0 "$GW_PID" 2>/dev/null && [ "$waited" -lt 600 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$GW_PID" 2>/dev/null; then
            echo "gateway did not stop within 60 s: killing it" >&2
            kill -KILL "$GW_PID" 2>/dev/null || true
        fi
        wait "$GW_PID" 2>/dev/null || true
        echo "gateway stopped; its log: $LOG"
    fi
    exit "$rc"
}
trap stop_gateway EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if port_in_use; then
    echo "error: something already listens on 127.0.0.1:$PORT (set PORT=... to use another port)" >&2
    exit 1
fi

say "starting the gateway on $BASE_URL (embedded PostgreSQL and Redis; log: $LOG)"
"$GATEWAY" serve --port "$PORT" >>"$LOG" 2>&1 &
GW_PID=$!

started=$SECONDS
until is_ready; do
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        echo "error: the gateway exited before it was ready; last lines of $LOG:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    if [ $((SECONDS - started)) -ge "$READY_TIMEOUT_S" ]; then
        echo "error: the gateway was not ready within ${READY_TIMEOUT_S} s; last lines of $LOG:" >&2
        tail -n 60 "$LOG" >&2
        exit 1
    fi
    sleep 0.5
done
echo "ready after $((SECONDS - started)) s"

say "load test: ${LOCUST_SHAPE_SECONDS} s weekend-peak shape (loadtests/locustfile.py)"
locust_cmd=("$LOCUST" -f loadtests/locustfile.py --headless --host "$BASE_URL" --only-summary)
# The shape ends the run by itself; the timeout only guards against a hung run (SIGINT makes
# locust stop and still print its summary).
if command -v timeout >/dev/null 2>&1; then
    bound=$(("${LOCUST_SHAPE_SECONDS%.*}" + 120))
    locust_cmd=(timeout -s INT -k 30 "$bound" "${locust_cmd[@]}")
fi
locust_rc=0
"${locust_cmd[@]}" 2>&1 || locust_rc=$?

say "ledger check (gateway verify-ledger)"
ledger_rc=0
"$GATEWAY" verify-ledger 2>>"$LOG" || ledger_rc=$?

say "summary"
if [ "$locust_rc" -eq 0 ]; then echo "load test: no failed requests"; else echo "load test: FAILED (locust exit $locust_rc)"; fi
if [ "$ledger_rc" -eq 0 ]; then echo "ledger check: ok"; else echo "ledger check: FAILED (exit $ledger_rc)"; fi
[ "$locust_rc" -eq 0 ] && [ "$ledger_rc" -eq 0 ]
