"""Ingest speed: clickstream over real HTTP, bulk import, and the storage limit beside them.

For each database (SQLite, PostgreSQL): starts the real server (`clicktune api`) on a free port
with a fresh data dir and database, then
  1. HTTP: `--clients` concurrent clients (each its own connection, spread over
     `--client-processes` processes) each register sessions (`POST /clickstream/session`) and add
     their events (`POST /clickstream/session/events`) until `--sessions` are sent or
     `--http-seconds` pass: sessions/s and per-request p50/p99;
  2. import: the same kind of sessions as one NDJSON body streamed to `POST /clickstream/import`;
  3. storage limit (the reference): the same rows inserted straight through SQLAlchemy Core in one
     transaction into another fresh database.
Beside each rate, the server process's CPU time per session (from /proc): what a session costs,
whatever else the machine is busy with.
Goals (BENCHMARKS.md §2): HTTP ≥ 1,000 sessions/s at p99 ≤ 50 ms on SQLite; import ≥ 25 % of the
storage limit; both on PostgreSQL too.

    python bench/ingest.py [--databases sqlite postgresql] [--http-seconds 20] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text

from clicktune.ids import new_id
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.store.clickstream import content_hash
from clicktune.store.engine import make_engine, migrate, write_transaction
from clicktune.store.tables import batches, events, sessions
from recording import RESULTS, append_section, git_commit

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1/clickstream"
HTTP_GOAL_SESSIONS_S = 1000.0
HTTP_GOAL_P99_MS = 50.0
IMPORT_GOAL_RATIO = 0.25


@dataclass(frozen=True)
class Workload:
    results: int  # search results per session
    events: int  # events per session

    def session(self, session_id: str) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "search_query": f"query for {session_id}",
            "search_results": [
                {"object_id": f"doc-{i}", "rank": round(1.0 - i / 100, 3)}
                for i in range(self.results)
            ],
            "user_id": "bench-user",
        }

    def events_of(self, session_id: str) -> list[dict[str, Any]]:
        return [
            {"event_id": f"{session_id}-e{i}", "object_id": f"doc-{i * 2}", "event_type": "click"}
            for i in range(self.events)
        ]


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_memory_mib(self) -> float:
        """The server process's peak resident memory so far (VmHWM), from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")


@contextmanager
def running_server(database_url: str, data_dir: Path) -> Iterator[Server]:
    """`clicktune api` in a subprocess, once it answers."""
    env = instance_env(data_dir, database_url=database_url, log_level="WARNING")
    base = local_url(env)
    with running("api", env, base, timeout_s=60) as server:
        yield Server(base, server.pid)


