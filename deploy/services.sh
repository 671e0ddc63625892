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
# The topics are made by `ingest-admin create-topics` (`make migrate`), not here.
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS  external Kafka; otherwise a local one is started
#   KAFKA_BROKERS            nodes of the local Kafka (default 1; 3 for a replicated
#                            cluster, whose topics then get 3 copies and
#                            min.insync.replicas 2: services.env says so)
#   DATABASE_URL             external PostgreSQL; otherwise a local cluster is started
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

local_kafka_bs() { "$KAFKA_SH" bootstrap; }
local_db_url() { "$PG_SH" url; }
# The value of variable $1 in the services.env a previous `up` wrote.
# shellcheck source=/dev/null
written() { [[ -f "$ENV_FILE" ]] && (source "$ENV_FILE" && echo "${!1:-}"); }

# An env var counts as "external" unless it is the local value, or the value a
# previous `up` wrote, of a service `up` started: after `source .local/services.env`,
# running `up` again must still (re)start the local services, in the shape asked
# for now (KAFKA_BROKERS may differ).
is_external() { # NAME VALUE LOCAL_VALUE VARIABLE
  [[ -n "$2" ]] || return 1
  if started "$1" && [[ "$2" == "$3" || "$2" == "$(written "$4")" ]]; then return 1; fi
  return 0
}

cmd_up() {
  local t0=$SECONDS kafka_env db_url
  mkdir -p "$LOCAL_DIR"

  if is_external kafka "${KAFKA_BOOTSTRAP_SERVERS:-}" "$(local_kafka_bs)" KAFKA_BOOTSTRAP_SERVERS; then
    kafka_env="$(printf 'export KAFKA_BOOTSTRAP_SERVERS=%q' "$KAFKA_BOOTSTRAP_SERVERS")"
    log "Kafka: using external $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set)"
  else
    # What an earlier `up` started may have another number of nodes than asked
    # for now: stop it, so the nodes asked for can take the ports.
    if started kafka && ! "$KAFKA_SH" status >/dev/null; then "$KAFKA_SH" stop; fi
    "$KAFKA_SH" start
    mark_started kafka
    kafka_env="$("$KAFKA_SH" client-env)"
  fi

  if is_external postgres "${DATABASE_URL:-}" "$(local_db_url)" DATABASE_URL; then
    db_url="$DATABASE_URL"
    log "PostgreSQL: using external database (DATABASE_URL is set)"
  else
    "$PG_SH" start
    mark_started postgres
    db_url="$(local_db_url)"
  fi

  # Written via a temp file so a reader never sees half a file.
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "# Written by deploy/services.sh up on $(date -u +%FT%TZ); source it."
    echo "$kafka_env"
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
