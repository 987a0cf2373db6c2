"""Wire-level facts that kazoo hides, checked with the small raw client in
tests/support/rawzk.py: frame order of watch events, the handshake, session
timeout negotiation, multi reply shapes, zxids in reply headers, path checks.
"""

import pytest

from rawzk import (
    EVENT_CHANGED,
    EVENT_CHILD,
    EVENT_CREATED,
    OP_CHECK,
    OP_CLOSE,
    OP_CREATE,
    OP_CREATE2,
    OP_DELETE,
    OP_EXISTS,
    OP_GET_CHILDREN,
    OP_GET_DATA,
    OP_MULTI,
    OP_PING,
    OP_SET_DATA,
    OP_SYNC,
    XID_PING,
    XID_WATCH_EVENT,
    RawClient,
    Reader,
    create_payload,
    delete_payload,
    frame,
    multi_payload,
    pack_bool,
    pack_buffer,
    pack_int,
    pack_long,
    pack_string,
    path_watch_payload,
    read_multi_response,
    set_data_payload,
)

OK = 0
ERR_RUNTIME_INCONSISTENCY = -2
ERR_BAD_ARGUMENTS = -8
ERR_NO_NODE = -101
ERR_BAD_VERSION = -103
ERR_NODE_EXISTS = -110
KEEPER_STATE_SYNC_CONNECTED = 3


@pytest.fixture
def raw(zk_server):
    clients = []

    def make(**connect_kwargs):
        c = RawClient("127.0.0.1", zk_server.port)
        clients.append(c)
        return c.connect(**connect_kwargs)

    yield make
    for c in clients:
        c.close()


def read_event(r):
    return r.int(), r.int(), r.string()  # type, state, path


# --- handshake and session timeout ------------------------------------------


def test_connect_response(raw):
    c = raw(timeout_ms=10000)
    assert c.negotiated_timeout_ms == 10000
    assert c.session_id != 0
    assert len(c.passwd) == 16


def test_connect_without_read_only_flag(zk_server):
    """Old clients omit the trailing readOnly byte; the answer then omits it too."""
    with RawClient("127.0.0.1", zk_server.port) as c:
        c.send_raw(frame(pack_int(0) + pack_long(0) + pack_int(10000) + pack_long(0) + pack_buffer(b"\x00" * 16)))
        r = Reader(c.recv_frame())
        assert r.int() == 0  # protocolVersion
        assert r.int() == 10000
        assert r.long() != 0
        assert len(r.buffer()) == 16
        assert r.remaining() == 0


@pytest.mark.parametrize(
    "requested, negotiated",
    [(1, 4000), (0, 4000), (3999, 4000), (4000, 4000), (12345, 12345), (40000, 40000), (40001, 40000), (10**9, 40000)],
)
def test_session_timeout_clamped_to_2_and_20_ticks(raw, requested, negotiated):
    """Default bounds: minSessionTimeout = 2 * tickTime, maxSessionTimeout = 20 * tickTime (tickTime 2000)."""
    assert raw(timeout_ms=requested).negotiated_timeout_ms == negotiated


def test_session_timeout_bounds_from_config(zk_server_factory):
    server = zk_server_factory("bounded", extra_cfg={"minSessionTimeout": 3000, "maxSessionTimeout": 7000})
    for requested, negotiated in [(1000, 3000), (5000, 5000), (60000, 7000)]:
        with RawClient("127.0.0.1", server.port) as c:
            assert c.connect(timeout_ms=requested).negotiated_timeout_ms == negotiated


def test_session_timeout_follows_tick_time(zk_server_factory):
    server = zk_server_factory("fast", tick_time=500)
    for requested, negotiated in [(100, 1000), (5000, 5000), (60000, 10000)]:
        with RawClient("127.0.0.1", server.port) as c:
            assert c.connect(timeout_ms=requested).negotiated_timeout_ms == negotiated


