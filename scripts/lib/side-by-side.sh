# Shared by scripts/bench-vs-zookeeper.sh and scripts/restart-vs-zookeeper.sh: checks for
# Debian's Apache ZooKeeper, the rzk binary, free ports, one zoo.cfg for both servers, and
# starting/stopping them. Sourced, not run. The caller sets SCRIPT (its name, for messages)
# and ROOT (the repository) first.

die() { echo "$SCRIPT: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

ZK_JARS=/usr/share/java
# Fails with the package to install when Java or a ZooKeeper jar is missing.
need_zookeeper() {
  local jar
  for jar in zookeeper.jar zookeeper-jute.jar slf4j-api.jar slf4j-log4j12.jar log4j-1.2.jar; do
    [ -f "$ZK_JARS/$jar" ] || die "$ZK_JARS/$jar missing: apt-get install zookeeper (scripts/test.sh installs it)"
  done
  command -v java >/dev/null || die "java missing: apt-get install default-jdk-headless"
  command -v python3 >/dev/null || die "python3 missing"
}

# Sets RZK_BIN: as given, else a release build from this checkout.
need_rzk() {
  if [ -z "${RZK_BIN:-}" ]; then
    note "building rzk (release)"
    cargo build --release -q -p rzk-server
    RZK_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rzk
  fi
  [ -x "$RZK_BIN" ] || die "RZK_BIN=$RZK_BIN is not an executable"
}

# Prints N free loopback ports.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
}

# Stops a server this script started: SIGTERM, then SIGKILL after `wait_s` seconds.
stop_pid() { # pid [wait_s]
  local pid=$1 wait_s=${2:-5}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 $((wait_s * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# The one zoo.cfg both servers get (differing only in dataDir and clientPort), and
# ZooKeeper's log4j setup. metricsProvider.httpPort is rzk's /metrics (ZooKeeper ignores it
# without metricsProvider.className).
write_server_dir() { # dir client_port metrics_port zk_log_level
  mkdir -p "$1/data"
  cat >"$1/zoo.cfg" <<EOF
tickTime=2000
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
forceSync=yes
snapCount=100000
maxClientCnxns=0
autopurge.purgeInterval=0
4lw.commands.whitelist=*
admin.enableServer=false
metricsProvider.httpPort=$3
EOF
  cat >"$1/log4j.properties" <<EOF
log4j.rootLogger=$4, F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=$1/zookeeper.log
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d %p %c{1}: %m%n
EOF
}

# Sets ZK_CMD and RZK_CMD: the command lines that run each server from its dir.
server_commands() { # zk_dir rzk_dir
  local cp=$ZK_JARS/zookeeper.jar:$ZK_JARS/zookeeper-jute.jar:$ZK_JARS/slf4j-api.jar
  cp=$cp:$ZK_JARS/slf4j-log4j12.jar:$ZK_JARS/log4j-1.2.jar
  ZK_CMD=(java "-Xmx${ZK_HEAP:-2g}" -cp "$cp" -Dzookeeper.log.dir="$1"
    -Dlog4j.configuration="file:$1/log4j.properties"
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg")
  RZK_CMD=("$RZK_BIN" server --config "$2/zoo.cfg")
}

srvr() { # port -> the srvr answer, empty if none within 2 s
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf srvr >&3 && cat <&3" 2>/dev/null || true
}

wait_ready() { # name port pid
  for _ in $(seq 1 150); do
    kill -0 "$3" 2>/dev/null || die "$1 exited at startup (rerun with --keep-dir for its logs)"
    if srvr "$2" | grep -q '^Mode:'; then return 0; fi
    sleep 0.2
  done
  die "$1 did not answer srvr on port $2 within 30 s"
}
