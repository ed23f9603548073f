"""Time to first streamed event: POSTs a streamed chat completion N times, one after another on
one keep-alive connection, and prints the median and p90 (ms) of the time from the request's
last byte sent to the first `data:` of the answer received. The same client measures every
leg, so its own overhead cancels out in the comparison.

Usage: python3 ttfb.py HOST:PORT PATH BODY N [KEY]
"""

import socket
import statistics
import sys
import time


def request_bytes(host: str, path: str, body: bytes, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_answer(sock: socket.socket, started: float) -> float:
    """Reads one whole chunked answer; returns when its first event arrived."""
    seen = b""
    first = None
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed mid-answer")
        if first is None and b"data:" in seen[-8:] + data:
            first = time.perf_counter()
        seen += data
        # Both the gateway and memgate answer a stream chunked; its last chunk ends it.
        if first is not None and seen.endswith(b"0\r\n\r\n") and b"[DONE]" in seen:
            return first - started


def main() -> None:
    host, path, body, count = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
    key = sys.argv[5] if len(sys.argv) > 5 else "sk-none"
    address, port = host.rsplit(":", 1)
    request = request_bytes(host, path, body, key)
    sock = socket.create_connection((address, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    # The first answers warm the connection pools and caches on every side.
    for i in range(count + 20):
        sock.sendall(request)
        started = time.perf_counter()
        elapsed = read_answer(sock, started)
        if i >= 20:
            times.append(elapsed * 1000.0)
    times.sort()
    p90 = times[int(len(times) * 0.9) - 1]
    print(f"{statistics.median(times):.3f} {p90:.3f}")


if __name__ == "__main__":
    main()
