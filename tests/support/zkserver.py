"""Start and stop one ZooKeeper-protocol server for a test: rzk or Apache ZooKeeper.

Both kinds get the same zoo.cfg (written to ``workdir/zoo.cfg``) and log to
``workdir/server.log``. The server listens on 127.0.0.1 on a port picked when
the object is created (bind port 0), and keeps that port across restarts so
that clients can reconnect to the same address.

Readiness is the same check an operator uses: the ``srvr`` four-letter word
answers a line starting with ``Mode:`` (or, when a 4lw.commands.whitelist
leaves srvr out, answers that it is not whitelisted).

Also: pause()/resume() send SIGSTOP/SIGCONT for fault tests; four_letter()
works without a server object too (module function).

Only processes started here are ever signalled, always by PID. Every server
still running when the interpreter exits is killed (``atexit``), so a test
that dies half way does not leak a JVM.
"""

import atexit
import os
import signal
import random
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
FOUR_LETTER_TIMEOUT_S = 10.0

# Jars for running Apache ZooKeeper 3.8 as packaged by Debian. zookeeper.jar's
# manifest Class-Path names most of its dependencies already; these are the ones
# it does not name (a logging backend, the netty pieces the server touches), plus
# the core jars themselves so that a missing package is reported by name.
JAVA_DIR = Path("/usr/share/java")
APACHE_JARS = [
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-log4j12.jar",
    "log4j-1.2.jar",
    "netty-buffer.jar",
    "netty-codec.jar",
    "netty-common.jar",
    "netty-handler.jar",
    "netty-resolver.jar",
    "netty-transport.jar",
    "netty-transport-native-epoll.jar",
    "netty-transport-native-unix-common.jar",
    "metrics-core.jar",
    "snappy-java.jar",
    "commons-cli.jar",
    # The AdminServer (admin.enableServer=true): Jetty, the servlet API and Jackson for its
    # JSON. Not named by zookeeper.jar's manifest; without them ZooKeeper runs without it.
    "jetty9-server.jar",
    "jetty9-servlet.jar",
    "jetty9-http.jar",
    "jetty9-io.jar",
    "jetty9-util.jar",
    "jetty9-security.jar",
    "servlet-api.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
]

APACHE_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Threshold=INFO
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
"""

# Start the JVM about twice as fast (C1 only, serial GC); steady-state speed
# suffers, so benchmarks pass jvm_fast_start=False.
JVM_FAST_START_OPTS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]

_LIVE = {}  # pid -> Popen, for the atexit safety net


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE.values()):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                pass
    _LIVE.clear()


def _ephemeral_floor():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out by this process, never handed out twice.
_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral
    range: a port picked now and bound later cannot be taken meanwhile as the source port
    of some outgoing connection (an ensemble's servers dial each other as they start), which
    a port the kernel handed out for bind(0) could."""
    floor = _ephemeral_floor()
    low = 10_000 if floor > 12_000 else 1_024
    for _ in range(1_000):
        port = random.randrange(low, floor)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below %d after 1000 tries" % floor)


def rzk_bin():
    return os.environ.get("RZK_BIN") or str(REPO_ROOT / "target" / "debug" / "rzk")


def apache_classpath():
    """The classpath for Apache ZooKeeper; raises if a jar is missing."""
    missing = [j for j in APACHE_JARS if not (JAVA_DIR / j).exists()]
    if missing:
        raise RuntimeError(
            "Apache ZooKeeper jars missing from %s: %s (install the Debian packages "
            "zookeeper and libzookeeper-java; scripts/test.sh does)" % (JAVA_DIR, ", ".join(missing))
        )
    return ":".join(str(JAVA_DIR / j) for j in APACHE_JARS)


def four_letter(host, port, word, timeout=FOUR_LETTER_TIMEOUT_S):
    """Send a four-letter word on a fresh connection and read the answer to EOF."""
    if len(word) != 4:
        raise ValueError("a four-letter word has four letters: %r" % (word,))
    deadline = time.monotonic() + timeout
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("four-letter word %r: no EOF within %.0f s" % (word, timeout))
            s.settimeout(remaining)
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


