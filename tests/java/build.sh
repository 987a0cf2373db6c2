#!/bin/sh
# Compile the Java compatibility programs (ClientCompat, ExtendedTypesOff, SecureClient) with
# Debian's ZooKeeper client and Curator jars.
#
#   tests/java/build.sh [OUT_DIR]      (default: tests/java/build)
#
# Writes the classes to OUT_DIR and the run-time classpath to OUT_DIR/classpath.txt:
#   java -cp "$(cat OUT_DIR/classpath.txt)" ClientCompat 127.0.0.1:2181
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/build}
J=${JAVA_JARS_DIR:-/usr/share/java}

# Exactly what the programs need at compile and run time. zookeeper.jar's own
# manifest Class-Path adds further jars (jline, netty, jetty...) that the client
# never loads over NIO. slf4j-nop silences the client's logging. The netty jars are
# for SecureClient's TLS (zookeeper.clientCnxnSocket=ClientCnxnSocketNetty): the manifest
# names some of them but not netty-codec (SslHandler's base class), netty-resolver
# (Bootstrap's address resolver) nor netty-transport-native-unix-common (epoll's base).
JARS="zookeeper.jar zookeeper-jute.jar curator-client.jar curator-framework.jar curator-recipes.jar guava.jar slf4j-api.jar slf4j-nop.jar"
JARS="$JARS netty-buffer.jar netty-codec.jar netty-common.jar netty-handler.jar netty-resolver.jar netty-transport.jar"
JARS="$JARS netty-transport-native-epoll.jar netty-transport-native-unix-common.jar"

CP=""
MISSING=""
for j in $JARS; do
    if [ ! -f "$J/$j" ]; then
        MISSING="$MISSING $j"
    fi
    CP="$CP${CP:+:}$J/$j"
done
if [ -n "$MISSING" ]; then
    echo "build.sh: missing jars in $J:$MISSING" >&2
    echo "build.sh: install the Debian packages libzookeeper-java libcurator-framework-java libcurator-recipes-java libcurator-client-java libguava-java libslf4j-java libnetty-java" >&2
    exit 2
fi
command -v javac >/dev/null 2>&1 || { echo "build.sh: javac not found (install a JDK, e.g. openjdk-17-jdk-headless)" >&2; exit 2; }

mkdir -p "$OUT/classes"
javac -nowarn -encoding UTF-8 -d "$OUT/classes" -cp "$CP" "$HERE"/src/*.java
printf '%s\n' "$OUT/classes:$CP" > "$OUT/classpath.txt"
echo "built $OUT/classes; classpath in $OUT/classpath.txt"
