"""Fine-tuning tasks: the `tasks` table is the queue, `task_events` each task's progress log.

Every status change is a compare-and-set (`UPDATE ... WHERE id = ? AND status = ?`, and for the
worker `AND lease_owner = ?`) whose row count says whether it happened, so the worker never
overwrites `canceled` and the API never overwrites the worker.

`attempts` is the number of the task's current attempt: 1 at creation, + 1 on restart and + 1 when
a worker takes over a task whose previous worker lost its lease. `claims` counts the claims since
creation or the last restart; a task whose lease expired after `max_attempts` of them ends
`error` / `worker_lost` instead of being claimed again. A worker that shuts down cleanly hands its
task back (`pending`) and undoes its claim, so a shutdown costs no attempt.

Every function takes the caller's `Connection`: the caller owns the transaction (a write
transaction for anything that changes a row) and tasks come back as `Task` records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Row, and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from clicktune.errors import ClicktuneError, JudgmentSetNotFound, ModelNotFound
from clicktune.ids import new_id
from clicktune.jsontext import canonical_hash
from clicktune.logs import get_logger
from clicktune.status import ACTIVE_STATUSES, Promotion, TaskPhase, TaskStatus, may
from clicktune.store.clickstream import resolve_task_batch
from clicktune.store.engine import is_sqlite
from clicktune.store.judgments import get_judgment_set
from clicktune.store.tables import task_events, tasks
from clicktune.timeutil import now as current_time

EventLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Task:
    """A row of the `tasks` table; times are epoch seconds."""

    id: str
    fine_tuning_method: str
    status: TaskStatus
    batch_id: str
    metadata: dict[str, Any]
    hyperparameters: dict[str, Any]
    idempotency_key: str | None
    request_hash: str | None
    attempts: int
    claims: int
    lease_owner: str | None
    lease_expires_at: float | None
    heartbeat_at: float | None
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    best_run_id: str | None
    best_model_uri: str | None
    promoted: bool | None
    mlflow_experiment: str | None
    error: dict[str, Any] | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    validation_set: str | None
    promotion: Promotion
    n_trials: int | None
    challenger: bool | None
    completing_at: float | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Task:
        values = dict(row._mapping)
        return cls(
            **{
                **values,
                "status": TaskStatus(values["status"]),
                "promotion": Promotion(values["promotion"]),
            }
        )

    @property
    def phase(self) -> TaskPhase:
        return TaskPhase.of(self.status, self.completing_at is not None)

    @property
    def has_model(self) -> bool:
        """Done with a model to download and serve."""
        return self.status is TaskStatus.DONE and self.best_model_uri is not None


log = get_logger(__name__)


class TaskNotFound(ClicktuneError):
    code = "task_not_found"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"No fine-tuning task with id {task_id!r}.")
        self.task_id = task_id


class TaskStateConflict(ClicktuneError):
    """The task is in a status that does not allow the requested change."""

    def __init__(self, task_id: str, status: str, message: str) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status = status


class TaskFinished(TaskStateConflict):
    """A cancel of a task that already finished."""

    code = "task_finished"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            task_id, status, f"Task {task_id!r} is already {status}; nothing to cancel."
        )


class TaskCompleting(TaskStateConflict):
    """The task's worker is applying its decision (the completing step): too late to cancel."""

    code = "task_finished"

    def __init__(self, task_id: str) -> None:
        super().__init__(
            task_id,
            "completing",
            f"Task {task_id!r} is completing (its worker is applying its decision); too late "
            "to cancel.",
        )


class TaskNotRestartable(TaskStateConflict):
    """A restart of a task that is neither in error nor canceled."""

    code = "task_not_restartable"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            task_id,
            status,
            f"Task {task_id!r} is {status}; only a task in error or canceled can be restarted.",
        )


class IdempotencyKeyReused(ClicktuneError):
    """The idempotency key already created a task from a different request body."""

    code = "idempotency_key_reused"

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(
            f"Idempotency key {key!r} was already used by task {task_id!r} "
            "with a different request body.",
            "idempotency_key",
        )
        self.key = key
        self.task_id = task_id


