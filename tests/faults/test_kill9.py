"""Process-level crash tests: SIGKILL the server, restart it on the same port and data
directory, and check that nothing acknowledged was lost (issue 3, DESIGN.md section 9).

A write counts as acknowledged only after kazoo returned success for it. A write whose
outcome kazoo could not report (ConnectionLoss, SessionExpired, a timeout) is "unknown":
it may or may not have happened, and the writer goes on with a new logical operation
(a new unique name, the next value) instead of repeating it.

The kill moments are random: SEED=<n> replays the same choices (the exact moments still
depend on timing). KILL_CYCLES=<n> changes the number of kill/restart cycles (default 40 against
rzk, 25 against Apache; at least 20 are required). Each test prints what it did; run pytest with -s to see it.

These tests pass against Apache ZooKeeper 3.8 (ZK_TARGET=apache): that is the behaviour
rzk must match.
"""

import os
import random
import re
import threading
import time

import pytest
from kazoo.exceptions import (
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError

from rawzk import OP_CREATE, RawClient, create_payload
from waiting import wait_until

TARGET = os.environ.get("ZK_TARGET", "rzk")

# Outcomes kazoo reports when it does not know whether the server applied a request.
UNCERTAIN = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError)

MIN_CYCLES = 20
# rzk restarts in milliseconds, so it gets more cycles in the same time than the JVM.
CYCLES = int(os.environ.get("KILL_CYCLES", "40" if TARGET == "rzk" else "25"))
# Wall-clock budget of the kill/restart loop. The JVM takes 1-2 s to start, rzk a few ms.
CYCLE_BUDGET_S = 75.0 if TARGET == "rzk" else 200.0
RESULT_TIMEOUT_S = 30.0  # one kazoo request, across a restart
PROGRESS_TIMEOUT_S = 30.0  # writes must resume this soon after a restart

SNAPSHOT_NAME = re.compile(r"^snapshot\.([0-9a-fA-F]+)$")


def _seed():
    seed = os.environ.get("SEED")
    return int(seed) if seed else random.SystemRandom().randrange(1, 2**31)


def _wait_connected(client, timeout=RESULT_TIMEOUT_S):
    wait_until(lambda: client.connected, timeout=timeout, interval=0.01, message="kazoo client reconnected")


