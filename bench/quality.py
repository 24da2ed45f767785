"""Quality: does fine-tuning on simulated clicks improve full-corpus retrieval, and does each
decision hold against the judged truth? (docs/benchmarks.md §1)

For each collection:
  1. split the queries (scifact: its own split; others: seeded 2/3 train, 1/3 test);
  2. simulate `--sessions-per-query` sessions per train query with the base model serving
     (position-based click model);
  3. judged: on a fresh service (`clicktune up`, free ports, fresh data dir) with the corpus as its
     catalog, the sessions sent over REST, a judged set of `--judged-queries` TRAIN queries (their
     qrels; never a test query), one default-method task: the method's search, selected and
     decided on judged evidence;
  4. online, on a second fresh service with the same sessions: a task without a judged set (one
     run of the method's first trial; its model becomes the challenger), then interleaved traffic
     between the champion (the base model) and that challenger (`/clickstream/interleave`, the
     same click model, `--sessions-per-query` per train query), then a second task, which decides
     about the challenger from that traffic before it trains;
  5. measure nDCG@10 (graded), Recall@100 and MRR@10 on the held-out test queries over the whole
     corpus for: base, BM25 (bm25s), naive (plain MultipleNegativesRankingLoss on (query, clicked
     document) pairs of the first log, default arguments, one epoch), oracle (the default method's
     recipe with the judged task's best parameters on the true qrels of the train queries), each
     task's best model, and the model the service serves after each decision.
Every decision (promoted / challenger / kept / retired, with its interval) is printed next to the
judged test truth: the test nDCG@10 of the model decided about minus that of the one it would
replace. Every model is measured the same way: the same token limit (`--max-seq-length`, the
base model's 256 by default) and precision (bfloat16 where the CPU has it natively). Corpus
encodings are cached under bench/.work/cache by model and corpus.

    python bench/quality.py [--collection esci_us_srw150|scifact|all] [--quick] [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clicktune.client import ClicktuneClient
from clicktune.device import native_bf16
from clicktune.evaluation.retrieval import Bm25Retriever, DenseRetriever, retrieval_metrics
from clicktune.ids import new_id
from clicktune.simulate.arms import interleave_serve, load_arms
from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.collection import Collection, load_collection
from clicktune.simulate.senders import load_items, send_sessions
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.simulate.serving import CorpusEncoding, bundled_collection_path, packaged_base_model
from clicktune.simulate.sessions import SimulatedSession, served_sessions, simulate_sessions
from clicktune.tuning.config import default_first_trials
from recording import RESULTS, append_section, git_commit, machine

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
DATA_ROOT = ROOT.parent / "shared" / "data"
COLLECTIONS = ("esci_us_srw150", "scifact")
METHOD = "Default Fine Tuning Method"
DECISION_TOLERANCE = 0.005
DECISION_GAIN = 0.01
JUDGED_QUERIES = 50
ORACLE_SHARE = 0.70
TIME_GOAL_S = 20 * 60
QUICK_QUERIES = (30, 15)
QUICK_DISTRACTORS = 500

console = Console(highlight=False)


# --- the service ------------------------------------------------------------------------------


@contextmanager
def running_service(data_dir: Path) -> Iterator[ClicktuneClient]:
    """`clicktune up` on free ports with a fresh data dir; stopped (SIGTERM) on exit."""
    env = instance_env(data_dir, log_level="WARNING")
    url = local_url(env)
    with (
        running("up", {**env, "CLICKTUNE_PUBLIC_URL": url}, url, log=data_dir / "service.log"),
        ClicktuneClient(url, timeout=120.0) as client,
    ):
        yield client


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Line:
    name: str
    metrics: dict[str, float]
    seconds: float | None = None
    note: str = ""


@dataclass
class Bench:
    collection: Collection
    train: list[str]
    test: list[str]
    encoding: CorpusEncoding
    lines: list[Line] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def measure(self, retriever: DenseRetriever | Bm25Retriever) -> dict[str, float]:
        """The retriever's metrics on the held-out test queries over the whole corpus."""
        held_out = self.collection.query_texts(self.test)
        return retrieval_metrics(retriever, held_out, self.collection.qrels)

    def measure_model(self, model_dir: Path) -> dict[str, float]:
        return self.measure(self.retriever(model_dir))

    def retriever(self, model_dir: Path) -> DenseRetriever:
        return self.encoding.retriever(model_dir, self.collection)

    def add(self, line: Line) -> None:
        self.lines.append(line)
        m = line.metrics
        console.print(
            f"  {line.name:<22} nDCG@10 {m['ndcg_at_10']:.4f}  R@100 {m['recall_at_100']:.4f}  "
            f"MRR@10 {m['mrr_at_10']:.4f}" + (f"  ({line.seconds:.0f} s)" if line.seconds else "")
        )

    def simulate(
        self, model_dir: Path, seed: int, sessions_per_query: int
    ) -> list[SimulatedSession]:
        retriever = self.retriever(model_dir)
        model = PositionBasedClickModel(self.collection.max_grade)
        return list(
            simulate_sessions(
                self.collection,
                self.train,
                retriever.search,
                model,
                sessions_per_query=sessions_per_query,
                seed=seed,
                session_prefix=f"bench-{new_id()[:8]}",
            )
        )