class EventNotFound(ClicktuneError):
    """The event a page of events starts `after` is not the task's."""

    code = "event_not_found"

    def __init__(self, task_id: str, event_id: str) -> None:
        super().__init__(f"Task {task_id!r} has no event with id {event_id!r}.", "after")
        self.event_id = event_id


class TaskExists(ClicktuneError):
    """The method already has a pending or processing task on this batch."""

    code = "task_exists"

    def __init__(self, task: Task) -> None:
        super().__init__(
            f"Task {task.id!r} of {task.fine_tuning_method!r} is already {task.status.value} on "
            f"batch {task.batch_id!r}; wait for it, or cancel it first.",
            "batch_id",
        )
        self.task = task


class TaskHasNoModel(ModelNotFound):
    """The task is not done with a model (yet, or at all)."""

    def __init__(self, task: Task) -> None:
        reason = (
            "it is done without a model"
            if task.status is TaskStatus.DONE
            else f"its status is {task.status.value!r}; the model is available once it is 'done'"
        )
        super().__init__(f"Task {task.id!r} has no model: {reason}.")
        self.task = task


@dataclass(frozen=True)
class NewTask:
    """A validated create request; `batch_id` None means: release the collecting batch (its
    `release_id` from the idempotency key, `task_release_id`)."""

    fine_tuning_method: str
    batch_id: str | None
    metadata: dict[str, Any]
    hyperparameters: dict[str, Any]
    idempotency_key: str | None
    request_hash: str
    validation_set: str | None = None
    promotion: Promotion = Promotion.AUTO
    n_trials: int | None = None


@dataclass(frozen=True)
class CreatedTask:
    task: Task
    replayed: bool


def request_hash(body: Mapping[str, Any]) -> str:
    """The fingerprint of a create's body: equal bodies, equal hashes."""
    return canonical_hash(body)


def get_task(conn: Connection, task_id: str) -> Task | None:
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
    return Task.from_row(row) if row else None


def get_task_model(conn: Connection, task_id: str) -> Task:
    """The task, done with a model; `TaskNotFound` or `TaskHasNoModel` otherwise."""
    task = _required(conn, task_id)
    if not task.has_model:
        raise TaskHasNoModel(task)
    return task


def _get_by_key(conn: Connection, key: str) -> Task | None:
    row = conn.execute(select(tasks).where(tasks.c.idempotency_key == key)).first()
    return Task.from_row(row) if row else None


def _replay(existing: Task, new: NewTask) -> CreatedTask:
    if existing.request_hash != new.request_hash:
        raise IdempotencyKeyReused(existing.idempotency_key or "", existing.id)
    return CreatedTask(existing, replayed=True)


def _lock_key(conn: Connection, key: str) -> None:
    """Queue concurrent creates with one key (PostgreSQL; SQLite's writers are serial anyway).

    The first one commits its task before the others look, so they replay it instead of racing
    it for the collecting batch.
    """
    if is_sqlite(conn.engine):
        return
    lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def create_task(conn: Connection, new: NewTask) -> CreatedTask:
    """Insert a pending task, or replay the one its idempotency key already created.

    The batch is resolved in the same transaction (it may release the collecting batch: then
    release and task commit or roll back together); `JudgmentSetNotFound`, `BatchNotFound`,
    `BatchNotReleased` or `NoCollectingBatch` abort the create. The unique index on
    `idempotency_key` is the final word on concurrent repeats: the loser of an insert race
    re-reads and replays the winner.
    """
    key = new.idempotency_key
    if key is not None:
        _lock_key(conn, key)
        existing = _get_by_key(conn, key)
        if existing is not None:
            return _replay(existing, new)
    if new.validation_set is not None and get_judgment_set(conn, new.validation_set) is None:
        raise JudgmentSetNotFound(new.validation_set).with_param("validation_set")
    release_id = None if key is None else task_release_id(key)
    try:
        with conn.begin_nested():
            batch_id = resolve_task_batch(conn, new.batch_id, release_id=release_id)
            active = _active_task(conn, new.fine_tuning_method, batch_id)
            if active is not None:
                raise TaskExists(active)
            task = _insert_task(conn, new, batch_id)
    except IntegrityError:
        # A concurrent create won: with this key (replay it) or on this batch (task_exists).
        existing = _get_by_key(conn, key) if key is not None else None
        if existing is not None:
            return _replay(existing, new)
        if new.batch_id is not None:
            active = _active_task(conn, new.fine_tuning_method, new.batch_id)
            if active is not None:
                raise TaskExists(active) from None
        raise
    add_event(conn, task.id, "task created", batch_id=batch_id)
    return CreatedTask(task, replayed=False)


