"""Oversized requests are refused with their codes while the API process's memory stays within a
few times the limits: the limits apply while a body is read, before it is parsed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx

from clicktune.simulate.service import instance_env, local_url, running

MIB = 1024 * 1024
API = "/api/v1"


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), from the OS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def session(session_id: str, **fields: object) -> dict[str, object]:
    return {
        "session_id": session_id,
        "search_query": "red shoes",
        "search_results": [{"object_id": "o-1"}],
        **fields,
    }


def streamed(*pieces: bytes, repeat: bytes = b"", times: int = 0) -> Iterator[bytes]:
    """A body sent in chunks, without a Content-Length: the first piece, `repeat` `times` times,
    then the rest."""
    yield pieces[0]
    for _ in range(times):
        yield repeat
    yield from pieces[1:]


def test_oversized_requests_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    env = instance_env(tmp_path / "data", log_level="WARNING")
    url = local_url(env)
    with running("api", env, url) as process, httpx.Client(base_url=url, timeout=120) as http:
        assert http.post(f"{API}/clickstream/session", json=session("warm")).status_code == 201
        before = peak_rss_mib(process.pid)

        big_query = json.dumps(session("big", search_query="q" * (40 * MIB))).encode()
        answer = http.post(f"{API}/clickstream/session", content=big_query, headers=JSON)
        assert_code(answer, 413, "payload_too_large")

        chunked = streamed(
            b'{"session_id": "s", "search_query": "',
            b'", "search_results": []}',
            repeat=b"q" * MIB,
            times=40,
        )
        answer = http.post(f"{API}/clickstream/session", content=chunked, headers=JSON)
        assert_code(answer, 413, "payload_too_large")

        results = b",".join(b'{"object_id": "o-%d"}' % n for n in range(2_000_000))
        many = b'{"session_id": "many", "search_query": "q", "search_results": [' + results + b"]}"
        answer = http.post(f"{API}/clickstream/session", content=many, headers=JSON)
        assert_code(answer, 413, "payload_too_large")

        huge_batch = streamed(
            b'{"sessions": [',
            b"]}",
            repeat=json.dumps(session("b", search_meta={"pad": "x" * 1000})).encode() + b",",
            times=40_000,
        )
        answer = http.post(f"{API}/clickstream/sessions", content=huge_batch, headers=JSON)
        assert_code(answer, 413, "payload_too_large")

        long_line = json.dumps(session("long", search_meta={"pad": "x" * (40 * MIB)})).encode()
        lines = streamed(
            json.dumps(session("first")).encode() + b"\n",
            json.dumps(session("last")).encode() + b"\n",
            repeat=long_line + b"\n",
            times=3,
        )
        ndjson = {"content-type": "application/x-ndjson"}
        report = http.post(f"{API}/clickstream/import", content=lines, headers=ndjson).json()
        assert report["sessions"] == 2
        assert [error["error"]["code"] for error in report["errors"]] == ["line_too_long"] * 3

        text = {"input": "word " * (2 * MIB), "model": "Default Fine Tuning Method"}
        answer = http.post(f"{API}/embeddings", json=text)
        assert_code(answer, 422, "input_too_long")

        grown = peak_rss_mib(process.pid) - before
        # The largest body read in full is the 10 MiB embeddings request (its limit is 64 MiB).
        assert grown < 120, f"peak memory grew by {grown:.0f} MiB"
        stored = http.get(f"{API}/clickstream/batches").json()["data"][0]["sessions"]
        assert stored == 3  # warm, first and last: nothing oversized was stored


JSON = {"content-type": "application/json"}


def assert_code(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    assert answer.json()["error"]["code"] == code