def test_reattach_with_wrong_password_is_refused(raw, zk_server):
    owner = raw()
    _, err, _ = owner.call(OP_CREATE, create_payload("/eph", flags=1))
    assert err == OK
    with RawClient("127.0.0.1", zk_server.port) as c:
        c.send_raw(
            frame(pack_int(0) + pack_long(0) + pack_int(10000) + pack_long(owner.session_id)
                  + pack_buffer(b"\x01" * 16) + pack_bool(False))
        )
        r = Reader(c.recv_frame())
        r.int()
        assert r.int() == 0  # timeOut 0 means: session expired / not valid
        assert r.long() == 0
        with pytest.raises(EOFError):
            c.recv_frame(timeout=5)
    # (Apache ZooKeeper also drops the owner's current connection here, before it checks
    # the password.) The session itself lives on: the owner re-attaches with its password.
    again = raw(session_id=owner.session_id, passwd=owner.passwd)
    assert again.session_id == owner.session_id
    _, err, r = again.call(OP_EXISTS, path_watch_payload("/eph"))
    assert err == OK
    assert r.stat()["ephemeralOwner"] == owner.session_id


def test_reattach_moves_session_off_the_old_connection(raw):
    """A second connection for the same session takes it over; the old one is closed."""
    first = raw()
    second = raw(session_id=first.session_id, passwd=first.passwd)
    assert second.session_id == first.session_id
    with pytest.raises(EOFError):
        first.recv_frame(timeout=5)
    _, err, _ = second.call(OP_EXISTS, path_watch_payload("/"))
    assert err == OK


def test_reattach_to_unknown_session_gets_timeout_zero(zk_server):
    with RawClient("127.0.0.1", zk_server.port) as c:
        c.send_raw(
            frame(pack_int(0) + pack_long(0) + pack_int(10000) + pack_long(0x7777)
                  + pack_buffer(b"\x00" * 16) + pack_bool(False))
        )
        r = Reader(c.recv_frame())
        r.int()
        assert r.int() == 0
        assert r.long() == 0
        with pytest.raises(EOFError):
            c.recv_frame(timeout=5)


def test_reattach_with_right_password_keeps_session(raw, zk_server):
    first = raw()
    zxid, err, _ = first.call(OP_CREATE, create_payload("/eph", flags=1))
    assert err == OK
    first.close()  # TCP gone, session not closed
    second = raw(session_id=first.session_id, passwd=first.passwd, last_zxid=zxid)
    assert second.session_id == first.session_id
    assert second.negotiated_timeout_ms == first.negotiated_timeout_ms
    _, err, r = second.call(OP_EXISTS, path_watch_payload("/eph"))
    assert err == OK
    assert r.stat()["ephemeralOwner"] == first.session_id


def test_client_ahead_of_server_is_refused(zk_server):
    """A client that has seen a zxid the server has not is disconnected without an answer."""
    with RawClient("127.0.0.1", zk_server.port) as c:
        c.send_raw(
            frame(pack_int(0) + pack_long(1 << 40) + pack_int(10000) + pack_long(0)
                  + pack_buffer(b"\x00" * 16) + pack_bool(False))
        )
        with pytest.raises(EOFError):
            c.recv_frame(timeout=5)


def test_close_session_replies_then_closes(raw):
    c = raw()
    _, err, _ = c.call(OP_CLOSE)
    assert err == OK
    with pytest.raises(EOFError):
        c.recv_frame(timeout=5)


def test_ping(raw):
    c = raw()
    _, _, _ = c.call(OP_CREATE, create_payload("/x"))
    c.send_request(OP_PING, b"", xid=XID_PING)
    xid, zxid, err, r = c.read_message()
    assert xid == XID_PING
    assert err == OK
    assert r.remaining() == 0


# --- zxids in reply headers ---------------------------------------------------


def test_reply_zxids(raw):
    """Writes answer with their own zxid; reads and sync with the last applied one.

    A write that fails (node exists, bad version, no node) still takes a zxid.
    """
    c = raw()
    z1, err, _ = c.call(OP_CREATE, create_payload("/a"))
    assert err == OK
    z2, err, _ = c.call(OP_CREATE, create_payload("/a"))
    assert err == ERR_NODE_EXISTS
    assert z2 == z1 + 1
    z3, err, _ = c.call(OP_SET_DATA, set_data_payload("/a", b"x", version=5))
    assert err == ERR_BAD_VERSION
    assert z3 == z2 + 1
    z4, err, _ = c.call(OP_DELETE, delete_payload("/nope"))
    assert err == ERR_NO_NODE
    assert z4 == z3 + 1
    z5, err, _ = c.call(OP_GET_DATA, path_watch_payload("/a"))
    assert err == OK
    assert z5 == z4
    z6, err, _ = c.call(OP_EXISTS, path_watch_payload("/nope"))
    assert err == ERR_NO_NODE
    assert z6 == z4
    z7, err, r = c.call(OP_SYNC, pack_string("/a"))
    assert err == OK
    assert r.string() == "/a"
    assert z7 == z4
    z8, err, r = c.call(OP_CREATE, create_payload("/b"))
    assert z8 == z4 + 1
    assert r.string() == "/b"


