"""What a text-to-text embedding method decides, in one place: its search space, how many runs,
how sessions become labels, and what a promotion needs. Cheap to import (no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from clicktune.evaluation.metrics import METRIC_NAMES
from clicktune.training.search_space import CategoricalParam, FloatParam, IntParam, ParamSpec, Value


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
    """Everything a text-to-text method decides, in one place (the iteration reads it)."""

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
    this (docs/evaluation.md)."""
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
