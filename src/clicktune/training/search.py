"""Hyperparameter search with Optuna: seeded TPE, earlier best sets first, fixed values held.

The study lives in memory for one attempt of a task; what survives between attempts and
iterations is in MLflow (each run's params), and is fed back here: finished runs of an earlier
attempt as completed trials, the previous iteration's top-k sets as enqueued trials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import optuna

from clicktune.errors import InvalidHyperparameter
from clicktune.training.search_space import SearchSpace, Value, validate_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable id of a parameter set (the `params_hash` run tag)."""
    canonical = json.dumps(dict(sorted(params.items())), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class HyperparameterSearch:
    """Proposes the parameter sets of one iteration's runs."""

    def __init__(self, space: SearchSpace, fixed: Mapping[str, Value], seed: int) -> None:
        self.fixed = dict(fixed)
        self.space = {name: spec for name, spec in space.items() if name not in self.fixed}
        self.study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        self._pending: dict[int, optuna.Trial] = {}

    @property
    def searchable(self) -> bool:
        """False when the task fixed every parameter: then one run is all there is to do."""
        return bool(self.space)

    def enqueue(self, parameter_sets: Iterable[Mapping[str, Value]], skip: set[str]) -> None:
        """Try these sets first (in order), minus fixed values, duplicates and `skip` hashes."""
        seen = set(skip)
        for params in parameter_sets:
            free = {name: value for name, value in params.items() if name in self.space}
            if set(free) != set(self.space):
                continue
            key = params_hash({**free, **self.fixed})
            if key in seen:
                continue
            seen.add(key)
            self.study.enqueue_trial(free)

    def ask(self) -> tuple[int, dict[str, Value]]:
        """The next set: enqueued ones first, then TPE. Returns a token for `tell`."""
        trial = self.study.ask()
        params = {name: spec.suggest(trial, name) for name, spec in self.space.items()}
        self._pending[trial.number] = trial
        return trial.number, {**params, **self.fixed}

    def tell(self, token: int, value: float | None) -> None:
        trial = self._pending.pop(token)
        if value is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def add_result(self, params: Mapping[str, Value], value: float | None) -> None:
        """Record a run made outside `ask` (an earlier attempt's), so TPE learns from it."""
        free = {name: params[name] for name in self.space if name in params}
        if set(free) != set(self.space):
            return
        state = (
            optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
        )
        self.study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=free,
                distributions={name: spec.distribution() for name, spec in self.space.items()},
            )
        )


def first_trial_sets(
    space: SearchSpace, parameter_sets: Iterable[Mapping[str, Value]]
) -> list[dict[str, Value]]:
    """A method's configured first trials that fit its space (a plugin may narrow the space)."""
    fitting = []
    for params in parameter_sets:
        try:
            fitting.append(validate_params(space, params))
        except InvalidHyperparameter:
            continue
    return fitting
