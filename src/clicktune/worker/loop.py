"""`clicktune worker`: claim one task at a time from the database, run it, report the outcome.

While a task runs, a heartbeat thread renews its lease every `worker_heartbeat_s` and stops the
method (through the context) once the task is no longer this worker's: canceled by the API, or
taken over by another worker after this one's lease expired. SIGTERM/SIGINT ask the method to
stop at its next check; the task is then handed back (`pending`, the claim undone, no attempt
counted) so another worker takes it at once, and the process exits 0.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from types import FrameType

from sqlalchemy import Engine

from clicktune.device import pin_device
from clicktune.errors import ClicktuneError, TaskCanceled
from clicktune.heap import freeze_startup_heap
from clicktune.ids import new_id
from clicktune.logs import get_logger
from clicktune.methods.registry import MethodRegistry, load_registry
from clicktune.settings import Settings
from clicktune.status import TaskStatus
from clicktune.store import tasks as task_store
from clicktune.store.engine import (
    DATABASE_OUTAGES,
    make_engine,
    migrate,
    read_transaction,
    write_transaction,
)
from clicktune.store.tasks import Task
from clicktune.store.workers import record_worker
from clicktune.timeutil import now as current_time
from clicktune.tracking.client import ensure_tracking_store
from clicktune.tuning.plugin import FineTuningMethod, TaskResult, TaskSpec
from clicktune.worker.context import WorkerTaskContext

log = get_logger(__name__)

_IDLE_TICK_S = 0.05
_RETRY_S = 2.0


class Worker:
    """One worker process's loop; `request_stop()` is safe from a signal handler or thread."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        registry: MethodRegistry,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = worker_id or f"{self.hostname}-{self.pid}-{new_id()[:8]}"
        self.started_at = current_time()
        self.log = log.bind(worker_id=self.worker_id)
        self._stop_requested = False
        self._context: WorkerTaskContext | None = None
        self._last_seen = 0.0

    def request_stop(self) -> None:
        """Stop at the next safe point. Safe in a signal handler: sets flags, nothing else."""
        self._stop_requested = True
        context = self._context
        if context is not None:
            context.request_shutdown()

    def run(self) -> None:
        self.log.info(
            "worker_started",
            hostname=self.hostname,
            pid=self.pid,
            methods=self.registry.names(),
            plugin_errors=[e.as_dict() for e in self.registry.errors],
        )
        while not self._stop_requested:
            try:
                self.mark_seen()
                task = self._claim()
            except DATABASE_OUTAGES as exc:  # the database may come back: keep polling
                self.log.warning("claim_failed", error=type(exc).__name__)
                self._idle(max(self.settings.worker_poll_s, _RETRY_S))
                continue
            except Exception:
                self.log.exception("claim_failed")
                self._idle(max(self.settings.worker_poll_s, _RETRY_S))
                continue
            if task is None:
                self._idle(self.settings.worker_poll_s)
                continue
            try:
                self._run_task(task)
            except Exception:  # its lease expires and another claim takes the task over
                self.log.exception("task_bookkeeping_failed", task_id=task.id)
        self.log.info("worker_stopped")

    def _claim(self) -> Task | None:
        """The next task, leased to this worker; an idle look takes no write lock."""
        with read_transaction(self.engine) as conn:
            if not task_store.has_claimable_task(conn):
                return None
        with write_transaction(self.engine) as conn:
            return task_store.claim_task(
                conn,
                self.worker_id,
                lease_s=self.settings.worker_lease_s,
                max_attempts=self.settings.worker_max_attempts,
            )

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(_IDLE_TICK_S, max(deadline - time.monotonic(), 0.0)))

    def mark_seen(self, force: bool = False) -> None:
        """Record the worker in the registry, at most once per heartbeat period."""
        at = current_time()
        if not force and at - self._last_seen < self.settings.worker_heartbeat_s:
            return
        with write_transaction(self.engine) as conn:
            record_worker(
                conn,
                self.worker_id,
                hostname=self.hostname,
                pid=self.pid,
                started_at=self.started_at,
            )
        self._last_seen = at

    def _run_task(self, task: Task) -> None:
        spec = TaskSpec(
            task_id=task.id,
            fine_tuning_method=task.fine_tuning_method,
            batch_id=task.batch_id,
            hyperparameters=task.hyperparameters or {},
            metadata=task.metadata or {},
            attempt=task.attempts,
            validation_set=task.validation_set,
            promotion=task.promotion,
            n_trials=task.n_trials,
        )
        tlog = self.log.bind(task_id=spec.task_id)
        tlog.info(
            "task_claimed",
            method=spec.fine_tuning_method,
            batch_id=spec.batch_id,
            attempt=spec.attempt,
        )
        method = self.registry.get(spec.fine_tuning_method)
        if method is None:
            message = (
                f"This worker has no fine-tuning method named {spec.fine_tuning_method!r}; "
                f"it has {self.registry.names()}."
            )
            self._fail(spec, "method_not_found", message)
            return
        context = WorkerTaskContext(spec, self.settings, self.engine, self.worker_id)
        self._context = context
        if self._stop_requested:  # asked to stop before the method started: hand it back
            self._context = None
            context.request_shutdown()
            self._stopped(context)
            return
        heartbeat = _Heartbeat(self, context)
        with context:
            heartbeat.start()
            try:
                self._execute(method, context)
            finally:
                heartbeat.finish()
                self._context = None

    def _execute(self, method: FineTuningMethod, context: WorkerTaskContext) -> None:
        spec = context.task
        tlog = self.log.bind(task_id=spec.task_id)
        try:
            result = method.run(context)
        except TaskCanceled:
            self._stopped(context)
            return
        except ClicktuneError as exc:  # TaskFailed, or a domain error: the task keeps its code
            if not self._still_ours(context):
                return
            self._fail(spec, exc.code, exc.message)
            return
        except Exception as exc:
            if not self._still_ours(context):
                return
            tlog.exception("method_raised")
            self._fail(spec, "method_failed", f"{type(exc).__name__}: {exc}")
            return
        if not isinstance(result, TaskResult):
            self._fail(
                spec,
                "method_failed",
                f"The method returned {type(result).__name__}, not a TaskResult.",
            )
            return
        with write_transaction(self.engine) as conn:
            done = task_store.complete_task(
                conn, spec.task_id, self.worker_id, **dataclasses.asdict(result)
            )
        if done:
            tlog.info("task_done", promoted=result.promoted, metrics=result.metrics)
        else:
            self._log_lost(spec)

    def _still_ours(self, context: WorkerTaskContext) -> bool:
        if context.stop_reason == "not_ours":
            self._log_lost(context.task)
            return False
        return True

    def _stopped(self, context: WorkerTaskContext) -> None:
        """The method stopped on request: hand the task back, or leave it to its new owner."""
        spec = context.task
        tlog = self.log.bind(task_id=spec.task_id)
        if context.stop_reason == "shutdown":
            with write_transaction(self.engine) as conn:
                handed_back = task_store.release_task(conn, spec.task_id, self.worker_id)
            if handed_back:
                tlog.info("task_handed_back")
            else:
                self._log_lost(spec)
            return
        if context.stop_reason is None and self.renew_lease(spec.task_id):
            self._fail(
                spec,
                "method_failed",
                "The method raised TaskCanceled although the task was not canceled.",
            )
            return
        self._log_lost(spec)

    def _fail(self, spec: TaskSpec, code: str, message: str) -> None:
        tlog = self.log.bind(task_id=spec.task_id)
        with write_transaction(self.engine) as conn:
            failed = task_store.fail_task(conn, spec.task_id, self.worker_id, code, message)
        if failed:
            tlog.warning("task_failed", code=code, error=message)
        else:
            self._log_lost(spec)

    def renew_lease(self, task_id: str) -> bool:
        """Extend this worker's lease; False when the task is no longer this worker's."""
        with write_transaction(self.engine) as conn:
            return task_store.heartbeat(
                conn, task_id, self.worker_id, lease_s=self.settings.worker_lease_s
            )

    def _log_lost(self, spec: TaskSpec) -> None:
        """Log why the task is no longer ours; nothing is written to it."""
        with read_transaction(self.engine) as conn:
            task = task_store.get_task(conn, spec.task_id)
        status = task.status.value if task else "missing"
        owner = task.lease_owner if task else None
        reason = "canceled" if status == TaskStatus.CANCELED else "taken_over"
        self.log.info(
            "task_stopped",
            task_id=spec.task_id,
            reason=reason,
            status=status,
            lease_owner=owner,
        )


