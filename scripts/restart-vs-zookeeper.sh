#!/usr/bin/env bash
# Restart side by side: fill Apache ZooKeeper 3.8 (Debian's package) and rzk with the same
# number of znodes, stop both, then restart each several times, in alternation, timing from
# spawning the process to the answer of a getData("/") on a fresh session
# (scripts/restart-probe.py). Prints every run and the medians.
#
#   bash scripts/restart-vs-zookeeper.sh                  # 1,000,000 znodes, 3 restarts each
#   bash scripts/restart-vs-zookeeper.sh --nodes 200000 --runs 5
#
# Options:
#   --nodes N     znodes created in each server (100-byte values; default 1000000)
#   --runs R      restarts of each server (default 3)
#   --dir DIR     where the temporary data directories go (default ${TMPDIR:-/tmp})
#   --keep-dir    keep the temporary directory (configs, logs)
# Environment:
#   RZK_BIN       rzk binary (default: cargo build --release -p rzk-server, target/release/rzk)
#   ZK_HEAP       ZooKeeper's -Xmx (default 2g)
#
# Both servers get one zoo.cfg (differing only in dataDir and clientPort): forceSync=yes,
# snapCount=100000, autopurge off, admin server off. Every loop is bounded; only the servers
# this script starts are stopped, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
NODES=1000000
RUNS=3
KEEP_DIR=0
BASE_DIR=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --dir) BASE_DIR=$2; shift ;;
    --keep-dir) KEEP_DIR=1 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "restart-vs-zookeeper.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "restart-vs-zookeeper.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }
J=/usr/share/java
for jar in zookeeper.jar zookeeper-jute.jar slf4j-api.jar slf4j-log4j12.jar log4j-1.2.jar; do
  [ -f "$J/$jar" ] || die "$J/$jar missing: apt-get install zookeeper (scripts/test.sh installs it)"
done
command -v java >/dev/null || die "java missing: apt-get install default-jdk-headless"
if [ -z "${RZK_BIN:-}" ]; then
  note "building rzk (release)"
  cargo build --release -q -p rzk-server
  RZK_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rzk
fi
[ -x "$RZK_BIN" ] || die "RZK_BIN=$RZK_BIN is not an executable"

WORK=$(mktemp -d "$BASE_DIR/rzk-restart.XXXXXX")
PID=
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  # A stopping server may write a snapshot of the whole tree first: allow a minute.
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$PID"
  if [ "$KEEP_DIR" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ZK_PORT RZK_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
for s in zk rzk; do
  mkdir -p "$WORK/$s/data"
  if [ $s = zk ]; then port=$ZK_PORT; else port=$RZK_PORT; fi
  cat >"$WORK/$s/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/$s/data
clientPort=$port
clientPortAddress=127.0.0.1
forceSync=yes
snapCount=100000
maxClientCnxns=0
autopurge.purgeInterval=0
4lw.commands.whitelist=*
admin.enableServer=false
metricsProvider.httpPort=0
EOF
done
cat >"$WORK/zk/log4j.properties" <<EOF
log4j.rootLogger=INFO, F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=$WORK/zk/zookeeper.log
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d %p %c{1}: %m%n
EOF
CP=$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-api.jar:$J/slf4j-log4j12.jar:$J/log4j-1.2.jar
ZK_CMD=(java "-Xmx${ZK_HEAP:-2g}" -cp "$CP" -Dzookeeper.log.dir="$WORK/zk"
  -Dlog4j.configuration="file:$WORK/zk/log4j.properties"
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$WORK/zk/zoo.cfg")
RZK_CMD=("$RZK_BIN" server --config "$WORK/rzk/zoo.cfg")

srvr() { # port -> the srvr answer, empty if none within 2 s
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf srvr >&3 && cat <&3" 2>/dev/null || true
}
fill() { # name port command...
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name/fill.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    kill -0 "$PID" 2>/dev/null || die "$name exited at startup (rerun with --keep-dir for its log)"
    if srvr "$port" | grep -q '^Mode:'; then break; fi
    sleep 0.2
  done
  note "filling $name with $NODES znodes"
  timeout 1800 "$RZK_BIN" bench --hosts "127.0.0.1:$port" --workload create --ops "$NODES" \
    --warmup 0 --sessions 16 --inflight 64 --value-size 100 --keep >"$WORK/$name/bench.log" \
    || die "filling $name failed (see $WORK/$name/bench.log)"
  stop_pid "$PID"
  PID=
}
fill zk "$ZK_PORT" "${ZK_CMD[@]}"
fill rzk "$RZK_PORT" "${RZK_CMD[@]}"

declare -A TIMES
for run in $(seq 1 "$RUNS"); do
  # Alternate which server goes first.
  if [ $((run % 2)) = 1 ]; then order="zk rzk"; else order="rzk zk"; fi
  for s in $order; do
    if [ $s = zk ]; then port=$ZK_PORT cmd=("${ZK_CMD[@]}"); else port=$RZK_PORT cmd=("${RZK_CMD[@]}"); fi
    line=$(cd "$WORK/$s" && timeout 300 python3 "$ROOT/scripts/restart-probe.py" "$port" "${cmd[@]}") \
      || die "restarting $s failed (see $WORK/$s/restart-probe-server.log; --keep-dir keeps it)"
    echo "$s run $run: $line"
    TIMES[$s]+="${line%% s *} "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
zk_median=$(echo "${TIMES[zk]}" | median)
rzk_median=$(echo "${TIMES[rzk]}" | median)
echo
echo "restart with $NODES znodes of 100 B, to the first answered getData (median of $RUNS):"
echo "  Apache ZooKeeper: ${zk_median} s"
echo "  rzk: ${rzk_median} s ($(python3 -c "print(f'{$rzk_median / $zk_median:.2f}')")x)"
