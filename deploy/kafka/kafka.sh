#!/usr/bin/env bash
# Local Apache Kafka (KRaft) without Docker: one node, or a cluster of
# KAFKA_BROKERS nodes on this machine, each node a broker and a controller in one
# JVM ("combined" mode). The broker jars come from Maven Central via deploy/kafka/pom.xml.
#
#   kafka.sh start [NODE]    # resolve jars once, format once, start every node (or NODE), wait until it answers
#   kafka.sh stop [NODE]     # SIGTERM, wait, SIGKILL after a deadline; without NODE every node run from KAFKA_DIR
#   kafka.sh kill NODE       # SIGKILL one node, as a crash would (fault tests)
#   kafka.sh status [NODE]   # exit 0 if every node (or NODE) is running and reachable
#   kafka.sh bootstrap       # the brokers' client addresses, comma-separated
#   kafka.sh client-env      # export lines for the pipeline: brokers, replication factor, min.insync.replicas
#   kafka.sh list-topics [--bootstrap-server HOST:PORT]
#   kafka.sh libs            # only resolve the jars
#
# One node (KAFKA_BROKERS=1, the default) keeps its state in KAFKA_DIR and listens
# on KAFKA_PORT (clients) and KAFKA_CONTROLLER_PORT; every replication factor is 1.
# With N nodes, node K (1..N) keeps its state in KAFKA_DIR/node-K and listens on
# KAFKA_PORT + 10(K-1) for clients, KAFKA_CONTROLLER_PORT + 10(K-1) for the
# controller quorum, and KAFKA_INTERNAL_PORT + 10(K-1) for replication between the
# brokers (a listener of its own, so that clients can be cut off from a broker
# without cutting it off from the others). Topics then get min(N, 3) copies and
# min.insync.replicas 2 with 3 copies (1 below), the internal topics too.
#
# Environment (all optional):
#   KAFKA_BROKERS          nodes in the cluster, 1 to 9 (default 1)
#   KAFKA_DIR              state of THIS cluster: config/, data/, logs/, pid, or node-K/ (default <repo>/.local/kafka).
#                          Set it (plus the ports) to run a second, independent cluster.
#   KAFKA_PORT             client (PLAINTEXT) listener of node 1 on 127.0.0.1 (default 19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener of node 1 (default 19093)
#   KAFKA_INTERNAL_PORT    replication listener of node 1, clusters only (default 19094)
#   KAFKA_ADVERTISED_PORTS the client port each node names to clients, comma-separated by node, an empty
#                          entry meaning its own (a test puts a TCP proxy in front of a node this way)
#   KAFKA_LIBS_DIR         folder of broker jars, shared by all brokers (default <repo>/.local/kafka/libs)
#   MAVEN_REPO_LOCAL       Maven cache (default <repo>/.local/m2)
#   KAFKA_HEAP_OPTS        per node; default "-Xmx768m -Xms256m", in a cluster "-Xmx384m -Xms128m"
#   KAFKA_START_TIMEOUT    seconds to wait for the nodes to answer (default 60)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_NUM_PARTITIONS   default partition count for new topics (default 6)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh" kafka
POM="$SCRIPT_DIR/pom.xml"

KAFKA_BROKERS="${KAFKA_BROKERS:-1}"
[[ "$KAFKA_BROKERS" =~ ^[1-9]$ ]] || die "KAFKA_BROKERS must be a number from 1 to 9"
KAFKA_DIR="${KAFKA_DIR:-$LOCAL_DIR/kafka}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_INTERNAL_PORT="${KAFKA_INTERNAL_PORT:-19094}"
IFS=, read -r -a ADVERTISED_PORTS <<<"${KAFKA_ADVERTISED_PORTS:-}"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$LOCAL_DIR/kafka/libs}"
MAVEN_REPO_LOCAL="${MAVEN_REPO_LOCAL:-$LOCAL_DIR/m2}"
if ((KAFKA_BROKERS == 1)); then
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m}"
else # three JVMs on a small machine
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx384m -Xms128m}"
fi
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-6}"
# Largest record, the same on the broker and every topic as in the gateway and
# consumers (KAFKA_MESSAGE_MAX_BYTES in runtime/settings.py; docs/operations.md, "What is guaranteed").
KAFKA_MESSAGE_MAX_BYTES="${KAFKA_MESSAGE_MAX_BYTES:-1048576}"

