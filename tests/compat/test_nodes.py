"""Znode operations through kazoo: create (all modes, create2), get, set, exists,
delete, get_children (+getChildren2), sync, with exact Stat values.

Stat facts checked here, as Apache ZooKeeper 3.8 reports them:
- a new node has czxid == mzxid == pzxid, ctime == mtime, all versions 0;
- every write (also a failed one, see test_zxid.py) takes the next zxid;
- a child create or delete bumps the parent's cversion by one and sets its pzxid
  to that write's zxid, leaving the parent's version/mzxid alone;
- the sequential suffix is the number of children ever CREATED under the parent
  (deletes do not count), so it differs from the reported cversion once a child
  has been deleted (reported cversion counts creates and deletes).
"""

import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)


def now_ms():
    return int(time.time() * 1000)


# --- create --------------------------------------------------------------


def test_create_persistent_stat(zk):
    before = now_ms()
    assert zk.create("/a", b"hello") == "/a"
    after = now_ms()
    data, stat = zk.get("/a")
    assert data == b"hello"
    assert stat.version == 0
    assert stat.cversion == 0
    assert stat.aversion == 0
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 5
    assert stat.numChildren == 0
    assert stat.czxid > 0
    assert stat.mzxid == stat.czxid
    assert stat.pzxid == stat.czxid
    assert stat.ctime == stat.mtime
    assert before - 1000 <= stat.ctime <= after + 1000


def test_create2_returns_path_and_stat(zk):
    path, stat = zk.create("/c2", b"xyz", include_data=True)
    assert path == "/c2"
    assert stat.dataLength == 3
    assert stat.version == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    _, read = zk.get("/c2")
    assert read == stat


def test_create2_sequential_and_ephemeral(zk):
    zk.create("/p")
    path, stat = zk.create("/p/e-", b"v", ephemeral=True, sequence=True, include_data=True)
    assert path == "/p/e-0000000000"
    assert stat.ephemeralOwner == zk.client_id[0]
    assert zk.get(path)[1] == stat


def test_consecutive_writes_take_consecutive_zxids(zk):
    _, s1 = zk.create("/z1", include_data=True)
    _, s2 = zk.create("/z2", include_data=True)
    s3 = zk.set("/z1", b"new")
    assert s2.czxid == s1.czxid + 1
    assert s3.mzxid == s2.czxid + 1
    assert s3.czxid == s1.czxid


def test_create_existing_node_fails(zk):
    zk.create("/dup", b"1")
    with pytest.raises(NodeExistsError):
        zk.create("/dup", b"2")
    assert zk.get("/dup")[0] == b"1"


def test_create_without_parent_fails(zk):
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    assert zk.exists("/missing") is None


def test_create_makepath(zk):
    assert zk.create("/m1/m2/m3", b"deep", makepath=True) == "/m1/m2/m3"
    assert zk.get("/m1/m2/m3")[0] == b"deep"
    assert zk.get_children("/m1") == ["m2"]


def test_create_with_null_data(zk):
    """A create whose data buffer is null (length -1) stores a node that reads back as null."""
    zk.create("/nulldata", None)
    data, stat = zk.get("/nulldata")
    assert data is None
    assert stat.dataLength == 0


def test_create_empty_data(zk):
    zk.create("/empty", b"")
    data, stat = zk.get("/empty")
    assert data == b""
    assert stat.dataLength == 0


def test_create_large_value(zk):
    value = bytes(range(256)) * 4000  # 1,024,000 bytes: under the 1 MiB frame limit
    zk.create("/large", value)
    data, stat = zk.get("/large")
    assert data == value
    assert stat.dataLength == len(value)


def test_ephemeral_owner_is_session_id(zk):
    zk.create("/eph", b"", ephemeral=True)
    stat = zk.exists("/eph")
    assert stat.ephemeralOwner == zk.client_id[0]
    assert stat.ephemeralOwner != 0


def test_ephemeral_cannot_have_children(zk):
    zk.create("/eph", b"", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/seq-", sequence=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/e", ephemeral=True)
    assert zk.get_children("/eph") == []
    assert zk.exists("/eph").numChildren == 0


def test_ephemeral_visible_to_other_sessions(zk, zk_factory):
    other = zk_factory()
    zk.create("/eph", b"mine", ephemeral=True)
    data, stat = other.get("/eph")
    assert data == b"mine"
    assert stat.ephemeralOwner == zk.client_id[0]
    assert stat.ephemeralOwner != other.client_id[0]


# --- sequential ------------------------------------------------------------


