"""Reliability under faults (docs/benchmarks.md §3): kill -9 of `clicktune up`'s children
during tasks, a database outage, and cancels aimed at the completing step.

Starts `clicktune up` on a fresh data dir (a short worker lease, so a killed worker's task is taken
over within seconds) and runs `--rounds` fine-tuning tasks of the default method, one training run
each, on the bundled catalog's quick subset, alternately with and without a judged set (so tasks
promote, keep, or make a challenger). In each round it puts one fault at a random moment while the
task runs, in turn: SIGKILL of the worker, the API or the MLflow UI; with `--database postgresql`
also a database outage, first in the rotation (database, worker, API, MLflow UI). Every third
round it also cancels the task the moment it shows its `completing` stage.

With `--database postgresql` the instance gets a fresh PostgreSQL database, reached (by the API and
the worker alike) through a `TcpForwarder`; an outage cuts it for `--outage-s` (new connections
refused, live ones dropped) and restores it. Recorded for each outage: the worker's pid before and
after (survived, or restarted by `up`), the children `up` saw exit, how long after the restore the
worker marked itself seen in the database again (`/health`) and the task moved on (new progress
or an event: a stage without database writes, as the baseline's evaluation, takes its time), the
task's attempt at the cut and at its end (a new claim counts one), what the API answered the
benchmark's polls during the outage (after the bundled client's 503 retries) and the 503s its
`/metrics` counted (per API process: unknown when the API restarted meanwhile).

Then it checks:

- every task ends `done`, or `canceled` when a cancel was accepted; never `error`;
- `up` restarted the killed child (a new pid, and the API, a worker or the UI answering again);
- after each database outage the task moved on again;
- the registry agrees with the tasks (`GET /fine-tuning/methods/{name}/models`): a done task's
  model is champion or challenger exactly as its result says, a canceled task moved nothing, and
  the aliases end on the newest promoting and challenger-making tasks' models.

The run's folder (`up.log`, with every child's log, and the data dir) is removed when every goal
is met, else kept and named.

    python bench/faults.py [--rounds 10] [--seed 0] [--database sqlite|postgresql]
                           [--outage-s 30] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.ids import new_id
from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.demo import (
    QUICK_HYPERPARAMETERS,
    demo_collection,
    judged_queries,
    judgments,
)
from clicktune.simulate.outage import TcpForwarder, through_forwarder
from clicktune.simulate.senders import load_items, send_sessions
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.simulate.serving import CorpusEncoding, packaged_base_model
from clicktune.simulate.sessions import simulate_sessions
from clicktune.status import FINISHED_STATUSES
from load import fresh_database
from recording import ROOT, append_section, git_commit, machine

METHOD = "Default Fine Tuning Method"
CHILDREN = ("worker", "api", "mlflow")
DATABASE = "database"
FAULTS = {"sqlite": CHILDREN, "postgresql": (DATABASE, "worker", "api", "mlflow")}
"""The rotation of faults by database; SQLite is a file in each process: no outage to make."""
CANCEL_EVERY = 3
RECOVERY_TIMEOUT_S = 120.0
TASK_TIMEOUT_S = 1200.0
OUTAGE_S = 30.0
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHILD_EXITED = re.compile(r"child_exited_unexpectedly.*?child=(\w+)")
T = TypeVar("T")


@dataclass
class Outage:
    """What a database outage did: to the worker, the task, and the API's answers."""

    seconds: float = 0.0
    worker_before: int | None = None
    worker_after: int | None = None
    exited: list[str] = field(default_factory=list)  # children `up` saw exit, cut to moved on
    attempt_before: int | None = None
    attempt_after: int | None = None  # when the task ended
    worker_seen_s: float | None = None  # from the restore to the worker's next mark in /health
    moved_on_s: float | None = None  # from the restore to the task's next progress or event
    moved_on_by: str = ""
    answers: Counter[str] = field(default_factory=Counter)  # to the polls during the outage
    served_503: int | None = None  # by /metrics, cut to moved on; None: the API restarted


