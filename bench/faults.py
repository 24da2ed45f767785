"""Reliability under faults (docs/benchmarks.md §3): kill -9 of `clicktune up`'s children
during tasks, and cancels aimed at the completing step.

Starts `clicktune up` on a fresh data dir (a short worker lease, so a killed worker's task is taken
over within seconds) and runs `--rounds` fine-tuning tasks of the default method, one training run
each, on the bundled catalog's quick subset, alternately with and without a judged set (so tasks
promote, keep, or make a challenger). In each round it kills one child with SIGKILL — worker, API,
MLflow UI in turn — at a random moment while the task runs; every third round it also cancels the
task the moment it shows its `completing` stage. Then it checks:

- every task ends `done`, or `canceled` when a cancel was accepted; never `error`;
- `up` restarted the killed child (a new pid, and the API, a worker or the UI answering again);
- the registry agrees with the tasks (`GET /fine-tuning/methods/{name}/models`): a done task's
  model is champion or challenger exactly as its result says, a canceled task moved nothing, and
  the aliases end on the newest promoting and challenger-making tasks' models.

    python bench/faults.py [--rounds 10] [--seed 0] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.ids import new_id
from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.demo import (
    JUDGED_QUERIES,
    QUICK_HYPERPARAMETERS,
    demo_collection,
    judgments,
)
from clicktune.simulate.senders import load_items, send_sessions
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.simulate.serving import CorpusEncoding, packaged_base_model
from clicktune.simulate.sessions import simulate_sessions
from clicktune.status import FINISHED_STATUSES
from recording import ROOT, append_section, git_commit, machine

METHOD = "Default Fine Tuning Method"
CHILDREN = ("worker", "api", "mlflow")
CANCEL_EVERY = 3
RECOVERY_TIMEOUT_S = 120.0
TASK_TIMEOUT_S = 1200.0
T = TypeVar("T")


@dataclass
class Round:
    number: int
    task_id: str = ""
    judged: bool = False
    killed: str = ""
    killed_at_stage: str = ""
    recovered_s: float | None = None
    cancel: str = "-"
    status: str = ""
    decision: str = ""
    consistent: bool = False
    note: str = ""


class Service:
    """`clicktune up` and what this benchmark needs of it: its children's pids, a patient client."""

    def __init__(self, process: Any, url: str, env: dict[str, str]) -> None:
        self.process = process
        self.url = url
        self.mlflow_url = f"http://127.0.0.1:{env['CLICKTUNE_MLFLOW_PORT']}"
        self.client = ClicktuneClient(url, timeout=30.0)

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
        """`call()`, retried while the API is down (it may be restarting)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def _is_child(name: str, command: str) -> bool:
    if name == "mlflow":
        return " mlflow server" in command
    return command.rstrip().endswith(f"clicktune {name}")


def kill_child(service: Service, name: str, *, after_s: float, task_id: str, round_: Round) -> None:
    """Wait `after_s`, note the task's stage, SIGKILL the child, time its recovery."""
    time.sleep(after_s)
    try:
        task = service.patiently(lambda: service.client.get_task(task_id))
        round_.killed_at_stage = (task.get("progress") or {}).get("stage") or task["status"]
    except (httpx.HTTPError, ErrorResponse):
        round_.killed_at_stage = "?"
    pid = service.child_pid(name)
    if pid is None:
        round_.note = f"no {name} child to kill"
        return
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    round_.killed = name
    deadline = killed_at + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        fresh = service.child_pid(name)
        if fresh not in (None, pid) and service.answers(name):
            round_.recovered_s = time.monotonic() - killed_at
            return
        time.sleep(0.2)


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


