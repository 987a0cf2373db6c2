"""Build and run the differential driver (src/Differential.java).

Used by test_differential.py, and by hand:

    python3 tests/differential/driver.py 127.0.0.1:2181 SEED [OPS] > transcript.txt

compiles the driver (into $DIFF_BUILD_DIR, default /tmp/rzk-differential-build) and runs it against
the server at HOST:PORT, printing the transcript on stdout.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "src" / "Differential.java"
JAVA_DIR = Path("/usr/share/java")

# The client needs only these: zookeeper.jar (client classes, and its manifest's Class-Path is
# harmless), the jute records, and slf4j with the no-op binding so the client logs nothing.
CLIENT_JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-nop.jar"]

DEFAULT_OPS = 2500


def classpath():
    """The client classpath; raises naming the missing jars and the Debian packages that ship them."""
    missing = [j for j in CLIENT_JARS if not (JAVA_DIR / j).exists()]
    if missing:
        raise RuntimeError(
            "jars missing from %s: %s (Debian packages: libzookeeper-java or zookeeper for the "
            "ZooKeeper jars, libslf4j-java for slf4j)" % (JAVA_DIR, ", ".join(missing))
        )
    return ":".join(str(JAVA_DIR / j) for j in CLIENT_JARS)


def compile_driver(build_dir):
    """javac the driver into build_dir (skipped when the class file is newer than the source)."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    cls = build_dir / "Differential.class"
    if cls.exists() and cls.stat().st_mtime >= SOURCE.stat().st_mtime:
        return build_dir
    cmd = ["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(build_dir), "-cp", classpath(), str(SOURCE)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("javac failed (%s):\n%s" % (" ".join(cmd), proc.stdout.decode(errors="replace")))
    return build_dir


def command(build_dir, hosts, seed, ops=DEFAULT_OPS):
    return [
        "java",
        "-Xmx256m",
        "-XX:TieredStopAtLevel=1",  # C1 only: less JIT work on a 2-core machine, plenty fast here
        "-XX:+UseSerialGC",
        "-cp",
        "%s:%s" % (build_dir, classpath()),
        "Differential",
        hosts,
        str(seed),
        str(ops),
    ]


def start(build_dir, hosts, seed, ops, out_path, err_path):
    """Start the driver writing its transcript to out_path; returns the Popen."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        return subprocess.Popen(
            command(build_dir, hosts, seed, ops), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: %s HOST:PORT SEED [OPS]\n" % argv[0])
        return 2
    build = compile_driver(os.environ.get("DIFF_BUILD_DIR", "/tmp/rzk-differential-build"))
    ops = argv[3] if len(argv) > 3 else DEFAULT_OPS
    return subprocess.call(command(build, argv[1], argv[2], ops))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
