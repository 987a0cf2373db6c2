"""Network partitions of a 3-voter ensemble of real server processes (rzk, or Apache
ZooKeeper 3.8 with ZK_TARGET=apache).

How the partition is made: the ensemble is built with ``partitionable=True``
(tests/support/zkensemble.py). Each server's zoo.cfg lists the other servers' quorum and
election ports as TCP proxies, one per directed link (i dials j through proxy i->j), while
its own server.N line keeps the real ports it listens on. Cutting i from j stops both
links i->j and j->i on both ports: new connections are refused, the open ones are closed
and nothing is forwarded. Healing lets them through again. Clients and four-letter words
reach every server directly, so a cut-off server's own clients can still talk to it.
(For Apache ZooKeeper the election proxies also rewrite the address a server announces,
so no election connection bypasses them; see zkensemble.py.)

What is proven, on both implementations:

* A leader cut off from both followers cannot get a write acknowledged to a client that
  reaches only it; it stops serving; the two followers elect a new leader and keep
  acknowledging writes from several clients. Healed, the old leader rejoins as a follower,
  the write it accepted but never replicated exists nowhere (on rzk its log shows it was
  cut back by a TRUNC from the new leader), and every server holds every acknowledged
  write with the same data and zxids.
* A follower cut off from the other two stops serving its clients while the majority,
  under the same leader, keeps acknowledging writes; healed, it catches up (on rzk by a
  DIFF from the leader) and serves every acknowledged write. Both with the connections
  closed at the cut and with them left open but silent (only syncLimit tells).

Every wait is bounded; every server and proxy is stopped by the fixture.
"""

import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

TARGET = os.environ.get("ZK_TARGET", "rzk")

ELECTION_TIMEOUT_S = 20.0  # a new leader among the majority after a cut
STOP_SERVING_TIMEOUT_S = 10.0  # a cut-off server stops serving (syncLimit is 1 s)
REJOIN_TIMEOUT_S = 40.0  # a healed server follows again (Apache's election backs off)
PROGRESS_TIMEOUT_S = 15.0


def client(hosts, **kw):
    kw.setdefault("timeout", 10.0)
    c = KazooClient(hosts=hosts, connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5), **kw)
    c.start(timeout=15)
    return c


def _close(c):
    try:
        c.stop()
    finally:
        c.close()


def _until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not within %.0f s" % (what, timeout))
        time.sleep(0.05)


def _leader_of(e, sids, timeout):
    """The one server of `sids` that leads while the others of `sids` follow it."""

    def check():
        modes = {s: e.mode(s) for s in sids}
        leaders = [s for s, m in modes.items() if m == "leader"]
        if len(leaders) == 1 and all(m == "follower" for s, m in modes.items() if s != leaders[0]):
            return leaders[0]
        return None

    try:
        return _until(check, timeout, "a leader among %s" % (sids,))
    except AssertionError as err:
        raise AssertionError("%s\n%s" % (err, e.log_tails())) from None


def _log_offset(server):
    try:
        return server.log_path.stat().st_size
    except OSError:
        return 0


def _log_lines_since(server, offset, *needles):
    """Lines of the server's log written after `offset` that contain every needle."""
    with open(server.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if all(n in line for n in needles)]


def _contents(hosts, parent):
    """{child: (data, czxid, mzxid)} of `parent` as one server has it, after a sync."""
    c = client(hosts)
    try:
        c.sync(parent)
        out = {}
        for name in c.get_children(parent):
            data, stat = c.get("%s/%s" % (parent, name))
            out[name] = (data, stat.czxid, stat.mzxid)
        return out
    finally:
        _close(c)


