"""How many runs an iteration makes and which parameter sets it tries first.

With a judged set: the method's number of trials (or the task's), the previous iteration's best
sets first. Without one a search cannot select, so: one run of the method's first trial, unless
the task asks for more. A later attempt of the same task keeps the runs an earlier one started
(`TrialPlan.trials`, their parameters in `earlier`) and tries none of their sets again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clicktune.tracking.iterations import KIND_TRIAL, TAG_KIND, TAG_SELECTION, RunRecord
from clicktune.training.search_space import Value, parse_params

if TYPE_CHECKING:
    from clicktune.training.search import HyperparameterSearch
    from clicktune.tuning.config import EmbeddingMethodConfig
    from clicktune.tuning.opening import OpenedIteration
    from clicktune.tuning.plugin import TaskContext


@dataclass
class TrialPlan:
    """The runs of this iteration: done by earlier attempts and still to do."""

    total: int
    search: HyperparameterSearch
    trials: dict[str, RunRecord]
    """Trial runs earlier attempts started, by run name."""
    earlier: dict[str, dict[str, Value]] = field(default_factory=dict)
    """Their parameters, typed."""


@dataclass(frozen=True)
class PreviousSets:
    """The previous iteration's best parameter sets, as MLflow stores them (strings)."""

    experiment: str
    parameter_sets: Sequence[Mapping[str, str]]


def count_runs(
    *, searchable: bool, task_trials: int | None, method_trials: int, judged: bool
) -> int:
    """One run when every parameter is fixed; else the task's number, or the method's with a
    judged set (only judged evidence can select among runs), or one."""
    if not searchable:
        return 1
    if task_trials is not None:
        return task_trials
    return method_trials if judged else 1


def plan_trials(
    context: TaskContext,
    config: EmbeddingMethodConfig,
    runs: Mapping[str, RunRecord],
    fixed: Mapping[str, Value],
    *,
    judged: bool,
    previous: PreviousSets | None,
) -> TrialPlan:
    """The plan over the iteration's recorded `runs`, `fixed` hyperparameters held: `previous`'s
    sets first when they fit the search space, else the method's first trials."""
    from clicktune.training.search import HyperparameterSearch, first_trial_sets, params_hash

    space = config.search_space
    search = HyperparameterSearch(space, fixed, seed=config.seed)
    total = count_runs(
        searchable=search.searchable,
        task_trials=context.task.n_trials,
        method_trials=config.n_trials,
        judged=judged,
    )
    trials = {name: r for name, r in runs.items() if r.tags.get(TAG_KIND) == KIND_TRIAL}
    plan = TrialPlan(total, search, trials)
    plan.earlier = {name: parse_params(space, r.params) for name, r in trials.items()}
    skip = {params_hash(p) for p in plan.earlier.values()}
    if previous is not None:
        parsed = []
        for raw in previous.parameter_sets:
            try:
                parsed.append(parse_params(space, raw))
            except ValueError:
                continue
        if parsed:
            search.enqueue(parsed, skip=skip)
            context.add_event(
                f"Trying the {len(parsed)} best parameter sets of {previous.experiment!r} first",
                previous_experiment=previous.experiment,
                parameter_sets=parsed,
            )
            return plan
    search.enqueue(first_trial_sets(space, config.first_trials), skip=skip)
    return plan


def previous_sets(opened: OpenedIteration) -> PreviousSets | None:
    """The best parameter sets of the method's last completed iteration, by the metric it
    selected with (None: no judged set, so no search to seed, or no previous iteration)."""
    if opened.judged is None:
        return None
    tracking = opened.tracking
    previous = tracking.previous_iteration(exclude_experiment_id=opened.iteration.experiment_id)
    if previous is None:
        return None
    key = previous.tags.get(TAG_SELECTION, opened.selection)
    top = tracking.top_parameter_sets(previous.experiment_id, key, opened.scope.config.top_k)
    return PreviousSets(previous.name, top)


def plan_iteration_trials(
    opened: OpenedIteration, runs: Mapping[str, RunRecord], fixed: Mapping[str, Value]
) -> TrialPlan:
    """The plan of the opened iteration."""
    return plan_trials(
        opened.scope.context,
        opened.scope.config,
        runs,
        fixed,
        judged=opened.judged is not None,
        previous=previous_sets(opened),
    )
