import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.proto.CreateTTLRequest;

/**
 * Checks for a server started with extendedTypesEnabled=false:
 * java ExtendedTypesOff HOST:PORT. TTL nodes are refused with UNIMPLEMENTED
 * (-6); containers do not need extended types and keep working.
 */
public final class ExtendedTypesOff {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java ExtendedTypesOff HOST:PORT");
            System.exit(2);
        }
        ClientCompat.hosts = args[0];
        ClientCompat.base = "/exttypesoff-" + Long.toHexString(System.currentTimeMillis());
        Map<String, ClientCompat.Body> checks = new LinkedHashMap<>();
        checks.put("ext_off_ttl_unimplemented", ExtendedTypesOff::checkTtlUnimplemented);
        checks.put("ext_off_raw_create_ttl", ExtendedTypesOff::checkRawCreateTtl);
        checks.put("ext_off_container_still_works", ExtendedTypesOff::checkContainer);
        System.exit(ClientCompat.runChecks(checks, Arrays.asList(args).subList(1, args.length)));
    }

    static void checkTtlUnimplemented() throws Exception {
        ZooKeeper zk = ClientCompat.connect();
        try {
            String b = ClientCompat.base;
            ClientCompat.expectCode(Code.UNIMPLEMENTED, () -> zk.create(b + "/t", ClientCompat.EMPTY,
                    Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 1000), "PERSISTENT_WITH_TTL");
            ClientCompat.expectCode(Code.UNIMPLEMENTED, () -> zk.create(b + "/st-", ClientCompat.EMPTY,
                    Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, new Stat(), 1000),
                    "PERSISTENT_SEQUENTIAL_WITH_TTL");
            ClientCompat.expect(zk.exists(b + "/t", false) == null, "nothing created");
            try {
                zk.multi(Arrays.asList(
                        Op.create(b + "/m", ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                        Op.create(b + "/mt", ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL,
                                1000)));
                throw new ClientCompat.CheckFailed("multi with a TTL create succeeded");
            } catch (KeeperException e) {
                ClientCompat.expectEq(Code.UNIMPLEMENTED, e.code(), "multi code");
                ClientCompat.expectEq(Arrays.asList(0, -6), ClientCompat.errCodes(e.getResults()), "multi results");
            }
            ClientCompat.expect(zk.exists(b + "/m", false) == null, "multi rolled back");
        } finally {
            ClientCompat.closeQuietly(zk);
        }
    }

    static void checkRawCreateTtl() throws Exception {
        // UNIMPLEMENTED is decided before the ttl value is validated.
        try (RawClient raw = new RawClient(ClientCompat.hosts, 30_000)) {
            long[] ttls = {1000, 0, 1L << 40};
            for (int flags : new int[] {5, 6}) {
                for (long ttl : ttls) {
                    RawClient.Reply r = raw.call(ZooDefs.OpCode.createTTL, new CreateTTLRequest(
                            ClientCompat.base + "/raw", ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, flags, ttl));
                    ClientCompat.info("ext_off_raw_create_ttl", "createTTL flags=" + flags + " ttl=" + ttl + " -> " + r.err);
                    ClientCompat.expectEq(-6, r.err, "createTTL flags=" + flags + " ttl=" + ttl);
                }
            }
            RawClient.Reply r = raw.call(ZooDefs.OpCode.createTTL, new CreateTTLRequest(
                    ClientCompat.base + "/raw", ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, 0, 1000));
            ClientCompat.info("ext_off_raw_create_ttl", "createTTL flags=0 ttl=1000 -> " + r.err);
            ClientCompat.expectEq(-8, r.err, "createTTL with a non-TTL mode");
        }
    }

    static void checkContainer() throws Exception {
        ZooKeeper zk = ClientCompat.connect();
        try {
            String c = ClientCompat.base + "/c";
            zk.create(c, ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER);
            zk.create(c + "/k", ClientCompat.EMPTY, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.delete(c + "/k", -1);
            ClientCompat.expect(ClientCompat.waitFor(15_000, () -> zk.exists(c, false) == null),
                    "container not removed within 15 s");
        } finally {
            ClientCompat.closeQuietly(zk);
        }
    }

    private ExtendedTypesOff() {
    }
}
