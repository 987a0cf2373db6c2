#!/usr/bin/env bash
# The batching flags' effect: a grid of --batch-max-delay-micros x --batch-max-txns, each cell
# under light load (1 session x 1 in flight, 4 x 1) and heavy load (16 x 64), workloads set and
# create with 100-byte values, against a release rzk with fsync on. Every run gets a fresh
# server and data directory. Passes alternate direction (forward, backward, forward, ...) so
# drift on a shared machine spreads over all cells; the summary quotes each cell's median.
#
#   bash scripts/bench-batching.sh                 # 3 passes, about 40 minutes
#   PASSES=1 SECS=3 bash scripts/bench-batching.sh # rough, about 4 minutes
#
# Environment:
#   RZK_BIN    rzk binary (default: cargo build --release -p rzk-server, target/release/rzk)
#   DIR        where data directories go (default /var/tmp: the disk to measure)
#   PASSES     passes over the grid (default 3)
#   SECS       measured seconds per run (default 10; 2 s warmup before each)
#   DELAYS     --batch-max-delay-micros values (default "0 100 1000")
#   TXNS       --batch-max-txns values (default "1 64 4096"; 4096 is the default)
#   LOADS      sessions x inflight (default "1x1 4x1 16x64")
#   WORKLOADS  (default "set create")
#   BASE_BIN   optional: another rzk binary (e.g. a build from before the batching flags) run
#              without batching flags as one more cell, labelled "base"
#   PORT       client port (default 27419)
#   OUT        JSONL file of every run (default DIR/rzk-batching-TIMESTAMP.jsonl); the summary
#              table is printed at the end, and `bash scripts/bench-batching.sh --summary FILE`
#              prints it again from a saved file
# Only the servers this script starts are stopped, by PID; every loop is bounded.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

summary() { # jsonl
  python3 - "$1" <<'EOF'
import json, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["workload"], r["load"], r["delay_us"], r["max_txns"])
    if key not in runs:
        order.append(key)
    runs[key].append(r)
med = lambda xs: statistics.median(xs)
print("| workload | load | max delay µs | max txns | runs | throughput op/s | p50 µs | p99 µs | p99.9 µs | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
num = lambda v: (0, int(v)) if v.isdigit() else (1, 0)
for key in sorted(order, key=lambda k: (k[0] != "set", k[1] != "1x1", k[1] != "4x1", num(k[2]), num(k[3]))):
    rs = runs[key]
    w, load, d, t = key
    print(f"| {w} | {load} | {d} | {t} | {len(rs)} | {med([r['ops_per_sec'] for r in rs]):,.0f} "
          f"| {med([r['p50_us'] for r in rs]):,.0f} | {med([r['p99_us'] for r in rs]):,.0f} "
          f"| {med([r['p999_us'] for r in rs]):,.0f} "
          f"| {sum(r['errors'] for r in rs)} |")
EOF
}

if [ "${1:-}" = "--summary" ]; then
  summary "$2"
  exit 0
fi

DIR=${DIR:-/var/tmp}
PASSES=${PASSES:-3}
SECS=${SECS:-10}
DELAYS=${DELAYS:-"0 100 1000"}
TXNS=${TXNS:-"1 64 4096"}
LOADS=${LOADS:-"1x1 4x1 16x64"}
WORKLOADS=${WORKLOADS:-"set create"}
PORT=${PORT:-27419}
if [ -z "${RZK_BIN:-}" ]; then
  cargo build --release -q -p rzk-server
  RZK_BIN=${CARGO_TARGET_DIR:-target}/release/rzk
fi
OUT=${OUT:-$DIR/rzk-batching-$(date -u +%Y%m%dT%H%M%SZ).jsonl}

WORK=$(mktemp -d "$DIR/rzk-batching.XXXXXX")
SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cells=()
for w in $WORKLOADS; do
  for load in $LOADS; do
    for d in $DELAYS; do
      for t in $TXNS; do cells+=("$w $load $d $t"); done
    done
    if [ -n "${BASE_BIN:-}" ]; then cells+=("$w $load base -"); fi
  done
done

run_cell() { # workload load delay txns pass
  local w=$1 load=$2 d=$3 t=$4 pass=$5
  local sessions=${load%x*} inflight=${load#*x}
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  cat >"$WORK/zoo.cfg" <<EOF
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=127.0.0.1
forceSync=yes
maxClientCnxns=0
EOF
  if [ "$d" = base ]; then
    "$BASE_BIN" server --config "$WORK/zoo.cfg" 2>"$WORK/server.log" &
  else
    "$RZK_BIN" server --config "$WORK/zoo.cfg" --batch-max-txns "$t" \
      --batch-max-delay-micros "$d" 2>"$WORK/server.log" &
  fi
  SERVER_PID=$!
  local up=0
  for _ in $(seq 1 100); do
    if grep -q "serving standalone" "$WORK/server.log"; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" = 1 ] || { cat "$WORK/server.log" >&2; echo "server did not start" >&2; exit 1; }
  local report
  report=$("$RZK_BIN" bench --hosts "127.0.0.1:$PORT" --workload "$w" --sessions "$sessions" \
    --inflight "$inflight" --warmup 2 --duration "$SECS" --value-size 100 --keep --json)
  stop_server
  python3 - "$w" "$load" "$d" "$t" "$pass" "$report" >>"$OUT" <<'EOF'
import json, sys
w, load, d, t, p, report = sys.argv[1:]
r = json.loads(report)
lat = r["latency_us"]
print(json.dumps({
    "workload": w, "load": load, "delay_us": d, "max_txns": t, "pass": int(p),
    "ops_per_sec": r["throughput_ops_s"], "p50_us": lat["p50"], "p99_us": lat["p99"],
    "p999_us": lat["p999"],
    "errors": sum(r["errors"].values()) + r["unanswered"] + r["sessions_lost"]
    + r["protocol_errors"],
}))
EOF
  tail -n 1 "$OUT" >&2
}

echo "== $(git rev-parse --short HEAD 2>/dev/null) $(uname -r); load average: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT" >&2
for pass in $(seq 1 "$PASSES"); do
  if [ $((pass % 2)) = 1 ]; then
    for c in "${cells[@]}"; do run_cell $c "$pass"; done
  else
    for ((i = ${#cells[@]} - 1; i >= 0; i--)); do run_cell ${cells[$i]} "$pass"; done
  fi
  echo "== pass $pass done; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
summary "$OUT"
