#!/usr/bin/env python3
"""Time from starting a server to its first answered request (BENCHMARKS.md, restart).

    python3 scripts/restart-probe.py PORT COMMAND...

Spawns COMMAND, then every 5 ms opens a fresh session on 127.0.0.1:PORT and sends
getData("/") until it is answered (bounded by 60 s); prints the seconds from spawn to the
answer, the server's CPU time until then and its VmHWM/VmRSS, then stops the server (SIGTERM)
and waits for it. Speaks the ZooKeeper wire protocol directly, so it works against rzk and
Apache ZooKeeper alike. The server's output goes to restart-probe-server.log here.
"""

import os
import socket
import struct
import subprocess
import sys
import time

DEADLINE_S = 60.0


def frame(body):
    return struct.pack(">i", len(body)) + body


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def recv_frame(sock):
    (n,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, n)


def answered(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        # ConnectRequest: protocol 0, lastZxidSeen 0, timeout 30 s, session 0, 16-byte password.
        s.sendall(frame(struct.pack(">iqiqi16s?", 0, 0, 30000, 0, 16, b"\0" * 16, False)))
        recv_frame(s)
        path = b"/"
        # getData: xid 1, op 4, path, watch false.
        s.sendall(frame(struct.pack(">iii", 1, 4, len(path)) + path + b"\0"))
        xid, _zxid, err = struct.unpack(">iqi", recv_frame(s)[:16])
        return xid == 1 and err == 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    port, cmd = int(sys.argv[1]), sys.argv[2:]
    started = time.monotonic()
    with open("restart-probe-server.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        while time.monotonic() - started < DEADLINE_S:
            try:
                if answered(port):
                    took = time.monotonic() - started
                    fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
                    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    mem = [" ".join(line.split()) for line in open(f"/proc/{proc.pid}/status")
                           if line.startswith(("VmHWM", "VmRSS"))]
                    print(f"{took:.3f} s to the first answer, {cpu:.2f} s CPU, " + ", ".join(mem))
                    return
            except OSError:
                pass
            if proc.poll() is not None:
                sys.exit(f"the server exited with {proc.returncode} before answering")
            time.sleep(0.005)
        sys.exit(f"no answer within {DEADLINE_S:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
