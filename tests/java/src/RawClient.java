import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.ArrayDeque;

import org.apache.jute.BinaryInputArchive;
import org.apache.jute.BinaryOutputArchive;
import org.apache.jute.Record;
import org.apache.zookeeper.proto.ConnectRequest;
import org.apache.zookeeper.proto.ConnectResponse;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.proto.WatcherEvent;

/**
 * A minimal wire-level client: it sends requests the Java client refuses to
 * send (bad TTLs, odd create flags/opcode pairs) so that the server's own
 * validation answers. Uses only the jute record classes for encoding.
 */
final class RawClient implements AutoCloseable {
    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private int nextXid = 1;
    private final ArrayDeque<WatcherEvent> events = new ArrayDeque<>();
    final long sessionId;
    final int negotiatedTimeout;

    RawClient(String connectString, int timeoutMs) throws IOException {
        // A raw connection goes to one server: the first of an ensemble's connect string.
        String hostPort = connectString.split(",")[0];
        int colon = hostPort.lastIndexOf(':');
        String host = hostPort.substring(0, colon);
        int port = Integer.parseInt(hostPort.substring(colon + 1));
        socket = new Socket();
        socket.connect(new InetSocketAddress(host, port), 10_000);
        socket.setSoTimeout(10_000);
        socket.setTcpNoDelay(true);
        in = new DataInputStream(socket.getInputStream());
        out = new DataOutputStream(socket.getOutputStream());

        ByteArrayOutputStream baos = new ByteArrayOutputStream();
        BinaryOutputArchive boa = BinaryOutputArchive.getArchive(baos);
        new ConnectRequest(0, 0L, timeoutMs, 0L, new byte[16]).serialize(boa, "connect");
        boa.writeBool(false, "readOnly");
        sendFrame(baos.toByteArray());

        BinaryInputArchive bia = BinaryInputArchive.getArchive(new ByteArrayInputStream(readFrame()));
        ConnectResponse resp = new ConnectResponse();
        resp.deserialize(bia, "connect");
        if (resp.getSessionId() == 0) {
            throw new IOException("session refused (ConnectResponse with sessionId 0)");
        }
        sessionId = resp.getSessionId();
        negotiatedTimeout = resp.getTimeOut();
    }

    private void sendFrame(byte[] body) throws IOException {
        out.writeInt(body.length);
        out.write(body);
        out.flush();
    }

    private byte[] readFrame() throws IOException {
        int len = in.readInt();
        if (len < 0 || len > 16 * 1024 * 1024) {
            throw new IOException("bad frame length " + len);
        }
        byte[] b = new byte[len];
        in.readFully(b);
        return b;
    }

    /** Result of one request: the reply header's err and the raw body. */
    static final class Reply {
        final int err;
        final long zxid;
        final BinaryInputArchive body;

        Reply(int err, long zxid, BinaryInputArchive body) {
            this.err = err;
            this.zxid = zxid;
            this.body = body;
        }
    }

    /** Sends one request (request may be null) and waits for its reply. */
    Reply call(int opType, Record request) throws IOException {
        int xid = nextXid++;
        ByteArrayOutputStream baos = new ByteArrayOutputStream();
        BinaryOutputArchive boa = BinaryOutputArchive.getArchive(baos);
        new RequestHeader(xid, opType).serialize(boa, "header");
        if (request != null) {
            request.serialize(boa, "request");
        }
        sendFrame(baos.toByteArray());
        for (int i = 0; i < 1000; i++) {
            BinaryInputArchive bia = BinaryInputArchive.getArchive(new ByteArrayInputStream(readFrame()));
            ReplyHeader h = new ReplyHeader();
            h.deserialize(bia, "header");
            if (h.getXid() == xid) {
                return new Reply(h.getErr(), h.getZxid(), bia);
            }
            if (h.getXid() == -1) {
                WatcherEvent e = new WatcherEvent();
                e.deserialize(bia, "event");
                events.add(e);
            }
            // pings (-2) and others are skipped
        }
        throw new IOException("no reply for xid " + xid);
    }

    /** The next watch event (queued or read now), or null if none arrives within timeoutMs. */
    WatcherEvent nextEvent(int timeoutMs) throws IOException {
        if (!events.isEmpty()) {
            return events.poll();
        }
        long deadline = System.currentTimeMillis() + timeoutMs;
        try {
            while (true) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    return null;
                }
                socket.setSoTimeout((int) left);
                BinaryInputArchive bia = BinaryInputArchive.getArchive(new ByteArrayInputStream(readFrame()));
                ReplyHeader h = new ReplyHeader();
                h.deserialize(bia, "header");
                if (h.getXid() == -1) {
                    WatcherEvent e = new WatcherEvent();
                    e.deserialize(bia, "event");
                    return e;
                }
            }
        } catch (SocketTimeoutException e) {
            return null;
        } finally {
            socket.setSoTimeout(10_000);
        }
    }

    @Override
    public void close() {
        try {
            call(-11 /* closeSession */, null);
        } catch (IOException ignored) {
            // the server may close the socket before or after answering
        }
        try {
            socket.close();
        } catch (IOException ignored) {
        }
    }
}
