#!/usr/bin/env python3
"""Side by side over TLS: rzk and Apache ZooKeeper 3.8, each serving a plain clientPort and a
TLS secureClientPort, the same load from `rzk bench` on both ports, one server after the
other in the same run.

Figures per run and server:
- set and get, 16 sessions x 64 in flight: throughput (and server CPU per op), plain port
  against TLS port;
- closed loop (1 session, 1 in flight) set and get: p50 and p99, plain against TLS.
Printed with rzk/ZK for each figure and TLS/plain for each server; with --runs N > 1 the
table holds the medians (a ratio is the median of the runs' ratios) and every run's
figures follow.

TLS setup (the same zoo.cfg keys for both servers): certificates made with openssl by
tests/support/certs.py (RSA 2048, a test CA); key store server.pem (PEM: PKCS#8 key and
certificate), trust store ca.crt (PEM); ssl.protocol=TLSv1.3 with the one suite
ssl.ciphersuites=TLS_AES_128_GCM_SHA256 (what both negotiate is printed); ssl.clientAuth=none (the
default here; --client-auth need makes both servers demand a client certificate and
`rzk bench` present alice's). ZooKeeper runs NettyServerCnxnFactory (the only one with TLS;
it then serves the plain port too), -Xmx2g (--zk-heap) and its full JIT, and gets the same
unmeasured warm-up load as rzk before anything is measured. forceSync=yes on both.

Usage (from the repository root, with the test venv that scripts/test.sh makes, or any
python3: only the standard library and tests/support are used):
  RZK_BIN=$PWD/target/release/rzk python3 scripts/bench-tls-vs-zookeeper.py [--runs 3]
RZK_BIN must be an absolute path to a release build (cargo build --release -p rzk-server).
Runs alternate which server goes first. Only the servers this script starts are stopped.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import certs as certs_mod  # noqa: E402
from zkserver import ZkServer  # noqa: E402

NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"

# (name, flags, closed loop)
LOADS = [
    ("set 16x64", ["--workload", "set", "--sessions", "16", "--inflight", "64"], False),
    ("get 16x64", ["--workload", "get", "--sessions", "16", "--inflight", "64"], False),
    ("set closed-loop", ["--workload", "set", "--closed-loop"], True),
    ("get closed-loop", ["--workload", "get", "--closed-loop"], True),
]
PORTS = ("plain", "tls")
KINDS = ("apache", "rzk")
NAME = {"apache": "ZooKeeper", "rzk": "rzk"}


def tls_cfg(server, certs, client_auth):
    return {
        "secureClientPort": str(server.secure_port),
        "secureClientPortAddress": "127.0.0.1",
        "serverCnxnFactory": NETTY_FACTORY,
        "ssl.keyStore.location": str(certs.server.pem),
        "ssl.keyStore.type": "PEM",
        "ssl.trustStore.location": str(certs.truststore_pem),
        "ssl.trustStore.type": "PEM",
        # Apache 3.8.0 defaults to TLSv1.2 and refuses every TLSv1.3 handshake unless
        # ssl.ciphersuites names TLSv1.3 suites; one suite for both servers.
        "ssl.protocol": "TLSv1.3",
        "ssl.ciphersuites": "TLS_AES_128_GCM_SHA256",
        "ssl.clientAuth": client_auth,
    }


def tls_flags(certs, client_auth):
    flags = ["--tls", "--tls-ca", str(certs.ca.crt)]
    if client_auth == "need":
        flags += ["--tls-cert", str(certs.alice.crt), "--tls-key", str(certs.alice.key)]
    return flags


def bench(rzk, server, port_kind, flags, tls, duration, warmup):
    port = server.port if port_kind == "plain" else server.secure_port
    cmd = [rzk, "bench", "--hosts", "127.0.0.1:%d" % port, "--duration", str(duration),
           "--warmup", str(warmup), "--server-pid", str(server.proc.pid), "--json", *flags]
    if port_kind == "tls":
        cmd += tls
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError("rzk bench failed (%s):\n%s\nserver log tail:\n%s"
                           % (" ".join(cmd), out.stderr[-2000:], server.log_tail(30)))
    if not server.running():
        raise RuntimeError("%s died during %s" % (server.kind, " ".join(cmd)))
    report = json.loads(out.stdout)
    bad = {k: report[k] for k in ("errors", "unanswered", "sessions_lost", "protocol_errors") if report[k]}
    if bad or report["problems"]:
        print("  WARNING %s %s %s: %s %s" % (server.kind, port_kind, " ".join(flags), bad, report["problems"]),
              file=sys.stderr)
    return report


def run_server(kind, rzk, workdir, certs, args, run):
    server = ZkServer(kind, workdir / ("%s-%d" % (kind, run)), jvm_fast_start=False, jvm_heap=args.zk_heap,
                      extra_cfg={"forceSync": "yes", "snapCount": "100000"})
    server.extra_cfg.update(tls_cfg(server, certs, args.client_auth))
    server.start(timeout=60)
    tls = tls_flags(certs, args.client_auth)
    figures = {}
    try:
        # The JVM compiles its hot paths (TLS included) in the first seconds of load: warm
        # both servers alike, on both ports, unmeasured.
        for port_kind in PORTS:
            bench(rzk, server, port_kind, ["--workload", "mixed:50", "--sessions", "8", "--inflight", "16"], tls,
                  args.jit_warmup, 0)
        for i, (name, flags, _) in enumerate(LOADS):
            # Alternate which port goes first, by load and by run.
            order = PORTS if (i + run) % 2 == 0 else tuple(reversed(PORTS))
            for port_kind in order:
                print("  %s %s %s" % (NAME[kind], name, port_kind), file=sys.stderr)
                r = bench(rzk, server, port_kind, flags, tls, args.duration, args.warmup)
                figures[(name, port_kind)] = r
    finally:
        server.stop()
        if not args.keep_dir:
            # A run writes about a GB of transaction log; the disk is shared.
            shutil.rmtree(server.workdir, ignore_errors=True)
    return figures


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "op/s":
        return "{:,.0f} op/s".format(v)
    if unit == "µs CPU/op":
        return "{:,.1f} µs".format(v)
    return "{:,.0f} µs".format(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def rows_of(figs):
    """[(figure, unit, {(kind, port): value})] for one run's figures."""
    rows = []
    for name, _, closed in LOADS:
        picks = [("p50", "µs"), ("p99", "µs")] if closed else [("throughput", "op/s"), ("p99", "µs")]
        picks.append(("cpu", "µs CPU/op"))
        for what, unit in picks:
            vals = {}
            for kind in KINDS:
                for port in PORTS:
                    r = figs[kind][(name, port)]
                    if what == "throughput":
                        v = r["throughput_ops_s"]
                    elif what == "cpu":
                        v = (r["server"] or {}).get("cpu_us_per_op")
                    else:
                        v = r["latency_us"][what]
                    vals[(kind, port)] = v
            label = {"throughput": "throughput", "cpu": "server CPU per op"}.get(what, what)
            rows.append(("%s: %s" % (name, label), unit, vals))
    return rows