def test_sequential_numbering_starts_at_zero(zk):
    zk.create("/seq")
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000000"
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000001"
    assert zk.create("/seq/x-", sequence=True) == "/seq/x-0000000002"
    assert sorted(zk.get_children("/seq")) == ["n-0000000000", "n-0000000001", "x-0000000002"]


def test_sequential_suffix_counts_child_creates_not_deletes(zk):
    zk.create("/seq")
    zk.create("/seq/a")
    zk.create("/seq/b")
    zk.delete("/seq/a")
    zk.delete("/seq/b")
    # Two creates and two deletes: the reported cversion is 4 ...
    assert zk.exists("/seq").cversion == 4
    # ... but the sequence number is the count of creates so far.
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000002"
    assert zk.exists("/seq").cversion == 5
    zk.create("/seq/c")
    zk.delete("/seq/c")
    zk.delete("/seq/n-0000000002")
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000004"
    stat = zk.exists("/seq")
    assert stat.cversion == 9
    assert stat.numChildren == 1


def test_sequential_with_trailing_slash_and_ephemeral(zk):
    zk.create("/seq")
    assert zk.create("/seq/", sequence=True) == "/seq/0000000000"
    path = zk.create("/seq/e-", sequence=True, ephemeral=True)
    assert path == "/seq/e-0000000001"
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_sequential_under_fresh_root(zk):
    """The root starts with /zookeeper as a child that was never 'created'."""
    assert zk.create("/q-", sequence=True) == "/q-0000000000"
    assert zk.create("/q-", sequence=True) == "/q-0000000001"


def test_set_data_does_not_advance_sequence(zk):
    zk.create("/seq")
    zk.create("/seq/a")
    zk.set("/seq", b"x")
    zk.set("/seq/a", b"y")
    assert zk.create("/seq/n-", sequence=True) == "/seq/n-0000000001"


# --- parent stat -----------------------------------------------------------


def test_parent_stat_on_child_create_and_delete(zk):
    zk.create("/p", b"data")
    _, p0 = zk.get("/p")
    _, child = zk.create("/p/c", include_data=True)
    _, p1 = zk.get("/p")
    assert p1.cversion == p0.cversion + 1
    assert p1.numChildren == 1
    assert p1.pzxid == child.czxid
    assert p1.mzxid == p0.mzxid
    assert p1.version == p0.version
    assert p1.czxid == p0.czxid

    zk.set("/p/c", b"changed")  # a child's data change is not a child change
    _, p2 = zk.get("/p")
    assert p2.cversion == p1.cversion
    assert p2.pzxid == p1.pzxid

    zk.delete("/p/c")
    _, p3 = zk.get("/p")
    assert p3.cversion == p1.cversion + 1
    assert p3.numChildren == 0
    assert p3.pzxid > p1.pzxid
    assert p3.mzxid == p0.mzxid
    # The delete took the zxid just before the next write's.
    _, probe = zk.create("/probe", include_data=True)
    assert p3.pzxid == probe.czxid - 1


def test_grandchild_changes_do_not_touch_grandparent(zk):
    zk.create("/g/p", makepath=True)
    _, g0 = zk.get("/g")
    zk.create("/g/p/c")
    zk.delete("/g/p/c")
    _, g1 = zk.get("/g")
    assert g1 == g0


# --- get / exists ----------------------------------------------------------


def test_get_missing_node(zk):
    with pytest.raises(NoNodeError):
        zk.get("/nope")


def test_exists(zk):
    assert zk.exists("/nope") is None
    zk.create("/yes", b"12")
    stat = zk.exists("/yes")
    assert stat is not None
    assert stat.dataLength == 2
    assert stat == zk.get("/yes")[1]


def test_root_is_readable(zk):
    data, stat = zk.get("/")
    assert data == b""
    assert stat.czxid == 0
    assert stat.ephemeralOwner == 0
    assert "zookeeper" in zk.get_children("/")


# --- set -------------------------------------------------------------------


def test_set_updates_version_and_mzxid(zk):
    _, s0 = zk.create("/s", b"a", include_data=True)
    s1 = zk.set("/s", b"bb")
    assert s1.version == 1
    assert s1.dataLength == 2
    assert s1.czxid == s0.czxid
    assert s1.mzxid > s0.mzxid
    assert s1.pzxid == s0.pzxid
    assert s1.ctime == s0.ctime
    assert s1.mtime >= s0.mtime
    assert s1.cversion == 0
    assert zk.get("/s") == (b"bb", s1)
    s2 = zk.set("/s", b"", version=1)
    assert s2.version == 2
    assert s2.dataLength == 0


