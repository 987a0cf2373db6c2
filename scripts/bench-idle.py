#!/usr/bin/env python3
"""What idle clients cost a busy one, rzk beside Apache ZooKeeper 3.8 (standalone, same box,
same run): a closed-loop getData client's p50/p99 (5 s) and the server's CPU per request
with nothing else connected, then with N established sessions that send nothing (no pings:
their 40 s timeout outlasts the run) plus N connections that never send their handshake
(opened last, so they are all still open for the 6 s of the measurement: both servers close
them 10 s after they open); and the server's RSS growth per idle connection or session.

Usage (repository root, the test venv that scripts/test.sh makes):
  .venv-test/bin/python scripts/bench-idle.py [--idle 10000] [--runs 3]
RZK_BIN picks rzk (default target/release/rzk). Needs RLIMIT_NOFILE for 2N+100 sockets on
each side (raised here when the hard limit allows).
"""

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from rawzk import frame, pack_bool, pack_buffer, pack_int, pack_long  # noqa: E402
from zkserver import ZkServer  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE


def connect_request():
    return frame(pack_int(0) + pack_long(0) + pack_int(40000) + pack_long(0) + pack_buffer(b"\x00" * 16) + pack_bool(False))


def open_idle(port, n):
    """n sessions established and silent, then n connections with no handshake (last: a
    server closes those after its handshake limit, 10 s on both, so the measurement that
    follows must fit in what is left of it)."""
    silent, sessions = [], []
    request = connect_request()
    for start in range(0, n, 500):
        batch = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(min(500, n - start))]
        for s in batch:
            s.sendall(request)
        for s in batch:
            # The ConnectResponse: 4-byte length, then 36 bytes (37 with the read-only flag).
            (length,) = __import__("struct").unpack(">i", s.recv(4, socket.MSG_WAITALL))
            s.recv(length, socket.MSG_WAITALL)
        sessions.extend(batch)
    for _ in range(n):
        silent.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return silent + sessions


def measure(rzk, server):
    pid = server.proc.pid
    before = cpu_seconds(pid)
    out = subprocess.run(
        [rzk, "bench", "--hosts", server.hosts, "--workload", "get", "--closed-loop", "--keys", "100", "--duration", "5", "--warmup", "1", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    after = cpu_seconds(pid)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    r = json.loads(out.stdout)
    ops = r["ops"] + r.get("warmup_ops", 0)
    return r["latency_us"]["p50"], r["latency_us"]["p99"], (after - before) * 1e6 / max(ops, 1)


def run(kind, rzk, workdir, idle):
    cfg = {"maxClientCnxns": "0", "maxSessionTimeout": "60000"}
    s = ZkServer(kind, workdir, extra_cfg=cfg, jvm_fast_start=False, jvm_heap="2g")
    s.start()
    socks = []
    try:
        base = measure(rzk, s)
        rss0 = rss_bytes(s.proc.pid)
        socks = open_idle(s.port, idle)
        rss1 = rss_bytes(s.proc.pid)
        loaded = measure(rzk, s)
        return base, loaded, (rss1 - rss0) / (2 * idle)
    finally:
        for x in socks:
            x.close()
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.idle + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    rzk = os.environ.get("RZK_BIN") or str(ROOT / "target" / "release" / "rzk")
    os.environ["RZK_BIN"] = rzk
    workdir = Path(tempfile.mkdtemp(prefix="rzk-idle-"))
    rows = {}
    for kind in ("apache", "rzk"):
        for i in range(args.runs):
            print("== %s run %d" % (kind, i), file=sys.stderr)
            rows.setdefault(kind, []).append(run(kind, rzk, workdir / ("%s-%d" % (kind, i)), args.idle))
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print("standalone, closed-loop getData; %d silent connections + %d silent sessions; medians of %d runs" % (args.idle, args.idle, args.runs))
    print("date %s | git %s | nproc %d" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), git, os.cpu_count()))
    print("| figure | ZooKeeper | rzk |")
    print("|---|---|---|")

    def med(kind, f):
        return statistics.median(f(r) for r in rows[kind])

    for label, f, unit, fmt in (
        ("p50, nothing idle", lambda r: r[0][0], "µs", "{:,.0f}"),
        ("p50, with the idle ones", lambda r: r[1][0], "µs", "{:,.0f}"),
        ("p99, nothing idle", lambda r: r[0][1], "µs", "{:,.0f}"),
        ("p99, with the idle ones", lambda r: r[1][1], "µs", "{:,.0f}"),
        ("server CPU per request, nothing idle", lambda r: r[0][2], "µs", "{:,.1f}"),
        ("server CPU per request, with the idle ones", lambda r: r[1][2], "µs", "{:,.1f}"),
        ("RSS per idle connection or session", lambda r: r[2], "bytes", "{:,.0f}"),
    ):
        print("| %s | %s %s | %s %s |" % (label, fmt.format(med("apache", f)), unit, fmt.format(med("rzk", f)), unit))


if __name__ == "__main__":
    main()