class _Writers:
    """Threads that each create znodes under `parent` through their own kazoo client,
    throttled, and record every create the ensemble acknowledged. A create that fails
    (connection loss while the leader changes) is retried; NodeExists on a retry means the
    earlier attempt went through, so it counts as acknowledged too."""

    def __init__(self, hosts_per_writer, parent, interval=0.03):
        self.parent = parent
        self.interval = interval
        self.acked = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clients = []
        try:
            for hosts in hosts_per_writer:
                self._clients.append(client(hosts))
            self._clients[0].ensure_path(parent)
        except Exception:
            for c in self._clients:
                _close(c)
            raise
        self._threads = [
            threading.Thread(target=self._run, args=(n, c), daemon=True) for n, c in enumerate(self._clients)
        ]
        for t in self._threads:
            t.start()

    def count(self):
        with self._lock:
            return len(self.acked)

    def per_writer(self):
        with self._lock:
            counts = [0] * len(self._clients)
            for name in self.acked:
                counts[int(name.split("-")[0][1:])] += 1
            return counts

    def _run(self, n, c):
        i = 0
        try:
            while not self._stop.is_set():
                name = "w%d-%06d" % (n, i)
                try:
                    c.create("%s/%s" % (self.parent, name), name.encode())
                except NodeExistsError:
                    pass
                except KazooException:
                    self._stop.wait(0.05)
                    continue
                with self._lock:
                    self.acked.append(name)
                i += 1
                self._stop.wait(self.interval)
        except Exception as err:  # pragma: no cover - reported by stop()
            self.errors.append(err)

    def wait_for(self, count, timeout, what):
        _until(lambda: self.count() >= count, timeout, "%s (%d of %d acknowledged)" % (what, self.count(), count))

    def stop(self):
        """Stops the writers and closes their clients (in a finally: raises nothing)."""
        self._stop.set()
        for t in self._threads:
            t.join(20)
        self.alive = [t.name for t in self._threads if t.is_alive()]
        for c in self._clients:
            try:
                _close(c)
            except Exception as err:  # noqa: BLE001 - reported by acknowledged()
                self.errors.append(err)

    def acknowledged(self):
        """Every acknowledged create, once stopped cleanly."""
        assert not self.alive, "writer threads did not stop: %s" % self.alive
        assert not self.errors, self.errors
        return set(self.acked)


@pytest.fixture
def partitionable(ensemble_factory):
    # ensemble_factory stops the servers; Ensemble.stop_all() also closes the proxies.
    return lambda: ensemble_factory(voters=3, partitionable=True)


def _assert_all_agree(e, parent, acked, absent=()):
    """Every server holds every acknowledged child of `parent`, none of `absent`, and the
    same children with the same data and zxids as every other server."""
    views = {sid: _contents(e[sid].hosts, parent) for sid in e.ids}
    for sid, view in views.items():
        missing = sorted(acked - set(view))
        assert not missing, "s%d lacks %d acknowledged writes, e.g. %s" % (sid, len(missing), missing[:5])
        present = sorted(set(absent) & set(view))
        assert not present, "s%d has %s, which was never acknowledged" % (sid, present)
    first = views[e.ids[0]]
    for sid in e.ids[1:]:
        if views[sid] != first:
            only_first = sorted(set(first) - set(views[sid]))[:5]
            only_here = sorted(set(views[sid]) - set(first))[:5]
            differ = sorted(k for k in set(first) & set(views[sid]) if first[k] != views[sid][k])[:5]
            raise AssertionError(
                "s%d and s%d disagree on %s: only on s%d %s, only on s%d %s, different %s"
                % (e.ids[0], sid, parent, e.ids[0], only_first, sid, only_here, differ)
            )
    return first


def test_a_leader_cut_off_from_both_followers_is_replaced_and_loses_only_what_was_never_acknowledged(
    partitionable,
):
    e = partitionable()
    old = e.leader()
    majority = [s for s in e.ids if s != old]
    # Several clients write through the two followers before, during and after the cut.
    writers = _Writers([e[majority[0]].hosts, e[majority[1]].hosts, e.hosts(majority)], "/part")
    lonely = None
    try:
        lonely = client(e[old].hosts)  # reaches the old leader only
        lonely_states = []
        lonely.add_listener(lonely_states.append)
        writers.wait_for(30, PROGRESS_TIMEOUT_S, "writes before the cut")
        # A black hole first: the old leader still believes it leads and accepts the write,
        # but no follower ever sees it. Then the connections are closed, as a reset would.
        e.cut([old], majority, close_connections=False)
        cut_at = time.monotonic()
        lost = lonely.create_async("/part/lost", b"never acknowledged")
        time.sleep(0.5)  # well under syncLimit (1 s): nobody has given up on anybody yet
        e.close_connections([old], majority)
        at_cut = writers.count()

        new = _leader_of(e, majority, ELECTION_TIMEOUT_S)
        elected_after = time.monotonic() - cut_at
        assert new != old
        # The old leader stops serving, though its clients can still reach it.
        _until(lambda: e.mode(old) is None, STOP_SERVING_TIMEOUT_S, "s%d stops serving" % old)
        # Its client's write is never acknowledged: the create fails, or is still waiting.
        try:
            lost.get(timeout=10)
        except Exception as err:  # noqa: BLE001 - any failure (or the timeout) is the point
            outcome = repr(err)
        else:
            raise AssertionError("the cut-off leader acknowledged a write: %s\n%s" % (lost.value, e.log_tails()))
        assert KazooState.SUSPENDED in lonely_states, lonely_states
        # The majority keeps acknowledging writes under its new leader.
        writers.wait_for(at_cut + 60, PROGRESS_TIMEOUT_S, "writes acknowledged by the majority during the cut")
        assert e.mode(old) is None, "the cut-off old leader serves again before the heal"

        offsets = {sid: _log_offset(e[sid]) for sid in e.ids}
        e.heal()
        healed_at = time.monotonic()
        _until(lambda: e.mode(old) == "follower", REJOIN_TIMEOUT_S, "s%d rejoins as a follower" % old)
        rejoined_after = time.monotonic() - healed_at
        assert e.mode(new) == "leader", "the healed old leader disturbed the new one"
        writers.wait_for(writers.count() + 30, PROGRESS_TIMEOUT_S, "writes after the heal")
    finally:
        writers.stop()
        if lonely is not None:
            _close(lonely)

    acked = writers.acknowledged()
    assert "lost" not in acked
    _assert_all_agree(e, "/part", acked, absent={"lost"})
    if TARGET == "rzk":
        # The old leader had logged the write (it leads, and logs before replicating); the
        # new leader cut its log back to what they share, and it did.
        sent = _log_lines_since(e[new], offsets[new], "syncing a learner by TRUNC", " learner=%d " % old)
        assert sent, "s%d sent s%d no TRUNC:\n%s" % (new, old, e.log_tails())
        done = _log_lines_since(e[old], offsets[old], "log truncated for the leader (TRUNC)")
        dropped = [int(m.group(1)) for m in (re.search(r"\bdropped_txns=(\d+)", line) for line in done) if m]
        assert dropped and sum(dropped) >= 1, "s%d truncated nothing: %s\n%s" % (old, done, e.log_tails())
    print(
        "\nleader cut off: s%d replaced by s%d in %.1f s, rejoined %.1f s after the heal; "
        "lost write: %s; acknowledged %d (per writer %s)"
        % (old, new, elected_after, rejoined_after, outcome, len(acked), writers.per_writer())
    )


