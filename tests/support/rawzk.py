"""A deliberately small raw ZooKeeper wire client for tests that need to see bytes.

kazoo hides some things tests must check: the order of frames on the wire
(a watch event before the reply of a later read), the negotiated session
timeout, a reply header's err for a failed multi, and what the server does
with malformed input. This module speaks just enough jute for that:
length-prefixed frames, the connect handshake, request/reply headers and a
few record encoders. Written for these tests from the jute definitions.
"""

import socket
import struct
import time

# Opcodes (zookeeper.jute / ZooDefs.OpCode)
OP_CREATE = 1
OP_DELETE = 2
OP_EXISTS = 3
OP_GET_DATA = 4
OP_SET_DATA = 5
OP_GET_ACL = 6
OP_SET_ACL = 7
OP_GET_CHILDREN = 8
OP_SYNC = 9
OP_PING = 11
OP_GET_CHILDREN2 = 12
OP_CHECK = 13
OP_MULTI = 14
OP_CREATE2 = 15
OP_CLOSE = -11

XID_WATCH_EVENT = -1
XID_PING = -2

# Watch event types
EVENT_CREATED = 1
EVENT_DELETED = 2
EVENT_CHANGED = 3
EVENT_CHILD = 4

PERM_ALL = 31

DEFAULT_TIMEOUT_S = 10.0


def pack_int(v):
    return struct.pack(">i", v)


def pack_long(v):
    return struct.pack(">q", v)


def pack_bool(v):
    return b"\x01" if v else b"\x00"


def pack_buffer(b):
    if b is None:
        return pack_int(-1)
    return pack_int(len(b)) + b


def pack_string(s):
    if s is None:
        return pack_int(-1)
    return pack_buffer(s.encode("utf-8"))


def pack_acl_list(acls):
    out = pack_int(len(acls))
    for perms, scheme, ident in acls:
        out += pack_int(perms) + pack_string(scheme) + pack_string(ident)
    return out


OPEN_ACL = [(PERM_ALL, "world", "anyone")]


def frame(payload):
    return pack_int(len(payload)) + payload


class Reader:
    """Cursor over a received record."""

    def __init__(self, data, offset=0):
        self.data = data
        self.offset = offset

    def int(self):
        (v,) = struct.unpack_from(">i", self.data, self.offset)
        self.offset += 4
        return v

    def long(self):
        (v,) = struct.unpack_from(">q", self.data, self.offset)
        self.offset += 8
        return v

    def bool(self):
        v = self.data[self.offset] != 0
        self.offset += 1
        return v

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        v = self.data[self.offset : self.offset + n]
        if len(v) != n:
            raise ValueError("buffer runs past the record")
        self.offset += n
        return bytes(v)

    def string(self):
        b = self.buffer()
        return None if b is None else b.decode("utf-8")

    def stat(self):
        names = (
            "czxid mzxid ctime mtime version cversion aversion "
            "ephemeralOwner dataLength numChildren pzxid"
        ).split()
        vals = [self.long(), self.long(), self.long(), self.long(), self.int(), self.int(), self.int(),
                self.long(), self.int(), self.int(), self.long()]
        return dict(zip(names, vals))

    def remaining(self):
        return len(self.data) - self.offset


class RawClient:
    """One TCP connection to a server; synchronous, single-threaded."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT_S):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.next_xid = 1
        self.session_id = None
        self.negotiated_timeout_ms = None
        self.passwd = None
        self.server_read_only = None

    # --- framing -------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("wanted %d bytes, got %d" % (n, len(buf)))
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
            buf.extend(chunk)
        return bytes(buf)

    def recv_frame(self, timeout=None):
        (n,) = struct.unpack(">i", self.recv_exact(4, timeout))
        if n < 0 or n > 16 * 1024 * 1024:
            raise ValueError("bad frame length %d" % n)
        return self.recv_exact(n, timeout)

    # --- session -------------------------------------------------------

    def connect(self, timeout_ms=30000, session_id=0, passwd=b"\x00" * 16, last_zxid=0, read_only=False):
        req = (
            pack_int(0)
            + pack_long(last_zxid)
            + pack_int(timeout_ms)
            + pack_long(session_id)
            + pack_buffer(passwd)
            + pack_bool(read_only)
        )
        self.send_raw(frame(req))
        r = Reader(self.recv_frame())
        r.int()  # protocolVersion
        self.negotiated_timeout_ms = r.int()
        self.session_id = r.long()
        self.passwd = r.buffer()
        # The server says whether it is read-only only to a client that sent the flag.
        self.server_read_only = r.bool() if r.remaining() else None
        return self

    def send_request(self, op, payload=b"", xid=None):
        if xid is None:
            xid = self.next_xid
            self.next_xid += 1
        self.send_raw(frame(pack_int(xid) + pack_int(op) + payload))
        return xid

    def read_message(self, timeout=None):
        """Next frame as (xid, zxid, err, Reader positioned after the reply header)."""
        r = Reader(self.recv_frame(timeout))
        xid = r.int()
        zxid = r.long()
        err = r.int()
        return xid, zxid, err, r

    def call(self, op, payload=b"", timeout=None):
        """Send a request and return (zxid, err, Reader); fails on any other frame first."""
        xid = self.send_request(op, payload)
        while True:
            rxid, zxid, err, r = self.read_message(timeout)
            if rxid == XID_PING:
                continue
            if rxid != xid:
                raise AssertionError("expected reply to xid %d, got xid %d" % (xid, rxid))
            return zxid, err, r

    def close_session(self):
        _, err, _ = self.call(OP_CLOSE)
        return err

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --- request payloads ----------------------------------------------------

def create_payload(path, data=b"", acls=OPEN_ACL, flags=0):
    return pack_string(path) + pack_buffer(data) + pack_acl_list(acls) + pack_int(flags)


def path_watch_payload(path, watch=False):
    return pack_string(path) + pack_bool(watch)


def set_data_payload(path, data, version=-1):
    return pack_string(path) + pack_buffer(data) + pack_int(version)


def delete_payload(path, version=-1):
    return pack_string(path) + pack_int(version)


def multi_payload(ops):
    """ops: list of (opcode, payload). Each op is MultiHeader(type, done=false, err=-1) + body."""
    out = b""
    for op, body in ops:
        out += pack_int(op) + pack_bool(False) + pack_int(-1) + body
    return out + pack_int(-1) + pack_bool(True) + pack_int(-1)


def read_multi_response(r):
    """Results of a multi reply as (type, value) pairs, up to the done header.

    value: the error code for type -1, the path for create, (path, stat) for
    create2, the stat for setData, None for delete and check.
    """
    results = []
    while True:
        op = r.int()
        done = r.bool()
        r.int()  # the header's err; an error result carries its code in the body
        if done:
            break
        if op == -1:
            results.append((op, r.int()))
        elif op == OP_CREATE:
            results.append((op, r.string()))
        elif op == OP_CREATE2:
            results.append((op, (r.string(), r.stat())))
        elif op == OP_SET_DATA:
            results.append((op, r.stat()))
        else:  # delete, check: no body
            results.append((op, None))
    return results
