"""Goal: `rzk bench` keeps working end to end (a benchmark tool that rots is worse than none).
Method: run each workload briefly against a real server through the harness and require
operations, no errors of any kind, and a server CPU figure; then a comparison plot."""

import json
import os
import subprocess

import pytest

WORKLOADS = ["create", "set", "get", "exists", "mixed:70", "multi"]


def bench(*args, timeout=90):
    cmd = [os.environ["RZK_BIN"], "bench", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, "rzk bench failed:\n%s\n%s" % (done.stdout, done.stderr)
    return done


@pytest.mark.parametrize("workload", WORKLOADS)
def test_bench_workload_runs_clean(zk_server, tmp_path, workload):
    out = tmp_path / "report.json"
    bench(
        "--hosts", zk_server.hosts, "--workload", workload, "--sessions", "4",
        "--inflight", "8", "--duration", "1", "--warmup", "0.2", "--keys", "100",
        "--server-pid", str(zk_server.proc.pid), "--json", "--save", str(out),
    )
    report = json.loads(out.read_text())
    assert report["ops"] > 100, report
    for problem in ("errors", "unanswered", "sessions_lost", "protocol_errors", "warmup_errors"):
        assert not report[problem], (problem, report)
    assert report["server"]["cpu_us_per_op"] > 0, report


def test_plot_compare_draws_one_curve_per_report(zk_server, tmp_path):
    saved = []
    for workload in ("set", "get"):
        path = tmp_path / ("%s.json" % workload)
        bench("--hosts", zk_server.hosts, "--workload", workload, "--duration", "0.5",
              "--warmup", "0", "--keys", "10", "--json", "--save", str(path))
        saved.append(str(path))
    svg = tmp_path / "compare.svg"
    bench("--plot-compare", *saved, "--plot", str(svg))
    assert svg.read_text().count("<polyline") == 2


def test_server_metrics_reports_where_the_time_went(zk_server, tmp_path):
    if zk_server.kind != "rzk":
        return  # only rzk exposes rzk_stage_seconds
    out = tmp_path / "stages.json"
    done = bench(
        "--hosts", zk_server.hosts, "--workload", "set", "--sessions", "2", "--inflight", "4",
        "--duration", "1", "--warmup", "0.2", "--keys", "10", "--save", str(out),
        "--server-metrics", "http://127.0.0.1:%d/metrics" % zk_server.metrics_port,
    )
    report = json.loads(out.read_text())
    stages = report["server_stages"]
    assert set(stages) == {"queue", "prep", "log", "quorum", "apply", "reply"}, stages
    # Every measured set went through every stage (the window may also hold warmup's tail).
    assert all(s["count"] >= report["ops"] for s in stages.values()), (stages, report["ops"])
    assert stages["log"]["mean_us"] > 0
    assert "server stages, mean µs over" in done.stdout
    assert not report["problems"], report["problems"]
