"""Quorum SASL: DIGEST-MD5 between servers (quorum.auth.enableSasl and its require flags).

The connecting server is the learner (its QuorumLearner JAAS section names the user it
logs in as), the accepting one the server (its QuorumServer section lists the users it
accepts). With learnerRequireSasl and serverRequireSasl, a server that cannot authenticate
never gets a connection, so never joins. Runs against rzk (default) and Apache ZooKeeper
(ZK_TARGET=apache), whose behaviour is what the tests expect.
"""

import os
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from zkensemble import Ensemble  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")

SASL_CFG = {
    "quorum.auth.enableSasl": "true",
    "quorum.auth.learnerRequireSasl": "true",
    "quorum.auth.serverRequireSasl": "true",
}


def jaas_file(path, learner_password="mypassword"):
    # The Server section (client SASL) is not needed by ZooKeeper here, but rzk refuses a
    # JAAS file without one; clients still connect without SASL.
    path.write_text(
        "Server {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '    user_client="clientpassword";\n'
        "};\n"
        "QuorumServer {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '    user_test="mypassword";\n'
        "};\n"
        "QuorumLearner {\n"
        "    org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '    username="test"\n'
        '    password="%s";\n'
        "};\n" % learner_password
    )
    return path


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5))
    c.start(timeout=15)
    return c


def test_an_ensemble_with_quorum_sasl_forms_replicates_and_survives_its_leader(tmp_path):
    jaas = jaas_file(tmp_path / "jaas.conf")
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=SASL_CFG,
        jvm_props={"java.security.auth.login.config": str(jaas)},
    )
    clients = []
    try:
        e.start()
        leader = e.leader()
        writer = client(e[leader].hosts)
        clients.append(writer)
        writer.create("/over-sasl", b"v1")
        for sid in e.ids:
            c = client(e[sid].hosts)
            clients.append(c)
            c.sync("/")
            assert c.get("/over-sasl")[0] == b"v1", sid
        e.kill(leader)
        survivors = [sid for sid in e.ids if sid != leader]
        new_leader = e.leader()
        assert new_leader in survivors
        c = client(e.hosts(survivors))
        clients.append(c)
        c.set("/over-sasl", b"v2")
        for sid in survivors:
            r = client(e[sid].hosts)
            clients.append(r)
            r.sync("/")
            assert r.get("/over-sasl")[0] == b"v2", sid
    except Exception:
        print(e.log_tails())
        raise
    finally:
        for c in clients:
            c.stop()
            c.close()
        e.stop_all()


def test_a_server_with_a_wrong_learner_password_cannot_join(tmp_path):
    jaas = jaas_file(tmp_path / "jaas.conf")
    e = Ensemble(
        TARGET,
        tmp_path / "e",
        voters=3,
        extra_cfg=SASL_CFG,
        jvm_props={"java.security.auth.login.config": str(jaas)},
    )
    # Server 3 accepts the right user, but logs in to its peers with a wrong password.
    wrong = jaas_file(tmp_path / "jaas-wrong.conf", learner_password="not-the-password")
    e[3].jvm_props["java.security.auth.login.config"] = str(wrong)
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
            assert e.mode(3) is None, "server 3 joined with a wrong password"
            time.sleep(0.2)
        assert e[3].running(), "server 3 should keep trying, not exit:\n" + e[3].log_tail()
        # The two authenticated servers still serve and agree.
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