@pytest.mark.parametrize("how", ["reset", "silent"])
def test_a_follower_cut_off_stops_serving_and_catches_up_after_the_heal(partitionable, how):
    # reset: the links' connections are closed at the cut, as a router's resets would.
    # silent: they stay open and carry nothing, so only the silence (syncLimit) tells.
    e = partitionable()
    leader = e.leader()
    cut, other = [s for s in e.ids if s != leader]
    majority = [leader, other]
    writers = _Writers([e[leader].hosts, e[other].hosts, e.hosts(majority)], "/minority")
    reader = None
    try:
        reader = client(e[cut].hosts)  # reaches the cut-off follower only
        reader_states = []
        reader.add_listener(reader_states.append)
        writers.wait_for(30, PROGRESS_TIMEOUT_S, "writes before the cut")
        e.isolate(cut, close_connections=(how == "reset"))
        cut_at = time.monotonic()
        at_cut = writers.count()
        # The cut-off follower stops serving and its client is disconnected.
        _until(lambda: e.mode(cut) is None, STOP_SERVING_TIMEOUT_S, "s%d stops serving" % cut)
        stopped_after = time.monotonic() - cut_at
        assert "not currently serving" in e[cut].four_letter("srvr", timeout=2.0)
        _until(lambda: KazooState.SUSPENDED in reader_states, STOP_SERVING_TIMEOUT_S, "s%d's client is cut" % cut)
        # Meanwhile the majority, under the same leader, acknowledges writes.
        writers.wait_for(at_cut + 60, PROGRESS_TIMEOUT_S, "writes acknowledged by the majority during the cut")
        assert e.mode(leader) == "leader" and e.mode(other) == "follower"
        assert e.mode(cut) is None, "the cut-off follower serves again before the heal"
        during = writers.count() - at_cut

        offset = _log_offset(e[leader])
        e.heal()
        healed_at = time.monotonic()
        _until(lambda: e.mode(cut) == "follower", REJOIN_TIMEOUT_S, "s%d rejoins as a follower" % cut)
        rejoined_after = time.monotonic() - healed_at
        assert e.mode(leader) == "leader", "the healed follower disturbed the leader"
        writers.wait_for(writers.count() + 30, PROGRESS_TIMEOUT_S, "writes after the heal")
    finally:
        writers.stop()
        if reader is not None:
            _close(reader)

    acked = writers.acknowledged()
    if TARGET == "rzk":
        diff = _log_lines_since(e[leader], offset, "syncing a learner by DIFF", " learner=%d " % cut)
        assert diff, "s%d did not sync s%d by DIFF after the heal:\n%s" % (leader, cut, e.log_tails())
    # The healed follower serves every acknowledged write, as the others do.
    _assert_all_agree(e, "/minority", acked)
    print(
        "\nfollower cut off (%s): s%d stopped serving %.1f s after the cut, rejoined %.1f s after "
        "the heal; %d writes acknowledged during the cut, %d in all"
        % (how, cut, stopped_after, rejoined_after, during, len(acked))
    )