# --- multi ------------------------------------------------------------------


def test_failed_multi_reply_shape(raw):
    """Reply header err is 0; every op gets an error result (type -1) with its code."""
    c = raw()
    z0, _, _ = c.call(OP_CREATE, create_payload("/a", b"x"))
    zxid, err, r = c.call(
        OP_MULTI,
        multi_payload([
            (OP_CREATE, create_payload("/m1")),
            (OP_CHECK, pack_string("/a") + pack_int(5)),
            (OP_SET_DATA, set_data_payload("/a", b"y")),
        ]),
    )
    assert err == OK
    assert zxid == z0 + 1  # the failed multi took a zxid
    assert read_multi_response(r) == [(-1, OK), (-1, ERR_BAD_VERSION), (-1, ERR_RUNTIME_INCONSISTENCY)]
    assert r.remaining() == 0
    _, err, _ = c.call(OP_EXISTS, path_watch_payload("/m1"))
    assert err == ERR_NO_NODE


def test_successful_multi_reply_shape(raw):
    c = raw()
    z0, _, _ = c.call(OP_CREATE, create_payload("/a", b"x"))
    zxid, err, r = c.call(
        OP_MULTI,
        multi_payload([
            (OP_CREATE, create_payload("/m1")),
            (OP_CHECK, pack_string("/a") + pack_int(0)),
            (OP_SET_DATA, set_data_payload("/a", b"yy")),
            (OP_DELETE, delete_payload("/m1")),
        ]),
    )
    assert err == OK
    assert zxid == z0 + 1
    results = read_multi_response(r)
    assert results[0] == (OP_CREATE, "/m1")
    assert results[1] == (OP_CHECK, None)
    assert results[2][0] == OP_SET_DATA
    assert results[2][1]["version"] == 1
    assert results[2][1]["mzxid"] == zxid
    assert results[2][1]["dataLength"] == 2
    assert results[3] == (OP_DELETE, None)
    assert r.remaining() == 0


def test_create2_inside_multi_answers_as_create(raw):
    """Apache ZooKeeper 3.8 answers a create2 op inside a multi with a plain create result (path only)."""
    c = raw()
    _, err, r = c.call(OP_MULTI, multi_payload([(OP_CREATE2, create_payload("/m2", b"d"))]))
    assert err == OK
    assert read_multi_response(r) == [(OP_CREATE, "/m2")]


def test_empty_multi_reply(raw):
    c = raw()
    z0, _, _ = c.call(OP_CREATE, create_payload("/a"))
    zxid, err, r = c.call(OP_MULTI, multi_payload([]))
    assert err == OK
    assert read_multi_response(r) == []
    assert zxid == z0 + 1


def test_create2_reply(raw):
    c = raw()
    zxid, err, r = c.call(OP_CREATE2, create_payload("/c2", b"abc"))
    assert err == OK
    assert r.string() == "/c2"
    stat = r.stat()
    assert stat["czxid"] == stat["mzxid"] == stat["pzxid"] == zxid
    assert stat["dataLength"] == 3
    assert stat["ctime"] == stat["mtime"]
    assert r.remaining() == 0


# --- watch events on the wire ---------------------------------------------------


