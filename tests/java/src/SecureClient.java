import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;

/**
 * The Java client over TLS (x509 identity) and with SASL DIGEST-MD5 (JAAS Client section).
 *
 *   java SecureClient MODE HOST:PORT EXPECTED [name=value ...]
 *
 * Each name=value is set as a system property before the client is made (so the test need
 * not pass -D flags): zookeeper.client.secure, zookeeper.clientCnxnSocket,
 * zookeeper.ssl.*, java.security.auth.login.config...
 *
 * MODE tls:        EXPECTED is the x509 subject; creates a node with ACL x509:subject ALL,
 *                  reads it, checks getACL and whoAmI.
 * MODE sasl:       EXPECTED is the SASL user; waits for SaslAuthenticated, creates a node
 *                  with ACL sasl:user ALL, reads it, checks whoAmI.
 * MODE sasl-fail:  EXPECTED is the KeeperState event that must follow SyncConnected
 *                  (AuthFailed); then the client is AUTH_FAILED and requests fail with
 *                  AUTHFAILED.
 *
 * Prints "PASS name", "FAIL name: reason" and "INFO ..." lines, then "RESULT OK" or
 * "RESULT FAILED"; exits 1 on any failure.
 */
public final class SecureClient {
    static final int SESSION_TIMEOUT_MS = 20_000;
    static final long WAIT_S = 20;
    static final List<String> failed = new ArrayList<>();
    static final BlockingQueue<KeeperState> states = new LinkedBlockingQueue<>();

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.out.println("usage: SecureClient tls|sasl|sasl-fail HOST:PORT EXPECTED [name=value ...]");
            System.exit(2);
        }
        String mode = args[0];
        String hosts = args[1];
        String expected = args[2];
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            System.setProperty(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        ZooKeeper zk = null;
        try {
            zk = new ZooKeeper(hosts, SESSION_TIMEOUT_MS, event -> {
                if (event.getPath() == null) {
                    states.add(event.getState());
                }
            });
            switch (mode) {
                case "tls":
                    tls(zk, expected);
                    break;
                case "sasl":
                    sasl(zk, expected);
                    break;
                case "sasl-fail":
                    saslFail(zk, expected);
                    break;
                default:
                    fail("mode", "unknown mode " + mode);
            }
        } catch (Throwable t) {
            fail(mode, t.toString());
        } finally {
            if (zk != null) {
                try {
                    zk.close(5_000);
                } catch (Throwable t) {
                    System.out.println("INFO close: " + t);
                }
            }
        }
        System.out.println(failed.isEmpty() ? "RESULT OK" : "RESULT FAILED " + failed);
        System.exit(failed.isEmpty() ? 0 : 1);
    }

    static void tls(ZooKeeper zk, String subject) throws Exception {
        awaitState(KeeperState.SyncConnected, "connected");
        List<ACL> acl = Collections.singletonList(new ACL(Perms.ALL, new Id("x509", subject)));
        zk.create("/java-tls", bytes("over tls"), acl, CreateMode.PERSISTENT);
        check("read", "over tls", new String(zk.getData("/java-tls", false, null), StandardCharsets.UTF_8));
        check("getACL", acl.toString(), zk.getACL("/java-tls", null).toString());
        check("whoAmI", "[ip:127.0.0.1, x509:" + subject + "]", infos(zk.whoAmI()));
    }

    static void sasl(ZooKeeper zk, String user) throws Exception {
        awaitState(KeeperState.SyncConnected, "connected");
        awaitState(KeeperState.SaslAuthenticated, "sasl_authenticated");
        List<ACL> acl = Collections.singletonList(new ACL(Perms.ALL, new Id("sasl", user)));
        zk.create("/java-sasl", bytes("over sasl"), acl, CreateMode.PERSISTENT);
        check("read", "over sasl", new String(zk.getData("/java-sasl", false, null), StandardCharsets.UTF_8));
        check("getACL", acl.toString(), zk.getACL("/java-sasl", null).toString());
        check("whoAmI", "[ip:127.0.0.1, sasl:" + user + "]", infos(zk.whoAmI()));
    }

    static void saslFail(ZooKeeper zk, String expectedState) throws Exception {
        List<KeeperState> seen = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        KeeperState want = KeeperState.valueOf(expectedState);
        while (System.nanoTime() < deadline && !seen.contains(want)) {
            KeeperState s = states.poll(100, TimeUnit.MILLISECONDS);
            if (s != null) {
                seen.add(s);
            }
        }
        System.out.println("INFO states: " + seen);
        check("events", "[SyncConnected, " + want + "]", seen.toString());
        check("state", ZooKeeper.States.AUTH_FAILED, zk.getState());
        try {
            zk.getData("/", false, null);
            fail("request_after_failure", "getData succeeded");
        } catch (KeeperException e) {
            System.out.println("INFO request after failure: " + e.code() + " (" + e.getClass().getSimpleName() + ")");
            check("request_after_failure", KeeperException.Code.AUTHFAILED, e.code());
        }
    }

    static void awaitState(KeeperState want, String name) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        List<KeeperState> seen = new ArrayList<>();
        while (System.nanoTime() < deadline) {
            KeeperState s = states.poll(100, TimeUnit.MILLISECONDS);
            if (s == null) {
                continue;
            }
            seen.add(s);
            if (s == want) {
                System.out.println("PASS " + name);
                return;
            }
        }
        throw new IllegalStateException("no " + want + " within " + WAIT_S + " s; states " + seen);
    }

    static String infos(List<ClientInfo> infos) {
        List<String> out = new ArrayList<>();
        for (ClientInfo ci : infos) {
            out.add(ci.getAuthScheme() + ":" + ci.getUser());
        }
        Collections.sort(out);
        return out.toString();
    }

    static void check(String name, Object expected, Object actual) {
        if (expected.equals(actual)) {
            System.out.println("PASS " + name + ": " + actual);
        } else {
            fail(name, "expected " + expected + ", got " + actual);
        }
    }

    static void fail(String name, String reason) {
        failed.add(name);
        System.out.println("FAIL " + name + ": " + reason);
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
