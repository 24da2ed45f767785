"""The completing step on the real stack: a task's decision moves the champion only after the
worker won it, a cancel before it changes nothing, none is accepted during it, and a champion
changed meanwhile by another task is not replaced by a model measured against the old one.

SQLite only: the store's side of the step runs on both databases in test_task_queue.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from clicktune.errors import TaskCanceled
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction
from clicktune.tracking.client import make_client
from clicktune.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from clicktune.worker.context import WorkerTaskContext
from tests.pipeline_support import (
    TINY_METHOD,
    Shop,
    claimed_context,
    load_batch,
    load_judged_set,
    register_tiny_model,
)
from tests.store_support import write

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def before_completing(context: WorkerTaskContext, action: Callable[[], None]) -> None:
    """Run `action` just before the context's completing step is attempted."""
    enter = context.begin_completing

    def begin_completing() -> None:
        action()
        enter()

    context.begin_completing = begin_completing  # type: ignore[method-assign]


@pytest.fixture
def judged_batch(engine: Engine) -> tuple[str, str]:
    """A judged set on which the shop's clicks make a better model, and a released batch."""
    shop = Shop()
    golden = load_judged_set(engine, "golden", shop.judgments())
    return golden, load_batch(engine, shop, shop.sessions(per_query=2))


def models(psettings: Settings) -> ModelRegistry:
    return ModelRegistry(make_client(psettings), TINY_METHOD, tags={})


def test_a_task_canceled_before_its_completing_step_moves_nothing(
    engine: Engine, psettings: Settings, registry: MethodRegistry, judged_batch: tuple[str, str]
) -> None:
    golden, batch = judged_batch
    with claimed_context(engine, psettings, TINY_METHOD, batch, validation_set=golden) as context:
        task_id = context.task.task_id
        before_completing(context, lambda: write(engine, task_store.cancel_task, task_id))
        with pytest.raises(TaskCanceled):
            registry.get(TINY_METHOD).run(context)
    assert models(psettings).version(CHAMPION) is None
    assert models(psettings).version(CHALLENGER) is None
    with read_transaction(engine) as conn:
        assert task_store.get_task(conn, task_id).status == "canceled"


def test_no_cancel_during_the_completing_step(
    engine: Engine, psettings: Settings, registry: MethodRegistry, judged_batch: tuple[str, str]
) -> None:
    golden, batch = judged_batch
    with claimed_context(engine, psettings, TINY_METHOD, batch, validation_set=golden) as context:
        result = registry.get(TINY_METHOD).run(context)
        with pytest.raises(task_store.TaskCompleting):
            write(engine, task_store.cancel_task, context.task.task_id)
    assert result.promoted is True
    assert models(psettings).version(CHAMPION).run_id == result.best_run_id


def test_a_champion_changed_meanwhile_is_not_replaced(
    engine: Engine, psettings: Settings, registry: MethodRegistry, judged_batch: tuple[str, str]
) -> None:
    golden, batch = judged_batch
    with claimed_context(engine, psettings, TINY_METHOD, batch, validation_set=golden) as context:
        # Another task of the method promotes its model while this one trains.
        before_completing(
            context, lambda: register_tiny_model(psettings, "champion", "other-task", seed=2)
        )
        result = registry.get(TINY_METHOD).run(context)
    assert result.metrics is not None
    assert result.metrics["gain_interval"][0] > 0  # better than where it started …
    assert (result.promoted, result.challenger) == (False, True)  # … which is not the champion
    assert (
        "the champion changed from the initial model to version 1"
        in (result.metrics["promotion_reason"])
    )
    registry_now = models(psettings)
    assert registry_now.version(CHAMPION).tags["clicktune.champion.task_id"] == "other-task"
    assert registry_now.version(CHALLENGER).run_id == result.best_run_id