@dataclass
class Round:
    number: int
    task_id: str = ""
    judged: bool = False
    fault: str = ""
    at_stage: str = ""
    recovered_s: float | None = None
    outage: Outage | None = None
    cancel: str = "-"
    status: str = ""
    decision: str = ""
    consistent: bool = False
    note: str = ""

    @property
    def back_s(self) -> float | None:
        """A killed child answering again; after an outage, the task moving on."""
        return self.outage.moved_on_s if self.outage is not None else self.recovered_s


class Service:
    """`clicktune up` and what this benchmark needs of it: its children's pids, a patient client."""

    def __init__(self, process: Any, url: str, env: dict[str, str], log: Path) -> None:
        self.process = process
        self.url = url
        self.mlflow_url = f"http://127.0.0.1:{env['CLICKTUNE_MLFLOW_PORT']}"
        self.client = ClicktuneClient(url, timeout=30.0)
        self.log = log

    def child_pid(self, name: str) -> int | None:
        for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            for pid in task.read_text().split():
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except FileNotFoundError:
                    continue
                if _is_child(name, command.decode()):
                    return int(pid)
        return None

    def answers(self, name: str) -> bool:
        try:
            if name == "api":
                return self.client.ping() is not None
            if name == "mlflow":
                return httpx.get(f"{self.mlflow_url}/health", timeout=2).is_success
            health = self.client.health()["components"]["workers"]
            return any(w["pid"] == self.child_pid("worker") for w in health["seen"])
        except (httpx.HTTPError, ErrorResponse):
            return False

    def patiently(self, call: Callable[[], T], timeout_s: float = RECOVERY_TIMEOUT_S) -> T:
        """`call()`, retried while the API is down (it may be restarting) or still answers 503
        after the client's own retries (its database is down)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except (httpx.TransportError, ErrorResponse) as exc:
                if isinstance(exc, ErrorResponse) and exc.status_code != 503:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def served_503(self) -> int | None:
        """The 503 answers the API process counted (`/metrics`); None when it does not answer."""
        try:
            response = httpx.get(f"{self.url}/metrics", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(response.text)
                if family.name == "clicktune_http_requests"
                for sample in family.samples
                if sample.name.endswith("_total") and sample.labels.get("status") == "503"
            )
        )

    def exited_children(self) -> list[str]:
        """Every child `up` has logged as exited unexpectedly, in order."""
        return CHILD_EXITED.findall(self.log.read_text(errors="replace"))


def _is_child(name: str, command: str) -> bool:
    if name == "mlflow":
        return " mlflow server" in command
    return command.rstrip().endswith(f"clicktune {name}")


def _stage(task: dict[str, Any]) -> str:
    """The stage a running task shows; an ended task's status."""
    if task["status"] in FINISHED_STATUSES:
        return str(task["status"])
    return (task.get("progress") or {}).get("stage") or task["status"]


def kill_child(service: Service, name: str, *, after_s: float, task_id: str, round_: Round) -> None:
    """Wait `after_s`, note the task's stage, SIGKILL the child, time its recovery."""
    time.sleep(after_s)
    try:
        round_.at_stage = _stage(service.patiently(lambda: service.client.get_task(task_id)))
    except (httpx.HTTPError, ErrorResponse):
        round_.at_stage = "?"
    pid = service.child_pid(name)
    if pid is None:
        round_.note = f"no {name} child to kill"
        return
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    round_.fault = name
    deadline = killed_at + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        fresh = service.child_pid(name)
        if fresh not in (None, pid) and service.answers(name):
            round_.recovered_s = time.monotonic() - killed_at
            return
        time.sleep(0.2)


