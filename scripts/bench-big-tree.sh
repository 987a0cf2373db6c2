#!/usr/bin/env bash
# A big tree (BENCHMARKS.md, "10,000,000 znodes"): fill one server with N znodes of 100 B,
# run set 16x64 on it, then restart it and time the first answered getData("/").
#
#   bash scripts/bench-big-tree.sh rzk 10000000
#   ZK_HEAP=14g bash scripts/bench-big-tree.sh zookeeper 10000000 --restarts 1
#
# Options:
#   --snap-count C  snapCount (default 1000000: at 100,000 a 10M-node snapshot is due far
#                   more often than one takes)
#   --restarts R    restarts timed after the set run (default 2)
#   --dir DIR       where the temporary data directory goes (default ${TMPDIR:-/tmp})
# Environment:
#   RZK_BIN         rzk binary (default: cargo build --release -p rzk-server); its `bench`
#                   drives both servers
#   ZK_HEAP         ZooKeeper's -Xmx (default 14g)
#
# Prints the bench's throughput and server CPU per op for the fill and the set run, the
# server's VmHWM after them, and each restart's probe line. Only the server this script
# starts is stopped, by PID; the data directory is removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SCRIPT=bench-big-tree.sh
KIND=${1:-}
NODES=${2:-}
[ $# -ge 2 ] && shift 2
SNAP_COUNT=1000000
RESTARTS=2
BASE_DIR=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
  case "$1" in
    --snap-count) SNAP_COUNT=$2; shift ;;
    --restarts) RESTARTS=$2; shift ;;
    --dir) BASE_DIR=$2; shift ;;
    *) echo "$SCRIPT: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$KIND" in rzk|zookeeper) ;; *) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 2 ;; esac
[[ "$NODES" =~ ^[0-9]+$ ]] || { echo "$SCRIPT: N must be a number" >&2; exit 2; }
# shellcheck source=scripts/lib/side-by-side.sh
. "$ROOT/scripts/lib/side-by-side.sh"
need_rzk
[ "$KIND" = zookeeper ] && need_zookeeper

WORK=$(mktemp -d "$BASE_DIR/rzk-big-tree.XXXXXX")
PID=
cleanup() {
  # A stopping rzk writes a snapshot of the whole tree first: allow a few minutes.
  stop_pid "$PID" 300
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r PORT < <(free_ports 1)
write_server_dir "$WORK" "$PORT" 0 WARN
sed -i "s/^snapCount=.*/snapCount=$SNAP_COUNT/" "$WORK/zoo.cfg"
ZK_HEAP=${ZK_HEAP:-14g} server_commands "$WORK" "$WORK"
if [ "$KIND" = zookeeper ]; then CMD=("${ZK_CMD[@]}"); else CMD=("${RZK_CMD[@]}"); fi

(cd "$WORK" && exec "${CMD[@]}" >"$WORK/server.out" 2>&1) &
PID=$!
wait_ready "$KIND" "$PORT" "$PID"
bench() { "$RZK_BIN" bench --hosts "127.0.0.1:$PORT" --server-pid "$PID" "$@" 2>&1 | grep -E 'ops/s|peak RSS|^ +(µs|all) '; }
note "$KIND: fill $NODES znodes"
bench --workload create --ops "$NODES" --sessions 16 --inflight 64 --value-size 100 --keep --warmup 0
note "$KIND: set 16x64"
bench --workload set --sessions 16 --inflight 64 --value-size 100 --duration 15 --warmup 3
grep -E 'VmHWM|VmRSS' "/proc/$PID/status"
stop_pid "$PID" 300
PID=
for r in $(seq 1 "$RESTARTS"); do
  line=$(cd "$WORK" && timeout 600 python3 "$ROOT/scripts/restart-probe.py" "$PORT" "${CMD[@]}") \
    || die "restart $r failed (see $WORK/restart-probe-server.log)"
  echo "$KIND restart $r: $line"
done
du -sh "$WORK/data"