def task_release_id(idempotency_key: str) -> str:
    """The `release_id` of a batch a task create released: its own namespace, apart from the
    `release_id`s clients choose (a key longer than the column is hashed)."""
    release_id = f"task:{idempotency_key}"
    if len(release_id) > 256:
        release_id = f"task:sha256:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
    return release_id


def _active_task(conn: Connection, method: str, batch_id: str) -> Task | None:
    row = conn.execute(
        select(tasks).where(
            tasks.c.fine_tuning_method == method,
            tasks.c.batch_id == batch_id,
            tasks.c.status.in_(list(ACTIVE_STATUSES)),
        )
    ).first()
    return Task.from_row(row) if row else None


def _insert_task(conn: Connection, new: NewTask, batch_id: str) -> Task:
    at = current_time()
    values = {
        "id": new_id(),
        "fine_tuning_method": new.fine_tuning_method,
        "status": TaskStatus.PENDING,
        "batch_id": batch_id,
        "metadata": new.metadata,
        "hyperparameters": new.hyperparameters,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "attempts": 1,
        "claims": 0,
        "created_at": at,
        "updated_at": at,
        "validation_set": new.validation_set,
        "promotion": new.promotion,
        "n_trials": new.n_trials,
    }
    conn.execute(tasks.insert().values(**values))
    return _required(conn, values["id"])


def list_tasks(
    conn: Connection,
    *,
    status: TaskStatus | None = None,
    fine_tuning_method: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Task], int]:
    """A page of tasks, newest first, and how many match in all."""
    conditions = []
    if status is not None:
        conditions.append(tasks.c.status == status)
    if fine_tuning_method is not None:
        conditions.append(tasks.c.fine_tuning_method == fine_tuning_method)
    where = and_(*conditions) if conditions else None
    page = select(tasks).order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
    count = select(func.count()).select_from(tasks)
    if where is not None:
        page = page.where(where)
        count = count.where(where)
    rows = conn.execute(page.limit(limit).offset(offset)).all()
    total = conn.execute(count).scalar_one()
    return [Task.from_row(r) for r in rows], total


@dataclass(frozen=True)
class StatusCount:
    """Tasks in one status; for finished ones, how long they ran in all (`started_at` to
    `finished_at`)."""

    status: str
    tasks: int
    ran: int
    run_seconds: float


def task_statistics(conn: Connection) -> list[StatusCount]:
    """Tasks by status, with the run time of those that started and finished."""
    ran = and_(tasks.c.started_at.is_not(None), tasks.c.finished_at.is_not(None))
    rows = conn.execute(
        select(
            tasks.c.status,
            func.count(),
            func.count().filter(ran),
            func.coalesce(func.sum(tasks.c.finished_at - tasks.c.started_at).filter(ran), 0.0),
        ).group_by(tasks.c.status)
    )
    return [
        StatusCount(status, count, finished, float(seconds))
        for status, count, finished, seconds in rows
    ]


def _set_status(
    conn: Connection,
    task_id: str,
    expected: TaskStatus,
    values: dict[str, Any],
    owner: str | None = None,
    condition: ColumnElement[bool] | None = None,
) -> bool:
    """The one compare-and-set every status change goes through (`condition`: one more)."""
    where = and_(tasks.c.id == task_id, tasks.c.status == expected)
    if owner is not None:
        where = and_(where, tasks.c.lease_owner == owner)
    if condition is not None:
        where = and_(where, condition)
    result = conn.execute(update(tasks).where(where).values(**values))
    return result.rowcount == 1


