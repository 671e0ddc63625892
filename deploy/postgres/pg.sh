#!/usr/bin/env bash
# Local PostgreSQL dev cluster for the ingest pipeline, without Docker and
# without touching the distro's own cluster (/var/lib/postgresql).
#
#   pg.sh start    # install if missing, initdb once, start, create role+db `ingest`
#   pg.sh stop     # fast shutdown
#   pg.sh status   # exit 0 if accepting connections
#   pg.sh url      # prints postgresql://ingest@127.0.0.1:PORT/ingest
#   pg.sh psql ... # psql as `ingest` (extra args passed through)
#
# Environment (all optional):
#   PG_DIR   cluster home: data/, run/ (unix socket), logs/ (default <repo>/.local/pg)
#   PG_PORT  TCP port on 127.0.0.1 (default 15432)
#   PG_BIN   folder with initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#   PG_SSL_CERT_FILE, PG_SSL_KEY_FILE
#            serve TLS with this certificate and key (PEM; copied into the cluster);
#            clients choose it with ?sslmode=require|verify-ca|verify-full
#
# As root, the cluster runs as the `postgres` user, who must reach PG_DIR. When
# PG_DIR is not set and the clone sits where `postgres` cannot go (root's home,
# mode 0700), the cluster lives in /var/lib/ingest-pg/<this clone's id> instead,
# and .local/pg is a link to it: `start` says so.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" pg

# Where postgres may live when it cannot reach the clone: one folder per clone.
FALLBACK_ROOT=/var/lib/ingest-pg
if [[ -z "${PG_DIR:-}" ]]; then
  PG_DIR="$LOCAL_DIR/pg"
  # Default place unreachable for postgres (as root only: otherwise we are postgres' peer).
  if [[ -L "$PG_DIR" ]]; then
    PG_DIR="$(readlink "$PG_DIR")"
  elif [[ "$(id -u)" == 0 ]] && id postgres >/dev/null 2>&1 \
     && ! runuser -u postgres -- test -x "$REPO_ROOT" 2>/dev/null; then
    PG_DIR="$FALLBACK_ROOT/$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"
    PG_DIR_LINK="$LOCAL_DIR/pg"
  fi
fi
PG_PORT="${PG_PORT:-15432}"
# The database and its owning role, created at start if missing.
DB_NAME=ingest
DB_USER=ingest
DATA_DIR="$PG_DIR/data"
RUN_DIR="$PG_DIR/run"
LOG_DIR="$PG_DIR/logs"

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" ]] || die "PG_BIN=$PG_BIN has no initdb"
    return 0
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [[ -z "$d" || ! -x "$d/initdb" ]]; then
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL server binaries not found; run as root or: sudo apt-get install -y postgresql"
    log "PostgreSQL not installed; installing the Debian package (non-interactive)"
    export DEBIAN_FRONTEND=noninteractive
    # The package list may be missing/stale on a fresh machine: update and retry.
    apt-get install -y -q postgresql >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; } \
      || die "apt-get install postgresql failed"
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    [[ -x "$d/initdb" ]] || die "initdb still missing after install"
  fi
  PG_BIN="$d"
}

# initdb/postgres refuse to run as root: as root, run them as `postgres`.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Superuser connection over the cluster's private unix socket (trust auth).
# shellcheck disable=SC2120  # extra psql args are optional
psql_admin() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"
}

