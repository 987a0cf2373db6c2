"""A session's requests are answered in the order it sent them, whichever thread runs the core.

rzk runs the core on the event loop's own thread while a single connection is sending it
requests (run-to-completion), and through the core thread's channel while several are. These
tests make a session switch between the two many times, with pipelined writes and reads in
flight across each switch, and check every reply against the order of the requests: xids in
send order, zxids never going back, sequential names increasing in send order, and each read
seeing the session's own writes before it. Apache ZooKeeper keeps the same order (its
FinalRequestProcessor answers a session's requests in the order it submitted them).
"""

import random
import time

import pytest

from rawzk import (
    OP_CREATE,
    OP_EXISTS,
    OP_GET_DATA,
    OP_SET_DATA,
    XID_PING,
    XID_WATCH_EVENT,
    RawClient,
    create_payload,
    path_watch_payload,
    set_data_payload,
)

OK = 0
SEQUENTIAL = 2
ROUNDS = 120
DEADLINE_S = 60.0


def read_replies(client, sent):
    """Replies to `sent` ([(xid, op, expectation)]), checked to arrive in that order."""
    replies = []
    for xid, op, expect in sent:
        while True:
            rxid, zxid, err, r = client.read_message(timeout=10)
            # The exists watches fire on the session's own setData: events may come between.
            if rxid not in (XID_PING, XID_WATCH_EVENT):
                break
        assert rxid == xid, "reply to xid %d came before the reply to xid %d" % (rxid, xid)
        assert err == OK, "xid %d (op %d) failed with %d" % (xid, op, err)
        replies.append((zxid, op, expect, r))
    return replies


@pytest.mark.parametrize("net_threads", [1, 2])
def test_pipelined_session_keeps_its_order_across_core_handovers(zk_server_factory, net_threads):
    """With two event loops the sessions live on different loops, and both loops try to run
    the core at once: one gets it, the other's messages go through the channel."""
    zk_server = zk_server_factory(rzk_args=["--net-threads", str(net_threads)])
    rng = random.Random(20261122 + net_threads)
    prefix = "/order-%d" % rng.randrange(1 << 30)
    with RawClient("127.0.0.1", zk_server.port) as a, RawClient("127.0.0.1", zk_server.port) as b:
        a.connect()
        b.connect()
        _, err, _ = a.call(OP_CREATE, create_payload(prefix, b"0"))
        assert err == OK
        _, err, _ = b.call(OP_CREATE, create_payload(prefix + "-b"))
        assert err == OK
        last_zxid = 0
        last_sequence = -1
        value = 0
        started = time.monotonic()
        for round_ in range(ROUNDS):
            assert time.monotonic() - started < DEADLINE_S, "stopped after %d rounds" % round_
            # Another session writing now and then makes the server hand a's requests to the
            # core thread; a pause longer than a few syncs lets a's loop run the core again.
            other = rng.random() < 0.5
            if other:
                b_xid = b.send_request(OP_SET_DATA, set_data_payload(prefix + "-b", b"x"))
            sent = []
            for _ in range(rng.randint(1, 12)):
                kind = rng.random()
                if kind < 0.5:
                    payload = create_payload(prefix + "/s-", b"v", flags=SEQUENTIAL)
                    sent.append((a.send_request(OP_CREATE, payload), OP_CREATE, None))
                elif kind < 0.75:
                    value += 1
                    payload = set_data_payload(prefix, b"%d" % value)
                    sent.append((a.send_request(OP_SET_DATA, payload), OP_SET_DATA, value))
                elif kind < 0.9:
                    # A read behind the session's writes must see the last of them.
                    payload = path_watch_payload(prefix)
                    sent.append((a.send_request(OP_GET_DATA, payload), OP_GET_DATA, value))
                else:
                    payload = path_watch_payload(prefix, watch=True)
                    sent.append((a.send_request(OP_EXISTS, payload), OP_EXISTS, None))
            for zxid, op, expect, r in read_replies(a, sent):
                assert zxid >= last_zxid, "zxid went back from %#x to %#x" % (last_zxid, zxid)
                last_zxid = zxid
                if op == OP_CREATE:
                    sequence = int(r.string().rsplit("-", 1)[1])
                    assert sequence > last_sequence
                    last_sequence = sequence
                elif op == OP_GET_DATA:
                    assert r.buffer() == b"%d" % expect
            if other:
                b_reply = b.read_message(timeout=10)
                while b_reply[0] == XID_PING:
                    b_reply = b.read_message(timeout=10)
                assert b_reply[0] == b_xid and b_reply[2] == OK
            time.sleep(rng.choice([0, 0, 0.001, 0.004]))
        assert last_sequence >= 0