def cancel_task(conn: Connection, task_id: str) -> Task:
    """pending or processing → canceled; a running worker notices at its next heartbeat. Refused
    (`TaskFinished`) once finished and (`TaskCompleting`) once the worker is in the completing
    step."""
    while True:
        task = _required(conn, task_id)
        if task.phase is TaskPhase.COMPLETING:
            raise TaskCompleting(task_id)
        if not may("cancel", task.phase):
            raise TaskFinished(task_id, task.status)
        at = current_time()
        values = {"status": TaskStatus.CANCELED, "finished_at": at, "updated_at": at}
        condition = tasks.c.completing_at.is_(None)
        if _set_status(conn, task_id, task.status, values, condition=condition):
            add_event(conn, task_id, "task canceled", previous_status=task.status)
            return _required(conn, task_id)


def restart_task(conn: Connection, task_id: str) -> Task:
    """error or canceled → pending as a new attempt, with a fresh allowance of claims; refused
    (`TaskNotRestartable`) in another status and (`TaskExists`) while another task of its method
    is active on its batch."""
    while True:
        task = _required(conn, task_id)
        if not may("restart", task.phase):
            raise TaskNotRestartable(task_id, task.status)
        active = _active_task(conn, task.fine_tuning_method, task.batch_id)
        if active is not None:
            raise TaskExists(active)
        values = {
            "status": TaskStatus.PENDING,
            "attempts": tasks.c.attempts + 1,
            "claims": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "heartbeat_at": None,
            "progress": None,
            "error": None,
            "finished_at": None,
            "completing_at": None,
            "updated_at": current_time(),
        }
        try:
            with conn.begin_nested():
                restarted = _set_status(conn, task_id, task.status, values)
        except IntegrityError:  # a concurrent create or restart made another task active
            active = _active_task(conn, task.fine_tuning_method, task.batch_id)
            if active is None:
                raise
            raise TaskExists(active) from None
        if restarted:
            add_event(
                conn,
                task_id,
                "task restarted",
                previous_status=task.status,
                attempt=task.attempts + 1,
            )
            return _required(conn, task_id)


def _required(conn: Connection, task_id: str) -> Task:
    task = get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return task


def add_event(
    conn: Connection,
    task_id: str,
    message: str,
    level: EventLevel = "info",
    **data: Any,
) -> dict[str, Any]:
    event = {
        "id": new_id(),
        "task_id": task_id,
        "created_at": current_time(),
        "level": level,
        "message": message,
        "data": data,
    }
    conn.execute(task_events.insert().values(**event))
    return event


