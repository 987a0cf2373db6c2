import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.proto.AddWatchRequest;
import org.apache.zookeeper.proto.CheckWatchesRequest;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.GetChildrenRequest;
import org.apache.zookeeper.proto.GetDataRequest;
import org.apache.zookeeper.proto.RemoveWatchesRequest;
import org.apache.zookeeper.proto.WatcherEvent;

/**
 * Client compatibility checks: java ClientCompat HOST:PORT [checkNameSubstring...]
 *
 * Every check prints "PASS name" or "FAIL name: reason"; "INFO name: ..." lines
 * record observed values. Exit status is 1 if any check failed. All checks work
 * below a fresh, unique base path, so the program can be rerun on one server.
 */
public final class ClientCompat {
    static final int SESSION_TIMEOUT_MS = 30_000;
    static final long CHECK_TIMEOUT_MS = 30_000;
    /** All checks together; later checks are reported as not run once it is spent. */
    static final long TOTAL_BUDGET_MS = Long.getLong("clientcompat.budgetMs", 90_000);
    static final byte[] EMPTY = new byte[0];

    static String hosts;
    static String base;
    static final List<String> failed = Collections.synchronizedList(new ArrayList<>());
    static final List<ZooKeeper> openClients = Collections.synchronizedList(new ArrayList<>());

    interface Body {
        void run() throws Exception;
    }

    // ------------------------------------------------------------------ helpers

    static final class CheckFailed extends RuntimeException {
        CheckFailed(String msg) {
            super(msg);
        }
    }

    static void expect(boolean cond, String msg) {
        if (!cond) {
            throw new CheckFailed(msg);
        }
    }

