"""Helpers of the pipeline tests: a tiny BERT, a synthetic shop's clickstream, claimed tasks.

The shop's queries use other words than its catalog ("crimson sneaker" → "red shoe"), so a
randomly initialised model ranks badly and one trained on the clicks ranks well, also for held-out
queries (new combinations of words it has seen).
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from clicktune import TaskSpec
from clicktune.ids import new_id
from clicktune.settings import Settings
from clicktune.store import clickstream, items
from clicktune.store import tasks as task_store
from clicktune.store.engine import write_transaction
from clicktune.store.judgments import Judgment, replace_judgment_set
from clicktune.store.tables import tasks
from clicktune.worker.context import WorkerTaskContext

PLUGINS_DIR = Path(__file__).parent / "pipeline_plugins"
TINY_MODEL_ENV = "CLICKTUNE_TEST_TINY_MODEL"
TINY_METHOD = "Tiny Test Method"
BROKEN_METHOD = "Tiny Broken Loss Method"

COLORS = {"crimson": "red", "navy": "blue", "emerald": "green", "ebony": "black", "ivory": "white"}
KINDS = {"sneaker": "shoe", "tee": "shirt", "cap": "hat", "tote": "bag", "parka": "jacket"}
BRANDS = ["acme", "zenith", "orbit"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary() -> list[str]:
    words = [*COLORS, *COLORS.values(), *KINDS, *KINDS.values(), *BRANDS, "by", "in", "cheap"]
    return SPECIAL_TOKENS + sorted(set(words))


def _scratch_dir(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.cache
def tiny_model_path() -> Path:
    """The tiny model, built once per test process; plugins find it through the environment."""
    path = build_tiny_model(_scratch_dir("clicktune-tiny-model-"))
    os.environ[TINY_MODEL_ENV] = str(path)
    return path


@functools.cache
def _mlflow_template() -> Path:
    from mlflow import MlflowClient

    path = _scratch_dir("clicktune-mlflow-template-") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    return path


def with_mlflow_store(settings: Settings) -> Settings:
    """A fresh local MLflow store in the settings' data dir: a copy of one migrated once per
    process (creating MLflow's schema takes seconds, copying it milliseconds)."""
    settings.ensure_data_dir()
    shutil.copyfile(_mlflow_template(), settings.data_dir / "mlflow.db")
    return settings


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT (hidden size 32) with mean pooling, saved as a
    sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    raw = folder / "hf"
    raw.mkdir(parents=True, exist_ok=True)
    words = vocabulary()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(raw))
    tokenizer.save_pretrained(str(raw))
    model_dir = folder / "tiny-bert"
    SentenceTransformer(str(raw), device="cpu").save(str(model_dir))
    return model_dir


@dataclass
class Shop:
    """A catalog of `<color> <kind> by <brand>` items and sessions that click the right one."""

    seed: int = 0
    items: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for color in COLORS.values():
            for kind in KINDS.values():
                for brand in BRANDS:
                    self.items[f"{color}-{kind}-{brand}"] = f"{kind} in {color} by {brand}"

    def item_rows(self) -> list[items.NewItem]:
        return [
            {"object_id": oid, "text": text, "fields": {}, "meta": {}}
            for oid, text in self.items.items()
        ]

    def judgments(self, *, inverted: bool = False) -> list[Judgment]:
        """Every other query's judgments (a task keeps judged queries out of training, so the
        others teach): its exact items grade 3, the same kind in another color 1.
        `inverted`: the exact items 0 and another kind in another color 3 instead, a set on
        which a model trained on the shop's clicks gets worse."""
        rows = []
        for query, color, kind in self.queries()[::2]:
            for oid in sorted(self.items):
                item_color, item_kind, _brand = oid.split("-")
                exact = (item_color, item_kind) == (color, kind)
                if inverted:
                    grade = 0 if exact else 3 if item_kind != kind and item_color != color else -1
                else:
                    grade = 3 if exact else 1 if item_kind == kind else -1
                if grade >= 0:
                    rows.append(Judgment(query, oid, grade))
        return rows

    def interleaved(
        self, sessions: list[dict[str, Any]], winner: str, loser: str, wins_every: int = 4
    ) -> list[dict[str, Any]]:
        """The sessions as interleaved pages: the clicked result is `winner`'s in all but every
        `wins_every`-th session, the other results alternate between the two."""
        pages = []
        for number, session in enumerate(sessions):
            clicked = {e["object_id"] for e in session["events"]}
            target_team = loser if number % wins_every == wins_every - 1 else winner
            results = []
            for position, result in enumerate(session["search_results"]):
                team = (
                    target_team if result["object_id"] in clicked else (winner, loser)[position % 2]
                )
                results.append({**result, "served_by": team})
            pages.append({**session, "search_results": results})
        return pages

    def queries(self) -> list[tuple[str, str, str]]:
        """(query, color, kind) for every combination."""
        return [
            (f"{q_color} {q_kind}", color, kind)
            for q_color, color in COLORS.items()
            for q_kind, kind in KINDS.items()
        ]

    def sessions(self, per_query: int = 2, irrelevant_every: int = 0) -> list[dict[str, Any]]:
        """Import lines: each shows 8 items with a matching one below position 1, clicked (a
        purchase every third time); with `irrelevant_every`, every n-th session is marked
        irrelevant instead."""
        rng = random.Random(self.seed)
        lines = []
        ids = sorted(self.items)
        number = 0
        for query, color, kind in self.queries():
            matching = [oid for oid in ids if oid.startswith(f"{color}-{kind}-")]
            for _ in range(per_query):
                number += 1
                target = rng.choice(matching)
                others = rng.sample([oid for oid in ids if oid not in matching], 7)
                position = rng.randrange(1, 8)
                shown = [*others[:position], target, *others[position:]]
                irrelevant = bool(irrelevant_every) and number % irrelevant_every == 0
                event_type = "purchase" if number % 3 == 0 else "click"
                lines.append(
                    {
                        "session_id": f"s-{self.seed}-{number}",
                        "search_query": query,
                        "search_results": [{"object_id": oid} for oid in shown],
                        "events": []
                        if irrelevant
                        else [{"event_id": "e1", "object_id": target, "event_type": event_type}],
                        "is_irrelevant": irrelevant,
                    }
                )
        return lines


