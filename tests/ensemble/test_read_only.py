"""Read-only mode (readonlymode.enabled): a server cut off from its quorum keeps serving
reads to clients that asked for read-only, refuses the others, answers writes with
NotReadOnly, says "ro" to isro, and rejoins as a normal member when the quorum is back.

Run against rzk (ZK_TARGET=rzk, the default) or Apache ZooKeeper 3.8 (ZK_TARGET=apache,
which gets the setting as the system property it reads).
"""

import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KeeperState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from waiting import wait_until  # noqa: E402
from rawzk import (  # noqa: E402
    OP_CREATE,
    OP_GET_DATA,
    OP_SET_DATA,
    OP_SYNC,
    RawClient,
    create_payload,
    pack_string,
    path_watch_payload,
    set_data_payload,
)

ERR_NOT_READ_ONLY = -119


def test_a_server_cut_off_serves_read_only_clients_and_rejoins(ensemble_factory):
    # Apache ZooKeeper's read-only server answers a new session with NotReadOnly unless
    # local sessions are on; rzk's read-only sessions are local either way.
    cfg = {"readonlymode.enabled": "true", "localSessionsEnabled": "true"}
    e = ensemble_factory(voters=3, tick_time=200, extra_cfg=cfg)
    leader = e.leader()
    alone = next(sid for sid in e.ids if sid != leader)
    others = [sid for sid in e.ids if sid != alone]
    writer = KazooClient(hosts=e[leader].hosts)
    writer.start(timeout=15)
    try:
        writer.create("/ro", b"before the cut")
    finally:
        writer.stop()
        writer.close()
    assert e[alone].four_letter("isro").strip() == "rw"
    wait_until(lambda: _has(e[alone], "/ro"), timeout=30, interval=0.1, message="the follower has the write")

    for sid in others:
        e.kill(sid)
    wait_until(lambda: e[alone].four_letter("isro").strip() == "ro", timeout=30, interval=0.1, message="isro says ro")
    assert "Mode: read-only" in e[alone].four_letter("srvr")

    # A client that did not ask for read-only is refused.
    rw = RawClient("127.0.0.1", e[alone].port)
    try:
        with pytest.raises((EOFError, ConnectionError)):
            rw.connect(read_only=False)
    finally:
        rw.close()

    with RawClient("127.0.0.1", e[alone].port) as ro:
        ro.connect(read_only=True)
        assert ro.server_read_only is True
        assert ro.session_id != 0
        _, err, r = ro.call(OP_GET_DATA, path_watch_payload("/ro"))
        assert err == 0 and r.buffer() == b"before the cut"
        for op, payload in [
            (OP_CREATE, create_payload("/new", b"x")),
            (OP_SET_DATA, set_data_payload("/ro", b"y")),
            (OP_SYNC, pack_string("/")),
        ]:
            _, err, _ = ro.call(op, payload)
            assert err == ERR_NOT_READ_ONLY, (op, err)
        # Still connected and reading after the refusals.
        _, err, r = ro.call(OP_GET_DATA, path_watch_payload("/ro"))
        assert err == 0

    # kazoo's read-only client connects in CONNECTED_RO, and moves to a read/write server
    # by itself once the quorum is back.
    states = []
    client = KazooClient(hosts=e.hosts(), read_only=True, connection_retry=dict(max_tries=-1, delay=0.1, max_delay=0.5))
    client.add_listener(lambda state: states.append(state))
    client.start(timeout=30)
    try:
        assert client.client_state == KeeperState.CONNECTED_RO
        assert client.get("/ro")[0] == b"before the cut"
        e.start(others)
        wait_until(lambda: e[alone].four_letter("isro").strip() == "rw", timeout=30, interval=0.1, message="the server rejoins read/write")
        wait_until(lambda: client.client_state == KeeperState.CONNECTED, timeout=60, interval=0.1, message="kazoo finds a read/write server")
        client.create("/after", b"rw again")
        assert client.get("/after")[0] == b"rw again"
    finally:
        client.stop()
        client.close()


def _has(server, path):
    c = KazooClient(hosts=server.hosts)
    c.start(timeout=15)
    try:
        return c.exists(path) is not None
    finally:
        c.stop()
        c.close()
