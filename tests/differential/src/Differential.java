/*
 * Differential driver: runs a seeded random sequence of ZooKeeper client operations against ONE
 * server and prints a canonical transcript (one line per operation, reply and watch event) on
 * stdout. Run it with the same seed against rzk and against Apache ZooKeeper 3.8 and the two
 * transcripts must be byte-identical.
 *
 * Replay by hand (see tests/differential/README.md):
 *   J=/usr/share/java
 *   CP=$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-api.jar:$J/slf4j-nop.jar
 *   javac -d /tmp/diffbuild -cp "$CP" tests/differential/src/Differential.java
 *   java -cp "/tmp/diffbuild:$CP" Differential 127.0.0.1:2181 SEED [OPS]
 * or through pytest:  SEED=1234 pytest tests/differential
 *
 * Determinism rules kept here:
 *  - all random choices come from one java.util.Random(seed), drawn on the main thread only;
 *  - after every operation there is a barrier on every live session (an async exists("/") whose
 *    callback runs on that session's EventThread after every earlier event), and only then are
 *    that session's events printed, so events always land next to the operation that caused them;
 *  - watchers invoked for the same notification are printed sorted (the Java client keeps them
 *    in a HashSet), and so are runs of client-made *WatchRemoved events (a HashMap); the events of
 *    a session close (the order in which a server deletes ephemerals is not specified), of a
 *    reconnect (delivered live or through SetWatches) and of a reap are sorted as a whole;
 *  - Apache-only crashes are avoided: a createTTL request with non-TTL flags and a negative TTL
 *    kills Apache 3.8 (accepted by prep, IllegalArgumentException when applied), so it is never sent;
 *  - czxid/mzxid/pzxid/ctime/mtime and session ids are never printed; instead each Stat prints the
 *    relations between its zxids, ephemeralOwner is mapped to the session's logical name, and each
 *    operation prints "dz=N", how far the server's last zxid moved during it (masked by the pytest
 *    when DIFF_IGNORE_ZXID=1);
 *  - container nodes are created only at paths named "k", under which nothing is ever created, so
 *    the container reaper never races the run; TTLs are at least one hour. The one exception is
 *    the "reap" operation, which makes a container and a TTL node reapable and then waits (bounded)
 *    until the server has removed them before going on.
 */

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32;

import org.apache.jute.Record;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.ClientCnxn;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.proto.AddWatchRequest;
import org.apache.zookeeper.proto.CheckWatchesRequest;
import org.apache.zookeeper.proto.Create2Response;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateResponse;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.DeleteRequest;
import org.apache.zookeeper.proto.ExistsRequest;
import org.apache.zookeeper.proto.GetAllChildrenNumberRequest;
import org.apache.zookeeper.proto.GetAllChildrenNumberResponse;
import org.apache.zookeeper.proto.GetChildren2Request;
import org.apache.zookeeper.proto.GetChildren2Response;
import org.apache.zookeeper.proto.GetDataRequest;
import org.apache.zookeeper.proto.GetDataResponse;
import org.apache.zookeeper.proto.GetEphemeralsRequest;
import org.apache.zookeeper.proto.GetEphemeralsResponse;
import org.apache.zookeeper.proto.RemoveWatchesRequest;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.proto.SetACLRequest;
import org.apache.zookeeper.proto.SetDataRequest;
import org.apache.zookeeper.proto.SetDataResponse;
import org.apache.zookeeper.proto.ExistsResponse;
import org.apache.zookeeper.proto.SetACLResponse;
import org.apache.zookeeper.proto.SyncRequest;
import org.apache.zookeeper.proto.SyncResponse;

public final class Differential {

    static final int SESSION_TIMEOUT_MS = 30000;
    static final long WAIT_MS = 30000;          // bound on every wait for the server
    static final int SLOTS = 3;                 // live sessions at any time
    static final long TTL_MIN = 3600_000L;      // one hour: never reaped during a run

    // ------------------------------------------------------------------ sessions

    /** A ZooKeeper handle with access to its connection, for raw requests and the zxid. */
    static final class Zk extends ZooKeeperAdmin {
        Zk(String hosts, int timeout, Watcher w) throws IOException {
            super(hosts, timeout, w);
        }

        ReplyHeader raw(int type, Record req, Record resp) throws InterruptedException {
            RequestHeader h = new RequestHeader();
            h.setType(type);
            return cnxn.submitRequest(h, req, resp, null);
        }

        long lastZxid() {
            return cnxn.getLastZxid();
        }

        /** Close the TCP connection under the client (the session lives on); it reconnects by itself. */
        void dropSocket() throws Exception {
            Field f = ClientCnxn.class.getDeclaredField("sendThread");
            f.setAccessible(true);
            Object sendThread = f.get(cnxn);
            Method m = sendThread.getClass().getDeclaredMethod("testableCloseSocket");
            m.setAccessible(true);
            m.invoke(sendThread);
        }
    }

    static final class Ev {
        final WatchedEvent event;
        final String label;

        Ev(WatchedEvent event, String label) {
            this.event = event;
            this.label = label;
        }
    }

    /** A watcher that records every event it gets under a label, e.g. "data.w1" or "default". */
    static final class LabelWatcher implements Watcher {
        final Sess sess;
        final String label;

        LabelWatcher(Sess sess, String label) {
            this.sess = sess;
            this.label = label;
        }

        @Override
        public void process(WatchedEvent event) {
            sess.record(event, label);
        }
    }

    static final String[] WATCH_KINDS = {"exist", "data", "child", "pers", "prec"};
    static final String[] WATCH_LABELS = {"w1", "w2"};

    final class Sess {
        final int id;           // logical index: S<id> in the transcript
        Zk zk;
        long sessionId;
        final List<Ev> events = new ArrayList<>();
        final AtomicInteger connected = new AtomicInteger();
        final CountDownLatch authFailed = new CountDownLatch(1);
        final Map<String, LabelWatcher> watchers = new TreeMap<>();
        final List<String> watchedPaths = new ArrayList<>(); // recent paths this session set watches on
        boolean hasPersistent;  // ever added a persistent watch through the API
        LabelWatcher dflt;

        Sess(int id) {
            this.id = id;
        }

        String name() {
            return "S" + id;
        }

        void record(WatchedEvent e, String label) {
            if (e.getType() == Watcher.Event.EventType.None) {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                    connected.incrementAndGet();
                } else if (e.getState() == Watcher.Event.KeeperState.AuthFailed) {
                    authFailed.countDown();
                }
                return; // connection state changes are not part of the transcript
            }
            synchronized (events) {
                events.add(new Ev(e, label));
            }
        }

        void watched(String path, Object w) {
            if (Boolean.FALSE.equals(w)) {
                return;
            }
            watchedPaths.remove(path);
            watchedPaths.add(path);
            if (watchedPaths.size() > 8) {
                watchedPaths.remove(0);
            }
        }

