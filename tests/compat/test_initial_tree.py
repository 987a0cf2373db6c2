"""The tree a fresh standalone server starts with, as Apache ZooKeeper 3.8 reports it,
and the one request kazoo can send that standalone refuses (reconfig).

Apache's reported cversion is derived: 2 * (children ever created) - numChildren.
/zookeeper and its two children are put in place without a create, hence the
negative cversions of / (-1) and /zookeeper (-2) on a fresh server.
"""

import os

import pytest
from kazoo.exceptions import ReconfigDisabledError
from kazoo.security import ACL, Id, Permissions

ZERO_STAT = dict(czxid=0, mzxid=0, ctime=0, mtime=0, version=0, cversion=0, aversion=0,
                 ephemeralOwner=0, dataLength=0, numChildren=0, pzxid=0)


def stat_dict(stat):
    return {k: getattr(stat, k) for k in ZERO_STAT}


def test_fresh_tree(zk):
    assert sorted(zk.get_children("/")) == ["zookeeper"]
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    assert zk.get_children("/zookeeper/quota") == []
    assert zk.get_children("/zookeeper/config") == []

    data, stat = zk.get("/")
    assert data == b""
    assert stat_dict(stat) == dict(ZERO_STAT, cversion=-1, numChildren=1)

    data, stat = zk.get("/zookeeper")
    assert data == b""
    assert stat_dict(stat) == dict(ZERO_STAT, cversion=-2, numChildren=2)

    data, stat = zk.get("/zookeeper/quota")
    assert data == b""
    assert stat_dict(stat) == ZERO_STAT

    data, stat = zk.get("/zookeeper/config")
    if os.environ.get("ZK_TOPOLOGY") == "ensemble":
        # Each server of an ensemble writes its membership there, with data version -1.
        assert data.startswith(b"server.1=") and data.endswith(b"\nversion=0"), data
        assert stat_dict(stat) == dict(
            ZERO_STAT, aversion=-1, version=-1, dataLength=len(data), mtime=stat.mtime
        )
    else:
        assert data == b""
        assert stat_dict(stat) == dict(ZERO_STAT, aversion=-1)
    assert zk.get_acls("/zookeeper/config")[0] == [ACL(Permissions.READ, Id("world", "anyone"))]


def test_root_cversion_counts_from_minus_one(zk):
    zk.create("/a")
    assert zk.exists("/").cversion == 0
    zk.create("/b")
    zk.delete("/a")
    stat = zk.exists("/")
    assert stat.cversion == 2
    assert stat.numChildren == 2
    assert stat.pzxid == zk.exists("/b").czxid + 1


def test_nodes_under_zookeeper_can_be_created(zk):
    zk.create("/zookeeper/mine", b"x")
    assert zk.exists("/zookeeper").cversion == -1
    zk.set("/zookeeper", b"allowed")
    assert zk.get("/zookeeper")[0] == b"allowed"


@pytest.mark.parametrize(
    "joining, leaving, new_members",
    [(None, None, None), ("server.2=127.0.0.1:2888:3888:participant;2182", None, None), (None, "1", None)],
)
def test_reconfig_is_disabled_in_standalone(zk, joining, leaving, new_members):
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining, leaving, new_members)
