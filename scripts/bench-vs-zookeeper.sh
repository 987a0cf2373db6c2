#!/usr/bin/env bash
# Side by side: Apache ZooKeeper 3.8 (Debian's package) and rzk, standalone, same settings,
# same load generator (rzk bench), workloads run against each server in alternation.
#
#   bash scripts/bench-vs-zookeeper.sh            # about 2.5 minutes
#   bash scripts/bench-vs-zookeeper.sh --quick    # under 40 s, rough figures
#
# Options:
#   --quick          short windows (figures are rough; for checking the script works)
#   --dir DIR        where the temporary data directories go (pick the disk to measure;
#                    default ${TMPDIR:-/tmp}); both servers' data live on that one disk
#   --keep-dir       keep the temporary directory (configs, logs, JSON reports, plots)
#   --out DIR        also copy the JSON reports and SVG plots there
# Environment:
#   RZK_BIN          rzk binary (default: cargo build --release -p rzk-server, target/release/rzk)
#   RZK_BENCH        load generator command (default: "$RZK_BIN bench" when the binary has the
#                    subcommand, else the rzk-loadgen example built with cargo)
#   ZK_HEAP          ZooKeeper's -Xmx (default 2g)
#
# Both servers get one zoo.cfg (differing only in dataDir and clientPort): forceSync=yes
# (fsync on), snapCount=100000, preAllocSize default, autopurge off, admin server off.
# Server CPU per op is user+sys of the server process over each measured window divided by
# the requests answered; peak RSS is the server's VmHWM at the end of each workload.
# Every loop is bounded; only the two servers this script starts are stopped, by PID.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
QUICK=0
KEEP_DIR=0
BASE_DIR=${TMPDIR:-/tmp}
OUT_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --keep-dir) KEEP_DIR=1 ;;
    --dir) BASE_DIR=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-vs-zookeeper.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

SCRIPT=bench-vs-zookeeper.sh
# shellcheck source=scripts/lib/side-by-side.sh
. "$ROOT/scripts/lib/side-by-side.sh"
need_zookeeper

# --- binaries -------------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RZK_FROM=
if [ -n "${RZK_BIN:-}" ]; then RZK_FROM=" (rzk: RZK_BIN=$RZK_BIN, not built here)"; fi
need_rzk
if [ -z "${RZK_BENCH:-}" ]; then
  if "$RZK_BIN" bench --help >/dev/null 2>&1; then
    RZK_BENCH="$RZK_BIN bench"
  else
    note "building the load generator (rzk-loadgen example, release)"
    cargo build --release -q -p rzk-loadgen --example rzk-bench
    RZK_BENCH=$TARGET/release/examples/rzk-bench
  fi
fi
read -r -a BENCH <<<"$RZK_BENCH"

