"""The AdminServer (admin.enableServer=true): ZooKeeper 3.8's HTTP/JSON commands at
http://127.0.0.1:<admin.serverPort>/commands/<name>.

Checked: each command's field names and JSON types (the lists below are what Apache
ZooKeeper 3.8.0 answers for a standalone server, from Commands.java and a running one),
aliases, the error answers, and that state made with kazoo shows up in cons, dump, wchc,
wchp and wchs; crst, srst and stmk change what they should. Run with ZK_TARGET=apache the
same tests check Apache ZooKeeper itself (so the lists cannot drift from it);
test_same_fields_as_apache runs both servers side by side and compares every answer's
shape.

rzk leaves out fields it has no figure for (DOCUMENTED_GAPS); that is the only difference
allowed. rzk wants an authorized caller for the commands that change state (crst, srst,
stmk, orst), as ZooKeeper 3.9 does for its snapshot/restore: every request here carries
`Authorization: ip` (the default "/" ACL is world:anyone, so it passes), which Apache 3.8
ignores; test_state_changing_commands_want_auth checks the refusals on rzk only. `hash` (ZooKeeper's tree digest log) is checked against a digest computed here from
the tree as kazoo reads it, on both servers.
"""

import json
import os
import struct
import time
import zlib
import urllib.error
import urllib.parse
import urllib.request

import pytest
from kazoo.security import make_digest_acl, make_digest_acl_credential

from waiting import wait_until

