"""Sessions: re-attach after a dropped connection, expiry, close, timeouts, pings.

Connections are cut and stalled with tests/support/proxy.py (loopback only).
kazoo 2.11 does not send SetWatches when it re-attaches (it fires its watchers
with a NONE event instead), so watch re-registration is checked on the wire
with rawzk.
"""

import re
import threading
import time

import pytest
from kazoo.protocol.states import KazooState, KeeperState
from kazoo.recipe.watchers import DataWatch

from proxy import TcpProxy
from rawzk import (
    EVENT_CHANGED,
    EVENT_CHILD,
    EVENT_CREATED,
    EVENT_DELETED,
    OP_CREATE,
    OP_EXISTS,
    OP_GET_CHILDREN,
    OP_GET_DATA,
    RawClient,
    create_payload,
    pack_int,
    pack_long,
    pack_string,
    path_watch_payload,
)
from waiting import wait_until

XID_SET_WATCHES = -8
OP_SET_WATCHES = 101


@pytest.fixture
def proxy(zk_server):
    with TcpProxy(zk_server.port) as p:
        yield p


def record_states(client):
    """KazooState changes and the raw KeeperState transitions of a client."""
    states = []
    keeper_states = []
    lock = threading.Lock()

    def listener(state):
        with lock:
            states.append(state)

    client.add_listener(listener)
    original = client._session_callback

    def spy(state):
        with lock:
            keeper_states.append(state)
        return original(state)

    client._session_callback = spy
    return states, keeper_states


# --- re-attach -------------------------------------------------------------------


def test_reattach_after_dropped_connection_keeps_session_and_ephemerals(zk_server, proxy, zk_factory):
    client = zk_factory(hosts=proxy.hosts)
    observer = zk_factory()
    states, _ = record_states(client)
    session_id = client.client_id[0]
    _, eph = client.create("/eph", b"e", ephemeral=True, include_data=True)

    for round_ in range(3):
        assert proxy.drop_all() >= 1
        wait_until(lambda: KazooState.SUSPENDED in states, message="client noticed the drop")
        wait_until(lambda: states[-1] == KazooState.CONNECTED, message="client re-attached")
        assert client.client_id[0] == session_id
        assert KazooState.LOST not in states
        stat = observer.exists("/eph")
        assert stat is not None, "round %d" % round_
        assert stat.ephemeralOwner == session_id
        assert stat.czxid == eph.czxid
        states.clear()

    # the re-attached session still writes and owns new ephemerals
    client.create("/eph2", ephemeral=True)
    assert observer.exists("/eph2").ephemeralOwner == session_id


def test_data_watch_recipe_survives_dropped_connection(zk_server, proxy, zk_factory):
    client = zk_factory(hosts=proxy.hosts)
    writer = zk_factory()
    writer.create("/dw", b"0")
    seen = []

    def on_data(data, stat):
        seen.append(data)

    DataWatch(client, "/dw", on_data)
    wait_until(lambda: seen == [b"0"])
    proxy.drop_all()
    wait_until(lambda: client.state == KazooState.CONNECTED and client.connected)
    writer.set("/dw", b"1")
    wait_until(lambda: seen and seen[-1] == b"1", message="DataWatch saw the change after re-attach")


def set_watches_payload(relative_zxid, data=(), exist=(), child=()):
    out = pack_long(relative_zxid)
    for paths in (data, exist, child):
        out += pack_int(len(paths))
        for p in paths:
            out += pack_string(p)
    return out


def read_until_set_watches_reply(client):
    events = []
    while True:
        xid, zxid, err, r = client.read_message()
        if xid == XID_SET_WATCHES:
            assert err == 0
            return events
        assert xid == -1, "unexpected frame xid %d" % xid
        events.append((r.int(), r.int(), r.string()))


def test_set_watches_on_reattach_reports_missed_changes(zk_server, zk):
    """SetWatches(relativeZxid, ...) fires at once for changes after relativeZxid."""
    zk.create("/w", b"0")
    zk.create("/p")
    zk.create("/gone")
    first = RawClient("127.0.0.1", zk_server.port).connect()
    try:
        first.call(OP_GET_DATA, path_watch_payload("/w", True))
        first.call(OP_EXISTS, path_watch_payload("/n", True))
        first.call(OP_GET_CHILDREN, path_watch_payload("/p", True))
        last_zxid, _, _ = first.call(OP_GET_DATA, path_watch_payload("/gone", True))
    finally:
        first.close()

    # changes while the client is away
    zk.set("/w", b"1")
    zk.create("/n")
    zk.create("/p/c")
    zk.delete("/gone")

    with RawClient("127.0.0.1", zk_server.port) as again:
        again.connect(session_id=first.session_id, passwd=first.passwd, last_zxid=last_zxid)
        assert again.session_id == first.session_id
        again.send_request(
            OP_SET_WATCHES,
            set_watches_payload(last_zxid, data=["/w", "/gone"], exist=["/n"], child=["/p"]),
            xid=XID_SET_WATCHES,
        )
        events = read_until_set_watches_reply(again)
        assert sorted(events) == sorted([
            (EVENT_CHANGED, 3, "/w"),
            (EVENT_DELETED, 3, "/gone"),
            (EVENT_CREATED, 3, "/n"),
            (EVENT_CHILD, 3, "/p"),
        ])


