"""Fixtures for the TLS, x509 and SASL tests: certificates, secure servers, TLS clients.

Every server here is configured with the keys Apache ZooKeeper 3.8 reads (zoo.cfg and
Java system properties, see secure_cfg and ZkServer's jvm_props); rzk reads the same.
"""

import os
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import certs as certs_mod
from zkserver import ZkServer, rzk_bin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "java"))
import javabuild  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")

NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"

# Quick reconnects, as in tests/conftest.py.
FAST_RETRY = dict(max_tries=-1, delay=0.05, backoff=1.5, max_jitter=0.05, max_delay=0.5)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """CA, server, alice, bob, rogue CA and its client, as PEM and PKCS#12 (certs.py)."""
    try:
        return certs_mod.make_certs(tmp_path_factory.mktemp("certs"))
    except certs_mod.CertError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def java_classpath(tmp_path_factory):
    """tests/java/src compiled once per session (tests/java/build.sh)."""
    try:
        return javabuild.build(tmp_path_factory.mktemp("java-build"))
    except javabuild.JavaBuildError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def secure_client(java_classpath):
    """run(server, mode, hosts, expected, props, timeout=60): runs tests/java/src/
    SecureClient.java and returns its output; fails the test (with the server's log
    tail) unless it exits 0 with RESULT OK."""

    def run(server, mode, hosts, expected, props, timeout=60):
        args = [mode, hosts, expected] + ["%s=%s" % kv for kv in props.items()]
        rc, output = javabuild.run(java_classpath, "SecureClient", args, timeout)
        if rc != 0 or "RESULT OK" not in output:
            pytest.fail(
                "SecureClient %s: exit code %s\n%s\n----- server log tail -----\n%s"
                % (mode, rc, javabuild.summarize(output), server.log_tail(40)),
                pytrace=False,
            )
        return output

    return run


def secure_cfg(server, certs, store="pem", client_auth=None):
    """zoo.cfg keys for a secure client port beside the plain one.

    store="pem": the server's key store is server.pem (PKCS#8 key + certificate) and
    the trust store ca.crt, no passwords; store="p12": server.p12 and truststore.p12
    with certs.password. client_auth None leaves ssl.clientAuth out (Apache's default
    is need).

    Apache ZooKeeper 3.8 turns every zoo.cfg key it does not know into the system
    property "zookeeper." + key (QuorumPeerConfig.parseProperties), so ssl.* and
    authProvider.* work from zoo.cfg: X509Util reads zookeeper.ssl.*, ProviderRegistry
    zookeeper.authProvider.*. NettyServerCnxnFactory is required for secureClientPort
    (NIOServerCnxnFactory has no TLS; it serves the plain port too then).
    """
    if store == "pem":
        ks, ks_type, ts, ts_type, pw = certs.server.pem, "PEM", certs.truststore_pem, "PEM", None
    elif store == "p12":
        ks, ks_type, ts, ts_type, pw = certs.server.p12, "PKCS12", certs.truststore_p12, "PKCS12", certs.password
    else:
        raise ValueError(store)
    cfg = {
        "secureClientPort": str(server.secure_port),
        # Without it Apache binds the secure port on 0.0.0.0 (clientPortAddress is for
        # clientPort only): "configure ...NettyServerCnxnFactory@.. secure: true on addr
        # 0.0.0.0/0.0.0.0:N".
        "secureClientPortAddress": "127.0.0.1",
        "serverCnxnFactory": NETTY_FACTORY,
        "authProvider.x509": X509_PROVIDER,
        "ssl.keyStore.location": str(ks),
        "ssl.keyStore.type": ks_type,
        "ssl.trustStore.location": str(ts),
        "ssl.trustStore.type": ts_type,
    }
    if pw is not None:
        cfg["ssl.keyStore.password"] = pw
        cfg["ssl.trustStore.password"] = pw
    if client_auth is not None:
        cfg["ssl.clientAuth"] = client_auth
    return cfg


def _check_target():
    if TARGET not in ("rzk", "apache"):
        pytest.fail("ZK_TARGET must be 'rzk' or 'apache', not %r" % TARGET, pytrace=False)
    if TARGET == "rzk" and not os.path.exists(rzk_bin()):
        pytest.fail("ZK_TARGET=rzk but the rzk binary is missing at %s" % rzk_bin(), pytrace=False)


@pytest.fixture
def server_factory(tmp_path):
    """factory(name, extra_cfg=None, jvm_props=None, configure=None, start=True) -> ZkServer.

    configure(server) may return more zoo.cfg keys that depend on the server (its
    secure_port); they are merged over extra_cfg before the server starts."""
    _check_target()
    servers = []

    def make(name="server", extra_cfg=None, jvm_props=None, configure=None, start=True):
        server = ZkServer(TARGET, tmp_path / name, extra_cfg=extra_cfg, jvm_props=jvm_props)
        servers.append(server)
        if configure is not None:
            server.extra_cfg.update(configure(server))
        if start:
            try:
                server.start()
            except Exception as e:
                pytest.fail("%s server failed to start: %s" % (server.kind, e), pytrace=False)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def tls_server_factory(server_factory, certs):
    """factory(name="tls", store="pem", client_auth=None, extra_cfg=None, jvm_props=None)."""

    def make(name="tls", store="pem", client_auth=None, extra_cfg=None, jvm_props=None):
        def configure(server):
            cfg = secure_cfg(server, certs, store=store, client_auth=client_auth)
            cfg.update(extra_cfg or {})
            return cfg

        return server_factory(name, jvm_props=jvm_props, configure=configure)

    return make


@pytest.fixture
def client_factory():
    """factory(hosts, start=True, start_timeout=15, **KazooClient kwargs); all stopped afterwards."""
    clients = []

    def make(hosts, start=True, start_timeout=15, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("connection_retry", dict(FAST_RETRY))
        client = KazooClient(hosts=hosts, **kwargs)
        clients.append(client)
        if start:
            client.start(timeout=start_timeout)
        return client

    yield make
    for client in clients:
        try:
            client.stop()
        except Exception:
            pass
        try:
            client.close()
        except Exception:
            pass


@pytest.fixture
def tls_client(client_factory, certs):
    """factory(server, party=certs.alice or None, ca=ca.crt, **kwargs): a kazoo client on
    the server's secure port; party None presents no certificate."""

    def make(server, party="alice", ca=None, **kwargs):
        if party == "alice":
            party = certs.alice
        tls = dict(use_ssl=True, ca=str(ca or certs.ca.crt), verify_certs=True)
        if party is not None:
            tls.update(certfile=str(party.crt), keyfile=str(party.key))
        tls.update(kwargs)
        return client_factory("127.0.0.1:%d" % server.secure_port, **tls)

    return make
