"""Hostile or broken peers on raw sockets. Each may cost only its own
connection: a kazoo session opened first keeps working throughout, and the
server still answers afterwards.

What Apache ZooKeeper 3.8 does, and so what these tests hold rzk to:
- before the handshake, any length that is not a parsable ConnectRequest, a
  length <= 0 or a length > jute.maxbuffer (1048575) closes the connection;
- after the handshake, a frame > jute.maxbuffer, a length <= 0, or a frame too
  short for the request header (xid, type) closes the connection;
- a request whose body does not parse is answered with MARSHALLINGERROR (-5)
  and the connection stays usable;
- an unknown opcode is answered with UNIMPLEMENTED (-6), zxid -1, then the
  connection is closed.
"""

import random
import socket
import time

import pytest

from rawzk import (
    OP_CREATE,
    OP_EXISTS,
    OP_GET_DATA,
    OP_SET_DATA,
    RawClient,
    frame,
    pack_bool,
    pack_buffer,
    pack_int,
    pack_long,
    pack_string,
    path_watch_payload,
)
from waiting import wait_until

JUTE_MAXBUFFER = 1048575
ERR_MARSHALLING = -5
ERR_UNIMPLEMENTED = -6


def closed_by_server(sock, timeout=10.0):
    """True once the server closes (EOF or reset); any bytes it sends first are returned too."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


@pytest.fixture
def healthy(zk):
    """A kazoo session that must survive every test here; checked after each."""
    zk.create("/health", b"0")
    counter = {"n": 0}

    def check():
        counter["n"] += 1
        zk.set("/health", b"%d" % counter["n"])
        assert zk.get("/health")[0] == b"%d" % counter["n"]
        assert zk.connected

    yield check
    check()


# --- before the handshake ----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: zk\r\n\r\n",
        pack_int(0),
        pack_int(-5),
        pack_int(12) + b"\xff" * 12,
        pack_int(8) + b"\x00" * 8,
        pack_int(JUTE_MAXBUFFER + 1) + b"\x00" * 64,
        pack_int(0x7FFFFFFF) + b"\x00" * 64,
        b"\x00\x00\x00\x2c" + b"\x00" * 4 + b"\x7f\xff\xff\xff\xff\xff\xff\xff" + b"\xff" * 32,
    ],
    ids=["http", "len-zero", "len-negative", "junk-body", "short-connect", "over-maxbuffer", "len-max-int",
         "huge-zxid-junk"],
)
def test_garbage_before_handshake_closes_only_that_connection(zk_server, healthy, payload):
    with socket.create_connection(("127.0.0.1", zk_server.port), timeout=10) as s:
        s.sendall(payload)
        closed, _ = closed_by_server(s)
        assert closed
    healthy()


def test_connect_frame_of_exactly_maxbuffer_is_accepted(zk_server, healthy):
    body = pack_int(0) + pack_long(0) + pack_int(10000) + pack_long(0) + pack_buffer(b"\x00" * 16) + pack_bool(False)
    body += b"\x00" * (JUTE_MAXBUFFER - len(body))
    assert len(body) == JUTE_MAXBUFFER
    with RawClient("127.0.0.1", zk_server.port) as c:
        c.send_raw(frame(body))
        reply = c.recv_frame()
        assert len(reply) >= 36
    healthy()


def test_many_junk_connect_requests(zk_server, healthy):
    """Well-framed ConnectRequests full of seeded random junk."""
    rng = random.Random(20240601)
    for i in range(30):
        junk = bytes(rng.randrange(256) for _ in range(40))
        with socket.create_connection(("127.0.0.1", zk_server.port), timeout=10) as s:
            s.sendall(frame(junk))
            assert closed_by_server(s)[0], "junk %d: %s" % (i, junk.hex())
    healthy()


# --- after the handshake --------------------------------------------------------------


def test_frame_over_maxbuffer_after_handshake_closes(zk_server, healthy):
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        c.send_raw(pack_int(JUTE_MAXBUFFER + 1) + b"\x00" * 1024)
        assert closed_by_server(c.sock)[0]
    healthy()


def test_request_of_exactly_maxbuffer_is_served(zk_server, zk, healthy):
    zk.create("/big")
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        overhead = len(pack_int(0) + pack_int(0) + pack_string("/big") + pack_int(0) + pack_int(-1))
        data = b"d" * (JUTE_MAXBUFFER - overhead)
        payload = pack_string("/big") + pack_buffer(data) + pack_int(-1)
        assert 8 + len(payload) == JUTE_MAXBUFFER
        _, err, r = c.call(OP_SET_DATA, payload)
        assert err == 0
        assert r.stat()["dataLength"] == len(data)
        # one byte more and the connection is gone. The server may close it as soon as it has
        # read the length, while this side is still sending the megabyte: the send then fails
        # with a reset, which is the same outcome.
        try:
            c.send_raw(frame(pack_int(99) + pack_int(OP_SET_DATA) + pack_string("/big")
                             + pack_buffer(data + b"x") + pack_int(-1)))
        except (ConnectionResetError, BrokenPipeError):
            pass
        else:
            assert closed_by_server(c.sock)[0]
    assert zk.get("/big")[1].dataLength == len(data)
    healthy()


def test_kazoo_value_too_large_loses_only_its_connection(zk_server, zk_factory, healthy):
    client = zk_factory()
    session_id = client.client_id[0]
    with pytest.raises(Exception):
        client.create("/huge", b"h" * (JUTE_MAXBUFFER + 10))
    wait_until(lambda: client.connected, timeout=20)
    assert client.client_id[0] == session_id  # the session survives, the connection did not
    assert client.exists("/huge") is None
    healthy()


@pytest.mark.parametrize(
    "payload",
    [
        pack_int(OP_GET_DATA),  # no path at all
        pack_int(OP_GET_DATA) + pack_int(10) + b"/ab",  # path shorter than its length
        pack_int(OP_GET_DATA) + pack_int(0x7FFFFFFF) + b"/",  # absurd string length
        pack_int(OP_GET_DATA) + pack_int(-1) + pack_bool(False),  # null path
        pack_int(OP_CREATE) + pack_string("/x") + pack_buffer(b"") + pack_int(1000000),  # ACL count, no ACLs
        pack_int(OP_SET_DATA) + pack_string("/x"),  # no data, no version
    ],
    ids=["no-path", "short-path", "huge-path-len", "null-path", "acl-count-lies", "setdata-truncated"],
)
def test_malformed_body_answers_marshalling_error(zk_server, healthy, payload):
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        xid = 4242
        c.send_raw(frame(pack_int(xid) + payload))
        rxid, _, err, _ = c.read_message()
        assert rxid == xid
        assert err == ERR_MARSHALLING
        # the connection and session are still fine
        _, err, _ = c.call(OP_EXISTS, path_watch_payload("/"))
        assert err == 0
        _, err, _ = c.call(OP_EXISTS, path_watch_payload("/x"))
        assert err == -101  # the malformed create did not happen
    healthy()


@pytest.mark.parametrize("opcode", [999, 0, -42])
def test_unknown_opcode_answers_unimplemented_and_closes(zk_server, healthy, opcode):
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        c.send_raw(frame(pack_int(7) + pack_int(opcode) + pack_string("/")))
        xid, zxid, err, _ = c.read_message()
        assert (xid, zxid, err) == (7, -1, ERR_UNIMPLEMENTED)
        assert closed_by_server(c.sock)[0]
    healthy()


@pytest.mark.parametrize(
    "payload",
    [pack_int(0), pack_int(-1), frame(pack_int(1)), frame(b"\x00\x00")],
    ids=["len-zero", "len-negative", "xid-only", "two-bytes"],
)
def test_unusable_frame_after_handshake_closes(zk_server, healthy, payload):
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        c.send_raw(payload)
        assert closed_by_server(c.sock)[0]
    healthy()


def test_truncated_frame_then_disconnect(zk_server, zk, healthy):
    for _ in range(5):
        with RawClient("127.0.0.1", zk_server.port).connect() as c:
            c.send_raw(pack_int(500) + b"\x00" * 100)  # promise 500 bytes, send 100, hang up
        healthy()
    assert zk_server.four_letter("ruok") == "imok"


def test_trailing_bytes_in_a_request_are_ignored(zk_server, healthy):
    with RawClient("127.0.0.1", zk_server.port).connect() as c:
        xid = c.send_request(OP_EXISTS, path_watch_payload("/") + b"junkjunk")
        rxid, _, err, r = c.read_message()
        assert (rxid, err) == (xid, 0)
        assert r.stat()["czxid"] == 0
    healthy()


def test_client_that_never_reads(zk_server, zk, healthy):
    """A client floods reads of a 512 KiB node and never reads the replies."""
    value = b"r" * (512 * 1024)
    zk.create("/fat", value)
    hog = RawClient("127.0.0.1", zk_server.port).connect()
    try:
        hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.sock.settimeout(0.5)
        request = frame(pack_int(1) + pack_int(OP_GET_DATA) + path_watch_payload("/fat"))
        sent = 0
        for i in range(64):  # 32 MiB of replies if the server produced them all
            try:
                hog.sock.sendall(request)
                sent += 1
            except (socket.timeout, BlockingIOError):
                break  # the server stopped reading from us: also fine
        assert sent >= 1
        # everyone else keeps being served promptly meanwhile
        for i in range(30):
            start = time.monotonic()
            zk.set("/health", b"%d" % i)
            assert zk.get("/fat")[0] == value
            assert time.monotonic() - start < 5.0
        healthy()
    finally:
        hog.close()
    healthy()
    assert zk_server.four_letter("ruok") == "imok"


def test_connection_limit_per_address(zk_server_factory):
    """maxClientCnxns: the connection over the limit from one address is closed at once."""
    server = zk_server_factory("limited", extra_cfg={"maxClientCnxns": 3})
    clients = [RawClient("127.0.0.1", server.port).connect() for _ in range(3)]
    try:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
                extra.sendall(frame(pack_int(0) + pack_long(0) + pack_int(10000) + pack_long(0)
                                    + pack_buffer(b"\x00" * 16) + pack_bool(False)))
                assert closed_by_server(extra)[0]
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before our handshake was even written: as refused as it gets
        for c in clients:
            _, err, _ = c.call(OP_EXISTS, path_watch_payload("/"))
            assert err == 0
    finally:
        for c in clients:
            c.close()


def test_silent_connections_are_closed_after_the_handshake_limit_and_sessions_are_not(zk_server, healthy):
    """A connection that never sends its ConnectRequest is closed after the handshake limit
    (ZooKeeper's sessionless-connection timeout, 10 s); many of them neither close early
    nor disturb an established session."""
    host, port = zk_server.hosts.split(",")[0].rsplit(":", 1)
    silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(50)]
    opened = time.monotonic()
    try:
        with RawClient(host, int(port)) as live:
            live.connect()
            for sock in silent:
                closed, _ = closed_by_server(sock, timeout=30)
                assert closed, "a silent connection outlived the handshake limit"
            elapsed = time.monotonic() - opened
            assert elapsed >= 5, "silent connections closed after %.1f s, before the limit" % elapsed
            # The session that did its handshake is still served.
            _, err, _ = live.call(OP_EXISTS, path_watch_payload("/health"))
            assert err == 0
    finally:
        for sock in silent:
            sock.close()
