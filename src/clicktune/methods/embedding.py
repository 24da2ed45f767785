"""The text-to-text embedding method family: the hooks a plugin overrides.

`run` is the standard iteration (`clicktune.tuning.iteration`), which drives these hooks (the
contract: `clicktune.tuning.hooks.IterationHooks`); a plugin subclasses
`EmbeddingFineTuningMethod` (or the default method), sets `meta` and `config`
(`EmbeddingMethodConfig`), and overrides only what differs: the initial model, where item texts
come from, how a session becomes labels, the loss, the training arguments. The API imports this
module, so torch and friends are imported inside the hooks, never at module level.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clicktune.training.examples import LabelConfig, PreparedData, SessionLabels, label_session
from clicktune.training.search_space import Value, describe_space, validate_params
from clicktune.tuning.config import EmbeddingMethodConfig
from clicktune.tuning.iteration import run_iteration
from clicktune.tuning.plugin import FineTuningMethod, TaskContext, TaskResult

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.training_args import (
        SentenceTransformerTrainingArguments,
    )

    from clicktune.evaluation.evaluator import TaskEvaluator
    from clicktune.training.trainer import RunCallback, TrainOutcome
    from clicktune.tuning.judged_set import JudgedSet


class EmbeddingFineTuningMethod(FineTuningMethod):
    """Fine-tunes a sentence-transformers model on (query, clicked item, skipped items)."""

    config: ClassVar[EmbeddingMethodConfig] = EmbeddingMethodConfig()

    @abc.abstractmethod
    def initial_model_path(self) -> Path:
        """A local sentence-transformers folder: the model of the method's first iteration."""

    def base_model_name(self) -> str:
        """How `GET /fine-tuning/methods` names the initial model."""
        return str(self.initial_model_path())

    @property
    def registered_model_name(self) -> str:
        return self.config.registered_model_name or self.meta.name

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "base_model": self.base_model_name(),
            "hyperparameters": describe_space(self.config.search_space),
        }

    def validate_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return validate_params(self.config.search_space, hyperparameters)

    def run(self, context: TaskContext) -> TaskResult:
        """The standard iteration (`clicktune.tuning.iteration`) with this method's hooks."""
        return run_iteration(self, context)

    # -- clickstream → examples -------------------------------------------------------------

    def load_items(self, context: TaskContext, object_ids: list[str]) -> dict[str, str]:
        """Texts of these objects (those with content); by default from the service catalog."""
        texts = {}
        for object_id, item in context.items(object_ids).items():
            text = self.item_text(item)
            if text:
                texts[object_id] = text
        return texts

    def item_text(self, item: Mapping[str, Any]) -> str | None:
        """The text an item is embedded as (see `EmbeddingMethodConfig.item_fields`)."""
        fields = item.get("fields") or {}
        parts = [
            str(fields[name])
            for name in self.config.item_fields
            if fields.get(name) not in (None, "")
        ]
        if item.get("text"):
            parts.append(str(item["text"]))
        if not parts and not self.config.item_fields:
            parts = [
                str(value)
                for value in fields.values()
                if isinstance(value, str | int | float)
                and not isinstance(value, bool)
                and value != ""
            ]
        text = "\n".join(parts).strip()
        return text or None

    def label_session(self, session: Mapping[str, Any]) -> SessionLabels | None:
        """One session's positives and hard negatives (None: the session carries no label)."""
        return label_session(
            session,
            LabelConfig(
                event_weights=self.config.event_weights,
                default_event_weight=self.config.default_event_weight,
                position_bias_eta=self.config.position_bias_eta,
            ),
        )

    def prepare_data(self, context: TaskContext, out_dir: Path) -> PreparedData:
        """The task's batch as examples and a split, streamed from the store."""
        from clicktune.training.examples import prepare_examples

        return prepare_examples(
            context.iter_sessions(),
            label=self.label_session,
            load_items=lambda ids: self.load_items(context, ids),
            out_dir=out_dir,
            test_fraction=self.config.test_fraction,
            seed=self.config.seed,
            min_labelled_queries=self.config.min_labelled_queries,
            check_canceled=context.raise_if_canceled,
        )

    # -- training and evaluation ------------------------------------------------------------

    def uses_bf16(self) -> bool:
        from clicktune.device import use_bf16

        return use_bf16(self.config.bf16)

    def load_model(self, path: Path) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path))
        if self.config.max_seq_length:
            model.max_seq_length = self.config.max_seq_length
        return model

    def make_evaluator(
        self,
        data: PreparedData,
        is_canceled: Callable[[], bool] = lambda: False,
        judged: JudgedSet | None = None,
    ) -> TaskEvaluator:
        """Held-out clicks over the batch's shown results and, with a judged set, its queries
        over the catalog (or its pool): one encoding of both per evaluation."""
        from clicktune.evaluation.evaluator import TaskEvaluator
        from clicktune.evaluation.evidence import CLICKS, JUDGED, EvidenceSet

        sets = {CLICKS: EvidenceSet(data.test_queries, data.test_qrels, frozenset(data.texts))}
        pool = dict(data.texts)
        if judged is not None:
            sets[JUDGED] = judged.evidence
            pool.update(judged.corpus)
        return TaskEvaluator(
            pool,
            sets,
            main_metric=self.config.main_metric,
            primary_set=JUDGED if judged is not None else CLICKS,
            batch_size=self.config.eval_batch_size,
            is_canceled=is_canceled,
            bf16=self.uses_bf16(),
        )

    def train_dataset(
        self, data: PreparedData, params: Mapping[str, Value], cache_dir: Path
    ) -> Dataset:
        from clicktune.training.datasets import build_train_dataset

        return build_train_dataset(
            data,
            num_hard_negatives=int(params.get("num_hard_negatives", 0)),
            max_repeats=self.config.max_positive_repeats,
            seed=self.config.seed,
            cache_dir=cache_dir,
        )

    def build_loss(
        self, model: SentenceTransformer, params: Mapping[str, Value]
    ) -> torch.nn.Module:
        from sentence_transformers.sentence_transformer import losses

        return getattr(losses, self.config.loss)(model)

    def training_arguments(
        self, params: Mapping[str, Value], output_dir: Path
    ) -> SentenceTransformerTrainingArguments:
        """Trainer arguments: every search-space name that is a training argument is passed on
        (`warmup_ratio` as the ratio form of `warmup_steps`)."""
        from sentence_transformers.base.sampler import BatchSamplers
        from sentence_transformers.sentence_transformer.training_args import (
            SentenceTransformerTrainingArguments,
        )

        names = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)}
        passed = {
            name: value
            for name, value in params.items()
            if name in names and name != "warmup_ratio"
        }
        warmup = float(params.get("warmup_ratio", 0.0) or 0.0)
        if warmup > 0:
            passed["warmup_steps"] = warmup
        from clicktune.device import default_device_type

        bf16 = self.uses_bf16()
        on_cuda = default_device_type() == "cuda"
        return SentenceTransformerTrainingArguments(
            output_dir=str(output_dir),
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            report_to="none",
            logging_steps=1,
            eval_strategy="epoch",
            save_strategy="no",
            save_total_limit=1,
            per_device_eval_batch_size=self.config.eval_batch_size,
            seed=self.config.seed,
            disable_tqdm=True,
            dataloader_pin_memory=on_cuda,
            bf16=bf16,
            use_cpu=bf16 and not on_cuda,
            **passed,
        )

    def evaluate(self, model_dir: Path, evaluator: TaskEvaluator) -> dict[str, float]:
        """The model's metrics on the task's evidence (the baseline uses this)."""
        return evaluator(self.load_model(model_dir))

    def train(
        self,
        start_model: Path,
        data: PreparedData,
        params: Mapping[str, Value],
        run_dir: Path,
        callback: RunCallback,
    ) -> TrainOutcome:
        """Train one run from the starting model; the trained model is saved to `run_dir/model`.

        `callback` carries the run's evaluator and its line to the task (cancel, progress,
        metrics); pass it to `train_model`."""
        from clicktune.training.trainer import train_model

        model = self.load_model(start_model)
        outcome = train_model(
            model,
            self.train_dataset(data, params, run_dir.parent / "datasets"),
            self.build_loss(model, params),
            self.training_arguments(params, run_dir / "checkpoints"),
            callback,
        )
        model.save(str(run_dir / "model"))
        return outcome
