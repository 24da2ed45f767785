"""The text-to-text embedding method family: configuration and the hooks a plugin overrides.

`run` is the standard iteration (`methods/iteration.py`), which drives these hooks; a plugin
subclasses `EmbeddingFineTuningMethod` (or the default method), sets `meta` and `config`, and
overrides only what differs: the initial model, where item texts come from, how a session becomes
labels, the loss, the training arguments. The API imports this module, so torch and friends are
imported inside the hooks, never at module level.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clicktune.evaluation.metrics import METRIC_NAMES
from clicktune.methods.base import FineTuningMethod, TaskContext, TaskResult
from clicktune.methods.iteration import run_iteration
from clicktune.training.examples import LabelConfig, PreparedData, SessionLabels, label_session
from clicktune.training.search_space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    ParamSpec,
    Value,
    describe_space,
    validate_params,
)

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.training_args import (
        SentenceTransformerTrainingArguments,
    )

    from clicktune.evaluation.evaluator import TaskEvaluator
    from clicktune.methods.judged import JudgedSet
    from clicktune.training.trainer import RunCallback, TrainOutcome


def default_search_space() -> dict[str, ParamSpec]:
    """Where click-trained MiniLM gains on public collections (bench/RESULTS.md, recipe search):
    below 3e-5 a run barely moves from the base model, above 2e-4 it forgets; no skipped result
    as a negative loses, three cost twice the time for no gain."""
    return {
        "learning_rate": FloatParam(3e-5, 2e-4, log=True),
        "num_train_epochs": IntParam(1, 2),
        "per_device_train_batch_size": CategoricalParam((32, 64)),
        "num_hard_negatives": CategoricalParam((1, 2)),
        "warmup_ratio": FloatParam(0.0, 0.2),
    }


def default_first_trials() -> tuple[dict[str, Value], ...]:
    return (
        {
            "learning_rate": 1e-4,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 32,
            "num_hard_negatives": 1,
            "warmup_ratio": 0.1,
        },
    )


def default_event_weights() -> dict[str, float]:
    return {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass(frozen=True)
class EmbeddingMethodConfig:
    """Everything a text-to-text method decides, in one place (PIPELINE.md)."""

    search_space: Mapping[str, ParamSpec] = field(default_factory=default_search_space)
    n_trials: int = 4
    top_k: int = 3
    """Parameter sets of the previous iteration tried first."""
    first_trials: tuple[Mapping[str, Value], ...] = field(default_factory=default_first_trials)
    """Parameter sets tried first when there is no previous iteration (then TPE goes on);
    sets that do not fit the search space are left out."""
    seed: int = 42
    """Seeds the split, the sampler (TPE) and training."""
    loss: str = "MultipleNegativesRankingLoss"
    """A loss class of `sentence_transformers.sentence_transformer.losses` built from the model."""
    event_weights: Mapping[str, float] = field(default_factory=default_event_weights)
    default_event_weight: float = 1.0
    test_fraction: float = 0.2
    min_labelled_queries: int = 10
    main_metric: str = "ndcg_at_10"
    min_gain: float = 0.0
    """Promote only when the lower bound of the gain's 95 % interval on the judged set is above
    this (EVALUATION.md)."""
    position_bias_eta: float | None = None
    """Weight positives by position**eta (inverse examination propensity); None: off."""
    item_fields: tuple[str, ...] = ()
    """Item `fields` joined (in this order) before the item's `text`; empty: the text, or every
    field when an item has no text."""
    max_seq_length: int | None = None
    """Token limit of the model while training and serving; None: the model's own."""
    registered_model_name: str | None = None
    """MLflow registered model name; None: the method's name."""
    max_positive_repeats: int = 10
    """A positive of weight w is trained on round(w) times, at most this many."""
    bf16: bool | None = None
    """bfloat16 mixed precision in training and evaluation; None: where the device has it
    natively (about twice as fast on such a CPU)."""
    checkpoint_every_s: float | None = 300.0
    """Save a resumable checkpoint this often while training; None: never."""
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.main_metric not in METRIC_NAMES:
            raise ValueError(f"main_metric must be one of {METRIC_NAMES}, got {self.main_metric!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError("test_fraction must be between 0 and 1")
        if self.n_trials < 1 or self.top_k < 0:
            raise ValueError("n_trials must be at least 1 and top_k at least 0")


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
        """The standard iteration (PIPELINE.md's eight steps) with this method's hooks."""
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