def list_events(
    conn: Connection, task_id: str, *, after: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """Events oldest first after the event with id `after`, and whether more follow."""
    query = select(task_events).where(task_events.c.task_id == task_id)
    if after is not None:
        after_seq = conn.execute(
            select(task_events.c.seq).where(
                task_events.c.task_id == task_id, task_events.c.id == after
            )
        ).scalar_one_or_none()
        if after_seq is None:
            raise EventNotFound(task_id, after)
        query = query.where(task_events.c.seq > after_seq)
    rows = conn.execute(query.order_by(task_events.c.seq).limit(limit + 1)).all()
    return [dict(r._mapping) for r in rows[:limit]], len(rows) > limit


# The worker's side: claim, heartbeat, progress, events, finish, hand back.


def _claimable(at: float) -> Any:
    return or_(
        tasks.c.status == TaskStatus.PENDING,
        and_(tasks.c.status == TaskStatus.PROCESSING, tasks.c.lease_expires_at < at),
    )


def has_claimable_task(conn: Connection, now: float | None = None) -> bool:
    """A cheap look (no lock) before `claim_task`, so an idle worker reads instead of writing."""
    at = current_time() if now is None else now
    return conn.execute(select(tasks.c.id).where(_claimable(at)).limit(1)).first() is not None


def claim_task(
    conn: Connection,
    worker_id: str,
    *,
    lease_s: float,
    max_attempts: int,
    now: float | None = None,
) -> Task | None:
    """Lease the oldest claimable task to `worker_id`, or None when there is none.

    Claimable: pending, or processing with an expired lease (its worker is gone). One of the
    latter already claimed `max_attempts` times ends `error` / `worker_lost` instead.
    """
    at = current_time() if now is None else now
    while True:
        candidate = conn.execute(
            select(tasks)
            .where(_claimable(at))
            .order_by(tasks.c.created_at, tasks.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if candidate is None:
            return None
        task = Task.from_row(candidate)
        if task.status is TaskStatus.PROCESSING and task.claims >= max_attempts:
            _end_worker_lost(conn, task, at, max_attempts, worker_id)
            continue
        taking_over = task.status is TaskStatus.PROCESSING
        values = {
            "status": TaskStatus.PROCESSING,
            "lease_owner": worker_id,
            "lease_expires_at": at + lease_s,
            "heartbeat_at": at,
            "started_at": task.started_at if task.started_at is not None else at,
            "attempts": task.attempts + (1 if taking_over else 0),
            "claims": task.claims + 1,
            "updated_at": at,
        }
        if not _set_status(conn, task.id, task.status, values):
            return None
        claimed = _required(conn, task.id)
        add_event(
            conn,
            task.id,
            "worker took over the task" if taking_over else "worker claimed the task",
            worker_id=worker_id,
            attempt=claimed.attempts,
            **({"previous_worker_id": task.lease_owner} if taking_over else {}),
        )
        return claimed


def _end_worker_lost(
    conn: Connection, task: Task, at: float, max_attempts: int, found_by: str
) -> None:
    message = (
        f"The task's worker stopped answering {task.claims} times "
        f"(the limit is {max_attempts}); last worker: {task.lease_owner}."
    )
    values = {
        "status": TaskStatus.ERROR,
        "error": {"code": "worker_lost", "message": message},
        "finished_at": at,
        "updated_at": at,
    }
    if _set_status(conn, task.id, TaskStatus.PROCESSING, values, owner=task.lease_owner):
        add_event(conn, task.id, message, "error", code="worker_lost")
        log.warning(
            "task_worker_lost",
            task_id=task.id,
            worker_id=found_by,
            lost_worker_id=task.lease_owner,
            claims=task.claims,
        )


def heartbeat(
    conn: Connection, task_id: str, worker_id: str, *, lease_s: float, now: float | None = None
) -> bool:
    """Renew the lease; False when the task is no longer this worker's (canceled, taken over)."""
    at = current_time() if now is None else now
    return _set_status(
        conn,
        task_id,
        TaskStatus.PROCESSING,
        {"lease_expires_at": at + lease_s, "heartbeat_at": at},
        owner=worker_id,
    )


CompletingClaim = Literal["ours", "busy", "lost"]


def begin_completing(
    conn: Connection,
    task_id: str,
    worker_id: str,
    *,
    lease_s: float,
    now: float | None = None,
) -> CompletingClaim:
    """The compare-and-set into the completing step, where a task's decision is applied.

    `ours`: this worker still holds a live lease on the processing task, which is now
    completing (a cancel is refused from here) with its lease renewed. `lost`: canceled, or no
    longer this worker's: apply nothing. `busy`: another task of the same method is completing
    under a live lease; try again shortly. The method's processing rows are locked first, so two
    tasks of one method never complete at once (their alias moves would race)."""
    at = current_time() if now is None else now
    method = select(tasks.c.fine_tuning_method).where(tasks.c.id == task_id).scalar_subquery()
    rows = conn.execute(
        select(tasks.c.id, tasks.c.lease_owner, tasks.c.lease_expires_at, tasks.c.completing_at)
        .where(tasks.c.fine_tuning_method == method, tasks.c.status == TaskStatus.PROCESSING)
        .order_by(tasks.c.id)
        .with_for_update()
    ).all()
    mine = next((row for row in rows if row.id == task_id), None)
    if mine is None or mine.lease_owner != worker_id or (mine.lease_expires_at or 0) <= at:
        return "lost"
    if any(
        row.id != task_id and row.completing_at is not None and (row.lease_expires_at or 0) > at
        for row in rows
    ):
        return "busy"
    values = {
        "completing_at": mine.completing_at or at,
        "lease_expires_at": at + lease_s,
        "heartbeat_at": at,
        "updated_at": at,
    }
    if not _set_status(conn, task_id, TaskStatus.PROCESSING, values, owner=worker_id):
        return "lost"
    add_event(conn, task_id, "completing: applying the decision", worker_id=worker_id)
    return "ours"


def set_progress(conn: Connection, task_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
    return _set_status(
        conn,
        task_id,
        TaskStatus.PROCESSING,
        {"progress": progress, "updated_at": current_time()},
        owner=worker_id,
    )


def add_worker_event(
    conn: Connection,
    task_id: str,
    worker_id: str,
    message: str,
    level: EventLevel = "info",
    **data: Any,
) -> bool:
    """Append an event while the task is still this worker's; False (nothing written) otherwise.

    The task row is share-locked until the insert commits, so a cancel orders strictly after it.
    """
    owned = conn.execute(
        select(tasks.c.id)
        .where(
            tasks.c.id == task_id,
            tasks.c.status == TaskStatus.PROCESSING,
            tasks.c.lease_owner == worker_id,
        )
        .with_for_update(read=True)
    ).first()
    if owned is None:
        return False
    add_event(conn, task_id, message, level, **data)
    return True


def complete_task(
    conn: Connection,
    task_id: str,
    worker_id: str,
    *,
    metrics: dict[str, Any] | None,
    best_run_id: str | None,
    best_model_uri: str | None,
    promoted: bool | None,
    challenger: bool | None,
    mlflow_experiment: str | None,
) -> bool:
    """processing → done with the method's result; False when the task is no longer ours."""
    outcome = {
        "metrics": metrics,
        "best_run_id": best_run_id,
        "best_model_uri": best_model_uri,
        "promoted": promoted,
        "challenger": challenger,
        "mlflow_experiment": mlflow_experiment,
    }
    at = current_time()
    values = {**outcome, "status": TaskStatus.DONE, "finished_at": at, "updated_at": at}
    if not _set_status(conn, task_id, TaskStatus.PROCESSING, values, owner=worker_id):
        return False
    shown = {k: v for k, v in outcome.items() if v is not None}
    add_event(conn, task_id, "task done", worker_id=worker_id, **shown)
    return True


def fail_task(conn: Connection, task_id: str, worker_id: str, code: str, message: str) -> bool:
    """processing → error {code, message}; False when the task is no longer ours."""
    at = current_time()
    values = {
        "status": TaskStatus.ERROR,
        "error": {"code": code, "message": message},
        "finished_at": at,
        "updated_at": at,
    }
    if not _set_status(conn, task_id, TaskStatus.PROCESSING, values, owner=worker_id):
        return False
    add_event(conn, task_id, message, "error", code=code, worker_id=worker_id)
    return True


def release_task(conn: Connection, task_id: str, worker_id: str) -> bool:
    """Hand a task back (worker shutting down): pending again, the claim undone."""
    task = get_task(conn, task_id)
    if task is None or task.status is not TaskStatus.PROCESSING or task.lease_owner != worker_id:
        return False
    values = {
        "status": TaskStatus.PENDING,
        "lease_owner": None,
        "lease_expires_at": None,
        "heartbeat_at": None,
        "claims": max(task.claims - 1, 0),
        "updated_at": current_time(),
    }
    if not _set_status(conn, task_id, TaskStatus.PROCESSING, values, owner=worker_id):
        return False
    add_event(conn, task_id, "worker shut down; task handed back", worker_id=worker_id)
    return True