# Copies of every partition, and how many must hold a write before it is
# acknowledged (docs/operations.md, "A replicated cluster").
REPLICATION=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
MIN_INSYNC=$((REPLICATION == 3 ? 2 : 1))
mapfile -t ALL_NODES < <(seq 1 "$KAFKA_BROKERS")
# The CLI tools' logging and client settings, one set for the cluster.
TOOLS_CONF="$KAFKA_DIR/config"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"

# Sets the variables of node $1: its folders, files and ports.
use_node() {
  NODE="$1"
  if [[ ! "$NODE" =~ ^[1-9]$ ]] || ((NODE > KAFKA_BROKERS)); then
    die "no node '$NODE' (KAFKA_BROKERS=$KAFKA_BROKERS)"
  fi
  local offset=$((10 * (NODE - 1)))
  NODE_DIR="$KAFKA_DIR"
  ((KAFKA_BROKERS == 1)) || NODE_DIR="$KAFKA_DIR/node-$NODE"
  PORT=$((KAFKA_PORT + offset))
  CONTROLLER_PORT=$((KAFKA_CONTROLLER_PORT + offset))
  INTERNAL_PORT=$((KAFKA_INTERNAL_PORT + offset))
  ADVERTISED_PORT="${ADVERTISED_PORTS[NODE - 1]:-$PORT}"
  CONF_DIR="$NODE_DIR/config"
  DATA_DIR="$NODE_DIR/data"
  LOG_DIR="$NODE_DIR/logs"
  PID_FILE="$NODE_DIR/kafka.pid"
  SERVER_PROPS="$CONF_DIR/server.properties"
}

# The comma-separated list of what $1 prints for each node.
each_node() {
  local node out=()
  for node in "${ALL_NODES[@]}"; do
    use_node "$node"
    out+=("$("$1")")
  done
  (IFS=,; echo "${out[*]}")
}
client_address() { echo "127.0.0.1:$ADVERTISED_PORT"; }
voter() { echo "$NODE@127.0.0.1:$CONTROLLER_PORT"; }

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
           -Dlog4j2.configurationFile="$TOOLS_CONF/tools-log4j2.properties"
           -cp "$KAFKA_LIBS_DIR/*")

# ------------------------------------------------------------- config ----

write_tools_config() {
  mkdir -p "$TOOLS_CONF"
  cat >"$TOOLS_CONF/tools-log4j2.properties" <<'EOF'
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
  cat >"$TOOLS_CONF/tools-client.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=15000
EOF
}

# The listeners and the controller quorum of the current node.
listener_config() {
  if ((KAFKA_BROKERS == 1)); then
    cat <<EOF
# Single node, KRaft combined mode (Kafka 4.x has no ZooKeeper).
# 4.x dynamic quorum (KIP-853): storage is formatted with --standalone.
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$ADVERTISED_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return
  fi
  cat <<EOF
# Node $NODE of $KAFKA_BROKERS, KRaft combined mode: every node is a voter of a static
# controller quorum (the same list on every node), so the cluster runs while a
# majority of the nodes does.
controller.quorum.voters=$(each_node voter)
# Clients on PLAINTEXT, replication between brokers on INTERNAL.
listeners=PLAINTEXT://127.0.0.1:$PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$ADVERTISED_PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT
EOF
}

