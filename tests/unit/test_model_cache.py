"""The downloaded-model cache stays under `model_cache_bytes`, dropping least recently used."""

from __future__ import annotations

import os
from pathlib import Path

from clicktune.settings import Settings
from clicktune.tracking.model_cache import ModelStore


def _model(root: Path, name: str, size: int) -> str:
    folder = root / "artifacts" / name
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\0" * size)
    return str(folder)


def _age(path: Path, seconds_ago: float) -> None:
    stamp = path.stat().st_mtime - seconds_ago
    os.utime(path, (stamp, stamp))


def test_least_recently_used_models_go_first(tmp_path: Path) -> None:
    store = ModelStore(Settings(data_dir=tmp_path, model_cache_bytes=2500))
    first = store.task_model_dir("a", _model(tmp_path, "a", 1000))
    second = store.task_model_dir("b", _model(tmp_path, "b", 1000))
    _age(first, 20)
    _age(second, 10)
    assert store.task_model_dir("a", "unused: already cached") == first  # a used again
    third = store.task_model_dir("c", _model(tmp_path, "c", 1000))
    assert first.is_dir() and third.is_dir()
    assert not second.exists()


def test_a_model_larger_than_the_cache_is_still_served(tmp_path: Path) -> None:
    store = ModelStore(Settings(data_dir=tmp_path, model_cache_bytes=100))
    big = store.task_model_dir("big", _model(tmp_path, "big", 1000))
    assert (big / "weights.bin").stat().st_size == 1000
    archive = store.task_model_zip("big", "unused: already cached")
    assert archive.is_file() and big.is_dir()
    assert not any(p.name.startswith("tmp") for p in store.cache_dir.iterdir())