@dataclass
class Decision:
    """A decision beside the judged test truth: the test nDCG@10 of the model it was about minus
    that of the model it would replace."""

    label: str
    outcome: str
    """promoted | challenger | kept | retired"""
    evidence: str
    detail: str
    truth: float
    minutes: float

    @property
    def correct(self) -> bool:
        """docs/benchmarks.md §1: nothing promoted worse than what it replaces by more than 0.005;
        a candidate better by 0.01 or more promoted on judged evidence or after the A/B step,
        and a worse challenger retired there."""
        if self.outcome == "promoted":
            return self.truth >= -DECISION_TOLERANCE
        if self.outcome == "retired":
            return self.truth < DECISION_GAIN
        if self.evidence == "online":  # kept: neither clearly better nor clearly worse
            return -DECISION_TOLERANCE < self.truth < DECISION_GAIN
        return self.evidence != "judged" or self.truth < DECISION_GAIN

    def row(self) -> tuple[str, ...]:
        return (
            self.label,
            self.outcome,
            self.evidence,
            self.detail,
            f"{self.truth:+.4f}",
            "yes" if self.correct else "NO",
            f"{self.minutes:.1f}",
        )

    @classmethod
    def of_task(cls, label: str, task: Mapping[str, Any], truth: float) -> Decision:
        """The task's decision about its own best model."""
        metrics = task["metrics"]
        outcome = "promoted" if task["promoted"] else "challenger" if task["challenger"] else "kept"
        detail = "—"
        if metrics.get("evidence") == "judged":
            low, high = metrics["gain_interval"]
            detail = (
                f"{metrics['gain']:+.4f} [{low:+.4f}, {high:+.4f}] on {metrics['queries']} queries"
            )
        return cls(label, outcome, metrics["evidence"], detail, truth, task["wall_s"] / 60)

    @classmethod
    def of_online(cls, label: str, task: Mapping[str, Any], truth: float) -> Decision:
        """What the task decided about the challenger from live traffic, before training."""
        online = task["metrics"]["online"]
        part = online["interleaving"] if online["decided_by"] == "interleaving" else online["ab"]
        detail = online["verdict"]
        if part and part.get("interval"):
            low, high = part["interval"]
            if online["decided_by"] == "interleaving":
                detail = (
                    f"won {part['wins']} of {part['wins'] + part['losses']}, share "
                    f"{part['share']:.3f} [{low:.3f}, {high:.3f}]"
                )
            else:
                detail = f"{part['metric']} {part['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
        return cls(label, online["decision"], "online", detail, truth, task["wall_s"] / 60)


DECISION_HEADERS = (
    "decision of",
    "decision",
    "evidence",
    "gain or share [95 % interval]",
    "test Δ (candidate vs what it replaces)",
    "right",
    "min",
)


