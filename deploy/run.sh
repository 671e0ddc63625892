#!/usr/bin/env bash
# `make run`: start consumers and gateway against the services `make services` started,
# print how to call the API, and stop everything on Ctrl-C (or SIGTERM).
#
# Both keep running through crashes: ingest-consumer restarts its own worker
# processes (consumers/supervisor.py), and the gateway is restarted here, by
# run_gateway. The script ends, stopping everything, only when Ctrl-C or SIGTERM
# asks it to, or when one of the two gives up because it keeps dying at start.
set -euo pipefail
cd "$(dirname "$0")/.."
source .local/services.env
BIN=.venv/bin
PORT="${GATEWAY_PORT:-8080}"
HOST="${GATEWAY_HOST:-127.0.0.1}"
LOGS=.local/logs
mkdir -p "$LOGS"

say() { printf '[run %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

gateway_pid=""
consumer_pid=""
stop() { # PID: SIGTERM it and wait until it is gone
    [[ -n "$1" ]] || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local status=$?
    # Stop in order, and let a second Ctrl-C not cut that short (it would leave
    # the services running); the consumers finish their current batch first.
    trap '' INT TERM
    trap - EXIT
    echo
    echo "stopping gateway and consumers..."
    stop "$gateway_pid"
    stop "$consumer_pid"
    bash deploy/services.sh down
    echo "stopped."
    exit "$status"
}
trap cleanup EXIT
trap 'exit 0' INT TERM # through the EXIT trap: a requested stop ends with status 0

# The gateway, restarted when it dies (a non-zero status or a signal): after 1 s,
# doubling up to 10 s, and starting over once it stayed up 30 s. Status 0 means
# it was stopped on purpose (uvicorn exits 0 on SIGTERM and SIGINT), so the loop
# ends. Five deaths in a row, each within 5 s of its start, will not get better
# by restarting (a port taken, bad settings): the loop gives up with status 1.
run_gateway() {
    local child="" delay=1 failures=0 started status ran how
    # Ctrl-C reaches the whole process group: the gateway stops by itself, and this
    # loop must outlive it (to reap it); cleanup() ends the loop with SIGTERM.
    trap '' INT
    trap '[[ -z "$child" ]] || kill -TERM "$child" 2>/dev/null; wait; exit 0' TERM
    while true; do
        started=$SECONDS
        "$BIN/ingest-gateway" >>"$LOGS/gateway.log" 2>&1 &
        child=$!
        status=0
        wait "$child" || status=$?
        child=""
        if ((status == 0)); then
            say "the gateway stopped (status 0)"
            exit 0
        fi
        ran=$((SECONDS - started))
        ((ran < 30)) || delay=1
        if ((ran < 5)); then failures=$((failures + 1)); else failures=0; fi
        if ((failures >= 5)); then
            say "CRITICAL: the gateway died $failures times in a row within 5 s of starting" \
                "(last status $status); giving up, see $LOGS/gateway.log"
            exit 1
        fi
        how="status $status"
        ((status <= 128)) || how="$how, killed by SIG$(kill -l $((status - 128)))"
        say "the gateway exited ($how) after ${ran}s; restarting it in ${delay}s"
        sleep "$delay" &
        child=$! # so that SIGTERM ends the sleep too
        wait "$child" || true
        child=""
        delay=$((delay * 2 > 10 ? 10 : delay * 2))
    done
}

# A demo team with a fixed key, so the printed curl line works on every run.
DEMO_KEY="${DEMO_API_KEY:-demo-key-0123456789abcdef}"
"$BIN/ingest-admin" create-team demo --key "$DEMO_KEY" >/dev/null

"$BIN/ingest-consumer" >"$LOGS/consumer.log" 2>&1 &
consumer_pid=$!
: >"$LOGS/gateway.log"
run_gateway &
gateway_pid=$!

deadline=$((SECONDS + 60))
until curl -fsS --max-time 2 "http://$HOST:$PORT/readyz" >/dev/null 2>&1; do
    if (( SECONDS > deadline )) || ! kill -0 "$gateway_pid" 2>/dev/null; then
        echo "the gateway did not become ready; see $LOGS/gateway.log" >&2
        exit 1
    fi
    sleep 0.5
done

cat <<EOT

The pipeline is running.
  gateway      http://$HOST:$PORT   (OpenAPI: http://$HOST:$PORT/docs)
  api key      $DEMO_KEY   (team "demo")
  logs         $LOGS/gateway.log, $LOGS/consumer.log
  store        psql "$DATABASE_URL"

Try it:
  curl -s -X POST -H 'X-API-KEY: $DEMO_KEY' -d 'name=George' -d 'pricingPlan=gold' \\
       'http://$HOST:$PORT/api/1.0/customer/george@example.com?wait=true'
  curl -s -H 'X-API-KEY: $DEMO_KEY' http://$HOST:$PORT/api/1.0/customer/george@example.com

Ctrl-C stops everything this command started.
EOT
# Either ends only when it gives up, or when something outside stopped it.
status=0
wait -n -p ended "$consumer_pid" "$gateway_pid" || status=$?
if [[ "${ended:-}" == "$consumer_pid" ]]; then
    consumer_pid=""
    echo "ingest-consumer exited with status $status; see $LOGS/consumer.log" >&2
else
    gateway_pid=""
    echo "the gateway's restart loop ended with status $status; see $LOGS/gateway.log" >&2
fi
exit 1
