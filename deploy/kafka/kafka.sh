#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) without
# Docker: the broker jars come from Maven Central via deploy/kafka/pom.xml.
#
#   kafka.sh start                      # resolve jars once, format once, start, wait until it answers
#   kafka.sh stop                       # SIGTERM, wait, SIGKILL after a deadline
#   kafka.sh status                     # exit 0 if running and reachable
#   kafka.sh create-topics [--bootstrap-server HOST:PORT] TOPIC[:PARTITIONS] ...
#   kafka.sh list-topics   [--bootstrap-server HOST:PORT]
#   kafka.sh libs                       # only resolve the jars
#
# Environment (all optional):
#   KAFKA_DIR              state of THIS broker: config/, data/, logs/, pid (default <repo>/.local/kafka).
#                          Set it (plus the two ports) to run a second, independent broker.
#   KAFKA_PORT             PLAINTEXT listener on 127.0.0.1 (default 19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 19093)
#   KAFKA_LIBS_DIR         folder of broker jars, shared by all brokers (default <repo>/.local/kafka/libs)
#   MAVEN_REPO_LOCAL       Maven cache (default <repo>/.local/m2)
#   KAFKA_HEAP_OPTS        default "-Xmx768m -Xms256m"
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 60)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_NUM_PARTITIONS   default partition count for new topics (default 6)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
POM="$SCRIPT_DIR/pom.xml"

KAFKA_DIR="${KAFKA_DIR:-$REPO_ROOT/.local/kafka}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$REPO_ROOT/.local/kafka/libs}"
MAVEN_REPO_LOCAL="${MAVEN_REPO_LOCAL:-$REPO_ROOT/.local/m2}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-6}"
# Largest record, the same on the broker and every topic as in the gateway and
# consumers (KAFKA_MESSAGE_MAX_BYTES in runtime/settings.py; README "Sizes").
KAFKA_MESSAGE_MAX_BYTES="${KAFKA_MESSAGE_MAX_BYTES:-1048576}"

CONF_DIR="$KAFKA_DIR/config"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
SERVER_PROPS="$CONF_DIR/server.properties"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

log() { printf '[kafka %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- jars ----

pom_stamp() { sha256sum "$POM" | cut -d' ' -f1; }

ensure_libs() {
  local stamp_file="$KAFKA_LIBS_DIR/.pom.sha256" want
  want="$(pom_stamp)"
  if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  command -v java >/dev/null || die "java not found (apt-get install -y openjdk-17-jre-headless)"
  mkdir -p "$(dirname "$KAFKA_LIBS_DIR")" "$MAVEN_REPO_LOCAL"
  # A lock, because two brokers (or a test and a script) may start at once
  # and must not both write the libs folder.
  exec 8>"$(dirname "$KAFKA_LIBS_DIR")/.libs.lock"
  flock 8
  if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
    exec 8>&-; return 0
  fi
  log "resolving Kafka jars from Maven Central into $KAFKA_LIBS_DIR (first run only)..."
  local tmp="$KAFKA_LIBS_DIR.tmp.$$" t0=$SECONDS
  rm -rf "$tmp"
  # Resolve into a temp folder and swap it in, so an interrupted download never
  # leaves a half-filled libs folder that looks complete.
  mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime \
      -Dmaven.repo.local="$MAVEN_REPO_LOCAL" >"$tmp.mvn.log" 2>&1 \
    || { cat "$tmp.mvn.log" >&2; rm -rf "$tmp" "$tmp.mvn.log"; die "mvn could not resolve the Kafka jars (output above)"; }
  rm -f "$tmp.mvn.log"
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka_2.13 jar missing after mvn"; }
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS_DIR"
  mv "$tmp" "$KAFKA_LIBS_DIR"
  exec 8>&-
  log "jars ready ($(ls "$KAFKA_LIBS_DIR" | wc -l) files, $((SECONDS - t0)) s)"
}

# A short-lived JVM for Kafka's CLI classes: small heap, quick JIT, quiet logs.
# An array (not a function) so it can run under `timeout`.
TOOL_JAVA=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
           -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties"
           -cp "$KAFKA_LIBS_DIR/*")

# ------------------------------------------------------------- config ----

write_config() {
  mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
  # Rewritten on every start so port/dir changes in the environment apply;
  # the cluster identity lives in data/meta.properties and is never touched.
  cat >"$SERVER_PROPS" <<EOF
# Generated by deploy/kafka/kafka.sh on every start; edit the script instead.
# Single node, KRaft combined mode (Kafka 4.x has no ZooKeeper).
process.roles=broker,controller
node.id=1
# 4.x dynamic quorum (KIP-853): storage is formatted with --standalone.
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# One broker: every replication factor must be 1.
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Topics are created explicitly (deploy/services.sh); a typo must not create one.
auto.create.topics.enable=false
# Consumers in tests join instantly instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0

# Sized for a 2-core dev box.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=268435456

# Set explicitly, and equal to the clients' limits (README "Sizes").
message.max.bytes=$KAFKA_MESSAGE_MAX_BYTES
replica.fetch.max.bytes=$KAFKA_MESSAGE_MAX_BYTES
EOF

  # Broker logging (log4j2 properties format: needs no YAML parser).
  cat >"$CONF_DIR/log4j2.properties" <<'EOF'
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

  cat >"$CONF_DIR/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF

  # Admin client settings for the CLI: fail in seconds, not the 60 s default.
  cat >"$CONF_DIR/tools-client.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=15000
EOF
}

