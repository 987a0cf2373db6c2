"""kazoo recipes as smoke tests: they combine sequential ephemerals, child and
data watches, versioned writes and multi the way applications do."""

import threading

from kazoo.exceptions import ConnectionClosedError
from kazoo.recipe.cache import TreeCache, TreeEvent

from waiting import wait_until


def test_lock_mutual_exclusion(zk_factory):
    a = zk_factory()
    b = zk_factory()
    lock_a = a.Lock("/locks/l", "a")
    lock_b = b.Lock("/locks/l", "b")
    assert lock_a.acquire(timeout=10)
    assert lock_b.acquire(blocking=False) is False
    assert lock_b.contenders() == ["a"]
    lock_a.release()
    assert lock_b.acquire(timeout=10)
    assert lock_a.contenders() == ["b"]
    lock_b.release()
    assert a.get_children("/locks/l") == []


def test_lock_is_released_when_holder_session_closes(zk_factory):
    a = zk_factory()
    b = zk_factory()
    assert a.Lock("/locks/l", "a").acquire(timeout=10)
    waiter = b.Lock("/locks/l", "b")
    got = threading.Event()

    def take():
        if waiter.acquire(timeout=30):
            got.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    wait_until(lambda: len(b.get_children("/locks/l")) == 2, message="waiter queued")
    assert not got.is_set()
    a.stop()
    assert got.wait(30)
    t.join(10)
    waiter.release()


def test_lock_counts_under_contention(zk_factory):
    clients = [zk_factory() for _ in range(3)]
    clients[0].create("/count", b"0")
    errors = []

    def worker(client, ident):
        try:
            lock = client.Lock("/locks/c", ident)
            for _ in range(10):
                with lock:
                    value = int(client.get("/count")[0])
                    client.set("/count", b"%d" % (value + 1))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c, "w%d" % i), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert clients[0].get("/count")[0] == b"30"


def test_election(zk_factory):
    clients = [zk_factory() for _ in range(3)]
    leaders = []
    lock = threading.Lock()
    release = threading.Event()

    def lead(name):
        with lock:
            leaders.append(name)
        release.wait(30)

    def run(election, name):
        try:
            election.run(lead, name)
        except ConnectionClosedError:
            pass  # the stopped leader's thread: its client is gone, as intended

    elections = [c.Election("/election", "node%d" % i) for i, c in enumerate(clients)]
    threads = [threading.Thread(target=run, args=(e, "node%d" % i), daemon=True) for i, e in enumerate(elections)]
    for t in threads:
        t.start()
    wait_until(lambda: len(leaders) == 1 and len(elections[0].contenders()) == 3, message="one leader, 3 contenders")
    first = leaders[0]
    assert elections[0].contenders()[0] == first
    # the leader's session goes away: someone else leads
    idx = int(first[-1])
    elections[idx].cancel()
    clients[idx].stop()
    release.set()
    wait_until(lambda: len(leaders) >= 2, message="a second leader")
    assert leaders[1] != first
    for i, e in enumerate(elections):
        if i != idx:
            e.cancel()


def test_counter(zk_factory):
    a = zk_factory()
    b = zk_factory()
    counter = a.Counter("/counter")
    counter += 5
    counter -= 2
    assert counter.value == 3
    errors = []

    def bump(client):
        try:
            c = client.Counter("/counter")
            for _ in range(20):
                c += 1
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=bump, args=(c,), daemon=True) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert a.Counter("/counter").value == 43


def test_barrier(zk_factory):
    a = zk_factory()
    b = zk_factory()
    barrier = a.Barrier("/barrier")
    barrier.create()
    assert b.Barrier("/barrier").wait(timeout=0.2) is False
    passed = threading.Event()
    t = threading.Thread(target=lambda: b.Barrier("/barrier").wait(timeout=30) and passed.set(), daemon=True)
    t.start()
    barrier.remove()
    assert passed.wait(30)
    t.join(10)


def test_double_barrier(zk_factory):
    clients = [zk_factory() for _ in range(2)]
    entered = []

    def member(client, name):
        db = client.DoubleBarrier("/dbarrier", 2, identifier=name)
        db.enter()
        entered.append(name)
        db.leave()

    threads = [threading.Thread(target=member, args=(c, "m%d" % i), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(entered) == ["m0", "m1"]


def test_queue_fifo_and_priority(zk_factory):
    producer = zk_factory()
    consumer = zk_factory()
    q = producer.Queue("/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=10)
    assert len(q) == 4
    cq = consumer.Queue("/queue")
    assert [cq.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert cq.get() is None


def test_locking_queue(zk_factory):
    producer = zk_factory()
    consumer = zk_factory()
    q = producer.LockingQueue("/lqueue")
    q.put(b"a")
    q.put_all([b"b", b"c"])
    cq = consumer.LockingQueue("/lqueue")
    assert cq.get(timeout=10) == b"a"
    assert cq.holds_lock()
    assert cq.consume()
    assert cq.get(timeout=10) == b"b"
    assert cq.release()  # not consumed: goes back
    assert cq.get(timeout=10) == b"b"
    assert cq.consume()
    assert len(cq) == 1


def test_party(zk_factory):
    clients = [zk_factory() for _ in range(3)]
    parties = [c.Party("/party", "member%d" % i) for i, c in enumerate(clients)]
    for p in parties:
        p.join()
    assert sorted(parties[0]) == ["member0", "member1", "member2"]
    assert len(parties[1]) == 3
    parties[1].leave()
    clients[2].stop()  # an ephemeral member vanishes with its session
    assert sorted(parties[0]) == ["member0"]


def test_shallow_party(zk_factory):
    a = zk_factory()
    p = a.ShallowParty("/sparty", "solo")
    p.join()
    assert list(p) == ["solo"]
    p.leave()
    assert len(p) == 0


def test_semaphore(zk_factory):
    clients = [zk_factory() for _ in range(3)]
    sems = [c.Semaphore("/sem", identifier="s%d" % i, max_leases=2) for i, c in enumerate(clients)]
    assert sems[0].acquire(timeout=10)
    assert sems[1].acquire(timeout=10)
    assert sems[2].acquire(blocking=False) is False
    assert sorted(sems[2].lease_holders()) == ["s0", "s1"]
    sems[0].release()
    assert sems[2].acquire(timeout=10)
    sems[1].release()
    sems[2].release()


def test_tree_cache(zk_factory):
    a = zk_factory()
    writer = zk_factory()
    writer.create("/tc/x", b"1", makepath=True)
    events = []
    cache = TreeCache(a, "/tc")
    cache.listen(lambda event: events.append(event))
    cache.start()
    try:
        wait_until(lambda: any(e.event_type == TreeEvent.INITIALIZED for e in events))
        assert cache.get_data("/tc/x").data == b"1"
        writer.create("/tc/y/z", b"deep", makepath=True)
        wait_until(lambda: cache.get_data("/tc/y/z") is not None and cache.get_data("/tc/y/z").data == b"deep")
        writer.set("/tc/x", b"2")
        wait_until(lambda: cache.get_data("/tc/x").data == b"2")
        writer.delete("/tc/x")
        wait_until(lambda: cache.get_data("/tc/x") is None)
        assert sorted(cache.get_children("/tc")) == ["y"]
    finally:
        cache.close()