def test_watch_event_frame_precedes_reply_of_later_read(raw):
    a = raw()
    b = raw()
    _, err, _ = b.call(OP_CREATE, create_payload("/w", b"0"))
    assert err == OK
    for i in range(10):
        _, err, _ = a.call(OP_GET_DATA, path_watch_payload("/w", True))
        assert err == OK
        _, err, _ = b.call(OP_SET_DATA, set_data_payload("/w", b"%d" % (i + 1)))
        assert err == OK
        xid = a.send_request(OP_GET_DATA, path_watch_payload("/w", False))
        first = a.read_message()
        assert first[0] == XID_WATCH_EVENT, "round %d: reply came before the watch event" % i
        assert first[1] == -1  # events carry zxid -1
        assert first[2] == OK
        assert read_event(first[3]) == (EVENT_CHANGED, KEEPER_STATE_SYNC_CONNECTED, "/w")
        second = a.read_message()
        assert second[0] == xid
        assert second[3].buffer() == b"%d" % (i + 1)


def test_exists_and_child_event_frames(raw):
    a = raw()
    b = raw()
    _, err, _ = a.call(OP_EXISTS, path_watch_payload("/n", True))
    assert err == ERR_NO_NODE  # the watch is still set
    b.call(OP_CREATE, create_payload("/n"))
    xid, zxid, err, r = a.read_message()
    assert (xid, zxid, err) == (XID_WATCH_EVENT, -1, OK)
    assert read_event(r) == (EVENT_CREATED, KEEPER_STATE_SYNC_CONNECTED, "/n")
    _, err, _ = a.call(OP_GET_CHILDREN, path_watch_payload("/n", True))
    assert err == OK
    b.call(OP_CREATE, create_payload("/n/c"))
    xid, zxid, err, r = a.read_message()
    assert xid == XID_WATCH_EVENT
    assert read_event(r) == (EVENT_CHILD, KEEPER_STATE_SYNC_CONNECTED, "/n")


# --- path validation ------------------------------------------------------------


@pytest.mark.parametrize(
    "path, err",
    [
        ("", ERR_BAD_ARGUMENTS),
        ("a", ERR_BAD_ARGUMENTS),
        ("/a/", ERR_BAD_ARGUMENTS),  # parent /a exists; the trailing slash is refused
        ("/.", ERR_BAD_ARGUMENTS),
        ("/..", ERR_BAD_ARGUMENTS),
        ("/a/.", ERR_BAD_ARGUMENTS),
        ("/a\u0000b", ERR_BAD_ARGUMENTS),
        ("/a//b", ERR_NO_NODE),  # the parent "/a/" is looked up first and does not exist
        ("/a/./b", ERR_NO_NODE),
        ("/a/../b", ERR_NO_NODE),
        ("/a/.b", OK),
        ("/a/..b", OK),
        ("/zookeeper/x", OK),
    ],
)
def test_create_path_validation(raw, path, err):
    c = raw()
    _, e, _ = c.call(OP_CREATE, create_payload("/a"))
    assert e == OK
    _, e, _ = c.call(OP_CREATE, create_payload(path))
    assert e == err


@pytest.mark.parametrize("path", ["a", "/a/", "/a//b", "/nonexistent/"])
def test_reads_of_malformed_paths_are_no_node(raw, path):
    c = raw()
    c.call(OP_CREATE, create_payload("/a"))
    for op in (OP_GET_DATA, OP_EXISTS, OP_GET_CHILDREN):
        _, e, _ = c.call(op, path_watch_payload(path))
        assert e == ERR_NO_NODE, (op, path)


def test_create_with_empty_acl_list_is_invalid(raw):
    c = raw()
    _, e, _ = c.call(OP_CREATE, create_payload("/noacl", acls=[]))
    assert e == -114  # INVALIDACL
    _, e, _ = c.call(OP_EXISTS, path_watch_payload("/noacl"))
    assert e == ERR_NO_NODE


@pytest.mark.parametrize("flags, err", [(0, OK), (1, OK), (2, OK), (3, OK), (4, OK), (5, ERR_BAD_ARGUMENTS),
                                        (6, ERR_BAD_ARGUMENTS), (7, ERR_BAD_ARGUMENTS), (99, ERR_BAD_ARGUMENTS)])
def test_create_flags(raw, flags, err):
    """0-3 persistent/ephemeral(+sequential), 4 container; 5 and 6 (TTL) need the createTTL opcode."""
    c = raw()
    _, e, _ = c.call(OP_CREATE, create_payload("/f-", flags=flags))
    assert e == err
