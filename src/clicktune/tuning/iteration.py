"""The standard iteration of embedding methods: the order of its steps.

`run_iteration` drives a method's hooks (`hooks.IterationHooks`) through the steps, each in its
module: opening (`opening`: examples, judged set, live decision, starting model, the MLflow
iteration), the baseline (`baseline`), the trial search (`trial_plan`, `trials`) and completion
(`completion`: the decision and its side effects); `progress` reports how far it is.

Everything an attempt needs to know about earlier attempts of the same task is read back from
MLflow (the iteration's experiment, its runs, their per-query scores), so a task taken over from
a lost worker does not redo finished runs, and an unfinished run resumes from its newest
checkpoint when the work folder still has it.
"""

from __future__ import annotations

import shutil
from typing import Any

from clicktune.errors import InvalidHyperparameter, TaskFailed
from clicktune.logs import get_logger
from clicktune.tracking.iterations import BASELINE_RUN
from clicktune.tuning.baseline import evaluate_baseline
from clicktune.tuning.completion import complete_iteration
from clicktune.tuning.hooks import IterationHooks
from clicktune.tuning.opening import open_iteration
from clicktune.tuning.plugin import TaskContext, TaskResult
from clicktune.tuning.progress import ProgressReporter
from clicktune.tuning.scope import IterationScope
from clicktune.tuning.trial_plan import plan_iteration_trials
from clicktune.tuning.trials import run_trials

log = get_logger(__name__)

WORK_FOLDER = "iteration"
"""The iteration's folder under the task's work folder; removed whatever happens."""


def run_iteration(hooks: IterationHooks, context: TaskContext) -> TaskResult:
    """One iteration of the method on the task's batch; temporary folders go whatever happens."""
    root = context.work_dir / WORK_FOLDER
    try:
        fixed = fixed_hyperparameters(hooks, context.task.hyperparameters)
        task_log = log.bind(task_id=context.task.task_id, method=hooks.meta.name)
        scope = IterationScope(hooks, context, ProgressReporter(context, task_log), root, task_log)
        opened = open_iteration(scope)
        runs = opened.iteration.runs()
        baseline = evaluate_baseline(opened, runs.get(BASELINE_RUN))
        best = run_trials(opened, plan_iteration_trials(opened, runs, fixed))
        return complete_iteration(opened, baseline, best)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fixed_hyperparameters(hooks: IterationHooks, values: dict[str, Any]) -> dict[str, Any]:
    """The task's hyperparameters as the method types them; a bad one fails the task."""
    try:
        return hooks.validate_hyperparameters(dict(values))
    except InvalidHyperparameter as exc:
        raise TaskFailed("invalid_hyperparameters", exc.message) from exc