def test_set_same_data_still_bumps_version(zk):
    zk.create("/s", b"same")
    assert zk.set("/s", b"same").version == 1
    assert zk.set("/s", b"same").version == 2


def test_set_bad_version(zk):
    zk.create("/s", b"a")
    with pytest.raises(BadVersionError):
        zk.set("/s", b"b", version=5)
    zk.set("/s", b"b", version=0)
    with pytest.raises(BadVersionError):
        zk.set("/s", b"c", version=0)
    assert zk.get("/s")[0] == b"b"


def test_set_missing_node(zk):
    with pytest.raises(NoNodeError):
        zk.set("/nope", b"x")
    with pytest.raises(NoNodeError):
        zk.set("/nope", b"x", version=3)


# --- delete ----------------------------------------------------------------


def test_delete(zk):
    zk.create("/d")
    zk.delete("/d")
    assert zk.exists("/d") is None
    with pytest.raises(NoNodeError):
        zk.delete("/d")


def test_delete_with_version(zk):
    zk.create("/d", b"1")
    zk.set("/d", b"2")
    with pytest.raises(BadVersionError):
        zk.delete("/d", version=0)
    assert zk.exists("/d") is not None
    zk.delete("/d", version=1)
    assert zk.exists("/d") is None


def test_delete_missing_with_version_is_nonode(zk):
    with pytest.raises(NoNodeError):
        zk.delete("/nope", version=7)


def test_delete_non_empty(zk):
    zk.create("/d/c", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete("/d")
    zk.delete("/d", recursive=True)
    assert zk.exists("/d") is None


def test_recreated_node_starts_fresh(zk):
    _, s0 = zk.create("/r", b"one", include_data=True)
    zk.set("/r", b"two")
    zk.delete("/r")
    _, s1 = zk.create("/r", b"three", include_data=True)
    assert s1.version == 0
    assert s1.czxid > s0.czxid


# --- children ----------------------------------------------------------------


def test_get_children(zk):
    zk.create("/kids")
    assert zk.get_children("/kids") == []
    for name in ("b", "a", "c"):
        zk.create("/kids/" + name)
    assert sorted(zk.get_children("/kids")) == ["a", "b", "c"]


def test_get_children_include_data(zk):
    zk.create("/kids", b"pd")
    zk.create("/kids/x")
    zk.create("/kids/y")
    children, stat = zk.get_children("/kids", include_data=True)
    assert sorted(children) == ["x", "y"]
    assert stat.numChildren == 2
    assert stat.cversion == 2
    assert stat.dataLength == 2
    assert stat == zk.exists("/kids")


def test_get_children_missing_node(zk):
    with pytest.raises(NoNodeError):
        zk.get_children("/nope")
    with pytest.raises(NoNodeError):
        zk.get_children("/nope", include_data=True)


def test_many_children(zk):
    zk.create("/many")
    names = ["n%04d" % i for i in range(300)]
    for name in names:
        zk.create_async("/many/" + name)
    zk.sync("/many")
    assert sorted(zk.get_children("/many")) == names
    assert zk.exists("/many").numChildren == 300


# --- bad paths -----------------------------------------------------------------


# ZooKeeper's PathUtils refuses NUL, \u0001-\u001f, \u007f-\u009f, \ud800-\uf8ff and \ufff0-\uffff.
@pytest.mark.parametrize(
    "path",
    ["/a\u0000b", "/a\u0001", "/x\u001f", "/x\u007f", "/x\u0085", "/p\ue000", "/s\ufff0", "/s\uffff"],
)
def test_create_invalid_characters(zk, path):
    with pytest.raises(BadArgumentsError):
        zk.create(path)


def test_delete_root_and_zookeeper_are_refused(zk):
    with pytest.raises(BadArgumentsError):
        zk.delete("/")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")
    assert zk.exists("/zookeeper") is not None


# --- sync ------------------------------------------------------------------------


def test_sync_returns_path(zk):
    zk.create("/sy")
    assert zk.sync("/sy") == "/sy"
    assert zk.sync("/") == "/"


def test_sync_on_missing_path_succeeds(zk):
    assert zk.sync("/no/such/node") == "/no/such/node"


def test_sync_orders_after_writes_of_other_sessions(zk, zk_factory):
    writer = zk_factory()
    writer.create("/sy", b"v1")
    writer.set("/sy", b"v2")
    zk.sync("/sy")
    assert zk.get("/sy")[0] == b"v2"
