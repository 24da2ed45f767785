"""Training overhead: a task run's training examples/s against a bare SentenceTransformerTrainer.

Data: the product search collection esci_us_srw150 (../shared/data). For each of the first
`--queries` queries, one session shows up to 10 of its judged products (shuffled, seeded) and
clicks the Exact ones (grade 3); the products' titles go into the catalog (short texts: many
steps, so per-step overhead shows); the batch is released. A task
with the default method (the packaged all-MiniLM-L6-v2) and every hyperparameter fixed, so it has
one run, goes through the real pipeline (`run_iteration` with the worker's task context, MLflow
and all); its run logs `train_examples_per_s` (training rows times epochs over the training loop's
time, its evaluations left out). The reference, in the same process: the same training rows
(`build_train_dataset`) and the same `SentenceTransformerTrainingArguments` (evaluation off) given
to a bare `SentenceTransformerTrainer` with the same loss and starting model. Task and bare runs
alternate `--repeats` times; the ratio compares the best of each (the least disturbed by other
load on the machine) and their means. Goal (docs/benchmarks.md §2): task / bare ≥ 0.9.

    python bench/training_overhead.py [--queries 150] [--epochs 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recording import RESULTS, git_commit, machine

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT.parent / "shared" / "data" / "esci_us_srw150"


def load_clickstream(queries: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, import lines) for the first `queries` queries that have an Exact product."""
    texts = {}
    with (COLLECTION / "queries.jsonl").open() as lines:
        query_text = {q["id"]: q["text"] for q in map(json.loads, lines)}
    judged: dict[str, dict[str, int]] = {}
    with (COLLECTION / "qrels.tsv").open() as lines:
        next(lines)
        for line in lines:
            qid, doc, grade = line.rstrip("\n").split("\t")
            judged.setdefault(qid, {})[doc] = int(grade)
    chosen = [q for q in sorted(judged) if 3 in judged[q].values()][:queries]
    wanted = {doc for q in chosen for doc in judged[q]}
    with (COLLECTION / "corpus.jsonl").open() as lines:
        for doc in map(json.loads, lines):
            if doc["id"] in wanted:
                texts[doc["id"]] = doc["title"].strip()
    rng = random.Random(seed)
    sessions = []
    for qid in chosen:
        shown = [doc for doc in judged[qid] if doc in texts][:10]
        rng.shuffle(shown)
        sessions.append(
            {
                "session_id": f"bench-{qid}",
                "search_query": query_text[qid],
                "search_results": shown,
                "clicks": [doc for doc in shown if judged[qid][doc] == 3],
            }
        )
    items = [{"object_id": doc, "text": texts[doc], "fields": {}, "meta": {}} for doc in wanted]
    return [i for i in items if i["object_id"] in texts], sessions


