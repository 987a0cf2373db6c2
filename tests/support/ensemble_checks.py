"""Checks shared by the secured-ensemble tests (quorum TLS, quorum SASL): an ensemble
whose servers trust each other works and survives its leader; one server that cannot
authenticate never joins the others."""

import time

from kazoo.client import KazooClient

# Long enough for several election rounds and redials at rzk's and ZooKeeper's pace.
NOT_JOINED_WATCH_S = 8


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(timeout=15)
    return c


def _stop(clients):
    for c in clients:
        c.stop()
        c.close()


def forms_replicates_and_survives_its_leader(e, path):
    """Starts ensemble e, writes through the leader, reads on every server, kills the
    leader, writes through the survivors and reads there. Stops e."""
    clients = []
    try:
        e.start()
        leader = e.leader()
        writer = client(e[leader].hosts)
        clients.append(writer)
        writer.create(path, b"v1")
        for sid in e.ids:
            c = client(e[sid].hosts)
            clients.append(c)
            c.sync("/")
            assert c.get(path)[0] == b"v1", sid
        e.kill(leader)
        survivors = [sid for sid in e.ids if sid != leader]
        assert e.leader() in survivors
        c = client(e.hosts(survivors))
        clients.append(c)
        c.set(path, b"v2")
        for sid in survivors:
            r = client(e[sid].hosts)
            clients.append(r)
            r.sync("/")
            assert r.get(path)[0] == b"v2", sid
    except Exception:
        print(e.log_tails())
        raise
    finally:
        _stop(clients)
        e.stop_all()


def outsider_cannot_join(e, outsider, why):
    """Starts every server of e but `outsider`, writes, then starts `outsider` and checks
    for NOT_JOINED_WATCH_S that it never serves while the others go on. Stops e."""
    insiders = [sid for sid in e.ids if sid != outsider]
    clients = []
    try:
        e.start(sids=insiders)
        writer = client(e.hosts(insiders))
        clients.append(writer)
        writer.create("/members-only", b"secret")
        e[outsider].launch()
        deadline = time.monotonic() + NOT_JOINED_WATCH_S
        while time.monotonic() < deadline:
            assert e.mode(outsider) is None, "server %d joined %s" % (outsider, why)
            time.sleep(0.2)
        assert e[outsider].running(), "server %d should keep trying, not exit:\n%s" % (
            outsider,
            e[outsider].log_tail(),
        )
        assert sorted(e.mode(sid) for sid in insiders) == ["follower", "leader"]
        writer.set("/members-only", b"still")
    except Exception:
        print(e.log_tails())
        raise
    finally:
        _stop(clients)
        e.stop_all()
