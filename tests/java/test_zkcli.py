"""Apache ZooKeeper's command-line clients against the server.

zkCli.sh (the Java CLI, ZooKeeperMain) runs either one command per JVM
(``zkCli.sh -server HOST:PORT CMD ARGS``; exit code 0 or 1) or a batch of
commands read from stdin (one JVM, one session). In batch mode each command is
followed by ``get <marker>``, whose "Node does not exist: <marker>" line marks
the end of that command's output; stdout and stderr share one pipe so the
order is kept ("Created ..." goes to stderr, data to stdout).

cli_mt is the C client's CLI (``cli_mt -h HOST:PORT -c CMD``): it prints to
stderr and exits 0 even on errors, so the ``rc = N`` it prints is checked.

Every expected output here was observed on Apache ZooKeeper 3.8.0.
"""

import base64
import collections
import hashlib
import os
import re
import signal
import subprocess
import time

import pytest

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"
CLI_TIMEOUT_S = 60
MARK = "/__zkcli_end_of_command_"

NOISE = re.compile(
    r"^(SLF4J: |Connecting to |Welcome to ZooKeeper!|JLine support is |WATCHER::$"
    r"|WatchedEvent state:\w+ type:None path:null$)"
)
EVENT = re.compile(r"^WatchedEvent state:SyncConnected type:(\w+) path:(\S+)$")
STAT_KEYS = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
]
# java.util.Date.toString() with TZ=UTC
DATE = re.compile(r"^\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}$")
EPOCH = "Thu Jan 01 00:00:00 UTC 1970"


def _require(path):
    if not os.path.exists(path):
        pytest.fail("%s is missing (install the Debian packages zookeeper and zookeeper-bin)" % path, pytrace=False)


def _cli_env():
    env = dict(os.environ)
    env["TZ"] = "UTC"  # dates in stat output
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"
    return env


def _run(cmd, stdin_text=None, timeout=CLI_TIMEOUT_S):
    """Run a CLI in its own process group; on timeout kill that group. Returns (rc, output)."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_cli_env(),
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        out, _ = proc.communicate()
        pytest.fail("%s timed out after %d s; output:\n%s" % (" ".join(cmd[:4]), timeout, out))
    return proc.returncode, out


def _clean(output):
    return [line for line in output.splitlines() if line.strip() and not NOISE.match(line)]


def zkcli(server, *args):
    """One command, one JVM. Returns (exit code, output lines without connection noise)."""
    _require(ZKCLI)
    rc, out = _run([ZKCLI, "-server", server.hosts, *args])
    return rc, _clean(out)


Batch = collections.namedtuple("Batch", "outputs events raw")


def zkcli_batch(server, commands):
    """Run commands on stdin in one session. Returns Batch(outputs, events, raw):
    outputs[i] is the list of lines command i printed (watch events removed),
    events the Counter of (type, path) of all watch events printed."""
    _require(ZKCLI)
    script = "".join("%s\nget %s%d\n" % (c, MARK, i) for i, c in enumerate(commands)) + "quit\n"
    _, raw = _run([ZKCLI, "-server", server.hosts], stdin_text=script)
    outputs = [[] for _ in commands]
    events = collections.Counter()
    i = 0
    for line in _clean(raw):
        m = EVENT.match(line)
        if m:
            events[(m.group(1), m.group(2))] += 1
            continue
        if i < len(commands) and line == "Node does not exist: %s%d" % (MARK, i):
            i += 1
            continue
        if i < len(commands):
            outputs[i].append(line)
    assert i == len(commands), "batch stopped after %d of %d commands; output:\n%s" % (i, len(commands), raw)
    return Batch(outputs, events, raw)


def parse_stat(lines):
    """The 11 'key = value' lines zkCli prints for a Stat, in ZooKeeper's order."""
    stat_lines = [line for line in lines if " = " in line]
    assert [line.split(" = ", 1)[0] for line in stat_lines] == STAT_KEYS, lines
    return dict(line.split(" = ", 1) for line in stat_lines)


def digest_id(user, password):
    raw = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(raw).decode())


def listing(line):
    """'[a, b]' -> ['a', 'b']"""
    assert line.startswith("[") and line.endswith("]"), line
    inner = line[1:-1]
    return [] if not inner else inner.split(", ")


