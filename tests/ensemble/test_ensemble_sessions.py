"""Sessions across the servers of an ensemble, seen on the wire: a session that moved,
a client that has seen more than a server.

Run against rzk (ZK_TARGET=rzk, the default) or Apache ZooKeeper 3.8 (ZK_TARGET=apache),
which shows what the tests expect is ZooKeeper's behaviour.
"""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from rawzk import OP_CREATE, OP_EXISTS, RawClient, create_payload, path_watch_payload  # noqa: E402

ERR_NONODE = -101


def raw(server):
    return RawClient("127.0.0.1", server.port)


def exists(c, path):
    _, err, _ = c.call(OP_EXISTS, path_watch_payload(path))
    return err == 0


def placements(e):
    """(old server, new server) pairs covering the leader on either side and two followers."""
    leader = e.leader()
    f1, f2 = [sid for sid in e.ids if sid != leader]
    return {"follower-to-follower": (f1, f2), "leader-to-follower": (leader, f1), "follower-to-leader": (f1, leader)}


@pytest.mark.parametrize("move", ["follower-to-follower", "leader-to-follower", "follower-to-leader"])
def test_a_write_from_the_connection_a_session_left_is_refused_and_that_connection_closed(ensemble_factory, move):
    """ZooKeeper's SessionMoved: once a session re-attached on another server, a write
    still sent on its old connection must not be applied (the client has moved on and
    counts on its order there). ZooKeeper closes that old connection instead of answering."""
    e = ensemble_factory(voters=3)
    old_sid, new_sid = placements(e)[move]
    old = raw(e[old_sid]).connect()
    new = raw(e[new_sid])
    try:
        _, err, _ = old.call(OP_CREATE, create_payload("/before-move", b"x"))
        assert err == 0
        new.connect(session_id=old.session_id, passwd=old.passwd, last_zxid=0)
        assert new.session_id == old.session_id, "the session did not re-attach"
        _, err, _ = new.call(OP_CREATE, create_payload("/after-move", b"x"))
        assert err == 0
        # The old connection does not know the session left it.
        old.send_request(OP_CREATE, create_payload("/from-old-connection", b"x"))
        with pytest.raises((EOFError, ConnectionError)):
            while True:
                xid, _, err, _ = old.read_message(timeout=15)
                assert xid < 0, "the old connection's write was answered (err %d)" % err
        # Nothing it sent was applied; the session goes on where it moved.
        _, err, _ = new.call(OP_CREATE, create_payload("/still-here", b"x"))
        assert err == 0
        assert not exists(new, "/from-old-connection")
        assert exists(new, "/after-move") and exists(new, "/before-move")
    finally:
        old.close()
        new.close()


def test_a_client_that_has_seen_more_than_a_server_is_refused_there_and_served_elsewhere(ensemble_factory):
    """A client must never go back in time: a server behind the last zxid the client saw
    closes the connection without a session (the client tries another server), as
    ZooKeeper's "Refusing session request ... client must try another server"."""
    e = ensemble_factory(voters=3)
    leader = e.leader()
    follower = next(sid for sid in e.ids if sid != leader)
    with raw(e[leader]).connect() as writer:
        zxid, err, _ = writer.call(OP_CREATE, create_payload("/seen", b"x"))
        assert err == 0 and zxid > 0
        # As if the client had seen a zxid from a server further ahead than this follower.
        ahead = raw(e[follower])
        try:
            with pytest.raises((EOFError, ConnectionError)):
                ahead.connect(session_id=writer.session_id, passwd=writer.passwd, last_zxid=zxid + 1000)
        finally:
            ahead.close()
        # What it has seen for real, the follower has (its COMMIT may still be on the way:
        # until then it refuses too) and serves.
        deadline = time.monotonic() + 10
        while True:
            moved = raw(e[follower])
            try:
                moved.connect(session_id=writer.session_id, passwd=writer.passwd, last_zxid=zxid)
                break
            except (EOFError, ConnectionError):
                moved.close()
                assert time.monotonic() < deadline, "the follower never caught up to %#x" % zxid
                time.sleep(0.05)
        with moved:
            assert moved.session_id == writer.session_id
            assert exists(moved, "/seen")