format_storage_once() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$("${TOOL_JAVA[@]}" kafka.tools.StorageTool random-uuid | tail -n1)"
  [[ -n "$cluster_id" ]] || die "could not generate a cluster id"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  "${TOOL_JAVA[@]}" kafka.tools.StorageTool format --standalone \
      --cluster-id "$cluster_id" --config "$SERVER_PROPS" >"$LOG_DIR/format.log" 2>&1 \
    || { cat "$LOG_DIR/format.log" >&2; die "storage format failed"; }
}

# -------------------------------------------------------------- process ----

# Prints the pid if OUR broker (this KAFKA_DIR) is alive. Checks the command
# line too, so a stale pid file whose pid was reused is not mistaken for it.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$SERVER_PROPS" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Real round trip through the Kafka protocol (AdminClient metadata call).
list_topics() {
  timeout 40 "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$1" --command-config "$CONF_DIR/tools-client.properties" --list
}

cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  rm -f "$PID_FILE"
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is already in use by another process (set KAFKA_PORT/KAFKA_CONTROLLER_PORT)"
  done
  ensure_libs
  write_config
  format_storage_once

  log "starting broker on $BOOTSTRAP (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT, dir $KAFKA_DIR)"
  # setsid+nohup: the broker must outlive this script and not get the caller's
  # Ctrl-C / SIGHUP. The inner shell writes its own pid, then exec's java, so
  # the pid file holds the JVM's pid even if setsid had to fork.
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  # shellcheck disable=SC2016  # $$/$0/$@ belong to the inner shell
  nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOG_DIR" \
      -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
      -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$SERVER_PROPS" \
    >"$LOG_DIR/stdout.log" 2>&1 </dev/null &

  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! pid="$(running_pid)"; then
      # Give the wrapper a moment to write the pid file before declaring death.
      sleep 0.5
      if ! pid="$(running_pid)"; then
        log "broker exited during startup; last log lines:"
        tail -n 30 "$LOG_DIR/server.log" "$LOG_DIR/stdout.log" >&2 2>/dev/null || true
        die "Kafka failed to start"
      fi
    fi
    # The port opens before the broker serves requests, so only use it as a
    # cheap gate before the real AdminClient round trip.
    if port_open "$KAFKA_PORT" && list_topics "$BOOTSTRAP" >/dev/null 2>&1; then
      log "ready: $BOOTSTRAP (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  log "broker did not answer within ${KAFKA_START_TIMEOUT}s; last log lines:"
  tail -n 30 "$LOG_DIR/server.log" >&2 2>/dev/null || true
  die "Kafka start timed out (it is left running: pid $(cat "$PID_FILE" 2>/dev/null); use '$0 stop')"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running ($KAFKA_DIR)"
    return 0
  fi
  log "stopping broker pid $pid (SIGTERM: controlled shutdown)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if port_open "$KAFKA_PORT"; then
      echo "kafka: running (pid $pid) on $BOOTSTRAP, dir $KAFKA_DIR"
      return 0
    fi
    echo "kafka: process $pid alive but port $KAFKA_PORT closed (starting or stuck)"
    return 1
  fi
  echo "kafka: stopped ($KAFKA_DIR)"
  return 3
}

# Parses an optional leading "--bootstrap-server X"; sets BS and ARGS.
parse_bs() {
  BS="$BOOTSTRAP"
  ARGS=()
  while (($#)); do
    case "$1" in
      --bootstrap-server) BS="${2:?--bootstrap-server needs a value}"; shift 2 ;;
      --bootstrap-server=*) BS="${1#*=}"; shift ;;
      *) ARGS+=("$1"); shift ;;
    esac
  done
}

cmd_create_topics() {
  parse_bs "$@"
  ((${#ARGS[@]})) || die "usage: $0 create-topics [--bootstrap-server H:P] TOPIC[:PARTITIONS] ..."
  ensure_libs
  [[ -f "$CONF_DIR/tools-client.properties" ]] || write_config
  local spec topic parts failed=0
  local -a pids=()
  # TopicCommand takes one topic per call, so each topic costs a JVM start
  # (~2 s); run them in parallel to keep the total near one JVM start.
  for spec in "${ARGS[@]}"; do
    topic="${spec%%:*}"
    parts="${spec#*:}"
    [[ "$parts" == "$spec" ]] && parts="$KAFKA_NUM_PARTITIONS"
    [[ "$parts" =~ ^[0-9]+$ ]] || die "bad partition count in '$spec'"
    (
      timeout 60 "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$BS" --command-config "$CONF_DIR/tools-client.properties" \
        --create --if-not-exists --topic "$topic" --partitions "$parts" --replication-factor 1 \
        --config "max.message.bytes=$KAFKA_MESSAGE_MAX_BYTES" \
        >/dev/null \
        && log "topic $topic ok (partitions requested: $parts) on $BS"
    ) &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "creating some topics failed (is Kafka up at $BS?)"
}

cmd_list_topics() {
  parse_bs "$@"
  ensure_libs
  [[ -f "$CONF_DIR/tools-client.properties" ]] || write_config
  list_topics "$BS"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  create-topics) shift; cmd_create_topics "$@" ;;
  list-topics) shift; cmd_list_topics "$@" ;;
  libs) ensure_libs ;;
  *) echo "usage: $0 {start|stop|status|create-topics [--bootstrap-server H:P] TOPIC[:PARTITIONS]...|list-topics|libs}" >&2; exit 2 ;;
esac
