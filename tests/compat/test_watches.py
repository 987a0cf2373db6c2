"""One-shot data, exists and child watches through kazoo, plus the DataWatch and
ChildrenWatch recipes.

Determinism: ZooKeeper sends a watch event before the reply to any later
request of the same session that observes the change, and kazoo queues watch
callbacks in arrival order. So after a synchronous read on the watching client
plus flush_watch_callbacks(), every event that must have fired has been
recorded, and anything not recorded did not fire. No sleeps.
"""

import threading
import time

import pytest
from kazoo.protocol.states import EventType, KeeperState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from kazoo_util import EventRecorder, flush_watch_callbacks
from waiting import wait_until


def settle(client, path="/"):
    """A read that observes everything written so far, then drain watch callbacks."""
    client.sync(path)
    client.exists(path)
    flush_watch_callbacks(client)


# --- data and exists watches ----------------------------------------------


def test_exists_watch_fires_created(zk, zk_factory):
    other = zk_factory()
    rec = EventRecorder()
    assert zk.exists("/w", watch=rec) is None
    other.create("/w", b"x")
    settle(zk)
    events = rec.snapshot()
    assert len(events) == 1
    assert events[0].type == EventType.CREATED
    assert events[0].path == "/w"
    assert events[0].state == KeeperState.CONNECTED


def test_exists_watch_fires_changed_and_deleted(zk):
    zk.create("/w")
    rec = EventRecorder()
    zk.exists("/w", watch=rec)
    zk.set("/w", b"1")
    settle(zk)
    assert rec.kinds() == [(EventType.CHANGED, "/w")]
    rec2 = EventRecorder()
    zk.exists("/w", watch=rec2)
    zk.delete("/w")
    settle(zk)
    assert rec2.kinds() == [(EventType.DELETED, "/w")]


def test_get_watch_fires_changed_once(zk, zk_factory):
    other = zk_factory()
    zk.create("/w", b"0")
    rec = EventRecorder()
    zk.get("/w", watch=rec)
    other.set("/w", b"1")
    other.set("/w", b"2")
    other.delete("/w")
    settle(zk)
    assert rec.kinds() == [(EventType.CHANGED, "/w")]


def test_get_watch_fires_deleted(zk, zk_factory):
    other = zk_factory()
    zk.create("/w")
    rec = EventRecorder()
    zk.get("/w", watch=rec)
    other.delete("/w")
    settle(zk)
    assert rec.kinds() == [(EventType.DELETED, "/w")]


def test_exists_watch_on_missing_node_fires_only_created(zk, zk_factory):
    other = zk_factory()
    rec = EventRecorder()
    zk.exists("/w", watch=rec)
    other.create("/w")
    other.set("/w", b"x")
    other.delete("/w")
    settle(zk)
    assert rec.kinds() == [(EventType.CREATED, "/w")]


def test_watch_can_be_set_again_after_firing(zk, zk_factory):
    other = zk_factory()
    zk.create("/w", b"0")
    rec = EventRecorder()
    for i in range(1, 4):
        zk.get("/w", watch=rec)
        other.set("/w", str(i).encode())
        settle(zk)
        assert len(rec.snapshot()) == i
    assert [e.type for e in rec.snapshot()] == [EventType.CHANGED] * 3


def test_failed_write_fires_no_watch(zk):
    zk.create("/w", b"0")
    rec = EventRecorder()
    zk.get("/w", watch=rec)
    with pytest.raises(Exception):
        zk.set("/w", b"1", version=9)
    with pytest.raises(Exception):
        zk.create("/w")
    settle(zk)
    assert rec.snapshot() == []


def test_data_watch_not_fired_by_child_changes(zk):
    zk.create("/w")
    rec = EventRecorder()
    zk.get("/w", watch=rec)
    zk.create("/w/c")
    zk.delete("/w/c")
    settle(zk)
    assert rec.snapshot() == []


# --- child watches ---------------------------------------------------------


