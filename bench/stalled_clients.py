#!/usr/bin/env python3
"""Stalled clients for bench/soak.sh: keep a population of bad clients connected to a
registry for a while, reconnecting whatever the server closes.

    stalled_clients.py HOST:PORT BLOB_PATH UPLOAD_REPO N SECONDS [KILL_AT]

N clients of each kind (3 N connections):
  - readers: GET a large blob and read nothing for READ_EVERY seconds, then take what
    their socket holds (that is how they see that the server closed them: its FIN waits
    behind the data they leave unread), and stall again;
  - tricklers: POST a monolithic upload announcing 1 MiB and send 1 byte every 5 s;
  - silent: POST the same and send nothing after the headers.
The server is expected to close readers and silent uploaders after its body timeout (shorter
than READ_EVERY) and to keep the tricklers (they make progress). At the end every socket is
closed and one line of counts is printed: how many connections the server closed (apart
from those closed within 3 s of KILL_AT, seconds after the start, when the registry is
killed), and how many connects failed (while the server was down).
"""

import hashlib
import select
import socket
import sys
import time

TRICKLE_EVERY = 5.0
READ_EVERY = 15.0
PROMISED = 1 << 20


def main():
    addr, blob_path, upload_repo, n, seconds = sys.argv[1:6]
    kill_at = float(sys.argv[6]) if len(sys.argv) > 6 else -100.0
    host, port = addr.rsplit(":", 1)
    port, n, seconds = int(port), int(n), float(seconds)
    start = time.monotonic()
    end = start + seconds
    poll = select.poll()
    conns = {}  # fd -> [socket, kind, last_write]
    closed = {"reader": 0, "trickler": 0, "silent": 0}
    at_kill = 0
    failed = 0
    serial = 0

    def request(kind):
        nonlocal serial
        serial += 1
        if kind == "reader":
            return f"GET {blob_path} HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode()
        digest = hashlib.sha256(f"stalled {serial} {time.time()}".encode()).hexdigest()
        return (
            f"POST /v2/{upload_repo}/blobs/uploads/?digest=sha256:{digest} HTTP/1.1\r\n"
            f"Host: {addr}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {PROMISED}\r\n\r\n"
        ).encode()

    def connect(kind):
        nonlocal failed
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, port))
            s.sendall(request(kind))
        except OSError:
            s.close()
            failed += 1
            return False
        s.setblocking(False)
        conns[s.fileno()] = [s, kind, time.monotonic()]
        poll.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        return True

    want = {"reader": n, "trickler": n, "silent": n}
    while time.monotonic() < end:
        have = {k: 0 for k in want}
        for _, kind, _ in conns.values():
            have[kind] += 1
        for kind, count in want.items():
            for _ in range(count - have[kind]):
                if not connect(kind):
                    break
        def gone(fd):
            nonlocal at_kill
            s, kind, _ = conns.pop(fd)
            poll.unregister(fd)
            s.close()
            if abs(time.monotonic() - start - kill_at) <= 3:
                at_kill += 1
            else:
                closed[kind] += 1

        for fd, _ in poll.poll(500):
            gone(fd)
        now = time.monotonic()
        for fd, c in list(conns.items()):
            s, kind, last = c
            if kind == "trickler" and now - last >= TRICKLE_EVERY:
                try:
                    s.send(b"x")
                    c[2] = now
                except OSError:
                    gone(fd)
            elif kind == "reader" and now - last >= READ_EVERY:
                c[2] = now
                try:
                    while True:
                        if not s.recv(1 << 20):
                            gone(fd)
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    gone(fd)
        if failed and len(conns) < 3 * n:
            time.sleep(0.2)  # the server is down: do not spin
    open_at_end = len(conns)
    for s, _, _ in conns.values():
        s.close()
    print(
        f"stalled clients: {n} readers, {n} tricklers, {n} silent uploaders; "
        f"closed by the server: {closed['reader']} readers, {closed['trickler']} tricklers, "
        f"{closed['silent']} silent (and {at_kill} of any kind by the kill); "
        f"open at the end {open_at_end}; "
        f"connects refused {failed}"
    )


if __name__ == "__main__":
    main()