class ZkServer:
    """One standalone server of kind "rzk" or "apache" in its own work directory."""

    def __init__(
        self,
        kind,
        workdir,
        extra_cfg=None,
        tick_time=2000,
        jvm_fast_start=True,
        rzk_args=(),
        jvm_heap="512m",
        jvm_props=None,
    ):
        if kind not in ("rzk", "apache"):
            raise ValueError("kind must be 'rzk' or 'apache', not %r" % (kind,))
        self.kind = kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.cfg_path = self.workdir / "zoo.cfg"
        self.log_path = self.workdir / "server.log"
        self.tick_time = tick_time
        self.jvm_fast_start = jvm_fast_start
        self.jvm_heap = jvm_heap
        self.extra_cfg = dict(extra_cfg or {})
        # Command-line flags for an rzk server (what zoo.cfg has no key for, such as
        # --net-threads); Apache ZooKeeper ignores them.
        self.rzk_args = list(rzk_args)
        # Java system properties (java.security.auth.login.config, zookeeper.superUser...):
        # -Dk=v flags for Apache ZooKeeper; for rzk the same tokens, space-separated, in the
        # environment variable SERVER_JVMFLAGS (as zkServer.sh hands them to Java).
        self.jvm_props = dict(jvm_props or {})
        self.port = free_port()
        # Free for a test to use as secureClientPort (not in zoo.cfg unless a test puts it).
        self.secure_port = free_port()
        # Both kinds get these ports; the AdminServer stays off unless a test turns it on
        # (admin.enableServer=true), and Apache ZooKeeper ignores the metrics port unless
        # metricsProvider.className names its Prometheus provider.
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.proc = None
        self._paused = False
        self._write_cfg()

    # --- configuration -------------------------------------------------

    def cfg(self):
        """The zoo.cfg keys, in file order."""
        cfg = {
            "tickTime": str(self.tick_time),
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "4lw.commands.whitelist": "*",
            "extendedTypesEnabled": "true",
            "admin.enableServer": "false",
            "admin.serverPort": str(self.admin_port),
            "metricsProvider.httpPort": str(self.metrics_port),
            "znode.container.checkIntervalMs": "200",
            # Log segments are zero-filled to this size (KiB) before use; hundreds of test
            # servers with the 64 MiB default would write gigabytes for nothing.
            "preAllocSize": "2048",
        }
        for k, v in self.extra_cfg.items():
            cfg[k] = str(v)
        return cfg

    def _write_cfg(self):
        lines = ["%s=%s" % (k, v) for k, v in self.cfg().items()]
        self.cfg_path.write_text("\n".join(lines) + "\n")

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def command(self):
        if self.kind == "rzk":
            binary = rzk_bin()
            if not os.path.exists(binary):
                raise RuntimeError(
                    "rzk binary not found at %s (set RZK_BIN, or run cargo build --workspace --bins)" % binary
                )
            return [binary, "server", "--config", str(self.cfg_path), *self.rzk_args]
        log4j = self.workdir / "log4j.properties"
        log4j.write_text(APACHE_LOG4J)
        return [
            "java",
            "-Xmx%s" % self.jvm_heap,
            *(JVM_FAST_START_OPTS if self.jvm_fast_start else []),
            "-cp",
            apache_classpath(),
            "-Dzookeeper.log.dir=%s" % self.workdir,
            "-Dlog4j.configuration=file:%s" % log4j,
            "-Dznode.container.checkIntervalMs=200",
            "-Dzookeeper.extendedTypesEnabled=true",
            *self._jvm_flags(),
            # ZooKeeper reads read-only mode from a system property only; rzk from zoo.cfg.
            *(
                ["-Dreadonlymode.enabled=%s" % self.extra_cfg["readonlymode.enabled"]]
                if "readonlymode.enabled" in self.extra_cfg
                else []
            ),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]

    def _jvm_flags(self):
        return ["-D%s=%s" % (k, v) for k, v in self.jvm_props.items()]

    def env(self):
        """The server's environment: ours, plus SERVER_JVMFLAGS for rzk when jvm_props is set."""
        if self.kind != "rzk" or not self.jvm_props:
            return None
        return dict(os.environ, SERVER_JVMFLAGS=" ".join(self._jvm_flags()))

    # --- lifecycle -----------------------------------------------------

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT_S):
        self.launch()
        return self.wait_ready(timeout)

    def launch(self):
        """Starts the process without waiting for it to serve (a server of an ensemble
        serves only once a quorum of its peers is up)."""
        if self.running():
            raise RuntimeError("server already running (pid %d)" % self.proc.pid)
        self._write_cfg()
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(("\n=== start: %s\n" % " ".join(cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.workdir),
                env=self.env(),
                start_new_session=True,
            )
        _LIVE[self.proc.pid] = self.proc
        return self

    def wait_ready(self, timeout=START_TIMEOUT_S):
        """Waits until srvr answers with a Mode: line (the server serves clients)."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._forget()
                raise RuntimeError(
                    "%s server exited with code %s while starting; log tail:\n%s"
                    % (self.kind, code, self.log_tail())
                )
            try:
                out = self.four_letter("srvr", timeout=2.0)
                if any(line.startswith("Mode:") for line in out.splitlines()):
                    return self
                if "not in the whitelist" in out:  # srvr disabled by config: the server answers anyway
                    return self
                last_error = "srvr answered %r" % out[:200]
            except OSError as e:  # refused / reset while starting
                last_error = repr(e)
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            "%s server not ready within %.0f s (last: %s); log tail:\n%s"
            % (self.kind, timeout, last_error, self.log_tail())
        )

    def _forget(self):
        if self.proc is not None:
            _LIVE.pop(self.proc.pid, None)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, wait, then SIGKILL. Returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._resume_if_paused()
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._forget()
        return self.proc.returncode

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._forget()
        return self.proc.returncode

    def restart(self):
        self.stop()
        return self.start()

    def pause(self):
        """SIGSTOP the server (for fault tests); resume() undoes it."""
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
        self._paused = False

    def _resume_if_paused(self):
        if self._paused:
            self.resume()

    # --- inspection ----------------------------------------------------

    def four_letter(self, word, timeout=FOUR_LETTER_TIMEOUT_S):
        return four_letter("127.0.0.1", self.port, word, timeout=timeout)

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return "(no log: %s)" % e
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "ZkServer(%s, %s, pid=%s)" % (
            self.kind,
            self.hosts,
            self.proc.pid if self.proc else None,
        )
