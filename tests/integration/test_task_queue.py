"""The task queue at the store level, on SQLite and PostgreSQL: claims, leases, compare-and-set.

Time is passed explicitly (`now=`), so lease expiry is tested without waiting for it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine

from clicktune import TaskSpec
from clicktune.ids import new_id
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.tables import batches
from clicktune.timeutil import now
from clicktune.worker.context import WorkerTaskContext
from tests.store_support import outcome, write

LEASE_S = 10.0


def _released_batch(engine: Engine) -> str:
    batch_id = new_id()
    with write_transaction(engine) as conn:
        conn.execute(
            batches.insert().values(
                batch_id=batch_id,
                status="released",
                created_at=now(),
                released_at=now(),
                sessions=1,
                sessions_with_events=1,
                irrelevant_sessions=0,
                events=1,
            )
        )
    return batch_id


def _create(engine: Engine, batch_id: str, key: str | None = None, body: Any = 1) -> Any:
    new = task_store.NewTask(
        fine_tuning_method="m",
        batch_id=batch_id,
        metadata={},
        hyperparameters={},
        idempotency_key=key,
        request_hash=task_store.request_hash({"body": body}),
    )

    return write(engine, task_store.create_task, new)


def _task(engine: Engine, task_id: str) -> task_store.Task:
    with read_transaction(engine) as conn:
        task = task_store.get_task(conn, task_id)
    assert task is not None
    return task


def _claim(engine: Engine, worker: str, at: float, max_attempts: int = 3) -> task_store.Task | None:
    return write(
        engine, task_store.claim_task, worker, lease_s=LEASE_S, max_attempts=max_attempts, now=at
    )


def test_claims_oldest_first_and_each_task_once(engine: Engine) -> None:
    first = _create(engine, _released_batch(engine)).task
    second = _create(engine, _released_batch(engine)).task
    at = now()
    claimed = _claim(engine, "w1", at)
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == "processing"
    assert claimed.lease_owner == "w1"
    assert claimed.lease_expires_at == pytest.approx(at + LEASE_S)
    assert claimed.started_at == pytest.approx(at)
    assert (claimed.attempts, claimed.claims) == (1, 1)
    claimed_second = _claim(engine, "w2", at)
    assert claimed_second is not None and claimed_second.id == second.id
    assert _claim(engine, "w3", at) is None


def test_expired_lease_is_taken_over_then_worker_lost_at_the_limit(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    at = now()
    first = _claim(engine, "w1", at, max_attempts=2)
    assert first is not None
    assert _claim(engine, "w2", at + LEASE_S - 1, max_attempts=2) is None  # lease still valid
    second = _claim(engine, "w2", at + LEASE_S + 1, max_attempts=2)
    assert second is not None and second.id == task_id
    assert (second.attempts, second.claims, second.lease_owner) == (2, 2, "w2")
    assert second.started_at == pytest.approx(at)  # the first start is kept
    # w1 is back from the dead: nothing it does lands.
    assert not write(engine, task_store.heartbeat, task_id, "w1", lease_s=LEASE_S)
    assert not write(engine, task_store.set_progress, task_id, "w1", {"stage": "x"})
    assert not write(engine, task_store.add_worker_event, task_id, "w1", "late")
    assert not write(engine, task_store.complete_task, task_id, "w1", **outcome(metrics={}))
    # w2's lease expires too: the limit (2 claims) is reached.
    assert _claim(engine, "w3", at + 3 * LEASE_S, max_attempts=2) is None
    task = _task(engine, task_id)
    assert task.status == "error"
    assert task.error["code"] == "worker_lost"
    assert task.finished_at is not None


def test_heartbeat_renews_the_lease_and_reports_cancel(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at) is not None
    assert write(engine, task_store.heartbeat, task_id, "w1", lease_s=LEASE_S, now=at + LEASE_S - 1)
    assert _claim(engine, "w2", at + LEASE_S + 1) is None  # renewed: not expired
    assert write(engine, task_store.heartbeat, task_id, "w2", lease_s=LEASE_S) is False
    write(engine, task_store.cancel_task, task_id)
    assert write(engine, task_store.heartbeat, task_id, "w1", lease_s=LEASE_S) is False
    assert not write(engine, task_store.complete_task, task_id, "w1", **outcome(metrics={"x": 1}))
    assert not write(engine, task_store.fail_task, task_id, "w1", "method_failed", "late")
    assert not write(engine, task_store.release_task, task_id, "w1")
    task = _task(engine, task_id)
    assert task.status == "canceled"
    assert task.metrics is None and task.error is None


def test_worker_writes_while_it_holds_the_lease(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    assert _claim(engine, "w1", now()) is not None
    assert write(
        engine, task_store.set_progress, task_id, "w1", {"stage": "training", "percent": 50}
    )
    assert write(engine, task_store.add_worker_event, task_id, "w1", "step", "warning", step=1)
    assert write(
        engine,
        task_store.complete_task,
        task_id,
        "w1",
        **outcome(metrics={"best": 0.5}, promoted=True),
    )
    task = _task(engine, task_id)
    assert task.status == "done"
    assert task.progress == {"stage": "training", "percent": 50}
    assert task.metrics == {"best": 0.5} and task.promoted is True
    with read_transaction(engine) as conn:
        events, has_more = task_store.list_events(conn, task_id)
    assert [e["message"] for e in events][-2:] == ["step", "task done"]
    assert events[-2]["level"] == "warning" and events[-2]["data"] == {"step": 1}
    assert not has_more


def test_hand_back_costs_no_attempt(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at, max_attempts=1) is not None
    assert write(engine, task_store.release_task, task_id, "w1")
    task = _task(engine, task_id)
    assert (task.status, task.lease_owner, task.attempts, task.claims) == (
        "pending",
        None,
        1,
        0,
    )
    again = _claim(engine, "w2", at, max_attempts=1)
    assert again is not None
    assert (again.attempts, again.claims) == (1, 1)


def test_restart_is_a_new_attempt_with_a_fresh_claim_allowance(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at, max_attempts=1) is not None
    assert _claim(engine, "w2", at + 2 * LEASE_S, max_attempts=1) is None
    assert _task(engine, task_id).error["code"] == "worker_lost"
    restarted = write(engine, task_store.restart_task, task_id)
    assert restarted.status == "pending"
    assert (restarted.attempts, restarted.claims, restarted.error) == (2, 0, None)
    claimed = _claim(engine, "w3", at + 3 * LEASE_S, max_attempts=1)
    assert claimed is not None and claimed.attempts == 2
    with pytest.raises(task_store.TaskStateConflict):
        write(engine, task_store.restart_task, task_id)


def test_cancel_and_restart_follow_the_status_rules(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    assert write(engine, task_store.cancel_task, task_id).status == "canceled"
    with pytest.raises(task_store.TaskStateConflict):
        write(engine, task_store.cancel_task, task_id)
    assert write(engine, task_store.restart_task, task_id).status == "pending"
    with pytest.raises(task_store.TaskStateConflict):
        write(engine, task_store.restart_task, task_id)
    with pytest.raises(task_store.TaskNotFound):
        write(engine, task_store.cancel_task, "nope")
    with pytest.raises(task_store.TaskNotFound):
        write(engine, task_store.restart_task, "nope")


def test_idempotency_key_replays_or_conflicts(engine: Engine) -> None:
    batch_id = _released_batch(engine)
    created = _create(engine, batch_id, key="k", body="a")
    assert not created.replayed
    replay = _create(engine, batch_id, key="k", body="a")
    assert replay.replayed and replay.task.id == created.task.id
    with pytest.raises(task_store.IdempotencyKeyReused):
        _create(engine, batch_id, key="k", body="b")


def test_concurrent_creates_with_one_key_make_one_task(engine: Engine) -> None:
    batch_id = _released_batch(engine)
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        results.append(_create(engine, batch_id, key="same"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len({r.task.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    with read_transaction(engine) as conn:
        assert task_store.list_tasks(conn)[1] == 1


def test_list_filters_newest_first_and_counts(engine: Engine) -> None:
    ids = [_create(engine, _released_batch(engine)).task.id for _ in range(5)]
    write(engine, task_store.cancel_task, ids[1])
    with read_transaction(engine) as conn:
        page, total = task_store.list_tasks(conn, limit=2, offset=1)
        assert total == 5
        assert [t.id for t in page] == [ids[3], ids[2]]
        canceled, total_canceled = task_store.list_tasks(conn, status="canceled")
        assert [t.id for t in canceled] == [ids[1]] and total_canceled == 1
        assert task_store.list_tasks(conn, fine_tuning_method="other") == ([], 0)


def test_events_page_by_event_id(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    with write_transaction(engine) as conn:
        for number in range(5):
            task_store.add_event(conn, task_id, f"event {number}", n=number)
    with read_transaction(engine) as conn:
        first, more = task_store.list_events(conn, task_id, limit=3)
        assert more
        rest, more = task_store.list_events(conn, task_id, after=first[-1]["id"], limit=3)
        assert not more
        messages = [e["message"] for e in first + rest]
        assert messages == ["task created"] + [f"event {n}" for n in range(5)]
        with pytest.raises(task_store.EventNotFound):
            task_store.list_events(conn, task_id, after="unknown")


def test_a_worker_that_lost_its_task_keeps_the_folder_only_for_a_takeover(
    engine: Engine, settings: Settings
) -> None:
    taken_over = _create(engine, _released_batch(engine)).task.id
    canceled = _create(engine, _released_batch(engine)).task.id
    at = now()
    for task_id in (taken_over, canceled):
        claimed = _claim(engine, "w1", at)
        assert claimed is not None and claimed.id == task_id
        spec = TaskSpec(task_id=task_id, fine_tuning_method="m", batch_id="b")
        with WorkerTaskContext(spec, settings, engine, "w1") as context:
            (context.work_dir / "checkpoint").write_text("step 10")
            if task_id == taken_over:
                assert _claim(engine, "w2", at + LEASE_S + 1) is not None  # w1 stalled
            else:
                write(engine, task_store.cancel_task, task_id)
            assert not write(engine, task_store.heartbeat, task_id, "w1", lease_s=LEASE_S)
            context.mark_not_ours()
        # w2 may resume from the checkpoints; a canceled task's folder is gone.
        assert context.work_dir.exists() == (task_id == taken_over)


def _completing(engine: Engine, task_id: str, worker: str, at: float) -> str:
    return write(engine, task_store.begin_completing, task_id, worker, lease_s=LEASE_S, now=at)


def test_a_cancel_before_the_completing_step_wins_and_none_after_it(engine: Engine) -> None:
    canceled = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at) is not None
    write(engine, task_store.cancel_task, canceled)
    assert _completing(engine, canceled, "w1", at + 1) == "lost"  # nothing may be applied

    completing = _create(engine, _released_batch(engine)).task.id
    assert _claim(engine, "w2", at) is not None
    assert _completing(engine, completing, "w2", at + 1) == "ours"
    with pytest.raises(task_store.TaskCompleting):
        write(engine, task_store.cancel_task, completing)
    assert write(engine, task_store.complete_task, completing, "w2", **outcome(promoted=True))
    assert _task(engine, completing).status == "done"


def test_a_lost_lease_cannot_enter_the_completing_step(engine: Engine) -> None:
    task_id = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at) is not None
    assert _completing(engine, task_id, "w1", at + LEASE_S + 1) == "lost"  # expired
    assert _claim(engine, "w2", at + LEASE_S + 1) is not None
    assert _completing(engine, task_id, "w1", at + LEASE_S + 2) == "lost"  # taken over
    assert _completing(engine, task_id, "w2", at + LEASE_S + 2) == "ours"


def test_tasks_of_one_method_complete_one_at_a_time(engine: Engine) -> None:
    first = _create(engine, _released_batch(engine)).task.id
    second = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at) is not None and _claim(engine, "w2", at) is not None
    assert _completing(engine, first, "w1", at + 1) == "ours"
    assert _completing(engine, second, "w2", at + 1) == "busy"
    assert write(engine, task_store.complete_task, first, "w1", **outcome(promoted=True))
    assert _completing(engine, second, "w2", at + 2) == "ours"


def test_a_dead_worker_in_the_completing_step_does_not_block_the_method(engine: Engine) -> None:
    stuck = _create(engine, _released_batch(engine)).task.id
    other = _create(engine, _released_batch(engine)).task.id
    at = now()
    assert _claim(engine, "w1", at) is not None and _claim(engine, "w2", at) is not None
    assert _completing(engine, stuck, "w1", at) == "ours"
    assert _completing(engine, other, "w2", at + 1) == "busy"
    write(engine, task_store.heartbeat, other, "w2", lease_s=LEASE_S, now=at + LEASE_S)
    assert _completing(engine, other, "w2", at + LEASE_S + 1) == "ours"  # w1's lease expired
    # The stuck task is still completing: a takeover finishes it, a cancel is refused.
    with pytest.raises(task_store.TaskCompleting):
        write(engine, task_store.cancel_task, stuck)
    taken = _claim(engine, "w3", at + LEASE_S + 1)
    assert taken is not None and taken.id == stuck and taken.completing_at == pytest.approx(at)