# ---------------------------------------------------------------------------
# zkCli.sh


def test_single_command_mode(zk_server):
    assert zkcli(zk_server, "create", "/one", "hello") == (0, ["Created /one"])
    assert zkcli(zk_server, "get", "/one") == (0, ["hello"])
    assert zkcli(zk_server, "get", "/missing") == (1, ["Node does not exist: /missing"])
    assert zkcli(zk_server, "create", "/one") == (1, ["Node already exists: /one"])
    rc, out = zkcli(zk_server, "stat", "/one")
    assert rc == 0
    st = parse_stat(out)
    assert re.fullmatch(r"0x[0-9a-f]+", st["cZxid"]) and st["cZxid"] != "0x0", st
    assert st["cZxid"] == st["mZxid"] == st["pZxid"], st
    assert DATE.match(st["ctime"]) and st["ctime"] == st["mtime"], st
    assert (st["cversion"], st["dataVersion"], st["aclVersion"]) == ("0", "0", "0"), st
    assert (st["ephemeralOwner"], st["dataLength"], st["numChildren"]) == ("0x0", "5", "0"), st
    assert zkcli(zk_server, "ls", "/") == (0, ["[one, zookeeper]"])
    assert zkcli(zk_server, "delete", "/one") == (0, [])
    assert zkcli(zk_server, "ls", "/") == (0, ["[zookeeper]"])


def test_fresh_server_system_nodes_sync_and_config(zk_server):
    b = zkcli_batch(
        zk_server,
        [
            "stat /",  # 0
            "stat /zookeeper",  # 1
            "ls /zookeeper",  # 2
            "get -s /zookeeper/quota",  # 3
            "config",  # 4
            "config -s",  # 5
            "sync /",  # 6
            "sync /missing",  # 7
            "getAcl /zookeeper/config",  # 8
            "set /zookeeper/config x",  # 9
            "delete /zookeeper/quota",  # 10
            "delete /zookeeper",  # 11
            "getAllChildrenNumber /",  # 12
            "create /zookeeper/mine",  # 13
            "stat /zookeeper",  # 14
            "delete /zookeeper/mine",  # 15
            "getAcl /",  # 16
            "getAcl /zookeeper/quota",  # 17
        ],
    )
    out = b.outputs
    root = parse_stat(out[0])
    # Shown cversion = 2 * (children created by transactions) - numChildren; the
    # built-in /zookeeper child was not created by a transaction.
    assert root == dict(
        cZxid="0x0", ctime=EPOCH, mZxid="0x0", mtime=EPOCH, pZxid="0x0", cversion="-1", dataVersion="0",
        aclVersion="0", ephemeralOwner="0x0", dataLength="0", numChildren="1",
    ), out[0]
    zkn = parse_stat(out[1])
    assert (zkn["cZxid"], zkn["pZxid"], zkn["cversion"], zkn["numChildren"]) == ("0x0", "0x0", "-2", "2"), out[1]
    assert out[2] == ["[config, quota]"]
    quota = parse_stat(out[3])  # empty data prints an empty line, dropped
    assert out[3][0].startswith("cZxid")
    assert (quota["cZxid"], quota["cversion"], quota["dataLength"], quota["numChildren"]) == ("0x0", "0", "0", "0")
    cfg = parse_stat(out[5])
    if os.environ.get("ZK_TOPOLOGY") == "ensemble":
        # An ensemble's servers hold their membership there, data version -1.
        assert out[4][0].startswith("server.1=") and out[4][-1] == "version=0", out[4]
        assert (cfg["cZxid"], cfg["mZxid"], cfg["dataVersion"], cfg["aclVersion"]) == ("0x0", "0x0", "-1", "-1")
        assert int(cfg["dataLength"]) > 0, out[5]
    else:
        assert out[4] == []  # standalone: /zookeeper/config is empty
        assert cfg == dict(
            cZxid="0x0", ctime=EPOCH, mZxid="0x0", mtime=EPOCH, pZxid="0x0", cversion="0", dataVersion="0",
            aclVersion="-1", ephemeralOwner="0x0", dataLength="0", numChildren="0",
        ), out[5]
    assert out[6] == ["Sync is OK"]
    assert out[7] == ["Sync is OK"]
    assert out[8] == ["'world,'anyone", ": r"]
    assert out[9] == ["Insufficient permission : /zookeeper/config"]
    assert out[10] == ["Arguments are not valid : /zookeeper/quota"]
    assert out[11] == ["Arguments are not valid : /zookeeper"]
    assert out[12] == ["3"]
    assert out[13] == ["Created /zookeeper/mine"]
    zkn2 = parse_stat(out[14])
    assert (zkn2["cversion"], zkn2["numChildren"]) == ("-1", "3"), out[14]
    assert out[15] == []
    assert out[16] == ["'world,'anyone", ": cdrwa"]
    assert out[17] == ["'world,'anyone", ": cdrwa"]


