"""Fine-tuning tasks: the `tasks` table is the queue, `task_events` each task's progress log.

Every status change is a compare-and-set (`UPDATE ... WHERE id = ? AND status = ?`, and for the
worker `AND lease_owner = ?`) whose row count says whether it happened, so the worker never
overwrites `canceled` and the API never overwrites the worker.

`attempts` is the number of the task's current attempt: 1 at creation, + 1 on restart and + 1 when
a worker takes over a task whose previous worker lost its lease. `claims` counts the claims since
creation or the last restart; a task whose lease expired after `max_attempts` of them ends
`error` / `worker_lost` instead of being claimed again. A worker that shuts down cleanly hands its
task back (`pending`) and undoes its claim, so a shutdown costs no attempt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from clicktune.ids import new_id
from clicktune.logs import get_logger
from clicktune.store.engine import is_sqlite, read_transaction, write_transaction
from clicktune.store.tables import task_events, tasks
from clicktune.timeutil import now as current_time

TASK_STATUSES = ("pending", "processing", "done", "canceled", "error")
FINISHED_STATUSES = frozenset({"done", "canceled", "error"})
RESTARTABLE_STATUSES = frozenset({"error", "canceled"})

EventLevel = Literal["info", "warning", "error"]

log = get_logger(__name__)


class TaskNotFound(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"No fine-tuning task with id {task_id!r}.")
        self.task_id = task_id


class TaskStateConflict(Exception):
    """The task is in a status that does not allow the requested change."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(f"Task {task_id!r} is {status}.")
        self.task_id = task_id
        self.status = status


class IdempotencyKeyReused(Exception):
    """The idempotency key already created a task from a different request body."""

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(
            f"Idempotency key {key!r} was already used by task {task_id!r} "
            "with a different request body."
        )
        self.key = key
        self.task_id = task_id


class EventNotFound(LookupError):
    def __init__(self, task_id: str, event_id: str) -> None:
        super().__init__(f"Task {task_id!r} has no event with id {event_id!r}.")
        self.event_id = event_id


@dataclass(frozen=True)
class NewTask:
    """A validated create request; `batch_id` None means: release the collecting batch."""

    fine_tuning_method: str
    batch_id: str | None
    metadata: dict[str, Any]
    hyperparameters: dict[str, Any]
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True)
class CreatedTask:
    task: dict[str, Any]
    replayed: bool


