"""A real API process refuses what a client sends before a request: a flood of header bytes or
fields (431), a head that never ends (408), a body that stops coming (closed, logged as one line,
counted as 499 and never as a 5xx); none of them slows the other clients down or grows the
process. Raw sockets: HTTP clients refuse to send these."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from clicktune.simulate.service import instance_env, local_url, running

PING = "/api/v1/ping"


def exchange(port: int, *pieces: bytes, pause_s: float = 0.0, wait_s: float = 20.0) -> bytes:
    """Send the pieces (pausing between them), then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as conn:
        try:
            for piece in pieces:
                conn.sendall(piece)
                time.sleep(pause_s)
        except OSError:
            pass  # the server closed while we were still sending: read its answer
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def flood(port: int, header_bytes: int) -> bytes:
    """A request whose one header is `header_bytes` long, sent in 1 MiB pieces."""
    head = b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Flood: "
    chunk = b"a" * (1024 * 1024)
    return exchange(port, head, *[chunk] * (header_bytes // len(chunk)), b"\r\n\r\n")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_header_floods_and_slow_clients_are_refused(tmp_path: Path) -> None:
    env = instance_env(
        tmp_path / "data", log_level="INFO", header_timeout_s="2", body_idle_timeout_s="2"
    )
    url = local_url(env)
    port = int(env["CLICKTUNE_PORT"])
    log = tmp_path / "api.log"
    with running("api", env, url, log=log) as process, httpx.Client(base_url=url) as http:
        assert http.get(PING).status_code == 200
        before = rss_mib(process.pid)

        pings: list[float] = []
        answer: dict[str, bytes] = {}
        flooding = threading.Thread(target=lambda: answer.update(big=flood(port, 120 * 2**20)))
        flooding.start()
        while flooding.is_alive():
            started = time.perf_counter()
            assert http.get(PING).status_code == 200
            pings.append(time.perf_counter() - started)
            time.sleep(0.05)
        flooding.join()
        assert answer["big"].startswith(b"HTTP/1.1 431 ")
        assert b'"code":"header_too_large"' in answer["big"]
        assert max(pings) < 2.0, pings
        assert rss_mib(process.pid) - before < 50

        many = b"".join(b"X-H%d: 1\r\n" % n for n in range(150))
        fields = exchange(
            port, b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
        )
        assert fields.startswith(b"HTTP/1.1 431 ")

        started = time.perf_counter()
        slow_head = exchange(port, b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        assert slow_head.startswith(b"HTTP/1.1 408 ")
        assert b'"code":"request_timeout"' in slow_head
        assert time.perf_counter() - started < 10

        started = time.perf_counter()
        stalled = exchange(
            port,
            b"POST /api/v1/clickstream/session HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"session_id"',
        )
        assert b" 500 " not in stalled
        assert time.perf_counter() - started < 10
        counted = http.get("/metrics").text
        assert 'route="/api/v1/clickstream/session",status="499"' in counted
        assert 'status="500"' not in counted

        ok = exchange(
            port, b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert ok.startswith(b"HTTP/1.1 200 ")
    logged = log.read_text()
    assert "request_refused" in logged and "request_body_timeout" in logged
    assert "Traceback" not in logged
