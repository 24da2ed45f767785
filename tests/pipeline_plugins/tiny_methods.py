"""Test methods on a tiny randomly initialised BERT (path in CLICKTUNE_TEST_TINY_MODEL).

Loaded through CLICKTUNE_PLUGINS_PATH. Learning rates are large and the search space small so a
run trains in a second or two; the learning rate may be 0 (a run that cannot beat its baseline).
Checkpoints are frequent, so a killed worker leaves one to resume from.
"""

from __future__ import annotations

import os
from pathlib import Path

from clicktune import (
    CategoricalParam,
    DefaultFineTuningMethod,
    EmbeddingMethodConfig,
    FloatParam,
    IntParam,
    MethodMeta,
)

TINY_SPACE = {
    "learning_rate": FloatParam(0.0, 0.01),
    "num_train_epochs": IntParam(1, 3),
    "per_device_train_batch_size": CategoricalParam((4, 8)),
    "num_hard_negatives": CategoricalParam((0, 1, 2)),
    "warmup_ratio": FloatParam(0.0, 0.2),
}


class TinyFineTuningMethod(DefaultFineTuningMethod):
    meta = MethodMeta(
        name="Tiny Test Method", version="1.0", description="The default method on a tiny BERT."
    )
    config = EmbeddingMethodConfig(
        search_space=TINY_SPACE,
        n_trials=2,
        top_k=1,
        min_labelled_queries=5,
        eval_batch_size=128,
        checkpoint_every_s=1.0,
    )

    def initial_model_path(self) -> Path:
        return Path(os.environ["CLICKTUNE_TEST_TINY_MODEL"])

    def base_model_name(self) -> str:
        return "tiny-bert (tests)"


class BrokenLossMethod(TinyFineTuningMethod):
    """Every run fails: its loss does not exist."""

    meta = MethodMeta(
        name="Tiny Broken Loss Method", version="1.0", description="Every run fails (tests)."
    )
    config = EmbeddingMethodConfig(
        search_space=TINY_SPACE, n_trials=2, min_labelled_queries=5, loss="NoSuchLoss"
    )