prepare_dirs() {
  mkdir -p "$PG_DIR" "$RUN_DIR" "$LOG_DIR"
  if [[ -n "${PG_DIR_LINK:-}" ]]; then
    chmod 755 "$FALLBACK_ROOT"
    mkdir -p "$LOCAL_DIR"
    ln -sfn "$PG_DIR" "$PG_DIR_LINK"
    log "user postgres cannot reach $REPO_ROOT (a parent directory lacks o+x):" \
        "the cluster lives in $PG_DIR ($PG_DIR_LINK links to it)"
  fi
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "system user 'postgres' missing (is the postgresql package installed?)"
    chown postgres:postgres "$PG_DIR" "$RUN_DIR" "$LOG_DIR"
    # Fix ownership only if needed (e.g. the folder was copied as root);
    # a recursive chown of a big cluster on every start would be slow.
    if [[ -d "$DATA_DIR" && "$(stat -c %U "$DATA_DIR")" != postgres ]]; then
      chown -R postgres:postgres "$DATA_DIR"
    fi
    # Every parent of PG_DIR must be traversable (x) by postgres.
    runuser -u postgres -- test -x "$PG_DIR" \
      || die "user postgres cannot reach $PG_DIR (a parent directory lacks o+x); use another PG_DIR"
  fi
  # Unix socket paths are limited to ~107 bytes.
  local sock="$RUN_DIR/.s.PGSQL.$PG_PORT"
  ((${#sock} < 100)) || die "socket path too long (${#sock} chars): $sock; use a shorter PG_DIR"
}

init_once() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
  log "initdb $DATA_DIR"
  as_pg mkdir -p "$DATA_DIR"
  # trust auth: a dev cluster that only listens on 127.0.0.1 and a private socket.
  as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 \
    || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
  # Our settings live in a separate file that is rewritten on every start.
  echo "include_if_exists = 'ingest-dev.conf'" | as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_config() {
  as_pg tee "$DATA_DIR/ingest-dev.conf" >/dev/null <<EOF
# Generated by deploy/postgres/pg.sh on every start; edit the script instead.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN_DIR'
max_connections = 200

# Light tuning for a 2-core / few-GB dev box. Durability stays as in
# production (fsync, synchronous_commit) so benchmarks are honest.
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 8MB
maintenance_work_mem = 128MB
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_completion_target = 0.9
fsync = on
synchronous_commit = on
full_page_writes = on
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1

timezone = 'UTC'
log_timezone = 'UTC'
log_min_duration_statement = 1000
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  write_ssl_config
}

# TLS when PG_SSL_CERT_FILE and PG_SSL_KEY_FILE name a certificate and its key:
# copied into the data folder, where the server (as postgres) may read them and
# the key is private to it, as PostgreSQL insists.
write_ssl_config() {
  [[ -n "${PG_SSL_CERT_FILE:-}${PG_SSL_KEY_FILE:-}" ]] || return 0
  [[ -r "${PG_SSL_CERT_FILE:-}" && -r "${PG_SSL_KEY_FILE:-}" ]] \
    || die "PG_SSL_CERT_FILE and PG_SSL_KEY_FILE must both name readable files"
  as_pg tee "$DATA_DIR/ingest-server.crt" <"$PG_SSL_CERT_FILE" >/dev/null
  as_pg tee "$DATA_DIR/ingest-server.key" <"$PG_SSL_KEY_FILE" >/dev/null
  as_pg chmod 600 "$DATA_DIR/ingest-server.key"
  as_pg tee -a "$DATA_DIR/ingest-dev.conf" >/dev/null <<EOF

# TLS (PG_SSL_CERT_FILE / PG_SSL_KEY_FILE).
ssl = on
ssl_cert_file = 'ingest-server.crt'
ssl_key_file = 'ingest-server.key'
EOF
}

is_running() { as_pg "$PG_BIN/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1; }

ensure_role_and_db() {
  # Owner role with CREATEDB (tests may create scratch databases), not a superuser.
  psql_admin <<SQL
SELECT 'CREATE ROLE $DB_USER LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER')\gexec
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
}

url() { echo "postgresql://$DB_USER@127.0.0.1:$PG_PORT/$DB_NAME"; }

cmd_start() {
  find_bin
  prepare_dirs
  if [[ -f "$DATA_DIR/PG_VERSION" ]] && is_running; then
    log "already running ($DATA_DIR)"
  else
    port_open "$PG_PORT" && die "port $PG_PORT is already in use by another process (set PG_PORT)"
    init_once
    write_config
    log "starting PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$PG_PORT"
    # -w waits until the server accepts connections (or fails) within -t s.
    as_pg "$PG_BIN/pg_ctl" start -D "$DATA_DIR" -l "$LOG_DIR/postgres.log" -w -t 60 >/dev/null \
      || { tail -n 30 "$LOG_DIR/postgres.log" >&2; die "PostgreSQL failed to start"; }
  fi
  ensure_role_and_db
  log "ready: $(url)"
}

cmd_stop() {
  find_bin
  if [[ ! -f "$DATA_DIR/PG_VERSION" ]] || ! is_running; then
    log "not running ($DATA_DIR)"
    return 0
  fi
  log "stopping PostgreSQL ($DATA_DIR)"
  # fast: roll back open transactions and disconnect clients, then a clean checkpoint.
  as_pg "$PG_BIN/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 >/dev/null
  log "stopped"
}

cmd_status() {
  find_bin
  if [[ -f "$DATA_DIR/PG_VERSION" ]] && is_running; then
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
      echo "postgres: running on 127.0.0.1:$PG_PORT, dir $PG_DIR"
      return 0
    fi
    echo "postgres: process alive but not accepting connections on $PG_PORT"
    return 1
  fi
  echo "postgres: stopped ($PG_DIR)"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) url ;;
  psql) shift; find_bin; exec "$PG_BIN/psql" "$(url)" "$@" ;;
  *) echo "usage: $0 {start|stop|status|url|psql [ARGS]}" >&2; exit 2 ;;
esac
