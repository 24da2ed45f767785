"""The `TaskContext` a worker hands to a method: every write is conditional on the lease."""

from __future__ import annotations

import shutil
from typing import Any, Literal

from sqlalchemy import Engine

from clicktune.logs import get_logger
from clicktune.methods.base import FineTuningMethod, TaskContext, TaskResult, TaskSpec
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction

log = get_logger(__name__)

StopReason = Literal["not_ours", "shutdown"]


class WorkerTaskContext(TaskContext):
    """One claimed task as its method sees it.

    `is_canceled()` turns true when the task is no longer this worker's (canceled, or taken
    over after a lost lease: the heartbeat or any refused write tells) or the worker is shutting
    down; the method stops at its next check. After that, nothing it reports is written.
    """

    def __init__(self, task: TaskSpec, settings: Settings, engine: Engine, worker_id: str) -> None:
        self.task = task
        self.settings = settings
        self.engine = engine
        self.worker_id = worker_id
        self.work_dir = settings.work_dir / task.task_id
        self._not_ours = False
        self._shutdown = False

    def __enter__(self) -> WorkerTaskContext:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        if not (self._not_ours and self._may_resume_elsewhere()):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _may_resume_elsewhere(self) -> bool:
        """A task lost to another worker (not canceled) may resume from this folder."""
        with read_transaction(self.engine) as conn:
            task = task_store.get_task(conn, self.task.task_id)
        return task is not None and task["status"] in ("pending", "processing")

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the method was asked to stop; a lost task outranks a shutdown (no hand-back)."""
        if self._not_ours:
            return "not_ours"
        if self._shutdown:
            return "shutdown"
        return None

    def mark_not_ours(self) -> None:
        if not self._not_ours:
            log.info("task_no_longer_ours", task_id=self.task.task_id, worker_id=self.worker_id)
        self._not_ours = True

    def request_shutdown(self) -> None:
        """Called from a signal handler: only sets a flag (no locks, no I/O)."""
        self._shutdown = True

    def is_canceled(self) -> bool:
        return self._not_ours or self._shutdown

    def report_progress(self, **progress: Any) -> None:
        if self._not_ours:
            return
        if not task_store.set_progress(self.engine, self.task.task_id, self.worker_id, progress):
            self.mark_not_ours()

    def add_event(
        self,
        message: str,
        level: Literal["info", "warning", "error"] = "info",
        **data: Any,
    ) -> None:
        if self._not_ours:
            return
        if not task_store.add_worker_event(
            self.engine, self.task.task_id, self.worker_id, message, level, **data
        ):
            self.mark_not_ours()

    def run_pipeline(self, method: FineTuningMethod) -> TaskResult:
        from clicktune.worker.pipeline import run_iteration

        return run_iteration(method, self)
