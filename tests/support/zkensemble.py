"""An ensemble of ZooKeeper-protocol servers for a test: rzk or Apache ZooKeeper, each
server a real process with its own zoo.cfg, myid and data dir, all on 127.0.0.1.

Every server gets the same server.N lines (observers marked ``:observer`` and given
``peerType=observer``), as an operator's ensemble would. Only processes started here
are ever signalled, always by PID (zkserver.py's safety net kills leftovers).
"""

import socket
import time

from zkserver import START_TIMEOUT_S, ZkServer


def _distinct_ports(count, taken):
    """`count` free ports on 127.0.0.1, distinct from each other and from `taken`: the
    sockets stay bound until all are picked, so the kernel cannot hand one out twice."""
    sockets = []
    ports = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


class Ensemble:
    def __init__(self, kind, workdir, voters=3, observers=0, tick_time=200, extra_cfg=None, **server_kw):
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
        lines = {}
        for i, sid in enumerate(self.ids):
            role = ":observer" if sid in self.observers else ""
            lines["server.%d" % sid] = "127.0.0.1:%d:%d%s" % (ports[2 * i], ports[2 * i + 1], role)
        for sid, server in self.servers.items():
            cfg = {
                # ZooKeeper's own timing, scaled to the tick: a leader is declared dead after
                # syncLimit ticks, followers have initLimit ticks to sync.
                "initLimit": "10",
                "syncLimit": "5",
                **lines,
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
        for server in self.servers.values():
            server.stop()

    def log_tails(self, lines=40):
        return "\n".join(
            "--- s%d (%s)\n%s" % (sid, self.servers[sid].log_path, self.servers[sid].log_tail(lines))
            for sid in self.ids
        )
