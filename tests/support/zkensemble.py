"""An ensemble of ZooKeeper-protocol servers for a test: rzk or Apache ZooKeeper, each
server a real process with its own zoo.cfg, myid and data dir, all on 127.0.0.1.

Every server gets the same server.N lines (observers marked ``:observer`` and given
``peerType=observer``), as an operator's ensemble would. Only processes started here
are ever signalled, always by PID (zkserver.py's safety net kills leftovers).

``Ensemble(..., partitionable=True)`` puts a TcpProxy on every directed link instead: in
server i's zoo.cfg, server.j's quorum and election ports are proxies that carry what i
dials to j (server.i's own line keeps its real ports, which it listens on). ``cut(a, b)``
then stops every link between the two groups both ways (new connections refused, the
open ones closed, nothing forwarded) and ``heal()`` lets them through again. Clients and
four-letter words still reach every server directly.

ZooKeeper's election connection manager keeps the connection the larger server id opens:
when a smaller one dials, the larger hangs up and dials back the election address the
smaller one announced in its first message (its own, real, port), which would bypass the
proxies. For Apache ZooKeeper the proxy of each election link rewrites that address to
the proxy of the reverse link, so every connection between two servers stays cuttable.
(rzk's peers always dial the addresses of their own zoo.cfg and announce none.)
"""

import struct
import time

from proxy import TcpProxy
from zkserver import START_TIMEOUT_S, ZkServer, free_port

# ZooKeeper's QuorumCnxManager InitialMessage: protocol version (these two carry an
# address), server id, length, then "host:port" (several joined by '|').
_ZK_ELECTION_PROTOCOLS = (-65536, -65535)

# How long a link proxy retries a server that refuses (one that is not listening yet, such
# as a leader about to open its quorum port) before closing the connection it accepted:
# a server dialing directly would be refused and retry; through a proxy it would see its
# connection accepted, then closed, which ZooKeeper's learner takes for a failed leader.
LINK_CONNECT_RETRY_S = 1.0


def _announce_election_address(address):
    """A TcpProxy rewrite_first that replaces the election address a ZooKeeper server
    announces in its first message on an election connection with `address`."""
    new = address.encode("ascii")

    def rewrite(head):
        if len(head) < 8:
            return None
        (version,) = struct.unpack(">q", head[:8])
        if version not in _ZK_ELECTION_PROTOCOLS:
            return head  # an older protocol announces no address
        if len(head) < 20:
            return None
        sid, length = struct.unpack(">qi", head[8:20])
        if len(head) < 20 + length:
            return None
        return head[:8] + struct.pack(">qi", sid, len(new)) + new + head[20 + length :]

    return rewrite


