#!/usr/bin/env python3
"""Side by side on one machine: a 3-voter rzk ensemble and a 3-voter Apache ZooKeeper 3.8
ensemble, the same zoo.cfg keys (forceSync=yes, tickTime=2000, initLimit=10, syncLimit=5),
the same load from `rzk bench`, one after the other in the same run.

Figures (medians of --runs runs each, ratios rzk/ZK):
- set and create, 16 sessions x 64 in flight, sessions spread over the three servers:
  throughput, p50/p99, and server CPU per op summed over the three processes;
- get, 16 x 64, spread: throughput;
- closed-loop create through a follower: p50 and p99 (a forward, a quorum round, the reply);
- failover: SIGKILL of the leader to the first acknowledged write of a client connected to
  every server;
- with --snap: p99.9 and max of writes (4 sessions x 4 in flight to the two other servers,
  6 s) while a follower far behind a 200,000-znode tree is brought back by SNAP 1 s into
  the window, beside the same load steady.

Usage (from the repository root, with the test venv that scripts/test.sh makes):
  .venv-test/bin/python scripts/bench-ensemble-vs-zookeeper.py [--runs 3] [--duration 6]
RZK_BIN picks the rzk binary (default target/release/rzk, built if missing). ZooKeeper gets
-Xmx2g per server and its full JIT. The machine is shared with the load generator: compare
ratios, not absolute figures.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402
from zkensemble import Ensemble  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def bench(rzk, hosts, pids, args, duration):
    span = ["--duration", str(duration), "--warmup", "2"] if duration else ["--warmup", "0"]
    cmd = [rzk, "bench", "--hosts", hosts, *span, "--json", *args]
    before = sum(cpu_seconds(p) for p in pids)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    after = sum(cpu_seconds(p) for p in pids)
    if out.returncode != 0:
        raise RuntimeError("rzk bench failed (%s): %s" % (" ".join(cmd), out.stderr[-2000:]))
    report = json.loads(out.stdout)
    ops = report["ops"] + report.get("warmup_ops", 0)
    report["cpu_us_per_op"] = (after - before) * 1e6 / max(ops, 1)
    return report


def pct(report, p):
    lat = report.get("latency_us") or report.get("latency") or {}
    return lat.get(p) or lat.get("p%s" % p.lstrip("p"))


def failover_ms(e):
    leader = e.leader()
    client = KazooClient(hosts=e.hosts(), timeout=10.0, connection_retry=dict(max_tries=-1, delay=0.01, max_delay=0.1))
    client.start(timeout=20)
    try:
        client.ensure_path("/failover")
        os.kill(e[leader].proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        i = 0
        while time.monotonic() - killed < 30:
            try:
                client.create("/failover/n%d" % i, b"x")
                return (time.monotonic() - killed) * 1000
            except KazooException:
                i += 1
                time.sleep(0.005)
        raise RuntimeError("no write within 30 s of the leader's death")
    finally:
        client.stop()
        client.close()


def run_kind(kind, rzk, workdir, runs, duration):
    rows = {}
    for run in range(runs):
        e = Ensemble(
            kind,
            workdir / ("%s-%d" % (kind, run)),
            voters=3,
            tick_time=2000,
            extra_cfg={"forceSync": "yes", "snapCount": "100000"},
            jvm_fast_start=False,
            jvm_heap="2g",
        )
        e.start(timeout=60)
        try:
            leader = e.leader()
            follower = next(s for s in e.ids if s != leader)
            pids = [e[s].proc.pid for s in e.ids]
            hosts = e.hosts()
            # The JVM compiles its hot paths in the first seconds of load: warm both kinds alike.
            bench(rzk, hosts, pids, ["--workload", "mixed:50", "--sessions", "8", "--inflight", "8"], 6)
            loads = [
                ("set 16x64", hosts, ["--workload", "set", "--sessions", "16", "--inflight", "64"]),
                ("create 16x64", hosts, ["--workload", "create", "--sessions", "16", "--inflight", "64", "--keep"]),
                ("get 16x64", hosts, ["--workload", "get", "--sessions", "16", "--inflight", "64"]),
                ("create closed-loop via a follower", e[follower].hosts, ["--workload", "create", "--closed-loop"]),
            ]
            for name, h, args in loads:
                r = bench(rzk, h, pids, args, duration)
                rows.setdefault(name, []).append(r)
            rows.setdefault("failover", []).append(failover_ms(e))
        finally:
            e.stop_all()
    return rows


def log_text(server):
    return server.log_path.read_text(errors="replace")


def snap_run(kind, rzk, workdir, run, znodes):
    """(steady p99.9, p99.9 while a follower is SNAP-synced, whether a SNAP was seen)."""
    e = Ensemble(
        kind,
        workdir / ("%s-snap-%d" % (kind, run)),
        voters=3,
        tick_time=2000,
        # ZooKeeper 3.8 would rather DIFF from its txn logs when they are small next to the
        # snapshot; a negative factor turns that off, so both send a SNAP past the window.
        extra_cfg={"forceSync": "yes", "snapCount": "100000", "snapshotSizeFactor": "-1"},
        jvm_fast_start=False,
        jvm_heap="2g",
    )
    e.start(timeout=60)
    try:
        leader = e.leader()
        follower = next(s for s in e.ids if s != leader)
        others = [s for s in e.ids if s != follower]
        pids = [e[s].proc.pid for s in e.ids]
        bench(rzk, e.hosts(), pids, ["--workload", "create", "--keep", "--ops", str(znodes), "--sessions", "16", "--inflight", "64"], None)
        load = ["--workload", "set", "--sessions", "4", "--inflight", "4", "--keys", "1000"]
        steady = bench(rzk, e.hosts(others), pids, load, 6)
        e.kill(follower)
        # Past the 500 transactions both keep for DIFF.
        bench(rzk, e.hosts(others), [e[s].proc.pid for s in others], ["--workload", "set", "--ops", "5000", "--sessions", "4", "--inflight", "16"], None)
        cmd = [rzk, "bench", "--hosts", e.hosts(others), "--duration", "6", "--warmup", "1", "--json", *load]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Into the measured window; the SNAP (a JVM starts in about a second) lands in it.
        time.sleep(2)
        e[follower].launch()
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError("rzk bench failed: %s" % err[-2000:])
        during = json.loads(out)
        e[follower].wait_ready(60)
        if kind == "rzk":
            snapped = "syncing a learner by SNAP" in log_text(e[leader])
        else:
            snapped = "Getting a snapshot from leader" in log_text(e[follower])
        return pct(steady, "p999"), pct(during, "p999"), snapped, pct(steady, "max"), pct(during, "max")
    finally:
        e.stop_all()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--snap", action="store_true", help="only the p99.9-during-SNAP figure")
    ap.add_argument("--znodes", type=int, default=200_000)
    args = ap.parse_args()
    rzk = os.environ.get("RZK_BIN") or str(ROOT / "target" / "release" / "rzk")
    if not os.path.exists(rzk):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rzk-server"], check=True, cwd=ROOT)
    os.environ["RZK_BIN"] = rzk
    workdir = Path(tempfile.mkdtemp(prefix="rzk-ens-bench-"))
    if args.snap:
        return snap_main(args, rzk, workdir)
    results = {}
    for kind in ("apache", "rzk"):
        print("== %s: %d runs" % (kind, args.runs), file=sys.stderr)
        results[kind] = run_kind(kind, rzk, workdir, args.runs, args.duration)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("3-voter ensembles, rzk vs Apache ZooKeeper 3.8, forceSync=yes; medians of %d runs each" % args.runs)
    print("date %s | git %s | nproc %d" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), git, os.cpu_count()))
    print("| figure | ZooKeeper | rzk | rzk/ZK |")
    print("|---|---|---|---|")

    def row(name, zk, rz, unit, fmt="{:,.0f}"):
        if zk is None or rz is None:
            print("| %s | %s | %s | n/a |" % (name, zk, rz))
            return
        print("| %s | %s %s | %s %s | %.2f |" % (name, fmt.format(zk), unit, fmt.format(rz), unit, rz / zk if zk else float("nan")))

    for name in ("set 16x64", "create 16x64", "get 16x64"):
        zk, rz = results["apache"][name], results["rzk"][name]
        row(name + ": throughput", median(r["throughput_ops_s"] for r in zk), median(r["throughput_ops_s"] for r in rz), "op/s")
        if name != "get 16x64":
            for p in ("p50", "p99"):
                row("%s: %s" % (name, p), median(pct(r, p) for r in zk), median(pct(r, p) for r in rz), "µs")
            row(name + ": server CPU per op (3 servers)", median(r["cpu_us_per_op"] for r in zk), median(r["cpu_us_per_op"] for r in rz), "µs", "{:,.1f}")
    name = "create closed-loop via a follower"
    zk, rz = results["apache"][name], results["rzk"][name]
    for p in ("p50", "p99"):
        row("%s: %s" % (name, p), median(pct(r, p) for r in zk), median(pct(r, p) for r in rz), "µs")
    row("SIGKILL of the leader to the first acknowledged write", median(results["apache"]["failover"]), median(results["rzk"]["failover"]), "ms")
    print("(throughput: above 1 is better; latency, CPU and failover: below 1 is better)")


def snap_main(args, rzk, workdir):
    rows = {}
    for kind in ("apache", "rzk"):
        for run in range(args.runs):
            print("== %s: SNAP run %d" % (kind, run), file=sys.stderr)
            rows.setdefault(kind, []).append(snap_run(kind, rzk, workdir, run, args.znodes))
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("3-voter ensembles, %d znodes of 100 B, writes 4 sessions x 4 in flight to the two other servers; medians of %d runs" % (args.znodes, args.runs))
    print("date %s | git %s | nproc %d" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), git, os.cpu_count()))
    print("| figure | ZooKeeper | rzk | rzk/ZK |")
    print("|---|---|---|---|")
    for i, name in (
        (0, "writes' p99.9, steady"),
        (1, "writes' p99.9 while a follower is SNAP-synced"),
        (3, "writes' max, steady"),
        (4, "writes' max while a follower is SNAP-synced"),
    ):
        zk = median(r[i] for r in rows["apache"])
        rz = median(r[i] for r in rows["rzk"])
        print("| %s | %s µs | %s µs | %.2f |" % (name, f"{zk:,.0f}", f"{rz:,.0f}", rz / zk))
    for kind in ("apache", "rzk"):
        ratios = [r[1] / r[0] for r in rows[kind] if r[0]]
        print("| %s: during SNAP / steady | %s | | |" % (kind, ", ".join("%.2f" % r for r in ratios)))
    print("SNAP seen in every run: ZooKeeper %s, rzk %s" % (all(r[2] for r in rows["apache"]), all(r[2] for r in rows["rzk"])))


if __name__ == "__main__":
    main()
