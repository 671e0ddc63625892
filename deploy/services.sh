#!/usr/bin/env bash
# Brings up the services the pipeline needs (Kafka + PostgreSQL) as plain
# local processes (no Docker here), and writes .local/services.env:
#
#   deploy/services.sh up     # then: source .local/services.env
#   deploy/services.sh down   # stops only what `up` started
#   deploy/services.sh status
#
# Rule: an already-set KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL means "use that
# external service": nothing is started for it, the value is passed through.
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS  external Kafka; otherwise a local broker is started
#   DATABASE_URL             external PostgreSQL; otherwise a local cluster is started
#   INGEST_TOPICS            topics to create, TOPIC[:PARTITIONS] separated by spaces
#                            (default "ingest.writes:6 ingest.writes.dlq:1"; "" = none)
#   plus everything deploy/kafka/kafka.sh and deploy/postgres/pg.sh read
#   (KAFKA_PORT, KAFKA_DIR, PG_PORT, PG_DIR, ...).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" services
ENV_FILE="$LOCAL_DIR/services.env"
# Which services `up` started itself, one name per line; `down` reads it.
STATE_FILE="$LOCAL_DIR/services.started"
started() { [[ -f "$STATE_FILE" ]] && grep -qx "$1" "$STATE_FILE"; }
mark_started() { started "$1" || echo "$1" >>"$STATE_FILE"; }

KAFKA_SH="$SCRIPT_DIR/kafka/kafka.sh"
PG_SH="$SCRIPT_DIR/postgres/pg.sh"
INGEST_TOPICS="${INGEST_TOPICS-ingest.writes:6 ingest.writes.dlq:1}"

local_kafka_bs() { echo "127.0.0.1:${KAFKA_PORT:-19092}"; }
local_db_url() { "$PG_SH" url; }

# An env var counts as "external" unless it is exactly the value a previous
# `up` wrote for a service it started: after `source .local/services.env`,
# running `up` again must still (re)start the local services.
is_external() { # NAME VALUE LOCAL_VALUE
  [[ -n "$2" ]] || return 1
  if [[ "$2" == "$3" ]] && started "$1"; then return 1; fi
  return 0
}

cmd_up() {
  local t0=$SECONDS kafka_bs db_url kafka_local=0
  mkdir -p "$LOCAL_DIR"

  if is_external kafka "${KAFKA_BOOTSTRAP_SERVERS:-}" "$(local_kafka_bs)"; then
    kafka_bs="$KAFKA_BOOTSTRAP_SERVERS"
    log "Kafka: using external $kafka_bs (KAFKA_BOOTSTRAP_SERVERS is set)"
  else
    "$KAFKA_SH" start
    mark_started kafka
    kafka_bs="$(local_kafka_bs)"
    kafka_local=1
  fi

  if is_external postgres "${DATABASE_URL:-}" "$(local_db_url)"; then
    db_url="$DATABASE_URL"
    log "PostgreSQL: using external database (DATABASE_URL is set)"
  else
    "$PG_SH" start
    mark_started postgres
    db_url="$(local_db_url)"
  fi

  if [[ -n "${INGEST_TOPICS// /}" ]]; then
    # shellcheck disable=SC2206  # word-splitting the topic list is intended
    local topics=($INGEST_TOPICS)
    if ((kafka_local)); then
      "$KAFKA_SH" create-topics --bootstrap-server "$kafka_bs" "${topics[@]}"
    elif [[ -f "${KAFKA_LIBS_DIR:-$LOCAL_DIR/kafka/libs}/.pom.sha256" ]]; then
      # External broker, but we have the CLI jars: create topics there too.
      "$KAFKA_SH" create-topics --bootstrap-server "$kafka_bs" "${topics[@]}" \
        || log "WARNING: could not create topics on external Kafka $kafka_bs"
    else
      log "external Kafka and no local Kafka jars: not creating topics (${topics[*]})"
    fi
  fi

  # Written via a temp file so a reader never sees half a file.
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "# Written by deploy/services.sh up on $(date -u +%FT%TZ); source it."
    printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$kafka_bs"
    printf 'export DATABASE_URL=%q\n' "$db_url"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
  log "up in $((SECONDS - t0)) s; wrote $ENV_FILE:"
  grep '^export' "$ENV_FILE" >&2
}

cmd_down() {
  if [[ ! -f "$STATE_FILE" ]]; then
    log "nothing recorded as started by 'up' ($STATE_FILE missing); nothing to stop"
    return 0
  fi
  local rc=0
  # Stop Kafka first: consumers/gateway depend on it more loosely than on the DB.
  if started kafka; then "$KAFKA_SH" stop || rc=1; fi
  if started postgres; then "$PG_SH" stop || rc=1; fi
  ((rc == 0)) || die "some service failed to stop"
  rm -f "$STATE_FILE" "$ENV_FILE"
  log "down"
}

cmd_status() {
  local rc=0
  "$KAFKA_SH" status || rc=1
  "$PG_SH" status || rc=1
  [[ -f "$ENV_FILE" ]] && grep '^export' "$ENV_FILE"
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|status}" >&2; exit 2 ;;
esac