def test_child_watch_fires_on_create(zk, zk_factory):
    other = zk_factory()
    zk.create("/p")
    rec = EventRecorder()
    assert zk.get_children("/p", watch=rec) == []
    other.create("/p/a")
    other.create("/p/b")
    settle(zk)
    assert rec.kinds() == [(EventType.CHILD, "/p")]


def test_child_watch_fires_on_delete(zk, zk_factory):
    other = zk_factory()
    zk.create("/p/a", makepath=True)
    rec = EventRecorder()
    zk.get_children("/p", watch=rec)
    other.delete("/p/a")
    settle(zk)
    assert rec.kinds() == [(EventType.CHILD, "/p")]


def test_child_watch_ignores_data_changes(zk):
    zk.create("/p/a", makepath=True)
    rec = EventRecorder()
    zk.get_children("/p", watch=rec)
    zk.set("/p", b"parent data")
    zk.set("/p/a", b"child data")
    settle(zk)
    assert rec.snapshot() == []


def test_child_watch_fires_deleted_when_node_deleted(zk):
    zk.create("/p")
    rec = EventRecorder()
    zk.get_children("/p", watch=rec)
    zk.delete("/p")
    settle(zk)
    assert rec.kinds() == [(EventType.DELETED, "/p")]


def test_child_watch_with_include_data(zk, zk_factory):
    other = zk_factory()
    zk.create("/p")
    rec = EventRecorder()
    children, stat = zk.get_children("/p", watch=rec, include_data=True)
    assert children == []
    assert stat.numChildren == 0
    other.create("/p/x")
    settle(zk)
    assert rec.kinds() == [(EventType.CHILD, "/p")]


def test_delete_fires_data_watch_on_node_and_child_watch_on_parent(zk, zk_factory):
    other = zk_factory()
    zk.create("/p/c", makepath=True)
    node_rec = EventRecorder()
    parent_rec = EventRecorder()
    zk.get("/p/c", watch=node_rec)
    zk.get_children("/p", watch=parent_rec)
    other.delete("/p/c")
    settle(zk)
    assert node_rec.kinds() == [(EventType.DELETED, "/p/c")]
    assert parent_rec.kinds() == [(EventType.CHILD, "/p")]


def test_create_fires_exists_watch_and_parent_child_watch(zk, zk_factory):
    other = zk_factory()
    zk.create("/p")
    node_rec = EventRecorder()
    parent_rec = EventRecorder()
    zk.exists("/p/c", watch=node_rec)
    zk.get_children("/p", watch=parent_rec)
    other.create("/p/c")
    settle(zk)
    assert node_rec.kinds() == [(EventType.CREATED, "/p/c")]
    assert parent_rec.kinds() == [(EventType.CHILD, "/p")]


# --- several watchers ------------------------------------------------------


def test_every_session_watching_gets_the_event(zk_factory):
    writer = zk_factory()
    writer.create("/w")
    watchers = [zk_factory() for _ in range(3)]
    recs = []
    for client in watchers:
        rec = EventRecorder()
        client.get("/w", watch=rec)
        recs.append(rec)
    writer.set("/w", b"go")
    for client, rec in zip(watchers, recs):
        settle(client)
        assert rec.kinds() == [(EventType.CHANGED, "/w")]


def test_data_and_exists_watch_on_same_node_both_called(zk):
    zk.create("/w")
    r1 = EventRecorder()
    r2 = EventRecorder()
    zk.get("/w", watch=r1)
    zk.exists("/w", watch=r2)
    zk.set("/w", b"x")
    settle(zk)
    assert r1.kinds() == [(EventType.CHANGED, "/w")]
    assert r2.kinds() == [(EventType.CHANGED, "/w")]


def test_multi_fires_watches(zk, zk_factory):
    other = zk_factory()
    zk.create("/p")
    zk.create("/d", b"0")
    child_rec = EventRecorder()
    data_rec = EventRecorder()
    zk.get_children("/p", watch=child_rec)
    zk.get("/d", watch=data_rec)
    t = other.transaction()
    t.create("/p/new")
    t.set_data("/d", b"1")
    t.commit()
    settle(zk)
    assert child_rec.kinds() == [(EventType.CHILD, "/p")]
    assert data_rec.kinds() == [(EventType.CHANGED, "/d")]