        LabelWatcher watcher(String kind) {
            return watchers.get(kind + "." + WATCH_LABELS[rnd.nextInt(WATCH_LABELS.length)]);
        }

        void open(int requestedTimeout) throws Exception {
            dflt = new LabelWatcher(this, "default");
            for (String k : WATCH_KINDS) {
                for (String l : WATCH_LABELS) {
                    watchers.put(k + "." + l, new LabelWatcher(this, k + "." + l));
                }
            }
            zk = new Zk(hosts, requestedTimeout, dflt);
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (connected.get() == 0) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(name() + ": not connected within " + WAIT_MS + " ms");
                }
                Thread.sleep(2);
            }
            sessionId = zk.getSessionId();
            owners.put(sessionId, name());
        }

        /** Wait until every event sent before now has been delivered to the watchers. */
        void barrier() throws Exception {
            CountDownLatch latch = new CountDownLatch(1);
            zk.exists("/", false, (rc, path, ctx, stat) -> latch.countDown(), null);
            if (!latch.await(WAIT_MS, TimeUnit.MILLISECONDS)) {
                throw new IllegalStateException(name() + ": barrier not answered within " + WAIT_MS + " ms");
            }
        }

        /** The events since the last call, canonical: one line per notification, watchers sorted. */
        List<String> drain(boolean sortAll) {
            List<Ev> evs;
            synchronized (events) {
                evs = new ArrayList<>(events);
                events.clear();
            }
            List<String> out = new ArrayList<>();
            int i = 0;
            while (i < evs.size()) {
                WatchedEvent e = evs.get(i).event;
                List<String> labels = new ArrayList<>();
                while (i < evs.size() && evs.get(i).event == e) {
                    labels.add(evs.get(i).label);
                    i++;
                }
                Collections.sort(labels);
                out.add("  " + name() + " ev " + e.getType() + " " + e.getPath() + " <- " + String.join(",", labels));
            }
            if (sortAll) {
                Collections.sort(out);
            } else {
                // the client queues the WatchRemoved events of one removeWatches reply from a HashMap
                // keyed by event type: their order is arbitrary, so each run of them is sorted
                int j = 0;
                while (j < out.size()) {
                    int k = j;
                    while (k < out.size() && out.get(k).contains("WatchRemoved ")) {
                        k++;
                    }
                    if (k > j + 1) {
                        Collections.sort(out.subList(j, k));
                    }
                    j = Math.max(k, j + 1);
                }
            }
            return out;
        }
    }

    // ------------------------------------------------------------------ state

    final String hosts;
    final long seed;
    final Random rnd;
    final BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
    final Map<Long, String> owners = new HashMap<>();
    final Sess[] slots = new Sess[SLOTS];
    int nextSessionId = 0;
    long lastZxid = 0; // a fresh server starts at zxid 0
    int opNo = 0;
    final List<String> extras = new ArrayList<>(); // sequential names seen in replies
    final java.util.TreeSet<String> known = new java.util.TreeSet<>(); // paths last seen existing (from replies)
    int reapNo = 0;

    Differential(String hosts, long seed) {
        this.hosts = hosts;
        this.seed = seed;
        this.rnd = new Random(seed);
    }

    void emit(String line) throws IOException {
        out.write(line);
        out.write('\n');
    }

    // ------------------------------------------------------------------ formatting

    static String code(KeeperException e) {
        return e.code().name();
    }

    String owner(long eo) {
        if (eo == 0) {
            return "0";
        }
        String s = owners.get(eo);
        return s != null ? s : "0x" + Long.toHexString(eo);
    }

    static char rel(long a, long b) {
        return a == b ? '=' : (a > b ? '>' : '<');
    }

    String stat(Stat s) {
        if (s == null) {
            return "st(null)";
        }
        return "st(v=" + s.getVersion() + " cv=" + s.getCversion() + " av=" + s.getAversion()
            + " eo=" + owner(s.getEphemeralOwner()) + " dl=" + s.getDataLength() + " nc=" + s.getNumChildren()
            + " mc" + rel(s.getMzxid(), s.getCzxid()) + " pc" + rel(s.getPzxid(), s.getCzxid())
            + " pm" + rel(s.getPzxid(), s.getMzxid()) + ")";
    }

    static String data(byte[] d) {
        if (d == null) {
            return "null";
        }
        boolean printable = d.length <= 40;
        for (byte b : d) {
            if (b < 0x21 || b > 0x7e || b == '\'') {
                printable = false;
                break;
            }
        }
        if (printable) {
            return "'" + new String(d, StandardCharsets.US_ASCII) + "'";
        }
        CRC32 crc = new CRC32();
        crc.update(d);
        return "bytes(len=" + d.length + " crc=" + Long.toHexString(crc.getValue()) + ")";
    }

    static String perms(int p) {
        StringBuilder sb = new StringBuilder();
        sb.append((p & ZooDefs.Perms.CREATE) != 0 ? 'c' : '-');
        sb.append((p & ZooDefs.Perms.DELETE) != 0 ? 'd' : '-');
        sb.append((p & ZooDefs.Perms.READ) != 0 ? 'r' : '-');
        sb.append((p & ZooDefs.Perms.WRITE) != 0 ? 'w' : '-');
        sb.append((p & ZooDefs.Perms.ADMIN) != 0 ? 'a' : '-');
        int rest = p & ~ZooDefs.Perms.ALL;
        if (rest != 0) {
            sb.append("+0x").append(Integer.toHexString(rest));
        }
        return sb.toString();
    }

    static String acl(List<ACL> acl) {
        if (acl == null) {
            return "null";
        }
        List<String> parts = new ArrayList<>();
        for (ACL a : acl) {
            Id id = a.getId();
            parts.add((id == null ? "null" : id.getScheme() + ":" + id.getId()) + "=" + perms(a.getPerms()));
        }
        return "[" + String.join(", ", parts) + "]";
    }

    static String sorted(List<String> l) {
        if (l == null) {
            return "null";
        }
        List<String> c = new ArrayList<>(l);
        Collections.sort(c);
        return c.toString();
    }

    String opResult(OpResult r) {
        if (r instanceof OpResult.CreateResult) {
            OpResult.CreateResult c = (OpResult.CreateResult) r;
            noteCreated(c.getPath());
            return "create:" + c.getPath() + (c.getStat() != null ? " " + stat(c.getStat()) : "");
        } else if (r instanceof OpResult.DeleteResult) {
            return "delete";
        } else if (r instanceof OpResult.SetDataResult) {
            return "setData:" + stat(((OpResult.SetDataResult) r).getStat());
        } else if (r instanceof OpResult.CheckResult) {
            return "check";
        } else if (r instanceof OpResult.ErrorResult) {
            int err = ((OpResult.ErrorResult) r).getErr();
            return "error:" + KeeperException.Code.get(err);
        } else if (r instanceof OpResult.GetDataResult) {
            OpResult.GetDataResult g = (OpResult.GetDataResult) r;
            return "getData:" + data(g.getData()) + " " + stat(g.getStat());
        } else if (r instanceof OpResult.GetChildrenResult) {
            return "getChildren:" + sorted(((OpResult.GetChildrenResult) r).getChildren());
        }
        return "?" + r.getClass().getSimpleName();
    }

    String opResults(List<OpResult> rs) {
        if (rs == null) {
            return "null";
        }
        List<String> parts = new ArrayList<>();
        for (OpResult r : rs) {
            parts.add(opResult(r));
        }
        return "[" + String.join("; ", parts) + "]";
    }

    // ------------------------------------------------------------------ random choices

    static final String[] L1 = {"a", "b", "c"};
    static final String[] L2 = {"x", "y"};
    static final String[] L3 = {"p", "q"};
    static final String[] SPECIAL = {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/nonexistent/deep", "/d"};

    <T> T pick(T[] a) {
        return a[rnd.nextInt(a.length)];
    }

    /** A path from the small pool under /d (nothing is ever created under a "k" node). */
    String poolPath() {
        int depth = rnd.nextInt(4);
        StringBuilder sb = new StringBuilder("/d");
        if (depth >= 1) {
            sb.append('/').append(pick(L1));
        }
        if (depth >= 2) {
            sb.append('/').append(pick(L2));
        }
        if (depth >= 3) {
            sb.append('/').append(pick(L3));
        }
        return sb.toString();
    }

    String containerPath() {
        String p = poolPath();
        return (p.length() > 2 && rnd.nextInt(3) == 0 ? p.substring(0, p.lastIndexOf('/')) : p) + "/k";
    }

    static final String[] NAMES = {"a", "b", "c", "x", "y", "p", "q"};

    static int depth(String p) {
        int n = 0;
        for (int i = 0; i < p.length(); i++) {
            if (p.charAt(i) == '/') {
                n++;
            }
        }
        return n;
    }

    /** Remember what replies said exists, so that operations hit existing nodes often. */
    void learn(String path, boolean exists) {
        if (path == null || !path.startsWith("/d") || path.endsWith("/k") || depth(path) > 5) {
            return;
        }
        if (exists) {
            known.add(path);
        } else {
            known.remove(path);
        }
    }

    void learn(String path, KeeperException e) {
        if (e.code() == KeeperException.Code.NONODE) {
            learn(path, false);
        }
    }

    String knownPath() {
        int i = rnd.nextInt(known.size());
        for (String p : known) {
            if (i-- == 0) {
                return p;
            }
        }
        throw new IllegalStateException();
    }

    /** Any path an operation may target. */
    String anyPath() {
        if (!known.isEmpty() && rnd.nextInt(100) < 40) {
            return knownPath();
        }
        int r = rnd.nextInt(100);
        if (r < 62 || (r < 85 && extras.isEmpty())) {
            return poolPath();
        } else if (r < 85) {
            return extras.get(rnd.nextInt(extras.size()));
        } else if (r < 95) {
            return containerPath();
        }
        return pick(SPECIAL);
    }

    /** A parent under which children may be created (never a "k" node, never below /zookeeper... mostly). */
    String parentPath() {
        if (!known.isEmpty() && rnd.nextInt(100) < 60) {
            return knownPath();
        }
        int r = rnd.nextInt(100);
        if (r < 80 || extras.isEmpty()) {
            return r < 3 ? "/zookeeper" : poolPath();
        }
        return extras.get(rnd.nextInt(extras.size()));
    }

    void noteCreated(String path) {
        learn(path, true);
        if (path == null || !path.matches(".*[0-9]{10}$")) {
            return;
        }
        if (extras.contains(path)) {
            return;
        }
        if (extras.size() < 30) {
            extras.add(path);
        } else {
            extras.set(rnd.nextInt(extras.size()), path);
        }
    }

    byte[] randData() {
        int r = rnd.nextInt(100);
        if (r < 5) {
            return null;
        } else if (r < 15) {
            return new byte[0];
        } else if (r < 95) {
            return ("v" + rnd.nextInt(1000)).getBytes(StandardCharsets.US_ASCII);
        }
        byte[] b = new byte[1 + rnd.nextInt(4096)];
        rnd.nextBytes(b);
        return b;
    }

    int randVersion() {
        int r = rnd.nextInt(100);
        if (r < 30) {
            return -1;
        } else if (r < 60) {
            return 0;
        } else if (r < 80) {
            return 1;
        }
        return 2 + rnd.nextInt(3);
    }

    static String digest(String user, String password) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA1");
            byte[] h = md.digest((user + ":" + password).getBytes(StandardCharsets.UTF_8));
            return user + ":" + Base64.getEncoder().encodeToString(h);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static final String[][] USERS = {{"u1", "p1"}, {"u2", "p2"}, {"u1", "wrong"}};

    int randPerms() {
        int r = rnd.nextInt(100);
        if (r < 50) {
            return ZooDefs.Perms.ALL;
        } else if (r < 60) {
            return ZooDefs.Perms.READ;
        } else if (r < 63) {
            return 0;
        }
        return 1 + rnd.nextInt(31);
    }

    ACL randAclEntry() {
        int r = rnd.nextInt(100);
        int p = randPerms();
        if (r < 35) {
            return new ACL(p, new Id("world", "anyone"));
        } else if (r < 55) {
            String[] u = USERS[rnd.nextInt(2)];
            return new ACL(p, new Id("digest", digest(u[0], u[1])));
        } else if (r < 68) {
            return new ACL(p, new Id("ip", "127.0.0.1"));
        } else if (r < 73) {
            return new ACL(p, new Id("ip", "10.1.2.0/24"));
        } else if (r < 80) {
            return new ACL(p, new Id("ip", "127.0.0.0/8"));
        } else if (r < 90) {
            return new ACL(p, new Id("auth", ""));
        } else if (r < 93) {
            return new ACL(p, new Id("world", "someone"));
        } else if (r < 95) {
            return new ACL(p, new Id("digest", "nocolon"));
        } else if (r < 97) {
            return new ACL(p, new Id("ip", "300.1.1.1"));
        }
        return new ACL(p, new Id("bogus", "x"));
    }

    List<ACL> randAcl() {
        int r = rnd.nextInt(100);
        if (r < 65) {
            return ZooDefs.Ids.OPEN_ACL_UNSAFE;
        }
        List<ACL> l = new ArrayList<>();
        int n = 1 + rnd.nextInt(3);
        for (int i = 0; i < n; i++) {
            l.add(randAclEntry());
        }
        return l;
    }

    CreateMode randMode(boolean forContainerPath) {
        if (forContainerPath) {
            return rnd.nextInt(4) == 0 ? CreateMode.PERSISTENT : CreateMode.CONTAINER;
        }
        int r = rnd.nextInt(100);
        if (r < 35) {
            return CreateMode.PERSISTENT;
        } else if (r < 50) {
            return CreateMode.PERSISTENT_SEQUENTIAL;
        } else if (r < 72) {
            return CreateMode.EPHEMERAL;
        } else if (r < 85) {
            return CreateMode.EPHEMERAL_SEQUENTIAL;
        } else if (r < 93) {
            return CreateMode.PERSISTENT_WITH_TTL;
        }
        return CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL;
    }

    /** Path to create at, matching the mode: containers only at "k" paths. */
    String createPath(CreateMode mode) {
        if (mode == CreateMode.CONTAINER) {
            return containerPath();
        }
        if (mode.isSequential()) {
            String parent = parentPath();
            return (parent.equals("/") ? "" : parent) + "/" + (rnd.nextBoolean() ? "s" : "e-");
        }
        if (rnd.nextInt(10) < 6) {
            String parent = parentPath(); // mostly under a node that exists, so creates succeed
            if (depth(parent) < 5) {
                return (parent.equals("/") ? "" : parent) + "/" + pick(NAMES);
            }
        }
        return poolPath();
    }

    String shortMode(CreateMode m) {
        switch (m) {
            case PERSISTENT: return "P";
            case PERSISTENT_SEQUENTIAL: return "PS";
            case EPHEMERAL: return "E";
            case EPHEMERAL_SEQUENTIAL: return "ES";
            case CONTAINER: return "C";
            case PERSISTENT_WITH_TTL: return "PT";
            case PERSISTENT_SEQUENTIAL_WITH_TTL: return "PST";
            default: return m.name();
        }
    }

    Sess randSess() {
        return slots[rnd.nextInt(SLOTS)];
    }

    /** A watch argument: none, the default watcher (watch=true) or a labelled watcher of this kind. */
    Object randWatch(Sess s, String kind) {
        int r = rnd.nextInt(100);
        if (r < 45) {
            return Boolean.FALSE;
        } else if (r < 70) {
            return Boolean.TRUE;
        }
        return s.watcher(kind);
    }

    static String watchDesc(Object w) {
        if (w instanceof Boolean) {
            return ((Boolean) w) ? " watch=default" : "";
        }
        return " watch=" + ((LabelWatcher) w).label;
    }

    // ------------------------------------------------------------------ the run

    void run(int ops) throws Exception {
        emit("differential seed=" + seed + " ops=" + ops);
        for (int i = 0; i < SLOTS; i++) {
            slots[i] = openSession(i, SESSION_TIMEOUT_MS);
        }
        // the base of the pool, made by S0 (its results are part of the transcript like any other)
        Sess s0 = slots[0];
        for (String p : new String[] {"/d", "/r"}) {
            String line = "#0000 S0 create " + p + " P";
            try {
                line += " -> OK " + s0.zk.create(p, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            } catch (KeeperException e) {
                line += " -> " + code(e);
            }
            finishOp(line, false);
        }
        for (opNo = 1; opNo <= ops; opNo++) {
            long t0 = System.nanoTime();
            step();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            if (ms > 30 && System.getenv("DIFF_SLOW") != null) {
                System.err.println("slow op " + opNo + ": " + ms + " ms");
            }
        }
        opNo = ops + 1;
        dumpTree();
        authFailedProbe();
        emit("end");
        out.flush();
        for (Sess s : slots) {
            s.zk.close();
        }
    }

    Sess openSession(int slot, int timeout) throws Exception {
        Sess s = new Sess(nextSessionId++);
        s.open(timeout);
        String line = String.format("#%04d %s open slot=%d timeout=%d -> negotiated=%d", opNo, s.name(), slot,
            timeout, s.zk.getSessionTimeout());
        slots[slot] = s;
        finishOp(line, false);
        return s;
    }

    /** Barrier on every live session, then print the op line and every session's events. */
    void finishOp(String line, boolean sortEvents) throws Exception {
        List<String> evLines = new ArrayList<>();
        long z = lastZxid;
        for (Sess s : slots) {
            if (s == null) {
                continue;
            }
            s.barrier();
            z = Math.max(z, s.zk.lastZxid());
        }
        for (Sess s : slots) {
            if (s != null) {
                evLines.addAll(s.drain(sortEvents));
            }
        }
        long dz = z - lastZxid;
        lastZxid = z;
        emit(line + " dz=" + dz);
        for (String l : evLines) {
            emit(l);
        }
    }

    String prefix(Sess s) {
        return String.format("#%04d %s ", opNo, s.name());
    }

    void step() throws Exception {
        int r = rnd.nextInt(1000);
        Sess s = randSess();
        if (r < 110) {
            opCreate(s, false);
        } else if (r < 200) {
            opCreate(s, true);
        } else if (r < 270) {
            opDelete(s);
        } else if (r < 330) {
            opExists(s);
        } else if (r < 400) {
            opGetData(s);
        } else if (r < 460) {
            opGetChildren(s, false);
        } else if (r < 510) {
            opGetChildren(s, true);
        } else if (r < 580) {
            opSetData(s);
        } else if (r < 605) {
            opGetAcl(s);
        } else if (r < 635) {
            opSetAcl(s);
        } else if (r < 645) {
            opSync(s);
        } else if (r < 705) {
            opMulti(s);
        } else if (r < 725) {
            opMultiRead(s);
        } else if (r < 740) {
            opGetEphemerals(s);
        } else if (r < 755) {
            opAllChildren(s);
        } else if (r < 790) {
            opAddWatch(s);
        } else if (r < 830) {
            opRemoveWatches(s);
        } else if (r < 845) {
            opRawRemoveWatches(s);
        } else if (r < 860) {
            opAddAuth(s);
        } else if (r < 870) {
            opWhoAmI(s);
        } else if (r < 905) {
            opRawBad(s);
        } else if (r < 925) {
            opCloseReopen();
        } else if (r < 931) {
            opTimeoutProbe();
        } else if (r < 933) {
            opBounce(s);
        } else if (r < 938) {
            opReap(s);
        } else if (r < 945) {
            opConfig(s);
        } else if (r < 960) {
            opRawMulti(s);
        } else {
            opCreate(s, rnd.nextBoolean());
        }
    }

    // ------------------------------------------------------------------ operations

    void opCreate(Sess s, boolean withStat) throws Exception {
        CreateMode mode = randMode(rnd.nextInt(12) == 0);
        if (!withStat && mode.isTTL()) {
            mode = CreateMode.PERSISTENT; // TTL needs the create2-style call (createTTL opcode)
        }
        String path = createPath(mode);
        byte[] d = randData();
        List<ACL> acl = randAcl();
        long ttl = mode.isTTL() ? TTL_MIN + rnd.nextInt(100000) : -1;
        String line = prefix(s) + (withStat ? "create2 " : "create ") + path + " " + shortMode(mode)
            + (mode.isTTL() ? " ttl=" + ttl : "") + " " + data(d) + " acl=" + acl(acl);
        try {
            if (withStat) {
                Stat st = new Stat();
                String created = mode.isTTL() ? s.zk.create(path, d, acl, mode, st, ttl) : s.zk.create(path, d, acl, mode, st);
                noteCreated(created);
                line += " -> OK " + created + " " + stat(st);
            } else {
                String created = s.zk.create(path, d, acl, mode);
                noteCreated(created);
                line += " -> OK " + created;
            }
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        } catch (IllegalArgumentException e) {
            line += " -> client:IllegalArgumentException";
        }
        finishOp(line, false);
    }

    void opDelete(Sess s) throws Exception {
        String path = anyPath();
        int v = randVersion();
        String line = prefix(s) + "delete " + path + " v=" + v;
        try {
            s.zk.delete(path, v);
            learn(path, false);
            line += " -> OK";
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        } catch (IllegalArgumentException e) {
            line += " -> client:IllegalArgumentException";
        }
        finishOp(line, false);
    }

    void opExists(Sess s) throws Exception {
        String path = anyPath();
        Object w = randWatch(s, "exist");
        s.watched(path, w);
        String line = prefix(s) + "exists " + path + watchDesc(w);
        try {
            Stat st = w instanceof Boolean ? s.zk.exists(path, (Boolean) w) : s.zk.exists(path, (Watcher) w);
            line += " -> " + (st == null ? "none" : "OK " + stat(st));
            learn(path, st != null);
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opGetData(Sess s) throws Exception {
        String path = anyPath();
        Object w = randWatch(s, "data");
        s.watched(path, w);
        String line = prefix(s) + "getData " + path + watchDesc(w);
        try {
            Stat st = new Stat();
            byte[] d = w instanceof Boolean ? s.zk.getData(path, (Boolean) w, st) : s.zk.getData(path, (Watcher) w, st);
            line += " -> OK " + data(d) + " " + stat(st);
            learn(path, true);
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opGetChildren(Sess s, boolean two) throws Exception {
        String path = anyPath();
        Object w = randWatch(s, "child");
        s.watched(path, w);
        String line = prefix(s) + (two ? "getChildren2 " : "getChildren ") + path + watchDesc(w);
        try {
            List<String> ch;
            if (two) {
                Stat st = new Stat();
                ch = w instanceof Boolean ? s.zk.getChildren(path, (Boolean) w, st) : s.zk.getChildren(path, (Watcher) w, st);
                line += " -> OK " + sorted(ch) + " " + stat(st);
            } else {
                ch = w instanceof Boolean ? s.zk.getChildren(path, (Boolean) w) : s.zk.getChildren(path, (Watcher) w);
                line += " -> OK " + sorted(ch);
            }
            learn(path, true);
            for (String c : ch) {
                learn((path.equals("/") ? "" : path) + "/" + c, true);
            }
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opSetData(Sess s) throws Exception {
        String path = anyPath();
        int v = randVersion();
        byte[] d = randData();
        String line = prefix(s) + "setData " + path + " v=" + v + " " + data(d);
        try {
            line += " -> OK " + stat(s.zk.setData(path, d, v));
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opGetAcl(Sess s) throws Exception {
        String path = anyPath();
        String line = prefix(s) + "getACL " + path;
        try {
            Stat st = new Stat();
            List<ACL> a = s.zk.getACL(path, st);
            line += " -> OK " + acl(a) + " " + stat(st);
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opSetAcl(Sess s) throws Exception {
        String path = anyPath();
        List<ACL> a = rnd.nextInt(4) == 0 ? ZooDefs.Ids.OPEN_ACL_UNSAFE : randAcl();
        int v = randVersion();
        String line = prefix(s) + "setACL " + path + " av=" + v + " " + acl(a);
        try {
            line += " -> OK " + stat(s.zk.setACL(path, a, v));
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opSync(Sess s) throws Exception {
        String path = anyPath();
        CountDownLatch latch = new CountDownLatch(1);
        AtomicReference<String> res = new AtomicReference<>();
        s.zk.sync(path, (rc, p, ctx) -> {
            res.set(KeeperException.Code.get(rc) + " " + p);
            latch.countDown();
        }, null);
        if (!latch.await(WAIT_MS, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("sync not answered");
        }
        finishOp(prefix(s) + "sync " + path + " -> " + res.get(), false);
    }

    Op randWriteOp(List<String> desc) {
        int r = rnd.nextInt(100);
        if (r < 40) {
            CreateMode mode = randMode(rnd.nextInt(12) == 0);
            String path = createPath(mode);
            byte[] d = randData();
            List<ACL> acl = rnd.nextInt(5) == 0 ? randAcl() : ZooDefs.Ids.OPEN_ACL_UNSAFE;
            if (mode.isTTL()) {
                long ttl = TTL_MIN + rnd.nextInt(100000);
                desc.add("create " + path + " " + shortMode(mode) + " ttl=" + ttl + " " + data(d) + " acl=" + acl(acl));
                return Op.create(path, d, acl, mode, ttl);
            }
            desc.add("create " + path + " " + shortMode(mode) + " " + data(d) + " acl=" + acl(acl));
            return Op.create(path, d, acl, mode);
        } else if (r < 60) {
            String path = anyPath();
            int v = randVersion();
            desc.add("delete " + path + " v=" + v);
            return Op.delete(path, v);
        } else if (r < 82) {
            String path = anyPath();
            int v = randVersion();
            byte[] d = randData();
            desc.add("setData " + path + " v=" + v + " " + data(d));
            return Op.setData(path, d, v);
        }
        String path = anyPath();
        int v = randVersion();
        desc.add("check " + path + " v=" + v);
        return Op.check(path, v);
    }

    void opMulti(Sess s) throws Exception {
        int n = rnd.nextInt(20) == 0 ? 0 : 1 + rnd.nextInt(5);
        List<Op> ops = new ArrayList<>();
        List<String> desc = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ops.add(randWriteOp(desc));
        }
        String line = prefix(s) + "multi [" + String.join("; ", desc) + "]";
        try {
            line += " -> OK " + opResults(s.zk.multi(ops));
        } catch (KeeperException e) {
            line += " -> " + code(e) + " " + opResults(e.getResults());
        } catch (IllegalArgumentException e) {
            line += " -> client:IllegalArgumentException";
        }
        finishOp(line, false);
    }

    /** multi / multiRead straight to the server: empty ones, invalid paths inside, the reply header's err. */
    void opRawMulti(Sess s) throws Exception {
        boolean read = rnd.nextInt(3) == 0;
        int n = rnd.nextInt(4) == 0 ? 0 : 1 + rnd.nextInt(3);
        org.apache.zookeeper.MultiOperationRecord rec = new org.apache.zookeeper.MultiOperationRecord();
        List<String> desc = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            boolean bad = rnd.nextInt(4) == 0;
            String path = bad ? pick(BAD_PATHS) : anyPath();
            if (read) {
                if (rnd.nextBoolean()) {
                    rec.add(Op.getData(path));
                    desc.add("getData " + esc(path));
                } else {
                    rec.add(Op.getChildren(path));
                    desc.add("getChildren " + esc(path));
                }
            } else if (bad) {
                int r = rnd.nextInt(3);
                if (r == 0) {
                    rec.add(Op.create(path, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
                    desc.add("create " + esc(path));
                } else if (r == 1) {
                    rec.add(Op.delete(path, -1));
                    desc.add("delete " + esc(path));
                } else {
                    rec.add(Op.check(path, -1));
                    desc.add("check " + esc(path));
                }
            } else {
                rec.add(randWriteOp(desc));
            }
        }
        org.apache.zookeeper.MultiResponse resp = new org.apache.zookeeper.MultiResponse();
        ReplyHeader h = s.zk.raw(read ? ZooDefs.OpCode.multiRead : ZooDefs.OpCode.multi, rec, resp);
        String line = prefix(s) + "raw " + (read ? "multiRead" : "multi") + " [" + String.join("; ", desc) + "] -> hdr="
            + KeeperException.Code.get(h.getErr());
        if (h.getErr() == 0) {
            line += " " + opResults(resp.getResultList());
        }
        finishOp(line, false);
    }

    void opMultiRead(Sess s) throws Exception {
        int n = 1 + rnd.nextInt(4);
        List<Op> ops = new ArrayList<>();
        List<String> desc = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String path = anyPath();
            if (rnd.nextBoolean()) {
                ops.add(Op.getData(path));
                desc.add("getData " + path);
            } else {
                ops.add(Op.getChildren(path));
                desc.add("getChildren " + path);
            }
        }
        String line = prefix(s) + "multiRead [" + String.join("; ", desc) + "]";
        try {
            line += " -> OK " + opResults(s.zk.multi(ops));
        } catch (KeeperException e) {
            line += " -> " + code(e) + " " + opResults(e.getResults());
        }
        finishOp(line, false);
    }

    void opGetEphemerals(Sess s) throws Exception {
        int r = rnd.nextInt(6);
        String prefixPath = r == 0 ? null : r == 1 ? "/" : r == 2 ? "/d/a" : r == 3 ? "/d/b" : r == 4 ? anyPath() : "/nope";
        String line = prefix(s) + "getEphemerals " + prefixPath;
        try {
            List<String> l = prefixPath == null ? s.zk.getEphemerals() : s.zk.getEphemerals(prefixPath);
            line += " -> OK " + sorted(l);
        } catch (KeeperException e) {
            line += " -> " + code(e);
        }
        finishOp(line, false);
    }

    void opAllChildren(Sess s) throws Exception {
        String path = rnd.nextInt(5) == 0 ? "/" : anyPath();
        String line = prefix(s) + "getAllChildrenNumber " + path;
        try {
            line += " -> OK " + s.zk.getAllChildrenNumber(path);
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    void opAddWatch(Sess s) throws Exception {
        String path = rnd.nextInt(10) == 0 ? "/" : anyPath();
        AddWatchMode mode = rnd.nextBoolean() ? AddWatchMode.PERSISTENT : AddWatchMode.PERSISTENT_RECURSIVE;
        boolean dflt = rnd.nextInt(3) == 0;
        LabelWatcher w = s.watcher(mode == AddWatchMode.PERSISTENT ? "pers" : "prec");
        s.watched(path, w);
        s.hasPersistent = true;
        String line = prefix(s) + "addWatch " + path + " " + mode + " watch=" + (dflt ? "default" : w.label);
        try {
            if (dflt) {
                s.zk.addWatch(path, mode);
            } else {
                s.zk.addWatch(path, w, mode);
            }
            line += " -> OK";
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    static final Watcher.WatcherType[] WTYPES = {
        Watcher.WatcherType.Children, Watcher.WatcherType.Data, Watcher.WatcherType.Any};

    void opRemoveWatches(Sess s) throws Exception {
        String path = !s.watchedPaths.isEmpty() && rnd.nextInt(100) < 60
            ? s.watchedPaths.get(rnd.nextInt(s.watchedPaths.size())) : anyPath();
        Watcher.WatcherType type = pick(WTYPES);
        boolean local = rnd.nextInt(4) == 0;
        boolean all = rnd.nextInt(3) == 0;
        Watcher w = null;
        String wl = "";
        if (!all) {
            if (rnd.nextInt(3) == 0) {
                w = s.dflt;
            } else {
                w = s.watcher(pick(WATCH_KINDS));
            }
            wl = " watch=" + ((LabelWatcher) w).label;
        }
        String line = prefix(s) + (all ? "removeAllWatches " : "removeWatches ") + path + " " + type + wl + " local=" + local;
        try {
            if (all) {
                s.zk.removeAllWatches(path, type, local);
            } else {
                s.zk.removeWatches(path, w, type, local);
            }
            line += " -> OK";
        } catch (KeeperException e) {
            line += " -> " + code(e);
            learn(path, e);
        }
        finishOp(line, false);
    }

    /** removeWatches/checkWatches straight to the server: its own answer, without the client's bookkeeping. */
    void opRawRemoveWatches(Sess s) throws Exception {
        String path = !s.watchedPaths.isEmpty() && rnd.nextInt(100) < 60
            ? s.watchedPaths.get(rnd.nextInt(s.watchedPaths.size())) : anyPath();
        Watcher.WatcherType type = pick(WTYPES);
        boolean check = rnd.nextBoolean();
        Record req = check ? new CheckWatchesRequest(path, type.getIntValue()) : new RemoveWatchesRequest(path, type.getIntValue());
        ReplyHeader h = s.zk.raw(check ? ZooDefs.OpCode.checkWatches : ZooDefs.OpCode.removeWatches, req, null);
        finishOp(prefix(s) + "raw " + (check ? "checkWatches " : "removeWatches ") + path + " " + type + " -> "
            + KeeperException.Code.get(h.getErr()), false);
    }

    void opAddAuth(Sess s) throws Exception {
        String[] u = USERS[rnd.nextInt(USERS.length)];
        s.zk.addAuthInfo("digest", (u[0] + ":" + u[1]).getBytes(StandardCharsets.UTF_8));
        // addAuthInfo has no reply to wait for; the barrier (a request after it) orders it
        finishOp(prefix(s) + "addAuth digest " + u[0] + ":" + u[1], false);
    }

    void opWhoAmI(Sess s) throws Exception {
        List<ClientInfo> l = s.zk.whoAmI();
        List<String> parts = new ArrayList<>();
        if (l != null) {
            for (ClientInfo c : l) {
                parts.add(c.getAuthScheme() + ":" + c.getUser());
            }
        }
        Collections.sort(parts); // Apache keeps a connection's ids in a hash set: the order is arbitrary
        finishOp(prefix(s) + "whoAmI -> " + (l == null ? "null" : parts.toString()), false);
    }

    static final String[] BAD_PATHS = {
        "", "d", "/d/", "/d//a", "/d/./a", "/d/../a", "/d/.", "/d/..", "/d/a\u0000", "//", "/d/a\u0001b", "/zookeeper/../d",
    };

    /** Requests the Java API refuses to send: invalid paths, flags, ACLs and TTLs, straight to the server. */
    void opRawBad(Sess s) throws Exception {
        int r = rnd.nextInt(14);
        String path = pick(BAD_PATHS);
        String desc;
        ReplyHeader h;
        String extra = "";
        switch (r) {
            case 0: {
                CreateResponse resp = new CreateResponse();
                h = s.zk.raw(ZooDefs.OpCode.create, new CreateRequest(path, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, 0), resp);
                desc = "create " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + resp.getPath();
                }
                break;
            }
            case 1: {
                int flags = pick(new Integer[] {-1, 7, 8, 100, 3, 5, 6});
                String p = poolPath();
                Create2Response resp = new Create2Response();
                h = s.zk.raw(ZooDefs.OpCode.create2, new CreateRequest(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, flags), resp);
                desc = "create2 " + p + " flags=" + flags;
                if (h.getErr() == 0) {
                    noteCreated(resp.getPath());
                    extra = " " + resp.getPath() + " " + stat(resp.getStat());
                }
                break;
            }
            case 2: {
                // TTL flags with bad TTLs, or non-TTL flags with a TTL >= 0 (both BADARGUMENTS on Apache).
                // Never non-TTL flags with a negative TTL: Apache 3.8 accepts that request and then dies
                // applying it (IllegalArgumentException in SyncThread, the server exits).
                int flags = pick(new Integer[] {5, 6, 5, 6, 0, 1, 2});
                long ttl = flags >= 5 ? pick(new Long[] {0L, -5L, 0x10000000000L, TTL_MIN}) : pick(new Long[] {0L, TTL_MIN});
                String p = poolPath();
                Create2Response resp = new Create2Response();
                h = s.zk.raw(ZooDefs.OpCode.createTTL, new CreateTTLRequest(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, flags, ttl), resp);
                desc = "createTTL " + p + " flags=" + flags + " ttl=" + ttl;
                if (h.getErr() == 0) {
                    noteCreated(resp.getPath());
                    extra = " " + resp.getPath() + " " + stat(resp.getStat());
                }
                break;
            }
            case 3: {
                String p = poolPath();
                Create2Response resp = new Create2Response();
                List<ACL> acl = rnd.nextBoolean() ? new ArrayList<>() : Arrays.asList(randAclEntry());
                h = s.zk.raw(ZooDefs.OpCode.create2, new CreateRequest(p, new byte[0], acl, 0), resp);
                desc = "create2 " + p + " acl=" + acl(acl);
                if (h.getErr() == 0) {
                    extra = " " + resp.getPath() + " " + stat(resp.getStat());
                }
                break;
            }
            case 4: {
                h = s.zk.raw(ZooDefs.OpCode.delete, new DeleteRequest(path, -1), null);
                desc = "delete " + esc(path);
                break;
            }
            case 5: {
                SetDataResponse resp = new SetDataResponse();
                h = s.zk.raw(ZooDefs.OpCode.setData, new SetDataRequest(path, new byte[0], -1), resp);
                desc = "setData " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + stat(resp.getStat());
                }
                break;
            }
            case 6: {
                GetDataResponse resp = new GetDataResponse();
                h = s.zk.raw(ZooDefs.OpCode.getData, new GetDataRequest(path, false), resp);
                desc = "getData " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + data(resp.getData()) + " " + stat(resp.getStat());
                }
                break;
            }
            case 7: {
                ExistsResponse resp = new ExistsResponse();
                h = s.zk.raw(ZooDefs.OpCode.exists, new ExistsRequest(path, false), resp);
                desc = "exists " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + stat(resp.getStat());
                }
                break;
            }
            case 8: {
                GetChildren2Response resp = new GetChildren2Response();
                h = s.zk.raw(ZooDefs.OpCode.getChildren2, new GetChildren2Request(path, false), resp);
                desc = "getChildren2 " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + sorted(resp.getChildren()) + " " + stat(resp.getStat());
                }
                break;
            }
            case 9: {
                SetACLResponse resp = new SetACLResponse();
                String p = rnd.nextBoolean() ? path : anyPath();
                List<ACL> acl = new ArrayList<>();
                h = s.zk.raw(ZooDefs.OpCode.setACL, new SetACLRequest(p, acl, -1), resp);
                desc = "setACL " + esc(p) + " acl=[]";
                if (h.getErr() == 0) {
                    extra = " " + stat(resp.getStat());
                }
                break;
            }
            case 10: {
                SyncResponse resp = new SyncResponse();
                h = s.zk.raw(ZooDefs.OpCode.sync, new SyncRequest(path), resp);
                desc = "sync " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + esc(resp.getPath());
                }
                break;
            }
            case 11: {
                GetAllChildrenNumberResponse resp = new GetAllChildrenNumberResponse();
                h = s.zk.raw(ZooDefs.OpCode.getAllChildrenNumber, new GetAllChildrenNumberRequest(path), resp);
                desc = "getAllChildrenNumber " + esc(path);
                if (h.getErr() == 0) {
                    extra = " " + resp.getTotalNumber();
                }
                break;
            }
            case 12: {
                GetEphemeralsResponse resp = new GetEphemeralsResponse();
                String p = rnd.nextBoolean() ? path : "";
                h = s.zk.raw(ZooDefs.OpCode.getEphemerals, new GetEphemeralsRequest(p), resp);
                desc = "getEphemerals " + esc(p);
                if (h.getErr() == 0) {
                    extra = " " + sorted(resp.getEphemerals());
                }
                break;
            }
            default: {
                String p = rnd.nextBoolean() ? path : anyPath();
                h = s.zk.raw(ZooDefs.OpCode.addWatch, new AddWatchRequest(p, AddWatchMode.PERSISTENT.getMode()), null);
                desc = "addWatch " + esc(p) + " PERSISTENT (server side only)";
                break;
            }
        }
        finishOp(prefix(s) + "raw " + desc + " -> " + KeeperException.Code.get(h.getErr()) + extra, false);
    }

    static String esc(String p) {
        if (p == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("\"");
        for (char c : p.toCharArray()) {
            if (c < 0x20 || c > 0x7e) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    void opCloseReopen() throws Exception {
        int slot = rnd.nextInt(SLOTS);
        Sess s = slots[slot];
        slots[slot] = null;
        s.zk.close();
        // events caused by the close go to the other sessions; the order in which a server deletes
        // a session's ephemerals is not specified, so they are sorted
        finishOp(prefix(s) + "close", true);
        slots[slot] = openSession(slot, SESSION_TIMEOUT_MS);
    }

    /** A short-lived extra session that asks for an out-of-range timeout: the negotiated value is clamped. */
    void opTimeoutProbe() throws Exception {
        int t = pick(new Integer[] {1000, 3999, 4000, 5000, 39999, 40001, 100000});
        Sess s = new Sess(nextSessionId++);
        s.open(t);
        String line = String.format("#%04d %s open (probe) timeout=%d -> negotiated=%d", opNo, s.name(), t,
            s.zk.getSessionTimeout());
        finishOp(line, false);
        s.zk.close();
        finishOp(prefix(s) + "close (probe)", true);
    }

    /**
     * Drop a session's TCP connection; the client reconnects to the same session, replaying its auth
     * and its watches (SetWatches, or SetWatches2 when it has persistent watches). Sometimes another
     * session makes one change while the connection is down: the server must then fire the missed
     * one-shot watches from the relative zxid in SetWatches. Whether the change lands before or after
     * the reconnect, the events are the same (one change, no persistent watches on that session; the
     * events of this operation are sorted), so the transcript is deterministic either way.
     */
    void opBounce(Sess s) throws Exception {
        boolean missed = !s.hasPersistent && rnd.nextBoolean();
        String line = prefix(s) + "reconnect";
        int before = s.connected.get();
        s.zk.dropSocket();
        // a queued request wakes the send thread, which then notices the dead socket at once
        // (otherwise only its next ping would); the request itself fails with CONNECTIONLOSS
        s.zk.exists("/", false, (rc, path, ctx, stat) -> { }, null);
        if (missed) {
            Sess b = slots[(Arrays.asList(slots).indexOf(s) + 1 + rnd.nextInt(SLOTS - 1)) % SLOTS];
            String path = !s.watchedPaths.isEmpty() && rnd.nextInt(100) < 80
                ? s.watchedPaths.get(rnd.nextInt(s.watchedPaths.size())) : anyPath();
            int r = rnd.nextInt(3);
            line += " meanwhile " + b.name() + (r == 0 ? " setData " : r == 1 ? " delete " : " create ") + path;
            try {
                if (r == 0) {
                    b.zk.setData(path, "m".getBytes(StandardCharsets.US_ASCII), -1);
                } else if (r == 1) {
                    b.zk.delete(path, -1);
                    learn(path, false);
                } else {
                    b.zk.create(path, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    learn(path, true);
                }
                line += " -> OK";
            } catch (KeeperException e) {
                line += " -> " + code(e);
            } catch (IllegalArgumentException e) {
                line += " -> client:IllegalArgumentException";
            }
        }
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (s.connected.get() == before) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException(s.name() + ": no reconnect within " + WAIT_MS + " ms");
            }
            Thread.sleep(5);
        }
        finishOp(line, true);
    }

    /** Make a container and a TTL node reapable, then wait until the server reaps them. */
    void opReap(Sess s) throws Exception {
        int n = reapNo++;
        String c = "/r/c" + n;
        String t = "/r/t" + n;
        Sess other = slots[(Arrays.asList(slots).indexOf(s) + 1) % SLOTS];
        String line = prefix(s) + "reap " + c + " " + t + ":";
        try {
            s.zk.create(c, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            s.zk.create(c + "/child", null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            other.zk.exists(c, other.watchers.get("exist.w1"));
            other.zk.getChildren("/r", other.watchers.get("child.w1"));
            s.zk.delete(c + "/child", -1);
            Stat st = new Stat();
            s.zk.create(t, null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, st, 1);
            line += " created ttl-node " + stat(st);
        } catch (KeeperException e) {
            line += " setup " + code(e);
        }
        long deadline = System.currentTimeMillis() + 20000;
        boolean gone = false;
        while (System.currentTimeMillis() < deadline) {
            if (s.zk.exists(c, false) == null && s.zk.exists(t, false) == null) {
                gone = true;
                break;
            }
            Thread.sleep(50);
        }
        line += gone ? " both reaped" : " NOT reaped within 20 s";
        Stat rs = s.zk.exists("/r", false);
        line += " /r " + stat(rs);
        // sorted: a recursive watch on "/" sees both deletions, in the reaper's (unspecified) order
        finishOp(line, true);
    }

    void opConfig(Sess s) throws Exception {
        if (rnd.nextBoolean()) {
            String line = prefix(s) + "getConfig";
            try {
                Stat st = new Stat();
                byte[] d = s.zk.getConfig(false, st);
                line += " -> OK " + data(d) + " " + stat(st);
            } catch (KeeperException e) {
                line += " -> " + code(e);
            }
            finishOp(line, false);
        } else {
            String line = prefix(s) + "reconfig";
            try {
                s.zk.reconfigure("server.9=127.0.0.1:2888:3888;2181", null, null, -1, new Stat());
                line += " -> OK";
            } catch (KeeperException e) {
                line += " -> " + code(e);
            }
            finishOp(line, false);
        }
    }

    /** The whole tree at the end, as S0 sees it. */
    void dumpTree() throws Exception {
        emit("tree:");
        dump(slots[0], "/");
    }

    void dump(Sess s, String path) throws Exception {
        String line = "  " + path;
        List<String> children = Collections.emptyList();
        Stat st = s.zk.exists(path, false); // exists needs no permission
        if (st == null) {
            emit(line + " gone"); // an ephemeral of a session closed meanwhile cannot be: only S0 runs now
            return;
        }
        line += " " + stat(st);
        try {
            line += " acl=" + acl(s.zk.getACL(path, null));
        } catch (KeeperException e) {
            line += " acl=" + code(e);
        }
        try {
            line += " data=" + data(s.zk.getData(path, false, null));
        } catch (KeeperException e) {
            line += " data=" + code(e);
        }
        try {
            children = new ArrayList<>(s.zk.getChildren(path, false));
            Collections.sort(children);
        } catch (KeeperException e) {
            line += " children=" + code(e);
        }
        emit(line);
        for (String c : children) {
            dump(s, (path.equals("/") ? "" : path) + "/" + c);
        }
    }

    /** At the very end (its session is left to expire): an unknown auth scheme fails the session. */
    void authFailedProbe() throws Exception {
        Sess s = new Sess(nextSessionId++);
        s.open(4000);
        s.zk.addAuthInfo("bogus", "x".getBytes(StandardCharsets.UTF_8));
        boolean failed = s.authFailed.await(10, TimeUnit.SECONDS);
        String line = "#" + opNo + " " + s.name() + " addAuth bogus -> " + (failed ? "AuthFailed event" : "no AuthFailed event")
            + ", then exists /d";
        try {
            s.zk.exists("/d", false);
            line += " -> OK";
        } catch (KeeperException e) {
            line += " -> " + code(e);
        }
        emit(line);
        s.zk.close();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: java Differential HOST:PORT SEED [OPS]");
            System.exit(2);
        }
        System.setProperty("zookeeper.sasl.client", "false");
        int ops = args.length > 2 ? Integer.parseInt(args[2]) : 2500;
        Differential d = new Differential(args[0], Long.parseLong(args[1]));
        try {
            d.run(ops);
        } catch (Throwable t) {
            d.emit("ABORT at op " + d.opNo + ": " + t);
            d.out.flush();
            t.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }
}