def _distinct_ports(count, taken):
    """`count` free ports on 127.0.0.1, distinct from each other and from `taken` (zkserver's
    free_port: below the ephemeral range, never handed out twice in this process)."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in taken:
            ports.append(port)
    return ports


class Ensemble:
    def __init__(
        self, kind, workdir, voters=3, observers=0, tick_time=200, extra_cfg=None, partitionable=False, **server_kw
    ):
        self.kind = kind
        self.ids = list(range(1, voters + observers + 1))
        self.observers = set(range(voters + 1, voters + observers + 1))
        self.servers = {}
        for sid in self.ids:
            server = ZkServer(kind, workdir / ("s%d" % sid), extra_cfg=extra_cfg, tick_time=tick_time, **server_kw)
            (server.data_dir / "myid").write_text("%d\n" % sid)
            self.servers[sid] = server
        # Quorum and election ports, distinct from each other and from every server's own.
        taken = {p for s in self.servers.values() for p in (s.port, s.admin_port, s.metrics_port)}
        ports = _distinct_ports(2 * len(self.ids), taken)
        real = {sid: (ports[2 * i], ports[2 * i + 1]) for i, sid in enumerate(self.ids)}
        # (i, j) -> (quorum proxy, election proxy) carrying what server i dials to server j.
        self.links = {}
        self._closed = False
        if partitionable:
            # The proxies listen on ports picked apart from every port the servers will bind
            # (a proxy on an arbitrary free port could take a server's before it starts).
            pairs = [(i, j) for i in self.ids for j in self.ids if i != j]
            listen = iter(_distinct_ports(2 * len(pairs), taken | set(ports)))
            for i, j in pairs:
                self.links[(i, j)] = tuple(
                    TcpProxy(port, connect_retry_s=LINK_CONNECT_RETRY_S, listen_port=next(listen))
                    for port in real[j]
                )
            if kind == "apache":
                for (i, j), (_, election) in self.links.items():
                    back = self.links[(j, i)][1]
                    election.rewrite_first = _announce_election_address(back.hosts)

        def line(me, sid):
            role = ":observer" if sid in self.observers else ""
            if sid == me or not self.links:
                quorum_port, election_port = real[sid]
            else:
                quorum_port, election_port = (p.port for p in self.links[(me, sid)])
            return "127.0.0.1:%d:%d%s" % (quorum_port, election_port, role)

        for sid, server in self.servers.items():
            cfg = {
                # ZooKeeper's own timing, scaled to the tick: a leader is declared dead after
                # syncLimit ticks, followers have initLimit ticks to sync.
                "initLimit": "10",
                "syncLimit": "5",
                **{"server.%d" % other: line(sid, other) for other in self.ids},
            }
            if sid in self.observers:
                cfg["peerType"] = "observer"
            cfg.update(extra_cfg or {})
            server.extra_cfg = cfg
            server._write_cfg()

    def __getitem__(self, sid):
        return self.servers[sid]

    def hosts(self, sids=None):
        return ",".join(self.servers[s].hosts for s in (sids or self.ids))

    def start(self, sids=None, timeout=START_TIMEOUT_S):
        """Launches the servers together (none serves before a quorum is up), then waits for
        each to serve."""
        sids = sids or self.ids
        if self._closed:
            raise RuntimeError("the link proxies of this ensemble were closed by stop_all()")
        for sid in sids:
            if not self.servers[sid].running():
                self.servers[sid].launch()
        for sid in sids:
            self.servers[sid].wait_ready(timeout)
        return self

    def mode(self, sid):
        """What srvr says under Mode: (leader, follower, observer), or None if it does not
        serve (no answer, or no leader)."""
        server = self.servers[sid]
        if not server.running():
            return None
        try:
            out = server.four_letter("srvr", timeout=2.0)
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def leader(self, timeout=START_TIMEOUT_S):
        """The one server that says it leads, once every running voter serves."""
        deadline = time.monotonic() + timeout
        modes = {}
        while time.monotonic() < deadline:
            modes = {sid: self.mode(sid) for sid in self.ids if self.servers[sid].running()}
            leaders = [sid for sid, m in modes.items() if m == "leader"]
            if len(leaders) == 1 and all(m is not None for m in modes.values()):
                return leaders[0]
            time.sleep(0.05)
        raise AssertionError("no single serving leader within %.0f s: %r" % (timeout, modes))

    def kill(self, sid):
        self.servers[sid].kill()

    def stop_all(self):
        """Stops every server, then closes the link proxies of a partitionable ensemble
        (which cannot be started again after that)."""
        for server in self.servers.values():
            server.stop()
        for quorum, election in self.links.values():
            quorum.close()
            election.close()
        self._closed = bool(self.links)

    # --- partitions (partitionable=True) -------------------------------

    def _proxies_between(self, a, b):
        if not self.links:
            raise RuntimeError("not a partitionable ensemble: create it with partitionable=True")
        proxies = {}
        for i in a:
            for j in b:
                if i != j:
                    for proxy in self.links[(i, j)] + self.links[(j, i)]:
                        proxies[id(proxy)] = proxy
        return list(proxies.values())

    def cut(self, a, b, close_connections=True):
        """Partitions server ids `a` from server ids `b`: every link between the two
        groups, both ways and on both ports, stops forwarding and refuses new connections.
        With close_connections the open ones are closed too (as a reset would); without,
        they stay open and silent (a black hole) until either end gives up on them or
        close_connections() closes them."""
        proxies = self._proxies_between(a, b)
        for proxy in proxies:
            proxy.pause()
        if close_connections:
            for proxy in proxies:
                proxy.drop_all()

    def close_connections(self, a, b):
        """Closes the open connections between groups `a` and `b` (both ways)."""
        for proxy in self._proxies_between(a, b):
            proxy.drop_all()

    def isolate(self, sid, close_connections=True):
        """Cuts server `sid` from every other server."""
        self.cut([sid], [s for s in self.ids if s != sid], close_connections=close_connections)

    def heal(self, a=None, b=None):
        """Lets the cut links between `a` and `b` (default: every cut link) through again.
        A connection a black-hole cut left open is closed first, so nothing it held back
        arrives late; links that were not cut are left alone."""
        a = self.ids if a is None else a
        b = self.ids if b is None else b
        proxies = [p for p in self._proxies_between(a, b) if p.paused()]
        for proxy in proxies:
            proxy.drop_all()
        for proxy in proxies:
            proxy.resume()

    def log_tails(self, lines=40):
        return "\n".join(
            "--- s%d (%s)\n%s" % (sid, self.servers[sid].log_path, self.servers[sid].log_tail(lines))
            for sid in self.ids
        )