def test_set_watches_without_missed_changes_rearms_watches(zk_server, zk):
    zk.create("/w", b"0")
    zk.create("/p")
    first = RawClient("127.0.0.1", zk_server.port).connect()
    try:
        last_zxid, _, _ = first.call(OP_GET_DATA, path_watch_payload("/w", True))
    finally:
        first.close()
    with RawClient("127.0.0.1", zk_server.port) as again:
        again.connect(session_id=first.session_id, passwd=first.passwd, last_zxid=last_zxid)
        again.send_request(
            OP_SET_WATCHES,
            set_watches_payload(last_zxid, data=["/w"], exist=["/n"], child=["/p"]),
            xid=XID_SET_WATCHES,
        )
        assert read_until_set_watches_reply(again) == []
        zk.set("/w", b"1")
        zk.create("/p/c")
        zk.create("/n")
        got = []
        for _ in range(3):
            xid, zxid, err, r = again.read_message()
            assert xid == -1
            got.append((r.int(), r.int(), r.string()))
        assert sorted(got) == sorted([(EVENT_CHANGED, 3, "/w"), (EVENT_CHILD, 3, "/p"), (EVENT_CREATED, 3, "/n")])


def test_watches_of_a_dropped_connection_are_not_delivered_elsewhere(zk_server, zk):
    """Without SetWatches, a re-attached connection has no watches."""
    zk.create("/w", b"0")
    first = RawClient("127.0.0.1", zk_server.port).connect()
    try:
        first.call(OP_GET_DATA, path_watch_payload("/w", True))
    finally:
        first.close()
    with RawClient("127.0.0.1", zk_server.port) as again:
        again.connect(session_id=first.session_id, passwd=first.passwd)
        zk.set("/w", b"1")
        # the next frame must be the reply to this request, not an event
        xid = again.send_request(OP_EXISTS, path_watch_payload("/w"))
        rxid, _, err, _ = again.read_message()
        assert rxid == xid
        assert err == 0


# --- expiry ------------------------------------------------------------------------


def test_session_expiry_removes_ephemerals(zk_server_factory, zk_factory):
    server = zk_server_factory("fasttick", tick_time=500)  # session timeouts 1 s .. 10 s
    with TcpProxy(server.port) as proxy:
        client = zk_factory(hosts=proxy.hosts, timeout=2.0)
        observer = zk_factory(hosts=server.hosts)
        states, keeper_states = record_states(client)
        session_id = client.client_id[0]
        client.create("/eph", ephemeral=True)
        client.create("/keep", b"persistent")

        paused_at = time.monotonic()
        proxy.pause()
        wait_until(lambda: observer.exists("/eph") is None, timeout=30, message="ephemeral removed by expiry")
        elapsed = time.monotonic() - paused_at
        # The client pinged at most ~0.7 s before the pause; expiry cannot come much earlier
        # than one session timeout (2 s) after that.
        assert elapsed >= 1.0, "ephemeral vanished %.2f s after the pause: before the session timeout" % elapsed
        assert observer.exists("/keep") is not None

        proxy.resume()
        wait_until(lambda: KeeperState.EXPIRED_SESSION in keeper_states, timeout=30,
                   message="client told its session expired")
        assert KazooState.LOST in states
        # kazoo then starts a new session by itself
        wait_until(lambda: client.connected and client.client_id and client.client_id[0] != session_id,
                   timeout=30, message="client on a new session")
        assert client.exists("/eph") is None
        assert client.get("/keep")[0] == b"persistent"


def test_expired_session_cannot_be_reattached(zk_server_factory):
    server = zk_server_factory("fasttick", tick_time=500)
    first = RawClient("127.0.0.1", server.port).connect(timeout_ms=1000)
    assert first.negotiated_timeout_ms == 1000
    first.call(OP_CREATE, create_payload("/eph", flags=1))
    first.close()
    watcher = RawClient("127.0.0.1", server.port).connect(timeout_ms=10000)
    try:
        def gone():
            _, err, _ = watcher.call(OP_EXISTS, path_watch_payload("/eph"))
            return err == -101

        wait_until(gone, timeout=20, interval=0.1, message="expired session's ephemeral removed")
    finally:
        watcher.close()
    with RawClient("127.0.0.1", server.port) as again:
        again.connect(session_id=first.session_id, passwd=first.passwd)
        assert again.negotiated_timeout_ms == 0
        assert again.session_id == 0


