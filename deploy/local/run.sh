#!/usr/bin/env bash
# Local multi-replica runner: N encoders and M decoders on loopback plus a real Prometheus (Debian's
# prometheus package) that scrapes them and evaluates deploy/prometheus/rules.
#
#   deploy/local/run.sh --encoders 2 --decoders 2 --model models/demo/base --adapter models/demo/icae
#
# Every replica gets --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0; the runner reads the
# "listening on HOST:PORT" / "metrics on HOST:PORT" lines they print (docs/operations.md), waits
# until each answers SERVING on grpc.health.v1 (deploy/local/health.py), writes a
# Prometheus config with those targets (labelled like the Kubernetes scrape: job, namespace, pod),
# starts Prometheus on a free port, and prints the addresses, also written to STATE_DIR/addresses.env:
#   ICAE_ENCODER_TARGET=ipv4:127.0.0.1:P1,127.0.0.1:P2   (a gRPC target for round_robin)
#   ICAE_DECODER_TARGET=...  ICAE_ENCODER_PIDS=...  ICAE_DECODER_PIDS=...  PROMETHEUS_URL=http://...
# then STATE_DIR/ready appears. It runs until SIGINT/SIGTERM (or --exit_after), then stops every
# process it started. A replica that dies is not restarted (tests kill one on purpose).
#
# --scrape JOB=HOST:PORT adds a target that the runner did not start (repeatable), e.g. to point
# Prometheus at other processes; --encoders 0 --decoders 0 with --scrape runs Prometheus alone.
#
# --redis first starts a shared slot store (Debian's redis-server on a free loopback port, no
# persistence), passes --slot_store redis://127.0.0.1:PORT to every encoder and decoder, writes
# ICAE_SLOT_STORE=redis://127.0.0.1:PORT to addresses.env, and stops it after the replicas.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${ICAE_PYTHON:-/usr/bin/python3}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
PROMTOOL="${PROMTOOL:-promtool}"
REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"

encoders=2
decoders=2
bin_dir="$ROOT/build/bin"
model="$ROOT/models/demo/base"
adapter="$ROOT/models/demo/icae"
encoder_flags=()
decoder_flags=()
extra_scrapes=()
scrape_interval=5s
state_dir=""
namespace=icae
with_prometheus=1
with_redis=0
exit_after=0
start_timeout=120

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --encoders N            encoder replicas (2)
  --decoders M            decoder replicas (2)
  --bin_dir DIR           where icae-encoder and icae-decoder are (build/bin)
  --model DIR             --model for every replica (models/demo/base)
  --adapter PATH          --adapter for every replica (models/demo/icae)
  --encoder_flag FLAG     extra flag for every encoder, e.g. --encoder_flag=--drain_seconds=2
  --decoder_flag FLAG     extra flag for every decoder
  --scrape JOB=HOST:PORT  extra scrape target (repeatable)
  --scrape_interval DUR   Prometheus scrape and rule evaluation interval (5s)
  --namespace NAME        namespace label on every target (icae)
  --state_dir DIR         logs, Prometheus config and data, addresses.env (default: temporary,
                          removed on exit)
  --no_prometheus         start the replicas only
  --redis                 start a redis-server ($REDIS_SERVER, default /usr/bin/redis-server) as
                          the shared slot store of every replica (docs/operations.md)
  --exit_after SECONDS    stop by itself after this long (default: run until a signal)
  --start_timeout SECONDS how long a replica may take to print its addresses (120)
EOF
}

die() { echo "run.sh: $*" >&2; exit 1; }