def test_batch_create_modes_and_reads(zk_server):
    b = zkcli_batch(
        zk_server,
        [
            "create /zc data1",  # 0
            "create -e /zc/e edata",  # 1
            "create -s /zc/s sdata",  # 2
            "create -s /zc/s",  # 3
            "create -c /zc/cont",  # 4
            "create -t 60000 /zc/ttl tdata",  # 5
            "create -e -s /zc/es",  # 6
            "get -s /zc",  # 7
            "set /zc data22",  # 8
            "set -s /zc data333",  # 9
            "stat /zc/e",  # 10
            "stat /zc/cont",  # 11
            "stat /zc/ttl",  # 12
            "ls /zc",  # 13
            "ls -s /zc",  # 14
            "ls -R /zc",  # 15
            "getAllChildrenNumber /zc",  # 16
            "getAllChildrenNumber /",  # 17
            "getEphemerals",  # 18
            "getEphemerals /zc/e",  # 19
            "getEphemerals /zc/s",  # 20
            "delete /zc",  # 21
            "delete -v 3 /zc/s0000000001",  # 22
            "set -v 3 /zc x",  # 23
            "delete /zc/s0000000001",  # 24
            "get /zc/s0000000001",  # 25
            "create /zc/e/child",  # 26
            "create /nop/x",  # 27
            "create /zc",  # 28
            "create -s /zc/s",  # 29
            "get /zc/s0000000002",  # 30
            "getAllChildrenNumber /missing",  # 31
            "deleteall /zc",  # 32
            "ls /",  # 33
            "create -t 0 /bad",  # 34
        ],
    )
    out = b.outputs
    assert out[0] == ["Created /zc"]
    assert out[1] == ["Created /zc/e"]
    assert out[2] == ["Created /zc/s0000000001"]  # the sequence is the parent's cversion
    assert out[3] == ["Created /zc/s0000000002"]
    assert out[4] == ["Created /zc/cont"]
    assert out[5] == ["Created /zc/ttl"]
    assert out[6] == ["Created /zc/es0000000005"]
    assert out[7][0] == "data1"
    zc = parse_stat(out[7][1:])
    assert (zc["cversion"], zc["numChildren"], zc["dataVersion"], zc["dataLength"]) == ("6", "6", "0", "5"), out[7]
    assert zc["cZxid"] == zc["mZxid"] and int(zc["pZxid"], 16) > int(zc["cZxid"], 16), out[7]
    assert out[8] == []
    zc2 = parse_stat(out[9])
    assert (zc2["dataVersion"], zc2["dataLength"], zc2["cZxid"]) == ("2", "7", zc["cZxid"]), out[9]
    assert int(zc2["mZxid"], 16) > int(zc["pZxid"], 16)
    eph = parse_stat(out[10])
    assert eph["ephemeralOwner"] != "0x0" and eph["dataLength"] == "5", out[10]
    # containers and TTL nodes show ephemeralOwner 0x0 to clients
    assert parse_stat(out[11])["ephemeralOwner"] == "0x0", out[11]
    ttl = parse_stat(out[12])
    assert (ttl["ephemeralOwner"], ttl["dataLength"]) == ("0x0", "5"), out[12]
    kids = ["cont", "e", "es0000000005", "s0000000001", "s0000000002", "ttl"]
    assert out[13] == ["[%s]" % ", ".join(kids)]
    assert out[14][0] == "[%s]" % ", ".join(kids)
    assert parse_stat(out[14][1:])["numChildren"] == "6"
    assert out[15] == ["/zc"] + ["/zc/" + k for k in kids]
    assert out[16] == ["6"]
    assert out[17] == ["10"]  # /zookeeper, config, quota, /zc and its 6 children
    assert len(out[18]) == 1 and sorted(listing(out[18][0])) == ["/zc/e", "/zc/es0000000005"], out[18]
    # the prefix is a plain string prefix: /zc/e matches /zc/es0000000005 too
    assert len(out[19]) == 1 and sorted(listing(out[19][0])) == ["/zc/e", "/zc/es0000000005"], out[19]
    assert out[20] == ["[]"]
    assert out[21] == ["Node not empty: /zc"]
    assert out[22] == ["version No is not valid : /zc/s0000000001"]
    assert out[23] == ["version No is not valid : /zc"]
    assert out[24] == []
    assert out[25] == ["Node does not exist: /zc/s0000000001"]
    assert out[26] == ["Ephemerals cannot have children: /zc/e/child"]
    assert out[27] == ["Node does not exist: /nop/x"]
    assert out[28] == ["Node already exists: /zc"]
    # the sequence counts creations only (6 so far; one child was deleted since,
    # and failed creates do not count), while the shown cversion is creations + deletions
    assert out[29] == ["Created /zc/s0000000006"]
    assert out[30] == ["null"]  # created without data: zkCli prints the null value
    assert out[31] == ["Node does not exist: /missing"]
    assert out[32] == []
    assert out[33] == ["[zookeeper]"]
    assert out[34] == ["ttl must be positive and cannot be larger than: 1099511627775"]