def request_hash(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body: equal bodies, equal hashes."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def get_task(conn: Connection, task_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
    return _row(row) if row else None


def _get_by_key(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(tasks).where(tasks.c.idempotency_key == key)).first()
    return _row(row) if row else None


def _replay(existing: dict[str, Any], new: NewTask) -> CreatedTask:
    if existing["request_hash"] != new.request_hash:
        raise IdempotencyKeyReused(existing["idempotency_key"], existing["id"])
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


def create_task(
    engine: Engine, new: NewTask, resolve_batch: Callable[[Connection, NewTask], str]
) -> CreatedTask:
    """Insert a pending task, or replay the one its idempotency key already created.

    `resolve_batch` runs inside the insert's transaction and returns the batch to train on (it
    may release the collecting batch: then release and task commit or roll back together); what
    it raises aborts the create. The unique index on `idempotency_key` is the final word on
    concurrent repeats: the loser of an insert race re-reads and replays the winner.
    """
    key = new.idempotency_key
    if key is not None:
        with read_transaction(engine) as conn:
            existing = _get_by_key(conn, key)
        if existing is not None:
            return _replay(existing, new)
    try:
        with write_transaction(engine) as conn:
            if key is not None:
                _lock_key(conn, key)
                existing = _get_by_key(conn, key)
                if existing is not None:
                    return _replay(existing, new)
            batch_id = resolve_batch(conn, new)
            task = _insert_task(conn, new, batch_id)
            add_event(conn, task["id"], "task created", batch_id=batch_id)
            return CreatedTask(task, replayed=False)
    except IntegrityError:
        if key is None:
            raise
        with read_transaction(engine) as conn:
            existing = _get_by_key(conn, key)
        if existing is None:
            raise
        return _replay(existing, new)


def _insert_task(conn: Connection, new: NewTask, batch_id: str) -> dict[str, Any]:
    at = current_time()
    values = {
        "id": new_id(),
        "fine_tuning_method": new.fine_tuning_method,
        "status": "pending",
        "batch_id": batch_id,
        "metadata": new.metadata,
        "hyperparameters": new.hyperparameters,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "attempts": 1,
        "claims": 0,
        "created_at": at,
        "updated_at": at,
    }
    conn.execute(tasks.insert().values(**values))
    return _required(conn, values["id"])


def list_tasks(
    conn: Connection,
    *,
    status: str | None = None,
    fine_tuning_method: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
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
    return [_row(r) for r in rows], total


def _set_status(
    conn: Connection, task_id: str, expected: str, values: dict[str, Any], owner: str | None = None
) -> bool:
    """The one compare-and-set every status change goes through."""
    condition = and_(tasks.c.id == task_id, tasks.c.status == expected)
    if owner is not None:
        condition = and_(condition, tasks.c.lease_owner == owner)
    result = conn.execute(update(tasks).where(condition).values(**values))
    return result.rowcount == 1


def cancel_task(engine: Engine, task_id: str) -> dict[str, Any]:
    """pending or processing → canceled; a running worker notices at its next heartbeat."""
    with write_transaction(engine) as conn:
        while True:
            task = get_task(conn, task_id)
            if task is None:
                raise TaskNotFound(task_id)
            if task["status"] in FINISHED_STATUSES:
                raise TaskStateConflict(task_id, task["status"])
            at = current_time()
            values = {"status": "canceled", "finished_at": at, "updated_at": at}
            if _set_status(conn, task_id, task["status"], values):
                add_event(conn, task_id, "task canceled", previous_status=task["status"])
                return _required(conn, task_id)


def restart_task(engine: Engine, task_id: str) -> dict[str, Any]:
    """error or canceled → pending as a new attempt, with a fresh allowance of claims."""
    with write_transaction(engine) as conn:
        while True:
            task = get_task(conn, task_id)
            if task is None:
                raise TaskNotFound(task_id)
            if task["status"] not in RESTARTABLE_STATUSES:
                raise TaskStateConflict(task_id, task["status"])
            values = {
                "status": "pending",
                "attempts": tasks.c.attempts + 1,
                "claims": 0,
                "lease_owner": None,
                "lease_expires_at": None,
                "heartbeat_at": None,
                "progress": None,
                "error": None,
                "finished_at": None,
                "updated_at": current_time(),
            }
            if _set_status(conn, task_id, task["status"], values):
                add_event(
                    conn,
                    task_id,
                    "task restarted",
                    previous_status=task["status"],
                    attempt=task["attempts"] + 1,
                )
                return _required(conn, task_id)


def _required(conn: Connection, task_id: str) -> dict[str, Any]:
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
    return [_row(r) for r in rows[:limit]], len(rows) > limit


# The worker's side: claim, heartbeat, progress, events, finish, hand back.


def _claimable(at: float) -> Any:
    return or_(
        tasks.c.status == "pending",
        and_(tasks.c.status == "processing", tasks.c.lease_expires_at < at),
    )


def claim_task(
    engine: Engine,
    worker_id: str,
    *,
    lease_s: float,
    max_attempts: int,
    now: float | None = None,
) -> dict[str, Any] | None:
    """Lease the oldest claimable task to `worker_id`, or None when there is none.

    Claimable: pending, or processing with an expired lease (its worker is gone). One of the
    latter already claimed `max_attempts` times ends `error` / `worker_lost` instead.
    """
    at = current_time() if now is None else now
    with read_transaction(engine) as conn:
        if conn.execute(select(tasks.c.id).where(_claimable(at)).limit(1)).first() is None:
            return None
    with write_transaction(engine) as conn:
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
            task = _row(candidate)
            if task["status"] == "processing" and task["claims"] >= max_attempts:
                _end_worker_lost(conn, task, at, max_attempts, worker_id)
                continue
            taking_over = task["status"] == "processing"
            values = {
                "status": "processing",
                "lease_owner": worker_id,
                "lease_expires_at": at + lease_s,
                "heartbeat_at": at,
                "started_at": task["started_at"] if task["started_at"] is not None else at,
                "attempts": task["attempts"] + (1 if taking_over else 0),
                "claims": task["claims"] + 1,
                "updated_at": at,
            }
            if not _set_status(conn, task["id"], task["status"], values):
                return None
            claimed = _required(conn, task["id"])
            add_event(
                conn,
                task["id"],
                "worker took over the task" if taking_over else "worker claimed the task",
                worker_id=worker_id,
                attempt=claimed["attempts"],
                **({"previous_worker_id": task["lease_owner"]} if taking_over else {}),
            )
            return claimed


def _end_worker_lost(
    conn: Connection, task: dict[str, Any], at: float, max_attempts: int, found_by: str
) -> None:
    message = (
        f"The task's worker stopped answering {task['claims']} times "
        f"(the limit is {max_attempts}); last worker: {task['lease_owner']}."
    )
    values = {
        "status": "error",
        "error": {"code": "worker_lost", "message": message},
        "finished_at": at,
        "updated_at": at,
    }
    if _set_status(conn, task["id"], "processing", values, owner=task["lease_owner"]):
        add_event(conn, task["id"], message, "error", code="worker_lost")
        log.warning(
            "task_worker_lost",
            task_id=task["id"],
            worker_id=found_by,
            lost_worker_id=task["lease_owner"],
            claims=task["claims"],
        )


def heartbeat(
    engine: Engine, task_id: str, worker_id: str, *, lease_s: float, now: float | None = None
) -> bool:
    """Renew the lease; False when the task is no longer this worker's (canceled, taken over)."""
    at = current_time() if now is None else now
    with write_transaction(engine) as conn:
        return _set_status(
            conn,
            task_id,
            "processing",
            {"lease_expires_at": at + lease_s, "heartbeat_at": at},
            owner=worker_id,
        )


def set_progress(engine: Engine, task_id: str, worker_id: str, progress: dict[str, Any]) -> bool:
    with write_transaction(engine) as conn:
        return _set_status(
            conn,
            task_id,
            "processing",
            {"progress": progress, "updated_at": current_time()},
            owner=worker_id,
        )


def add_worker_event(
    engine: Engine,
    task_id: str,
    worker_id: str,
    message: str,
    level: EventLevel = "info",
    **data: Any,
) -> bool:
    """Append an event while the task is still this worker's; False (nothing written) otherwise.

    The task row is share-locked until the insert commits, so a cancel orders strictly after it.
    """
    with write_transaction(engine) as conn:
        owned = conn.execute(
            select(tasks.c.id)
            .where(
                tasks.c.id == task_id,
                tasks.c.status == "processing",
                tasks.c.lease_owner == worker_id,
            )
            .with_for_update(read=True)
        ).first()
        if owned is None:
            return False
        add_event(conn, task_id, message, level, **data)
        return True


def complete_task(engine: Engine, task_id: str, worker_id: str, result: dict[str, Any]) -> bool:
    """processing → done with the method's result; False when the task is no longer ours."""
    at = current_time()
    with write_transaction(engine) as conn:
        values = {
            "status": "done",
            "metrics": result.get("metrics"),
            "best_run_id": result.get("best_run_id"),
            "best_model_uri": result.get("best_model_uri"),
            "promoted": result.get("promoted"),
            "mlflow_experiment": result.get("mlflow_experiment"),
            "finished_at": at,
            "updated_at": at,
        }
        if not _set_status(conn, task_id, "processing", values, owner=worker_id):
            return False
        outcome = {k: v for k, v in result.items() if v is not None}
        add_event(conn, task_id, "task done", worker_id=worker_id, **outcome)
        return True


def fail_task(engine: Engine, task_id: str, worker_id: str, code: str, message: str) -> bool:
    """processing → error {code, message}; False when the task is no longer ours."""
    at = current_time()
    with write_transaction(engine) as conn:
        values = {
            "status": "error",
            "error": {"code": code, "message": message},
            "finished_at": at,
            "updated_at": at,
        }
        if not _set_status(conn, task_id, "processing", values, owner=worker_id):
            return False
        add_event(conn, task_id, message, "error", code=code, worker_id=worker_id)
        return True


def release_task(engine: Engine, task_id: str, worker_id: str) -> bool:
    """Hand a task back (worker shutting down): pending again, the claim undone."""
    with write_transaction(engine) as conn:
        task = get_task(conn, task_id)
        if task is None or task["status"] != "processing" or task["lease_owner"] != worker_id:
            return False
        values = {
            "status": "pending",
            "lease_owner": None,
            "lease_expires_at": None,
            "heartbeat_at": None,
            "claims": max(task["claims"] - 1, 0),
            "updated_at": current_time(),
        }
        if not _set_status(conn, task_id, "processing", values, owner=worker_id):
            return False
        add_event(conn, task_id, "worker shut down; task handed back", worker_id=worker_id)
        return True
