"""The contract between the standard iteration and the method it runs.

The iteration (`tuning/iteration.py` and its steps) is typed against `IterationHooks` alone: what
a method is called (`meta`, `registered_model_name`), what it decides (`config`) and the hooks
the iteration calls, in the order it calls them. `clicktune.methods.embedding` implements them;
any class that has these members can be run by `run_iteration`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clicktune.evaluation.evaluator import TaskEvaluator
    from clicktune.training.examples import PreparedData
    from clicktune.training.search_space import Value
    from clicktune.training.trainer import RunCallback, TrainOutcome
    from clicktune.tuning.config import EmbeddingMethodConfig
    from clicktune.tuning.judged_set import JudgedSet
    from clicktune.tuning.plugin import MethodMeta, TaskContext


class IterationHooks(Protocol):
    """What `run_iteration` needs of a method."""

    @property
    def meta(self) -> MethodMeta:
        """Names the method's experiments and runs."""

    @property
    def config(self) -> EmbeddingMethodConfig:
        """Search space, number of runs, seed, main metric, minimum gain, event weights."""

    @property
    def registered_model_name(self) -> str:
        """The MLflow registered model whose champion and challenger aliases the task moves."""

    def validate_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The task's fixed hyperparameters, typed; raises `InvalidHyperparameter`."""

    def prepare_data(self, context: TaskContext, out_dir: Path) -> PreparedData:
        """The task's batch as examples and a split."""

    def item_text(self, item: Mapping[str, Any]) -> str | None:
        """The text a catalog item is embedded as (the judged set ranks the catalog)."""

    def initial_model_path(self) -> Path:
        """The model of the method's first iteration (uploaded to MLflow once)."""

    def make_evaluator(
        self,
        data: PreparedData,
        is_canceled: Callable[[], bool],
        judged: JudgedSet | None,
    ) -> TaskEvaluator:
        """Scores a model on the task's evidence; remembers its last per-query scores."""

    def evaluate(self, model_dir: Path, evaluator: TaskEvaluator) -> dict[str, float]:
        """The starting model's metrics (the baseline)."""

    def train(
        self,
        start_model: Path,
        data: PreparedData,
        params: Mapping[str, Value],
        run_dir: Path,
        callback: RunCallback,
    ) -> TrainOutcome:
        """One run from the starting model, saved to `run_dir/model`."""
