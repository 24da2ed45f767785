"""Typed hyperparameter specs: what Optuna samples, what a task may fix, what MLflow gives back.

MLflow stores every param as a string, so each spec parses its own strings back to its type; a
later iteration that re-runs the previous iteration's best parameter sets depends on that.
Importing this module stays cheap (no optuna until a study needs a distribution).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clicktune.errors import InvalidHyperparameter

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

Value = int | float | str | bool


class ParamSpec(abc.ABC):
    """One dimension of a method's search space."""

    @abc.abstractmethod
    def suggest(self, trial: optuna.Trial, name: str) -> Value:
        """Sample a value through Optuna (honours values enqueued for the trial)."""

    @abc.abstractmethod
    def distribution(self) -> BaseDistribution:
        """The Optuna distribution, for trials added from earlier runs."""

    @abc.abstractmethod
    def parse(self, raw: str) -> Value:
        """The typed value of a param string as MLflow stores it."""

    @abc.abstractmethod
    def validate(self, name: str, value: Any) -> Value:
        """The value converted to this spec's type; `InvalidHyperparameter` when it is not valid."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON for `GET /fine-tuning/methods`."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class FloatParam(ParamSpec):
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def parse(self, raw: str) -> float:
        return float(raw)

    def validate(self, name: str, value: Any) -> float:
        if not _is_number(value) or not math.isfinite(value):
            raise InvalidHyperparameter(name, f"{name} must be a number, got {value!r}")
        if not self.low <= value <= self.high:
            raise InvalidHyperparameter(
                name, f"{name} must be between {self.low} and {self.high}, got {value}"
            )
        return float(value)

    def describe(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class IntParam(ParamSpec):
    low: int
    high: int
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step)

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, step=self.step)

    def parse(self, raw: str) -> int:
        return int(float(raw))

    def validate(self, name: str, value: Any) -> int:
        if not _is_number(value) or not float(value).is_integer():
            raise InvalidHyperparameter(name, f"{name} must be an integer, got {value!r}")
        value = int(value)
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            raise InvalidHyperparameter(
                name,
                f"{name} must be an integer from {self.low} to {self.high}"
                + (f" in steps of {self.step}" if self.step != 1 else "")
                + f", got {value}",
            )
        return value

    def describe(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step}


@dataclass(frozen=True)
class CategoricalParam(ParamSpec):
    choices: tuple[Value, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Value:
        return trial.suggest_categorical(name, list(self.choices))

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def parse(self, raw: str) -> Value:
        for choice in self.choices:
            if str(choice) == raw:
                return choice
        for choice in self.choices:
            if _is_number(choice):
                try:
                    if float(raw) == choice:
                        return choice
                except ValueError:
                    continue
        raise ValueError(f"{raw!r} is not one of {list(self.choices)}")

    def validate(self, name: str, value: Any) -> Value:
        for choice in self.choices:
            same_kind = isinstance(value, bool) == isinstance(choice, bool)
            if same_kind and type(value) in (int, float, str, bool) and value == choice:
                return choice
        raise InvalidHyperparameter(
            name, f"{name} must be one of {list(self.choices)}, got {value!r}"
        )

    def describe(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


SearchSpace = Mapping[str, ParamSpec]


def validate_params(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Value]:
    """Check names and values against the space; the values converted to their declared types."""
    for name in sorted(set(params) - set(space)):
        raise InvalidHyperparameter(
            name, f"unknown hyperparameter {name!r}; this method has: {sorted(space)}"
        )
    return {name: space[name].validate(name, value) for name, value in params.items()}


def parse_params(space: SearchSpace, raw: Mapping[str, str]) -> dict[str, Value]:
    """Params read back from MLflow, typed; names outside the space are left out."""
    return {name: space[name].parse(value) for name, value in raw.items() if name in space}


def describe_space(space: SearchSpace) -> dict[str, dict[str, Any]]:
    return {name: spec.describe() for name, spec in space.items()}