    static void expectEq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new CheckFailed(what + ": expected <" + expected + "> got <" + actual + ">");
        }
    }

    static void info(String check, String msg) {
        System.out.println("INFO " + check + ": " + msg.replace("\n", " "));
    }

    static String utf8(byte[] b) {
        return b == null ? "null" : new String(b, StandardCharsets.UTF_8);
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    static String statStr(Stat s) {
        if (s == null) {
            return "null";
        }
        return "{czxid=" + hex(s.getCzxid()) + " mzxid=" + hex(s.getMzxid()) + " pzxid=" + hex(s.getPzxid())
                + " ctime=" + s.getCtime() + " mtime=" + s.getMtime() + " version=" + s.getVersion()
                + " cversion=" + s.getCversion() + " aversion=" + s.getAversion()
                + " ephemeralOwner=" + hex(s.getEphemeralOwner()) + " dataLength=" + s.getDataLength()
                + " numChildren=" + s.getNumChildren() + "}";
    }

    /** Runs body and returns the KeeperException code it threw, or OK. */
    static Code codeOf(Body body) throws Exception {
        try {
            body.run();
            return Code.OK;
        } catch (KeeperException e) {
            return e.code();
        }
    }

    static void expectCode(Code expected, Body body, String what) throws Exception {
        Code got = codeOf(body);
        if (got != expected) {
            throw new CheckFailed(what + ": expected " + expected + " (" + expected.intValue() + ") got " + got
                    + " (" + got.intValue() + ")");
        }
    }

    /** Polls cond every 50 ms until true or the deadline passes. */
    static boolean waitFor(long timeoutMs, java.util.concurrent.Callable<Boolean> cond) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (true) {
            if (cond.call()) {
                return true;
            }
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(50);
        }
    }

    /** A watcher that queues every node event (state-only events are dropped). */
    static final class Events implements Watcher {
        final LinkedBlockingQueue<WatchedEvent> queue = new LinkedBlockingQueue<>();

        @Override
        public void process(WatchedEvent e) {
            if (e.getType() != EventType.None) {
                queue.add(e);
            }
        }

        WatchedEvent next(long timeoutMs) throws InterruptedException {
            return queue.poll(timeoutMs, TimeUnit.MILLISECONDS);
        }

        WatchedEvent expectNext(EventType type, String path, String what) throws InterruptedException {
            WatchedEvent e = next(10_000);
            expect(e != null, what + ": no event within 10 s (wanted " + type + " " + path + ")");
            expect(e.getType() == type && path.equals(e.getPath()),
                    what + ": wanted " + type + " " + path + " got " + e.getType() + " " + e.getPath());
            return e;
        }

        void expectNone(long ms, String what) throws InterruptedException {
            WatchedEvent e = next(ms);
            expect(e == null, what + ": unexpected event " + (e == null ? "" : e.getType() + " " + e.getPath()));
        }
    }

    static ZooKeeper connect() throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, SESSION_TIMEOUT_MS, e -> {
            if (e.getState() == KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        openClients.add(zk);
        if (!connected.await(15, TimeUnit.SECONDS)) {
            // Closing an unconnected client can block; do it in the background.
            Thread closer = new Thread(() -> closeQuietly(zk), "close-unconnected");
            closer.setDaemon(true);
            closer.start();
            throw new CheckFailed("could not connect to " + hosts + " within 15 s");
        }
        return zk;
    }

    static void closeQuietly(ZooKeeper zk) {
        if (zk == null) {
            return;
        }
        try {
            zk.close(5_000);
        } catch (Exception ignored) {
        }
        openClients.remove(zk);
    }

    /** Whether every server of the connect string (one, or an ensemble's) accepts TCP. */
    static boolean reachable() {
        for (String host : hosts.split(",")) {
            int colon = host.lastIndexOf(':');
            try (java.net.Socket sock = new java.net.Socket()) {
                sock.connect(new java.net.InetSocketAddress(host.substring(0, colon),
                        Integer.parseInt(host.substring(colon + 1))), 3_000);
            } catch (Exception e) {
                return false;
            }
        }
        return true;
    }

    static CuratorFramework curator() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(SESSION_TIMEOUT_MS)
                .connectionTimeoutMs(15_000)
                .retryPolicy(new RetryNTimes(3, 200))
                .build();
        c.start();
        if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) {
            c.close();
            throw new CheckFailed("Curator could not connect within 15 s");
        }
        return c;
    }

    static String digest(String idPassword) throws Exception {
        MessageDigest sha1 = MessageDigest.getInstance("SHA1");
        String user = idPassword.substring(0, idPassword.indexOf(':'));
        return user + ":" + Base64.getEncoder().encodeToString(sha1.digest(bytes(idPassword)));
    }

    /** ZooKeeper's own sane-ness rules for the Stat of a node just written. */
    static void expectSaneStat(Stat s, long nowMs, String what) {
        expect(s != null, what + ": stat is null");
        expect(s.getCzxid() > 0, what + ": czxid " + s.getCzxid());
        expect(s.getMzxid() >= s.getCzxid(), what + ": mzxid < czxid");
        expect(s.getPzxid() >= s.getCzxid(), what + ": pzxid < czxid");
        expect(Math.abs(s.getCtime() - nowMs) < 60_000, what + ": ctime " + s.getCtime() + " far from now " + nowMs);
        expect(s.getMtime() >= s.getCtime(), what + ": mtime < ctime");
        expect(s.getVersion() >= 0 && s.getCversion() >= 0 && s.getAversion() >= 0, what + ": negative version");
        expect(s.getNumChildren() >= 0 && s.getDataLength() >= 0, what + ": negative counts");
    }

    // ------------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java ClientCompat HOST:PORT [only-checks-containing...]");
            System.exit(2);
        }
        hosts = args[0];
        List<String> only = Arrays.asList(args).subList(1, args.length);
        base = "/clientcompat-" + Long.toHexString(System.currentTimeMillis()) + "-"
                + Integer.toHexString((int) (Math.random() * 0x10000));

        Map<String, Body> checks = new java.util.LinkedHashMap<>();
        checks.put("01_connect_session", ClientCompat::checkConnect);
        checks.put("02_create2_stat", ClientCompat::checkCreate2);
        checks.put("03_create_modes", ClientCompat::checkCreateModes);
        checks.put("04_create_errors", ClientCompat::checkCreateErrors);
        checks.put("05_zxid_accounting", ClientCompat::checkZxidAccounting);
        checks.put("06_container", ClientCompat::checkContainer);
        checks.put("07_ttl", ClientCompat::checkTtl);
        checks.put("08_ttl_client_validation", ClientCompat::checkTtlClientValidation);
        checks.put("09_raw_create_matrix", ClientCompat::checkRawCreateMatrix);
        checks.put("10_get_ephemerals", ClientCompat::checkGetEphemerals);
        checks.put("11_get_all_children_number", ClientCompat::checkAllChildrenNumber);
        checks.put("12_exists_watch", ClientCompat::checkExistsWatch);
        checks.put("13_get_children_stat", ClientCompat::checkGetChildrenStat);
        checks.put("14_data_child_watches", ClientCompat::checkDataChildWatches);
        checks.put("15_add_watch_persistent", ClientCompat::checkPersistentWatch);
        checks.put("16_add_watch_persistent_recursive", ClientCompat::checkRecursiveWatch);
        checks.put("17_remove_watches", ClientCompat::checkRemoveWatches);
        checks.put("18_raw_check_and_remove_watches", ClientCompat::checkRawCheckWatches);
        checks.put("19_multi_success", ClientCompat::checkMultiSuccess);
        checks.put("20_multi_failure", ClientCompat::checkMultiFailure);
        checks.put("21_multi_read", ClientCompat::checkMultiRead);
        checks.put("22_set_data_delete_versions", ClientCompat::checkVersions);
        checks.put("23_acl_digest", ClientCompat::checkAcl);
        checks.put("24_who_am_i", ClientCompat::checkWhoAmI);
        checks.put("25_sync", ClientCompat::checkSync);
        checks.put("26_get_config", ClientCompat::checkGetConfig);
        checks.put("27_zookeeper_system_nodes", ClientCompat::checkSystemNodes);
        checks.put("28_ephemeral_session_close", ClientCompat::checkEphemeralClose);
        checks.put("29_curator_mutex", ClientCompat::checkCuratorMutex);
        checks.put("30_curator_leader_latch", ClientCompat::checkLeaderLatch);
        checks.put("31_curator_cache", ClientCompat::checkCuratorCache);

        System.exit(runChecks(checks, only));
    }

    /**
     * Creates the base node, runs the selected checks (each with a deadline) and
     * prints PASS/FAIL lines and a SUMMARY. Returns the process exit status.
     */
    static int runChecks(Map<String, Body> checks, List<String> only) throws Exception {
        long t0 = System.nanoTime();
        if (!reachable()) {
            System.out.println("FAIL setup: server " + hosts + " not reachable (TCP connect failed)");
            return 1;
        }
        // The base node every check works under.
        try {
            ZooKeeper setup = connect();
            setup.create(base, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            closeQuietly(setup);
        } catch (Exception e) {
            System.out.println("FAIL setup: could not create the base node " + base + ": " + e);
            return 1;
        }

        ExecutorService exec = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "check");
            t.setDaemon(true);
            return t;
        });
        int run = 0;
        for (Map.Entry<String, Body> c : checks.entrySet()) {
            String name = c.getKey();
            if (!only.isEmpty() && only.stream().noneMatch(name::contains)) {
                continue;
            }
            run++;
            long spent = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            if (spent > TOTAL_BUDGET_MS) {
                failed.add(name);
                System.out.println("FAIL " + name + ": not run, the total budget of " + TOTAL_BUDGET_MS
                        + " ms is spent");
                continue;
            }
            if (!reachable()) {
                failed.add(name);
                System.out.println("FAIL " + name + ": server " + hosts + " not reachable (TCP connect failed)");
                continue;
            }
            long start = System.nanoTime();
            Future<?> f = exec.submit(() -> {
                c.getValue().run();
                return null;
            });
            String failure = null;
            try {
                f.get(Math.max(1_000, Math.min(CHECK_TIMEOUT_MS, TOTAL_BUDGET_MS - spent)), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                f.cancel(true);
                failure = "timed out after " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) + " ms";
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                failure = cause instanceof CheckFailed ? cause.getMessage() : cause.toString();
                if (!(cause instanceof CheckFailed)) {
                    StackTraceElement[] st = cause.getStackTrace();
                    for (int i = 0; i < Math.min(4, st.length); i++) {
                        failure += " @" + st[i];
                    }
                }
            }
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            if (failure == null) {
                System.out.println("PASS " + name + " (" + ms + " ms)");
            } else {
                failed.add(name);
                System.out.println("FAIL " + name + ": " + failure.replace('\n', ' '));
            }
            System.out.flush();
        }
        synchronized (openClients) {
            for (ZooKeeper zk : new ArrayList<>(openClients)) {
                try {
                    zk.close(2_000);
                } catch (Exception ignored) {
                }
            }
        }
        long total = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        System.out.println("SUMMARY " + (run - failed.size()) + "/" + run + " passed in " + total + " ms"
                + (failed.isEmpty() ? "" : "; failed: " + failed));
        System.out.flush();
        exec.shutdownNow();
        return failed.isEmpty() && run > 0 ? 0 : 1;
    }

    // ------------------------------------------------------------------ checks

    static void checkConnect() throws Exception {
        ZooKeeper zk = connect();
        try {
            expect(zk.getSessionId() != 0, "session id is 0");
            expectEq(SESSION_TIMEOUT_MS, zk.getSessionTimeout(), "negotiated session timeout");
            expectEq(16, zk.getSessionPasswd().length, "session password length");
            info("01_connect_session", "sessionId=" + hex(zk.getSessionId()) + " timeout=" + zk.getSessionTimeout());
        } finally {
            closeQuietly(zk);
        }
        // A raw connection asking for a tiny timeout gets the minimum (2 * tickTime).
        try (RawClient raw = new RawClient(hosts, 100)) {
            info("01_connect_session", "requested 100 ms -> negotiated " + raw.negotiatedTimeout);
            expect(raw.negotiatedTimeout > 100, "timeout below minSessionTimeout was not raised");
        }
        try (RawClient raw = new RawClient(hosts, 10_000_000)) {
            info("01_connect_session", "requested 10000000 ms -> negotiated " + raw.negotiatedTimeout);
            expect(raw.negotiatedTimeout < 10_000_000, "timeout above maxSessionTimeout was not lowered");
        }
    }

    static void checkCreate2() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/create2";
            Stat dirStat = new Stat();
            long now = System.currentTimeMillis();
            expectEq(dir, zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, dirStat), "created path");
            expectSaneStat(dirStat, now, "dir");

            Stat s = new Stat();
            String p = zk.create(dir + "/n", bytes("hello"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, s);
            expectEq(dir + "/n", p, "created path");
            info("02_create2_stat", "stat " + statStr(s));
            expectSaneStat(s, now, "child");
            expectEq(s.getCzxid(), s.getMzxid(), "mzxid == czxid on create");
            expectEq(s.getCzxid(), s.getPzxid(), "pzxid == czxid on create");
            expectEq(s.getCtime(), s.getMtime(), "mtime == ctime on create");
            expectEq(0, s.getVersion(), "version");
            expectEq(0, s.getCversion(), "cversion");
            expectEq(0, s.getAversion(), "aversion");
            expectEq(0L, s.getEphemeralOwner(), "ephemeralOwner");
            expectEq(5, s.getDataLength(), "dataLength");
            expectEq(0, s.getNumChildren(), "numChildren");
            expect(s.getCzxid() > dirStat.getCzxid(), "zxid did not grow");

            Stat again = zk.exists(dir + "/n", false);
            expectEq(s, again, "exists() stat equals create2 stat");

            Stat parent = zk.exists(dir, false);
            expectEq(1, parent.getNumChildren(), "parent numChildren");
            expectEq(1, parent.getCversion(), "parent cversion");
            expectEq(s.getCzxid(), parent.getPzxid(), "parent pzxid = child czxid");
            expectEq(dirStat.getMzxid(), parent.getMzxid(), "parent mzxid unchanged by child create");
            expectEq(0, parent.getVersion(), "parent version unchanged by child create");

            // Ephemeral via create2: owner is our session.
            Stat es = new Stat();
            zk.create(dir + "/e", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL, es);
            expectEq(zk.getSessionId(), es.getEphemeralOwner(), "ephemeralOwner of ephemeral");
            expectEq(0, es.getDataLength(), "dataLength of empty node");

            // Null data is stored as an empty value.
            Stat ns = new Stat();
            zk.create(dir + "/null", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, ns);
            expectEq(0, ns.getDataLength(), "dataLength of null data");
            // null and empty data are different on the wire: a node created (or set) with
            // null data answers getData with a null buffer (length -1), dataLength 0.
            byte[] got = zk.getData(dir + "/null", false, null);
            expect(got == null, "getData of a node created with null data: expected null, got byte["
                    + (got == null ? 0 : got.length) + "]");
            zk.create(dir + "/empty", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            byte[] empty = zk.getData(dir + "/empty", false, null);
            expect(empty != null && empty.length == 0, "getData of a node created with empty data: byte[0]");
            zk.setData(dir + "/empty", null, -1);
            expect(zk.getData(dir + "/empty", false, null) == null, "getData after setData(null) is null");
            zk.setData(dir + "/null", EMPTY, -1);
            byte[] nowEmpty = zk.getData(dir + "/null", false, null);
            expect(nowEmpty != null && nowEmpty.length == 0, "getData after setData(empty) is byte[0]");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkCreateModes() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/modes";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String p = zk.create(dir + "/p", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectEq(dir + "/p", p, "persistent path");
            // parent cversion is now 1 -> next sequence number is 1
            String s1 = zk.create(dir + "/s-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            expectEq(dir + "/s-0000000001", s1, "sequential name uses parent cversion, 10 digits");
            String e1 = zk.create(dir + "/e-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
            expectEq(dir + "/e-0000000002", e1, "ephemeral sequential name");
            String e = zk.create(dir + "/e", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            expectEq(dir + "/e", e, "ephemeral path");
            // The sequence number is the parent's count of child *creations*; deletes do not
            // advance it. The client-visible cversion is 2 * creations - numChildren
            // (creations + deletions), so after a delete the two differ.
            zk.delete(dir + "/p", -1);
            Stat ds = zk.exists(dir, false);
            expectEq(5, ds.getCversion(), "visible cversion after 4 creates and 1 delete");
            String s2 = zk.create(dir + "/s-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            expectEq(dir + "/s-0000000004", s2, "sequence after a delete = number of creates so far");
            expectEq(6, zk.exists(dir, false).getCversion(), "visible cversion after 5 creates and 1 delete");
            // a path ending in "/" gets just the number as its name
            zk.create(dir + "/sub", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String s3 = zk.create(dir + "/sub/", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL);
            expectEq(dir + "/sub/0000000000", s3, "sequential child of path ending in /");
            String c = zk.create(dir + "/c", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            expectEq(dir + "/c", c, "container path");
            Stat cs = zk.exists(dir + "/c", false);
            info("03_create_modes", "container stat " + statStr(cs));
            // Internally a container is marked by ephemeralOwner 0x8000000000000000, but clients see 0.
            expectEq(0L, cs.getEphemeralOwner(), "client-visible container ephemeralOwner");
            Stat ts = new Stat();
            String t = zk.create(dir + "/t", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, ts, 60_000);
            expectEq(dir + "/t", t, "ttl path");
            info("03_create_modes", "ttl(60000) stat " + statStr(ts));
            // Internally 0xFF << 56 | ttl; clients see 0.
            expectEq(0L, ts.getEphemeralOwner(), "client-visible TTL node ephemeralOwner");
            String st = zk.create(dir + "/st-", EMPTY, Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, new Stat(), 60_000);
            expect(st.matches(java.util.regex.Pattern.quote(dir + "/st-") + "\\d{10}"), "sequential ttl name " + st);
            List<String> kids = zk.getChildren(dir, false);
            Collections.sort(kids);
            info("03_create_modes", "children " + kids);
            expectEq(new TreeSet<>(Arrays.asList("c", "e", "e-0000000002", "s-0000000001", "s-0000000004", "sub", "t",
                    st.substring(dir.length() + 1))), new TreeSet<>(kids), "children");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkCreateErrors() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/errs";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectCode(Code.NODEEXISTS, () -> zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    "create existing");
            expectCode(Code.NONODE, () -> zk.create(dir + "/no/child", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    "create without parent");
            zk.create(dir + "/eph", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            expectCode(Code.NOCHILDRENFOREPHEMERALS,
                    () -> zk.create(dir + "/eph/child", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    "child of ephemeral");
            expectCode(Code.NOTEMPTY, () -> {
                zk.create(dir + "/full", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                zk.create(dir + "/full/x", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                zk.delete(dir + "/full", -1);
            }, "delete non-empty");
            expectCode(Code.NONODE, () -> zk.delete(dir + "/missing", -1), "delete missing");
            expectCode(Code.NONODE, () -> zk.getData(dir + "/missing", false, null), "getData missing");
            expectCode(Code.NONODE, () -> zk.setData(dir + "/missing", EMPTY, -1), "setData missing");
            expectCode(Code.NONODE, () -> zk.getChildren(dir + "/missing", false), "getChildren missing");
            expectCode(Code.NONODE, () -> zk.getACL(dir + "/missing", new Stat()), "getACL missing");
            expect(zk.exists(dir + "/missing", false) == null, "exists missing returns null");
            expectCode(Code.INVALIDACL, () -> zk.create(dir + "/emptyacl", EMPTY, new ArrayList<>(), CreateMode.PERSISTENT),
                    "create with empty ACL list");
            expectCode(Code.INVALIDACL, () -> zk.create(dir + "/creator", EMPTY, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT),
                    "CREATOR_ALL_ACL without any authenticated id");
            // The root cannot be deleted; "/zookeeper" is protected.
            Code rootDelete = codeOf(() -> zk.delete("/", -1));
            expectEq(Code.BADARGUMENTS, rootDelete, "delete /");
            Code zkDelete = codeOf(() -> zk.delete("/zookeeper", -1));
            expectEq(Code.BADARGUMENTS, zkDelete, "delete /zookeeper");
            expectCode(Code.BADARGUMENTS, () -> zk.delete("/zookeeper/config", -1), "delete /zookeeper/config");
            expectCode(Code.BADARGUMENTS, () -> zk.delete("/zookeeper/quota", -1), "delete /zookeeper/quota");
            // Client-side path validation: never reaches the server.
            for (String bad : new String[] {"noslash", "/trailing/", "/double//slash", "/dot/./x", "/dot/../x"}) {
                try {
                    zk.create(bad, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    throw new CheckFailed("client accepted bad path " + bad);
                } catch (IllegalArgumentException expected) {
                    // ok
                }
            }
        } finally {
            closeQuietly(zk);
        }
    }

    /**
     * Which requests consume a zxid. In Apache ZooKeeper every write request that
     * reaches PrepRequestProcessor gets a zxid, even when it fails (it is logged as
     * an error txn); reads, sync and failed client-side validation do not.
     */
    static void checkZxidAccounting() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/zxids";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat a = new Stat();
            zk.create(dir + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, a);
            zk.getData(dir + "/a", false, null);
            zk.getChildren(dir, false);
            codeOf(() -> zk.getData(dir + "/missing", false, null));
            Stat b = new Stat();
            zk.create(dir + "/b", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, b);
            expectEq(a.getCzxid() + 1, b.getCzxid(), "reads (also failing ones) consume no zxid");
            codeOf(() -> zk.create(dir + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            codeOf(() -> zk.setData(dir + "/missing", EMPTY, -1));
            codeOf(() -> zk.delete(dir + "/a", 42));
            Stat c = new Stat();
            zk.create(dir + "/c", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, c);
            info("05_zxid_accounting", "zxid gap across 3 failed writes: " + (c.getCzxid() - b.getCzxid()));
            expectEq(b.getCzxid() + 4, c.getCzxid(), "each failed write consumes one zxid");
            codeOf(() -> zk.multi(Arrays.asList(Op.check(dir + "/a", 9), Op.delete(dir + "/b", -1))));
            zk.multi(Arrays.asList(Op.create(dir + "/d", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.create(dir + "/e", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)));
            Stat d = zk.exists(dir + "/d", false);
            Stat e = zk.exists(dir + "/e", false);
            expectEq(c.getCzxid() + 2, d.getCzxid(), "a failed multi consumes one zxid; a multi one for all its ops");
            expectEq(d.getCzxid(), e.getCzxid(), "ops of one multi share the zxid");
            CountDownLatch synced = new CountDownLatch(1);
            zk.sync(dir, (rc, path, ctx) -> synced.countDown(), null);
            expect(synced.await(10, TimeUnit.SECONDS), "sync");
            Stat f = new Stat();
            zk.create(dir + "/f", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, f);
            expectEq(d.getCzxid() + 1, f.getCzxid(), "sync consumes no zxid");
            // A new session (createSession) and its close (closeSession) each take one zxid.
            ZooKeeper other = connect();
            closeQuietly(other);
            Stat g = new Stat();
            zk.create(dir + "/g", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, g);
            expectEq(f.getCzxid() + 3, g.getCzxid(), "createSession and closeSession consume one zxid each");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkContainer() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/containers";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String empty = dir + "/never-had-child";
            zk.create(empty, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            String c = dir + "/c";
            Stat cs = new Stat();
            zk.create(c, bytes("d"), Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER, cs);
            expectEq(0L, cs.getEphemeralOwner(), "client-visible container ephemeralOwner");
            zk.create(c + "/child1", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(c + "/child2", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            Thread.sleep(600); // three check intervals: a container with children stays
            expect(zk.exists(c, false) != null, "container with children was removed");
            zk.delete(c + "/child1", -1);
            Thread.sleep(600);
            expect(zk.exists(c, false) != null, "container with one child left was removed");
            Events ev = new Events();
            expect(zk.exists(c, ev) != null, "container vanished early");
            zk.delete(c + "/child2", -1);
            long t0 = System.nanoTime();
            boolean gone = waitFor(15_000, () -> zk.exists(c, false) == null);
            expect(gone, "container not removed within 15 s after its last child was deleted");
            info("06_container", "container removed " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0)
                    + " ms after its last child was deleted");
            ev.expectNext(EventType.NodeDeleted, c, "exists watch on container");
            Thread.sleep(600);
            expect(zk.exists(empty, false) != null, "a container that never had a child was removed");
            // A container may get children again while it exists; deleting the
            // container itself explicitly works like any other node.
            zk.create(empty + "/x", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.delete(empty + "/x", -1);
            expect(waitFor(15_000, () -> zk.exists(empty, false) == null), "second container not removed");
            // Sequential children and multi-level: container inside container.
            String outer = dir + "/outer";
            zk.create(outer, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            zk.create(outer + "/inner", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            zk.create(outer + "/inner/leaf", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.delete(outer + "/inner/leaf", -1);
            expect(waitFor(15_000, () -> zk.exists(outer, false) == null),
                    "nested containers not removed (inner, then outer)");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkTtl() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/ttl";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat s = new Stat();
            String t = zk.create(dir + "/t", bytes("x"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, s, 500);
            expectEq(dir + "/t", t, "ttl path");
            expectEq(0L, s.getEphemeralOwner(), "client-visible ephemeralOwner of ttl=500 node");
            String st = zk.create(dir + "/st-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
                    new Stat(), 500);
            expectEq(dir + "/st-0000000001", st, "sequential ttl name");
            // A TTL node with a child is kept.
            String withKid = dir + "/kept";
            zk.create(withKid, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 500);
            zk.create(withKid + "/kid", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            // A long TTL is kept.
            String longTtl = dir + "/long";
            zk.create(longTtl, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 3_600_000);
            long t0 = System.nanoTime();
            expect(waitFor(15_000, () -> zk.exists(t, false) == null), "ttl node not removed within 15 s");
            info("07_ttl", "ttl=500 node removed after " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0) + " ms");
            expect(waitFor(15_000, () -> zk.exists(st, false) == null), "sequential ttl node not removed within 15 s");
            Thread.sleep(600);
            expect(zk.exists(withKid, false) != null, "ttl node with a child was removed");
            expect(zk.exists(longTtl, false) != null, "ttl=1h node was removed");
            zk.delete(withKid + "/kid", -1);
            expect(waitFor(15_000, () -> zk.exists(withKid, false) == null),
                    "ttl node not removed after its child went");
            // Modifying a TTL node restarts its clock (mtime based).
            String touched = dir + "/touched";
            zk.create(touched, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 1_500);
            for (int i = 0; i < 6; i++) {
                Thread.sleep(500);
                expect(zk.setData(touched, bytes("v" + i), -1) != null, "touch");
            }
            expect(zk.exists(touched, false) != null, "ttl node removed although modified within its ttl");
            expect(waitFor(15_000, () -> zk.exists(touched, false) == null), "touched ttl node never removed");
            // A TTL in a multi.
            String inMulti = dir + "/multi";
            List<OpResult> r = zk.multi(Arrays.asList(
                    Op.create(inMulti, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, 500)));
            expectEq(inMulti, ((OpResult.CreateResult) r.get(0)).getPath(), "multi ttl create path");
            Stat ms = zk.exists(inMulti, false);
            expectEq(0L, ms.getEphemeralOwner(), "client-visible ephemeralOwner of ttl node from multi");
            expect(waitFor(15_000, () -> zk.exists(inMulti, false) == null), "ttl node from multi not removed");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkTtlClientValidation() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/ttlbad";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            long[] badTtls = {0, -1, 1L << 40};
            for (long ttl : badTtls) {
                try {
                    zk.create(dir + "/x", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), ttl);
                    throw new CheckFailed("Java client accepted ttl " + ttl);
                } catch (IllegalArgumentException expected) {
                    info("08_ttl_client_validation", "ttl " + ttl + " -> IllegalArgumentException: " + expected.getMessage());
                }
            }
            // The largest legal ttl is 2^40 - 1.
            Stat s = new Stat();
            zk.create(dir + "/max", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, s, (1L << 40) - 1);
            expectEq(0L, s.getEphemeralOwner(), "client-visible ephemeralOwner of max-ttl node");
            try {
                zk.create(dir + "/y", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL, new Stat(), 1000);
                throw new CheckFailed("Java client accepted a ttl with EPHEMERAL");
            } catch (IllegalArgumentException expected) {
                info("08_ttl_client_validation", "EPHEMERAL with ttl -> IllegalArgumentException: " + expected.getMessage());
            }
        } finally {
            closeQuietly(zk);
        }
    }

    /** create/create2/createContainer/createTTL with every flag, sent raw. */
    static void checkRawCreateMatrix() throws Exception {
        String dir = base + "/raw";
        ZooKeeper zk = connect();
        try {
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } finally {
            closeQuietly(zk);
        }
        // expected error codes, observed on Apache ZooKeeper 3.8 with extendedTypesEnabled=true
        Map<String, Integer> expected = new TreeMap<>();
        int[] opcodes = {ZooDefs.OpCode.create, ZooDefs.OpCode.create2, ZooDefs.OpCode.createContainer,
                ZooDefs.OpCode.createTTL};
        String[] opNames = {"create", "create2", "createContainer", "createTTL"};
        int[] flags = {0, 1, 2, 3, 4, 5, 6, 7, -1};
        long[] ttls = {1000, 0, -1, 1L << 40};
        Map<String, Integer> observed = new TreeMap<>();
        try (RawClient raw = new RawClient(hosts, 30_000)) {
            int n = 0;
            int createdSoFar = 0;
            for (int o = 0; o < opcodes.length; o++) {
                for (int f : flags) {
                    long[] ttlList = opcodes[o] == ZooDefs.OpCode.createTTL ? ttls : new long[] {0};
                    for (long ttl : ttlList) {
                        if (opcodes[o] == ZooDefs.OpCode.createTTL && ttl < 0 && f >= 0 && f <= 4) {
                            // Apache ZooKeeper 3.8.0 passes this in PrepRequestProcessor and then
                            // dies in SyncThread ("ttl must be positive"), exiting the JVM.
                            continue;
                        }
                        String path = dir + "/n" + (n++);
                        org.apache.jute.Record req = opcodes[o] == ZooDefs.OpCode.createTTL
                                ? new CreateTTLRequest(path, EMPTY, Ids.OPEN_ACL_UNSAFE, f, ttl)
                                : new CreateRequest(path, EMPTY, Ids.OPEN_ACL_UNSAFE, f);
                        RawClient.Reply r = raw.call(opcodes[o], req);
                        String key = opNames[o] + " flags=" + f
                                + (opcodes[o] == ZooDefs.OpCode.createTTL ? " ttl=" + ttl : "");
                        observed.put(key, r.err);
                        if (r.err == 0) {
                            // every create reply starts with the created path; the flags
                            // (2, 3, 6) alone decide the sequence suffix
                            String created = r.body.readString("path");
                            boolean sequential = f == 2 || f == 3 || f == 6;
                            // the sequence number is the count of children created so far
                            expectEq(sequential ? path + String.format("%010d", createdSoFar) : path, created,
                                    key + " created path");
                            createdSoFar++;
                        }
                    }
                }
            }
            RawClient.Reply gc = raw.call(ZooDefs.OpCode.getChildren, new GetChildrenRequest(dir, false));
            expectEq(0, gc.err, "raw getChildren");
        }
        // The expectations (Apache ZooKeeper 3.8.0, extended types enabled):
        //   createTTL only accepts flags 5 (PERSISTENT_WITH_TTL) and 6 (PERSISTENT_SEQUENTIAL_WITH_TTL)
        //   with 0 < ttl <= 2^40-1; everything else is BADARGUMENTS (-8).
        //   create/create2/createContainer accept flags 0..4 and reject the TTL flags 5, 6
        //   and unknown flags with BADARGUMENTS. The opcode, not the flag, decides what is
        //   made: create/create2 with flag 4 make a plain persistent node, createContainer
        //   with flags 0..3 makes a container (never ephemeral; 2 and 3 add a sequence).
        for (String op : opNames) {
            for (int f : flags) {
                if (op.equals("createTTL")) {
                    for (long ttl : ttls) {
                        if (ttl < 0 && f >= 0 && f <= 4) {
                            continue;
                        }
                        boolean ok = (f == 5 || f == 6) && ttl == 1000;
                        expected.put(op + " flags=" + f + " ttl=" + ttl, ok ? 0 : -8);
                    }
                } else {
                    expected.put(op + " flags=" + f, f >= 0 && f <= 4 ? 0 : -8);
                }
            }
        }
        List<String> mismatches = new ArrayList<>();
        for (Map.Entry<String, Integer> e : observed.entrySet()) {
            info("09_raw_create_matrix", e.getKey() + " -> " + e.getValue());
            Integer want = expected.get(e.getKey());
            if (want == null || !want.equals(e.getValue())) {
                mismatches.add(e.getKey() + " expected " + want + " got " + e.getValue());
            }
        }
        expect(mismatches.isEmpty(), "raw create results differ: " + mismatches);
    }

    static void checkGetEphemerals() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper other = connect();
        try {
            String dir = base + "/ephs";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectEq(Collections.emptyList(), zk.getEphemerals(), "no ephemerals yet");
            zk.create(dir + "/a1", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            zk.create(dir + "/a2", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            zk.create(dir + "/b1", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            String seq = zk.create(dir + "/a-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
            zk.create(dir + "/persistent", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            other.create(dir + "/other", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);

            List<String> all = zk.getEphemerals();
            info("10_get_ephemerals", "getEphemerals() -> " + all);
            expectEq(new TreeSet<>(Arrays.asList(dir + "/a1", dir + "/a2", dir + "/b1", seq)), new TreeSet<>(all),
                    "getEphemerals() of this session");
            expectEq(4, all.size(), "no duplicates");
            List<String> a = zk.getEphemerals(dir + "/a");
            info("10_get_ephemerals", "getEphemerals(dir/a) -> " + a);
            expectEq(new TreeSet<>(Arrays.asList(dir + "/a1", dir + "/a2", seq)), new TreeSet<>(a),
                    "prefix is a plain string prefix");
            expectEq(new TreeSet<>(all), new TreeSet<>(zk.getEphemerals("/")), "prefix /");
            expectEq(Collections.emptyList(), zk.getEphemerals(dir + "/zzz"), "prefix matching nothing");
            expectEq(Collections.singletonList(dir + "/other"), other.getEphemerals(), "other session's ephemerals");
            zk.delete(dir + "/a1", -1);
            expectEq(new TreeSet<>(Arrays.asList(dir + "/a2", seq)), new TreeSet<>(zk.getEphemerals(dir + "/a")),
                    "after delete");
        } finally {
            closeQuietly(zk);
            closeQuietly(other);
        }
    }

    static void checkAllChildrenNumber() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/count";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectEq(0, zk.getAllChildrenNumber(dir), "empty");
            zk.create(dir + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/a/b", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/a/b/c", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/d", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            expectEq(4, zk.getAllChildrenNumber(dir), "all descendants, not counting the node itself");
            expectEq(2, zk.getAllChildrenNumber(dir + "/a"), "subtree");
            expectEq(0, zk.getAllChildrenNumber(dir + "/a/b/c"), "leaf");
            int zkCount = zk.getAllChildrenNumber("/zookeeper");
            info("11_get_all_children_number", "/zookeeper -> " + zkCount + ", / -> " + zk.getAllChildrenNumber("/"));
            expectEq(2, zkCount, "/zookeeper has config and quota");
            expectCode(Code.NONODE, () -> zk.getAllChildrenNumber(dir + "/missing"), "missing path");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkExistsWatch() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper writer = connect();
        try {
            String p = base + "/existswatch";
            Events ev = new Events();
            expect(zk.exists(p, ev) == null, "should not exist");
            writer.create(p, bytes("a"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            WatchedEvent e = ev.expectNext(EventType.NodeCreated, p, "exists watch on missing node");
            expectEq(KeeperState.SyncConnected, e.getState(), "event state");
            // one-shot: a second change does not fire without re-registering
            writer.setData(p, bytes("b"), -1);
            ev.expectNone(300, "one-shot exists watch fired twice");
            expect(zk.exists(p, ev) != null, "exists");
            writer.setData(p, bytes("c"), -1);
            ev.expectNext(EventType.NodeDataChanged, p, "exists watch on existing node");
            expect(zk.exists(p, ev) != null, "exists");
            writer.delete(p, -1);
            ev.expectNext(EventType.NodeDeleted, p, "exists watch, delete");
            // An exists watch on a missing node is not triggered by creating a child elsewhere.
            expect(zk.exists(p, ev) == null, "gone");
            writer.create(base + "/existswatch-sibling", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNone(300, "exists watch fired for a sibling");
            // Default watcher: exists(path, true) delivers to the session watcher.
        } finally {
            closeQuietly(zk);
            closeQuietly(writer);
        }
    }

    static void checkGetChildrenStat() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/kids";
            zk.create(dir, bytes("xyz"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            for (String k : new String[] {"b", "a", "c"}) {
                zk.create(dir + "/" + k, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            }
            zk.delete(dir + "/c", -1);
            Stat s = new Stat();
            List<String> kids = zk.getChildren(dir, false, s);
            info("13_get_children_stat", "children order as returned: " + kids + " stat " + statStr(s));
            expectEq(new TreeSet<>(Arrays.asList("a", "b")), new TreeSet<>(kids), "children");
            expectEq(2, s.getNumChildren(), "numChildren");
            expectEq(4, s.getCversion(), "cversion counts creates and deletes");
            expectEq(3, s.getDataLength(), "dataLength");
            expectEq(0, s.getVersion(), "version");
            expect(s.getPzxid() > s.getCzxid(), "pzxid advanced by child changes");
            expectEq(s, zk.exists(dir, false), "same stat as exists");
            List<String> none = zk.getChildren(dir + "/a", false, new Stat());
            expectEq(Collections.emptyList(), none, "leaf has no children");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkDataChildWatches() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper writer = connect();
        try {
            String dir = base + "/dcw";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events data = new Events();
            Events child = new Events();
            zk.getData(dir, data, null);
            zk.getChildren(dir, child);
            writer.create(dir + "/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            child.expectNext(EventType.NodeChildrenChanged, dir, "child watch on create");
            data.expectNone(300, "data watch fired on child create");
            writer.setData(dir, bytes("1"), -1);
            data.expectNext(EventType.NodeDataChanged, dir, "data watch");
            // Both watches on one node: deleting the node fires NodeDeleted to each.
            zk.getData(dir + "/k", data, null);
            zk.getChildren(dir + "/k", child);
            writer.delete(dir + "/k", -1);
            data.expectNext(EventType.NodeDeleted, dir + "/k", "data watch on delete");
            child.expectNext(EventType.NodeDeleted, dir + "/k", "child watch on delete");
            // Same watcher object registered twice for one path fires once.
            Events twice = new Events();
            zk.getData(dir, twice, null);
            zk.getData(dir, twice, null);
            writer.setData(dir, bytes("2"), -1);
            twice.expectNext(EventType.NodeDataChanged, dir, "watcher registered twice");
            twice.expectNone(300, "same watcher fired twice");
        } finally {
            closeQuietly(zk);
            closeQuietly(writer);
        }
    }

    static void checkPersistentWatch() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper writer = connect();
        try {
            String p = base + "/pw";
            Events ev = new Events();
            zk.addWatch(p, ev, AddWatchMode.PERSISTENT);
            writer.create(p, bytes("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNext(EventType.NodeCreated, p, "persistent: create");
            for (int i = 1; i <= 3; i++) {
                writer.setData(p, bytes("" + i), -1);
                ev.expectNext(EventType.NodeDataChanged, p, "persistent: change " + i);
            }
            writer.create(p + "/kid", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNext(EventType.NodeChildrenChanged, p, "persistent: child created");
            writer.setData(p + "/kid", bytes("x"), -1);
            ev.expectNone(300, "persistent (non-recursive) watch fired for a child's data change");
            writer.delete(p + "/kid", -1);
            ev.expectNext(EventType.NodeChildrenChanged, p, "persistent: child deleted");
            writer.delete(p, -1);
            ev.expectNext(EventType.NodeDeleted, p, "persistent: delete");
            writer.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNext(EventType.NodeCreated, p, "persistent: survives delete and fires on re-create");
            // Persistent watch + one-shot watch on the same path: both fire.
            Events once = new Events();
            zk.getData(p, once, null);
            writer.setData(p, bytes("y"), -1);
            ev.expectNext(EventType.NodeDataChanged, p, "persistent alongside one-shot");
            once.expectNext(EventType.NodeDataChanged, p, "one-shot alongside persistent");
            // Removing it: removeWatches(path, watcher, Any) works for persistent watches.
            zk.removeWatches(p, ev, Watcher.WatcherType.Any, false);
            WatchedEvent removed = ev.next(5_000);
            info("15_add_watch_persistent", "after removeWatches(Any): "
                    + (removed == null ? "no event" : removed.getType() + " " + removed.getPath()));
            expect(removed != null && removed.getType() == EventType.PersistentWatchRemoved
                    && p.equals(removed.getPath()), "PersistentWatchRemoved event after removeWatches");
            expectCode(Code.NOWATCHER, () -> zk.removeWatches(p, ev, Watcher.WatcherType.Any, false),
                    "removing the removed persistent watch");
            writer.setData(p, bytes("z"), -1);
            WatchedEvent after = ev.next(500);
            expect(after == null || after.getType() != EventType.NodeDataChanged,
                    "persistent watch still fires after removeWatches");
        } finally {
            closeQuietly(zk);
            closeQuietly(writer);
        }
    }

    static void checkRecursiveWatch() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper writer = connect();
        try {
            String p = base + "/rw";
            writer.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events ev = new Events();
            zk.addWatch(p, ev, AddWatchMode.PERSISTENT_RECURSIVE);
            writer.create(p + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNext(EventType.NodeCreated, p + "/a", "recursive: child created (no NodeChildrenChanged)");
            writer.create(p + "/a/b", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNext(EventType.NodeCreated, p + "/a/b", "recursive: grandchild created");
            for (int i = 0; i < 3; i++) {
                writer.setData(p + "/a/b", bytes("v" + i), -1);
                ev.expectNext(EventType.NodeDataChanged, p + "/a/b", "recursive: grandchild change " + i);
            }
            writer.setData(p, bytes("root"), -1);
            ev.expectNext(EventType.NodeDataChanged, p, "recursive: the watched node itself");
            writer.delete(p + "/a/b", -1);
            ev.expectNext(EventType.NodeDeleted, p + "/a/b", "recursive: grandchild deleted");
            writer.create(p + "-sibling", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            writer.create(p + "x", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ev.expectNone(300, "recursive watch fired for a path that merely shares a string prefix");
            writer.create(p + "/a/e", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            ev.expectNext(EventType.NodeCreated, p + "/a/e", "recursive: ephemeral created");
            closeQuietly(writer);
            writer = null;
            ev.expectNext(EventType.NodeDeleted, p + "/a/e", "recursive: ephemeral removed by session close");
        } finally {
            closeQuietly(zk);
            closeQuietly(writer);
        }
    }

    static void checkRemoveWatches() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper writer = connect();
        try {
            String p = base + "/rmw";
            zk.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events data = new Events();
            Events child = new Events();
            zk.getData(p, data, null);
            zk.getChildren(p, child);
            // removeWatches with a specific watcher (the client checks with the server
            // using opcode checkWatches 17 first).
            zk.removeWatches(p, data, Watcher.WatcherType.Data, false);
            data.expectNext(EventType.DataWatchRemoved, p, "DataWatchRemoved event");
            expectCode(Code.NOWATCHER, () -> zk.removeWatches(p, data, Watcher.WatcherType.Data, false),
                    "removing a removed watcher");
            expectCode(Code.NOWATCHER, () -> zk.removeWatches(p, child, Watcher.WatcherType.Data, false),
                    "removing a child watcher as a data watcher");
            writer.setData(p, bytes("x"), -1);
            data.expectNone(300, "removed data watch fired");
            // The child watch is still there.
            writer.create(p + "/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            child.expectNext(EventType.NodeChildrenChanged, p, "child watch still set");
            // removeAllWatches (opcode removeWatches 18)
            zk.getChildren(p, child);
            zk.getData(p, data, null);
            zk.removeAllWatches(p, Watcher.WatcherType.Children, false);
            child.expectNext(EventType.ChildWatchRemoved, p, "ChildWatchRemoved event");
            data.expectNone(200, "removeAllWatches(Children) touched the data watch");
            zk.removeAllWatches(p, Watcher.WatcherType.Any, false);
            data.expectNext(EventType.DataWatchRemoved, p, "DataWatchRemoved after removeAllWatches(Any)");
            expectCode(Code.NOWATCHER, () -> zk.removeAllWatches(p, Watcher.WatcherType.Any, false),
                    "removeAllWatches with nothing left");
            expectCode(Code.NOWATCHER, () -> zk.removeAllWatches(base + "/rmw-missing", Watcher.WatcherType.Data, false),
                    "removeAllWatches on a path that has none");
            // local=true removes on the client only, even without server watches
            zk.getData(p, data, null);
            zk.removeAllWatches(p, Watcher.WatcherType.Data, true);
            data.expectNext(EventType.DataWatchRemoved, p, "local removal event");
        } finally {
            closeQuietly(zk);
            closeQuietly(writer);
        }
    }

    /**
     * The two watch-removal opcodes on the wire. checkWatches (17) only asks whether
     * the session has such a watch (the Java client's removeWatches(path, watcher, ...)
     * sends it, then drops its own watcher); removeWatches (18) removes the server's
     * watches of that type. WatcherType: Children 1, Data 2, Any 3.
     */
    static void checkRawCheckWatches() throws Exception {
        String p = base + "/rawwatch";
        ZooKeeper writer = connect();
        try (RawClient raw = new RawClient(hosts, 30_000)) {
            writer.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectEq(-121, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 3)).err,
                    "checkWatches(Any) with no watch");
            expectEq(0, raw.call(ZooDefs.OpCode.getData, new GetDataRequest(p, true)).err, "getData with watch");
            expectEq(0, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 2)).err,
                    "checkWatches(Data) with a data watch");
            expectEq(0, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 3)).err,
                    "checkWatches(Any) with a data watch");
            expectEq(-121, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 1)).err,
                    "checkWatches(Children) with only a data watch");
            // checkWatches removed nothing: the watch still fires.
            writer.setData(p, bytes("1"), -1);
            WatcherEvent e = raw.nextEvent(10_000);
            expect(e != null, "data watch did not fire after checkWatches");
            expectEq(EventType.NodeDataChanged.getIntValue(), e.getType(), "event type");
            expectEq(KeeperState.SyncConnected.getIntValue(), e.getState(), "event state");
            expectEq(p, e.getPath(), "event path");
            // removeWatches removes the server-side watch; no event is sent for it.
            expectEq(0, raw.call(ZooDefs.OpCode.getData, new GetDataRequest(p, true)).err, "getData with watch");
            expectEq(0, raw.call(ZooDefs.OpCode.getChildren, new GetChildrenRequest(p, true)).err,
                    "getChildren with watch");
            expectEq(0, raw.call(ZooDefs.OpCode.removeWatches, new RemoveWatchesRequest(p, 2)).err,
                    "removeWatches(Data)");
            expectEq(-121, raw.call(ZooDefs.OpCode.removeWatches, new RemoveWatchesRequest(p, 2)).err,
                    "removeWatches(Data) again");
            expectEq(0, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 1)).err,
                    "the child watch is still there");
            writer.setData(p, bytes("2"), -1);
            writer.create(p + "/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            e = raw.nextEvent(10_000);
            expect(e != null, "child watch did not fire");
            expectEq(EventType.NodeChildrenChanged.getIntValue(), e.getType(),
                    "first event is the child event (the data watch was removed)");
            expect(raw.nextEvent(300) == null, "unexpected extra event");
            expectEq(-121, raw.call(ZooDefs.OpCode.removeWatches, new RemoveWatchesRequest(p, 3)).err,
                    "removeWatches(Any) when all fired");
            // A persistent watch is found by type Any (3) and removed by it.
            expectEq(0, raw.call(ZooDefs.OpCode.addWatch, new AddWatchRequest(p, 0)).err, "addWatch PERSISTENT");
            expectEq(0, raw.call(ZooDefs.OpCode.checkWatches, new CheckWatchesRequest(p, 3)).err,
                    "checkWatches(Any) with a persistent watch");
            expectEq(0, raw.call(ZooDefs.OpCode.removeWatches, new RemoveWatchesRequest(p, 3)).err,
                    "removeWatches(Any) with a persistent watch");
            writer.setData(p, bytes("3"), -1);
            expect(raw.nextEvent(300) == null, "persistent watch fired after removeWatches");
            // An unknown addWatch mode fails in the final processor: MARSHALLINGERROR (-5),
            // and the session goes on.
            expectEq(-5, raw.call(ZooDefs.OpCode.addWatch, new AddWatchRequest(p, 7)).err,
                    "addWatch with an unknown mode");
            expectEq(0, raw.call(ZooDefs.OpCode.getData, new GetDataRequest(p, false)).err,
                    "session usable after a failed addWatch");
        } finally {
            closeQuietly(writer);
        }
    }

    static void checkMultiSuccess() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/multi";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/gone", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.create(dir + "/a", bytes("1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.create(dir + "/s-", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL),
                    Op.setData(dir + "/a", bytes("22"), 0),
                    Op.check(dir + "/a", 1),
                    Op.delete(dir + "/gone", 0),
                    Op.create(dir + "/c", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER)));
            StringBuilder sb = new StringBuilder();
            for (OpResult r : res) {
                sb.append(r.getClass().getSimpleName()).append("(type=").append(r.getType()).append(") ");
            }
            info("19_multi_success", sb.toString());
            expectEq(6, res.size(), "result count");
            expect(res.get(0) instanceof OpResult.CreateResult, "0 is CreateResult");
            expectEq(dir + "/a", ((OpResult.CreateResult) res.get(0)).getPath(), "create path");
            expectEq(dir + "/s-0000000002", ((OpResult.CreateResult) res.get(1)).getPath(), "sequential in multi");
            expect(res.get(2) instanceof OpResult.SetDataResult, "2 is SetDataResult");
            Stat ss = ((OpResult.SetDataResult) res.get(2)).getStat();
            expectEq(1, ss.getVersion(), "setData version");
            expectEq(2, ss.getDataLength(), "setData length");
            expect(res.get(3) instanceof OpResult.CheckResult, "3 is CheckResult");
            expect(res.get(4) instanceof OpResult.DeleteResult, "4 is DeleteResult");
            expect(res.get(5) instanceof OpResult.CreateResult, "5 is CreateResult");
            expectEq("22", utf8(zk.getData(dir + "/a", false, null)), "data");
            expect(zk.exists(dir + "/gone", false) == null, "deleted");
            Stat a = zk.exists(dir + "/a", false);
            expectEq(ss, a, "setData result stat equals node stat");
            expectEq(a.getCzxid(), a.getMzxid(), "all ops of a multi share one zxid");
            // Stat-returning create inside a multi (Op.create with CreateMode -> CreateResult with stat?)
            // Op.create(...) of a plain mode is sent as opcode create (1): its result has no stat.
            // A CONTAINER create is sent as createContainer and answered like create2 (15), with a stat.
            expectEq(ZooDefs.OpCode.create, res.get(0).getType(), "plain create result type");
            expect(((OpResult.CreateResult) res.get(0)).getStat() == null, "plain create result has no stat");
            expectEq(ZooDefs.OpCode.create2, res.get(5).getType(), "container create result type");
            Stat cstat = ((OpResult.CreateResult) res.get(5)).getStat();
            expect(cstat != null, "container create result has a stat");
            expectEq(a.getMzxid(), cstat.getCzxid(), "container czxid is the multi's zxid");
            // an empty multi is fine
            expectEq(0, zk.multi(new ArrayList<>()).size(), "empty multi");
            // transaction() API
            List<OpResult> tr = zk.transaction().create(dir + "/t", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)
                    .delete(dir + "/t", -1).commit();
            expectEq(2, tr.size(), "transaction results");
            expect(zk.exists(dir + "/t", false) == null, "create+delete in one multi");
        } finally {
            closeQuietly(zk);
        }
    }

    static List<Integer> errCodes(List<OpResult> rs) {
        List<Integer> out = new ArrayList<>();
        for (OpResult r : rs) {
            out.add(r instanceof OpResult.ErrorResult ? ((OpResult.ErrorResult) r).getErr() : 999);
        }
        return out;
    }

    static void checkMultiFailure() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/multifail";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/x", bytes("orig"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat before = zk.exists(dir, false);

            // Case 1: the third op fails with NONODE.
            List<Op> ops = Arrays.asList(
                    Op.create(dir + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.setData(dir + "/x", bytes("changed"), -1),
                    Op.setData(dir + "/missing", EMPTY, -1),
                    Op.create(dir + "/b", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.delete(dir + "/x", -1));
            try {
                zk.multi(ops);
                throw new CheckFailed("failing multi succeeded");
            } catch (KeeperException e) {
                info("20_multi_failure", "case1 exception code=" + e.code() + " path=" + e.getPath()
                        + " results=" + errCodes(e.getResults()));
                expectEq(Code.NONODE, e.code(), "exception code is the failing op's code");
                expectEq(Arrays.asList(0, 0, -101, -2, -2), errCodes(e.getResults()),
                        "per-op errors: earlier ops 0 (OK), failing op its code, later ops -2 (RUNTIMEINCONSISTENCY)");
            }
            expect(zk.exists(dir + "/a", false) == null, "nothing applied: /a");
            expectEq("orig", utf8(zk.getData(dir + "/x", false, null)), "nothing applied: /x");
            expectEq(before, zk.exists(dir, false), "parent stat unchanged");

            // Case 2: a version check fails first.
            try {
                zk.multi(Arrays.asList(Op.check(dir + "/x", 7),
                        Op.create(dir + "/a", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)));
                throw new CheckFailed("failing check succeeded");
            } catch (KeeperException e) {
                info("20_multi_failure", "case2 code=" + e.code() + " results=" + errCodes(e.getResults()));
                expectEq(Code.BADVERSION, e.code(), "check op");
                expectEq(Arrays.asList(-103, -2), errCodes(e.getResults()), "per-op errors");
            }

            // Case 3: create then create the same node again.
            try {
                zk.multi(Arrays.asList(
                        Op.create(dir + "/dup", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                        Op.create(dir + "/dup", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)));
                throw new CheckFailed("duplicate create succeeded");
            } catch (KeeperException e) {
                info("20_multi_failure", "case3 code=" + e.code() + " results=" + errCodes(e.getResults()));
                expectEq(Code.NODEEXISTS, e.code(), "dup create");
                expectEq(Arrays.asList(0, -110), errCodes(e.getResults()), "per-op errors");
            }
            // Case 4: delete of a non-empty node, with a later op that would also fail.
            zk.create(dir + "/full", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/full/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            try {
                zk.multi(Arrays.asList(Op.delete(dir + "/full", -1), Op.delete(dir + "/missing", -1)));
                throw new CheckFailed("non-empty delete succeeded");
            } catch (KeeperException e) {
                info("20_multi_failure", "case4 code=" + e.code() + " results=" + errCodes(e.getResults()));
                expectEq(Code.NOTEMPTY, e.code(), "first failure wins");
                expectEq(Arrays.asList(-111, -2), errCodes(e.getResults()), "per-op errors");
            }
            // Case 5: ops that depend on earlier ops of the same multi see them.
            List<OpResult> ok = zk.multi(Arrays.asList(
                    Op.create(dir + "/p", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.create(dir + "/p/q", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.setData(dir + "/p/q", bytes("v"), 0),
                    Op.check(dir + "/p/q", 1)));
            expectEq(4, ok.size(), "dependent ops");
            // Case 6: NoAuth inside a multi.
            zk.create(dir + "/ro", EMPTY, Ids.READ_ACL_UNSAFE, CreateMode.PERSISTENT);
            try {
                zk.multi(Arrays.asList(Op.check(dir + "/ro", 0), Op.setData(dir + "/ro", bytes("v"), -1)));
                throw new CheckFailed("setData on read-only node succeeded");
            } catch (KeeperException e) {
                info("20_multi_failure", "case6 code=" + e.code() + " results=" + errCodes(e.getResults()));
                expectEq(Code.NOAUTH, e.code(), "noauth");
                expectEq(Arrays.asList(0, -102), errCodes(e.getResults()), "per-op errors");
            }
            // Mixing read and write ops is refused by the client.
            try {
                zk.multi(Arrays.asList(Op.getData(dir + "/x"), Op.check(dir + "/x", -1)));
                throw new CheckFailed("client allowed mixing read and write ops");
            } catch (IllegalArgumentException expected) {
                info("20_multi_failure", "mixed read/write -> IllegalArgumentException: " + expected.getMessage());
            }
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkMultiRead() throws Exception {
        ZooKeeper zk = connect();
        try {
            String dir = base + "/multiread";
            zk.create(dir, bytes("top"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/a", bytes("A"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/b", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(dir + "/secret", bytes("s"), Collections.singletonList(new ACL(Perms.WRITE, Ids.ANYONE_ID_UNSAFE)),
                    CreateMode.PERSISTENT);
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.getData(dir + "/a"),
                    Op.getChildren(dir),
                    Op.getData(dir + "/missing"),
                    Op.getChildren(dir + "/missing"),
                    Op.getData(dir + "/secret"),
                    Op.getChildren(dir + "/a")));
            StringBuilder sb = new StringBuilder();
            for (OpResult r : res) {
                sb.append(r.getClass().getSimpleName()).append("(type=").append(r.getType());
                if (r instanceof OpResult.ErrorResult) {
                    sb.append(" err=").append(((OpResult.ErrorResult) r).getErr());
                }
                sb.append(") ");
            }
            info("21_multi_read", sb.toString());
            expectEq(6, res.size(), "result count");
            expect(res.get(0) instanceof OpResult.GetDataResult, "0 GetDataResult");
            OpResult.GetDataResult gd = (OpResult.GetDataResult) res.get(0);
            expectEq("A", utf8(gd.getData()), "data");
            expectEq(zk.exists(dir + "/a", false), gd.getStat(), "stat of getData op");
            expect(res.get(1) instanceof OpResult.GetChildrenResult, "1 GetChildrenResult");
            expectEq(new TreeSet<>(Arrays.asList("a", "b", "secret")),
                    new TreeSet<>(((OpResult.GetChildrenResult) res.get(1)).getChildren()), "children");
            expectEq(Arrays.asList(-101, -101, -102), errCodes(res.subList(2, 5)),
                    "per-op errors do not abort the others");
            expect(res.get(5) instanceof OpResult.GetChildrenResult, "5 GetChildrenResult");
            expectEq(Collections.emptyList(), ((OpResult.GetChildrenResult) res.get(5)).getChildren(), "no children");
            expectEq(ZooDefs.OpCode.getData, res.get(0).getType(), "GetDataResult type");
            expectEq(ZooDefs.OpCode.getChildren, res.get(1).getType(), "GetChildrenResult type");
            expectEq(ZooDefs.OpCode.error, res.get(2).getType(), "ErrorResult type");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkVersions() throws Exception {
        ZooKeeper zk = connect();
        try {
            String p = base + "/versions";
            zk.create(p, bytes("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat s1 = zk.setData(p, bytes("1"), 0);
            expectEq(1, s1.getVersion(), "version after set");
            expect(s1.getMzxid() > s1.getCzxid(), "mzxid advanced");
            expectEq(s1.getCzxid(), s1.getPzxid(), "pzxid not touched by setData");
            expectCode(Code.BADVERSION, () -> zk.setData(p, bytes("x"), 0), "stale version");
            Stat s2 = zk.setData(p, bytes("two"), -1);
            expectEq(2, s2.getVersion(), "-1 matches any version");
            expectEq(3, s2.getDataLength(), "length");
            expectCode(Code.BADVERSION, () -> zk.delete(p, 1), "delete stale version");
            zk.delete(p, 2);
            expect(zk.exists(p, false) == null, "deleted");
            // Data size limit: about 1 MiB (jute.maxbuffer default 0xfffff bytes).
            zk.create(p, new byte[500_000], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectEq(500_000, zk.getData(p, false, null).length, "500 kB value");
        } finally {
            closeQuietly(zk);
        }
    }

    /** zk.sync(path), waited for: later reads of this session see every earlier write. */
    static void syncNow(ZooKeeper zk, String path) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        zk.sync(path, (rc, p, ctx) -> done.countDown(), null);
        expect(done.await(10, TimeUnit.SECONDS), "sync of " + path + " answered");
    }

    static void checkAcl() throws Exception {
        ZooKeeper zk = connect();
        ZooKeeper anon = connect();
        ZooKeeper wrong = connect();
        try {
            String dir = base + "/acl";
            zk.create(dir, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String id = digest("alice:secret");
            info("23_acl_digest", "digest id for alice:secret = " + id);
            List<ACL> aliceAll = Collections.singletonList(new ACL(Perms.ALL, new Id("digest", id)));
            String p = dir + "/private";
            zk.create(p, bytes("hidden"), aliceAll, CreateMode.PERSISTENT);
            // The other sessions may be on other servers of an ensemble: a read there sees the
            // node only after a sync (ZooKeeper's guarantee is per session).
            syncNow(anon, p);
            syncNow(wrong, p);

            expectCode(Code.NOAUTH, () -> anon.getData(p, false, null), "read without auth");
            expect(anon.exists(p, false) != null, "exists needs no permission");
            expectCode(Code.NOAUTH, () -> anon.setData(p, EMPTY, -1), "write without auth");
            expectCode(Code.NOAUTH, () -> anon.create(p + "/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    "create child without auth");
            expectCode(Code.NOAUTH, () -> anon.getChildren(p, false), "getChildren without auth");
            // getACL needs READ or ADMIN permission since ZooKeeper 3.4.14/3.5.5 (CVE-2019-0201).
            expectCode(Code.NOAUTH, () -> anon.getACL(p, new Stat()), "getACL without auth");

            wrong.addAuthInfo("digest", bytes("alice:wrong"));
            expectCode(Code.NOAUTH, () -> wrong.getData(p, false, null), "read with wrong password");

            zk.addAuthInfo("digest", bytes("alice:secret"));
            expectEq("hidden", utf8(zk.getData(p, false, null)), "read with auth");
            Stat st = new Stat();
            List<ACL> got = zk.getACL(p, st);
            expectEq(aliceAll, got, "getACL");
            expectEq(0, st.getAversion(), "aversion");

            // setACL: add world read; aversion increments; bad version -> BADVERSION
            List<ACL> both = new ArrayList<>(aliceAll);
            both.add(new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE));
            Stat after = zk.setACL(p, both, 0);
            expectEq(1, after.getAversion(), "aversion after setACL");
            expectEq(0, after.getVersion(), "data version unchanged by setACL");
            expectCode(Code.BADVERSION, () -> zk.setACL(p, both, 0), "setACL stale version");
            expectEq("hidden", utf8(anon.getData(p, false, null)), "world read after setACL");
            expectCode(Code.NOAUTH, () -> anon.setData(p, EMPTY, -1), "still no world write");
            expectCode(Code.NOAUTH, () -> anon.setACL(p, Ids.OPEN_ACL_UNSAFE, -1), "setACL needs ADMIN");
            expectEq(both, zk.getACL(p, new Stat()), "getACL after setACL");
            // A client with READ but without ADMIN sees digest ids with the hash replaced by "x".
            List<ACL> redacted = Arrays.asList(new ACL(Perms.ALL, new Id("digest", "alice:x")),
                    new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE));
            expectEq(redacted, anon.getACL(p, new Stat()), "getACL with READ only: digest hash redacted");

            // "auth" scheme: CREATOR_ALL_ACL becomes digest:<id> of the creator.
            String c = dir + "/creator";
            zk.create(c, EMPTY, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
            List<ACL> cacl = zk.getACL(c, new Stat());
            info("23_acl_digest", "CREATOR_ALL_ACL stored as " + cacl);
            expectEq(aliceAll, cacl, "auth scheme expands to the authenticated digest id");
            expectCode(Code.NOAUTH, () -> anon.getData(c, false, null), "creator-only node");

            // Permission bits: CREATE without DELETE
            String cr = dir + "/createonly";
            zk.create(cr, EMPTY, Collections.singletonList(new ACL(Perms.CREATE | Perms.READ, Ids.ANYONE_ID_UNSAFE)),
                    CreateMode.PERSISTENT);
            anon.create(cr + "/k", EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expectCode(Code.NOAUTH, () -> anon.delete(cr + "/k", -1), "DELETE permission is on the parent");
            // Invalid ACLs
            expectCode(Code.INVALIDACL, () -> zk.create(dir + "/bad", EMPTY,
                    Collections.singletonList(new ACL(Perms.ALL, new Id("digest", "nocolon"))), CreateMode.PERSISTENT),
                    "digest id without ':'");
            expectCode(Code.INVALIDACL, () -> zk.create(dir + "/bad2", EMPTY,
                    Collections.singletonList(new ACL(Perms.ALL, new Id("nosuchscheme", "x"))), CreateMode.PERSISTENT),
                    "unknown scheme");
            Code badIp = codeOf(() -> zk.create(dir + "/ip", EMPTY,
                    Collections.singletonList(new ACL(Perms.ALL, new Id("ip", "127.0.0.1"))), CreateMode.PERSISTENT));
            expectEq(Code.OK, badIp, "ip ACL");
            expectEq("", utf8(anon.getData(dir + "/ip", false, null)), "ip:127.0.0.1 matches a loopback client");
            // addauth with an unknown scheme: the server closes the session with AUTHFAILED.
            ZooKeeper bad = connect();
            CountDownLatch authFailed = new CountDownLatch(1);
            bad.register(e -> {
                if (e.getState() == KeeperState.AuthFailed) {
                    authFailed.countDown();
                }
            });
            bad.addAuthInfo("nosuchscheme", bytes("x"));
            expect(authFailed.await(10, TimeUnit.SECONDS), "no AuthFailed state after addauth with unknown scheme");
            closeQuietly(bad);
        } finally {
            closeQuietly(zk);
            closeQuietly(anon);
            closeQuietly(wrong);
        }
    }

    static String clientInfos(List<ClientInfo> l) {
        List<String> out = new ArrayList<>();
        for (ClientInfo ci : l) {
            out.add(ci.getAuthScheme() + ":" + ci.getUser());
        }
        return out.toString();
    }

    static void checkWhoAmI() throws Exception {
        ZooKeeper zk = connect();
        try {
            List<ClientInfo> me = zk.whoAmI();
            info("24_who_am_i", "anonymous -> " + clientInfos(me));
            expectEq("[ip:127.0.0.1]", clientInfos(me), "anonymous whoAmI");
            zk.addAuthInfo("digest", bytes("bob:pw"));
            zk.addAuthInfo("digest", bytes("carol:pw"));
            List<ClientInfo> after = zk.whoAmI();
            info("24_who_am_i", "after two digest auths -> " + clientInfos(after));
            Set<String> got = new TreeSet<>();
            for (ClientInfo ci : after) {
                got.add(ci.getAuthScheme() + ":" + ci.getUser());
            }
            expectEq(new TreeSet<>(Arrays.asList("ip:127.0.0.1", "digest:bob", "digest:carol")), got, "ids");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkSync() throws Exception {
        ZooKeeper zk = connect();
        try {
            String p = base + "/sync";
            zk.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            CountDownLatch done = new CountDownLatch(2);
            AtomicReference<String> result = new AtomicReference<>("");
            zk.sync(p, (rc, path, ctx) -> {
                result.accumulateAndGet(rc + " " + path + " " + ctx + ";", String::concat);
                done.countDown();
            }, "ctx1");
            zk.sync(base + "/sync-missing", (rc, path, ctx) -> {
                result.accumulateAndGet(rc + " " + path + " " + ctx + ";", String::concat);
                done.countDown();
            }, "ctx2");
            expect(done.await(10, TimeUnit.SECONDS), "sync callbacks did not arrive");
            info("25_sync", "callbacks: " + result.get());
            expectEq("0 " + p + " ctx1;0 " + base + "/sync-missing ctx2;", result.get(),
                    "sync rc 0, path echoed, also for a missing path");
            // Ordering: a read after sync sees an earlier write of another client.
            ZooKeeper other = connect();
            try {
                other.setData(p, bytes("new"), -1);
            } finally {
                closeQuietly(other);
            }
            CountDownLatch s2 = new CountDownLatch(1);
            zk.sync(p, (rc, path, ctx) -> s2.countDown(), null);
            expect(s2.await(10, TimeUnit.SECONDS), "sync");
            expectEq("new", utf8(zk.getData(p, false, null)), "read after sync");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkGetConfig() throws Exception {
        ZooKeeper zk = connect();
        try {
            Stat s = new Stat();
            byte[] cfg = zk.getConfig(false, s);
            info("26_get_config", "getConfig -> " + (cfg == null ? "null" : "\"" + utf8(cfg).replace("\n", "\\n") + "\"")
                    + " stat " + statStr(s));
            byte[] raw = zk.getData("/zookeeper/config", false, new Stat());
            expect(Arrays.equals(cfg, raw), "getConfig equals getData(/zookeeper/config)");
            if ("ensemble".equals(System.getenv("ZK_TOPOLOGY"))) {
                // Each server of an ensemble holds its membership, data version -1.
                String text = utf8(cfg);
                expect(text.startsWith("server.1=") && text.endsWith("\nversion=0"), "ensemble: the membership");
                expectEq(-1, s.getVersion(), "config data version");
                expectEq(-1, s.getAversion(), "config aversion");
                expectEq(0L, s.getMzxid(), "config mzxid");
                expectEq(cfg.length, s.getDataLength(), "config dataLength");
            } else {
                expectEq(0, cfg.length, "standalone: empty config");
                Stat want = new Stat(0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0);
                expectEq(statStr(want), statStr(s), "config stat (all zero, aversion -1)");
            }
            List<ACL> acl = zk.getACL("/zookeeper/config", new Stat());
            info("26_get_config", "/zookeeper/config ACL " + acl);
            expectEq(Collections.singletonList(new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE)), acl,
                    "/zookeeper/config ACL is world:anyone READ");
            expectCode(Code.NOAUTH, () -> zk.setData("/zookeeper/config", bytes("x"), -1), "config is read-only");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkSystemNodes() throws Exception {
        ZooKeeper zk = connect();
        try {
            Stat rs = new Stat();
            List<String> rootKids = zk.getChildren("/", false, rs);
            expect(rootKids.contains("zookeeper"), "/ has zookeeper");
            info("27_zookeeper_system_nodes", "/ stat " + statStr(rs));
            expectEq(0L, rs.getCzxid(), "root czxid");
            expectEq(0L, rs.getCtime(), "root ctime");
            Stat zs = new Stat();
            List<String> kids = zk.getChildren("/zookeeper", false, zs);
            Collections.sort(kids);
            expectEq(Arrays.asList("config", "quota"), kids, "/zookeeper children");
            info("27_zookeeper_system_nodes", "/zookeeper stat " + statStr(zs));
            // Nothing in this program writes below /zookeeper: its stat is the initial one.
            // cversion is shown as 2 * (children created by txns) - numChildren = -2.
            expectEq(statStr(new Stat(0, 0, 0, 0, 0, -2, 0, 0, 0, 2, 0)), statStr(zs), "/zookeeper stat");
            expectEq(0, zk.getData("/zookeeper", false, null).length, "/zookeeper data");
            Stat qs = new Stat();
            byte[] q = zk.getData("/zookeeper/quota", false, qs);
            info("27_zookeeper_system_nodes", "/zookeeper/quota data len " + q.length + " stat " + statStr(qs)
                    + " acl " + zk.getACL("/zookeeper/quota", new Stat()));
            expectEq(0, q.length, "/zookeeper/quota data");
            expectEq(Collections.emptyList(), zk.getChildren("/zookeeper/quota", false), "quota has no children");
            expectEq(Ids.OPEN_ACL_UNSAFE, zk.getACL("/", new Stat()), "root ACL");
            expectEq(Ids.OPEN_ACL_UNSAFE, zk.getACL("/zookeeper", new Stat()), "/zookeeper ACL");
        } finally {
            closeQuietly(zk);
        }
    }

    static void checkEphemeralClose() throws Exception {
        ZooKeeper owner = connect();
        ZooKeeper observer = connect();
        try {
            String p = base + "/eph-close";
            owner.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            Events ev = new Events();
            expect(observer.exists(p, ev) != null, "visible to another session");
            Stat s = observer.exists(p, false);
            expectEq(owner.getSessionId(), s.getEphemeralOwner(), "owner");
            closeQuietly(owner);
            owner = null;
            ev.expectNext(EventType.NodeDeleted, p, "ephemeral deleted at session close");
            expect(observer.exists(p, false) == null, "gone");
            // A wrong password for an existing session is refused: the client sees Expired,
            // and the session itself is not harmed.
            ZooKeeper first = connect();
            first.create(p, EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            CountDownLatch expired = new CountDownLatch(1);
            byte[] wrong = first.getSessionPasswd().clone();
            wrong[0] ^= 0x55;
            ZooKeeper bad = new ZooKeeper(hosts, SESSION_TIMEOUT_MS, e -> {
                if (e.getState() == KeeperState.Expired) {
                    expired.countDown();
                }
            }, first.getSessionId(), wrong);
            openClients.add(bad);
            expect(expired.await(15, TimeUnit.SECONDS), "no Expired state for a wrong session password");
            closeQuietly(bad);
            expect(first.exists(p, false) != null, "session still works after a wrong-password attempt");
            // Reattaching by id + password keeps the session and its ephemerals.
            CountDownLatch c2 = new CountDownLatch(1);
            ZooKeeper second = new ZooKeeper(hosts, SESSION_TIMEOUT_MS, e -> {
                if (e.getState() == KeeperState.SyncConnected) {
                    c2.countDown();
                }
            }, first.getSessionId(), first.getSessionPasswd());
            openClients.add(second);
            expect(c2.await(15, TimeUnit.SECONDS), "reattach to session");
            expectEq(first.getSessionId(), second.getSessionId(), "same session id");
            expect(second.exists(p, false) != null, "ephemeral kept on reattach");
            ev = new Events();
            expect(observer.exists(p, ev) != null, "ephemeral visible to the observer");
            // Closing the session through the second connection removes the ephemeral.
            closeQuietly(second);
            ev.expectNext(EventType.NodeDeleted, p, "ephemeral removed when the reattached session closed");
            // The first client's session is gone now; close it in the background.
            Thread closer = new Thread(() -> closeQuietly(first), "close-first");
            closer.setDaemon(true);
            closer.start();
        } finally {
            closeQuietly(owner);
            closeQuietly(observer);
        }
    }

    // ------------------------------------------------------------------ Curator

    static void checkCuratorMutex() throws Exception {
        String lockPath = base + "/curator-lock";
        CuratorFramework c1 = curator();
        CuratorFramework c2 = curator();
        try {
            AtomicInteger holders = new AtomicInteger();
            AtomicInteger maxHolders = new AtomicInteger();
            AtomicInteger acquired = new AtomicInteger();
            AtomicReference<Throwable> error = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            for (CuratorFramework c : new CuratorFramework[] {c1, c2}) {
                for (int t = 0; t < 2; t++) {
                    InterProcessMutex m = new InterProcessMutex(c, lockPath);
                    Thread th = new Thread(() -> {
                        try {
                            for (int i = 0; i < 5; i++) {
                                if (!m.acquire(20, TimeUnit.SECONDS)) {
                                    throw new IllegalStateException("acquire timed out");
                                }
                                try {
                                    int h = holders.incrementAndGet();
                                    maxHolders.accumulateAndGet(h, Math::max);
                                    acquired.incrementAndGet();
                                    Thread.sleep(10);
                                    holders.decrementAndGet();
                                } finally {
                                    m.release();
                                }
                            }
                        } catch (Throwable e) {
                            error.compareAndSet(null, e);
                        }
                    });
                    th.setDaemon(true);
                    threads.add(th);
                }
            }
            threads.forEach(Thread::start);
            for (Thread th : threads) {
                th.join(40_000);
                expect(!th.isAlive(), "mutex worker did not finish");
            }
            expect(error.get() == null, "worker error: " + error.get());
            expectEq(20, acquired.get(), "acquisitions");
            expectEq(1, maxHolders.get(), "mutual exclusion (max simultaneous holders)");
            // Reentrancy and lock nodes cleaned up.
            InterProcessMutex m = new InterProcessMutex(c1, lockPath);
            expect(m.acquire(10, TimeUnit.SECONDS), "acquire");
            expect(m.acquire(10, TimeUnit.SECONDS), "reentrant acquire");
            InterProcessMutex other = new InterProcessMutex(c2, lockPath);
            expect(!other.acquire(300, TimeUnit.MILLISECONDS), "other client got a held lock");
            m.release();
            m.release();
            expect(other.acquire(10, TimeUnit.SECONDS), "other client after release");
            other.release();
            // The lock's parent is a container: once its last child goes, the server may reap
            // it (every 200 ms in these tests), and then there is nothing left to list.
            List<String> left;
            try {
                left = c1.getChildren().forPath(lockPath);
            } catch (KeeperException.NoNodeException reaped) {
                left = Collections.emptyList();
            }
            expectEq(Collections.emptyList(), left, "lock nodes removed");
        } finally {
            c1.close();
            c2.close();
        }
    }

    static void checkLeaderLatch() throws Exception {
        String path = base + "/curator-leader";
        CuratorFramework c1 = curator();
        CuratorFramework c2 = curator();
        LeaderLatch l1 = new LeaderLatch(c1, path, "one");
        LeaderLatch l2 = new LeaderLatch(c2, path, "two");
        boolean l1Closed = false;
        boolean l2Closed = false;
        try {
            l1.start();
            l2.start();
            expect(waitFor(15_000, () -> l1.hasLeadership() || l2.hasLeadership()), "no leader within 15 s");
            Thread.sleep(300);
            expect(l1.hasLeadership() ^ l2.hasLeadership(), "exactly one leader: one=" + l1.hasLeadership()
                    + " two=" + l2.hasLeadership());
            LeaderLatch leader = l1.hasLeadership() ? l1 : l2;
            LeaderLatch follower = leader == l1 ? l2 : l1;
            expectEq(leader.getId(), follower.getLeader().getId(), "both agree on the leader");
            expectEq(2, leader.getParticipants().size(), "participants");
            leader.close();
            if (leader == l1) {
                l1Closed = true;
            } else {
                l2Closed = true;
            }
            expect(follower.await(15, TimeUnit.SECONDS), "leadership did not move within 15 s");
            expect(follower.hasLeadership(), "new leader");
        } finally {
            if (!l1Closed) {
                l1.close();
            }
            if (!l2Closed) {
                l2.close();
            }
            c1.close();
            c2.close();
        }
    }

    static void checkCuratorCache() throws Exception {
        String path = base + "/curator-cache";
        CuratorFramework c = curator();
        CuratorFramework writer = curator();
        CuratorCache cache = CuratorCache.build(c, path);
        try {
            LinkedBlockingQueue<String> events = new LinkedBlockingQueue<>();
            CountDownLatch initialized = new CountDownLatch(1);
            cache.listenable().addListener(new CuratorCacheListener() {
                @Override
                public void event(Type type, org.apache.curator.framework.recipes.cache.ChildData oldData,
                        org.apache.curator.framework.recipes.cache.ChildData data) {
                    org.apache.curator.framework.recipes.cache.ChildData d = data != null ? data : oldData;
                    events.add(type + " " + d.getPath() + " " + (data == null ? "-" : utf8(data.getData())));
                }

                @Override
                public void initialized() {
                    initialized.countDown();
                }
            });
            cache.start();
            expect(initialized.await(15, TimeUnit.SECONDS), "cache not initialized");
            writer.create().forPath(path, bytes("v0"));
            expectEq("NODE_CREATED " + path + " v0", events.poll(10, TimeUnit.SECONDS), "create event");
            writer.create().forPath(path + "/kid", bytes("k"));
            expectEq("NODE_CREATED " + path + "/kid k", events.poll(10, TimeUnit.SECONDS), "child create event");
            writer.setData().forPath(path, bytes("v1"));
            expectEq("NODE_CHANGED " + path + " v1", events.poll(10, TimeUnit.SECONDS), "change event");
            writer.setData().forPath(path + "/kid", bytes("k2"));
            expectEq("NODE_CHANGED " + path + "/kid k2", events.poll(10, TimeUnit.SECONDS), "child change event");
            writer.delete().forPath(path + "/kid");
            expectEq("NODE_DELETED " + path + "/kid -", events.poll(10, TimeUnit.SECONDS), "child delete event");
            writer.delete().forPath(path);
            expectEq("NODE_DELETED " + path + " -", events.poll(10, TimeUnit.SECONDS), "delete event");
            expect(waitFor(5_000, () -> cache.size() == 0), "cache empty at the end");
        } finally {
            cache.close();
            c.close();
            writer.close();
        }
    }
}
