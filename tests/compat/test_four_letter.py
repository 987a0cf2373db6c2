"""Four-letter words: answered on a fresh connection in place of a handshake,
then the server closes the connection. Checked for the forms operators and
monitoring scripts parse (keys, line shapes, values that must follow from what
the test did), not for byte equality.
"""

import re

import pytest

from waiting import wait_until


def parse_colon_lines(text):
    out = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = v
    return out


def parse_mntr(text):
    out = {}
    for line in text.splitlines():
        assert "\t" in line, "mntr line without a tab: %r" % line
        k, v = line.split("\t", 1)
        out[k] = v
    return out


def sid_hex(client):
    return "0x%x" % client.client_id[0]


def test_ruok(zk_server):
    assert zk_server.four_letter("ruok") == "imok"


def test_isro(zk_server):
    assert zk_server.four_letter("isro") == "rw"


@pytest.mark.standalone_only
def test_srvr(zk_server, zk):
    _, stat = zk.create("/n", include_data=True)
    text = zk_server.four_letter("srvr")
    assert text.startswith("Zookeeper version: ")
    fields = parse_colon_lines(text)
    assert fields["Mode"] == "standalone"
    assert int(fields["Zxid"], 16) == stat.czxid
    assert re.fullmatch(r"\d+/[\d.]+/\d+", fields["Latency min/avg/max"])
    for key in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
        assert re.fullmatch(r"\d+", fields[key]), key
    assert int(fields["Connections"]) >= 1
    assert int(fields["Outstanding"]) == 0
    assert text.endswith("\n")


def test_node_count_on_fresh_server(zk_server):
    """Apache ZooKeeper counts 5 on a fresh tree: /, /zookeeper, /zookeeper/quota,
    /zookeeper/config, plus the root once more under its "" alias."""
    assert parse_colon_lines(zk_server.four_letter("srvr"))["Node count"] == "5"
    assert parse_mntr(zk_server.four_letter("mntr"))["zk_znode_count"] == "5"


def test_node_count_follows_creates_and_deletes(zk_server, zk):
    def count():
        return int(parse_colon_lines(zk_server.four_letter("srvr"))["Node count"])

    base = count()
    zk.create("/a/b/c", makepath=True)
    assert count() == base + 3
    zk.create("/e", ephemeral=True)
    assert count() == base + 4
    zk.delete("/a", recursive=True)
    assert count() == base + 1


@pytest.mark.standalone_only
def test_stat(zk_server, zk):
    text = zk_server.four_letter("stat")
    assert text.startswith("Zookeeper version: ")
    assert "\nClients:\n" in text
    client_lines = [l for l in text.splitlines() if re.match(r"^ /127\.0\.0\.1:\d+\[\d+\]\(", l)]
    assert len(client_lines) >= 1
    ours = "/127.0.0.1:%d[" % zk._connection._socket.getsockname()[1]
    assert any(ours in l for l in client_lines), text
    assert re.search(r"queued=\d+,recved=\d+,sent=\d+", text)
    fields = parse_colon_lines(text)
    assert fields["Mode"] == "standalone"
    assert "Node count" in fields


def test_conf(zk_server):
    conf = dict(line.split("=", 1) for line in zk_server.four_letter("conf").splitlines() if "=" in line)
    assert conf["clientPort"] == str(zk_server.port)
    assert conf["tickTime"] == "2000"
    assert conf["minSessionTimeout"] == "4000"
    assert conf["maxSessionTimeout"] == "40000"
    assert conf["maxClientCnxns"] == "60"
    assert conf["serverId"] == "0"
    assert conf["dataDir"].startswith(str(zk_server.data_dir))
    assert "dataLogDir" in conf


def test_conf_reflects_session_bounds(zk_server_factory):
    server = zk_server_factory("bounds", extra_cfg={"minSessionTimeout": 3000, "maxSessionTimeout": 9000})
    conf = dict(line.split("=", 1) for line in server.four_letter("conf").splitlines() if "=" in line)
    assert conf["minSessionTimeout"] == "3000"
    assert conf["maxSessionTimeout"] == "9000"


@pytest.mark.standalone_only
def test_cons(zk_server, zk):
    zk.create("/x")
    zk.get("/x")
    text = zk_server.four_letter("cons")
    line = [l for l in text.splitlines() if "sid=%s," % sid_hex(zk) in l]
    assert len(line) == 1, text
    line = line[0]
    assert line.startswith(" /127.0.0.1:")
    assert "to=10000" in line
    for key in ("queued", "recved", "sent", "lop", "est", "lcxid", "lzxid", "lresp", "llat", "minlat", "avglat", "maxlat"):
        assert re.search(r"\b%s=" % key, line), key
    assert text.endswith("\n\n")


@pytest.mark.standalone_only
def test_crst_resets_connection_stats(zk_server, zk):
    for i in range(5):
        zk.exists("/")
    assert zk_server.four_letter("crst") == "Connection stats reset.\n"
    text = zk_server.four_letter("cons")
    line = [l for l in text.splitlines() if "sid=%s," % sid_hex(zk) in l][0]
    assert "recved=0" in line
    assert "sent=0" in line


@pytest.mark.standalone_only
def test_srst_resets_server_stats(zk_server, zk):
    for i in range(20):
        zk.exists("/")
    assert int(parse_colon_lines(zk_server.four_letter("srvr"))["Received"]) >= 20
    assert zk_server.four_letter("srst") == "Server stats reset.\n"
    assert int(parse_colon_lines(zk_server.four_letter("srvr"))["Received"]) < 20