def print_table(runs):
    per_run = [rows_of(f) for f in runs]
    header = ["figure", "ZK plain", "ZK TLS", "rzk plain", "rzk TLS", "rzk/ZK plain", "rzk/ZK TLS",
              "ZK TLS/plain", "rzk TLS/plain"]
    table = []
    for i, (label, unit, _) in enumerate(per_run[0]):
        vals = [run[i][2] for run in per_run]

        def med(key):
            xs = [v[key] for v in vals if v[key] is not None]
            return statistics.median(xs) if xs else None

        def med_ratio(a, b):
            xs = [ratio(v[a], v[b]) for v in vals]
            xs = [x for x in xs if x is not None]
            return statistics.median(xs) if xs else None

        cols = [label] + [fmt(med((k, p)), unit) for k in KINDS for p in PORTS]
        for r in (med_ratio(("rzk", "plain"), ("apache", "plain")), med_ratio(("rzk", "tls"), ("apache", "tls")),
                  med_ratio(("apache", "tls"), ("apache", "plain")), med_ratio(("rzk", "tls"), ("rzk", "plain"))):
            cols.append("-" if r is None else "%.2f" % r)
        table.append(cols)
    w = [max(len(r[c]) for r in table + [header]) for c in range(len(header))]

    def line(r):
        print("| " + " | ".join(r[0].ljust(w[0]) if c == 0 else r[c].rjust(w[c]) for c in range(len(r))) + " |")

    line(header)
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in table:
        line(r)
    return per_run