# --- temporary directory, ports, configs ----------------------------------------------------
WORK=$(mktemp -d "$BASE_DIR/rzk-vs-zk.XXXXXX")
ZK_PID=
RZK_PID=
cleanup() {
  stop_pid "$ZK_PID"
  stop_pid "$RZK_PID"
  if [ "$KEEP_DIR" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ZK_PORT RZK_PORT METRICS_PORT < <(free_ports 3)
# rzk serves /metrics on METRICS_PORT, where `rzk bench --server-metrics` reads the stage
# times.
write_server_dir "$WORK/zk" "$ZK_PORT" "$METRICS_PORT" WARN
write_server_dir "$WORK/rzk" "$RZK_PORT" "$METRICS_PORT" WARN
mkdir -p "$WORK/reports"
server_commands "$WORK/zk" "$WORK/rzk"

note "starting ZooKeeper on 127.0.0.1:$ZK_PORT and rzk on 127.0.0.1:$RZK_PORT (data under $WORK)"
"${ZK_CMD[@]}" >"$WORK/zk/stdout.log" 2>&1 &
ZK_PID=$!
"${RZK_CMD[@]}" >"$WORK/rzk/server.log" 2>&1 &
RZK_PID=$!
wait_ready ZooKeeper "$ZK_PORT" "$ZK_PID"
wait_ready rzk "$RZK_PORT" "$RZK_PID"
ZK_VERSION=$(srvr "$ZK_PORT" | sed -n 's/^Zookeeper version: \([^-,]*\).*/\1/p')

# --- workloads ------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  DUR=1.5; WARM=0.5; JIT_WARM=2
else
  DUR=6; WARM=2; JIT_WARM=6
fi
# name | flags. Create workloads keep their nodes (deleting 100k+ nodes would dominate the
# run); every later workload sees the same bigger tree on both servers.
WORKLOADS=(
  "create closed-loop|--workload create --closed-loop --keep"
  "get closed-loop|--workload get --closed-loop"
  "set 16x64|--workload set --sessions 16 --inflight 64"
  "get 16x64|--workload get --sessions 16 --inflight 64"
  "mixed:90 16x64|--workload mixed:90 --sessions 16 --inflight 64"
  "create 16x64|--workload create --sessions 16 --inflight 64 --keep"
)

bench() { # server port pid json flags...
  local server=$1 port=$2 pid=$3 json=$4
  shift 4
  local label=rzk
  local extra=(--server-metrics "http://127.0.0.1:$METRICS_PORT/metrics")
  if [ "$server" = zk ]; then label="ZooKeeper ${ZK_VERSION:-3.8}"; extra=(); fi
  timeout 300 "${BENCH[@]}" --hosts "127.0.0.1:$port" --server-pid "$pid" --label "$label" \
    --json --save "$json" "${extra[@]}" "$@" >/dev/null \
    || die "rzk bench against $server failed (flags: $*)"
  kill -0 "$pid" 2>/dev/null || die "$server died during: $*"
}

# The JVM compiles its hot paths during the first seconds of load; warm both servers the
# same way before anything is measured.
note "warming both servers (${JIT_WARM}s of mixed load each, not measured)"
for s in zk rzk; do
  if [ $s = zk ]; then port=$ZK_PORT pid=$ZK_PID; else port=$RZK_PORT pid=$RZK_PID; fi
  bench "$s" "$port" "$pid" "$WORK/reports/warm-$s.json" --workload mixed:50 --sessions 8 \
    --inflight 16 --duration "$JIT_WARM" --warmup 0
done

i=0
for entry in "${WORKLOADS[@]}"; do
  name=${entry%%|*}
  read -r -a flags <<<"${entry#*|}"
  i=$((i + 1))
  # Alternate which server goes first, so neither always runs on a just-idled machine.
  if [ $((i % 2)) = 1 ]; then order="zk rzk"; else order="rzk zk"; fi
  for s in $order; do
    if [ $s = zk ]; then port=$ZK_PORT pid=$ZK_PID; else port=$RZK_PORT pid=$RZK_PID; fi
    note "$name: $s"
    bench "$s" "$port" "$pid" "$WORK/reports/$i-$s.json" "${flags[@]}" \
      --duration "$DUR" --warmup "$WARM"
  done
  "${BENCH[@]}" --plot-compare "$WORK/reports/$i-zk.json" "$WORK/reports/$i-rzk.json" \
    --plot "$WORK/reports/$i.svg" 2>/dev/null
done

# --- table ----------------------------------------------------------------------------------
GIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then GIT="$GIT+dirty"; fi
DEVICE=$(df --output=source,fstype "$WORK" 2>/dev/null | tail -1 | tr -s ' ')
echo
echo "rzk vs Apache ZooKeeper ${ZK_VERSION:-3.8}, standalone, fsync on (forceSync=yes), snapCount=100000"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ) | git $GIT$RZK_FROM | kernel $(uname -r) | nproc $(nproc) |" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "data disk: $DEVICE ($WORK) | ZooKeeper -Xmx${ZK_HEAP:-2g} | window ${DUR}s after ${WARM}s warmup |" \
  "client and servers share the machine"
python3 - "$WORK/reports" "${#WORKLOADS[@]}" "${WORKLOADS[@]}" <<'EOF'
import json, sys
folder, n = sys.argv[1], int(sys.argv[2])
names = [w.split("|")[0] for w in sys.argv[3:3 + n]]
rows = []
def add(fig, zk, rzk, unit, fmt="{:,.0f}"):
    z = "-" if zk is None else fmt.format(zk) + unit
    r = "-" if rzk is None else fmt.format(rzk) + unit
    ratio = "-" if not zk or rzk is None else "{:.2f}".format(rzk / zk)
    rows.append((fig, z, r, ratio))
peak = {"zk": 0, "rzk": 0}
for i, name in enumerate(names, 1):
    rep = {s: json.load(open(f"{folder}/{i}-{s}.json")) for s in ("zk", "rzk")}
    def get(s, *path):
        v = rep[s]
        for k in path:
            v = v[k]
        return v
    closed = "closed-loop" in name
    if not closed:
        add(f"{name}: throughput", get("zk", "throughput_ops_s"), get("rzk", "throughput_ops_s"), " op/s")
    add(f"{name}: p50", get("zk", "latency_us", "p50"), get("rzk", "latency_us", "p50"), " µs")
    add(f"{name}: p99", get("zk", "latency_us", "p99"), get("rzk", "latency_us", "p99"), " µs")
    add(f"{name}: p99.9", get("zk", "latency_us", "p999"), get("rzk", "latency_us", "p999"), " µs")
    if closed:
        add(f"{name}: max", get("zk", "latency_us", "max"), get("rzk", "latency_us", "max"), " µs")
    cpu = {s: (rep[s]["server"] or {}).get("cpu_us_per_op") for s in rep}
    add(f"{name}: server CPU per op", cpu["zk"], cpu["rzk"], " µs", "{:,.1f}")
    errs = {s: sum(rep[s]["errors"].values()) + rep[s]["unanswered"] + rep[s]["sessions_lost"]
            + rep[s]["protocol_errors"] for s in rep}
    if any(errs.values()):
        add(f"{name}: ERRORS (errors+unanswered+lost)", errs["zk"], errs["rzk"], "")
    for s in rep:
        peak[s] = max(peak[s], (rep[s]["server"] or {}).get("peak_rss_kb") or 0)
        for p in rep[s]["problems"]:
            print(f"  problem ({name}, {s}): {p}", file=sys.stderr)
add("peak RSS at the end (VmHWM)", peak["zk"] / 1024, peak["rzk"] / 1024, " MB", "{:,.1f}")
w = [max(len(r[c]) for r in rows + [("figure", "ZooKeeper", "rzk", "rzk/ZK")]) for c in range(4)]
def line(r):
    print(f"| {r[0]:<{w[0]}} | {r[1]:>{w[1]}} | {r[2]:>{w[2]}} | {r[3]:>{w[3]}} |")
line(("figure", "ZooKeeper", "rzk", "rzk/ZK"))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    line(r)
print()
print("rzk: mean µs per pipeline stage over each window (rzk bench --server-metrics)")
order = ["queue", "prep", "log", "quorum", "apply", "reply"]
for i, name in enumerate(names, 1):
    stages = json.load(open(f"{folder}/{i}-rzk.json")).get("server_stages") or {}
    if stages:
        cells = " · ".join(f"{k} {stages[k]['mean_us']:,.1f}" for k in order if k in stages)
        print(f"  {name:<20} {cells}")
    else:
        print(f"  {name:<20} (no requests reached the core)")
EOF
echo "(ratio rzk/ZK: above 1 is better for throughput, below 1 is better for latency, CPU and RSS)"
if [ -n "$OUT_DIR" ]; then
  mkdir -p "$OUT_DIR"
  cp "$WORK"/reports/*.json "$WORK"/reports/*.svg "$OUT_DIR"/
  echo "reports and plots copied to $OUT_DIR"
fi