def test_ttl_and_container_removal(zk_server):
    b = zkcli_batch(
        zk_server,
        [
            "create -t 500 /t x",
            "create -s -t 500 /st",
            "create -t 500 /kept",
            "create /kept/kid",
            "create -c /c",
            "create /c/k",
            "delete /c/k",
            "create -c /never",
        ],
    )
    assert b.outputs[:3] == [["Created /t"], ["Created /st0000000001"], ["Created /kept"]], b.raw
    assert b.outputs[4] == ["Created /c"], b.raw
    want = ["[kept, never, zookeeper]"]
    deadline = time.monotonic() + 20
    out = None
    time.sleep(1.0)
    while time.monotonic() < deadline:
        rc, out = zkcli(zk_server, "ls", "/")
        if rc == 0 and out == want:
            break
        time.sleep(0.3)
    assert out == want, "TTL nodes / container not removed in time: ls / -> %r" % (out,)


def test_acl_addauth_whoami(zk_server):
    alice = digest_id("u1", "p1")
    authed = zkcli_batch(
        zk_server,
        [
            "whoami",  # 0
            "addauth digest u1:p1",  # 1
            "whoami",  # 2
            "create /secret s auth:u1:p1:cdrwa",  # 3
            "getAcl /secret",  # 4
            "get /secret",  # 5
            "create /open o",  # 6
            "setAcl /open digest:%s:cdrwa,world:anyone:r" % alice,  # 7
            "getAcl -s /open",  # 8
            "setAcl -v 0 /open world:anyone:r",  # 9
            "create /tree t",  # 10
            "create /tree/a a",  # 11
            "setAcl -R /tree world:anyone:r",  # 12
            "getAcl /tree/a",  # 13
            "set /tree/a b",  # 14
            "create /bad x foo:bar",  # 15
            "create /ipnode x ip:127.0.0.1:cdrwa",  # 16
            "getAcl /ipnode",  # 17
        ],
    )
    out = authed.outputs
    assert out[0] == ["Auth scheme: User", "ip: 127.0.0.1"]
    assert out[1] == []
    assert out[2][0] == "Auth scheme: User" and sorted(out[2][1:]) == ["digest: u1", "ip: 127.0.0.1"], out[2]
    assert out[3] == ["Created /secret"]
    # the "auth" scheme is replaced by the session's authenticated digest id
    assert out[4] == ["'digest,'%s" % alice, ": cdrwa"]
    assert out[5] == ["s"]
    assert out[7] == []
    assert out[8][:4] == ["'digest,'%s" % alice, ": cdrwa", "'world,'anyone", ": r"], out[8]
    assert parse_stat(out[8][4:])["aclVersion"] == "1"
    assert out[9] == ["version No is not valid : /open"]
    assert out[12] == []
    assert out[13] == ["'world,'anyone", ": r"]
    assert out[14] == ["Insufficient permission : /tree/a"]
    assert out[15] == [
        "foo:bar does not have the form scheme:id:perm",
        "KeeperErrorCode = InvalidACL",
        "Acl is not valid : null",
    ], out[15]
    assert out[16] == ["Created /ipnode"]
    assert out[17] == ["'ip,'127.0.0.1", ": cdrwa"]

    anon = zkcli_batch(
        zk_server,
        [
            "get /secret",  # 0
            "getAcl /secret",  # 1
            "get /open",  # 2
            "getAcl /open",  # 3
            "set /open x",  # 4
            "addauth digest u1:wrong",  # 5
            "whoami",  # 6
            "get /secret",  # 7
            "stat /secret",  # 8
            "get /ipnode",  # 9
        ],
    )
    out = anon.outputs
    assert out[0] == ["Insufficient permission : /secret"]
    assert out[1] == ["Insufficient permission : /secret"]  # getAcl needs READ or ADMIN
    assert out[2] == ["o"]
    # READ without ADMIN: digest ids come back with the hash replaced by "x"
    assert out[3] == ["'digest,'u1:x", ": cdrwa", "'world,'anyone", ": r"]
    assert out[4] == ["Insufficient permission : /open"]
    assert out[5] == []
    assert out[6][0] == "Auth scheme: User" and sorted(out[6][1:]) == ["digest: u1", "ip: 127.0.0.1"], out[6]
    assert out[7] == ["Insufficient permission : /secret"]
    assert parse_stat(out[8])["dataLength"] == "1"  # exists/stat needs no permission
    assert out[9] == ["x"]
    assert zkcli(zk_server, "get", "/secret") == (1, ["Insufficient permission : /secret"])