@contextmanager
def fresh_database(kind: str, admin_url: str, folder: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{name}.db'}"
        return
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = f"clicktune_bench_{name}_{new_id()}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield admin.url.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# --- 1. HTTP ---------------------------------------------------------------------------------


async def _client(
    http: httpx.AsyncClient,
    workload: Workload,
    ids: list[str],
    stop_at: float,
    latencies: dict[str, list[float]],
) -> None:
    for session_id in ids:
        if time.perf_counter() > stop_at:
            return
        started = time.perf_counter()
        registered = await http.post(f"{API}/session", json=workload.session(session_id))
        middle = time.perf_counter()
        added = await http.post(
            f"{API}/session/events",
            json={"session_id": session_id, "events": workload.events_of(session_id)},
        )
        ended = time.perf_counter()
        if registered.status_code != 201 or added.status_code != 200:
            raise SystemExit(f"unexpected answer: {registered.text} / {added.text}")
        latencies["session"].append(middle - started)
        latencies["events"].append(ended - middle)


async def _clients(
    base: str, workload: Workload, shares: list[list[str]], max_seconds: float
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"session": [], "events": []}
    limits = httpx.Limits(max_connections=len(shares), max_keepalive_connections=len(shares))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        await http.get("/api/v1/ping")
        started = time.time()
        stop_at = time.perf_counter() + max_seconds
        await asyncio.gather(*(_client(http, workload, ids, stop_at, latencies) for ids in shares))
        ended = time.time()
    return {"started": started, "ended": ended, **latencies}


def _client_process(args: tuple[str, Workload, list[list[str]], float]) -> dict[str, Any]:
    return asyncio.run(_clients(*args))


def measure_http(server: Server, workload: Workload, args: argparse.Namespace) -> dict[str, Any]:
    """Sessions from `args.clients` clients until all are sent or `args.http_seconds` pass."""
    ids = [f"http-{n}" for n in range(args.sessions)]
    shares = [ids[c :: args.clients] for c in range(args.clients)]
    processes = args.client_processes
    per_process = [shares[p::processes] for p in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        cpu_before = server.cpu_seconds()
        parts = pool.map(
            _client_process,
            [(server.base, workload, share, args.http_seconds) for share in per_process],
        )
        cpu = server.cpu_seconds() - cpu_before
    seconds = max(p["ended"] for p in parts) - min(p["started"] for p in parts)
    session_latency = [x for p in parts for x in p["session"]]
    events_latency = [x for p in parts for x in p["events"]]
    return {
        "sessions": len(session_latency),
        "seconds": seconds,
        "server_cpu_s": cpu,
        "session_ms": _percentiles(session_latency),
        "events_ms": _percentiles(events_latency),
    }


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


# --- 2. import -------------------------------------------------------------------------------


def _import_lines(workload: Workload, total: int) -> Iterator[bytes]:
    block: list[str] = []
    for n in range(total):
        session_id = f"import-{n}"
        line = {**workload.session(session_id), "events": workload.events_of(session_id)}
        block.append(json.dumps(line))
        if len(block) == 1000:
            yield ("\n".join(block) + "\n").encode()
            block = []
    if block:
        yield ("\n".join(block) + "\n").encode()


def measure_import(server: Server, workload: Workload, total: int) -> dict[str, Any]:
    body = list(_import_lines(workload, total))  # made before the clock starts
    memory_before = server.peak_memory_mib()
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    response = httpx.post(
        f"{server.base}{API}/import",
        content=iter(body),
        headers={"content-type": "application/x-ndjson"},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    report = response.json()
    if response.status_code != 200 or report["sessions"] != total or report["errors"]:
        raise SystemExit(f"import failed: {response.status_code} {response.text[:500]}")
    return {
        "sessions": total,
        "seconds": seconds,
        "server_cpu_s": cpu,
        "body_mb": sum(len(block) for block in body) / 1e6,
        "peak_mib": (memory_before, server.peak_memory_mib()),
    }


# --- 3. the storage limit --------------------------------------------------------------------


def measure_storage_limit(database_url: str, workload: Workload, total: int) -> dict[str, Any]:
    """The import's rows inserted straight through SQLAlchemy Core in one transaction."""
    engine = make_engine(database_url)
    migrate(engine)
    now = time.time()
    batch_id = new_id()
    session_rows = []
    event_rows = []
    for n in range(total):
        session_id = f"import-{n}"
        body = workload.session(session_id)
        results = [{**r, "meta": {}} for r in body["search_results"]]
        session_rows.append(
            {
                "session_id": session_id,
                "batch_id": batch_id,
                "session_number": n + 1,
                "search_query": body["search_query"],
                "search_results": results,
                "search_meta": {},
                "user_id": body["user_id"],
                "created_at": now,
                "received_at": now,
                "content_hash": content_hash({**body, "search_results": results}),
            }
        )
        event_rows += [
            {**e, "session_id": session_id, "created_at": now, "received_at": now, "meta": {}}
            for e in workload.events_of(session_id)
        ]
    started = time.perf_counter()
    with write_transaction(engine) as conn:
        conn.execute(
            insert(batches).values(
                batch_id=batch_id, status="collecting", created_at=now, sessions=total
            )
        )
        conn.execute(insert(sessions), session_rows)
        conn.execute(insert(events), event_rows)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"sessions": total, "seconds": seconds}


# --- report ----------------------------------------------------------------------------------


def run_database(
    kind: str, args: argparse.Namespace, workload: Workload
) -> tuple[list[list[str]], str]:
    """The table's rows for one database, and a note on the server's memory."""
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    with tempfile.TemporaryDirectory(prefix="clicktune-ingest-") as folder:
        work = Path(folder)
        with (
            fresh_database(kind, args.postgres_admin_url, work, "api") as url,
            running_server(url, work / "data") as server,
        ):
            http = measure_http(server, workload, args)
            imported = measure_import(server, workload, args.import_sessions)
        with fresh_database(kind, args.postgres_admin_url, work, "reference") as url:
            limit = measure_storage_limit(url, workload, args.import_sessions)
    limit_rate = limit["sessions"] / limit["seconds"]
    http_rate = http["sessions"] / http["seconds"]
    import_rate = imported["sessions"] / imported["seconds"]
    session_p50, session_p99 = http["session_ms"]
    events_p50, events_p99 = http["events_ms"]
    http_ok = http_rate >= HTTP_GOAL_SESSIONS_S and max(session_p99, events_p99) <= HTTP_GOAL_P99_MS
    import_ok = import_rate >= IMPORT_GOAL_RATIO * limit_rate
    before, after = imported["peak_mib"]
    note = (
        f"{label}: the server's peak memory was {before:.0f} MiB before the import and "
        f"{after:.0f} MiB after streaming {imported['body_mb']:.0f} MB of NDJSON"
    )
    rows = [
        [
            label,
            f"HTTP, {args.clients} clients",
            f"{http['sessions']}",
            f"{http_rate:,.0f}",
            f"{session_p50:.1f} / {session_p99:.1f}",
            f"{events_p50:.1f} / {events_p99:.1f}",
            _cpu_per_session(http),
            f"{http_rate / limit_rate:.1%}",
            f"≥ 1,000/s, p99 ≤ 50 ms: {'met' if http_ok else 'missed'}",
        ],
        [
            label,
            "POST /clickstream/import",
            f"{imported['sessions']}",
            f"{import_rate:,.0f}",
            "",
            "",
            _cpu_per_session(imported),
            f"{import_rate / limit_rate:.1%}",
            f"≥ 25 % of the limit: {'met' if import_ok else 'missed'}",
        ],
        [
            label,
            "storage limit (Core, one transaction)",
            f"{limit['sessions']}",
            f"{limit_rate:,.0f}",
            "",
            "",
            "",
            "100%",
            "reference",
        ],
    ]
    return rows, note


def _cpu_per_session(measured: dict[str, Any]) -> str:
    return f"{measured['server_cpu_s'] / measured['sessions'] * 1e6:,.0f}"


HEADER = [
    "database",
    "path",
    "sessions",
    "sessions/s",
    "session p50 / p99 ms",
    "events p50 / p99 ms",
    "server CPU µs/session",
    "vs storage limit",
    "goal",
]


def markdown(rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def record(
    table: list[str], notes: list[str], args: argparse.Namespace, workload: Workload
) -> None:
    lines = [
        f"- command: `python bench/ingest.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- commit: {git_commit()}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} CPUs (server and clients share them), "
        f"{platform.platform()}, Python {platform.python_version()}; load average before the "
        f"run {args.load_before:.1f} (other work on the machine takes CPU from the server)",
        f"- workload: {workload.results} search results and {workload.events} events per session; "
        f"one API process; clients in {args.client_processes} process(es)",
        "",
        *table,
        "",
        *[f"- {note}" for note in notes],
    ]
    append_section("Ingest", lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--databases",
        nargs="+",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        help="databases to measure (default: both)",
    )
    parser.add_argument("--sessions", type=int, default=20000, help="most sessions sent over HTTP")
    parser.add_argument(
        "--http-seconds", type=float, default=20.0, help="longest the HTTP phase runs"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument(
        "--client-processes", type=int, default=1, help="processes the clients run in"
    )
    parser.add_argument(
        "--import-sessions", type=int, default=10000, help="sessions in the import body"
    )
    parser.add_argument("--results", type=int, default=10, help="search results per session")
    parser.add_argument("--events", type=int, default=2, help="events per session")
    parser.add_argument(
        "--postgres-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="where fresh PostgreSQL databases are created",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    workload = Workload(results=args.results, events=args.events)
    results = [run_database(kind, args, workload) for kind in args.databases]
    table = markdown([row for rows, _ in results for row in rows])
    notes = [note for _, note in results]
    print("\n".join(table + notes))
    if not args.no_record:
        record(table, notes, args, workload)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