def store_batch(engine: Any, items: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> str:
    from clicktune.ids import new_id
    from clicktune.store import clickstream
    from clicktune.store import items as item_store
    from clicktune.store.engine import write_transaction

    with write_transaction(engine) as conn:
        item_store.upsert_items(conn, items)
    lines = [
        clickstream.IncomingSession(
            position=n,
            session={
                "session_id": s["session_id"],
                "search_query": s["search_query"],
                "search_results": [
                    {"object_id": doc, "rank": None, "meta": {}} for doc in s["search_results"]
                ],
                "search_meta": {},
                "user_id": None,
                "created_at": None,
            },
            events=[
                {
                    "event_id": f"click-{k}",
                    "object_id": doc,
                    "event_type": "click",
                    "created_at": None,
                    "meta": {},
                }
                for k, doc in enumerate(s["clicks"])
            ],
        )
        for n, s in enumerate(sessions, start=1)
    ]
    with write_transaction(engine) as conn:
        assert not clickstream.import_sessions(conn, lines).errors
        released = clickstream.release_collecting_batch(conn, new_id())
    assert released is not None
    return released["batch_id"]


def bare_run(method: Any, data: Any, params: dict[str, Any], folder: Path) -> dict[str, float]:
    """The same rows, arguments, loss and starting model through a bare trainer."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers.trainer_utils import IntervalStrategy

    dataset = method.train_dataset(data, params, folder / "datasets")
    model = method.load_model(method.initial_model_path())
    args = method.training_arguments(params, folder / "bare")
    args.eval_strategy = IntervalStrategy.NO
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=method.build_loss(model, params)
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    shutil.rmtree(folder / "bare", ignore_errors=True)
    examples = len(dataset) * float(params["num_train_epochs"])
    return {"examples": examples, "seconds": seconds, "per_s": examples / seconds}


def task_run(
    engine: Any, settings: Any, batch_id: str, params: dict[str, Any], data_dir: Path
) -> Any:
    """Create, claim and run the task as a worker does; returns (context, run metrics, result)."""
    from clicktune import DefaultFineTuningMethod, TaskSpec
    from clicktune.store import tasks as task_store
    from clicktune.store.engine import write_transaction
    from clicktune.tracking.client import make_client
    from clicktune.worker.context import WorkerTaskContext

    method = DefaultFineTuningMethod()
    new = task_store.NewTask(method.meta.name, batch_id, {}, params, None, "bench")
    with write_transaction(engine) as conn:
        task = task_store.create_task(conn, new).task
        claimed = task_store.claim_task(conn, "bench-worker", lease_s=3600, max_attempts=1)
    assert claimed is not None and claimed.id == task.id
    spec = TaskSpec(task.id, method.meta.name, batch_id, dict(params))
    context = WorkerTaskContext(spec, settings, engine, "bench-worker")
    with context:
        result = method.run(context)
        data = method.prepare_data(context, data_dir)
    run = make_client(settings).get_run(result.best_run_id)
    return method, data, run.data.metrics, result


def _row(name: str, rates: list[float]) -> str:
    each = ", ".join(f"{rate:.2f}" for rate in rates)
    return f"| {name} | {each} | {max(rates):.2f} | {statistics.mean(rates):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=150, help="sessions (one per query)")
    parser.add_argument("--repeats", type=int, default=2, help="task and bare runs, alternating")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, choices=(32, 64), default=32)
    parser.add_argument("--hard-negatives", type=int, choices=(1, 2), default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work-dir", type=Path, default=ROOT / "bench" / ".work" / "training_overhead"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    from clicktune.settings import Settings
    from clicktune.store.engine import make_engine, migrate

    shutil.rmtree(args.work_dir, ignore_errors=True)
    settings = Settings(data_dir=args.work_dir / "data")
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    items, sessions = load_clickstream(args.queries, args.seed)
    batch_id = store_batch(engine, items, sessions)
    params = {
        "learning_rate": 3e-5,
        "num_train_epochs": args.epochs,
        "per_device_train_batch_size": args.batch_size,
        "num_hard_negatives": args.hard_negatives,
        "warmup_ratio": 0.1,
    }
    tasks: list[dict[str, Any]] = []
    bare: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        method, data, metrics, result = task_run(
            engine, settings, batch_id, params, args.work_dir / f"bare-data-{repeat}"
        )
        tasks.append(
            {
                "per_s": metrics["train_examples_per_s"],
                "seconds": time.perf_counter() - started,
                "result": result,
            }
        )
        bare.append(bare_run(method, data, params, args.work_dir))
    task_rates = [t["per_s"] for t in tasks]
    bare_rates = [b["per_s"] for b in bare]
    best = max(task_rates) / max(bare_rates)
    mean = statistics.mean(task_rates) / statistics.mean(bare_rates)
    table = [
        "| measure | training examples/s, each run | best | mean |",
        "|---|---|---|---|",
        _row("bare SentenceTransformerTrainer", bare_rates),
        _row("task run (`train_examples_per_s` of its MLflow run)", task_rates),
        f"| **task / bare** (goal ≥ 0.9) | | **{best:.2f}** "
        f"({'met' if best >= 0.9 else 'not met'}) | {mean:.2f} |",
    ]
    result = tasks[-1]["result"]
    task_seconds = tasks[-1]["seconds"]
    print("\n".join(table))
    print(
        f"task: {task_seconds:.0f} s in all (baseline, training, evaluation, MLflow), "
        f"{data.stats.train_positives} training positives, {len(data.texts)} items in the pool, "
        f"best ndcg_at_10 {result.metrics['best']:.4f} vs baseline {result.metrics['baseline']:.4f}"
    )
    engine.dispose()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    if args.no_record:
        return
    with RESULTS.open("a") as out:
        out.write(
            f"\n## Training overhead — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"- command: `{' '.join(['python', f'bench/{Path(__file__).name}', *sys.argv[1:]])}`\n"
            f"- commit: {git_commit()}\n"
            f"- machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the "
            f"end, torch threads {_threads()}\n"
            f"- data: esci_us_srw150, {len(sessions)} sessions (one per query, Exact products "
            f"clicked), {len(data.texts)} items; default method, packaged all-MiniLM-L6-v2, "
            f"params {json.dumps(params)}; {data.stats.train_positives} training positives\n"
            "- task run = the whole pipeline with the worker's context; its throughput leaves its "
            "evaluations out. Bare = same rows, arguments (evaluation off), loss and starting "
            f"model. Task and bare runs alternate, {args.repeats} of each.\n\n"
            + "\n".join(table)
            + "\n"
        )
    print(f"appended to {RESULTS}")


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
