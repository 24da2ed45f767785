"""Training rows `(anchor, positive, negative_1…negative_k)` as a memory-mapped Arrow dataset.

Rows are written to an Arrow stream file in record batches and opened with `Dataset.from_file`,
so a large batch does not have to fit in memory. One file per number of hard negatives, reused by
every run (and every attempt) that asks for the same number.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clicktune.training.examples import PreparedData

if TYPE_CHECKING:
    import pyarrow as pa
    from datasets import Dataset

WRITE_BATCH = 1000


def column_names(num_hard_negatives: int) -> list[str]:
    return ["anchor", "positive", *(f"negative_{i + 1}" for i in range(num_hard_negatives))]


def training_rows(
    data: PreparedData, num_hard_negatives: int, max_repeats: int, seed: int
) -> Iterator[list[str]]:
    """Rows of the train split in file order; a positive of weight w appears round(w) times
    (at least once, at most `max_repeats`). Missing hard negatives are filled with random
    results of the batch."""
    rng = random.Random(f"{seed}:{num_hard_negatives}")
    pool = sorted(data.texts)
    texts = data.texts
    for key, query, object_id, _gain, weight, negatives in data.iter_examples(test=False):
        chosen: list[str] = []
        if num_hard_negatives:
            extra = data.irrelevant_negatives.get(key, ())
            for oid in (*negatives, *extra):
                if len(chosen) == num_hard_negatives:
                    break
                if oid != object_id and oid not in chosen:
                    chosen.append(oid)
            tries = 0
            while len(chosen) < num_hard_negatives and tries < 20 * num_hard_negatives:
                tries += 1
                oid = pool[rng.randrange(len(pool))]
                if oid != object_id and oid not in chosen:
                    chosen.append(oid)
            if len(chosen) < num_hard_negatives:
                continue
        row = [query, texts[object_id], *(texts[oid] for oid in chosen)]
        for _ in range(min(max_repeats, max(1, round(weight)))):
            yield row


def build_train_dataset(
    data: PreparedData, num_hard_negatives: int, max_repeats: int, seed: int, cache_dir: Path
) -> Dataset:
    """The run's training dataset (see the module docstring)."""
    import pyarrow as pa
    from datasets import Dataset

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"train-{num_hard_negatives}neg-{max_repeats}rep-{seed}.arrow"
    columns = column_names(num_hard_negatives)
    if not path.exists():
        schema = pa.schema([(name, pa.string()) for name in columns])
        partial = path.with_suffix(".partial")
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            batch: list[list[str]] = []
            for row in training_rows(data, num_hard_negatives, max_repeats, seed):
                batch.append(row)
                if len(batch) >= WRITE_BATCH:
                    writer.write_batch(_record_batch(batch, schema))
                    batch = []
            if batch:
                writer.write_batch(_record_batch(batch, schema))
        partial.rename(path)
    dataset = Dataset.from_file(str(path))
    if len(dataset) == 0:
        raise ValueError(
            f"no training rows with {num_hard_negatives} hard negatives: the batch shows only "
            f"{len(data.texts)} distinct results with content"
        )
    return dataset


def _record_batch(rows: list[list[str]], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(
        [pa.array([row[i] for row in rows], pa.string()) for i in range(len(rows[0]))],
        schema=schema,
    )