TARGET = os.environ.get("ZK_TARGET", "rzk")
ADMIN_CFG = {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1"}
HTTP_TIMEOUT_S = 10.0

# Primary name -> aliases, as ZooKeeper 3.8 registers them.
COMMANDS = {
    "ruok": [],
    "server_stats": ["srvr"],
    "stats": ["stat"],
    "monitor": ["mntr"],
    "configuration": ["conf", "config"],
    "connections": ["cons"],
    "connection_stat_reset": ["crst"],
    "stat_reset": ["srst"],
    "environment": ["env", "envi"],
    "dirs": [],
    "dump": [],
    "watches": ["wchc"],
    "watches_by_path": ["wchp"],
    "watch_summary": ["wchs"],
    "is_read_only": ["isro"],
    "get_trace_mask": ["gtmk"],
    "set_trace_mask": ["stmk"],
    "leader": ["lead"],
    "voting_view": [],
    "zabstate": [],
    "hash": [],
    "last_snapshot": ["lsnp"],
    "observers": ["obsr"],
    "observer_connection_stat_reset": ["orst"],
    "system_properties": ["sysp"],
    "initial_configuration": ["icfg"],
}

# Fields and JSON types per command (envelope keys aside). Python's json gives int for
# 16 and float for 16.0, so "float" means ZooKeeper writes a double.
SERVER_STATS = {
    "packets_sent": int,
    "packets_received": int,
    "data_dir_size": int,
    "log_dir_size": int,
    "provider_null": bool,
    "server_state": str,
    "last_processed_zxid": int,
    "outstanding_requests": int,
    "avg_latency": float,
    "max_latency": int,
    "min_latency": int,
    "num_alive_client_connections": int,
    "auth_failed_count": int,
    "non_mtlsremote_conn_count": int,
    "non_mtlslocal_conn_count": int,
    "uptime": int,
}
CONNECTION_BRIEF = {
    "remote_socket_address": str,
    "interest_ops": int,
    "outstanding_requests": int,
    "packets_received": int,
    "packets_sent": int,
}
CONNECTION_FULL = dict(
    CONNECTION_BRIEF,
    session_id=int,
    last_operation=str,
    established=int,
    session_timeout=int,
    last_cxid=int,
    last_zxid=int,
    last_response_time=int,
    last_latency=int,
    min_latency=int,
    avg_latency=int,  # a long per connection, a double in server_stats
    max_latency=int,
)
SRVR = {"version": str, "read_only": bool, "server_stats": dict, "node_count": int}
FIELDS = {
    "ruok": {},
    "server_stats": SRVR,
    "stats": dict(SRVR, connections=list, secure_connections=list),
    "configuration": {
        "client_port": int,
        "data_dir": str,
        "data_log_dir": str,
        "tick_time": int,
        "max_client_cnxns": int,
        "min_session_timeout": int,
        "max_session_timeout": int,
        "server_id": int,
        "client_port_listen_backlog": int,
    },
    "connections": {"connections": list, "secure_connections": list},
    "connection_stat_reset": {},
    "stat_reset": {},
    "environment": {
        "zookeeper.version": str,
        "host.name": str,
        "os.name": str,
        "os.arch": str,
        "os.version": str,
        "user.name": str,
        "user.home": str,
        "user.dir": str,
    },
    "dirs": {"datadir_size": int, "logdir_size": int},
    "dump": {"expiry_time_to_session_ids": dict, "session_id_to_ephemeral_paths": dict},
    "watches": {"session_id_to_watched_paths": dict},
    "watches_by_path": {"path_to_session_ids": dict},
    "watch_summary": {"num_connections": int, "num_paths": int, "num_total_watches": int},
    "is_read_only": {"read_only": bool},
    "get_trace_mask": {"tracemask": int},
    "voting_view": {"current_config": dict},
    "zabstate": {"voting": bool, "zabstate": str},
    "hash": {"digests": list},
    "last_snapshot": {"zxid": str, "timestamp": int},
    "observers": {"synced_observers": int, "observers": list},
    "observer_connection_stat_reset": {},
    "initial_configuration": {"initial_configuration": str},
}
# Checked on their own: monitor (a long open-ended list), system_properties (the process's
# own), set_trace_mask and leader (errors without a parameter / on a standalone server).

# What Apache ZooKeeper answers and rzk leaves out, with why. Keyed by (command, nested
# object or None): a key, or a prefix ending in "." or "*".
DOCUMENTED_GAPS = {
    # ZooKeeper's counter of log syncs over fsync.warningthresholdms, and the sizes of the
    # last/smallest/largest response buffer: rzk keeps neither figure.
    ("server_stats", "server_stats"): {"fsync_threshold_exceed_count", "client_response_stats"},
    ("stats", "server_stats"): {"fsync_threshold_exceed_count", "client_response_stats"},
    ("server_stats", None): {"client_response"},
    ("stats", None): {"client_response"},
    # The JVM's own (java.home, java.class.path, heap figures as os.memory.*): no JVM.
    ("environment", None): {"java.*", "os.memory.*"},
}
# What rzk answers and Apache ZooKeeper does not.
RZK_EXTRAS = {
    ("environment", None): {"rzk.version"},
}

# monitor: the standalone figures ZooKeeper's MonitorCommand documents, with their types.
MONITOR_CORE = {
    "version": str,
    "server_state": str,
    "avg_latency": float,
    "max_latency": int,
    "min_latency": int,
    "packets_received": int,
    "packets_sent": int,
    "num_alive_connections": int,
    "outstanding_requests": int,
    "znode_count": int,
    "watch_count": int,
    "ephemerals_count": int,
    "approximate_data_size": int,
    "open_file_descriptor_count": int,
    "max_file_descriptor_count": int,
}


# --- helpers ---------------------------------------------------------------


def admin_url(server, path=""):
    return "http://127.0.0.1:%d/commands%s" % (server.admin_port, path)


# Sent with every command: ZooKeeper 3.9's admin auth (rzk has it for the state-changing
# commands) takes the caller's address as its id; Apache 3.8 has no admin auth and ignores it.
DEFAULT_AUTH = "ip"


def admin_call(server, command, auth=DEFAULT_AUTH, **params):
    """GET one command with `Authorization: <auth>` (None: no header); returns (HTTP status,
    decoded JSON object). Every answer, refusals included, is JSON."""
    url = admin_url(server, "/" + command)
    if params:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    assert headers.get_content_type() == "application/json", (status, body)
    answer = json.loads(body.decode("utf-8"))
    assert isinstance(answer, dict), body
    return status, answer


def admin_get(server, command, **params):
    """GET one command; returns the decoded JSON object (asserting HTTP 200 and JSON)."""
    status, answer = admin_call(server, command, **params)
    assert status == 200, answer
    return answer


def admin_ready(server):
    """The admin port answers ruok (ZooKeeper starts Jetty before the client port; rzk binds
    it before its core runs; waiting anyway costs nothing)."""

    def ruok():
        try:
            return admin_get(server, "ruok")["error"] is None
        except OSError:
            return False

    wait_until(ruok, timeout=15, message="AdminServer on port %d" % server.admin_port)
    return server


def type_name(value):
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(value)]