def test_pending_request_fails_with_session_expired_then_new_session_works(zk_server_factory, zk_factory):
    server = zk_server_factory("fasttick", tick_time=500)
    with TcpProxy(server.port) as proxy:
        client = zk_factory(hosts=proxy.hosts, timeout=2.0)
        observer = zk_factory(hosts=server.hosts)
        _, keeper_states = record_states(client)
        client.create("/eph", ephemeral=True)
        proxy.pause()
        wait_until(lambda: observer.exists("/eph") is None, timeout=30)
        proxy.resume()
        wait_until(lambda: KeeperState.EXPIRED_SESSION in keeper_states, timeout=30)
        wait_until(lambda: client.connected, timeout=30)
        client.create("/after", b"ok")
        assert observer.get("/after")[0] == b"ok"


# --- close ---------------------------------------------------------------------------


def test_close_removes_ephemerals_immediately(zk_factory):
    owner = zk_factory()
    observer = zk_factory()
    owner.create("/p")
    for i in range(5):
        owner.create("/p/e%d" % i, ephemeral=True)
    owner.create("/p/s-", ephemeral=True, sequence=True)
    assert len(observer.get_children("/p")) == 6
    owner.stop()
    # the close reply is sent after the ephemerals are deleted: no waiting needed
    assert observer.get_children("/p") == []
    assert observer.exists("/p").numChildren == 0


def test_closed_session_cannot_be_reattached(zk_server, zk_factory):
    owner = zk_factory()
    session_id, passwd = owner.client_id
    owner.stop()
    with RawClient("127.0.0.1", zk_server.port) as again:
        again.connect(session_id=session_id, passwd=passwd)
        assert again.negotiated_timeout_ms == 0


def test_close_leaves_other_sessions_ephemerals(zk_factory):
    a = zk_factory()
    b = zk_factory()
    a.create("/a", ephemeral=True)
    b.create("/b", ephemeral=True)
    a.stop()
    assert b.exists("/a") is None
    assert b.exists("/b").ephemeralOwner == b.client_id[0]


def test_client_id_reuse_by_a_new_kazoo_client(zk_server, zk_factory):
    """A second client object can take over a live session with (session id, password)."""
    first = zk_factory()
    first.create("/eph", ephemeral=True)
    session_id, passwd = first.client_id
    second = zk_factory(client_id=(session_id, passwd))
    assert second.client_id[0] == session_id
    assert second.exists("/eph").ephemeralOwner == session_id
    second.create("/eph2", ephemeral=True)
    second.stop()
    observer = zk_factory()
    assert observer.exists("/eph") is None
    assert observer.exists("/eph2") is None


# --- timeouts and keepalive --------------------------------------------------------------


def cons_timeout_for(server, session_id):
    text = server.four_letter("cons")
    for line in text.splitlines():
        if "sid=0x%x," % session_id in line:
            return int(re.search(r"\bto=(\d+)", line).group(1))
    raise AssertionError("session 0x%x not in cons output:\n%s" % (session_id, text))


@pytest.mark.standalone_only
@pytest.mark.parametrize("requested_s, negotiated_ms", [(1.0, 4000), (15.0, 15000), (100.0, 40000)])
def test_kazoo_session_timeout_negotiation(zk_server, zk_factory, requested_s, negotiated_ms):
    client = zk_factory(timeout=requested_s)
    assert cons_timeout_for(zk_server, client.client_id[0]) == negotiated_ms


def test_pings_keep_an_idle_session_alive(zk_server_factory, zk_factory):
    server = zk_server_factory("fasttick", tick_time=500)
    client = zk_factory(hosts=server.hosts, timeout=2.0)
    states, _ = record_states(client)
    session_id = client.client_id[0]
    client.create("/eph", ephemeral=True)
    # Idle for three session timeouts: only pings keep the session.
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        assert states == [], "state changed while idle: %r" % states
    assert client.client_id[0] == session_id
    assert client.exists("/eph").ephemeralOwner == session_id


def test_server_restart_keeps_data_sessions_and_ephemerals(zk_server, zk_factory):
    """Sessions are durable too: a client re-attaches to its session after a restart."""
    client = zk_factory(timeout=20.0)
    states, _ = record_states(client)
    session_id = client.client_id[0]
    client.create("/durable", b"kept")
    client.create("/eph", ephemeral=True)
    _, stat = client.get("/durable")
    zk_server.restart()
    wait_until(lambda: KazooState.SUSPENDED in states and client.connected, timeout=30)
    assert client.client_id[0] == session_id
    assert KazooState.LOST not in states
    data, stat2 = client.get("/durable")
    assert data == b"kept"
    assert stat2 == stat
    assert client.exists("/eph").ephemeralOwner == session_id


def test_server_crash_keeps_acknowledged_writes(zk_server, zk_factory):
    client = zk_factory(timeout=20.0)
    client.create("/p")
    for i in range(50):
        client.create("/p/n%02d" % i, b"%d" % i)
    zk_server.kill()
    zk_server.start()
    wait_until(lambda: client.connected, timeout=30)
    assert sorted(client.get_children("/p")) == ["n%02d" % i for i in range(50)]
    assert client.get("/p/n49")[0] == b"49"