# --- writers ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """One kazoo client issuing a window of asynchronous writes at a time until stopped.

    Subclasses define submit(i) -> (async_result, context), acked(context, value) and
    unknown(context). Everything is recorded only after the result is known.
    """

    def __init__(self, name, client, window, stop, errors):
        super().__init__(name=name, daemon=True)
        self.client = client
        self.window = window
        self.stop_event = stop
        self.errors = errors
        self.acks = 0
        self.unknowns = 0
        self.next_op = 0

    def run(self):
        try:
            while not self.stop_event.is_set():
                batch = []
                for _ in range(self.window):
                    batch.append(self.submit(self.next_op))
                    self.next_op += 1
                uncertain = False
                for result, ctx in batch:
                    try:
                        value = result.get(timeout=RESULT_TIMEOUT_S)
                    except UNCERTAIN:
                        self.unknown(ctx)
                        self.unknowns += 1
                        uncertain = True
                        continue
                    self.acked(ctx, value)
                    self.acks += 1
                if uncertain:
                    # Do not spin while the server is down: wait for the reconnection.
                    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
                    while not self.client.connected and not self.stop_event.is_set():
                        if time.monotonic() > deadline:
                            raise AssertionError("%s: client not reconnected within %.0f s"
                                                 % (self.name, PROGRESS_TIMEOUT_S))
                        time.sleep(0.01)
        except Exception as e:  # anything else (NodeExists for a fresh name, ...) is a finding
            self.errors.append("%s: %r" % (self.name, e))


class CreateWriter(Writer):
    """Plain creates of unique paths under /plain; the data names the path."""

    def __init__(self, tag, *args):
        super().__init__("create-%s" % tag, *args)
        self.tag = tag
        self.acked_paths = {}
        self.unknown_paths = set()

    def submit(self, i):
        path = "/plain/%s-%08d" % (self.tag, i)
        data = path.encode()
        return self.client.create_async(path, data), (path, data)

    def acked(self, ctx, value):
        path, data = ctx
        assert value == path, "create of %s answered %r" % (path, value)
        self.acked_paths[path] = data

    def unknown(self, ctx):
        self.unknown_paths.add(ctx[0])


class SetWriter(Writer):
    """setData with increasing values, round robin over a few nodes under /set."""

    def __init__(self, nodes, *args):
        super().__init__("set", *args)
        self.nodes = nodes
        self.last_acked = {n: None for n in nodes}  # node -> (version, counter, data)
        self.acked_count = {n: 0 for n in nodes}
        self.unknown_count = {n: 0 for n in nodes}
        self.issued = {n: set() for n in nodes}  # counters sent to the node

    def submit(self, i):
        node = self.nodes[i % len(self.nodes)]
        data = b"%s=%d" % (node.encode(), i)
        self.issued[node].add(i)
        return self.client.set_async(node, data), (node, i, data)

    def acked(self, ctx, stat):
        node, counter, data = ctx
        self.acked_count[node] += 1
        last = self.last_acked[node]
        if last is not None and stat.version <= last[0]:
            raise AssertionError("setData of %s acknowledged version %d after version %d"
                                 % (node, stat.version, last[0]))
        self.last_acked[node] = (stat.version, counter, data)

    def unknown(self, ctx):
        self.unknown_count[ctx[0]] += 1


class SequentialWriter(Writer):
    """PERSISTENT_SEQUENTIAL creates under /seq; the data is a unique token per attempt."""

    def __init__(self, *args):
        super().__init__("sequential", *args)
        self.acked_names = []  # (name, token) in acknowledgement order
        self.unknown_tokens = set()

    def submit(self, i):
        token = b"tok-%08d" % i
        return self.client.create_async("/seq/s-", token, sequence=True), token

    def acked(self, token, path):
        self.acked_names.append((path.rsplit("/", 1)[1], token))

    def unknown(self, token):
        self.unknown_tokens.add(token)


def _get_all(client, paths):
    """Data of many nodes with pipelined reads: {path: data or None when absent}."""
    out = {}
    paths = list(paths)
    for start in range(0, len(paths), 500):
        chunk = paths[start:start + 500]
        pending = [(p, client.get_async(p)) for p in chunk]
        for p, result in pending:
            try:
                out[p] = result.get(timeout=RESULT_TIMEOUT_S)[0]
            except NoNodeError:
                out[p] = None
    return out


def _sample(items, n=10):
    items = sorted(items)
    return "%s%s" % (items[:n], " ... (%d in all)" % len(items) if len(items) > n else "")


@pytest.mark.timeout(300)
def test_kill9_never_loses_an_acknowledged_write(zk_server_factory, zk_factory):
    seed = _seed()
    rng = random.Random(seed)
    print("\nkill9: SEED=%d (set SEED=%d to replay) target=%s cycles=%d" % (seed, seed, TARGET, CYCLES))
    # A small snapCount so that snapshots are taken (and interrupted) during the run.
    server = zk_server_factory("kill9", extra_cfg={"snapCount": "2000"})
    setup = zk_factory(hosts=server.hosts)
    set_nodes = ["/set/n%d" % i for i in range(4)]
    for path in ["/plain", "/seq", "/set"] + set_nodes:
        setup.create(path, b"")
    setup.stop()
    setup.close()

    stop = threading.Event()
    errors = []

    def client():
        return zk_factory(hosts=server.hosts, timeout=10.0)

    creators = [CreateWriter("a", client(), 16, stop, errors), CreateWriter("b", client(), 1, stop, errors)]
    setter = SetWriter(set_nodes, client(), 8, stop, errors)
    sequencer = SequentialWriter(client(), 16, stop, errors)
    writers = creators + [setter, sequencer]

    def total_acks():
        return sum(w.acks for w in writers)

    def context():
        return "SEED=%d, after %d kill(s)" % (seed, kills)

    kills = 0
    started = time.monotonic()
    for w in writers:
        w.start()
    try:
        while kills < CYCLES and time.monotonic() - started < CYCLE_BUDGET_S:
            # The random moment: after some number of acknowledgements since the restart
            # (sometimes none: a kill while clients reconnect), plus a random delay.
            min_new_acks = 0 if rng.random() < 0.15 else rng.randint(1, 400)
            delay = rng.uniform(0.0, 0.2)
            base = total_acks()
            wait_until(lambda: errors or total_acks() >= base + min_new_acks, timeout=PROGRESS_TIMEOUT_S,
                       interval=0.002, message="writes acknowledged after restart (%s)" % context())
            assert not errors, "writer failed (%s): %s" % (context(), errors)
            time.sleep(delay)
            server.kill()
            kills += 1
            server.start()
        assert kills >= MIN_CYCLES or CYCLES < MIN_CYCLES, (
            "only %d kill/restart cycles in %.0f s (%s)" % (kills, CYCLE_BUDGET_S, context()))
        # Some writes after the last restart, then stop the writers and crash once more
        # with no load: everything acknowledged must survive that too.
        base = total_acks()
        wait_until(lambda: errors or total_acks() >= base + 50, timeout=PROGRESS_TIMEOUT_S,
                   message="writes acknowledged after the last restart (%s)" % context())
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=RESULT_TIMEOUT_S + 10)
    assert not any(w.is_alive() for w in writers), "a writer did not stop (%s)" % context()
    assert not errors, "writer failed (%s): %s" % (context(), errors)
    server.kill()
    kills += 1
    server.start()
    loop_s = time.monotonic() - started

    checker = zk_factory(hosts=server.hosts)
    problems = []

    # Plain creates: every acknowledged path exists with its data; nothing never sent exists.
    acked_paths = {}
    unknown_paths = set()
    for w in creators:
        acked_paths.update(w.acked_paths)
        unknown_paths |= w.unknown_paths
    stored = _get_all(checker, acked_paths)
    lost = [p for p, d in stored.items() if d is None]
    wrong = [p for p, d in stored.items() if d is not None and d != acked_paths[p]]
    if lost:
        problems.append("acknowledged creates lost: %s" % _sample(lost))
    if wrong:
        problems.append("acknowledged creates with wrong data: %s" % _sample(wrong))
    children = checker.get_children("/plain")
    if len(children) != len(set(children)):
        problems.append("/plain lists a child twice")
    phantoms = set("/plain/" + c for c in children) - set(acked_paths) - unknown_paths
    if phantoms:
        problems.append("/plain children never created by the test: %s" % _sample(phantoms))

    # setData: version >= last acknowledged; equal version means the acknowledged data;
    # the version counts successful sets, between the acknowledged and the attempted ones.
    for node in set_nodes:
        data, stat = checker.get(node)
        last = setter.last_acked[node]
        acked, unknown = setter.acked_count[node], setter.unknown_count[node]
        if not acked <= stat.version <= acked + unknown:
            problems.append("%s: version %d, but %d sets were acknowledged and %d unknown"
                            % (node, stat.version, acked, unknown))
        if last is None:
            continue
        version, counter, acked_data = last
        if stat.version < version:
            problems.append("%s: version %d < last acknowledged version %d (data %r, acknowledged %r)"
                            % (node, stat.version, version, data, acked_data))
        elif stat.version == version and data != acked_data:
            problems.append("%s: version %d holds %r, acknowledged %r" % (node, version, data, acked_data))
        else:
            stored_counter = int(data.split(b"=")[1])
            if stored_counter not in setter.issued[node] or stored_counter < counter:
                problems.append("%s: holds %r, older than the acknowledged %r or never sent"
                                % (node, data, acked_data))

    # Sequential creates: every acknowledged name exactly once, with its own token;
    # no name acknowledged twice; no attempt applied twice.
    names = [n for n, _ in sequencer.acked_names]
    if len(names) != len(set(names)):
        dups = sorted(n for n in set(names) if names.count(n) > 1)
        problems.append("the server acknowledged the same sequential name twice: %s" % _sample(dups))
    seq_children = checker.get_children("/seq")
    if len(seq_children) != len(set(seq_children)):
        problems.append("/seq lists a child twice: %s"
                        % _sample(n for n in set(seq_children) if seq_children.count(n) > 1))
    child_set = set(seq_children)
    missing = [n for n in names if n not in child_set]
    if missing:
        problems.append("acknowledged sequential creates lost: %s" % _sample(missing))
    seq_data = _get_all(checker, ["/seq/" + n for n in seq_children])
    for name, token in sequencer.acked_names:
        got = seq_data.get("/seq/" + name)
        if got is not None and got != token:
            problems.append("sequential %s holds %r, acknowledged for %r" % (name, got, token))
    tokens = [d for d in seq_data.values() if d is not None]
    if len(tokens) != len(set(tokens)):
        problems.append("one sequential create applied twice: %s"
                        % _sample(t for t in set(tokens) if tokens.count(t) > 1))
    issued = set(t for _, t in sequencer.acked_names) | sequencer.unknown_tokens
    strays = set(tokens) - issued
    if strays:
        problems.append("sequential children with data never sent: %s" % _sample(strays))

    print("kill9: %d kills in %.1f s; acknowledged: %d creates, %d sets, %d sequential; unknown: %d; "
          "/plain has %d children, /seq %d"
          % (kills, loop_s, len(acked_paths), sum(setter.acked_count.values()), len(names),
             sum(w.unknowns for w in writers), len(children), len(seq_children)))
    assert not problems, "SEED=%d, %d kills:\n  %s\nserver log tail:\n%s" % (
        seed, kills, "\n  ".join(problems), server.log_tail(30))


# --- sessions across a crash ------------------------------------------------------------


def _raw_session(server, timeout_ms, prefix, count):
    """A raw-socket session with `count` ephemerals + 1 ephemeral sequential + 1 persistent node."""
    raw = RawClient("127.0.0.1", server.port).connect(timeout_ms=timeout_ms)
    assert raw.negotiated_timeout_ms == timeout_ms
    for i in range(count):
        _, err, _ = raw.call(OP_CREATE, create_payload("/eph/%s-%d" % (prefix, i), flags=1))
        assert err == 0
    _, err, _ = raw.call(OP_CREATE, create_payload("/eph/%s-seq-" % prefix, flags=3))
    assert err == 0
    _, err, _ = raw.call(OP_CREATE, create_payload("/persist-%s" % prefix, b"stays", flags=0))
    assert err == 0
    return raw


def _with_prefix(children, prefix):
    return sorted(c for c in children if c.startswith(prefix + "-"))


@pytest.mark.timeout(120)
def test_ephemerals_of_an_expired_session_go_after_restart(zk_server_factory, zk_factory):
    tick_s = 0.5
    server = zk_server_factory("fasttick", tick_time=int(tick_s * 1000))  # session timeouts 1 s .. 10 s
    short_ms, medium_ms = 1000, 4000  # the minimum (2 x tickTime), and one that outlives the downtime
    margin_s = 4 * tick_s + 2.0

    keeper = zk_factory(hosts=server.hosts, timeout=10.0)  # re-attaches after the restart
    keeper_sid = keeper.client_id[0]
    keeper.create("/eph")
    for i in range(3):
        keeper.create("/eph/keeper-%d" % i, ephemeral=True)
    keeper.create("/eph/keeper-seq-", ephemeral=True, sequence=True)

    medium = _raw_session(server, medium_ms, "medium", 3)
    short = _raw_session(server, short_ms, "short", 3)  # last: its 1 s must not run out before the kill
    before = keeper.get_children("/eph")
    assert len(_with_prefix(before, "short")) == 4 and len(_with_prefix(before, "medium")) == 4

    server.kill()
    killed_at = time.monotonic()
    short.close()  # closed without closeSession: only expiry can end these sessions
    medium.close()
    # Deliberate downtime longer than the short session's timeout: it runs out while the server is down.
    time.sleep(max(0.0, killed_at + short_ms / 1000 + 0.5 - time.monotonic()))
    server.start()
    ready_at = time.monotonic()

    observer = zk_factory(hosts=server.hosts)
    first_look = observer.get_children("/eph")
    first_look_s = time.monotonic() - ready_at
    if first_look_s < medium_ms / 1000 - 1.0:
        # Sessions come back with the server: the medium one has not had its full timeout yet.
        assert len(_with_prefix(first_look, "medium")) == 4, (
            "the medium session's ephemerals were gone %.2f s after the restart, before its %d ms "
            "timeout: %r" % (first_look_s, medium_ms, first_look))

    wait_until(lambda: not _with_prefix(observer.get_children("/eph"), "short"),
               timeout=short_ms / 1000 + margin_s, interval=0.05,
               message="ephemerals of the expired %d ms session removed after the restart" % short_ms)
    short_gone_s = time.monotonic() - ready_at
    wait_until(lambda: not _with_prefix(observer.get_children("/eph"), "medium"),
               timeout=medium_ms / 1000 + margin_s, interval=0.05,
               message="ephemerals of the %d ms session removed after the restart" % medium_ms)
    medium_gone_s = time.monotonic() - ready_at
    assert medium_gone_s >= medium_ms / 1000 - 1.0, (
        "the %d ms session expired %.2f s after the restart: before its timeout" % (medium_ms, medium_gone_s))

    # The session whose client came back in time keeps its ephemerals.
    wait_until(lambda: keeper.connected, timeout=15, message="keeper re-attached")
    assert keeper.client_id[0] == keeper_sid, "keeper's session was not kept across the restart"
    remaining = observer.get_children("/eph")
    assert _with_prefix(remaining, "keeper") == _with_prefix(before, "keeper")
    for name in _with_prefix(remaining, "keeper"):
        assert observer.exists("/eph/" + name).ephemeralOwner == keeper_sid
    for prefix in ("short", "medium"):
        assert observer.get("/persist-" + prefix)[0] == b"stays"
    print("\nsessions: short (%d ms) ephemerals gone %.2f s after restart, medium (%d ms) %.2f s; "
          "downtime %.2f s" % (short_ms, short_gone_s, medium_ms, medium_gone_s, ready_at - killed_at))


# --- snapshots --------------------------------------------------------------------------


def _snapshot_zxids(data_dir):
    zxids = []
    for _root, _dirs, files in os.walk(data_dir):
        for f in files:
            m = SNAPSHOT_NAME.match(f)
            if m:
                zxids.append(int(m.group(1), 16))
    return zxids


def _tree(client, root):
    """{path: (data, stat)} for root and everything below it."""
    out = {}
    todo = [root]
    while todo:
        path = todo.pop()
        data, stat = client.get(path)
        out[path] = (data, stat)
        if stat.numChildren:
            todo.extend(path.rstrip("/") + "/" + c for c in client.get_children(path))
    return out


def _diff_trees(expected, actual):
    problems = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            problems.append("lost %s" % path)
        elif path not in expected:
            problems.append("unexpected %s" % path)
        elif expected[path] != actual[path]:
            problems.append("%s: was %r, now %r" % (path, expected[path], actual[path]))
    return problems


@pytest.mark.timeout(120)
def test_restart_after_snapshot_keeps_everything(zk_server_factory, zk_factory):
    server = zk_server_factory("snap", extra_cfg={"snapCount": "100"})
    client = zk_factory(hosts=server.hosts, timeout=10.0)
    client.create("/snap")
    client.create("/snap/seq")
    first_zxid = client.exists("/snap").czxid

    def pipelined(submits):
        pending = [submit() for submit in submits]
        return [p.get(timeout=RESULT_TIMEOUT_S) for p in pending]

    # A few hundred transactions of several kinds.
    pipelined([lambda i=i: client.create_async("/snap/n%03d" % i, b"v%d" % i) for i in range(400)])
    pipelined([lambda i=i: client.set_async("/snap/n%03d" % i, b"set%d" % i) for i in range(0, 400, 3)])
    pipelined([lambda i=i: client.delete_async("/snap/n%03d" % i) for i in range(0, 400, 10)])
    seq_names = pipelined([lambda: client.create_async("/snap/seq/s-", b"", sequence=True) for _ in range(30)])

    # Wait for a snapshot taken after the first writes (snapshots are written in the background).
    wait_until(lambda: any(z > first_zxid for z in _snapshot_zxids(server.data_dir)), timeout=30,
               message="a snapshot after zxid %#x in %s" % (first_zxid, server.data_dir))
    snaps = sorted(_snapshot_zxids(server.data_dir))
    # More writes after the snapshot, so the restart needs the snapshot and the log after it.
    pipelined([lambda i=i: client.create_async("/snap/after%02d" % i, b"a%d" % i) for i in range(40)])
    pipelined([lambda i=i: client.set_async("/snap/n%03d" % i, b"again%d" % i)
               for i in range(1, 400, 7) if i % 10])
    expected = _tree(client, "/snap")

    server.kill()
    server.start()
    _wait_connected(client)
    problems = _diff_trees(expected, _tree(client, "/snap"))
    assert not problems, "after kill -9 (snapshots at %s):\n  %s" % (
        [hex(z) for z in snaps], "\n  ".join(problems[:30]))

    # The sequence counter continues: no sequential name is handed out again.
    newest = max(int(n.rsplit("-", 1)[1]) for n in seq_names)
    again = client.create("/snap/seq/s-", sequence=True)
    assert int(again.rsplit("-", 1)[1]) > newest, "sequence number reused after restart: %s" % again
    client.create("/snap/post-crash", b"pc")
    expected = _tree(client, "/snap")

    server.stop()
    server.start()
    _wait_connected(client)
    problems = _diff_trees(expected, _tree(client, "/snap"))
    assert not problems, "after a clean restart:\n  %s" % "\n  ".join(problems[:30])
    print("\nsnapshots: zxids %s; %d znodes kept across kill -9 and a clean restart"
          % ([hex(z) for z in snaps], len(expected)))
