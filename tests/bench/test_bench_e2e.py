"""Goal: `rzk bench` keeps working end to end (a benchmark tool that rots is worse than none).
Method: run each workload briefly against a real server through the harness and require
operations, no errors of any kind, and a server CPU figure; then a comparison plot; then
`--tls` against the server's secureClientPort (certificates from tests/support/certs.py),
with and without a client certificate. No test here looks at timing."""

import json
import os
import subprocess

import pytest

import certs as certs_mod

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


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return certs_mod.make_certs(tmp_path_factory.mktemp("certs"))
    except certs_mod.CertError as e:
        pytest.fail(str(e), pytrace=False)


def tls_server(zk_server_factory, certs, client_auth):
    """A server with a TLS secureClientPort beside its plain port, keys as Apache reads them
    (NettyServerCnxnFactory for Apache; rzk reads the same keys)."""
    server = zk_server_factory("tls-%s" % client_auth, start=False)
    server.extra_cfg.update({
        "secureClientPort": str(server.secure_port),
        "secureClientPortAddress": "127.0.0.1",
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "ssl.keyStore.location": str(certs.server.pem),
        "ssl.keyStore.type": "PEM",
        "ssl.trustStore.location": str(certs.truststore_pem),
        "ssl.trustStore.type": "PEM",
        "ssl.clientAuth": client_auth,
    })
    try:
        server.start()
    except Exception as e:
        pytest.fail("%s server with TLS failed to start: %s" % (server.kind, e), pytrace=False)
    return server


def check_clean(report, server):
    assert report["ops"] > 100, report
    for problem in ("errors", "unanswered", "sessions_lost", "protocol_errors", "warmup_errors"):
        assert not report[problem], (problem, report, server.log_tail(30))
    assert not report["problems"], report["problems"]


@pytest.mark.standalone_only
@pytest.mark.parametrize("workload", ["set", "get", "create"])
def test_bench_over_tls_runs_clean(zk_server_factory, certs, tmp_path, workload):
    server = tls_server(zk_server_factory, certs, "none")
    out = tmp_path / "tls.json"
    # 127.0.0.1 is checked against the server certificate's IP subjectAltName.
    done = bench(
        "--hosts", "127.0.0.1:%d" % server.secure_port, "--tls", "--tls-ca", str(certs.ca.crt),
        "--workload", workload, "--sessions", "4", "--inflight", "16", "--duration", "1",
        "--warmup", "0.2", "--keys", "100", "--json", "--save", str(out),
    )
    report = json.loads(out.read_text())
    check_clean(report, server)
    assert report["tls"].startswith("TLSv1_"), report["tls"]
    assert json.loads(done.stdout)["tls"] == report["tls"]


@pytest.mark.standalone_only
def test_bench_over_tls_with_a_client_certificate(zk_server_factory, certs, tmp_path):
    server = tls_server(zk_server_factory, certs, "need")
    hosts = "127.0.0.1:%d" % server.secure_port
    common = ["--hosts", hosts, "--tls", "--tls-ca", str(certs.ca.crt), "--workload", "mixed:50",
              "--sessions", "2", "--inflight", "8", "--duration", "1", "--warmup", "0", "--keys", "50"]
    out = tmp_path / "mtls.json"
    bench(*common, "--tls-cert", str(certs.alice.crt), "--tls-key", str(certs.alice.key),
          "--tls-server-name", "localhost", "--json", "--save", str(out))
    check_clean(json.loads(out.read_text()), server)
    # Without a certificate the server refuses the handshake: the run cannot start, and
    # says so.
    refused = subprocess.run([os.environ["RZK_BIN"], "bench", *common], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode != 0, refused.stdout
    assert hosts in refused.stderr, refused.stderr
    # A name the certificate does not carry is refused by the client.
    wrong = subprocess.run([os.environ["RZK_BIN"], "bench", *common, "--tls-cert", str(certs.alice.crt),
                            "--tls-key", str(certs.alice.key), "--tls-server-name", "zk.example"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "certificate" in wrong.stderr.lower(), wrong.stderr
    # The plain port still serves plain clients.
    plain = tmp_path / "plain.json"
    bench("--hosts", server.hosts, "--workload", "get", "--duration", "0.5", "--warmup", "0",
          "--keys", "10", "--json", "--save", str(plain))
    check_clean(json.loads(plain.read_text()), server)
