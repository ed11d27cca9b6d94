#!/usr/bin/env python3
"""A keep-alive HTTP/1.1 load client that behaves as browsers and HTTP libraries do when a
server closes an idle connection, for bench/gateway-reload.sh.

A server may close an idle keep-alive connection at any time (RFC 9112 section 9.6); nginx's
old workers do so on every graceful reload. A client that sends its next request on such a
connection sees EOF or a reset before any byte of the answer, and then retries the request
on a new connection: RFC 9112 section 9.3.1 allows it for idempotent requests, and Chromium,
Firefox, curl and Python's urllib3 do it. wrk 4.1 instead counts each such close as a read
error (wg/wrk commit 8bf0b2e, "handle unexpected EOF as error").

This client does the same as those clients, and counts:
  retried  a reused connection closed or reset before any byte of the answer (retried once,
           on a new connection: the request never reached the application)
  failed   anything a user would see: a connect error, a non-2xx answer, an answer cut off,
           a retry that failed too
Usage: keepalive-client.py PORT HOST SECONDS [CONNECTIONS]  (stops early on SIGTERM)
Prints: RESULT requests=N ok=N retried=N failed=N
"""

import signal
import socket
import sys
import threading
import time

PORT, HOST, SECONDS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
CONNECTIONS = int(sys.argv[4]) if len(sys.argv) > 4 else 8
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: devenv-bench\r\n\r\n".encode()

lock = threading.Lock()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
totals = {"requests": 0, "ok": 0, "retried": 0, "failed": 0}
failures = []


class Closed(Exception):
    """The connection ended before any byte of the answer."""


def exchange(sock):
    """Send one request and read one answer: (status, keep_alive)."""
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            chunk = None
        if not chunk:
            if data:
                raise OSError(f"answer cut off after {len(data)} bytes")
            raise Closed()
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("body cut off")
        body += chunk
    return status, headers.get("connection", "").lower() != "close"


def connect():
    return socket.create_connection(("127.0.0.1", PORT), timeout=10)


def worker(deadline):
    counts = {"requests": 0, "ok": 0, "retried": 0, "failed": 0}
    sock, reused = None, False
    while time.monotonic() < deadline and not stop.is_set():
        counts["requests"] += 1
        try:
            if sock is None:
                sock, reused = connect(), False
            try:
                status, keep = exchange(sock)
            except (Closed, BrokenPipeError, ConnectionResetError) as e:
                sock.close()
                if not reused:
                    raise OSError(f"a new connection closed before answering: {e!r}")
                counts["retried"] += 1
                sock = connect()
                status, keep = exchange(sock)
            if 200 <= status < 300:
                counts["ok"] += 1
            else:
                counts["failed"] += 1
                failures.append(f"status {status}")
            if keep:
                reused = True
            else:
                sock.close()
                sock = None
        except (OSError, Closed) as e:
            counts["failed"] += 1
            failures.append(repr(e))
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    with lock:
        for k, v in counts.items():
            totals[k] += v


deadline = time.monotonic() + SECONDS
threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(CONNECTIONS)]
for t in threads:
    t.start()
for t in threads:
    while t.is_alive():
        t.join(0.2)
for f in failures[:5]:
    print(f"failure: {f}", file=sys.stderr)
print("RESULT " + " ".join(f"{k}={v}" for k, v in totals.items()))