write_config() {
  mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
  # Rewritten on every start so port/dir changes in the environment apply;
  # the cluster identity lives in data/meta.properties and is never touched.
  cat >"$SERVER_PROPS" <<EOF
# Generated by deploy/kafka/kafka.sh on every start; edit the script instead.
process.roles=broker,controller
node.id=$NODE
$(listener_config)
controller.listener.names=CONTROLLER
log.dirs=$DATA_DIR

# Copies of every partition, internal topics included ($REPLICATION), and how many
# must hold an acks=all write before it is acknowledged ($MIN_INSYNC).
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_INSYNC
offsets.topic.replication.factor=$REPLICATION
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_INSYNC
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_INSYNC
# Never elect a leader that may lack acknowledged writes (Kafka's default, stated).
unclean.leader.election.enable=false

# Topics are created explicitly (ingest-admin create-topics); a typo must not create one.
auto.create.topics.enable=false
# Consumers in tests join instantly instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0

# Sized for a 2-core dev box.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=268435456

# Set explicitly, and equal to the clients' limits (docs/operations.md, "What is guaranteed").
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
}

# A Kafka UUID (16 random bytes, URL-safe base64 without padding), made without a
# JVM; never one that starts with '-', which the tools would read as an option.
new_uuid() {
  local id
  while id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; [[ "$id" == -* ]]; do :; done
  echo "$id"
}

# The cluster's id: a new one for a single node, one for all the nodes of a cluster.
cluster_id() {
  if ((KAFKA_BROKERS == 1)); then
    new_uuid
    return
  fi
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    mkdir -p "$KAFKA_DIR"
    new_uuid >"$CLUSTER_ID_FILE.tmp.$$"
    mv "$CLUSTER_ID_FILE.tmp.$$" "$CLUSTER_ID_FILE"
  fi
  cat "$CLUSTER_ID_FILE"
}

format_storage_once() { # CLUSTER_ID
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local quorum=()
  # A single node starts its own dynamic quorum; a cluster's voters are in the config.
  ((KAFKA_BROKERS == 1)) && quorum=(--standalone)
  log "formatting $DATA_DIR (cluster id $1)"
  "${TOOL_JAVA[@]}" kafka.tools.StorageTool format "${quorum[@]}" \
      --cluster-id "$1" --config "$SERVER_PROPS" >"$LOG_DIR/format.log" 2>&1 \
    || { cat "$LOG_DIR/format.log" >&2; die "storage format of node $NODE failed"; }
}

# -------------------------------------------------------------- process ----

# Prints the pid if the node of folder $1 is alive. Checks the command line too,
# so a stale pid file whose pid was reused is not mistaken for it.
pid_in() {
  local pid
  [[ -f "$1/kafka.pid" ]] || return 1
  pid="$(cat "$1/kafka.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1/config/server.properties" || return 1
  echo "$pid"
}
running_pid() { pid_in "$NODE_DIR"; }

# Every node folder of KAFKA_DIR, single node and cluster alike.
node_dirs() {
  local dir
  for dir in "$KAFKA_DIR" "$KAFKA_DIR"/node-*; do
    [[ -d "$dir" ]] && echo "$dir"
  done
  return 0
}

# Real round trip through the Kafka protocol (AdminClient metadata call).
list_topics() {
  timeout 40 "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$1" --command-config "$TOOLS_CONF/tools-client.properties" --list
}

# The ids of the brokers the controller counts as alive and caught up with the
# cluster's metadata ("unfenced"), asked through $1. The tool's whole answer is
# kept in the tools' folder, for when a start times out.
unfenced_brokers() {
  timeout 40 "${TOOL_JAVA[@]}" org.apache.kafka.tools.ClusterTool list-endpoints \
    --bootstrap-server "$1" --command-config "$TOOLS_CONF/tools-client.properties" \
    >"$TOOLS_CONF/list-endpoints.txt" 2>&1 || true
  awk '$5 == "unfenced" && $6 == "broker" { print $1 }' "$TOOLS_CONF/list-endpoints.txt"
}

# Whether the node logged that it finished starting (registered and unfenced)
# since its launch (or its log rolled over meanwhile: no telling): a cheap gate
# before the AdminClient round trip, which costs a JVM start that would slow the
# node's own start on a small machine.
started_up() {
  local mark=0
  [[ -f "$LOG_DIR/launch.line" ]] && mark="$(cat "$LOG_DIR/launch.line")"
  # One reader, no pipe: `grep -q` leaving a pipe early fails it under pipefail.
  awk -v mark="$mark" '/Kafka Server started/ && NR > mark { found = 1 }
    END { exit !(found || NR < mark) }' "$LOG_DIR/server.log" 2>/dev/null
}

