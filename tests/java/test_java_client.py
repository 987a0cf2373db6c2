"""The Apache ZooKeeper Java client (3.8) and Curator (5.4) against the server.

tests/java/src/ClientCompat.java runs numbered checks (create2 and every
CreateMode incl. CONTAINER and TTL, getEphemerals, getAllChildrenNumber,
persistent and recursive watches, removeWatches, multi and multiRead with their
per-op error codes, digest ACLs, whoAmI, sync, getConfig, /zookeeper, and the
Curator InterProcessMutex, LeaderLatch and CuratorCache recipes) and prints
PASS/FAIL per check. Every expectation in it was observed on Apache ZooKeeper
3.8.0 (Debian's package), which is the reference.
"""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import javabuild  # noqa: E402

RUN_TIMEOUT_S = 100
MIN_CHECKS = 31  # the checks ClientCompat has; raise it when adding checks


@pytest.fixture(scope="session")
def java_classpath(tmp_path_factory):
    """Compile the Java programs once per test session."""
    try:
        return javabuild.build(tmp_path_factory.mktemp("java-build"))
    except javabuild.JavaBuildError as e:
        pytest.fail(str(e), pytrace=False)


def _report(server, rc, output):
    return "exit code %s\n%s\n----- server log tail -----\n%s" % (
        rc,
        javabuild.summarize(output),
        server.log_tail(40),
    )


def test_client_compat(zk_server, java_classpath):
    rc, output = javabuild.run(java_classpath, "ClientCompat", [zk_server.hosts], RUN_TIMEOUT_S)
    assert rc == 0, _report(zk_server, rc, output)
    assert "FAIL" not in output, _report(zk_server, rc, output)
    # Every check ran (a silently skipped check would hide a gap).
    m = re.search(r"^SUMMARY (\d+)/(\d+) passed", output, re.M)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= MIN_CHECKS, _report(zk_server, rc, output)


def test_extended_types_disabled(zk_server_factory, java_classpath):
    """With extendedTypesEnabled=false TTL creates fail with UNIMPLEMENTED (-6)."""
    server = zk_server_factory("ext-off", extra_cfg={"extendedTypesEnabled": "false"})
    rc, output = javabuild.run(java_classpath, "ExtendedTypesOff", [server.hosts], RUN_TIMEOUT_S)
    assert rc == 0, _report(server, rc, output)
    assert "FAIL" not in output, _report(server, rc, output)
