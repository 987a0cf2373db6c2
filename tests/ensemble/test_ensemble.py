"""Ensembles of real server processes on 127.0.0.1, driven by kazoo.

Run against rzk (ZK_TARGET=rzk, the default) or Apache ZooKeeper 3.8
(ZK_TARGET=apache), which shows what the tests expect is ZooKeeper's behaviour.
Every wait is bounded; every server started here is stopped here.
"""

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")


@pytest.fixture
def ensemble_factory(tmp_path):
    made = []

    def make(voters=3, observers=0, **kw):
        e = Ensemble(TARGET, tmp_path / ("e%d" % len(made)), voters=voters, observers=observers, **kw)
        made.append(e)
        try:
            e.start()
        except Exception as err:
            pytest.fail("ensemble did not start: %s\n%s" % (err, e.log_tails()), pytrace=False)
        return e

    yield make
    for e in made:
        e.stop_all()


def client(hosts, **kw):
    c = KazooClient(hosts=hosts, timeout=10.0, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5), **kw)
    c.start(timeout=15)
    return c


def test_three_voters_and_an_observer_elect_one_leader_and_replicate(ensemble_factory):
    e = ensemble_factory(voters=3, observers=1)
    leader = e.leader()
    modes = {sid: e.mode(sid) for sid in e.ids}
    assert sorted(modes.values()) == ["follower", "follower", "leader", "observer"], modes
    assert modes[4] == "observer"
    # A write through each server (followers and the observer forward it) is read back
    # through every other after a sync.
    clients = {sid: client(e[sid].hosts) for sid in e.ids}
    try:
        for sid in e.ids:
            clients[sid].create("/via-s%d" % sid, b"from s%d" % sid)
        for reader in e.ids:
            c = clients[reader]
            c.sync("/")
            for sid in e.ids:
                data, stat = c.get("/via-s%d" % sid)
                assert data == b"from s%d" % sid, (reader, sid)
        # Ephemerals of a session live on every server while it does.
        clients[2].create("/eph", b"", ephemeral=True)
        for reader in e.ids:
            clients[reader].sync("/")
            assert clients[reader].exists("/eph") is not None
        clients[2].stop()
        clients[2].close()
        del clients[2]
        for reader in clients:
            clients[reader].sync("/")
            assert clients[reader].exists("/eph") is None, reader
    finally:
        for c in clients.values():
            c.stop()
            c.close()
    assert leader in e.ids


def test_killing_the_leader_under_load_loses_no_acknowledged_write(ensemble_factory):
    e = ensemble_factory(voters=3)
    old_leader = e.leader()
    acked = []
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def writer(n):
        c = client(e.hosts())
        try:
            i = 0
            while not stop.is_set() and i < 100_000:
                path = "/w%d-%d" % (n, i)
                try:
                    c.create(path, b"x")
                except NodeExistsError:
                    pass  # an earlier attempt went through after all
                except KazooException:
                    time.sleep(0.02)  # connection loss while the leader changes: retry
                    continue
                with lock:
                    acked.append(path)
                i += 1
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            c.stop()
            c.close()

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    before = len(acked)
    e.kill(old_leader)
    killed_at = time.monotonic()
    new_leader = None
    while time.monotonic() - killed_at < 30:
        modes = {sid: e.mode(sid) for sid in e.ids if sid != old_leader}
        leaders = [s for s, m in modes.items() if m == "leader"]
        if leaders:
            new_leader = leaders[0]
            break
        time.sleep(0.02)
    assert new_leader is not None and new_leader != old_leader, e.log_tails()
    # Writes go on under the new leader.
    deadline = time.monotonic() + 20
    after_kill = len(acked)
    while len(acked) < after_kill + 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(acked) >= after_kill + 50, "writes did not resume: %d then %d" % (after_kill, len(acked))
    assert before > 0
    # The old leader comes back as a follower and holds every acknowledged write too.
    e[old_leader].launch()
    e[old_leader].wait_ready()
    for sid in e.ids:
        c = client(e[sid].hosts)
        try:
            c.sync("/")
            missing = [p for p in acked if c.exists(p) is None]
            assert not missing, "s%d lacks %d acknowledged writes, e.g. %s" % (sid, len(missing), missing[:3])
        finally:
            c.stop()
            c.close()
