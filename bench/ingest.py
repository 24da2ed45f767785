"""Ingest cost: what a session costs the API process, beside the framework floor and the storage
limit, measured in the same run.

For each database (SQLite, PostgreSQL): starts the real server (`clicktune api`) on a free port
with a fresh data dir and database, and beside it an empty FastAPI endpoint served by uvicorn the
same way (the framework floor: what any request of that size costs before our code runs), then
  1. floor: `--clients` concurrent clients post one search's body to the empty endpoint;
  2. single: the same clients post each search with its events inline (`POST /clickstream/session`),
     the one-request-per-search case;
  3. batch: `POST /clickstream/sessions` with `--batch` sessions a request;
  4. import: the same kind of sessions as one NDJSON body streamed to `POST /clickstream/import`;
  5. storage limit (the reference): the same rows inserted straight through SQLAlchemy Core in one
     transaction into another fresh database.
Server CPU per session is the server process's own CPU time (user + system, from /proc) divided by
the sessions it stored: what a session costs, whatever else the machine is busy with.
Goals (docs/benchmarks.md §2): single ≤ 2x the floor's CPU per request and p99 ≤ 50 ms;
batch ≤ 0.25x the floor per session; import ≥ 25 % of the storage limit's rate; on SQLite and
PostgreSQL.

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
import subprocess
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
SINGLE_CPU_GOAL = 2.0  # x the floor's CPU per request
BATCH_CPU_GOAL = 0.25  # x the floor's CPU per request, per session
P99_GOAL_MS = 50.0
IMPORT_GOAL_RATIO = 0.25
FLOOR_APP = "ingest_floor:app"


@dataclass(frozen=True)
class Workload:
    results: int  # search results per session
    events: int  # events per session

    def session(self, session_id: str) -> dict[str, Any]:
        """One search as an application sends it, its events inline."""
        return {
            "session_id": session_id,
            "search_query": f"query for {session_id}",
            "search_results": [
                {"object_id": f"doc-{i}", "rank": round(1.0 - i / 100, 3)}
                for i in range(self.results)
            ],
            "user_id": "bench-user",
            "events": [
                {"event_id": f"{session_id}-e{i}", "object_id": f"doc-{i * 2}"}
                for i in range(self.events)
            ],
        }


@dataclass(frozen=True)
class Mode:
    """One way of sending sessions over HTTP."""

    name: str
    path: str
    per_request: int  # sessions in one request
    status: int  # the answer that means stored

    def body(self, workload: Workload, ids: list[str]) -> dict[str, Any]:
        if self.per_request == 1:
            return workload.session(ids[0])
        return {"sessions": [workload.session(session_id) for session_id in ids]}


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
    env = instance_env(data_dir, database_url=database_url, single_host="1", log_level="WARNING")
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
    mode: Mode,
    bodies: list[bytes],
    stop_at: float,
    latencies: list[float],
) -> None:
    headers = {"content-type": "application/json"}
    for body in bodies:
        if time.perf_counter() > stop_at:
            return
        started = time.perf_counter()
        answer = await http.post(mode.path, content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        if answer.status_code != mode.status:
            raise SystemExit(f"{mode.name}: unexpected answer {answer.status_code} {answer.text}")


async def _clients(
    base: str, mode: Mode, shares: list[list[bytes]], max_seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=len(shares), max_keepalive_connections=len(shares))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        await http.get("/api/v1/ping")
        started = time.time()
        stop_at = time.perf_counter() + max_seconds
        await asyncio.gather(
            *(_client(http, mode, bodies, stop_at, latencies) for bodies in shares)
        )
        ended = time.time()
    return {"started": started, "ended": ended, "latencies": latencies}


def _client_process(args: tuple[str, Mode, list[list[bytes]], float]) -> dict[str, Any]:
    return asyncio.run(_clients(*args))


def measure_http(
    server: Server, mode: Mode, workload: Workload, args: argparse.Namespace
) -> dict[str, Any]:
    """`mode`'s requests from `args.clients` clients until all are sent or `args.http_seconds`
    pass; the bodies are encoded before the clock starts."""
    requests = max(1, args.sessions // mode.per_request)
    bodies = [
        json.dumps(
            mode.body(
                workload,
                [f"{mode.name}-{n}-{k}" for k in range(mode.per_request)],
            )
        ).encode()
        for n in range(requests)
    ]
    shares = [bodies[c :: args.clients] for c in range(args.clients)]
    processes = args.client_processes
    per_process = [shares[p::processes] for p in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        cpu_before = server.cpu_seconds()
        parts = pool.map(
            _client_process,
            [(server.base, mode, share, args.http_seconds) for share in per_process],
        )
        cpu = server.cpu_seconds() - cpu_before
    latencies = [x for part in parts for x in part["latencies"]]
    return {
        "requests": len(latencies),
        "sessions": len(latencies) * mode.per_request,
        "seconds": max(p["ended"] for p in parts) - min(p["started"] for p in parts),
        "server_cpu_s": cpu,
        "ms": _percentiles(latencies),
    }


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


@contextmanager
def running_floor(data_dir: Path) -> Iterator[Server]:
    """The empty endpoint (`bench/ingest_floor.py`) under uvicorn, as `clicktune api` runs."""
    env = instance_env(data_dir, log_level="WARNING")
    port = env["CLICKTUNE_PORT"]
    base = local_url(env)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")])
    )
    command = [sys.executable, "-m", "uvicorn", FLOOR_APP, "--port", port, "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the floor server did not start")
            time.sleep(0.2)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- 2. import -------------------------------------------------------------------------------


def _import_lines(workload: Workload, total: int) -> Iterator[bytes]:
    block: list[str] = []
    for n in range(total):
        session_id = f"import-{n}"
        block.append(json.dumps(workload.session(session_id)))
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
        session_events = body.pop("events")
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
            {
                **e,
                "session_id": session_id,
                "event_type": "click",
                "created_at": now,
                "received_at": now,
                "meta": {},
            }
            for e in session_events
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
) -> tuple[list[list[str]], list[str]]:
    """The table's rows for one database, and notes."""
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    single = Mode("single", f"{API}/session", 1, 201)
    batch = Mode("batch", f"{API}/sessions", args.batch, 200)
    with tempfile.TemporaryDirectory(prefix="clicktune-ingest-") as folder:
        work = Path(folder)
        with running_floor(work / "floor") as floor_server:
            floor = measure_http(floor_server, Mode("floor", "/floor", 1, 201), workload, args)
        with (
            fresh_database(kind, args.postgres_admin_url, work, "api") as url,
            running_server(url, work / "data") as server,
        ):
            measured = {
                mode.name: measure_http(server, mode, workload, args) for mode in (single, batch)
            }
            imported = measure_import(server, workload, args.import_sessions)
        with fresh_database(kind, args.postgres_admin_url, work, "reference") as url:
            limit = measure_storage_limit(url, workload, args.import_sessions)
    floor_cpu = floor["server_cpu_s"] / floor["requests"]
    limit_rate = limit["sessions"] / limit["seconds"]

    def cpu_ratio(run: dict[str, Any]) -> float:
        return run["server_cpu_s"] / run["sessions"] / floor_cpu

    def row(path: str, run: dict[str, Any], goal: str) -> list[str]:
        rate = run["sessions"] / run["seconds"]
        p50, p99 = run.get("ms", (None, None))
        return [
            label,
            path,
            f"{run['sessions']:,}",
            f"{rate:,.0f}",
            "" if p50 is None else f"{p50:.1f} / {p99:.1f}",
            f"{run['server_cpu_s'] / run['sessions'] * 1e6:,.0f}",
            f"{cpu_ratio(run):.2f}",
            f"{rate / limit_rate:.1%}",
            goal,
        ]

    single_ok = cpu_ratio(measured["single"]) <= SINGLE_CPU_GOAL and (
        measured["single"]["ms"][1] <= P99_GOAL_MS
    )
    batch_ok = cpu_ratio(measured["batch"]) <= BATCH_CPU_GOAL
    import_rate = imported["sessions"] / imported["seconds"]
    import_ok = import_rate >= IMPORT_GOAL_RATIO * limit_rate
    rows = [
        row(f"floor: empty endpoint, {args.clients} clients", floor, "reference"),
        row(
            f"POST /clickstream/session, events inline, {args.clients} clients",
            measured["single"],
            f"≤ {SINGLE_CPU_GOAL:g}x floor, p99 ≤ {P99_GOAL_MS:g} ms: {_met(single_ok)}",
        ),
        row(
            f"POST /clickstream/sessions, {args.batch} a request, {args.clients} clients",
            measured["batch"],
            f"≤ {BATCH_CPU_GOAL:g}x floor per session: {_met(batch_ok)}",
        ),
        row("POST /clickstream/import", imported, f"≥ 25 % of the limit: {_met(import_ok)}"),
        row("storage limit (Core, one transaction)", {**limit, "server_cpu_s": 0.0}, "reference"),
    ]
    before, after = imported["peak_mib"]
    notes = [
        f"{label}: the server's peak memory was {before:.0f} MiB before the import and "
        f"{after:.0f} MiB after streaming {imported['body_mb']:.0f} MB of NDJSON",
        f"{label}: the floor's CPU per request: {floor_cpu * 1e6:,.0f} µs; p50 / p99 are per "
        "request (a batch request carries its sessions)",
    ]
    return rows, notes


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


HEADER = [
    "database",
    "path",
    "sessions",
    "sessions/s",
    "request p50 / p99 ms",
    "server CPU µs/session",
    "x floor CPU",
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
        f"one API process; clients in {args.client_processes} process(es); at most "
        f"{args.sessions:,} sessions or {args.http_seconds:g} s per HTTP path",
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
    parser.add_argument("--batch", type=int, default=100, help="sessions per batch request")
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
    notes = [note for _, database_notes in results for note in database_notes]
    print("\n".join(table + notes))
    if not args.no_record:
        record(table, notes, args, workload)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
