"""Fixtures shared by every black-box test under tests/.

ZK_TARGET chooses the server under test: "rzk" (default; the binary at
RZK_BIN, else target/debug/rzk) or "apache" (Debian's Apache ZooKeeper 3.8, the
reference behaviour). A missing dependency is a failure, never a skip.
"""

import os
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from kazoo.client import KazooClient  # noqa: E402  (a missing kazoo must fail collection)

from zkensemble import Ensemble  # noqa: E402
from zkserver import ZkServer, rzk_bin  # noqa: E402

TARGET = os.environ.get("ZK_TARGET", "rzk")
# ZK_TOPOLOGY=ensemble runs the client suites against a 3-voter ensemble of ZK_TARGET
# servers (each test's clients on one of them, the leader or a follower) instead of one
# standalone server.
TOPOLOGY = os.environ.get("ZK_TOPOLOGY", "standalone")

# Reconnect quickly and forever: session tests drop connections on purpose and
# must not wait for kazoo's default back-off.
FAST_RETRY = dict(max_tries=-1, delay=0.05, backoff=1.5, max_jitter=0.05, max_delay=0.5)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "standalone_only: checks what one standalone server answers about itself (its "
        "four-letter words, its AdminServer, the sessions on it); skipped when "
        "ZK_TOPOLOGY=ensemble, whose servers answer as leader or follower",
    )


def pytest_collection_modifyitems(config, items):
    if TOPOLOGY != "ensemble":
        return
    skip = pytest.mark.skip(reason="standalone_only: asks one server about itself")
    for item in items:
        if "standalone_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    if TARGET == "rzk":
        return "ZK_TARGET=rzk RZK_BIN=%s" % rzk_bin()
    return "ZK_TARGET=%s" % TARGET


def _check_target():
    if TARGET not in ("rzk", "apache"):
        pytest.fail("ZK_TARGET must be 'rzk' or 'apache', not %r" % TARGET, pytrace=False)
    if TARGET == "rzk" and not os.path.exists(rzk_bin()):
        pytest.fail(
            "ZK_TARGET=rzk but the rzk binary is missing at %s: build it (cargo build --workspace --bins) "
            "or set RZK_BIN; run against Apache ZooKeeper with ZK_TARGET=apache" % rzk_bin(),
            pytrace=False,
        )


def _started(server):
    try:
        server.start()
    except Exception as e:
        pytest.fail("%s server failed to start: %s" % (server.kind, e), pytrace=False)
    return server


@pytest.fixture
def zk_server_factory(tmp_path):
    """Make more servers of the target kind: factory(name, extra_cfg=None, tick_time=2000, start=True, rzk_args=())."""
    _check_target()
    servers = []

    def make(name="server", extra_cfg=None, tick_time=2000, start=True, kind=None, rzk_args=()):
        server = ZkServer(
            kind or TARGET, tmp_path / name, extra_cfg=extra_cfg, tick_time=tick_time, rzk_args=rzk_args
        )
        servers.append(server)
        if start:
            _started(server)
        return server

    yield make
    for server in servers:
        server.stop()


class EnsembleAsServer:
    """A 3-voter ensemble where the suites expect one server. Every client of a test is
    given the same one server's address, its four-letter words and data dir are that
    server's, and a kill or a restart takes the whole ensemble down and up again.

    One server, not all three: the suites check one client's write as another client's
    read (a lock's release, a watch's event before a later read), an order ZooKeeper
    promises only among the clients of one server, so clients spread over an ensemble
    would fail them against Apache ZooKeeper too. Which server is chosen by the test's
    id: about half the tests run on the leader, half on a follower that forwards.
    """

    def __init__(self, ensemble, test_id):
        self.ensemble = ensemble
        self.kind = ensemble.kind
        self.on_leader = zlib.crc32(test_id.encode()) % 2 == 0
        self.serving = None

    @property
    def _server(self):
        return self.ensemble[self.serving]

    @property
    def port(self):
        return self._server.port

    @property
    def data_dir(self):
        return self._server.data_dir

    @property
    def hosts(self):
        return self._server.hosts

    def four_letter(self, word, **kw):
        return self._server.four_letter(word, **kw)

    def log_tail(self, lines=60):
        return self.ensemble.log_tails(lines)

    def start(self):
        self.ensemble.start()
        leader = self.ensemble.leader()
        if self.serving is None:
            followers = [sid for sid in self.ensemble.ids if sid != leader]
            self.serving = leader if self.on_leader else followers[0]
        return self

    def kill(self):
        for sid in self.ensemble.ids:
            self.ensemble.kill(sid)

    def restart(self):
        self.ensemble.stop_all()
        return self.start()

    def stop(self):
        self.ensemble.stop_all()


@pytest.fixture
def zk_server(zk_server_factory, tmp_path, request):
    """A started server of kind ZK_TARGET in a fresh directory: standalone, or a 3-voter
    ensemble standing in for one (ZK_TOPOLOGY=ensemble)."""
    if TOPOLOGY == "standalone":
        yield zk_server_factory("server")
        return
    if TOPOLOGY != "ensemble":
        pytest.fail("ZK_TOPOLOGY must be 'standalone' or 'ensemble', not %r" % TOPOLOGY, pytrace=False)
    _check_target()
    ensemble = Ensemble(TARGET, tmp_path / "ensemble", voters=3, tick_time=2000)
    server = EnsembleAsServer(ensemble, request.node.nodeid)
    try:
        server.start()
    except Exception as e:
        ensemble.stop_all()
        pytest.fail("ensemble failed to start: %s\n%s" % (e, ensemble.log_tails()), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def apache_server(tmp_path):
    """A started Apache ZooKeeper 3.8, whatever ZK_TARGET says (for differential tests)."""
    server = ZkServer("apache", tmp_path / "apache")
    _started(server)
    yield server
    server.stop()


@pytest.fixture
def zk_factory(request):
    """Make started kazoo clients: factory(hosts=None, start=True, **KazooClient kwargs).

    Defaults to the zk_server fixture's address (started on first use). Every client made is stopped and
    closed afterwards, also when the test fails.
    """
    clients = []

    def make(hosts=None, start=True, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("connection_retry", dict(FAST_RETRY))
        if hosts is None:
            hosts = request.getfixturevalue("zk_server").hosts
        client = KazooClient(hosts=hosts, **kwargs)
        clients.append(client)
        if start:
            client.start(timeout=15)
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
def zk(zk_factory):
    """A started, connected kazoo client on zk_server."""
    return zk_factory()
