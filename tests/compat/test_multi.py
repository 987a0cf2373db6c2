"""Multi (kazoo transactions): check/create/set/delete, all-or-nothing.

Apache ZooKeeper 3.8 answers a failed multi with reply-header err 0 and one
error result per op: the ops before the failing one carry err 0 (kazoo:
RolledBackError), the failing op its own error, the ops after it
RUNTIMEINCONSISTENCY (-2, kazoo: RuntimeInconsistency). Nothing is applied.
The raw shapes are checked in test_wire.py.
"""

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat


def test_multi_success_results(zk):
    zk.create("/s", b"v0")
    zk.create("/gone")
    t = zk.transaction()
    t.check("/s", 0)
    t.create("/new", b"n")
    t.set_data("/s", b"v1")
    t.delete("/gone")
    results = t.commit()
    assert len(results) == 4
    assert results[0] is True
    assert results[1] == "/new"
    assert isinstance(results[2], ZnodeStat)
    assert results[2].version == 1
    assert results[2].dataLength == 2
    assert results[3] is True
    assert zk.get("/s")[0] == b"v1"
    assert zk.get("/new")[0] == b"n"
    assert zk.exists("/gone") is None


def test_multi_ops_share_one_zxid(zk):
    zk.create("/s")
    t = zk.transaction()
    t.create("/a")
    t.create("/b")
    t.set_data("/s", b"x")
    results = t.commit()
    za = zk.exists("/a").czxid
    assert zk.exists("/b").czxid == za
    assert results[2].mzxid == za
    assert zk.exists("/s").mzxid == za


def test_multi_sees_its_own_earlier_ops(zk):
    t = zk.transaction()
    t.create("/p")
    t.create("/p/c", b"child")
    t.set_data("/p/c", b"changed")
    t.check("/p/c", 1)
    t.set_data("/p", b"parent")
    results = t.commit()
    assert results[0] == "/p"
    assert results[1] == "/p/c"
    assert results[2].version == 1
    assert results[3] is True
    assert zk.get("/p/c")[0] == b"changed"
    stat = zk.exists("/p")
    assert stat.numChildren == 1
    assert stat.version == 1


def test_multi_create_then_delete_same_node(zk):
    t = zk.transaction()
    t.create("/tmp")
    t.delete("/tmp")
    assert t.commit() == ["/tmp", True]
    assert zk.exists("/tmp") is None


def test_multi_sequential_create(zk):
    zk.create("/q")
    zk.create("/q/a")
    t = zk.transaction()
    t.create("/q/n-", sequence=True)
    t.create("/q/n-", sequence=True)
    assert t.commit() == ["/q/n-0000000001", "/q/n-0000000002"]


def test_multi_ephemeral_create(zk):
    t = zk.transaction()
    t.create("/e", ephemeral=True)
    t.commit()
    assert zk.exists("/e").ephemeralOwner == zk.client_id[0]


def test_multi_failure_is_atomic_with_per_op_results(zk):
    zk.create("/s", b"v0")
    zk.create("/keep")
    t = zk.transaction()
    t.create("/new")
    t.set_data("/s", b"v1")
    t.check("/s", 7)  # fails: /s is at version 0 (and 1 inside the multi)
    t.delete("/keep")
    t.create("/other")
    results = t.commit()
    assert len(results) == 5
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    assert isinstance(results[3], RuntimeInconsistency)
    assert isinstance(results[4], RuntimeInconsistency)
    assert zk.exists("/new") is None
    assert zk.exists("/other") is None
    assert zk.exists("/keep") is not None
    data, stat = zk.get("/s")
    assert data == b"v0"
    assert stat.version == 0


def test_multi_failing_first_op(zk):
    t = zk.transaction()
    t.delete("/nope")
    t.create("/x")
    results = t.commit()
    assert isinstance(results[0], NoNodeError)
    assert isinstance(results[1], RuntimeInconsistency)
    assert zk.exists("/x") is None


def test_multi_failing_last_op(zk):
    zk.create("/exists")
    t = zk.transaction()
    t.create("/x")
    t.create("/exists")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists("/x") is None


@pytest.mark.parametrize(
    "setup, build, error",
    [
        (lambda zk: None, lambda t: t.check("/missing", 0), NoNodeError),
        (lambda zk: zk.create("/n/c", makepath=True), lambda t: t.delete("/n"), NotEmptyError),
        (lambda zk: zk.create("/n"), lambda t: t.delete("/n", version=3), BadVersionError),
        (lambda zk: zk.create("/n"), lambda t: t.set_data("/n", b"", version=3), BadVersionError),
        (lambda zk: None, lambda t: t.set_data("/missing", b""), NoNodeError),
        (lambda zk: zk.create("/n", ephemeral=True), lambda t: t.create("/n/c"), NoChildrenForEphemeralsError),
        (lambda zk: None, lambda t: t.create("/missing/c"), NoNodeError),
    ],
)
def test_multi_single_op_errors(zk, setup, build, error):
    setup(zk)
    zk.create("/marker")
    t = zk.transaction()
    t.set_data("/marker", b"touched")
    build(t)
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], error)
    assert zk.get("/marker") == (b"", zk.exists("/marker"))
    assert zk.exists("/marker").version == 0


def test_multi_check_sees_earlier_set(zk):
    zk.create("/s")
    t = zk.transaction()
    t.set_data("/s", b"1")
    t.check("/s", 1)
    assert t.commit() == [zk.exists("/s"), True]


def test_multi_delete_then_check_fails(zk):
    zk.create("/s")
    t = zk.transaction()
    t.delete("/s")
    t.check("/s", 0)
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NoNodeError)
    assert zk.exists("/s") is not None


def test_multi_as_context_manager(zk):
    with zk.transaction() as t:
        t.create("/cm", b"1")
    assert zk.get("/cm")[0] == b"1"


def test_empty_multi(zk):
    assert zk.transaction().commit() == []


def test_failed_multi_bumps_nothing_visible(zk):
    zk.create("/p")
    before = zk.exists("/p")
    t = zk.transaction()
    t.create("/p/a")
    t.create("/p/a")
    results = t.commit()
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists("/p") == before
    # The rolled-back create did not use up a sequence number either.
    assert zk.create("/p/n-", sequence=True) == "/p/n-0000000000"
