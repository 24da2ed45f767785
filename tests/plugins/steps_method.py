"""A test fine-tuning method that does real work in steps, loaded via CLICKTUNE_PLUGINS_PATH.

It hashes the batch's queries (read through `context.iter_sessions()`) a slice per step, checks for
cancellation between steps, reports progress and an event per step, and records every run as a
file in `runs_dir` (start and end), so tests can count how often each task ran and where.
Hyperparameters: `steps`, `step_s` (seconds per step), `fail` (`task_failed` | `crash`),
`fail_until_attempt` (fail only while the attempt number is at most this), `runs_dir`, `quiet`
(no progress or events per step: only the heartbeat notices a cancel).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from clicktune import (
    FineTuningMethod,
    InvalidHyperparameter,
    MethodMeta,
    TaskContext,
    TaskFailed,
    TaskResult,
)
from clicktune.ids import new_id

STEP_TICK_S = 0.02


class StepsMethod(FineTuningMethod):
    meta = MethodMeta(
        name="Test Steps Method",
        version="1.0",
        description="Hashes the batch's queries step by step (tests).",
    )
    SPACE: ClassVar[dict[str, tuple[type, Any]]] = {
        "steps": (int, 5),
        "step_s": (float, 0.05),
        "fail": (str, ""),
        "fail_until_attempt": (int, 1000),
        "runs_dir": (str, ""),
        "quiet": (bool, False),
    }

    def describe(self) -> dict[str, Any]:
        description = super().describe()
        description["hyperparameters"] = {
            name: {"type": kind.__name__, "default": default}
            for name, (kind, default) in self.SPACE.items()
        }
        return description

    def validate_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        super().validate_hyperparameters(hyperparameters)
        for name, value in hyperparameters.items():
            kind = self.SPACE[name][0]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise InvalidHyperparameter(name, f"{name} must be a {kind.__name__}")
        if hyperparameters.get("fail", "") not in ("", "task_failed", "crash"):
            raise InvalidHyperparameter("fail", "fail must be '', 'task_failed' or 'crash'")
        return hyperparameters

    def run(self, context: TaskContext) -> TaskResult:
        params = {name: default for name, (_kind, default) in self.SPACE.items()}
        params.update(context.task.hyperparameters)
        record = _RunRecord(params["runs_dir"], context)
        record.write("started")
        queries = sorted(s["search_query"] for s in context.iter_sessions())
        context.add_event("hashing started", sessions=len(queries), attempt=context.task.attempt)
        digest = hashlib.sha256()
        steps = params["steps"]
        failing = params["fail"] and context.task.attempt <= params["fail_until_attempt"]
        for step in range(steps):
            context.raise_if_canceled()
            digest.update("\n".join(queries[step::steps]).encode())
            _sleep_unless_canceled(context, params["step_s"])
            if not params["quiet"]:
                context.report_progress(
                    stage="hashing", step=step + 1, steps=steps, percent=100.0 * (step + 1) / steps
                )
                context.add_event("step done", step=step + 1)
            if failing and step + 1 >= steps // 2:
                if params["fail"] == "crash":
                    raise RuntimeError("told to crash")
                raise TaskFailed("test_failure", "told to fail")
        context.raise_if_canceled()
        (context.work_dir / "digest.txt").write_text(digest.hexdigest())
        record.write("finished")
        return TaskResult(
            metrics={
                "main_metric": "sessions",
                "sessions": len(queries),
                "digest": digest.hexdigest(),
            },
            promoted=False,
        )


def _sleep_unless_canceled(context: TaskContext, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not context.is_canceled():
        time.sleep(min(STEP_TICK_S, max(deadline - time.monotonic(), 0.0)))


class _RunRecord:
    """One file per run under `runs_dir`: `<task_id>.<run id>.json`, rewritten at each milestone."""

    def __init__(self, runs_dir: str, context: TaskContext) -> None:
        self.path = Path(runs_dir) / f"{context.task.task_id}.{new_id()}.json" if runs_dir else None
        self.context = context

    def write(self, state: str) -> None:
        if self.path is None:
            return
        self.path.write_text(
            json.dumps(
                {
                    "task_id": self.context.task.task_id,
                    "attempt": self.context.task.attempt,
                    "pid": os.getpid(),
                    "work_dir": str(self.context.work_dir),
                    "state": state,
                }
            )
        )
