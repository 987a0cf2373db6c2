"""The operations surface (issue 4): Prometheus metrics under ZooKeeper's names, histograms
that count every request, the slow-request log, and mntr's summary lines.

The endpoint is parsed with prometheus_client's own parser, so a format slip fails here
rather than in an operator's Prometheus. Debian's Apache ZooKeeper ships without its
Prometheus provider, so these run against rzk only.
"""

import os
import re
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from waiting import wait_until

TARGET = os.environ.get("ZK_TARGET", "rzk")
pytestmark = pytest.mark.skipif(
    TARGET != "rzk", reason="Debian's Apache ZooKeeper has no Prometheus provider"
)

# What ZooKeeper's PrometheusMetricsProvider exports for a standalone server and that
# Grafana's ZooKeeper dashboards and alerts read: mntr's figures as gauges...
ZK_GAUGES = [
    "avg_latency", "max_latency", "min_latency", "packets_received", "packets_sent",
    "num_alive_connections", "outstanding_requests", "znode_count", "watch_count",
    "ephemerals_count", "approximate_data_size", "open_file_descriptor_count",
    "max_file_descriptor_count", "global_sessions", "local_sessions", "uptime",
    "auth_failed_count", "connection_rejected", "connection_drop_count",
    "bytes_received_count",
]
# ...and its summaries (ServerMetrics), with quantile, _sum and _count samples.
ZK_SUMMARIES = [
    "fsynctime", "readlatency", "updatelatency", "snapshottime", "dbinittime",
    "sync_processor_batch_size",
]
STAGES = ["queue", "prep", "log", "quorum", "apply", "reply"]


def scrape(server):
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families, family, name=None, **labels):
    """The value of one sample: family's sample `name` (default the family name) with labels."""
    name = name or family
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError("no sample %s%r in %s" % (name, labels, family))


def test_prometheus_endpoint_has_zookeepers_names_and_every_mntr_figure(zk_server, zk):
    zk.create("/m", b"x", ephemeral=True)
    zk.get("/m", watch=lambda e: None)
    families = scrape(zk_server)
    for name in ZK_GAUGES:
        assert families[name].type == "gauge", name
    for name in ZK_SUMMARIES:
        assert families[name].type == "summary", name
        names = {s.name for s in families[name].samples}
        assert {name, name + "_sum", name + "_count"} <= names, (name, names)
    assert sample(families, "ephemerals_count") == 1
    assert sample(families, "watch_count") == 1
    assert sample(families, "global_sessions") == 1
    # Every numeric mntr line is a metric under its name without "zk_" (the summary lines
    # zk_avg_X ... are the summary X).
    mntr = dict(line.split("\t", 1) for line in zk_server.four_letter("mntr").strip().splitlines())
    assert mntr["zk_ephemerals_count"] == "1"
    summary = re.compile(r"^zk_(avg|min|max|cnt|sum)_(\w+)$")
    for key, value in mntr.items():
        if not re.fullmatch(r"-?[0-9.]+", value):
            continue
        m = summary.match(key)
        if m and m.group(2) in families and families[m.group(2)].type == "summary":
            name = m.group(2)
        else:
            name = key[len("zk_"):]
        assert name in families, "mntr %s has no Prometheus metric %s" % (key, name)
    for stage in STAGES:
        sample(families, "rzk_stage_seconds", "rzk_stage_seconds_count", stage=stage)
    assert families["rzk_log_write_seconds"].type == "histogram"


def test_histograms_count_every_write(zk_server, zk):
    n = 200
    zk.ensure_path("/h")
    before = scrape(zk_server)
    for i in range(n):
        zk.create("/h/n%d" % i, b"v" * 100)
    after = scrape(zk_server)

    def delta(family, name, **labels):
        return sample(after, family, name, **labels) - sample(before, family, name, **labels)

    assert delta("rzk_request_seconds", "rzk_request_seconds_count", op="create") == n
    assert delta("updatelatency", "updatelatency_count") == n
    for stage in STAGES:
        assert delta("rzk_stage_seconds", "rzk_stage_seconds_count", stage=stage) == n, stage
    assert delta("rzk_log_batch_txns", "rzk_log_batch_txns_sum") == n
    syncs = delta("fsynctime", "fsynctime_count")
    assert 1 <= syncs <= n
    assert delta("rzk_log_write_seconds", "rzk_log_write_seconds_count") == syncs
    assert delta("rzk_log_write_seconds", "rzk_log_write_seconds_sum") > 0
    assert sample(after, "fsynctime", quantile="0.5") > 0
    # A local read is counted too, outside the pipeline stages.
    reads_before = sample(after, "rzk_request_seconds", "rzk_request_seconds_count", op="getData")
    zk.get("/h/n0")
    again = scrape(zk_server)
    assert sample(again, "rzk_request_seconds", "rzk_request_seconds_count", op="getData") == reads_before + 1


def test_mntr_reports_zookeepers_summary_lines(zk_server, zk):
    zk.create("/s", b"x")
    mntr = dict(line.split("\t", 1) for line in zk_server.four_letter("mntr").strip().splitlines())
    for name in ("fsynctime", "readlatency", "updatelatency", "snapshottime", "dbinittime"):
        for prefix in ("avg", "min", "max", "cnt", "sum"):
            assert "zk_%s_%s" % (prefix, name) in mntr
    assert int(mntr["zk_cnt_fsynctime"]) >= 2  # the session and the create
    assert float(mntr["zk_max_fsynctime"]) >= float(mntr["zk_min_fsynctime"]) >= 0
    assert float(mntr["zk_avg_fsynctime"]) > 0


def test_slow_requests_are_logged_with_their_stages(zk_server_factory, zk_factory):
    server = zk_server_factory("slow", extra_cfg={"slowRequest.thresholdMs": "1"})
    zk = zk_factory(hosts=server.hosts)
    # Nearly a megabyte through the log and its sync: well over a millisecond.
    for i in range(5):
        zk.create("/big%d" % i, b"x" * 900_000)
    line_re = re.compile(
        r"slow request.*op=\"?create\"?.*total_us=(\d+) queue_us=(\d+) prep_us=(\d+) "
        r"log_us=(\d+) quorum_us=(\d+) apply_us=(\d+) reply_us=(\d+)"
    )

    def logged():
        return [m for m in map(line_re.search, server.log_path.read_text().splitlines()) if m]

    wait_until(lambda: logged(), timeout=10, message="a slow-request line")
    m = logged()[0]
    total, *stages = (int(g) for g in m.groups())
    assert total >= 1000
    assert sum(stages) <= total + 5
    assert int(m.group(4)) > 0, "the log stage took time"
    assert sample(scrape(server), "rzk_slow_requests", "rzk_slow_requests_total") >= 1


def test_null_metrics_provider_turns_the_endpoint_off(zk_server_factory):
    server = zk_server_factory("off", extra_cfg={
        "metricsProvider.className": "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
    })
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % server.metrics_port, timeout=2)
    assert server.four_letter("ruok") == "imok"


def test_the_endpoint_answers_during_a_write_load(zk_server, zk_factory):
    writer = zk_factory()
    writer.ensure_path("/load")
    asyncs = [writer.create_async("/load/n", b"x", sequence=True) for _ in range(2000)]
    started = time.monotonic()
    families = scrape(zk_server)
    assert time.monotonic() - started < 5
    for a in asyncs:
        a.get(timeout=30)
    assert sample(families, "znode_count") >= 6
