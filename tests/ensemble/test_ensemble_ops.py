"""What an operator reads of an ensemble: srvr's Mode, mntr's ensemble figures and the
AdminServer's quorum commands, on the leader, a follower and an observer. The expected
values are Apache ZooKeeper 3.8's (ZK_TARGET=apache passes the same test)."""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")


def mntr(server):
    out = server.four_letter("mntr")
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def admin(server, command):
    url = "http://127.0.0.1:%d/commands/%s" % (server.admin_port, command)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_for(check, what, timeout=20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: last %r" % (what, last))


@pytest.fixture
def ensemble(tmp_path):
    e = Ensemble(TARGET, tmp_path / "e", voters=3, observers=1, extra_cfg={"admin.enableServer": "true"})
    try:
        e.start()
    except Exception as err:
        e.stop_all()
        pytest.fail("ensemble did not start: %s\n%s" % (err, e.log_tails()), pytrace=False)
    yield e
    e.stop_all()


def test_mntr_and_the_admin_quorum_commands_describe_the_ensemble(ensemble):
    e = ensemble
    leader = e.leader()
    follower = next(s for s in e.ids if s not in (leader, 4))
    observer = 4

    # The leader counts its learners once every one is synced.
    m = wait_for(
        lambda: (lambda m: m if m.get("zk_synced_followers") == "2" and m.get("zk_synced_observers") == "1" else None)(
            mntr(e[leader])
        ),
        "the leader's learners synced",
    )
    assert m["zk_server_state"] == "leader"
    assert m["zk_peer_state"] == "leading - broadcast"
    assert (m["zk_pending_syncs"], m["zk_learners"], m["zk_quorum_size"]) == ("0", "3", "3")
    assert m["zk_synced_non_voting_followers"] == "0"

    m = mntr(e[follower])
    assert (m["zk_server_state"], m["zk_peer_state"], m["zk_quorum_size"]) == (
        "follower",
        "following - broadcast",
        "3",
    )
    assert "zk_learners" not in m and "zk_synced_followers" not in m

    m = mntr(e[observer])
    assert (m["zk_server_state"], m["zk_peer_state"]) == ("observer", "observing - broadcast")
    assert m["zk_observer_master_id"] == str(leader)

    for sid in (leader, observer):
        lead = admin(e[sid], "leader")
        assert (lead["is_leader"], lead["leader_id"], lead["leader_ip"]) == (sid == leader, leader, "127.0.0.1")

    view = admin(e[follower], "voting_view")["current_config"]
    assert sorted(view) == ["1", "2", "3"], "observers are not in the voting view"
    for sid in ("1", "2", "3"):
        quorum, election = e[int(sid)].cfg()["server.%s" % sid].split(":")[1:3]
        assert view[sid]["server_addresses"] == ["127.0.0.1:%s" % quorum]
        assert view[sid]["election_addresses"] == ["127.0.0.1:%s" % election]
        assert view[sid]["learner_type"] == "participant"
        assert view[sid]["client_address"] == ("127.0.0.1:%d" % e[follower].port if int(sid) == follower else "")

    zab = admin(e[leader], "zabstate")
    assert (zab["myid"], zab["is_leader"], zab["voting"], zab["zabstate"]) == (leader, True, True, "broadcast")
    quorum = e[leader].cfg()["server.%d" % leader].split(":")[1]
    assert zab["quorum_address"]["one"] == "127.0.0.1:%s" % quorum
    zab = admin(e[observer], "zabstate")
    assert (zab["myid"], zab["is_leader"], zab["voting"]) == (4, False, False)

    obs = admin(e[leader], "observers")
    assert obs["synced_observers"] == 1
    assert [o["sid"] for o in obs["observers"]] == [4]
    assert admin(e[follower], "observers")["observers"] == []


def test_zookeeper_config_holds_the_membership_on_every_server(ensemble):
    """/zookeeper/config is each server's membership as ZooKeeper writes it back from the
    server.N lines (the Java client's getConfig and Curator's ensemble tracking read it):
    byte for byte, with version -1 and no zxid, readable by anyone and by nobody written."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    ensemble.leader()
    expected = "".join(
        "server.%d=%s\n" % (sid, value if value.endswith("observer") else value + ":participant")
        for sid, value in sorted(
            (int(key.split(".")[1]), value)
            for key, value in ensemble[1].extra_cfg.items()
            if key.startswith("server.")
        )
    ) + "version=0"
    for sid in ensemble.ids:
        c = KazooClient(hosts=ensemble[sid].hosts)
        c.start(timeout=15)
        try:
            data, stat = c.get("/zookeeper/config")
            assert data.decode() == expected, sid
            assert (stat.version, stat.czxid, stat.mzxid, stat.aversion) == (-1, 0, 0, -1)
            with pytest.raises(NoAuthError):
                c.set("/zookeeper/config", b"server.9=x")
        finally:
            c.stop()
            c.close()
