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
SCRIPT=restart-vs-zookeeper.sh
# shellcheck source=scripts/lib/side-by-side.sh
. "$ROOT/scripts/lib/side-by-side.sh"
need_zookeeper
need_rzk

WORK=$(mktemp -d "$BASE_DIR/rzk-restart.XXXXXX")
PID=
cleanup() {
  # A stopping server may write a snapshot of the whole tree first: allow a minute.
  stop_pid "$PID" 60
  if [ "$KEEP_DIR" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ZK_PORT RZK_PORT < <(free_ports 2)
# metricsProvider.httpPort=0: rzk's /metrics is off (nothing reads it here).
write_server_dir "$WORK/zk" "$ZK_PORT" 0 INFO
write_server_dir "$WORK/rzk" "$RZK_PORT" 0 INFO
server_commands "$WORK/zk" "$WORK/rzk"

fill() { # name port command...
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name/fill.log" 2>&1 &
  PID=$!
  wait_ready "$name" "$port" "$PID"
  note "filling $name with $NODES znodes"
  timeout 1800 "$RZK_BIN" bench --hosts "127.0.0.1:$port" --workload create --ops "$NODES" \
    --warmup 0 --sessions 16 --inflight 64 --value-size 100 --keep >"$WORK/$name/bench.log" \
    || die "filling $name failed (see $WORK/$name/bench.log)"
  stop_pid "$PID" 60
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
