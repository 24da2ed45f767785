"""The `TaskContext` a worker hands to a method: every write is conditional on the lease."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from sqlalchemy import Engine

from clicktune.errors import JudgmentSetNotFound, TaskCanceled, TaskFailed
from clicktune.logs import get_logger
from clicktune.settings import Settings
from clicktune.status import ACTIVE_STATUSES
from clicktune.store import tasks as task_store
from clicktune.store.clickstream import iter_batch_sessions
from clicktune.store.engine import DATABASE_OUTAGES, read_transaction, write_transaction
from clicktune.store.items import get_items, list_items
from clicktune.store.judgments import load_judgments
from clicktune.tuning.plugin import TaskContext, TaskSpec

log = get_logger(__name__)

StopReason = Literal["not_ours", "shutdown"]
CATALOG_PAGE = 1000
COMPLETING_RETRY_S = 0.5


class WorkerTaskContext(TaskContext):
    """One claimed task as its method sees it.

    `is_canceled()` turns true when the task is no longer this worker's (canceled, or taken
    over after a lost lease: the heartbeat or any refused write tells) or the worker is shutting
    down (not once completing: the decision is applied whole); the method stops at its next
    check. After that, nothing it reports is written.
    """

    def __init__(self, task: TaskSpec, settings: Settings, engine: Engine, worker_id: str) -> None:
        self.task = task
        self.settings = settings
        self.engine = engine
        self.worker_id = worker_id
        self.work_dir = settings.work_dir / task.task_id
        self._not_ours = False
        self._shutdown = False
        self._completing = False

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
        return task is not None and task.status in ACTIVE_STATUSES

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
        return self._not_ours or (self._shutdown and not self._completing)

    def begin_completing(self) -> None:
        while True:
            self.raise_if_canceled()
            with write_transaction(self.engine) as conn:
                claim = task_store.begin_completing(
                    conn, self.task.task_id, self.worker_id, lease_s=self.settings.worker_lease_s
                )
            if claim == "ours":
                self._completing = True
                log.info("task_completing", task_id=self.task.task_id, worker_id=self.worker_id)
                return
            if claim == "lost":
                self.mark_not_ours()
                raise TaskCanceled(self.task.task_id)
            time.sleep(COMPLETING_RETRY_S)  # another task of the method is completing

    def iter_sessions(self) -> Iterator[dict[str, Any]]:
        """The batch streamed in one read transaction: a consistent view, a page at a time."""
        with read_transaction(self.engine) as conn:
            yield from iter_batch_sessions(conn, self.task.batch_id)

    def items(self, object_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with read_transaction(self.engine) as conn:
            return get_items(conn, object_ids)

    def iter_catalog(self) -> Iterator[dict[str, Any]]:
        """A page of items per read transaction (keyset by object_id): memory holds one page."""
        after: str | None = None
        while True:
            with read_transaction(self.engine) as conn:
                page, after = list_items(conn, after, CATALOG_PAGE)
            yield from page
            if after is None:
                return

    def judgments(self, set_id: str) -> tuple[str, dict[str, dict[str, int]]]:
        try:
            with read_transaction(self.engine) as conn:
                return load_judgments(conn, set_id)
        except JudgmentSetNotFound as exc:
            raise TaskFailed(
                exc.code,
                f"{exc.message} It was deleted after the task was created; upload it again "
                "(PUT /api/v1/judgments/{set_id}) and restart the task.",
            ) from exc

    def report_progress(self, **progress: Any) -> None:
        if self._not_ours:
            return
        try:
            with write_transaction(self.engine) as conn:
                ours = task_store.set_progress(conn, self.task.task_id, self.worker_id, progress)
        except DATABASE_OUTAGES as exc:
            self._skipped("progress", exc)
            return
        if not ours:
            self.mark_not_ours()

    def add_event(
        self,
        message: str,
        level: Literal["info", "warning", "error"] = "info",
        **data: Any,
    ) -> None:
        if self._not_ours:
            return
        try:
            with write_transaction(self.engine) as conn:
                ours = task_store.add_worker_event(
                    conn, self.task.task_id, self.worker_id, message, level, **data
                )
        except DATABASE_OUTAGES as exc:
            self._skipped("event", exc, message=message)
            return
        if not ours:
            self.mark_not_ours()

    def _skipped(self, what: str, exc: Exception, **data: Any) -> None:
        """A report the database could not take: the work goes on (a lost lease is the
        heartbeat's to find; the next progress report replaces this one), the report is logged."""
        log.warning(
            "task_report_skipped",
            task_id=self.task.task_id,
            report=what,
            error=type(exc).__name__,
            **data,
        )