def check_types(where, obj, spec):
    assert isinstance(obj, dict), "%s: not an object: %r" % (where, obj)
    for key, kind in spec.items():
        assert key in obj, "%s: no field %r in %s" % (where, key, sorted(obj))
        value = obj[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        assert ok, "%s.%s: %s %r, expected %s" % (where, key, type_name(value), value, kind.__name__)


def allowed(patterns, key):
    return any(
        key == p or (p.endswith(("*", ".")) and key.startswith(p.rstrip("*"))) for p in patterns
    )


def check_exact_fields(kind, command, nested, obj, spec):
    """spec's fields with their types, and nothing else but the documented differences."""
    where = command if nested is None else "%s.%s" % (command, nested)
    check_types(where, obj, spec)
    extra = set(obj) - set(spec) - ({"command", "error"} if nested is None else set())
    gaps = DOCUMENTED_GAPS.get((command, nested), set())
    extras = RZK_EXTRAS.get((command, nested), set())
    if kind == "rzk":
        unexpected = {k for k in extra if not allowed(extras, k)}
        missing_gaps = set()
    else:
        unexpected = {k for k in extra if not allowed(gaps, k)}
        # A documented gap must be real: Apache ZooKeeper has every plain name listed.
        missing_gaps = {g for g in gaps if not g.endswith(("*", ".")) and g not in obj}
    assert not unexpected, "%s: fields not in ZooKeeper 3.8's list: %s" % (where, sorted(unexpected))
    assert not missing_gaps, "%s: documented gaps Apache does not have: %s" % (where, sorted(missing_gaps))


def ok(answer, command):
    assert answer["command"] == command, answer
    assert answer["error"] is None, answer
    return answer


@pytest.fixture
def admin(zk_server_factory):
    """A started server of kind ZK_TARGET with its AdminServer on."""
    return admin_ready(zk_server_factory("admin", extra_cfg=ADMIN_CFG))


def busy_client(zk_factory, server):
    """A kazoo session with an ephemeral node, data/exists watches on /a and /nope and a
    child watch on /."""
    zk = zk_factory(hosts=server.hosts)
    zk.create("/a", b"x")
    zk.create("/e", b"", ephemeral=True)
    zk.get("/a", watch=lambda event: None)
    zk.exists("/nope", watch=lambda event: None)
    zk.get_children("/", watch=lambda event: None)
    return zk


# --- tests -------------------------------------------------------------------


@pytest.mark.standalone_only
def test_off_unless_enabled(zk_server):
    """The harness leaves admin.enableServer=false: nothing listens on the admin port."""
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(admin_url(zk_server, "/ruok"), timeout=HTTP_TIMEOUT_S)


def test_every_command_has_zookeepers_fields(admin, zk_factory):
    busy_client(zk_factory, admin)
    for command, spec in FIELDS.items():
        answer = ok(admin_get(admin, command), command)
        check_exact_fields(admin.kind, command, None, answer, spec)
    for command in ("server_stats", "stats"):
        answer = admin_get(admin, command)
        check_exact_fields(admin.kind, command, "server_stats", answer["server_stats"], SERVER_STATS)
    brief = admin_get(admin, "stats")["connections"]
    full = admin_get(admin, "connections")["connections"]
    assert brief and full
    for c in brief:
        check_exact_fields(admin.kind, "stats", "connections[]", c, CONNECTION_BRIEF)
    for c in full:
        check_exact_fields(admin.kind, "connections", "connections[]", c, CONNECTION_FULL)


def test_values_that_follow_from_the_setup(admin, zk_factory):
    zk = busy_client(zk_factory, admin)
    zxid = zk.exists("/e").czxid
    srvr = admin_get(admin, "server_stats")
    assert srvr["read_only"] is False
    assert srvr["server_stats"]["server_state"] == "standalone"
    assert srvr["server_stats"]["last_processed_zxid"] >= zxid
    assert srvr["server_stats"]["num_alive_client_connections"] >= 1
    assert srvr["server_stats"]["provider_null"] is False
    # /, /zookeeper, /zookeeper/quota, /zookeeper/config, the root's "" alias, /a, /e.
    assert srvr["node_count"] == 7
    conf = admin_get(admin, "configuration")
    assert conf["client_port"] == admin.port
    assert conf["tick_time"] == 2000
    assert (conf["min_session_timeout"], conf["max_session_timeout"]) == (4000, 40000)
    assert conf["max_client_cnxns"] == 60
    assert conf["server_id"] == 0
    assert conf["data_dir"].startswith(str(admin.data_dir))
    dirs = admin_get(admin, "dirs")
    assert dirs["datadir_size"] > 0 and dirs["logdir_size"] > 0
    stats = admin_get(admin, "server_stats")["server_stats"]
    assert stats["data_dir_size"] > 0
    assert stats["log_dir_size"] > 0
    env = admin_get(admin, "environment")
    assert env["zookeeper.version"] == srvr["version"]
    assert env["user.dir"] == str(admin.workdir)
    assert admin_get(admin, "is_read_only")["read_only"] is False
    icfg = admin_get(admin, "initial_configuration")["initial_configuration"]
    assert icfg == admin.cfg_path.read_text()


def test_monitor(admin, zk_factory):
    busy_client(zk_factory, admin)
    mntr = ok(admin_get(admin, "monitor"), "monitor")
    check_types("monitor", mntr, MONITOR_CORE)
    assert mntr["server_state"] == "standalone"
    assert mntr["ephemerals_count"] == 1
    assert mntr["znode_count"] == 7
    assert mntr["num_alive_connections"] >= 1
    for key, value in mntr.items():
        if key.startswith("avg_"):
            assert isinstance(value, float), "monitor.%s: averages are doubles: %r" % (key, value)
        elif key not in ("version", "server_state", "command", "error"):
            assert type(value) in (int, float), "monitor.%s: %r" % (key, value)


def test_aliases_answer_as_the_primary_name(admin):
    for primary, aliases in COMMANDS.items():
        if primary in ("set_trace_mask", "connection_stat_reset", "stat_reset"):
            continue  # they change state; their aliases are checked where they are tested
        reference = admin_get(admin, primary)
        for alias in aliases:
            answer = admin_get(admin, alias)
            assert answer["command"] == primary, (alias, answer)
            assert set(answer) == set(reference), (alias, sorted(answer), sorted(reference))


def test_unknown_command(admin):
    answer = admin_get(admin, "no_such_command")
    assert answer == {"command": "no_such_command", "error": "Unknown command: no_such_command"}
    # ZooKeeper's command names are case-sensitive.
    assert admin_get(admin, "RUOK")["error"] == "Unknown command: RUOK"


def test_index_links_every_command(admin):
    with urllib.request.urlopen(admin_url(admin), timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 200
        page = response.read().decode("utf-8")
    linked = {
        line.split('">')[1].split("<")[0] for line in page.splitlines() if line.startswith("<a href=")
    }
    assert linked == set(COMMANDS)
    assert '<a href="/commands/ruok">ruok</a>' in page


def test_session_and_watches_are_visible(admin, zk_factory):
    zk = busy_client(zk_factory, admin)
    sid = zk.client_id[0]
    port = zk._connection._socket.getsockname()[1]

    cons = [c for c in admin_get(admin, "cons")["connections"] if c["session_id"] == sid]
    assert len(cons) == 1, admin_get(admin, "cons")
    c = cons[0]
    assert c["remote_socket_address"].endswith(":%d" % port)
    assert c["session_timeout"] == 10000
    assert c["last_operation"] == "GETC"  # get_children was the last request
    assert c["last_zxid"] >= zk.exists("/e").czxid
    assert c["packets_received"] >= 6 and c["packets_sent"] >= 6
    assert c["established"] > 0 and c["max_latency"] >= c["min_latency"] >= 0

    dump = admin_get(admin, "dump")
    expiring = [s for ids in dump["expiry_time_to_session_ids"].values() for s in ids]
    assert sid in expiring
    assert all(int(at) > 0 for at in dump["expiry_time_to_session_ids"])
    assert dump["session_id_to_ephemeral_paths"][str(sid)] == ["/e"]

    # Data and exists watches only: ZooKeeper 3.8's wchc/wchp/wchs leave child watches out.
    wchc = admin_get(admin, "wchc")["session_id_to_watched_paths"]
    assert sorted(wchc[str(sid)]) == ["/a", "/nope"]
    wchp = admin_get(admin, "wchp")["path_to_session_ids"]
    assert wchp["/a"] == [sid] and wchp["/nope"] == [sid]
    assert "/" not in wchp
    wchs = admin_get(admin, "wchs")
    assert (wchs["num_connections"], wchs["num_paths"], wchs["num_total_watches"]) == (1, 2, 2)

    # Firing the watch on /a removes it everywhere.
    zk.set("/a", b"y")
    zk.sync("/")

    def gone():
        return "/a" not in admin_get(admin, "wchp")["path_to_session_ids"]

    wait_until(gone, message="the fired watch on /a leaves wchp")
    assert sorted(admin_get(admin, "wchc")["session_id_to_watched_paths"][str(sid)]) == ["/nope"]

    # A closed session leaves dump and cons.
    zk.stop()
    zk.close()

    def forgotten():
        d = admin_get(admin, "dump")
        ids = [s for ids in d["expiry_time_to_session_ids"].values() for s in ids]
        return sid not in ids and str(sid) not in d["session_id_to_ephemeral_paths"]

    wait_until(forgotten, message="closed session leaves dump")
    assert all(c.get("session_id") != sid for c in admin_get(admin, "cons")["connections"])


def our_connection(server, sid):
    found = [c for c in admin_get(server, "cons")["connections"] if c["session_id"] == sid]
    assert len(found) == 1
    return found[0]


def test_connection_stat_reset(admin, zk_factory):
    # A long session timeout: no ping lands between the reset and the read.
    zk = zk_factory(hosts=admin.hosts, timeout=30.0)
    sid = zk.client_id[0]
    for i in range(5):
        zk.create("/n%d" % i)
    before = our_connection(admin, sid)
    assert before["packets_received"] >= 5 and before["packets_sent"] >= 5
    ok(admin_get(admin, "connection_stat_reset"), "connection_stat_reset")
    after = our_connection(admin, sid)
    assert (after["packets_received"], after["packets_sent"]) == (0, 0)
    assert after["max_latency"] == 0
    zk.exists("/n0")
    counted = our_connection(admin, sid)
    assert (counted["packets_received"], counted["packets_sent"]) == (1, 1)
    assert ok(admin_get(admin, "crst"), "connection_stat_reset") == {
        "command": "connection_stat_reset",
        "error": None,
    }
    assert our_connection(admin, sid)["packets_received"] == 0


def test_stat_reset(admin, zk_factory):
    zk = zk_factory(hosts=admin.hosts, timeout=30.0)
    for i in range(5):
        zk.create("/n%d" % i)
    before = admin_get(admin, "server_stats")["server_stats"]
    assert before["packets_received"] >= 5
    ok(admin_get(admin, "stat_reset"), "stat_reset")
    after = admin_get(admin, "server_stats")["server_stats"]
    assert (after["packets_received"], after["packets_sent"]) == (0, 0)
    assert (after["max_latency"], after["min_latency"]) == (0, 0)
    zk.exists("/n0")
    assert admin_get(admin, "server_stats")["server_stats"]["packets_received"] == 1
    ok(admin_get(admin, "srst"), "stat_reset")
    assert admin_get(admin, "server_stats")["server_stats"]["packets_received"] == 0


def test_trace_mask_round_trip(admin):
    assert ok(admin_get(admin, "get_trace_mask"), "get_trace_mask")["tracemask"] == 306
    assert ok(admin_get(admin, "set_trace_mask", traceMask="4"), "set_trace_mask")["tracemask"] == 4
    assert admin_get(admin, "gtmk")["tracemask"] == 4
    assert admin_get(admin, "stmk", traceMask="-2")["tracemask"] == -2
    assert admin_get(admin, "gtmk")["tracemask"] == -2
    # ZooKeeper's errors, with its field order (error first when the command sets it).
    missing = admin_get(admin, "set_trace_mask")
    assert missing == {
        "error": "setTraceMask requires long traceMask argument",
        "command": "set_trace_mask",
    }
    assert list(missing) == ["error", "command"]
    bad = admin_get(admin, "stmk", traceMask="lots")
    assert bad == {
        "error": "setTraceMask requires long traceMask argument, got lots",
        "command": "set_trace_mask",
    }
    assert admin_get(admin, "gtmk")["tracemask"] == -2  # a refused mask changes nothing


STATE_CHANGING = ["connection_stat_reset", "crst", "stat_reset", "srst", "set_trace_mask", "stmk", "orst"]


def test_state_changing_commands_want_auth(zk_server_factory, zk_factory):
    """ZooKeeper 3.9's admin auth (Commands.runCommand for AuthRequest commands): no header
    401, bad credentials 401, ids the ACL of "/" does not let in 403; reads stay open.
    Apache 3.8 has no admin auth at all (3.9 has it, for snapshot/restore only), so this
    runs against rzk only."""
    if TARGET != "rzk":
        pytest.skip("Apache ZooKeeper 3.8's AdminServer has no auth (3.9 has it for snapshot/restore)")
    super_cfg = {"DigestAuthenticationProvider.superDigest": make_digest_acl_credential("super", "boss")}
    server = admin_ready(zk_server_factory("auth", extra_cfg=dict(ADMIN_CFG, **super_cfg)))
    for command in STATE_CHANGING:
        assert admin_call(server, command, auth=None) == (
            401,
            {"command": command, "error": "Auth info is missing for the command"},
        )
        for bad in ("nosuch x", "digest", "digest a b", "x509", ""):
            assert admin_call(server, command, auth=bad) == (
                401,
                {"command": command, "error": "Not authenticated"},
            ), bad
    # The default ACL of "/" is world:anyone: any authenticated caller may.
    assert admin_call(server, "crst", auth="digest someone:pw")[0] == 200
    assert admin_call(server, "stmk", auth="ip", traceMask="8")[1]["tracemask"] == 8

    # Only the admin digest on "/": ip and other digests are refused, admin and super pass.
    zk = zk_factory(hosts=server.hosts)
    zk.set_acls("/", [make_digest_acl("admin", "pw", all=True)])
    for auth in ("ip", "digest someone:pw", "digest admin:wrong"):
        assert admin_call(server, "srst", auth=auth) == (403, {"command": "srst", "error": "Not authorized"}), auth
    assert admin_call(server, "stmk", auth="ip", traceMask="1")[0] == 403
    assert admin_get(server, "gtmk")["tracemask"] == 8  # refused: nothing changed
    assert ok(admin_call(server, "srst", auth="digest admin:pw")[1], "stat_reset")
    assert ok(admin_call(server, "crst", auth="digest super:boss")[1], "connection_stat_reset")
    # Reads need no header, whatever the ACL.
    for command in ("ruok", "srvr", "mntr", "gtmk", "cons"):
        status, answer = admin_call(server, command, auth=None)
        assert status == 200 and answer["error"] is None, (command, answer)
    # Unknown commands stay 200, as in ZooKeeper.
    assert admin_call(server, "nope", auth=None)[0] == 200


def test_standalone_answers_of_the_quorum_commands(admin):
    assert admin_get(admin, "leader") == {"error": "server is not initialized", "command": "leader"}
    assert admin_get(admin, "lead")["command"] == "leader"
    assert ok(admin_get(admin, "voting_view"), "voting_view")["current_config"] == {}
    zab = ok(admin_get(admin, "zabstate"), "zabstate")
    assert (zab["voting"], zab["zabstate"]) == (False, "")
    obsr = ok(admin_get(admin, "observers"), "observers")
    assert (obsr["synced_observers"], obsr["observers"]) == (0, [])


def test_system_properties(admin):
    sysp = ok(admin_get(admin, "system_properties"), "system_properties")
    props = {k: v for k, v in sysp.items() if k not in ("command", "error")}
    assert all(isinstance(v, str) for v in props.values()), props
    assert list(props) == sorted(props)
    for key in ("os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir"):
        assert key in props, key
    assert props["user.dir"] == str(admin.workdir)
    # The zoo.cfg's own settings: rzk lists every key as written; ZooKeeper those it passes
    # on as zookeeper.<key> system properties.
    prefix = "zookeeper." if admin.kind == "apache" else ""
    assert props[prefix + "admin.serverPort"] == str(admin.admin_port)


def test_last_snapshot(zk_server_factory, zk_factory):
    """snapCount=2: both servers snapshot after every write or two. last_snapshot names the
    newest finished one: its zxid in hex without 0x and its file time in seconds."""
    started = int(time.time())
    server = admin_ready(zk_server_factory("snap", extra_cfg=dict(ADMIN_CFG, snapCount="2")))
    zk = zk_factory(hosts=server.hosts)
    first = admin_get(server, "last_snapshot")
    check_types("last_snapshot", first, {"zxid": str, "timestamp": int})
    if first["timestamp"] == -1:  # no snapshot yet (rzk snapshots at startup only after replay)
        assert first["zxid"] == "ffffffffffffffff"
    zxids = []
    for i in range(6):
        zxids.append(zk.create("/s%d" % i, include_data=True)[1].czxid)

    target = zxids[-3]

    def newer():
        answer = admin_get(server, "last_snapshot")
        if int(answer["zxid"], 16) >= target and answer["timestamp"] > 0:
            return answer
        # A snapshot is only started by a write, and not while one is still being written
        # (both servers skip it then): on a busy machine the last writes can all fall into
        # one snapshot's run, so keep writing until one starts after them.
        zxids.append(zk.create("/s%d" % len(zxids), include_data=True)[1].czxid)
        return None

    answer = wait_until(newer, timeout=15, message="a snapshot after the writes")
    assert int(answer["zxid"], 16) <= zxids[-1]
    assert answer["zxid"] == answer["zxid"].lower() and not answer["zxid"].startswith("0x")
    assert started - 5 <= answer["timestamp"] <= int(time.time()) + 5


# --- side by side with Apache ZooKeeper -------------------------------------

# Maps keyed by data (session ids, paths, times) rather than by field names.
DATA_KEYED = {
    "expiry_time_to_session_ids",
    "session_id_to_ephemeral_paths",
    "session_id_to_watched_paths",
    "path_to_session_ids",
    "current_config",
}


def shape(value, key=None):
    """Field names and JSON types, recursively; the values themselves are left out."""
    if isinstance(value, dict):
        if key in DATA_KEYED:
            return {"<key>": shape(v) for v in list(value.values())[:1]}
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type_name(value)


def comparable(kind, command, answer_shape):
    """The shape without what only one kind answers (the documented differences)."""
    table = DOCUMENTED_GAPS if kind == "apache" else RZK_EXTRAS
    out = dict(answer_shape)
    for nested in (None, "server_stats"):
        patterns = table.get((command, nested), set())
        if nested is None:
            out = {k: v for k, v in out.items() if not allowed(patterns, k)}
        elif nested in out:
            out[nested] = {k: v for k, v in out[nested].items() if not allowed(patterns, k)}
    return out


def test_same_fields_as_apache(zk_server_factory, zk_factory):
    """The same workload on rzk and on Apache ZooKeeper 3.8; every command's answer must have
    the same field names and JSON types, but for the documented gaps."""
    ours = admin_ready(zk_server_factory("ours", extra_cfg=ADMIN_CFG))
    ref = admin_ready(zk_server_factory("ref", extra_cfg=ADMIN_CFG, kind="apache"))
    for server in (ours, ref):
        busy_client(zk_factory, server)
    skip = {"monitor", "system_properties", "connection_stat_reset", "stat_reset"}
    compared = []
    for command in COMMANDS:
        if command in skip:
            continue
        a = comparable(ours.kind, command, shape(admin_get(ours, command)))
        b = comparable(ref.kind, command, shape(admin_get(ref, command)))
        assert a == b, "%s differs:\nrzk:    %s\napache: %s" % (command, a, b)
        compared.append(command)
    assert len(compared) == len(COMMANDS) - len(skip)

    # monitor: every figure rzk reports is one ZooKeeper reports, under the same type.
    a = admin_get(ours, "monitor")
    b = admin_get(ref, "monitor")
    for key in set(a):
        assert key in b, "monitor.%s: not a ZooKeeper figure" % key
        assert type_name(a[key]) == type_name(b[key]), (key, a[key], b[key])


def node_digest(path, data, stat):
    """ZooKeeper's DigestCalculator (digest version 2), computed independently here. It digests
    the stored stat, whose cversion counts child creates only: clients are shown
    2 * creates - numChildren (DataNode.copyStat), so the stored one is recovered from that.
    (The stored ephemeralOwner differs too for containers and TTL nodes; none are made here.)"""
    if path.startswith("/zookeeper/"):
        return 0
    stored_cversion = (stat.cversion + stat.numChildren) // 2
    fixed = struct.pack(
        ">qqqqqiiiq",
        stat.czxid,
        stat.mzxid,
        stat.pzxid,
        stat.ctime,
        stat.mtime,
        stat.version,
        stored_cversion,
        stat.aversion,
        stat.ephemeralOwner,
    )
    return zlib.crc32(("" if path == "/" else path).encode() + (data or b"") + fixed)


def tree_digest(zk):
    total, stack = 0, ["/"]
    while stack:
        path = stack.pop()
        data, stat = zk.get(path)
        total += node_digest(path, data, stat)
        stack.extend((path.rstrip("/") + "/" + c) for c in zk.get_children(path))
    # A Java long: the sum wraps at 64 bits and reads as signed.
    total &= (1 << 64) - 1
    return total - (1 << 64) if total >= 1 << 63 else total


def test_hash_logs_zookeepers_tree_digest_every_128_zxids(zk_server_factory, zk_factory):
    """Both servers: write until zxid 128 exactly, then `hash` must hold (128, the digest of
    the tree as kazoo reads it). On Apache ZooKeeper this checks the computation here; on rzk,
    rzk's digest. (Reads write nothing, so the tree kazoo walks is the tree at zxid 128.)"""
    for kind in ("rzk", "apache"):
        server = admin_ready(zk_server_factory("hash-" + kind, extra_cfg=ADMIN_CFG, kind=kind))
        zk = zk_factory(hosts=server.hosts)
        assert ok(admin_get(server, "hash"), "hash")["digests"] == []
        zk.create("/d", b"parent")
        zxid = 0
        for i in range(200):
            _, stat = zk.create("/d/n", b"v%d" % i, sequence=True, include_data=True)
            zxid = stat.czxid
            if zxid >= 128:
                break
        assert zxid == 128, "%s: writes reached zxid %d, not 128" % (kind, zxid)
        digests = ok(admin_get(server, "hash"), "hash")["digests"]
        assert digests == [{"zxid": 128, "digest_version": 2, "digest": tree_digest(zk)}], kind
