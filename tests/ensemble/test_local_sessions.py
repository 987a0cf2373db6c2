"""Local sessions (localSessionsEnabled): a session lives on the server it connected to
alone, with no txn to create or close it, until it creates an ephemeral, which upgrades it
to a global session (localSessionsUpgradingEnabled) or, by default, fails with
EphemeralOnLocalSession. Checked through kazoo and a raw client.

Run against rzk (ZK_TARGET=rzk, the default) or Apache ZooKeeper 3.8 (ZK_TARGET=apache).
"""

import re
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import EphemeralOnLocalSessionError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from rawzk import RawClient  # noqa: E402


def kazoo(server):
    c = KazooClient(hosts=server.hosts, timeout=10.0)
    c.start(timeout=15)
    return c


def zxid(server):
    return int(re.search(r"Zxid: (0x[0-9a-f]+)", server.four_letter("srvr")).group(1), 16)


def attaches_on(server, session_id, passwd):
    """Whether `server` takes the session (a local session is unknown elsewhere)."""
    with RawClient("127.0.0.1", server.port) as raw:
        try:
            raw.connect(session_id=session_id, passwd=passwd)
        except (EOFError, ConnectionError):
            return False
        return raw.session_id == session_id


def test_a_local_session_stays_on_its_server_until_an_ephemeral_upgrades_it(ensemble_factory):
    cfg = {"localSessionsEnabled": "true", "localSessionsUpgradingEnabled": "true"}
    e = ensemble_factory(voters=3, tick_time=200, extra_cfg=cfg)
    leader = e.leader()
    follower = next(sid for sid in e.ids if sid != leader)
    c = kazoo(e[follower])
    try:
        session_id, passwd = c.client_id
        c.create("/local-p", b"from a local session")
        assert c.get("/local-p")[0] == b"from a local session"
        assert not attaches_on(e[leader], session_id, passwd), "a local session cannot move"
        c.create("/local-e", b"", ephemeral=True)
        assert c.exists("/local-e").ephemeralOwner == session_id
        assert attaches_on(e[leader], session_id, passwd), "upgraded: every server knows it"
    finally:
        c.stop()
        c.close()


def test_a_local_session_opens_and_closes_with_no_txn(ensemble_factory):
    e = ensemble_factory(voters=3, tick_time=200, extra_cfg={"localSessionsEnabled": "true"})
    leader = e.leader()
    follower = next(sid for sid in e.ids if sid != leader)
    before = zxid(e[leader])
    c = kazoo(e[follower])
    c.exists("/")
    c.stop()
    c.close()
    assert zxid(e[leader]) == before


def test_without_upgrading_an_ephemeral_on_a_local_session_fails(ensemble_factory):
    # localSessionsUpgradingEnabled is off unless set, as in ZooKeeper 3.8.
    e = ensemble_factory(voters=3, tick_time=200, extra_cfg={"localSessionsEnabled": "true"})
    leader = e.leader()
    follower = next(sid for sid in e.ids if sid != leader)
    c = kazoo(e[follower])
    try:
        with pytest.raises(EphemeralOnLocalSessionError):
            c.create("/never", b"", ephemeral=True)
        c.create("/persistent", b"")
        assert c.exists("/never") is None
    finally:
        c.stop()
        c.close()
