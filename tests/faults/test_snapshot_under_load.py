"""Snapshots and purging while writes go on (issue 3: "writes go on during a snapshot").

Goal: with snapshots taken every few thousand transactions and autopurge on, a sustained
pipelined write load sees no error and no stall, old snapshots and log segments are purged
down to the retained count, and a restart recovers every node.
Method: `rzk bench` (a real client over the wire) creates nodes with 8 sessions x 32 in
flight while the server snapshots about every 1000-2000 transactions; then the data
directory is inspected and the server restarted. Always rzk: it checks rzk's own files.
"""

import json
import os
import subprocess

import pytest
from kazoo.client import KazooClient

OPS = 40_000


def snapshots(data_dir):
    return sorted(p for p in os.listdir(data_dir / "rzk") if p.startswith("snapshot.") and ".tmp" not in p)


def segments(data_dir):
    return sorted(p for p in os.listdir(data_dir / "rzk") if p.startswith("log.") and len(p) == 20)


@pytest.mark.timeout(300)
def test_writes_go_on_during_snapshots_and_purges(zk_server_factory, tmp_path):
    server = zk_server_factory(
        "snap",
        kind="rzk",
        extra_cfg={
            "snapCount": "2000",
            "autopurge.purgeInterval": "1",
            "autopurge.snapRetainCount": "3",
            "preAllocSize": "1024",
        },
    )
    report_path = tmp_path / "bench.json"
    done = subprocess.run(
        [
            os.environ["RZK_BIN"], "bench", "--hosts", server.hosts, "--workload", "create",
            "--ops", str(OPS), "--sessions", "8", "--inflight", "32", "--warmup", "0",
            "--value-size", "100", "--keep", "--json", "--save", str(report_path),
        ],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    for problem in ("errors", "unanswered", "sessions_lost", "protocol_errors"):
        assert not report[problem], (problem, report)
    assert report["ops"] == OPS
    # Snapshots happened all along, and purging kept only the newest three...
    snaps = snapshots(server.data_dir)
    assert len(snaps) == 3, snaps
    newest = int(snaps[-1].split(".")[1], 16)
    assert newest > OPS // 2, "the last snapshot is recent: %s" % snaps
    # ...and the log segments those snapshots cover are gone (1 MiB segments roll often).
    segs = segments(server.data_dir)
    oldest_kept = int(snaps[0].split(".")[1], 16)
    assert all(int(s.split(".")[1], 16) <= oldest_kept + 1 for s in segs[:1]), (segs, snaps)
    assert len(segs) < 10, segs

    zk = KazooClient(hosts=server.hosts, timeout=10)
    zk.start(timeout=30)
    zk.stop()
    zk.close()
    nodes = int(server.four_letter("mntr").split("zk_znode_count\t")[1].split()[0])
    assert nodes >= OPS, nodes

    server.kill()
    server.start()
    after = int(server.four_letter("mntr").split("zk_znode_count\t")[1].split()[0])
    assert after == nodes, (nodes, after)