while (( $# )); do
  arg="$1"
  case "$arg" in
    --*=*) set -- "${arg%%=*}" "${arg#*=}" "${@:2}"; continue ;;
  esac
  case "$arg" in
    --encoders) encoders="$2"; shift 2 ;;
    --decoders) decoders="$2"; shift 2 ;;
    --bin_dir) bin_dir="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --adapter) adapter="$2"; shift 2 ;;
    --encoder_flag) encoder_flags+=("$2"); shift 2 ;;
    --decoder_flag) decoder_flags+=("$2"); shift 2 ;;
    --scrape) extra_scrapes+=("$2"); shift 2 ;;
    --scrape_interval) scrape_interval="$2"; shift 2 ;;
    --namespace) namespace="$2"; shift 2 ;;
    --state_dir) state_dir="$2"; shift 2 ;;
    --no_prometheus) with_prometheus=0; shift ;;
    --redis) with_redis=1; shift ;;
    --exit_after) exit_after="$2"; shift 2 ;;
    --start_timeout) start_timeout="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done
[[ "$encoders" =~ ^[0-9]+$ && "$decoders" =~ ^[0-9]+$ ]] || die "--encoders/--decoders take a count"

remove_state=0
if [[ -z "$state_dir" ]]; then
  state_dir="$(mktemp -d -t icae-local.XXXXXX)"
  remove_state=1
fi
mkdir -p "$state_dir"
rm -f "$state_dir/ready" "$state_dir/addresses.env"

# --- process bookkeeping: only what this script started is ever signalled --------------------
child_pids=()
# Stopped after child_pids: the slot store outlives the replicas' drain.
late_pids=()