class _Heartbeat(threading.Thread):
    """Renews the lease while the method runs; stops the method once the task is not ours."""

    def __init__(self, worker: Worker, context: WorkerTaskContext) -> None:
        super().__init__(name=f"heartbeat-{context.task.task_id}", daemon=True)
        self.worker = worker
        self.context = context
        self._done = threading.Event()

    def run(self) -> None:
        settings = self.worker.settings
        spec = self.context.task
        while not self._done.wait(settings.worker_heartbeat_s):
            try:
                ours = self.worker.renew_lease(spec.task_id)
                self.worker.mark_seen(force=True)
            except DATABASE_OUTAGES as exc:
                self.worker.log.warning(
                    "heartbeat_failed", task_id=spec.task_id, error=type(exc).__name__
                )
                continue
            except Exception:
                self.worker.log.warning("heartbeat_failed", task_id=spec.task_id, exc_info=True)
                continue
            if not ours:
                self.context.mark_not_ours()
                return

    def finish(self) -> None:
        self._done.set()
        self.join()


def run_worker(settings: Settings) -> None:
    """The `clicktune worker` process: migrate, load the methods, loop until SIGTERM/SIGINT."""
    visible = pin_device(settings.device, os.environ)
    log.info("worker_device", device=settings.device or "default", cuda_visible_devices=visible)
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    ensure_tracking_store(settings)
    worker = Worker(settings, engine, load_registry(settings))
    freeze_startup_heap()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        worker.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        worker.run()
    finally:
        engine.dispose()
