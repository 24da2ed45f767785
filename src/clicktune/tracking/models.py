"""How a model lives in MLflow: a run's `model/`, in MLflow's sentence_transformers flavour.

`mlflow.sentence_transformers.load_model("runs:/<run>/model")` (or `models:/<name>@champion`)
loads it; the plain sentence-transformers folder inside it is what clicktune serves and zips.
Models logged before the flavour (a plain folder as `model/`) are still read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

MODEL_PATH = "model"
SENTENCE_TRANSFORMER_DIR = "model.sentence_transformer"
"""Where the flavour keeps the sentence-transformers folder (`mlflow.sentence_transformers`)."""


def model_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{MODEL_PATH}"


def log_sentence_transformer(client: MlflowClient, run_id: str, folder: Path) -> None:
    """Log a local sentence-transformers folder as the run's `model/`, in the flavour."""
    import mlflow.sentence_transformers
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    requirements = [
        f"sentence-transformers=={sentence_transformers.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
    ]
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    with tempfile.TemporaryDirectory(prefix="clicktune-model-") as staging:
        saved = Path(staging) / MODEL_PATH
        mlflow.sentence_transformers.save_model(model, str(saved), pip_requirements=requirements)
        client.log_artifacts(run_id, str(saved), MODEL_PATH)


def sentence_transformer_dir(downloaded: Path) -> Path:
    """The sentence-transformers folder of a downloaded `model/`."""
    inside = downloaded / SENTENCE_TRANSFORMER_DIR
    return inside if (downloaded / "MLmodel").is_file() and inside.is_dir() else downloaded