launch() {
  log "starting node $NODE on 127.0.0.1:$PORT (dir $NODE_DIR)"
  wc -l 2>/dev/null <"$LOG_DIR/server.log" >"$LOG_DIR/launch.line" || echo 0 >"$LOG_DIR/launch.line"
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
}

# Waits until every node of $@ is alive, listens and counts as an unfenced broker.
wait_ready() {
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) node pid ready missing
  while ((SECONDS < deadline)); do
    missing=()
    for node in "$@"; do
      use_node "$node"
      if ! pid="$(running_pid)"; then
        # Give the wrapper a moment to write the pid file before declaring death.
        sleep 0.5
        if ! pid="$(running_pid)"; then
          log "node $node exited during startup; last log lines:"
          tail -n 30 "$LOG_DIR/server.log" "$LOG_DIR/stdout.log" >&2 2>/dev/null || true
          die "Kafka failed to start"
        fi
      fi
      # The port opens before the broker serves requests, so only use it and the
      # log as cheap gates before the real AdminClient round trip.
      { port_open "$PORT" && started_up; } || missing+=("$node")
    done
    if ((${#missing[@]} == 0)); then
      use_node "$1"
      ready="$(unfenced_brokers "127.0.0.1:$PORT" || true)"
      for node in "$@"; do
        grep -qx "$node" <<<"$ready" || missing+=("$node")
      done
      if ((${#missing[@]} == 0)); then
        log "ready: $(each_node client_address) (node(s) $*)"
        return 0
      fi
    fi
    sleep 0.5
  done
  log "node(s) ${missing[*]} did not answer within ${KAFKA_START_TIMEOUT}s; the cluster said:"
  cat "$TOOLS_CONF/list-endpoints.txt" >&2 2>/dev/null || true
  use_node "${missing[0]}"
  log "last log lines of node ${missing[0]}:"
  tail -n 30 "$LOG_DIR/server.log" >&2 2>/dev/null || true
  die "Kafka start timed out (left running; use '$0 stop')"
}

# Prints the folder of a running node of the other shape (one node / a cluster,
# or a larger cluster) in KAFKA_DIR: it holds the same ports.
other_shape_running() {
  local dir
  while read -r dir; do
    if [[ "$dir" == "$KAFKA_DIR" ]]; then
      ((KAFKA_BROKERS > 1)) || continue
    elif ((KAFKA_BROKERS > 1 && ${dir##*/node-} <= KAFKA_BROKERS)); then
      continue
    fi
    pid_in "$dir" >/dev/null && { echo "$dir"; return 0; }
  done < <(node_dirs)
  return 1
}

cmd_start() {
  local nodes=("${ALL_NODES[@]}") to_start=() node pid p other id pids=() failed=0
  [[ -z "${1:-}" ]] || nodes=("$1")
  if other="$(other_shape_running)"; then
    die "another Kafka runs from $other (KAFKA_BROKERS differs): '$0 stop' (make stop) first"
  fi
  ensure_libs
  write_tools_config
  for node in "${nodes[@]}"; do
    use_node "$node"
    if pid="$(running_pid)"; then
      log "node $node already running (pid $pid) on 127.0.0.1:$PORT"
      continue
    fi
    rm -f "$PID_FILE"
    for p in "$PORT" "$CONTROLLER_PORT" $( ((KAFKA_BROKERS == 1)) || echo "$INTERNAL_PORT"); do
      port_open "$p" && die "port $p of node $node is already in use by another process (set KAFKA_PORT and the others)"
    done
    write_config
    to_start+=("$node")
  done
  ((${#to_start[@]})) || return 0
  # Formatting costs a JVM start per node: in parallel.
  id="$(cluster_id)"
  for node in "${to_start[@]}"; do
    (use_node "$node"; format_storage_once "$id") &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "formatting failed"
  for node in "${to_start[@]}"; do
    use_node "$node"
    launch
  done
  wait_ready "${nodes[@]}"
}

# SIGTERM to every pid of $@ at once, wait, SIGKILL what still runs after the deadline.
stop_pids() {
  local pid deadline=$((SECONDS + KAFKA_STOP_TIMEOUT)) alive
  kill -TERM "$@" 2>/dev/null || true
  while ((SECONDS < deadline)); do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    sleep 0.2
  done
  log "still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL to ${alive[*]}"
  kill -KILL "${alive[@]}" 2>/dev/null || true
  for pid in "${alive[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
}

cmd_stop() {
  local dirs=() dir pid pids=()
  if [[ -n "${1:-}" ]]; then
    use_node "$1"
    dirs=("$NODE_DIR")
  else
    mapfile -t dirs < <(node_dirs)
  fi
  for dir in "${dirs[@]}"; do
    if pid="$(pid_in "$dir")"; then
      log "stopping pid $pid of $dir (SIGTERM: controlled shutdown)"
      pids+=("$pid")
    fi
  done
  if ((${#pids[@]} == 0)); then
    log "not running ($KAFKA_DIR${1:+, node $1})"
  else
    stop_pids "${pids[@]}"
    log "stopped"
  fi
  for dir in "${dirs[@]}"; do rm -f "$dir/kafka.pid"; done
}

cmd_kill() {
  local pid deadline=$((SECONDS + 15))
  use_node "${1:?usage: $0 kill NODE}"
  pid="$(running_pid)" || die "node $NODE is not running"
  log "SIGKILL to node $NODE (pid $pid)"
  kill -KILL "$pid"
  # Gone, and its sockets closed (the JVM's last threads may hold them a moment).
  while kill -0 "$pid" 2>/dev/null || port_open "$PORT"; do
    ((SECONDS < deadline)) || die "node $NODE still alive 15 s after SIGKILL"
    sleep 0.1
  done
  rm -f "$PID_FILE"
}

cmd_status() {
  local nodes=("${ALL_NODES[@]}") node pid name rc=0
  [[ -z "${1:-}" ]] || nodes=("$1")
  for node in "${nodes[@]}"; do
    use_node "$node"
    name="kafka"
    ((KAFKA_BROKERS == 1)) || name="kafka node $node"
    if ! pid="$(running_pid)"; then
      echo "$name: stopped ($NODE_DIR)"
      ((rc)) || rc=3
    elif port_open "$PORT"; then
      echo "$name: running (pid $pid) on 127.0.0.1:$PORT, dir $NODE_DIR"
    else
      echo "$name: process $pid alive but port $PORT closed (starting or stuck)"
      rc=1
    fi
  done
  return "$rc"
}

cmd_client_env() {
  # Addresses and numbers only: nothing to quote.
  echo "export KAFKA_BOOTSTRAP_SERVERS=$(each_node client_address)"
  echo "export KAFKA_REPLICATION_FACTOR=$REPLICATION"
  echo "export KAFKA_MIN_INSYNC_REPLICAS=$MIN_INSYNC"
}

cmd_list_topics() {
  local bs
  bs="$(each_node client_address)"
  case "${1:-}" in
    --bootstrap-server) bs="${2:?--bootstrap-server needs a value}" ;;
    --bootstrap-server=*) bs="${1#*=}" ;;
    "") ;;
    *) die "usage: $0 list-topics [--bootstrap-server H:P]" ;;
  esac
  ensure_libs
  write_tools_config
  list_topics "$bs"
}

case "${1:-}" in
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  kill) cmd_kill "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  bootstrap) each_node client_address ;;
  client-env) cmd_client_env ;;
  list-topics) shift; cmd_list_topics "$@" ;;
  libs) ensure_libs ;;
  *) echo "usage: $0 {start [NODE]|stop [NODE]|kill NODE|status [NODE]|bootstrap|client-env|list-topics [--bootstrap-server H:P]|libs}" >&2; exit 2 ;;
esac
