"""sslQuorum: TLS on every server-to-server connection (quorum and election ports).

The ssl.quorum.* keys are ZooKeeper's; each server presents a certificate and verifies its
peers' against its trust store. Runs against rzk (default) and Apache ZooKeeper
(ZK_TARGET=apache), whose behaviour is what the tests expect.
"""

import os
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import certs as certs_mod  # noqa: E402
from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    try:
        return certs_mod.make_certs(tmp_path_factory.mktemp("quorum-certs"))
    except certs_mod.CertError as e:
        pytest.fail(str(e), pytrace=False)


def quorum_tls_cfg(key_store, trust_store, store_type="PEM"):
    cfg = {
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": str(key_store),
        "ssl.quorum.keyStore.type": store_type,
        "ssl.quorum.trustStore.location": str(trust_store),
        "ssl.quorum.trustStore.type": store_type,
    }
    if store_type == "PKCS12":
        cfg["ssl.quorum.keyStore.password"] = certs_mod.PASSWORD
        cfg["ssl.quorum.trustStore.password"] = certs_mod.PASSWORD
    return cfg


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(timeout=15)
    return c


def test_an_ensemble_with_quorum_tls_forms_replicates_and_survives_its_leader(certs, tmp_path):
    e = Ensemble(TARGET, tmp_path / "e", voters=3, extra_cfg=quorum_tls_cfg(certs.server.pem, certs.ca.crt))
    clients = []
    try:
        e.start()
        leader = e.leader()
        writer = client(e[leader].hosts)
        clients.append(writer)
        writer.create("/over-tls", b"v1")
        for sid in e.ids:
            c = client(e[sid].hosts)
            clients.append(c)
            c.sync("/")
            assert c.get("/over-tls")[0] == b"v1", sid
        e.kill(leader)
        survivors = [sid for sid in e.ids if sid != leader]
        new_leader = e.leader()
        assert new_leader in survivors
        c = client(e.hosts(survivors))
        clients.append(c)
        c.set("/over-tls", b"v2")
        for sid in survivors:
            r = client(e[sid].hosts)
            clients.append(r)
            r.sync("/")
            assert r.get("/over-tls")[0] == b"v2", sid
    except Exception:
        print(e.log_tails())
        raise
    finally:
        for c in clients:
            c.stop()
            c.close()
        e.stop_all()


def test_pkcs12_quorum_stores_work(certs, tmp_path):
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=quorum_tls_cfg(certs.server.p12, certs.truststore_p12, store_type="PKCS12"),
    )
    try:
        e.start()
        leader = e.leader()
        c = client(e[leader].hosts)
        try:
            c.create("/p12", b"ok")
        finally:
            c.stop()
            c.close()
    except Exception:
        print(e.log_tails())
        raise
    finally:
        e.stop_all()


def test_a_server_without_the_right_certificate_cannot_join(certs, tmp_path):
    e = Ensemble(TARGET, tmp_path / "e", voters=3, extra_cfg=quorum_tls_cfg(certs.server.pem, certs.ca.crt))
    # Server 3 presents a certificate of another CA: it trusts the real CA, but nobody
    # trusts it.
    e[3].extra_cfg.update(quorum_tls_cfg(certs.rogue.pem, certs.ca.crt))
    e[3]._write_cfg()
    clients = []
    try:
        e.start(sids=[1, 2])
        writer = client(e.hosts([1, 2]))
        clients.append(writer)
        writer.create("/members-only", b"secret")
        e[3].launch()
        # Long enough for several election rounds and dials at rzk's and ZooKeeper's pace.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert e.mode(3) is None, "server 3 joined with an untrusted certificate"
            time.sleep(0.2)
        assert e[3].running(), "server 3 should keep trying, not exit:\n" + e[3].log_tail()
        # The two trusted servers still serve and agree.
        assert sorted(m for m in (e.mode(1), e.mode(2))) == ["follower", "leader"]
        writer.set("/members-only", b"still")
    except Exception:
        print(e.log_tails())
        raise
    finally:
        for c in clients:
            c.stop()
            c.close()
        e.stop_all()
