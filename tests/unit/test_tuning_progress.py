"""The task's progress through an iteration: percent before, during and after the runs, and a
stage that stops a canceled task before it reports anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.errors import TaskCanceled
from clicktune.logs import get_logger
from clicktune.tuning.progress import (
    AFTER_TRAINING,
    BEFORE_TRAINING,
    ProgressReporter,
    training_percent,
)
from clicktune.tuning.testing import InMemoryTaskContext


@pytest.mark.parametrize(
    ("runs_done", "runs_total", "fraction", "percent"),
    [
        (0, 1, 0.0, BEFORE_TRAINING),
        (0, 2, 0.5, 27.5),
        (1, 2, 0.0, 50.0),
        (2, 2, 0.0, AFTER_TRAINING),
        (2, 2, 0.7, AFTER_TRAINING),  # never past the runs' share
        (0, 0, 0.0, BEFORE_TRAINING),  # no runs planned yet
    ],
)
def test_the_runs_share_the_span_between_opening_and_completing(
    runs_done: int, runs_total: int, fraction: float, percent: float
) -> None:
    assert training_percent(runs_done, runs_total, fraction) == pytest.approx(percent)


def test_reports_carry_the_runs_and_a_rounded_percent(tmp_path: Path) -> None:
    context = InMemoryTaskContext(work_dir=tmp_path)
    progress = ProgressReporter(context, get_logger(__name__))
    progress.report("preparing_data", percent=0.0)
    progress.runs_total, progress.runs_done = 3, 1
    progress.report("training", current_run=2, fraction=1 / 3)
    progress.report("done", percent=100.0)
    assert context.progress == [
        {"stage": "preparing_data", "runs_total": 1, "runs_done": 0, "current_run": None,
         "percent": 0.0},
        {"stage": "training", "runs_total": 3, "runs_done": 1, "current_run": 2, "percent": 45.0},
        {"stage": "done", "runs_total": 3, "runs_done": 1, "current_run": None, "percent": 100.0},
    ]  # fmt: skip


def test_a_stage_is_reported_and_logged_as_an_event(tmp_path: Path) -> None:
    context = InMemoryTaskContext(work_dir=tmp_path)
    ProgressReporter(context, get_logger(__name__)).stage(
        "baseline", "Evaluating the starting model", percent=3.0, extra=1
    )
    assert context.progress[-1]["percent"] == 3.0 and context.progress[-1]["stage"] == "baseline"
    [event] = context.events
    assert (event.message, event.data) == (
        "Evaluating the starting model",
        {"stage": "baseline", "extra": 1},
    )


def test_a_canceled_task_stops_at_the_next_stage(tmp_path: Path) -> None:
    context = InMemoryTaskContext(work_dir=tmp_path)
    context.cancel()
    with pytest.raises(TaskCanceled):
        ProgressReporter(context, get_logger(__name__)).stage("training", "Training 1 run")
    assert (context.progress, context.events) == ([], [])