# stop_pids PID...: SIGTERM; replicas drain (--drain_seconds), so they get up to 15 s to exit,
# then SIGKILL.
stop_pids() {
  local pid deadline=$((SECONDS + 15))
  for pid in "$@"; do
    kill -TERM "$pid" 2> /dev/null || true
  done
  for pid in "$@"; do
    while kill -0 "$pid" 2> /dev/null && (( SECONDS < deadline )); do sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pids ${child_pids[@]+"${child_pids[@]}"}
  stop_pids ${late_pids[@]+"${late_pids[@]}"}
  rm -f "$state_dir/ready"
  if (( remove_state )); then rm -rf "$state_dir"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

http_ok() {  # http_ok URL: exit 0 when URL answers 200
  "$PYTHON" - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

redis_ping() {  # redis_ping PORT: exit 0 when a Redis on 127.0.0.1:PORT answers PING
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}

# Starts redis-server on a free loopback port, without RDB snapshots or AOF (the slot store is a
# cache); sets slot_store_url and redis_pid.
start_redis() {
  local attempt port pid deadline
  [[ -x "$REDIS_SERVER" ]] || die "$REDIS_SERVER not found (Debian: apt-get install redis-server)"
  for attempt in 1 2 3; do
    port="$(free_port)"
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$state_dir" > "$state_dir/redis.log" 2>&1 < /dev/null &
    pid=$!
    late_pids+=("$pid")
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2> /dev/null && (( SECONDS < deadline )); do
      if redis_ping "$port"; then
        redis_pid="$pid"
        slot_store_url="redis://127.0.0.1:$port"
        echo "redis: $slot_store_url pid $pid"
        return 0
      fi
      sleep 0.1
    done
    # Not answering (e.g. the port was taken meanwhile): stop it and try another port.
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    unset 'late_pids[-1]'  # reaped: its pid may be reused, never signal it again
  done
  cat "$state_dir/redis.log" >&2
  die "redis-server did not start"
}

# wait_for_line FILE PID WORDS: prints the HOST:PORT following "WORDS " in FILE once it appears.
wait_for_line() {
  local file="$1" pid="$2" words="$3" deadline=$((SECONDS + start_timeout)) found
  while (( SECONDS < deadline )); do
    found="$(sed -n "s/.*${words} \([^[:space:]]*:[0-9][0-9]*\).*/\1/p" "$file" 2> /dev/null |
      head -n 1)"
    if [[ -n "$found" ]]; then echo "$found"; return 0; fi
    kill -0 "$pid" 2> /dev/null || { echo "run.sh: pid $pid exited before printing '$words'" >&2; return 1; }
    sleep 0.1
  done
  echo "run.sh: no '$words' line in $file after ${start_timeout}s" >&2
  return 1
}

# start_replicas SVC COUNT: starts COUNT replicas of icae-SVC; appends "job=grpc=metrics=pid" lines.
replicas=()
start_replicas() {
  local svc="$1" count="$2" binary="$bin_dir/icae-$1" i pid grpc metrics
  local -n extra="${svc}_flags"
  (( count > 0 )) || return 0
  [[ -x "$binary" ]] || die "$binary not found (build it, or pass --bin_dir)"
  for (( i = 0; i < count; i++ )); do
    "$binary" --model "$model" --adapter "$adapter" --listen 127.0.0.1:0 \
      --metrics_listen 127.0.0.1:0 ${extra[@]+"${extra[@]}"} \
      > "$state_dir/$svc-$i.out" 2> "$state_dir/$svc-$i.err" < /dev/null &
    pid=$!
    child_pids+=("$pid")
    replicas+=("icae-$svc $i $pid")
  done
}

# Collects the addresses once every replica printed them (they load their models in parallel).
declare -A grpc_of metrics_of
collect_addresses() {
  local entry job i pid svc
  for entry in ${replicas[@]+"${replicas[@]}"}; do
    read -r job i pid <<< "$entry"
    svc="${job#icae-}"
    grpc_of["$job $i"]="$(wait_for_line "$state_dir/$svc-$i.out" "$pid" "listening on")" ||
      { cat "$state_dir/$svc-$i.err" >&2; die "$job $i did not start"; }
    metrics_of["$job $i"]="$(wait_for_line "$state_dir/$svc-$i.out" "$pid" "metrics on")" ||
      { cat "$state_dir/$svc-$i.err" >&2; die "$job $i did not start"; }
  done
  # "listening on" comes before the model is loaded: wait for grpc.health.v1 SERVING.
  for entry in ${replicas[@]+"${replicas[@]}"}; do
    read -r job i pid <<< "$entry"
    wait_serving "${grpc_of["$job $i"]}" "$pid" ||
      { cat "$state_dir/${job#icae-}-$i.err" >&2; die "$job $i did not become SERVING"; }
    echo "$job $i: grpc ${grpc_of["$job $i"]} metrics ${metrics_of["$job $i"]} pid $pid"
  done
}

# wait_serving HOST:PORT PID: until the health check answers SERVING, the process dies, or
# --start_timeout runs out.
wait_serving() {
  local deadline=$((SECONDS + start_timeout))
  while (( SECONDS < deadline )); do
    "$PYTHON" "$ROOT/deploy/local/health.py" "$1" --wait 1 > /dev/null && return 0
    kill -0 "$2" 2> /dev/null || { echo "run.sh: pid $2 exited before SERVING" >&2; return 1; }
  done
  echo "run.sh: $1 not SERVING after ${start_timeout}s" >&2
  return 1
}

# Prints a Prometheus configuration scraping every replica and --scrape target.
write_prometheus_config() {
  local timeout="$scrape_interval" entry job i pid addr n=0 last_job=""
  echo "# Written by deploy/local/run.sh."
  echo "global:"
  echo "  scrape_interval: $scrape_interval"
  echo "  scrape_timeout: $timeout"
  echo "  evaluation_interval: $scrape_interval"
  echo "rule_files:"
  for f in "$ROOT"/deploy/prometheus/rules/*.yml; do echo "- '$f'"; done
  echo "scrape_configs:"
  # One job per service name; one static group per target, for its pod label.
  local lines=()
  for entry in ${replicas[@]+"${replicas[@]}"}; do
    read -r job i pid <<< "$entry"
    lines+=("$job ${metrics_of["$job $i"]} $job-$i")
  done
  for entry in ${extra_scrapes[@]+"${extra_scrapes[@]}"}; do
    [[ "$entry" == *=*:* ]] || die "--scrape takes JOB=HOST:PORT, got $entry"
    lines+=("${entry%%=*} ${entry#*=} ${entry%%=*}-x$n")
    n=$((n + 1))
  done
  while read -r job addr pod; do
    [[ -n "$job" ]] || continue
    if [[ "$job" != "$last_job" ]]; then
      echo "- job_name: '$job'"
      echo "  static_configs:"
      last_job="$job"
    fi
    echo "  - targets: ['$addr']"
    echo "    labels: {namespace: '$namespace', pod: '$pod'}"
  done < <(printf '%s\n' ${lines[@]+"${lines[@]}"} | sort -s -k1,1)
}

start_prometheus() {
  local config="$state_dir/prometheus.yml" port attempt pid
  write_prometheus_config > "$config"
  "$PROMTOOL" check config "$config" > "$state_dir/promtool.log" 2>&1 ||
    { cat "$state_dir/promtool.log" >&2; die "invalid Prometheus config $config"; }
  for attempt in 1 2 3; do
    port="$(free_port)"
    "$PROMETHEUS" --config.file="$config" --storage.tsdb.path="$state_dir/prometheus-data" \
      --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1d \
      --log.level=warn > "$state_dir/prometheus.log" 2>&1 < /dev/null &
    pid=$!
    child_pids+=("$pid")
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2> /dev/null && (( SECONDS < deadline )); do
      if http_ok "http://127.0.0.1:$port/-/ready"; then
        prometheus_url="http://127.0.0.1:$port"
        prometheus_pid="$pid"
        return 0
      fi
      sleep 0.2
    done
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  cat "$state_dir/prometheus.log" >&2
  die "Prometheus did not become ready"
}

join_targets() {  # join_targets JOB: "ipv4:a,b" over the job's gRPC addresses, or empty
  local out=() entry job i pid
  for entry in ${replicas[@]+"${replicas[@]}"}; do
    read -r job i pid <<< "$entry"
    [[ "$job" == "$1" ]] && out+=("${grpc_of["$job $i"]}")
  done
  (( ${#out[@]} )) && { local IFS=,; echo "ipv4:${out[*]}"; } || echo ""
}

join_pids() {
  local out=() entry job i pid
  for entry in ${replicas[@]+"${replicas[@]}"}; do
    read -r job i pid <<< "$entry"
    [[ "$job" == "$1" ]] && out+=("$pid")
  done
  local IFS=,; echo "${out[*]}"
}

slot_store_url=""
redis_pid=""
if (( with_redis )); then
  start_redis
  # Ahead of the --encoder_flag / --decoder_flag values, which can still override it.
  encoder_flags=("--slot_store=$slot_store_url" ${encoder_flags[@]+"${encoder_flags[@]}"})
  decoder_flags=("--slot_store=$slot_store_url" ${decoder_flags[@]+"${decoder_flags[@]}"})
fi
start_replicas encoder "$encoders"
start_replicas decoder "$decoders"
collect_addresses
prometheus_url=""
prometheus_pid=""
if (( with_prometheus )); then
  start_prometheus
fi

{
  echo "ICAE_ENCODER_TARGET=$(join_targets icae-encoder)"
  echo "ICAE_DECODER_TARGET=$(join_targets icae-decoder)"
  echo "ICAE_ENCODER_PIDS=$(join_pids icae-encoder)"
  echo "ICAE_DECODER_PIDS=$(join_pids icae-decoder)"
  echo "PROMETHEUS_URL=$prometheus_url"
  echo "PROMETHEUS_PID=$prometheus_pid"
  echo "ICAE_SLOT_STORE=$slot_store_url"
  echo "ICAE_REDIS_PID=$redis_pid"
  echo "ICAE_STATE_DIR=$state_dir"
} > "$state_dir/addresses.env.tmp"
mv "$state_dir/addresses.env.tmp" "$state_dir/addresses.env"
cat "$state_dir/addresses.env"
touch "$state_dir/ready"
echo "ready (Ctrl-C stops everything)"

started=$SECONDS
while (( exit_after == 0 || SECONDS - started < exit_after )); do
  sleep 1 &
  wait $! || true
done