def run_task(client: ClicktuneClient, label: str, **fields: Any) -> dict[str, Any]:
    """Create a default-method task and follow it to the end."""
    started = time.monotonic()
    task = client.create_task(
        METHOD,
        idempotency_key=new_id(),
        metadata={"benchmark": "quality", "task": label},
        **{name: value for name, value in fields.items() if value is not None},
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task(f"{label}: pending", total=100)

        def show(state: dict[str, Any]) -> None:
            stage = (state.get("progress") or {}).get("stage") or state["status"]
            percent = (state.get("progress") or {}).get("percent") or 0.0
            progress.update(bar, completed=percent, description=f"{label}: {stage}")

        final = client.wait_for_task(task["id"], on_progress=show, poll_s=2.0)
    final["wall_s"] = time.monotonic() - started
    if final["status"] != "done":
        raise RuntimeError(f"{label} task {final['id']} ended {final['status']}: {final['error']}")
    console.print(f"  {label}: {final['metrics']['promotion_reason']}")
    return final


def best_params(client: ClicktuneClient, task: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of the task's best run, from its progress log."""
    for event in client.iter_task_events(task["id"]):
        data = event.get("data") or {}
        if data.get("run_id") == task["best_run_id"] and "params" in data:
            return dict(data["params"])
    raise RuntimeError(f"task {task['id']} has no event with its best run's parameters")


def send(client: ClicktuneClient, log: Sequence[SimulatedSession], serving: str) -> None:
    sent = send_sessions(client, log)
    console.print(
        f"  {sent.sessions} sessions, {sent.events} events, {sent.irrelevant} irrelevant "
        f"(served by {serving})"
    )


def task_line(
    client: ClicktuneClient,
    bench: Bench,
    label: str,
    start_metrics: Mapping[str, float],
    root: Path,
    **fields: Any,
) -> tuple[Path, dict[str, Any], dict[str, float]]:
    """A task from the base model: a line for its best model and its decision. Returns the
    best model, the task and the model's test metrics."""
    task = run_task(client, label, **fields)
    best = client.download_model(task["id"], root / task["id"])
    best_metrics = bench.measure_model(best)
    truth = best_metrics["ndcg_at_10"] - start_metrics["ndcg_at_10"]
    decision = Decision.of_task(label, task, truth)
    bench.decisions.append(decision)
    bench.add(Line(f"{label}: best run", best_metrics, task["wall_s"], decision.outcome))
    return best, task, best_metrics


def judged_set(collection: Collection, train: Sequence[str], queries: int) -> list[dict[str, Any]]:
    """The qrels of the first `queries` train queries, as judgments (never a test query)."""
    return [
        {"query": collection.queries[q].text, "object_id": doc_id, "grade": grade}
        for q in train[:queries]
        for doc_id, grade in collection.qrels[q].items()
    ]


# --- reference lines trained here -------------------------------------------------------------


def naive_model(
    bench: Bench, sessions: Sequence[SimulatedSession], out: Path
) -> tuple[Path, float]:
    """What a user would write by hand: MNRL on (query, clicked document), default arguments.

    The runtime settings (token limit, precision, device) are the default method's.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        SentenceTransformerTrainingArguments,
    )

    from clicktune.methods.default import DefaultFineTuningMethod

    started = time.monotonic()
    content = bench.collection.corpus()
    pairs = [(s.query, content[d]) for s in sessions for d in s.outcome.clicked]
    method = DefaultFineTuningMethod()
    model = method.load_model(packaged_base_model())
    runtime = method.training_arguments({}, out / "checkpoints")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=1,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        bf16=runtime.bf16,
        use_cpu=runtime.use_cpu,
    )
    dataset = Dataset.from_dict(
        {"anchor": [p[0] for p in pairs], "positive": [p[1] for p in pairs]}
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    model.save(str(out / "model"))
    return out / "model", time.monotonic() - started


def oracle_model(bench: Bench, params: Mapping[str, Any], out: Path) -> tuple[Path, float]:
    """The default method's recipe (its loss, trainer arguments, the first task's best
    parameters) on the true judgements of the train queries: every relevant document a positive
    weighted by its grade, the judged non-relevant ones as hard negatives."""
    from clicktune.methods.default import DefaultFineTuningMethod
    from clicktune.training.datasets import build_train_dataset
    from clicktune.training.examples import PreparationStats, PreparedData

    started = time.monotonic()
    method = DefaultFineTuningMethod()
    collection = bench.collection
    content = collection.corpus()
    examples = out / "examples.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with examples.open("w", encoding="utf-8") as handle:
        for query_id in bench.train:
            judged = collection.qrels[query_id]
            query = collection.queries[query_id].text
            negatives = [d for d, grade in judged.items() if grade <= 0]
            for doc_id, grade in judged.items():
                if grade > 0:
                    record = [0, query_id, query, doc_id, float(grade), float(grade), negatives]
                    handle.write(json.dumps(record) + "\n")
    data = PreparedData(
        examples_path=examples,
        texts=content,
        split_seed=method.config.seed,
        test_cutoff=-1,
        test_queries={},
        test_qrels={},
        irrelevant_negatives={},
        stats=PreparationStats(),
    )
    model = method.load_model(packaged_base_model())
    dataset = build_train_dataset(
        data,
        num_hard_negatives=int(params.get("num_hard_negatives", 0)),
        max_repeats=method.config.max_positive_repeats,
        seed=method.config.seed,
        cache_dir=out / "datasets",
    )
    from sentence_transformers import SentenceTransformerTrainer

    args = dataclasses.replace(
        method.training_arguments(params, out / "checkpoints"), eval_strategy="no"
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=method.build_loss(model, params)
    )
    trainer.train()
    model.save(str(out / "model"))
    return out / "model", time.monotonic() - started


# --- one collection ---------------------------------------------------------------------------


def quick_subset(collection: Collection, seed: int) -> Collection:
    """A smoke-test collection: a few queries, their judged documents and some distractors."""
    train, test = collection.split(seed)
    return collection.subset(
        train[: QUICK_QUERIES[0]] + test[: QUICK_QUERIES[1]], QUICK_DISTRACTORS, seed
    )


def collection_dir(name: str, data_root: Path) -> Path:
    path = data_root / name
    if not path.exists() and bundled_collection_path(name).exists():
        return bundled_collection_path(name)
    return path


def run_collection(name: str, args: argparse.Namespace) -> dict[str, Any]:
    wall_start = time.monotonic()
    collection = load_collection(collection_dir(name, args.data_root))
    if args.quick:
        collection = quick_subset(collection, args.seed)
    train, test = collection.split(args.seed)
    encoding = CorpusEncoding(WORK / "cache" / "embeddings", args.max_seq_length, args.bf16)
    bench = Bench(collection, train, test, encoding)
    console.rule(
        f"{name}: {len(collection.documents)} documents, {len(train)} train / "
        f"{len(test)} test queries"
    )
    hyperparameters = json.loads(args.hyperparameters) if args.hyperparameters else None
    if args.quick and hyperparameters is None:
        hyperparameters = dict(default_first_trials()[0])
    base_dir = packaged_base_model()
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK, prefix=f"quality-{name}-") as scratch:
        root = Path(scratch)
        base = bench.measure_model(base_dir)
        bench.add(Line("base", base))
        bench.add(Line("BM25", bench.measure(Bm25Retriever(collection.corpus()))))
        log1 = bench.simulate(base_dir, args.seed, args.sessions_per_query)

        # Judged evidence: a judged set of train queries decides.
        with running_service(root / "judged") as client:
            load_items(client, collection)
            client.put_judgments("judged", judged_set(collection, train, args.judged_queries))
            send(client, log1, "base")
            judged_dir, judged, _ = task_line(
                client,
                bench,
                "judged",
                base,
                root,
                validation_set="judged",
                hyperparameters=hyperparameters,
            )
            served = judged_dir if judged["promoted"] else base_dir
            bench.add(Line("clicktune (served after judged)", bench.measure_model(served)))
            params = best_params(client, judged)

        # Online evidence: a blind task's challenger against the champion on interleaved traffic.
        with running_service(root / "online") as client:
            load_items(client, collection)
            send(client, log1, "base")
            blind_dir, _, blind = task_line(
                client, bench, "blind", base, root, hyperparameters=hyperparameters
            )
            arms = load_arms(client, METHOD, collection, bench.encoding, root / "arms", base_dir)
            interleaved = list(
                served_sessions(
                    collection,
                    train,
                    interleave_serve(client, arms, collection, train),
                    PositionBasedClickModel(collection.max_grade),
                    sessions_per_query=args.sessions_per_query,
                    seed=args.seed + 1,
                    session_prefix=f"bench-il-{new_id()[:8]}",
                )
            )
            send(client, interleaved, "interleaved champion and challenger")
            second = run_task(client, "iteration 2", hyperparameters=hyperparameters)
            truth = blind["ndcg_at_10"] - base["ndcg_at_10"]
            bench.decisions.append(Decision.of_online("A/B: iteration 2", second, truth))
            champion = (
                blind_dir if second["metrics"]["online"]["decision"] == "promoted" else base_dir
            )
            bench.add(Line("clicktune (served after A/B)", bench.measure_model(champion)))

        naive_dir, naive_s = naive_model(bench, log1, root / "naive")
        bench.add(Line("naive (MNRL, defaults)", bench.measure_model(naive_dir), naive_s))
        oracle_dir, oracle_s = oracle_model(bench, params, root / "oracle")
        bench.add(Line("oracle (true qrels)", bench.measure_model(oracle_dir), oracle_s))
    return {
        "collection": name,
        "documents": len(collection.documents),
        "train_queries": len(train),
        "test_queries": len(test),
        "lines": bench.lines,
        "decisions": bench.decisions,
        "task_params": params,
        "wall_s": time.monotonic() - wall_start,
    }


# --- report -----------------------------------------------------------------------------------


def goals(result: Mapping[str, Any]) -> list[tuple[str, bool]]:
    by_name = {line.name: line.metrics["ndcg_at_10"] for line in result["lines"]}
    base, naive = by_name["base"], by_name["naive (MNRL, defaults)"]
    oracle = by_name["oracle (true qrels)"]
    judged = by_name["clicktune (served after judged)"]
    blind = by_name["blind: best run"]
    decisions = result["decisions"]
    checks = [
        ("every decision right", all(d.correct for d in decisions)),
        (
            f"each task ≤ {TIME_GOAL_S // 60} min",
            all(d.minutes * 60 <= TIME_GOAL_S for d in decisions),
        ),
    ]
    if result["collection"] == "scifact":
        share = (judged - base) / (oracle - base) if oracle > base else float("nan")
        checks += [
            ("judged ≥ base + 0.03", judged >= base + 0.03),
            ("judged ≥ naive", judged >= naive),
            (f"judged ≥ {ORACLE_SHARE:.0%} of oracle gain ({share:.0%})", share >= ORACLE_SHARE),
            ("blind challenger ≥ base + 0.025", blind >= base + 0.025),
            ("whole protocol ≤ 60 min", result["wall_s"] <= 60 * 60),
        ]
    return checks


def render(result: Mapping[str, Any]) -> tuple[tuple[Table, Table], str]:
    base = next(line for line in result["lines"] if line.name == "base").metrics["ndcg_at_10"]
    table = Table(title=f"{result['collection']} — test queries, full corpus")
    headers = ("line", "nDCG@10", "Δ vs base", "Recall@100", "MRR@10", "time s", "note")
    for header in headers:
        table.add_column(header)
    rows = []
    for line in result["lines"]:
        m = line.metrics
        row = (
            line.name,
            f"{m['ndcg_at_10']:.4f}",
            f"{m['ndcg_at_10'] - base:+.4f}",
            f"{m['recall_at_100']:.4f}",
            f"{m['mrr_at_10']:.4f}",
            "" if line.seconds is None else f"{line.seconds:.0f}",
            line.note,
        )
        table.add_row(*row)
        rows.append("| " + " | ".join(row) + " |")
    markdown = "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), *rows])
    decisions = Table(title=f"{result['collection']} — what each task decided, and the test truth")
    for header in DECISION_HEADERS:
        decisions.add_column(header)
    decision_rows = []
    for decision in result["decisions"]:
        decisions.add_row(*decision.row())
        decision_rows.append("| " + " | ".join(decision.row()) + " |")
    markdown += "\n\n" + "\n".join(
        [
            "| " + " | ".join(DECISION_HEADERS) + " |",
            "|" + "---|" * len(DECISION_HEADERS),
            *decision_rows,
        ]
    )
    return (table, decisions), markdown


def record(results: Sequence[Mapping[str, Any]], args: argparse.Namespace, command: str) -> None:
    precision = "bfloat16" if args.bf16 else "float32"
    import torch

    sections = [
        f"- command: `{command}`",
        f"- commit: {git_commit()}",
        f"- machine: {machine()}, torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        f"- protocol: docs/benchmarks.md §1; {args.sessions_per_query} sessions per train query, "
        f"seed {args.seed}; every model measured at max_seq_length {args.max_seq_length}, "
        f"{precision}" + ("; QUICK subset (smoke test, not comparable)" if args.quick else ""),
    ]
    for result in results:
        _, markdown = render(result)
        checks = ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in goals(result))
        sections += [
            f"\n### {result['collection']} — {result['documents']} documents, "
            f"{result['train_queries']} train / {result['test_queries']} test queries, whole run "
            f"{result['wall_s'] / 60:.1f} min\n",
            markdown,
            f"\nGoals: {checks}. The judged task's best parameters: "
            f"`{json.dumps(result['task_params'])}`",
        ]
    append_section("Quality", "\n".join(sections).split("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", choices=[*COLLECTIONS, "all"], default="all")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DATA_ROOT,
        help="folder of the collections (default ../shared/data)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: a subset of queries and documents, one fixed run",
    )
    parser.add_argument("--sessions-per-query", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hyperparameters", help="JSON object fixed on every task")
    parser.add_argument(
        "--judged-queries",
        type=int,
        default=JUDGED_QUERIES,
        help=f"train queries whose qrels form the judged set (default {JUDGED_QUERIES})",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=256,
        help="token limit of every model when measuring (default 256)",
    )
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 encoding (default: where the CPU has it natively)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.bf16 is None:
        args.bf16 = native_bf16()
    command = "python bench/quality.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    names = COLLECTIONS if args.collection == "all" else (args.collection,)
    results = [run_collection(name, args) for name in names]
    for result in results:
        tables, _ = render(result)
        for table in tables:
            console.print(table)
        for name, ok in goals(result):
            console.print(f"  goal {name}: {'yes' if ok else 'NO'}")
    if not args.no_record:
        record(results, args, command.strip())
        console.print(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
