"""The built-in method itself, on the packaged all-MiniLM-L6-v2: one small run, end to end.

SQLite only: the database paths are the same as the tiny-model pipeline tests', which run on
both databases; this one is about the real model (load, train, save, upload, promote).
"""

from __future__ import annotations

import pytest
from sentence_transformers import SentenceTransformer
from sqlalchemy import Engine

from clicktune.methods.default import DefaultFineTuningMethod
from clicktune.settings import Settings
from clicktune.tracking.model_cache import ModelStore
from tests.pipeline_support import (
    Shop,
    claimed_context,
    load_batch,
    load_judged_set,
    with_mlflow_store,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ONE_SMALL_RUN = {
    "learning_rate": 5e-5,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 32,
    "num_hard_negatives": 1,
    "warmup_ratio": 0.0,
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_default_method_runs_on_the_packaged_model(engine: Engine, settings: Settings) -> None:
    settings = with_mlflow_store(settings)
    method = DefaultFineTuningMethod()
    shop = Shop()
    batch = load_batch(engine, shop, shop.sessions(per_query=1))
    golden = load_judged_set(engine, "golden", shop.judgments())
    with claimed_context(
        engine, settings, method.meta.name, batch, ONE_SMALL_RUN, validation_set=golden
    ) as context:
        result = method.run(context)
    assert result.metrics is not None and result.metrics["evidence"] == "judged"
    assert result.mlflow_experiment == f"iteration / Default Fine Tuning Method / {batch}"
    assert 0.0 <= result.metrics["baseline"] <= 1.0
    assert 0.0 <= result.metrics["best"] <= 1.0
    assert result.best_run_id and result.best_model_uri
    folder = ModelStore(settings).task_model_dir(context.task.task_id, result.best_model_uri)
    model = SentenceTransformer(str(folder))
    assert model.encode(["crimson sneaker"]).shape == (1, 384)
