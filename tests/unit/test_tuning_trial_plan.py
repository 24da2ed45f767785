"""How many runs an iteration plans and which parameter sets it tries first: with or without a
judged set, with the task's n_trials, with every parameter fixed, after a previous iteration and
after an earlier attempt of the same task."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.tracking.iterations import KIND_BASELINE, KIND_TRIAL, TAG_KIND, RunRecord
from clicktune.tuning.config import EmbeddingMethodConfig, default_first_trials
from clicktune.tuning.plugin import TaskSpec
from clicktune.tuning.testing import InMemoryTaskContext
from clicktune.tuning.trial_plan import PreviousSets, count_runs, plan_trials

CONFIG = EmbeddingMethodConfig()
FIRST = default_first_trials()[0]
PREVIOUS = {
    "learning_rate": 5e-5,
    "num_train_epochs": 2,
    "per_device_train_batch_size": 64,
    "num_hard_negatives": 2,
    "warmup_ratio": 0.05,
}


def as_stored(params: dict) -> dict[str, str]:
    """Parameters as MLflow stores them."""
    return {name: str(value) for name, value in params.items()}


def record(name: str, kind: str, params: dict, status: str = "FINISHED") -> RunRecord:
    return RunRecord(f"id-{name}", name, status, as_stored(params), {}, {TAG_KIND: kind})


def context(tmp_path: Path, n_trials: int | None = None) -> InMemoryTaskContext:
    task = TaskSpec(task_id="t", fine_tuning_method="m", batch_id="b", n_trials=n_trials)
    return InMemoryTaskContext(task, work_dir=tmp_path)


@pytest.mark.parametrize(
    ("searchable", "task_trials", "judged", "runs"),
    [
        (True, None, True, 4),  # the method's number: a judged set can select among runs
        (True, None, False, 1),  # nothing can select: one run
        (True, 3, False, 3),  # the task asks for more
        (True, 2, True, 2),
        (False, 3, True, 1),  # every parameter fixed: there is one run to make
    ],
)
def test_how_many_runs(searchable: bool, task_trials: int | None, judged: bool, runs: int) -> None:
    assert (
        count_runs(searchable=searchable, task_trials=task_trials, method_trials=4, judged=judged)
        == runs
    )


def test_a_first_iteration_tries_the_methods_first_trial_first(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    plan = plan_trials(ctx, CONFIG, {}, {}, judged=False, previous=None)
    assert (plan.total, plan.trials, plan.earlier) == (1, {}, {})
    _token, params = plan.search.ask()
    assert params == FIRST
    assert ctx.events == []


def test_with_a_judged_set_the_methods_number_of_trials_or_the_tasks(tmp_path: Path) -> None:
    assert plan_trials(context(tmp_path), CONFIG, {}, {}, judged=True, previous=None).total == 4
    asked = plan_trials(context(tmp_path, n_trials=2), CONFIG, {}, {}, judged=True, previous=None)
    assert asked.total == 2
    fixed = plan_trials(context(tmp_path), CONFIG, {}, FIRST, judged=True, previous=None)
    assert fixed.total == 1 and fixed.search.ask()[1] == FIRST


def test_the_previous_iterations_best_sets_come_first(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    previous = PreviousSets("iteration / m / b0", [as_stored(PREVIOUS), {"learning_rate": "x"}])
    plan = plan_trials(ctx, CONFIG, {}, {}, judged=True, previous=previous)
    assert plan.search.ask()[1] == PREVIOUS
    [event] = ctx.events
    assert event.message == "Trying the 1 best parameter sets of 'iteration / m / b0' first"
    assert event.data == {"previous_experiment": "iteration / m / b0", "parameter_sets": [PREVIOUS]}


def test_previous_sets_that_do_not_fit_the_space_fall_back_to_the_first_trials(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path)
    previous = PreviousSets("iteration / m / b0", [{"learning_rate": "not a number"}])
    plan = plan_trials(ctx, CONFIG, {}, {}, judged=True, previous=previous)
    assert plan.search.ask()[1] == FIRST
    assert ctx.events == []


def test_a_later_attempt_keeps_the_earlier_trials_and_tries_none_of_their_sets_again(
    tmp_path: Path,
) -> None:
    runs = {
        "baseline": record("baseline", KIND_BASELINE, {}),
        "run-1": record("run-1", KIND_TRIAL, FIRST),
        "run-2": record("run-2", KIND_TRIAL, PREVIOUS, status="RUNNING"),
    }
    plan = plan_trials(context(tmp_path), CONFIG, runs, {}, judged=True, previous=None)
    assert set(plan.trials) == {"run-1", "run-2"}
    assert plan.earlier == {"run-1": FIRST, "run-2": PREVIOUS}
    assert plan.search.ask()[1] not in (FIRST, PREVIOUS)  # TPE: the first trial was run already
