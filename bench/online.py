"""Online evidence in the simulator: which online metric follows judged quality, and how many
sessions A/B and interleaving need to see a difference (docs/evaluation.md, docs/benchmarks.md §1).

For each collection: models whose judged quality differs from the base model's (the default
method's first-trial recipe trained on the TRAIN queries' qrels, the same at ten times the
learning rate, and plain MNRL on simulated clicks); their truth is the change of test nDCG@10
over the base model. Simulated users (the position-based click model of `clicktune simulate`)
search the TEST queries, each user once:
  - A/B: each session served by one of the two models at random; per metric, the difference
    challenger minus champion;
  - interleaving: each session shows the team-draft merge of both; the challenger's share of the
    sessions one team won.
With `--repeats` seeds per traffic size, the detection rate (the verdict of clicktune's own
comparison, `OnlineEvidence`, agrees with the sign of the truth) is measured for each form.
Everything runs offline on the retrievers (no service), the same code as the service's
comparison.

    python bench/online.py [--collection esci_us_srw150|scifact|all] [--no-record]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from clicktune.evaluation.interleaving import team_draft
from clicktune.evaluation.online_evidence import ONLINE_METRICS, PRIMARY_METRIC, OnlineEvidence
from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.collection import load_collection
from clicktune.simulate.serving import CorpusEncoding, packaged_base_model
from clicktune.tuning.config import default_first_trials
from quality import COLLECTIONS, DATA_ROOT, WORK, Bench, collection_dir, naive_model, oracle_model
from recording import append_section, git_commit, machine

WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
CHAMPION, CHALLENGER = "champion", "challenger"
SIZES = (100, 200, 400, 800, 1600, 3200)
MODELS = WORK / "online-models"
"""The trained challengers, per collection and split seed."""
RESAMPLES = 2000
"""Bootstrap resamples per verdict here (the service uses 10,000): thousands of verdicts."""
console = Console(highlight=False)


@dataclass
class Pair:
    """The base model (champion) against one other (challenger), with the judged truth."""

    name: str
    truth: float
    pages: dict[str, dict[str, list[str]]]
    """arm → test query id → its top 10"""


def sessions(
    pair: Pair, bench: Bench, count: int, seed: int, interleave: bool
) -> list[dict[str, Any]]:
    """`count` simulated sessions on the test queries, each its own user, as the service stores
    them (events, served_by or teams)."""
    model = PositionBasedClickModel(bench.collection.max_grade)
    rng = random.Random(seed)
    made = []
    for number in range(count):
        query_id = rng.choice(bench.test)
        session_id = f"{seed}-{number}"
        if interleave:
            merged = team_draft(
                session_id,
                {
                    CHAMPION: pair.pages[CHAMPION][query_id],
                    CHALLENGER: pair.pages[CHALLENGER][query_id],
                },
                10,
            )
            shown = [oid for oid, _ in merged]
            results = [{"object_id": oid, "served_by": team} for oid, team in merged]
            served_by = None
        else:
            served_by = CHALLENGER if rng.random() < 0.5 else CHAMPION
            shown = pair.pages[served_by][query_id]
            results = [{"object_id": oid} for oid in shown]
        outcome = model.simulate(shown, bench.collection.qrels.get(query_id, {}), rng)
        made.append(
            {
                "session_id": session_id,
                "user_id": None,
                "served_by": served_by,
                "search_results": results,
                "is_irrelevant": outcome.irrelevant,
                "events": [
                    {"object_id": i.object_id, "event_type": i.event_type}
                    for i in outcome.interactions
                ],
            }
        )
    return made


def metric_differences(pair: Pair, bench: Bench, count: int, seed: int) -> dict[str, float]:
    """A/B: challenger minus champion on every online metric (abandonment: less is better)."""
    evidence = OnlineEvidence(WEIGHTS, resamples=RESAMPLES).add_all(
        sessions(pair, bench, count, seed, False)
    )
    arms = {a["served_by"]: a for a in evidence.report(CHAMPION, CHALLENGER, seed=seed)["arms"]}
    return {
        metric: (arms[CHALLENGER][metric] - arms[CHAMPION][metric])
        * (-1 if metric == "abandonment" else 1)
        for metric in ONLINE_METRICS
    }


def detected(
    pair: Pair, bench: Bench, count: int, seed: int, interleave: bool, metric: str
) -> bool:
    """Whether clicktune's comparison of this traffic says what the truth says."""
    evidence = OnlineEvidence(WEIGHTS, primary=metric, resamples=RESAMPLES).add_all(
        sessions(pair, bench, count, seed, interleave)
    )
    verdict = evidence.report(CHAMPION, CHALLENGER, seed=seed)["verdict"]
    return verdict == ("better" if pair.truth > 0 else "worse")


