#!/usr/bin/env bash
# `make run`: start consumers and gateway against the services `make services` started,
# print how to call the API, and stop everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source .local/services.env
BIN=.venv/bin
PORT="${GATEWAY_PORT:-8080}"
HOST="${GATEWAY_HOST:-127.0.0.1}"
LOGS=.local/logs
mkdir -p "$LOGS"

pids=()
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "stopping gateway and consumers..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    bash deploy/services.sh down
    echo "stopped."
}
trap cleanup INT TERM EXIT

# A demo team with a fixed key, so the printed curl line works on every run.
DEMO_KEY="${DEMO_API_KEY:-demo-key-0123456789abcdef}"
"$BIN/ingest-admin" create-team demo --key "$DEMO_KEY" >/dev/null

"$BIN/ingest-consumer" >"$LOGS/consumer.log" 2>&1 &
pids+=($!)
"$BIN/ingest-gateway" >"$LOGS/gateway.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + 60))
until curl -fsS "http://$HOST:$PORT/healthz" >/dev/null 2>&1; do
    if (( SECONDS > deadline )); then
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
wait -n "${pids[@]}"
echo "a process exited; see $LOGS" >&2