def run(rounds: int, seed: int, work: Path) -> tuple[list[Round], bool, dict[str, Any], float]:
    rng = random.Random(seed)
    collection = demo_collection(quick=True, seed=seed)
    train, _test = collection.split(seed)
    encoding = CorpusEncoding(ROOT / "bench" / ".work" / "embeddings")
    base = encoding.retriever(packaged_base_model(), collection)
    env = instance_env(work / "data", worker_lease_s="10", worker_heartbeat_s="2", log_level="INFO")
    url = local_url(env)
    results: list[Round] = []
    started = time.monotonic()
    with running("up", env, url, log=work / "up.log", timeout_s=300) as process:
        service = Service(process, url, env)
        load_items(service.client, collection)
        service.client.put_judgments("faults", judgments(collection, train[:JUDGED_QUERIES]))
        for number in range(1, rounds + 1):
            round_ = Round(number, judged=number % 2 == 0)
            sessions = list(
                simulate_sessions(
                    collection,
                    train,
                    base.search,
                    PositionBasedClickModel(collection.max_grade),
                    sessions_per_query=2,
                    seed=seed + number,
                    session_prefix=f"faults-{number}-{new_id()[:6]}",
                )
            )
            service.patiently(lambda s=sessions: send_sessions(service.client, s))
            task = service.patiently(
                lambda r=round_: service.client.create_task(
                    METHOD,
                    hyperparameters=QUICK_HYPERPARAMETERS,
                    idempotency_key=f"faults-{seed}-{r.number}",
                    **({"validation_set": "faults"} if r.judged else {}),
                )
            )
            round_.task_id = task["id"]
            threads = [
                threading.Thread(
                    target=kill_child,
                    args=(service, CHILDREN[(number - 1) % len(CHILDREN)]),
                    kwargs={
                        "after_s": rng.uniform(1.0, 40.0),
                        "task_id": task["id"],
                        "round_": round_,
                    },
                )
            ]
            if number % CANCEL_EVERY == 0:
                threads.append(
                    threading.Thread(
                        target=cancel_when_completing, args=(service, task["id"], round_)
                    )
                )
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            final = service.patiently(
                lambda t=task["id"]: service.client.wait_for_task(t, timeout_s=TASK_TIMEOUT_S),
                timeout_s=TASK_TIMEOUT_S,
            )
            round_.status = final["status"]
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
            if final["status"] == "error":
                round_.note = f"{final['error']['code']}: {final['error']['message'][:80]}"
            elif metrics.get("promotion_reason", "").find("changed") >= 0:
                round_.note = "champion changed meanwhile"
            results.append(round_)
            print(
                f"round {number}: killed {round_.killed or '-'} at {round_.killed_at_stage}, back "
                f"in {round_.recovered_s or float('nan'):.1f} s; cancel {round_.cancel}; "
                f"task {round_.status} ({round_.decision}) {round_.note}",
                flush=True,
            )
        consistent, aliases = check_registry(service, results)
    return results, consistent, aliases, time.monotonic() - started


def report(
    results: list[Round], consistent: bool, aliases: dict[str, Any], elapsed_s: float
) -> tuple[list[str], bool]:
    ended_ok = all(
        r.status == "done" or (r.status == "canceled" and r.cancel == "accepted") for r in results
    )
    restarted = all(r.recovered_s is not None for r in results)
    canceled_clean = all(r.consistent for r in results if r.status == "canceled")
    lines = [
        "| round | killed | at stage | back in | cancel in completing | task | decision "
        "| registry agrees | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        back = f"{r.recovered_s:.1f} s" if r.recovered_s is not None else "**not back**"
        lines.append(
            f"| {r.number} | {r.killed or '-'} | {r.killed_at_stage} | {back} | {r.cancel} "
            f"| {r.status} | {r.decision}{' (judged)' if r.judged else ''} "
            f"| {'yes' if r.consistent else '**no**'} | {r.note} |"
        )
    recovered = [r.recovered_s for r in results if r.recovered_s is not None]
    goals = [
        ("every task done, or canceled when a cancel was accepted", ended_ok),
        ("`clicktune up` restarted every killed child", restarted),
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
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    scratch = ROOT / "bench" / ".work"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faults-", dir=scratch) as work:
        results, consistent, aliases, elapsed = run(args.rounds, args.seed, Path(work))
        lines, met = report(results, consistent, aliases, elapsed)
        log = Path(work) / "up.log"
        restarts = log.read_text(errors="replace").count("child_exited_unexpectedly")
    lines.insert(0, f"`python bench/faults.py --rounds {args.rounds} --seed {args.seed}`")
    lines.insert(1, f"commit {git_commit()}; {machine()}")
    lines.insert(2, f"`up` logged {restarts} unexpected child exits (each then restarted).")
    lines.insert(3, "")
    print("\n".join(lines))
    if not args.no_record:
        append_section("Faults", lines)
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