def test_quota_stats_maintained_by_server(zk_server):
    b = zkcli_batch(
        zk_server,
        [
            "create /q data",  # 0
            "create /q/a aa",  # 1
            "setquota -n 3 /q",  # 2
            "listquota /q",  # 3
            "create /q/b bbb",  # 4
            "get /zookeeper/quota/q/zookeeper_stats",  # 5
            "set /q/a aaaa",  # 6
            "get /zookeeper/quota/q/zookeeper_stats",  # 7
            "delete /q/b",  # 8
            "get /zookeeper/quota/q/zookeeper_stats",  # 9
            "setquota -b 100 /q",  # 10
            "listquota /q",  # 11
            "ls -R /zookeeper",  # 12
            "delquota /q",  # 13
            "listquota /q",  # 14
        ],
    )
    out = b.outputs
    assert out[2] == []
    assert out[3] == [
        "absolute path is /zookeeper/quota/q/zookeeper_limits",
        "Output quota for /q count=3,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /q count=2,bytes=6",
    ], out[3]
    assert out[5] == ["count=3,bytes=9"]
    assert out[7] == ["count=3,bytes=11"]
    assert out[9] == ["count=2,bytes=8"]
    assert out[11] == [
        "absolute path is /zookeeper/quota/q/zookeeper_limits",
        "Output quota for /q count=3,bytes=100=;byteHardLimit=-1;countHardLimit=-1",
        "Output stat for /q count=2,bytes=8",
    ], out[11]
    assert out[12] == [
        "/zookeeper",
        "/zookeeper/config",
        "/zookeeper/quota",
        "/zookeeper/quota/q",
        "/zookeeper/quota/q/zookeeper_limits",
        "/zookeeper/quota/q/zookeeper_stats",
    ], out[12]
    assert out[14] == ["absolute path is /zookeeper/quota/q/zookeeper_limits", "quota for /q does not exist."]


