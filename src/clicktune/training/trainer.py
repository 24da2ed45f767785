"""One training run with sentence-transformers' trainer, watched by one callback.

The callback is the task's hand inside the training loop: between optimizer steps it checks for
cancel, reports progress, saves a checkpoint now and then (so a reclaimed task resumes), and hands
every logged loss and evaluation on (the iteration logs them to MLflow). The trainer's own
reporting integrations are off (`report_to="none"`): runs land only where the iteration puts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import (
    SentenceTransformerTrainingArguments,
)
from transformers import TrainerCallback, TrainerControl, TrainerState
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from clicktune.errors import TaskCanceled
from clicktune.evaluation.evaluator import TaskEvaluator

if TYPE_CHECKING:
    from datasets import Dataset


MetricsSink = Callable[[Mapping[str, float], int], None]
"""Receives metrics (`train_loss`, `learning_rate`, `grad_norm`, `epoch`, the evaluator's
`<set>_<metric>`) with their optimizer step."""
TRAINER_LOGS = {
    "loss": "train_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "epoch": "epoch",
}
"""What the trainer logs at each step, as the run's metrics name it."""


class RunCallback(TrainerCallback):
    """Cancel, progress, time-based checkpoints and metrics of one run, between optimizer steps."""

    def __init__(
        self,
        *,
        evaluator: TaskEvaluator,
        is_canceled: Callable[[], bool],
        on_progress: Callable[[float], None],
        on_metrics: MetricsSink,
        checkpoint_every_s: float | None,
        progress_every_s: float = 2.0,
    ) -> None:
        self.evaluator = evaluator
        self.is_canceled = is_canceled
        self.on_progress = on_progress
        self.on_metrics = on_metrics
        self.checkpoint_every_s = checkpoint_every_s
        self.progress_every_s = progress_every_s
        self.canceled = False
        self._last_save = self._last_progress = time.monotonic()

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._last_save = self._last_progress = time.monotonic()

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.is_canceled():
            self.canceled = True
            control.should_training_stop = True
            return
        now = time.monotonic()
        if now - self._last_progress >= self.progress_every_s and state.max_steps:
            self._last_progress = now
            self.on_progress(state.global_step / state.max_steps)
        if self.checkpoint_every_s and now - self._last_save >= self.checkpoint_every_s:
            self._last_save = now
            control.should_save = True

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "loss" in logs:
            logged = {name: float(logs[key]) for key, name in TRAINER_LOGS.items() if key in logs}
            self.on_metrics(logged, state.global_step)

    def on_evaluate(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.evaluator.last_metrics:
            self.report_evaluation(state.global_step)

    def report_evaluation(self, step: int) -> None:
        """Hand the evaluator's last metrics on."""
        self.on_metrics(self.evaluator.last_metrics, step)


@dataclass
class TrainOutcome:
    metrics: dict[str, float]
    """The trained model's evaluation (`clicks_<metric>`, `judged_<metric>`)."""
    steps: int
    train_seconds: float
    """Wall time of the training loop, its evaluations included."""
    eval_seconds: float
    """Time the evaluations inside the training loop took."""
    resumed_from_step: int | None
    """The checkpoint's step this run continued from (an earlier attempt's), if any."""
    examples: float
    """Training examples processed by this call (all epochs; less when it resumed)."""

    @property
    def examples_per_second(self) -> float:
        """Training throughput, evaluation time left out."""
        return self.examples / max(self.train_seconds - self.eval_seconds, 1e-9)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint: one a killed process left half-written is passed over
    (the trainer state file is the last thing a checkpoint gets)."""
    if not output_dir.is_dir():
        return None
    found = []
    for path in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if step.isdigit() and (path / TRAINER_STATE_NAME).is_file():
            found.append((int(step), path))
    return max(found)[1] if found else None


def train_model(
    model: SentenceTransformer,
    train_dataset: Dataset,
    loss: torch.nn.Module,
    args: SentenceTransformerTrainingArguments,
    callback: RunCallback,
) -> TrainOutcome:
    """Train (resuming from the newest checkpoint in `args.output_dir`), then evaluate."""
    evaluator = callback.evaluator
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    checkpoint = latest_checkpoint(Path(args.output_dir))
    resumed_from = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None
    eval_before = evaluator.seconds
    evaluator.last_metrics = {}
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - started
    eval_seconds = evaluator.seconds - eval_before
    if callback.canceled or callback.is_canceled():
        raise TaskCanceled("canceled during training")
    if not evaluator.last_metrics:
        evaluator(model)
        callback.report_evaluation(trainer.state.global_step)
    return TrainOutcome(
        metrics=dict(evaluator.last_metrics),
        steps=trainer.state.global_step,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        resumed_from_step=resumed_from,
        examples=_examples_done(trainer, len(train_dataset), resumed_from or 0),
    )


def _examples_done(trainer: SentenceTransformerTrainer, rows: int, first_step: int) -> float:
    state = trainer.state
    if not state.max_steps:
        return 0.0
    share = (state.global_step - first_step) / state.max_steps
    return rows * float(trainer.args.num_train_epochs) * share