def cut_database(
    service: Service,
    forwarder: TcpForwarder,
    *,
    after_s: float,
    outage_s: float,
    task_id: str,
    round_: Round,
) -> None:
    """Wait `after_s`, note the task, cut the database for `outage_s` while polling the task
    through the API, restore it, and time how long the task takes to move on."""
    time.sleep(after_s)
    before = service.patiently(lambda: service.client.get_task(task_id))
    events = service.patiently(lambda: list(service.client.iter_task_events(task_id)))
    last_event = events[-1]["id"] if events else None
    outage = round_.outage = Outage(
        worker_before=service.child_pid("worker"), attempt_before=before["attempts"]
    )
    round_.at_stage = _stage(before)
    if before["status"] in FINISHED_STATUSES:
        round_.note = "the task had ended before the cut"
    api_before, served_before = service.child_pid("api"), service.served_503()
    exited_before = len(service.exited_children())
    restored = threading.Event()
    restored_at: list[float] = []

    def restore() -> None:
        forwarder.restore()
        restored_at.append(time.time())
        restored.set()

    forwarder.cut()
    cut_at = time.monotonic()
    round_.fault = DATABASE
    timer = threading.Timer(outage_s, restore)
    timer.start()
    while not restored.wait(1.0):
        try:
            service.client.get_task(task_id)
            outage.answers["200"] += 1
        except ErrorResponse as exc:
            outage.answers[f"{exc.status_code} {exc.code}"] += 1
        except httpx.HTTPError as exc:
            outage.answers[type(exc).__name__] += 1
    timer.join()
    outage.seconds = time.monotonic() - cut_at
    after_restore(service, task_id, last_event, restored_at[0], outage)
    outage.worker_after = service.child_pid("worker")
    outage.exited = service.exited_children()[exited_before:]
    served_after = service.served_503()
    if service.child_pid("api") == api_before and served_before is not None:
        outage.served_503 = None if served_after is None else served_after - served_before


