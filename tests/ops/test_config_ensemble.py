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


def test_a_client_port_on_the_server_line_that_differs_from_clientport_names_the_line(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    text = cfg.read_text().splitlines()
    text[6] += ";127.0.0.1:%d" % _free_port()
    cfg.write_text("\n".join(text) + "\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    proc = _run(cfg)
    assert proc.returncode != 0
    assert "line 7: server.1: its client port" in proc.stderr, proc.stderr
    assert "differs from clientPort=" in proc.stderr, proc.stderr


def test_without_clientport_the_server_line_gives_the_client_address(tmp_path):
    """ZooKeeper 3.5+'s style: the client address in the server.N line, no clientPort key."""
    cfg = _write_cfg(tmp_path, 3)
    port = _free_port()
    text = [line for line in cfg.read_text().splitlines() if not line.startswith("clientPort")]
    text = [line + (";127.0.0.1:%d" % port if line.startswith("server.1=") else "") for line in text]
    cfg.write_text("\n".join(text) + "\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    proc = subprocess.Popen([rzk_bin(), "server", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "addr=127.0.0.1:%d" % port in err, err


def _serve(cfg, check):
    """Starts rzk on `cfg`, runs check(stderr_so_far_path) while it serves, then stops it."""
    log = cfg.parent / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([rzk_bin(), "server", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    try:
        return check(log)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _srvr(port, timeout=15):
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"srvr")
                out = b""
                while chunk := s.recv(4096):
                    out += chunk
                text = out.decode()
                if "Mode:" in text:
                    return text
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server never said its mode"
        time.sleep(0.1)


def test_standalone_enabled_false_makes_one_listed_server_an_ensemble_of_one(tmp_path):
    cfg = _write_cfg(tmp_path, 1)
    text = cfg.read_text() + "standaloneEnabled=false\n"
    cfg.write_text(text)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    port = int(next(line for line in text.splitlines() if line.startswith("clientPort=")).split("=")[1])

    def serves(log):
        from kazoo.client import KazooClient

        srvr = _srvr(port)
        c = KazooClient(hosts="127.0.0.1:%d" % port)
        c.start(timeout=15)
        try:
            c.create("/alone", b"quorum of one")
            return srvr, c.get("/alone")[0]
        finally:
            c.stop()
            c.close()

    srvr, data = _serve(cfg, serves)
    assert "Mode: leader" in srvr, srvr
    assert data == b"quorum of one"


def test_quorum_listen_on_all_ips_binds_the_peer_ports_on_every_address(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    cfg.write_text(cfg.read_text() + "quorumListenOnAllIPs=true\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    s1 = next(line for line in cfg.read_text().splitlines() if line.startswith("server.1="))
    quorum_port = int(s1.split("=", 1)[1].split(":")[1])

    def listening_on_any(log):
        import time

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # Bound to 0.0.0.0, it answers on another loopback address than its line's.
            try:
                socket.create_connection(("127.0.0.9", quorum_port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.1)
        return False

    assert _serve(cfg, listening_on_any)


def test_an_election_port_in_use_is_retried_then_named(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    cfg.write_text(cfg.read_text() + "electionPortBindRetry=2\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "myid").write_text("1\n")
    s1 = next(line for line in cfg.read_text().splitlines() if line.startswith("server.1="))
    host, _, election = s1.split("=", 1)[1].split(":")
    with socket.socket() as taken:
        taken.bind((host, int(election)))
        taken.listen(1)
        proc = _run(cfg)
    assert proc.returncode != 0
    assert "election port) after 2 attempts" in proc.stderr, proc.stderr


def test_hierarchical_quorums_are_refused_naming_the_line(tmp_path):
    cfg = _write_cfg(tmp_path, 3)
    cfg.write_text(cfg.read_text() + "group.1=1:2:3\n")
    proc = _run(cfg)
    assert proc.returncode != 0
    assert "group.1: hierarchical quorums" in proc.stderr, proc.stderr