def models(bench: Bench, root: Path) -> dict[str, Path]:
    """The challengers: three recipes whose judged quality differs from the base model's. Each
    is trained once and kept under `root`, so a rerun (another metric, more seeds) reuses it."""
    recipe = dict(default_first_trials()[0])
    harsh = {**recipe, "learning_rate": 10 * float(recipe["learning_rate"])}
    trainers: dict[str, Callable[[Path], tuple[Path, float]]] = {
        "oracle recipe": lambda out: oracle_model(bench, recipe, out),
        "oracle recipe, 10x lr": lambda out: oracle_model(bench, harsh, out),
        "naive MNRL on clicks": lambda out: naive_model(
            bench, bench.simulate(packaged_base_model(), 0, 3), out
        ),
    }
    made = {}
    for label, train in trainers.items():
        # The recipe in the name: a changed default recipe trains anew instead of reusing.
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
        folder = root / f"{label.replace(' ', '-').replace(',', '')}-{key}"
        if not (folder / "model" / "config.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            train(folder)
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        made[label] = folder / "model"
    return made


def run_collection(name: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    collection = load_collection(collection_dir(name, args.data_root))
    train, test = collection.split(args.seed)
    encoding = CorpusEncoding(WORK / "cache" / "embeddings", 256, args.bf16)
    bench = Bench(collection, train, test, encoding)
    console.rule(f"{name}: {len(test)} test queries")
    test_texts = [collection.queries[q].text for q in test]
    base = bench.retriever(packaged_base_model())
    base_pages = dict(zip(test, base.search(test_texts, 10), strict=True))
    base_ndcg = bench.measure(base)["ndcg_at_10"]
    pairs = []
    for label, folder in models(bench, MODELS / f"{name}-seed{args.seed}").items():
        retriever = bench.retriever(folder)
        truth = bench.measure(retriever)["ndcg_at_10"] - base_ndcg
        pages = dict(zip(test, retriever.search(test_texts, 10), strict=True))
        pairs.append(Pair(label, truth, {CHAMPION: base_pages, CHALLENGER: pages}))
        console.print(f"  {label}: test nDCG@10 {truth:+.4f} vs base")
    big = args.sizes[-1]
    differences = {
        pair.name: {
            metric: float(
                np.mean([metric_differences(pair, bench, big, s)[metric] for s in range(3)])
            )
            for metric in ONLINE_METRICS
        }
        for pair in pairs
    }
    detection: dict[str, dict[str, dict[int, float]]] = {}
    for pair in pairs:
        if abs(pair.truth) < 0.005:
            continue  # no difference worth detecting
        detection[pair.name] = {
            form: {
                size: float(
                    np.mean(
                        [
                            detected(pair, bench, size, seed, form == "interleaving", args.metric)
                            for seed in range(args.repeats)
                        ]
                    )
                )
                for size in args.sizes
            }
            for form in ("A/B", "interleaving")
        }
        console.print(f"  {pair.name}: {detection[pair.name]}")
    return {
        "collection": name,
        "pairs": pairs,
        "differences": differences,
        "detection": detection,
        "wall_s": time.monotonic() - started,
    }


def agreement(results: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int, float]]:
    """Per metric: pairs whose A/B difference has the truth's sign, pairs, rank correlation."""
    from scipy.stats import spearmanr

    found = {}
    for metric in ONLINE_METRICS:
        truths, values = [], []
        for result in results:
            for pair in result["pairs"]:
                truths.append(pair.truth)
                values.append(result["differences"][pair.name][metric])
        same = sum(np.sign(t) == np.sign(v) for t, v in zip(truths, values, strict=True))
        rho = float(spearmanr(truths, values).statistic) if len(truths) > 2 else float("nan")
        found[metric] = (int(same), len(truths), rho)
    return found


def needed(curve: dict[int, float], rate: float = 0.8) -> int | None:
    return next((size for size, detected in sorted(curve.items()) if detected >= rate), None)


def report(results: Sequence[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        "| metric | A/B difference has the truth's sign | Spearman with the truth |",
        "|---|---|---|",
    ]
    table = Table(title="which online metric follows judged nDCG@10")
    for column in ("metric", "sign agrees", "Spearman"):
        table.add_column(column)
    for metric, (same, total, rho) in agreement(results).items():
        table.add_row(metric, f"{same}/{total}", f"{rho:+.2f}")
        lines.append(f"| {metric} | {same}/{total} | {rho:+.2f} |")
    console.print(table)
    lines += [
        "",
        "| collection | challenger | test Δ nDCG@10 | "
        + " | ".join(f"A/B Δ {metric}" for metric in ONLINE_METRICS)
        + " |",
        "|---|---|---|" + "---|" * len(ONLINE_METRICS),
    ]
    for result in results:
        for pair in result["pairs"]:
            values = result["differences"][pair.name]
            lines.append(
                f"| {result['collection']} | {pair.name} | {pair.truth:+.4f} | "
                + " | ".join(f"{values[metric]:+.4f}" for metric in ONLINE_METRICS)
                + " |"
            )
    lines += [
        "",
        "| collection | challenger | test Δ nDCG@10 | "
        + " | ".join(f"{form} {size}" for form in ("A/B", "IL") for size in args.sizes)
        + " | sessions for 80 %: A/B / IL |",
        "|---|---|---|" + "---|" * (2 * len(args.sizes) + 1),
    ]
    for result in results:
        for pair in result["pairs"]:
            curves = result["detection"].get(pair.name)
            if curves is None:
                continue
            cells = [f"{curves[form][size]:.0%}" for form in curves for size in args.sizes]
            ab, il = needed(curves["A/B"]), needed(curves["interleaving"])
            lines.append(
                f"| {result['collection']} | {pair.name} | {pair.truth:+.4f} | "
                + " | ".join(cells)
                + f" | {ab or f'>{args.sizes[-1]}'} / {il or f'>{args.sizes[-1]}'} |"
            )
    for line in lines[-len(results) * 3 :]:
        console.print(line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", choices=[*COLLECTIONS, "all"], default="all")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="sessions")
    parser.add_argument("--repeats", type=int, default=20, help="seeds per traffic size")
    parser.add_argument("--metric", choices=ONLINE_METRICS, default=PRIMARY_METRIC)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    if args.bf16 is None:
        from clicktune.device import native_bf16

        args.bf16 = native_bf16()
    command = "python bench/online.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    names = COLLECTIONS if args.collection == "all" else (args.collection,)
    WORK.mkdir(parents=True, exist_ok=True)
    results = [run_collection(name, args) for name in names]
    lines = report(results, args)
    if not args.no_record:
        minutes = sum(r["wall_s"] for r in results) / 60
        append_section(
            "Online metrics",
            [
                f"- command: `{command.strip()}`",
                f"- commit: {git_commit()}",
                f"- machine: {machine()}; {minutes:.0f} min",
                f"- A/B verdicts on `{args.metric}`, {args.repeats} seeds per size; detection: "
                "the comparison's verdict has the truth's sign",
                "",
                *lines,
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