def test_failed_multi_fires_no_watch(zk, zk_factory):
    other = zk_factory()
    zk.create("/p")
    child_rec = EventRecorder()
    zk.get_children("/p", watch=child_rec)
    t = other.transaction()
    t.create("/p/new")
    t.check("/p", 42)
    t.commit()
    settle(zk)
    assert child_rec.snapshot() == []


def test_ephemeral_removed_by_session_close_fires_watches(zk, zk_factory):
    owner = zk_factory()
    owner.create("/p")
    owner.create("/p/e", ephemeral=True)
    node_rec = EventRecorder()
    parent_rec = EventRecorder()
    zk.exists("/p/e", watch=node_rec)
    zk.get_children("/p", watch=parent_rec)
    owner.stop()
    settle(zk)
    assert node_rec.kinds() == [(EventType.DELETED, "/p/e")]
    assert parent_rec.kinds() == [(EventType.CHILD, "/p")]


# --- ordering ----------------------------------------------------------------


def test_event_arrives_before_reply_of_later_read(zk, zk_factory):
    """A watch event reaches the client before the reply of a later read seeing the change.

    The writer's set has completed before the watcher's get is sent, so that get
    observes the new data; the watch event must be queued in the watcher before
    the get's reply. flush_watch_callbacks() then runs the queued callbacks; no
    waiting for the event with a timeout.
    """
    writer = zk_factory()
    zk.create("/w", b"old")
    for i in range(20):
        rec = EventRecorder()
        zk.get("/w", watch=rec)
        writer.set("/w", b"v%d" % i)
        data, _ = zk.get("/w")
        assert data == b"v%d" % i
        flush_watch_callbacks(zk)
        assert rec.kinds() == [(EventType.CHANGED, "/w")], "round %d" % i


def test_child_event_arrives_before_reply_of_later_read(zk, zk_factory):
    writer = zk_factory()
    zk.create("/p")
    for i in range(10):
        rec = EventRecorder()
        zk.get_children("/p", watch=rec)
        writer.create("/p/c%d" % i)
        # The writer may be on another server of an ensemble: this session's server shows the
        # child once it has applied the create. The first read that shows it must come after
        # the event (ZooKeeper's order: a client sees the event before the change).
        deadline = time.monotonic() + 10
        while "c%d" % i not in zk.get_children("/p"):
            assert time.monotonic() < deadline, "round %d: the child never showed" % i
        flush_watch_callbacks(zk)
        assert rec.kinds() == [(EventType.CHILD, "/p")], "round %d" % i


# --- recipes: DataWatch / ChildrenWatch -------------------------------------


def test_data_watch_recipe(zk, zk_factory):
    other = zk_factory()
    seen = []
    lock = threading.Lock()

    def on_data(data, stat):
        with lock:
            seen.append((data, stat.version if stat else None))

    DataWatch(zk, "/dw", on_data)
    wait_until(lambda: len(seen) >= 1)
    assert seen[0] == (None, None)
    other.create("/dw", b"a")
    wait_until(lambda: (b"a", 0) in seen)
    other.set("/dw", b"b")
    wait_until(lambda: (b"b", 1) in seen)
    other.delete("/dw")
    wait_until(lambda: seen[-1] == (None, None))


def test_children_watch_recipe(zk, zk_factory):
    other = zk_factory()
    zk.create("/cw")
    seen = []
    lock = threading.Lock()

    def on_children(children):
        with lock:
            seen.append(sorted(children))

    ChildrenWatch(zk, "/cw", on_children)
    wait_until(lambda: seen and seen[0] == [])
    other.create("/cw/a")
    wait_until(lambda: seen[-1] == ["a"])
    other.create("/cw/b")
    wait_until(lambda: seen[-1] == ["a", "b"])
    other.delete("/cw/a")
    wait_until(lambda: seen[-1] == ["b"])
