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

TARGET = os.environ.get("ZK_TARGET", "rzk")


def client(hosts, **kw):
    kw.setdefault("timeout", 10.0)
    c = KazooClient(hosts=hosts, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5), **kw)
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


def _count_children(hosts, path):
    c = client(hosts)
    try:
        c.sync(path)
        return len(c.get_children(path))
    finally:
        c.stop()
        c.close()


def _write_many(hosts, path, start, count):
    c = client(hosts)
    try:
        c.ensure_path(path)
        for i in range(start, start + count):
            c.create("%s/n%06d" % (path, i), b"v")
    finally:
        c.stop()
        c.close()


def _log_has(server, needle, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in server.log_path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(TARGET != "rzk", reason="reads rzk's own sync log lines")
def test_a_follower_back_after_a_short_outage_syncs_by_diff_after_a_long_one_by_snap(ensemble_factory):
    e = ensemble_factory(voters=3)
    leader = e.leader()
    follower = [s for s in e.ids if s != leader][0]
    others = [s for s in e.ids if s != follower]
    _write_many(e.hosts(others), "/d", 0, 20)
    e.kill(follower)
    _write_many(e.hosts(others), "/d", 20, 30)
    e[follower].launch()
    e[follower].wait_ready()
    assert _log_has(e[leader], "syncing a learner by DIFF"), e.log_tails()
    assert _count_children(e[follower].hosts, "/d") == 50
    # Far behind: more than the leader keeps in memory for DIFF (500 txns).
    e.kill(follower)
    _write_many(e.hosts(others), "/d", 50, 700)
    e[follower].launch()
    e[follower].wait_ready()
    assert _log_has(e[leader], "syncing a learner by SNAP"), e.log_tails()
    assert _count_children(e[follower].hosts, "/d") == 750
    # Restarted once more, it recovers from the installed snapshot and its log.
    e[follower].stop()
    e[follower].launch()
    e[follower].wait_ready()
    assert _count_children(e[follower].hosts, "/d") == 750
    # The leader's Prometheus endpoint counts both ways of syncing, times the election and
    # each follower's proposal round trip.
    import urllib.request

    url = "http://127.0.0.1:%d/metrics" % e[leader].metrics_port
    text = urllib.request.urlopen(url, timeout=10).read().decode()

    def value(name):
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise AssertionError("%s not in /metrics" % name)

    assert value('rzk_learner_syncs_total{kind="diff"}') >= 2  # the first sync, and the short outage
    assert value('rzk_learner_syncs_total{kind="snap"}') >= 1
    assert value('rzk_learner_sync_bytes_total{kind="snap"}') > 0
    assert value('rzk_learner_sync_bytes_total{kind="diff"}') > 0
    assert value("rzk_election_seconds_count") >= 1
    assert value('rzk_proposal_round_trip_seconds_count{follower="%d"}' % follower) >= 1


@pytest.mark.skipif(TARGET != "rzk", reason="reads rzk's own sync log lines")
def test_a_follower_behind_by_more_than_a_link_may_queue_catches_up_by_diff_and_by_snap(ensemble_factory):
    """The leader closes a link that has more than 64 MiB unsent (a learner not reading).
    A sync stream larger than that (a DIFF of big values, a SNAP of a big tree) must still
    go through, or the learner would be dropped at every sync, for ever."""
    import hashlib

    e = ensemble_factory(voters=3)
    leader = e.leader()
    follower = [s for s in e.ids if s != leader][0]
    others = [s for s in e.ids if s != follower]
    value = lambda i: hashlib.sha256(b"%d" % i).digest() * (900_000 // 32)  # noqa: E731
    e.kill(follower)
    c = client(e.hosts(others))
    try:
        c.ensure_path("/big")
        # ~90 MB that does not compress; fewer txns than the DIFF window: a DIFF.
        for i in range(100):
            c.create("/big/n%03d" % i, value(i))
    finally:
        c.stop()
        c.close()
    e[follower].launch()
    e[follower].wait_ready()
    assert _log_has(e[leader], "syncing a learner by DIFF"), e.log_tails()
    assert _count_children(e[follower].hosts, "/big") == 100
    # Past the DIFF window with the big values in the tree: a SNAP of ~90 MB.
    e.kill(follower)
    _write_many(e.hosts(others), "/small", 0, 600)
    e[follower].launch()
    e[follower].wait_ready()
    assert _log_has(e[leader], "syncing a learner by SNAP"), e.log_tails()
    c = client(e[follower].hosts)
    try:
        c.sync("/")
        assert len(c.get_children("/small")) == 600
        for i in (0, 57, 99):
            assert c.get("/big/n%03d" % i)[0] == value(i)
    finally:
        c.stop()
        c.close()


def test_every_server_killed_at_once_restarts_with_every_acknowledged_write(ensemble_factory):
    e = ensemble_factory(voters=3)
    e.leader()
    _write_many(e.hosts(), "/all", 0, 200)
    for sid in e.ids:
        e.kill(sid)
    e.start()
    e.leader()
    for sid in e.ids:
        assert _count_children(e[sid].hosts, "/all") == 200, sid


def test_a_rolling_restart_keeps_sessions_and_their_ephemerals(ensemble_factory):
    e = ensemble_factory(voters=3)
    e.leader()
    c = client(e.hosts())
    try:
        c.create("/rolling", b"", ephemeral=True)
        session = c.client_id[0]
        for sid in e.ids:
            e[sid].stop()
            e[sid].launch()
            e[sid].wait_ready()
            e.leader()
            c.sync("/")
            assert c.client_id[0] == session
            assert c.exists("/rolling") is not None, "ephemeral lost after restarting s%d" % sid
    finally:
        c.stop()
        c.close()


def test_a_paused_leader_is_deposed_and_rejoins_without_losing_what_was_acknowledged(ensemble_factory):
    # SIGSTOP cuts the leader off as a partition would: the others stop hearing it.
    e = ensemble_factory(voters=3)
    old = e.leader()
    others = [s for s in e.ids if s != old]
    _write_many(e.hosts(), "/p", 0, 20)
    e[old].pause()
    try:
        deadline = time.monotonic() + 30
        new = None
        while time.monotonic() < deadline and new is None:
            modes = {s: e.mode(s) for s in others}
            new = next((s for s, m in modes.items() if m == "leader"), None)
            time.sleep(0.05)
        assert new is not None, e.log_tails()
        _write_many(e.hosts(others), "/p", 20, 30)
    finally:
        e[old].resume()
    # The deposed leader finds the new one and serves what the majority acknowledged.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and e.mode(old) not in ("follower",):
        time.sleep(0.05)
    assert e.mode(old) == "follower", e.log_tails()
    for sid in e.ids:
        assert _count_children(e[sid].hosts, "/p") == 50, sid


def test_five_voters_and_an_observer_survive_two_failures(ensemble_factory):
    e = ensemble_factory(voters=5, observers=1)
    leader = e.leader()
    victims = [leader, [s for s in e.ids if s not in (leader, 6)][0]]
    for v in victims:
        e.kill(v)
    survivors = [s for s in e.ids if s not in victims]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        modes = {s: e.mode(s) for s in survivors}
        if "leader" in modes.values() and None not in modes.values():
            break
        time.sleep(0.05)
    assert "leader" in modes.values() and modes[6] == "observer", modes
    # Writes through the observer are forwarded and committed by the remaining majority.
    _write_many(e[6].hosts, "/five", 0, 25)
    for sid in survivors:
        assert _count_children(e[sid].hosts, "/five") == 25, sid


def test_a_session_moves_to_another_server_with_its_ephemerals_and_watches(ensemble_factory):
    e = ensemble_factory(voters=3)
    e.leader()
    a, b = e.ids[0], e.ids[1]
    # Server a first (kazoo tries hosts in order when not randomising), then b.
    c = client(e.hosts([a, b]), randomize_hosts=False)
    watcher = client(e[b].hosts)
    fired = threading.Event()
    try:
        c.create("/moving", b"", ephemeral=True)
        session = c.client_id
        c.exists("/watched", watch=lambda event: fired.set())
        # Server a goes away; the client moves to b with the same session.
        e[a].stop()
        deadline = time.monotonic() + 30
        while True:
            try:
                c.sync("/")
                break
            except KazooException:
                assert time.monotonic() < deadline, "the session did not move to s%d" % b
                time.sleep(0.05)
        assert c.client_id == session
        assert c.exists("/moving") is not None
        # Its watch, re-registered on the new server, fires there.
        watcher.create("/watched", b"x")
        assert fired.wait(15), "the moved session's watch did not fire"
    finally:
        c.stop()
        c.close()
        watcher.stop()
        watcher.close()


def test_a_session_on_a_follower_is_kept_alive_by_its_heartbeats_and_expires_without_them(ensemble_factory):
    # tickTime 200 ms: a 1 s session would expire five times over in the 5 s below unless
    # its follower relays the client's pings to the leader, which alone expires sessions.
    e = ensemble_factory(voters=3)
    leader = e.leader()
    follower = next(s for s in e.ids if s != leader)
    c = client(e[follower].hosts, timeout=1.0)
    observer = client(e[leader].hosts)
    try:
        c.create("/kept", b"", ephemeral=True)
        time.sleep(5)
        observer.sync("/")
        assert observer.exists("/kept") is not None, "a live session on a follower was expired"
        # Silenced (no more pings): the leader expires it and its ephemeral goes.
        e[follower].pause()
        deadline = time.monotonic() + 20
        while observer.exists("/kept") is not None:
            assert time.monotonic() < deadline, "the session outlived its timeout"
            time.sleep(0.1)
    finally:
        e[follower].resume()
        c.stop()
        c.close()
        observer.stop()
        observer.close()
