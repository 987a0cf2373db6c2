"""A zoo.cfg of an ensemble must not start a lone standalone server (replication-core issue):
until rzk's ensemble serves, three servers started from one such zoo.cfg would each accept
writes and diverge. The server stops at once, naming the file, the line and the key; one
listed server still runs standalone, as Apache ZooKeeper does. rzk only: the reference
server would start as an ensemble member.
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


def test_three_listed_servers_stop_the_server_naming_file_line_and_key(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    proc = subprocess.run(
        [rzk_bin(), "server", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "%s:8: server.2: 3 servers are listed" % cfg in proc.stderr, proc.stderr
    assert "does not run ensembles yet" in proc.stderr


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