def test_watches(zk_server):
    b = zkcli_batch(
        zk_server,
        [
            "create /w 0",  # 0
            "get -w /w",  # 1
            "set /w 1",  # 2
            "ls -w /w",  # 3
            "create /w/k",  # 4
            "stat -w /w",  # 5
            "set /w 2",  # 6
            "addWatch -m PERSISTENT_RECURSIVE /w",  # 7
            "create /w/k/deep x",  # 8
            "set /w/k/deep y",  # 9
            "delete /w/k/deep",  # 10
            "removewatches /w -a",  # 11
            "create /w/after",  # 12
            "set /w 3",  # 13
            "removewatches /w -d",  # 14
            "get -w /w",  # 15
            "removewatches /w -d",  # 16
            "addWatch -m PERSISTENT /w",  # 17
            "create /w/p",  # 18
            "removewatches /w",  # 19
        ],
    )
    out = b.outputs
    assert out[1] == ["0"]
    assert out[3] == ["[]"]
    assert out[14] == ["KeeperErrorCode = No such watcher for /w"]
    assert out[15] == ["3"]
    want = collections.Counter(
        {
            ("NodeDataChanged", "/w"): 2,  # get -w + set, stat -w + set
            ("NodeChildrenChanged", "/w"): 2,  # ls -w + create /w/k, PERSISTENT + create /w/p
            ("NodeCreated", "/w/k/deep"): 1,
            ("NodeDataChanged", "/w/k/deep"): 1,
            ("NodeDeleted", "/w/k/deep"): 1,
            ("PersistentWatchRemoved", "/w"): 2,
            ("DataWatchRemoved", "/w"): 1,
        }
    )
    assert b.events == want, "events %r\nraw output:\n%s" % (b.events, b.raw)


# ---------------------------------------------------------------------------
# cli_mt (C client)


def cli_mt(server, command):
    """Returns the output lines without the session chatter."""
    _require(CLI_MT)
    rc, out = _run([CLI_MT, "-h", server.hosts, "-c", command], timeout=30)
    assert rc == 0, "cli_mt exited %s for %r:\n%s" % (rc, command, out)
    skip = ("Batch mode:", "Watcher SESSION_EVENT", "Got a new session id", "time = ")
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith(skip)]


def test_c_client_cli(zk_server):
    out = cli_mt(zk_server, "create /c1")
    assert out == ["Creating [/c1] node (mode: 0)", "[/c1]: rc = 0", "name = /c1"]
    assert cli_mt(zk_server, "create /c1")[-1] == "[/c1]: rc = -110"
    out = cli_mt(zk_server, "create +s /c1/s")
    assert out[1:] == ["[/c1/s]: rc = 0", "name = /c1/s0000000000"], out
    out = cli_mt(zk_server, "create2 /c1/two")
    assert out[1:3] == ["[/c1/two]: rc = 0", "name = /c1/two"], out
    czxid = [line for line in out if line.startswith("czxid=")]
    assert len(czxid) == 1 and re.fullmatch(r"czxid=[0-9a-f]+", czxid[0]), out
    out = cli_mt(zk_server, "get /c1")
    assert out[:3] == ["/c1: rc = 0", "value_len = 3", "new"], out  # cli_mt's create stores "new"
    assert "version=0\taversion=0" in out, out
    out = cli_mt(zk_server, "set /c1 hello")
    assert out[0] == "/c1: rc = 0 Stat:" and "version=1\taversion=0" in out, out
    out = cli_mt(zk_server, "get /c1/two")
    assert out[0] == "/c1/two: rc = 0" and czxid[0] in out, out
    out = cli_mt(zk_server, "ls /c1")
    assert out[0] == "/c1: rc = 0" and sorted(out[1:]) == ["s0000000000", "two"], out
    assert cli_mt(zk_server, "delete /c1") == ["/c1: rc = -111"]
    assert cli_mt(zk_server, "delete /c1/two") == ["/c1/two: rc = 0"]
    assert cli_mt(zk_server, "get /missing")[0] == "/missing: rc = -101"
    assert cli_mt(zk_server, "create /nope/x")[-1] == "[/nope/x]: rc = -101"
    out = cli_mt(zk_server, "get /zookeeper/config")
    if os.environ.get("ZK_TOPOLOGY") == "ensemble":
        assert out[0] == "/zookeeper/config: rc = 0" and out[1] != "value_len = 0", out
        assert any(line.startswith("server.1=") for line in out), out
    else:
        assert out[:2] == ["/zookeeper/config: rc = 0", "value_len = 0"] and "version=0\taversion=ffffffff" in out, out
    assert cli_mt(zk_server, "sync /c1") == ["[/c1]: rc = 0", "name = /c1"]
