"""A zoo.cfg of an ensemble whose membership is wrong stops the server at once with an error
naming what is wrong (the myid file, the server.N line), instead of a server that waits
for peers it can never have; one listed server still runs standalone, as Apache ZooKeeper
does. rzk only: the reference server's messages differ.
"""

import os
import socket
import subprocess

import pytest

from zkserver import rzk_bin

TARGET = os.environ.get("ZK_TARGET", "rzk")
pytestmark = pytest.mark.skipif(TARGET != "rzk", reason="rzk's own startup check")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_cfg(tmp_path, servers):
    lines = [
        "tickTime=2000",
        "dataDir=%s" % (tmp_path / "data"),
        "clientPort=%d" % _free_port(),
        "clientPortAddress=127.0.0.1",
        "admin.enableServer=false",
        "metricsProvider.httpPort=0",
    ]
    for n in range(1, servers + 1):
        lines.append("server.%d=127.0.0.%d:%d:%d" % (n, n, _free_port(), _free_port()))
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _run(cfg):
    return subprocess.run(
        [rzk_bin(), "server", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_ensemble_without_a_myid_file_stops_naming_it(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    proc = _run(cfg)
    assert proc.returncode != 0
    myid = tmp_path / "data" / "myid"
    assert "%s:" % myid in proc.stderr, proc.stderr
    assert "needs its server id" in proc.stderr, proc.stderr


def test_a_myid_that_is_not_listed_stops_the_server(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("7\n")
    proc = _run(cfg)
    assert proc.returncode != 0
    assert "myid 7 is not one of the server.N lines" in proc.stderr, proc.stderr


def test_a_port_used_twice_names_both_lines(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    text = cfg.read_text().splitlines()
    # server.3 takes server.1's quorum address.
    s1 = text[6].split("=", 1)[1]
    host, quorum, _ = s1.split(":")
    text[8] = "server.3=%s:%s:%d" % (host, quorum, _free_port())
    cfg.write_text("\n".join(text) + "\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    proc = _run(cfg)
    assert proc.returncode != 0
    assert "line 9: server.3: %s:%s is already used by server.1 (line 7)" % (host, quorum) in proc.stderr, proc.stderr


def test_one_listed_server_runs_standalone(tmp_path):
    cfg = _write_cfg(tmp_path, 1)
    proc = subprocess.Popen(
        [rzk_bin(), "server", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "one server listed; running standalone" in err, err
