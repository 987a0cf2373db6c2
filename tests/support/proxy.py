"""A tiny loopback TCP proxy that a test can pause and cut, for session tests.

    with TcpProxy(server.port) as proxy:
        client = KazooClient(hosts=proxy.hosts)
        proxy.drop_all()   # both TCP connections close; the session lives on
        proxy.pause()      # bytes stop flowing both ways; new connections are refused
        proxy.resume()

``connect_retry_s`` (optional, default 0): when the target refuses, keep the accepted
connection waiting and retry the target for that long before closing it. (A client that
dialed the target directly would be refused and could retry; through the proxy it sees
its connection accepted, then closed, unless the target starts listening meanwhile.)

``rewrite_first`` (optional) sees what a connecting side sends before any of it is
forwarded: called with the bytes received so far, it returns None to wait for more, or
the bytes to forward in their place; everything after is forwarded as is. (A
partitioned ensemble uses it to keep ZooKeeper's election connections on the proxies.)

One thread runs a select() loop over the listener and every connection pair,
with non-blocking sockets and in-memory buffers. While paused it still reads
(so it notices a side closing) but forwards nothing; a side that closes
closes its peer too, after a best-effort flush. Commands from the test thread
run inside the loop and are waited for with a deadline.
"""

import select
import socket
import threading
import time

SELECT_INTERVAL_S = 0.02
COMMAND_TIMEOUT_S = 5.0
BUFFER_BYTES_MAX = 16 * 1024 * 1024
RECV_BYTES = 65536
REWRITE_HEAD_BYTES_MAX = 64 * 1024


class _Pair:
    def __init__(self, client, upstream, rewrite_first=None):
        self.client = client
        self.upstream = upstream
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        # What the client sent while rewrite_first still waits for more (None once done).
        self.rewrite_first = rewrite_first
        self.head = bytearray() if rewrite_first is not None else None

    def peer_of(self, sock):
        return self.upstream if sock is self.client else self.client

    def buffer_to(self, sock):
        return self.to_client if sock is self.client else self.to_upstream


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1", rewrite_first=None, connect_retry_s=0.0, listen_port=0):
        self.target = (target_host, target_port)
        self.connect_retry_s = connect_retry_s
        self._waiting = []  # (accepted socket, give-up time): the target refused so far
        # May also be set later; a connection accepted after that is rewritten.
        self.rewrite_first = rewrite_first
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._pairs = []
        self._paused = False
        self._stopping = False
        self._lock = threading.Lock()
        self._commands = []  # (fn, done_event)
        self.accepted_count = 0
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    # --- commands (run inside the loop thread) -------------------------

    def _run(self, fn):
        done = threading.Event()
        result = {}

        def wrapped():
            result["value"] = fn()

        with self._lock:
            if self._stopping:
                raise RuntimeError("proxy closed")
            self._commands.append((wrapped, done))
        if not done.wait(COMMAND_TIMEOUT_S):
            raise TimeoutError("proxy loop did not run a command within %.0f s" % COMMAND_TIMEOUT_S)
        return result.get("value")

    def pause(self):
        """Stop forwarding in both directions and refuse new connections."""

        def do():
            self._paused = True

        self._run(do)

    def resume(self):
        def do():
            self._paused = False

        self._run(do)

    def drop_all(self):
        """Close every proxied connection (both sides) now, without a flush."""

        def do():
            n = len(self._pairs)
            for pair in list(self._pairs):
                self._close_pair(pair, flush=False)
            self._close_waiting()
            return n

        return self._run(do)

    def paused(self):
        return self._run(lambda: self._paused)

    def connection_count(self):
        return self._run(lambda: len(self._pairs))

    def close(self):
        with self._lock:
            self._stopping = True
        self._thread.join(COMMAND_TIMEOUT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # --- the loop ------------------------------------------------------

    def _close_pair(self, pair, flush):
        if pair not in self._pairs:
            return
        self._pairs.remove(pair)
        for sock in (pair.client, pair.upstream):
            buf = pair.buffer_to(sock)
            if flush and buf and not self._paused:
                try:
                    sock.send(buf)
                except OSError:
                    pass
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _close_waiting(self):
        for conn, _ in self._waiting:
            conn.close()
        self._waiting = []

    def _accept(self):
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self._paused:
            conn.close()
            return
        self._connect(conn, time.monotonic() + self.connect_retry_s)

    def _retry_waiting(self):
        waiting, self._waiting = self._waiting, []
        for conn, give_up in waiting:
            if self._paused:
                conn.close()
            else:
                self._connect(conn, give_up)

    def _connect(self, conn, give_up):
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            if time.monotonic() < give_up:
                self._waiting.append((conn, give_up))
            else:
                conn.close()
            return
        for s in (conn, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs.append(_Pair(conn, upstream, self.rewrite_first))
        self.accepted_count += 1

    def _loop(self):
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                    commands, self._commands = self._commands, []
                for fn, done in commands:
                    try:
                        fn()
                    finally:
                        done.set()
                self._step()
        finally:
            for pair in list(self._pairs):
                self._close_pair(pair, flush=False)
            self._close_waiting()
            self._listener.close()
            with self._lock:
                for _, done in self._commands:
                    done.set()
                self._commands = []

    def _step(self):
        if self._waiting:
            self._retry_waiting()
        by_sock = {}
        rlist = [self._listener]
        wlist = []
        for pair in self._pairs:
            for sock in (pair.client, pair.upstream):
                by_sock[sock] = pair
                rlist.append(sock)
                if pair.buffer_to(sock) and not self._paused:
                    wlist.append(sock)
        readable, writable, _ = select.select(rlist, wlist, [], SELECT_INTERVAL_S)
        for sock in writable:
            pair = by_sock[sock]
            if pair not in self._pairs:
                continue
            buf = pair.buffer_to(sock)
            try:
                sent = sock.send(buf)
                del buf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close_pair(pair, flush=False)
        for sock in readable:
            if sock is self._listener:
                self._accept()
                continue
            pair = by_sock[sock]
            if pair not in self._pairs:
                continue
            try:
                data = sock.recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self._close_pair(pair, flush=False)
                continue
            if not data:
                self._close_pair(pair, flush=True)
                continue
            if sock is pair.client and pair.head is not None:
                pair.head.extend(data)
                try:
                    data = pair.rewrite_first(bytes(pair.head))
                except Exception:  # a rewriter that fails forwards nothing: the pair closes
                    self._close_pair(pair, flush=False)
                    continue
                if data is None:
                    if len(pair.head) > REWRITE_HEAD_BYTES_MAX:
                        self._close_pair(pair, flush=False)
                    continue
                pair.head = None
            buf = pair.buffer_to(pair.peer_of(sock))
            buf.extend(data)
            if len(buf) > BUFFER_BYTES_MAX:
                self._close_pair(pair, flush=False)
