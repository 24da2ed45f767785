"""Task latency: POST /fine-tuning/task → `processing`, and cancel → the worker stopping.

Starts a real API (`clicktune api`) and one real worker (`clicktune worker`) on a fresh data
dir, with the service's default worker settings unless told otherwise. The method is the test
steps plugin (tests/plugins), which checks for cancellation between 0.1 s steps like training
does between optimizer steps. For each task: the time from sending the create to the task's
`started_at` (stamped by the worker), then, a moment later, from sending the cancel to the
worker's `task_stopped` log line. Each task runs twice: once reporting progress every step (a
refused write tells the worker at once) and once silent (only the heartbeat tells: the worst
case). Goals (docs/benchmarks.md §2): ≤ 2 s and ≤ 10 s, median and p95.

    python bench/task_latency.py [--tasks 20] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from clicktune.settings import Settings
from clicktune.simulate.service import free_port
from recording import RESULTS, append_section, git_commit, machine

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DIR = ROOT / "tests" / "plugins"
METHOD = "Test Steps Method"
PICKUP = "create → processing"
STOP_REPORTING = "cancel → stopped (method reporting each step)"
STOP_QUIET = "cancel → stopped (silent method: heartbeat only)"
GOALS_S = {PICKUP: 2.0, STOP_REPORTING: 10.0, STOP_QUIET: 10.0}


def _wait(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out after {timeout_s} s waiting for {what}")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Stack:
    """`clicktune api` and `clicktune worker` as child processes sharing one environment."""

    def __init__(self, data_dir: Path, args: argparse.Namespace) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/api/v1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
        env.update(
            CLICKTUNE_DATA_DIR=str(data_dir),
            CLICKTUNE_PORT=str(port),
            CLICKTUNE_PLUGINS_PATH=str(PLUGINS_DIR),
            CLICKTUNE_LOG_JSON="1",
        )
        if args.database_url:
            env["CLICKTUNE_DATABASE_URL"] = args.database_url
        if args.heartbeat_s is not None:
            env["CLICKTUNE_WORKER_HEARTBEAT_S"] = str(args.heartbeat_s)
        if args.poll_s is not None:
            env["CLICKTUNE_WORKER_POLL_S"] = str(args.poll_s)
        self.worker_log = data_dir / "worker.log"
        defaults = Settings.model_fields
        self.heartbeat_s = args.heartbeat_s or defaults["worker_heartbeat_s"].default
        self.poll_s = args.poll_s or defaults["worker_poll_s"].default
        command = [sys.executable, "-m", "clicktune"]
        self.api = subprocess.Popen(
            [*command, "api"], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        with self.worker_log.open("wb") as log:
            self.worker = subprocess.Popen(
                [*command, "worker"], env=env, stderr=log, stdout=subprocess.DEVNULL
            )
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                health = self.http.get("/health").json()
            except httpx.HTTPError:
                return False
            return health["components"]["workers"]["online"] > 0

        _wait(ready, 120, "the API and the worker")

    def stopped_at(self, task_id: str) -> float | None:
        for line in self.worker_log.read_text().splitlines():
            if task_id in line and '"task_stopped"' in line:
                return _epoch(json.loads(line)["timestamp"])
        return None

    def close(self) -> None:
        self.http.close()
        for process in (self.worker, self.api):
            process.terminate()
        for process in (self.worker, self.api):
            process.wait(timeout=60)


def _released_batch(http: httpx.Client) -> str:
    for number in range(3):
        session = {
            "session_id": f"bench-{number}",
            "search_query": f"bench query {number}",
            "search_results": [{"object_id": f"doc-{number}"}],
        }
        http.post("/clickstream/session", json=session).raise_for_status()
    response = http.post("/clickstream/internal/batch/release", json={"release_id": "bench"})
    response.raise_for_status()
    return response.json()["batch_id"]


def measure(stack: Stack, tasks: int) -> dict[str, list[float]]:
    batch_id = _released_batch(stack.http)
    results: dict[str, list[float]] = {PICKUP: [], STOP_REPORTING: [], STOP_QUIET: []}
    for number in range(2 * tasks):
        quiet = number % 2 == 1
        body = {
            "fine_tuning_method": METHOD,
            "batch_id": batch_id,
            "hyperparameters": {"steps": 100_000, "step_s": 0.1, "quiet": quiet},
        }
        # Spread the creates over the worker's poll cycle and the cancels over its heartbeat
        # cycle, instead of phase-locking them to the previous task's end.
        time.sleep((number % 10) * stack.poll_s / 10)
        sent = time.time()
        task = stack.http.post("/fine-tuning/task", json=body).json()
        task_id = task["id"]

        def started(task_id: str = task_id) -> str | None:
            return stack.http.get(f"/fine-tuning/task/{task_id}").json()["started_at"]

        pickup = _epoch(_wait(started, 60, f"task {task_id} to start")) - sent
        time.sleep(0.3 + ((number // 2) % 10) * stack.heartbeat_s / 10 if quiet else 0.3)
        sent = time.time()
        stack.http.put(f"/fine-tuning/task/{task_id}/cancel").raise_for_status()
        stopped = _wait(lambda t=task_id: stack.stopped_at(t), 60, f"task {task_id} to stop")
        results[PICKUP].append(pickup)
        results[STOP_QUIET if quiet else STOP_REPORTING].append(stopped - sent)
        print(
            f"task {number + 1}/{2 * tasks} ({'silent' if quiet else 'reporting'}): "
            f"pickup {pickup:.3f} s, stop {stopped - sent:.3f} s"
        )
    return results


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return max(values)
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def _table(results: dict[str, list[float]]) -> list[str]:
    rows = [
        "| measure | n | median (s) | p95 (s) | max (s) | goal (s) | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in results.items():
        goal = GOALS_S[name]
        median, p95 = statistics.median(values), _p95(values)
        met = "yes" if max(median, p95) <= goal else "no"
        rows.append(
            f"| {name} | {len(values)} | {median:.3f} | {p95:.3f} | {max(values):.3f} "
            f"| ≤ {goal:g} | {met} |"
        )
    return rows


def _record(table: list[str], args: argparse.Namespace, stack: Stack, database: str) -> None:
    settings = (
        f"heartbeat {stack.heartbeat_s:g} s{'' if args.heartbeat_s else ' (default)'}, "
        f"poll {stack.poll_s:g} s{'' if args.poll_s else ' (default)'}"
    )
    command = " ".join(["python bench/task_latency.py", *sys.argv[1:]])
    lines = [
        f"- command: `{command}`",
        f"- commit: {git_commit()}",
        f"- machine: {machine()}",
        f"- database: {database}; worker settings: {settings}; one API and one worker process",
        "",
        *table,
    ]
    append_section("Task latency", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tasks", type=int, default=20, help="tasks to create and cancel, per method mode"
    )
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (an empty PostgreSQL database); default SQLite"
    )
    parser.add_argument("--heartbeat-s", type=float, help="CLICKTUNE_WORKER_HEARTBEAT_S")
    parser.add_argument("--poll-s", type=float, help="CLICKTUNE_WORKER_POLL_S")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    database = "PostgreSQL" if args.database_url else "SQLite"
    with tempfile.TemporaryDirectory(prefix="clicktune-bench-") as data_dir:
        stack = Stack(Path(data_dir), args)
        try:
            stack.wait_ready()
            results = measure(stack, args.tasks)
        finally:
            stack.close()
    table = _table(results)
    print("\n".join(table))
    if not args.no_record:
        _record(table, args, stack, database)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
