"""Every hyperparameter of the search space changes training; cancel and resume inside a run.

Runs the real trainer on the tiny BERT and the synthetic shop's clicks (no database: the items
come from an in-memory loader).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clicktune import TaskCanceled
from clicktune.training.examples import PreparedData, prepare_examples
from clicktune.training.trainer import RunCallback
from tests.pipeline_plugins.tiny_methods import TINY_SPACE, TinyFineTuningMethod
from tests.pipeline_support import Shop, tiny_model_path

pytestmark = pytest.mark.usefixtures("one_thread")

REFERENCE = {
    "learning_rate": 0.005,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,
    "num_hard_negatives": 1,
    "warmup_ratio": 0.0,
}
CHANGED = {
    "learning_rate": 0.001,
    "num_train_epochs": 2,
    "per_device_train_batch_size": 8,
    "num_hard_negatives": 2,
    "warmup_ratio": 0.2,
}
PROBES = ["crimson sneaker", "shoe in red by acme", "navy tote", "hat in white by orbit"]


@dataclass
class Recorder:
    """Keeps what a run's callback tells; cancels after `cancel_after` steps."""

    cancel_after: int | None = None
    losses: dict[int, float] = field(default_factory=dict)
    evaluations: list[dict[str, float]] = field(default_factory=list)

    def is_canceled(self) -> bool:
        return self.cancel_after is not None and len(self.losses) >= self.cancel_after

    def on_progress(self, fraction: float) -> None:
        assert 0.0 <= fraction <= 1.0

    def on_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if "train_loss" in metrics:
            self.losses[step] = metrics["train_loss"]
        else:
            self.evaluations.append(dict(metrics))

    def callback(self, method: TinyFineTuningMethod, data: PreparedData) -> RunCallback:
        return RunCallback(
            evaluator=method.make_evaluator(data),
            is_canceled=self.is_canceled,
            on_progress=self.on_progress,
            on_metrics=self.on_metrics,
            checkpoint_every_s=method.config.checkpoint_every_s,
        )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    method = TinyFineTuningMethod()
    shop = Shop()
    return prepare_examples(
        shop.sessions(per_query=2),
        label=method.label_session,
        load_items=lambda ids: {oid: shop.items[oid] for oid in ids if oid in shop.items},
        out_dir=tmp_path_factory.mktemp("data"),
        test_fraction=0.2,
        seed=0,
        min_labelled_queries=5,
    )


@dataclass
class Trained:
    steps: int
    losses: dict[int, float]
    embeddings: np.ndarray
    metrics: dict[str, float]


def train(data: PreparedData, run_dir: Path, params: Mapping[str, Any]) -> Trained:
    method = TinyFineTuningMethod()
    recorder = Recorder()
    outcome = method.train(
        tiny_model_path(), data, params, run_dir, recorder.callback(method, data)
    )
    model = method.load_model(run_dir / "model")
    return Trained(outcome.steps, recorder.losses, model.encode(PROBES), outcome.metrics)


@pytest.fixture(scope="module")
def reference(data: PreparedData, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train(data, tmp_path_factory.mktemp("runs") / "reference", REFERENCE)


def test_the_space_under_test_is_the_whole_space() -> None:
    assert set(CHANGED) == set(TINY_SPACE) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_each_hyperparameter_changes_training(
    name: str, data: PreparedData, reference: Trained, tmp_path: Path
) -> None:
    changed = train(data, tmp_path / "run", {**REFERENCE, name: CHANGED[name]})
    assert not np.allclose(changed.embeddings, reference.embeddings, atol=1e-6)
    assert list(changed.losses.values()) != list(reference.losses.values())
    if name == "num_train_epochs":
        assert changed.steps == 2 * reference.steps
    if name == "per_device_train_batch_size":
        assert changed.steps < reference.steps


def test_same_parameters_train_the_same_model(
    data: PreparedData, reference: Trained, tmp_path: Path
) -> None:
    again = train(data, tmp_path / "run", REFERENCE)
    # bfloat16 kernels (on where the CPU has them) are close to, not bit-for-bit, reproducible.
    atol = 2e-3 if TinyFineTuningMethod().uses_bf16() else 1e-5
    assert np.allclose(again.embeddings, reference.embeddings, atol=atol)
    assert set(reference.metrics) == {
        f"clicks_{name}" for name in ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
    }


def test_cancel_stops_between_steps_and_a_new_attempt_resumes(
    data: PreparedData, tmp_path: Path
) -> None:
    method = TinyFineTuningMethod()
    params = {**REFERENCE, "num_train_epochs": 3}
    # A checkpoint after every step.
    method.config = dataclasses.replace(method.config, checkpoint_every_s=1e-9)
    run_dir = tmp_path / "run-1"
    canceled = Recorder(cancel_after=3)
    with pytest.raises(TaskCanceled):
        method.train(tiny_model_path(), data, params, run_dir, canceled.callback(method, data))
    # The cancel is seen at the next step boundary: one more step, then no more.
    assert sorted(canceled.losses) == [1, 2, 3, 4]
    assert not (run_dir / "model").exists()
    newest = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert newest == 3
    resumed = Recorder()
    outcome = method.train(tiny_model_path(), data, params, run_dir, resumed.callback(method, data))
    assert min(resumed.losses) == newest + 1
    assert outcome.resumed_from_step == newest
    assert outcome.steps == max(resumed.losses) > 4
    assert len(resumed.evaluations) == 3  # one per epoch


def test_evaluation_stops_on_cancel(data: PreparedData) -> None:
    method = TinyFineTuningMethod()
    evaluator = method.make_evaluator(data, is_canceled=lambda: True)
    with pytest.raises(TaskCanceled):
        method.evaluate(tiny_model_path(), evaluator)
    evaluator = method.make_evaluator(data)
    assert method.evaluate(tiny_model_path(), evaluator)["clicks_ndcg_at_10"] >= 0.0
