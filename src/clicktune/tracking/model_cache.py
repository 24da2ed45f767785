"""Models for serving: local folders of a task's best model and of a method's champion and
challenger, their zips, and the loaded models the embeddings endpoint answers with.

Downloads from MLflow land in `<data dir>/cache/models/` once and are reused: a task's best model
and a registered version never change. Several API processes may share the folder; each download
goes to a private staging folder first and is renamed into place. Loaded models stay in memory a
few at a time; where a method's aliases point is re-checked in the registry at most every
`embeddings_champion_ttl_s` seconds, so a new promotion is served without a restart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clicktune.settings import Settings
from clicktune.tracking.client import make_client
from clicktune.tracking.iterations import method_id
from clicktune.tracking.models import model_uri, sentence_transformer_dir
from clicktune.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    Alias,
    alias_version,
    served_version,
    task_version,
)

if TYPE_CHECKING:
    import numpy as np
    from mlflow.entities.model_registry import ModelVersion
    from sentence_transformers import SentenceTransformer

ModelLoader = Callable[[Path], "SentenceTransformer"]
"""How a model folder becomes a loaded model (a method's own `load_model`, its token limit)."""

_lock = threading.Lock()


class ModelStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = settings.data_dir.resolve() / "cache" / "models"

    def task_model_dir(self, task_id: str, best_model_uri: str) -> Path:
        """The task's best model as a sentence-transformers folder (downloaded on first use)."""
        return sentence_transformer_dir(self._cached(f"task-{task_id}", best_model_uri))

    def task_model_zip(self, task_id: str, best_model_uri: str) -> Path:
        """A zip of the task's best model folder, its files at the top level."""
        archive = self.cache_dir / f"task-{task_id}.zip"
        if archive.exists():
            _touch(archive)
            return archive
        folder = self.task_model_dir(task_id, best_model_uri)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as staging:
            built = shutil.make_archive(str(Path(staging) / "model"), "zip", root_dir=folder)
            Path(built).replace(archive)
        self._prune(keep={archive, folder})
        return archive

    def alias(self, registered_model_name: str, alias: Alias) -> ModelVersion | None:
        return alias_version(make_client(self.settings), registered_model_name, alias)

    def version_model_dir(self, registered_model_name: str, version: ModelVersion) -> Path:
        """A registered version as a sentence-transformers folder (downloaded on first use)."""
        name = f"{method_id(registered_model_name)}-v{version.version}"
        return sentence_transformer_dir(self._cached(name, model_uri(version.run_id)))

    def _cached(self, name: str, artifact_uri: str) -> Path:
        import mlflow.artifacts

        target = self.cache_dir / name
        if target.is_dir():
            _touch(target)
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _lock, tempfile.TemporaryDirectory(dir=self.cache_dir) as staging:
            if target.is_dir():
                return target
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=staging,
                tracking_uri=self.settings.effective_mlflow_tracking_uri,
            )
            try:
                Path(downloaded).rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        self._prune(keep={target})
        return target

    def _prune(self, keep: set[Path]) -> None:
        """Remove the least recently used models and zips until the cache fits
        `model_cache_bytes` (each use touches its entry); `keep` and downloads in progress
        stay. A loaded model does not need its folder any more."""
        entries = [p for p in self.cache_dir.iterdir() if not p.name.startswith("tmp")]
        sizes = {entry: _size(entry) for entry in entries}
        total = sum(sizes.values())
        for entry in sorted(entries, key=_last_used):
            if total <= self.settings.model_cache_bytes:
                return
            if entry in keep or any(entry in k.parents for k in keep):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            total -= sizes[entry]


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _last_used(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Served:
    """A loaded model and the version it is (what a session's `served_by` names)."""

    version: str
    model: SentenceTransformer
    lock: threading.Lock
    """One request at a time per loaded model: its fast tokenizer keeps padding and truncation
    settings as shared state, and concurrent calls that change them corrupt each other's batch
    (torch uses every core for one call anyway)."""

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """The texts' vectors (as `encode` gives them) and the tokens they took."""
        with self.lock:
            vectors = self.model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
            encoded = self.model.tokenizer(
                texts, truncation=True, max_length=self.model.max_seq_length
            )
        return vectors, sum(len(ids) for ids in encoded["input_ids"])


class ServedModels:
    """Loaded models by folder (least recently used go first), and where each registered
    model's aliases point (trusted for `embeddings_champion_ttl_s`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ModelStore(settings)
        self._models: OrderedDict[Path, tuple[SentenceTransformer, threading.Lock]] = OrderedDict()
        self._aliases: dict[tuple[str, Alias], tuple[float, ModelVersion | None]] = {}
        self._lock = threading.Lock()

    def version(self, registered_model_name: str, alias: Alias) -> ModelVersion | None:
        """The registered version `alias` points at (None: no such alias now)."""
        key = (registered_model_name, alias)
        checked = self._aliases.get(key)
        ttl = self.settings.embeddings_champion_ttl_s
        if checked is None or time.monotonic() - checked[0] > ttl:
            checked = (time.monotonic(), self.store.alias(registered_model_name, alias))
            self._aliases[key] = checked
        return checked[1]

    def versions(self, registered_model_name: str) -> dict[Alias, str | None]:
        """The served versions of the champion and the challenger, without loading either."""
        champion = self.version(registered_model_name, CHAMPION)
        challenger = self.version(registered_model_name, CHALLENGER)
        return {
            CHAMPION: served_version(registered_model_name, champion),
            CHALLENGER: None
            if challenger is None
            else served_version(registered_model_name, challenger),
        }

    def alias(
        self,
        registered_model_name: str,
        alias: Alias,
        initial_model: Callable[[], Path],
        load: ModelLoader,
    ) -> Served | None:
        """The model `alias` points at; the champion before any promotion is the initial model,
        a challenger before any is None."""
        version = self.version(registered_model_name, alias)
        if version is None:
            if alias != CHAMPION:
                return None
            folder = Path(initial_model())
        else:
            folder = self.store.version_model_dir(registered_model_name, version)
        return Served(served_version(registered_model_name, version), *self._load(folder, load))

    def task_model(self, task_id: str, best_model_uri: str) -> Served:
        """A task's best model, as `SentenceTransformer(folder)` loads it."""
        folder = self.store.task_model_dir(task_id, best_model_uri)
        return Served(task_version(task_id), *self._load(folder, _plain_load))

    def _load(self, folder: Path, load: ModelLoader) -> tuple[SentenceTransformer, threading.Lock]:
        with self._lock:
            model = self._models.get(folder)
            if model is None:
                model = (load(folder), threading.Lock())
                self._models[folder] = model
                while len(self._models) > max(1, self.settings.embeddings_cached_models):
                    self._models.popitem(last=False)
            self._models.move_to_end(folder)
            return model


def _plain_load(folder: Path) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder))
