"""Compile and run the Java compatibility programs in tests/java/src.

Compilation goes through tests/java/build.sh (the one place that lists the jars);
``build(out_dir)`` returns the run-time classpath and ``run(...)`` starts one
program on it with a hard timeout.
"""

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"

BUILD_TIMEOUT_S = 120
# Start the client JVM quickly: C1 only and the serial collector.
JVM_OPTS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"]


class JavaBuildError(RuntimeError):
    pass


def build(out_dir):
    """Compile tests/java/src into out_dir; returns the classpath string."""
    out_dir = Path(out_dir)
    try:
        res = subprocess.run(
            ["sh", str(BUILD_SH), str(out_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise JavaBuildError("build.sh did not finish within %d s:\n%s" % (BUILD_TIMEOUT_S, e.output or ""))
    if res.returncode != 0:
        raise JavaBuildError("build.sh failed with exit code %d:\n%s" % (res.returncode, res.stdout))
    return (out_dir / "classpath.txt").read_text().strip()


def run(classpath, main_class, args, timeout):
    """Run one program; returns (exit code, combined output). A timeout kills the JVM
    (it runs in its own process group, and only that group is signalled)."""
    cmd = ["java", *JVM_OPTS, "-cp", classpath, main_class, *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        out, _ = proc.communicate()
        return None, (out or "") + "\n[killed after %d s]" % timeout


def summarize(output):
    """The FAIL lines first (they are what matters), then the whole output."""
    fails = [line for line in output.splitlines() if line.startswith("FAIL")]
    head = "\n".join(fails) if fails else "(no FAIL lines)"
    return "%s\n----- full output -----\n%s" % (head, output)