def after_restore(
    service: Service, task_id: str, last_event: str | None, restored_at: float, outage: Outage
) -> None:
    """Poll until the worker records itself in the database again (`/health`) and the task
    writes again (progress, a claim, an event, its end), each timed by its own timestamp from the
    restore (`restored_at`, epoch seconds); for at most `RECOVERY_TIMEOUT_S`."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline and None in (outage.worker_seen_s, outage.moved_on_s):
        try:
            workers = service.client.health()["components"]["workers"]["seen"]
            task = service.client.get_task(task_id)
            page = service.client.task_events(task_id, after=last_event)["data"]
        except (httpx.HTTPError, ErrorResponse):
            time.sleep(0.2)
            continue
        seen = [_epoch(w["seen_at"]) for w in workers if _epoch(w["seen_at"]) >= restored_at]
        if seen and outage.worker_seen_s is None:
            outage.worker_seen_s = min(seen) - restored_at
        if outage.moved_on_s is None:
            moved = _moved(task, page, restored_at)
            if moved is not None:
                at, outage.moved_on_by = moved
                outage.moved_on_s = max(at - restored_at, 0.0)
        time.sleep(0.2)


def _moved(
    task: dict[str, Any], events: list[dict[str, Any]], restored_at: float
) -> tuple[float, str] | None:
    """When and how the task first wrote after `restored_at`; None when it has not yet."""
    new = [e for e in events if _epoch(e["created_at"]) >= restored_at]
    if new:
        return _epoch(new[0]["created_at"]), f"event {new[0]['message'][:60]!r}"
    if _epoch(task["updated_at"]) >= restored_at:
        how = f"ended {task['status']}" if task["status"] in FINISHED_STATUSES else "progress"
        return _epoch(task["updated_at"]), f"{how} ({_stage(task)})"
    return None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def cancel_when_completing(service: Service, task_id: str, round_: Round) -> None:
    """Poll fast; at the first `completing` stage, cancel: accepted or refused as too late."""
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            task = service.client.get_task(task_id)
        except (httpx.HTTPError, ErrorResponse):
            time.sleep(0.2)
            continue
        if task["status"] in FINISHED_STATUSES:
            round_.cancel = "missed (already finished)"
            return
        if (task.get("progress") or {}).get("stage") == "completing":
            try:
                service.client.cancel_task(task_id)
                round_.cancel = "accepted"
            except ErrorResponse as exc:
                round_.cancel = f"refused ({exc.code})"
            return
        time.sleep(0.05)


def check_registry(service: Service, rounds: list[Round]) -> tuple[bool, dict[str, Any]]:
    """Whether every move agrees with the tasks, and the final aliases with the newest ones."""
    models = service.patiently(lambda: service.client.method_models(METHOD))
    moves = [m for m in models["history"] if m["event"] in ("champion", "challenger")]
    ok = True
    last: dict[str, str | None] = {"champion": None, "challenger": None}
    for round_ in rounds:
        task = service.patiently(lambda r=round_: service.client.get_task(r.task_id))
        by_task = {m["event"]: m for m in moves if m["task_id"] == round_.task_id}
        if task["status"] == "canceled":
            round_.consistent = not by_task
        else:
            promoted, challenger = bool(task.get("promoted")), bool(task.get("challenger"))
            best = task.get("best_run_id")
            round_.consistent = (
                ("champion" in by_task) == promoted
                and ("challenger" in by_task) == challenger
                and all(m["run_id"] == best for m in by_task.values())
            )
            if promoted:
                last["champion"] = best
            if challenger:
                last["challenger"] = best
        ok = ok and round_.consistent
    final = {alias: (models[alias] or {}).get("run_id") for alias in ("champion", "challenger")}
    aliases_ok = final["champion"] == last["champion"] and (
        final["challenger"] in (last["challenger"], None)
    )
    return ok and aliases_ok, {"final": final, "expected": last}


@contextlib.contextmanager
def database_under_test(
    database: str, admin_url: str, folder: Path
) -> Iterator[tuple[dict[str, str], TcpForwarder | None]]:
    """The instance's database settings: none for SQLite (its default file in the data dir); a
    fresh PostgreSQL database reached through a forwarder (dropped on the way out)."""
    if database == "sqlite":
        yield {}, None
        return
    with (
        fresh_database(database, admin_url, folder) as url,
        through_forwarder(url) as (forwarded_url, forwarder),
    ):
        yield {"database_url": forwarded_url, "single_host": "1"}, forwarder


def start_fault(
    service: Service,
    fault: str,
    forwarder: TcpForwarder | None,
    *,
    after_s: float,
    outage_s: float,
    task_id: str,
    round_: Round,
) -> threading.Thread:
    if fault == DATABASE:
        assert forwarder is not None, "a database outage needs the forwarder"
        target: Callable[..., None] = cut_database
        args: tuple[Any, ...] = (service, forwarder)
        extra: dict[str, Any] = {"outage_s": outage_s}
    else:
        target, args, extra = kill_child, (service, fault), {}
    thread = threading.Thread(
        target=target,
        args=args,
        kwargs={"after_s": after_s, "task_id": task_id, "round_": round_, **extra},
    )
    thread.start()
    return thread


def run(
    args: argparse.Namespace, work: Path
) -> tuple[list[Round], bool, dict[str, Any], float, int]:
    """The rounds, whether the registry agrees, its aliases, the run's seconds and the child
    exits `up` logged."""
    rng = random.Random(args.seed)
    collection = demo_collection(quick=True, seed=args.seed)
    train, _test = collection.split(args.seed)
    encoding = CorpusEncoding(ROOT / "bench" / ".work" / "embeddings")
    base = encoding.retriever(packaged_base_model(), collection)
    faults = FAULTS[args.database]
    results: list[Round] = []
    started = time.monotonic()
    log = work / "up.log"
    with database_under_test(args.database, args.postgres_admin_url, work) as (database, forwarder):
        env = instance_env(
            work / "data",
            worker_lease_s="10",
            worker_heartbeat_s="2",
            log_level="INFO",
            **database,
        )
        url = local_url(env)
        with running("up", env, url, log=log, timeout_s=300) as process:
            service = Service(process, url, env, log)
            load_items(service.client, collection)
            service.client.put_judgments("faults", judgments(collection, judged_queries(train)))
            for number in range(1, args.rounds + 1):
                round_ = Round(number, judged=number % 2 == 0)
                sessions = list(
                    simulate_sessions(
                        collection,
                        train,
                        base.search,
                        PositionBasedClickModel(collection.max_grade),
                        sessions_per_query=2,
                        seed=args.seed + number,
                        session_prefix=f"faults-{number}-{new_id()[:6]}",
                    )
                )
                service.patiently(lambda s=sessions: send_sessions(service.client, s))
                task = service.patiently(
                    lambda r=round_: service.client.create_task(
                        METHOD,
                        hyperparameters=QUICK_HYPERPARAMETERS,
                        idempotency_key=f"faults-{args.seed}-{r.number}",
                        **({"validation_set": "faults"} if r.judged else {}),
                    )
                )
                round_.task_id = task["id"]
                threads = [
                    start_fault(
                        service,
                        faults[(number - 1) % len(faults)],
                        forwarder,
                        after_s=rng.uniform(1.0, 40.0),
                        outage_s=args.outage_s,
                        task_id=task["id"],
                        round_=round_,
                    )
                ]
                if number % CANCEL_EVERY == 0:
                    threads.append(
                        threading.Thread(
                            target=cancel_when_completing, args=(service, task["id"], round_)
                        )
                    )
                    threads[-1].start()
                for thread in threads:
                    thread.join()
                final = service.patiently(
                    lambda t=task["id"]: service.client.wait_for_task(t, timeout_s=TASK_TIMEOUT_S),
                    timeout_s=TASK_TIMEOUT_S,
                )
                finish_round(round_, final)
                results.append(round_)
                print(round_line(round_), flush=True)
            consistent, aliases = check_registry(service, results)
            exits = len(service.exited_children())
    return results, consistent, aliases, time.monotonic() - started, exits


def finish_round(round_: Round, final: dict[str, Any]) -> None:
    round_.status = final["status"]
    if round_.outage is not None:
        round_.outage.attempt_after = final["attempts"]
    metrics = final.get("metrics") or {}
    round_.decision = (
        "promoted"
        if final.get("promoted")
        else "challenger"
        if final.get("challenger")
        else "kept"
        if final["status"] == "done"
        else "-"
    )
    notes = [round_.note] if round_.note else []
    if final["status"] == "error":
        notes.append(f"{final['error']['code']}: {final['error']['message'][:80]}")
    elif metrics.get("promotion_reason", "").find("changed") >= 0:
        notes.append("champion changed meanwhile")
    round_.note = "; ".join(notes)


def round_line(round_: Round) -> str:
    back = round_.back_s if round_.back_s is not None else float("nan")
    fault = f"database cut {round_.outage.seconds:.0f} s" if round_.outage else round_.fault or "-"
    return (
        f"round {round_.number}: {fault} at {round_.at_stage}, back in {back:.1f} s; "
        f"cancel {round_.cancel}; task {round_.status} ({round_.decision}) {round_.note}"
    )


def _pid_change(outage: Outage) -> str:
    if outage.worker_before is None or outage.worker_after is None:
        return f"pid {outage.worker_before} → {outage.worker_after} (**missing**)"
    if outage.worker_before == outage.worker_after:
        return f"survived (pid {outage.worker_before})"
    return f"restarted by `up` (pid {outage.worker_before} → {outage.worker_after})"


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else f"**not within {RECOVERY_TIMEOUT_S:.0f} s**"


def outage_table(results: list[Round]) -> list[str]:
    lines = [
        "| round | stage at the cut | cut for | worker | children `up` saw exit | worker in the "
        "database again after the restore | task moved on after the restore | task attempt at "
        "the cut → at its end | API answers to the polls sent in the outage (each after the "
        "client's 503 retries) | 503 counted by the API's `/metrics` |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r.outage
        if o is None:
            continue
        moved = _seconds(o.moved_on_s) + (f", {o.moved_on_by}" if o.moved_on_by else "")
        answers = ", ".join(f"{code} x{n}" for code, n in sorted(o.answers.items())) or "none"
        served = str(o.served_503) if o.served_503 is not None else "unknown (API restarted)"
        lines.append(
            f"| {r.number} | {r.at_stage} | {o.seconds:.1f} s | {_pid_change(o)} "
            f"| {', '.join(o.exited) or 'none'} | {_seconds(o.worker_seen_s)} | {moved} "
            f"| {o.attempt_before} → {o.attempt_after} | {answers} | {served} |"
        )
    return lines


def report(
    results: list[Round], consistent: bool, aliases: dict[str, Any], elapsed_s: float
) -> tuple[list[str], bool]:
    ended_ok = all(
        r.status == "done" or (r.status == "canceled" and r.cancel == "accepted") for r in results
    )
    kills = [r for r in results if r.outage is None]
    outages = [r for r in results if r.outage is not None]
    restarted = all(r.recovered_s is not None for r in kills)
    moved_on = all(r.back_s is not None for r in outages)
    canceled_clean = all(r.consistent for r in results if r.status == "canceled")
    lines = [
        "| round | fault | at stage | back in | cancel in completing | task | decision "
        "| registry agrees | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        back = f"{r.back_s:.1f} s" if r.back_s is not None else "**not back**"
        fault = f"database ({r.outage.seconds:.0f} s outage)" if r.outage else r.fault or "-"
        lines.append(
            f"| {r.number} | {fault} | {r.at_stage} | {back} | {r.cancel} "
            f"| {r.status} | {r.decision}{' (judged)' if r.judged else ''} "
            f"| {'yes' if r.consistent else '**no**'} | {r.note} |"
        )
    if outages:
        lines += [
            "",
            "Back in: a killed child answering again (a new pid); after a database outage, the "
            "task writing again (progress, an event, a claim or its end) after the restore.",
            "",
            *outage_table(results),
            "",
            "A poll sent in the outage is retried by the client on 503 (Retry-After): one sent "
            "shortly before the restore is answered 200 after it.",
        ]
    recovered = [r.recovered_s for r in kills if r.recovered_s is not None]
    goals = [
        ("every task done, or canceled when a cancel was accepted", ended_ok),
        ("`clicktune up` restarted every killed child", restarted),
        *([("the task moved on after every database outage", moved_on)] if outages else []),
        ("a canceled task promoted nothing", canceled_clean),
        ("champion/challenger consistent with the tasks", consistent),
    ]
    lines += [
        "",
        f"Final aliases (run ids): {aliases['final']}; expected from the tasks: "
        f"{aliases['expected']}.",
        f"Recovery after a kill: median {sorted(recovered)[len(recovered) // 2]:.1f} s, "
        f"max {max(recovered):.1f} s."
        if recovered
        else "No child recovered.",
        f"Whole run {elapsed_s / 60:.1f} min.",
        "",
        *[f"- {'met' if met else '**missed**'}: {goal}" for goal, met in goals],
    ]
    return lines, all(met for _, met in goals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--database",
        choices=sorted(FAULTS),
        default="sqlite",
        help="postgresql adds database outages to the rotation",
    )
    parser.add_argument(
        "--outage-s",
        type=float,
        default=OUTAGE_S,
        help="how long a database outage lasts (PostgreSQL only)",
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=POSTGRES_ADMIN_URL,
        help="where the fresh PostgreSQL database is created",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    scratch = ROOT / "bench" / ".work"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="faults-", dir=scratch))
    results, consistent, aliases, elapsed, exits = run(args, work)
    lines, met = report(results, consistent, aliases, elapsed)
    command = f"python bench/faults.py --rounds {args.rounds} --seed {args.seed}"
    if args.database != "sqlite":
        command += f" --database {args.database} --outage-s {args.outage_s:g}"
    lines[:0] = [
        f"`{command}`",
        f"commit {git_commit()}; {machine()}",
        f"`up` logged {exits} unexpected child exits (each then restarted).",
        "",
    ]
    print("\n".join(lines))
    if met:
        shutil.rmtree(work)
    else:
        print(f"a goal was missed: the run's folder is kept: {work} (up.log: every child's log)")
    if not args.no_record:
        append_section("Faults", lines)
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