def load_batch(engine: Engine, shop: Shop, sessions: list[dict[str, Any]]) -> str:
    """Store the shop's catalog and the sessions, then release the batch; its id."""
    with write_transaction(engine) as conn:
        items.upsert_items(conn, shop.item_rows())
    lines = [
        clickstream.IncomingSession(
            position=index + 1,
            session={
                "session_id": s["session_id"],
                "search_query": s["search_query"],
                "search_results": [
                    {"object_id": r["object_id"], "rank": None, "meta": {}}
                    | ({"served_by": r["served_by"]} if "served_by" in r else {})
                    for r in s["search_results"]
                ],
                "search_meta": {},
                "user_id": None,
                "created_at": None,
            },
            events=[
                {
                    "event_id": e["event_id"],
                    "object_id": e["object_id"],
                    "event_type": e["event_type"],
                    "created_at": None,
                    "meta": {},
                }
                for e in s["events"]
            ],
            is_irrelevant=s["is_irrelevant"],
        )
        for index, s in enumerate(sessions)
    ]
    with write_transaction(engine) as conn:
        result = clickstream.import_sessions(conn, lines)
    assert not result.errors, result.errors
    with write_transaction(engine) as conn:
        released = clickstream.release_collecting_batch(conn, new_id())
    assert released is not None
    return released["batch_id"]


def load_judged_set(engine: Engine, set_id: str, rows: list[Judgment]) -> str:
    with write_transaction(engine) as conn:
        replace_judgment_set(conn, set_id, rows)
    return set_id


def register_tiny_model(settings: Settings, alias: str, task_id: str, seed: int = 0) -> str:
    """A tiny model (`seed`) logged as a run of the tiny method and made its `alias`
    (champion or challenger), as a task would; returns its served version."""
    from clicktune.tracking.iterations import KIND_TRIAL, MethodTracking
    from clicktune.tracking.registry import AliasMove, served_version

    model = tiny_model_path() if seed == 0 else build_tiny_model(_scratch_dir("tiny-"), seed)
    tracking = MethodTracking(settings, TINY_METHOD, TINY_METHOD)
    start = tracking.initial_run(tiny_model_path)
    iteration = tracking.open_iteration(task_id, f"batch-{task_id}", start)
    run_id = iteration.start_run("run-1", KIND_TRIAL)
    iteration.save_model(run_id, model)
    iteration.finish_run(run_id)
    move = AliasMove(task_id, f"made {alias} by a test", {"evidence": "none"})
    if alias == "champion":
        tracking.registry.promote(run_id, move)
    else:
        tracking.registry.make_challenger(run_id, move)
    return served_version(TINY_METHOD, tracking.registry.version(alias))  # type: ignore[arg-type]


def pipeline_settings(settings: Settings) -> Settings:
    """The test settings with the pipeline plugins folder and a fresh MLflow store."""
    return with_mlflow_store(settings.model_copy(update={"plugins_path": PLUGINS_DIR}))


HARNESS_LEASE_S = 3600.0
"""No heartbeat renews a `claimed_context`'s lease, so it outlasts the test. A task the test left
processing (the worker would have completed it) stops counting as completing on the way out, so
the method's next task does not wait for it."""


@contextmanager
def claimed_context(
    engine: Engine,
    settings: Settings,
    method_name: str,
    batch_id: str,
    hyperparameters: dict[str, Any] | None = None,
    task_id: str | None = None,
    **evidence: Any,
) -> Iterator[WorkerTaskContext]:
    """A task created (or, with `task_id`, taken over) and claimed by a fresh worker id, as the
    worker's own context; the context's work folder is removed on exit as the worker does.
    `evidence`: the task's `validation_set`, `promotion`, `n_trials`."""
    if task_id is None:
        new = task_store.NewTask(
            fine_tuning_method=method_name,
            batch_id=batch_id,
            metadata={},
            hyperparameters=hyperparameters or {},
            idempotency_key=None,
            request_hash=new_id(),
            **evidence,
        )
        with write_transaction(engine) as conn:
            task_id = task_store.create_task(conn, new).task.id
    worker_id = f"test-worker-{new_id()}"
    with write_transaction(engine) as conn:
        claimed = task_store.claim_task(conn, worker_id, lease_s=HARNESS_LEASE_S, max_attempts=10)
    assert claimed is not None and claimed.id == task_id
    spec = TaskSpec(
        task_id=task_id,
        fine_tuning_method=method_name,
        batch_id=batch_id,
        hyperparameters=dict(claimed.hyperparameters),
        attempt=claimed.attempts,
        validation_set=claimed.validation_set,
        promotion=claimed.promotion,
        n_trials=claimed.n_trials,
    )
    with WorkerTaskContext(spec, settings, engine, worker_id) as context:
        yield context
    with write_transaction(engine) as conn:  # see HARNESS_LEASE_S
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.lease_owner == worker_id)
            .values(completing_at=None)
        )