def goals(per_run):
    """The issue's two goals, per run and on the medians."""
    def thr(run, load):
        for label, _, vals in run:
            if label == "%s: throughput" % load:
                return vals
        raise KeyError(load)

    print()
    for load in ("set 16x64", "get 16x64"):
        keep, lead, plain_ratio = [], [], []
        for run in per_run:
            v = thr(run, load)
            keep.append(ratio(v[("rzk", "tls")], v[("rzk", "plain")]))
            lead.append(ratio(v[("rzk", "tls")], v[("apache", "tls")]))
            plain_ratio.append(ratio(v[("rzk", "plain")], v[("apache", "plain")]))
        k, lt, lp = (statistics.median(x) for x in (keep, lead, plain_ratio))
        print("%s: rzk keeps %.2f of its plain throughput over TLS (goal >= 0.75: %s); "
              "rzk/ZK over TLS %.2f against %.2f on the plain port (goal: TLS ratio >= plain ratio: %s)"
              % (load, k, "met" if k >= 0.75 else "NOT met", lt, lp, "met" if lt >= lp else "NOT met"))
        print("  runs: TLS/plain %s; rzk/ZK TLS %s; rzk/ZK plain %s"
              % tuple(", ".join("%.2f" % x for x in xs) for xs in (keep, lead, plain_ratio)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6, help="measured seconds per figure")
    ap.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each figure")
    ap.add_argument("--jit-warmup", type=float, default=6, help="unmeasured mixed load per port at start")
    ap.add_argument("--client-auth", choices=("none", "need"), default="none")
    ap.add_argument("--zk-heap", default="2g")
    ap.add_argument("--save", help="write every report (JSON) to this file")
    ap.add_argument("--keep-dir", action="store_true", help="keep each server's directory (logs, data)")
    args = ap.parse_args()
    rzk = os.environ.get("RZK_BIN")
    if not rzk or not os.path.isabs(rzk) or not os.path.exists(rzk):
        sys.exit("set RZK_BIN to the absolute path of a release rzk (cargo build --release -p rzk-server)")
    os.environ["RZK_BIN"] = rzk
    workdir = Path(tempfile.mkdtemp(prefix="rzk-tls-bench-"))
    certs = certs_mod.make_certs(workdir / "certs")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    runs = []
    for run in range(args.runs):
        order = KINDS if run % 2 == 0 else tuple(reversed(KINDS))
        figs = {}
        for kind in order:
            print("== run %d: %s" % (run + 1, NAME[kind]), file=sys.stderr)
            figs[kind] = run_server(kind, rzk, workdir, certs, args, run)
        runs.append(figs)
        print("   load average after run %d: %.2f %.2f %.2f" % ((run + 1,) + os.getloadavg()), file=sys.stderr)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    negotiated = {k: runs[0][k][(LOADS[0][0], "tls")].get("tls") for k in KINDS}
    print("TLS on the client port: rzk vs Apache ZooKeeper 3.8 (NettyServerCnxnFactory), standalone, forceSync=yes")
    print("date %s | git %s | nproc %d | load average at start %.2f, at end %.2f"
          % (started, git, os.cpu_count(), load_before[0], os.getloadavg()[0]))
    print("ssl.clientAuth=%s | ZooKeeper -Xmx%s | windows %gs after %gs warmup | %d run(s), medians | "
          "negotiated: ZooKeeper %s, rzk %s"
          % (args.client_auth, args.zk_heap, args.duration, args.warmup, args.runs, negotiated["apache"],
             negotiated["rzk"]))
    per_run = print_table(runs)
    goals(per_run)
    if args.runs > 1:
        print("\nEvery run (ZK plain, ZK TLS, rzk plain, rzk TLS):")
        for i, run in enumerate(per_run):
            print("run %d (%s first):" % (i + 1, NAME[KINDS[0] if i % 2 == 0 else KINDS[1]]))
            for label, unit, vals in run:
                print("  %-34s %s" % (label, " | ".join(fmt(vals[(k, p)], unit) for k in KINDS for p in PORTS)))
    problems = sum(
        sum(r["errors"].values()) + r["unanswered"] + r["sessions_lost"] + r["protocol_errors"]
        for figs in runs for kind in figs.values() for r in kind.values())
    print("\nerrors, unanswered requests, lost sessions, protocol errors over every measured window: %d" % problems)
    if args.save:
        out = [{"%s %s %s" % (k, name, port): r for k in figs for (name, port), r in figs[k].items()} for figs in runs]
        Path(args.save).write_text(json.dumps(out) + "\n")
    if not args.keep_dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