@pytest.mark.standalone_only
def test_mntr(zk_server, zk, zk_factory):
    zk.create("/m", b"12345")
    zk.create("/e1", ephemeral=True)
    zk.create("/e2", ephemeral=True)
    zk.get("/m", watch=lambda e: None)
    zk.get_children("/m", watch=lambda e: None)
    m = parse_mntr(zk_server.four_letter("mntr"))
    assert m["zk_server_state"] == "standalone"
    assert re.match(r"\d+\.\d+\.\d+", m["zk_version"])
    assert m["zk_ephemerals_count"] == "2"
    assert m["zk_watch_count"] == "2"  # data and child watches together
    assert m["zk_outstanding_requests"] == "0"
    for key in ("zk_znode_count", "zk_num_alive_connections", "zk_packets_received", "zk_packets_sent",
                "zk_max_latency", "zk_min_latency", "zk_approximate_data_size", "zk_open_file_descriptor_count",
                "zk_max_file_descriptor_count"):
        assert re.fullmatch(r"\d+", m[key]), key
    float(m["zk_avg_latency"])
    assert int(m["zk_approximate_data_size"]) >= 5


@pytest.mark.standalone_only
def test_mntr_counts_connections(zk_server, zk_factory):
    def alive():
        return int(parse_mntr(zk_server.four_letter("mntr"))["zk_num_alive_connections"])

    clients = [zk_factory() for _ in range(3)]
    # the mntr connection itself counts too
    wait_until(lambda: alive() == 4, message="3 sessions + the mntr connection")
    clients[0].stop()
    wait_until(lambda: alive() == 3, message="after one close")


def test_envi(zk_server, zk):
    text = zk_server.four_letter("envi")
    assert text.startswith("Environment:\n")
    env = dict(line.split("=", 1) for line in text.splitlines()[1:] if "=" in line)
    assert re.match(r"\d+\.\d+\.\d+", env["zookeeper.version"])
    assert "host.name" in env
    assert "os.name" in env
    # kazoo derives the server version from envi
    version = zk.server_version()
    assert len(version) >= 2 and version >= (3, 5)


@pytest.mark.standalone_only
def test_watch_words(zk_server, zk, zk_factory):
    """wchs/wchc/wchp list data and exists watches; Apache 3.8 leaves child watches out."""
    other = zk_factory()
    zk.create("/a")
    zk.get("/a", watch=lambda e: None)
    zk.exists("/missing", watch=lambda e: None)
    zk.get_children("/a", watch=lambda e: None)
    other.get("/a", watch=lambda e: None)

    assert zk_server.four_letter("wchs") == "2 connections watching 2 paths\nTotal watches:3\n"

    wchc = zk_server.four_letter("wchc")
    blocks = {}
    current = None
    for line in wchc.splitlines():
        if line.startswith("0x"):
            current = line
            blocks[current] = []
        elif line.startswith("\t"):
            blocks[current].append(line[1:])
    assert sorted(blocks[sid_hex(zk)]) == ["/a", "/missing"]
    assert blocks[sid_hex(other)] == ["/a"]

    wchp = zk_server.four_letter("wchp")
    paths = {}
    for line in wchp.splitlines():
        if line.startswith("/"):
            current = line
            paths[current] = []
        elif line.startswith("\t"):
            paths[current].append(line[1:])
    assert sorted(paths["/a"]) == sorted([sid_hex(zk), sid_hex(other)])
    assert paths["/missing"] == [sid_hex(zk)]


def test_watch_words_empty(zk_server):
    assert zk_server.four_letter("wchs") == "0 connections watching 0 paths\nTotal watches:0\n"


def test_dump(zk_server, zk):
    zk.create("/eph", ephemeral=True)
    text = zk_server.four_letter("dump")
    assert text.startswith("SessionTracker dump:\n")
    assert "ephemeral nodes dump:" in text
    section = text.split("ephemeral nodes dump:", 1)[1]
    assert "Sessions with Ephemerals (1):" in section
    assert "%s:\n\t/eph\n" % sid_hex(zk) in section


def test_dirs(zk_server, zk):
    text = zk_server.four_letter("dirs")
    fields = parse_colon_lines(text)
    assert re.fullmatch(r"\d+", fields["datadir_size"])
    assert re.fullmatch(r"\d+", fields["logdir_size"])


def test_unknown_word_gets_no_answer(zk_server, zk):
    assert zk_server.four_letter("xyzw") == ""
    zk.exists("/")  # the server is fine


@pytest.mark.parametrize("word", ["ruok", "srvr", "mntr", "stat", "cons", "envi", "wchs", "dump", "conf"])
def test_words_close_the_connection(zk_server, word):
    """four_letter() reads to EOF with a deadline: every word must end with a close."""
    assert zk_server.four_letter(word, timeout=5) != ""


def test_whitelist(zk_server_factory):
    server = zk_server_factory("wl", extra_cfg={"4lw.commands.whitelist": "ruok, srvr"})
    assert server.four_letter("ruok") == "imok"
    assert "Mode: standalone" in server.four_letter("srvr")
    assert server.four_letter("mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert server.four_letter("envi") == "envi is not executed because it is not in the whitelist.\n"
