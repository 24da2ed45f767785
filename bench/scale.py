"""Batch preparation at scale: clickstream → training examples for 100k and 1M sessions.

For each size, a fresh SQLite database gets that many synthetic sessions inserted straight through
SQLAlchemy Core and released as one batch: a query from a fixed vocabulary, 10 results from a
fixed catalog (3 of the query's 5 relevant items among them), a click on a relevant one in most
sessions (some purchases), a few marked irrelevant, the rest unlabelled.
Then a fresh process prepares the batch the way a task does (`DefaultFineTuningMethod.prepare_data`:
stream the sessions, label them, look up item texts, split by query) and reports its time and peak
memory (`ru_maxrss`). The reference, measured in the same run, is a fresh process that only
streams the batch's sessions from the store (`iter_batch_sessions`): the read limit preparation
cannot beat. Goals (docs/benchmarks.md §2): memory flat in batch size; ≥ 20k sessions/s.

    python bench/scale.py [--sizes 100000 1000000] [--queries 20000] [--items 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from recording import RESULTS, git_commit, machine

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = (
    "red blue green black white small large cotton leather wool steel wooden running hiking "
    "office garden kitchen travel winter summer shoe shirt jacket bag lamp chair table phone case "
    "cable charger watch bottle mug pan knife towel pillow blanket desk shelf"
)
WORDS = VOCABULARY.split()
CHUNK = 5000
RELEVANT = 5  # each query has this many items users want; a session shows 3 of them


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def build_database(path: Path, sessions: int, queries: int, items: int, seed: int) -> str:
    """Insert the catalog and `sessions` sessions as one released batch; its id."""
    from sqlalchemy import insert

    from clicktune.store import tables
    from clicktune.store.engine import make_engine, migrate, write_transaction

    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    rng = random.Random(seed)
    now = time.time()
    with write_transaction(engine) as conn:
        for start in range(0, items, CHUNK):
            conn.execute(
                insert(tables.items),
                [
                    {
                        "object_id": f"item-{i}",
                        "text": f"{_text(rng, 8)} item {i}",
                        "fields": {},
                        "meta": {},
                        "updated_at": now,
                    }
                    for i in range(start, min(start + CHUNK, items))
                ],
            )
    vocabulary = [f"{_text(rng, 2)} {i}" for i in range(queries)]
    batch_id = "b" * 24
    counts = {"with_events": 0, "irrelevant": 0, "events": 0}
    with write_transaction(engine) as conn:
        conn.execute(
            insert(tables.batches),
            {"batch_id": batch_id, "status": "collecting", "created_at": now, "sessions": 0},
        )
    for start in range(1, sessions + 1, CHUNK):
        session_rows, event_rows = [], []
        for number in range(start, min(start + CHUNK, sessions + 1)):
            query = rng.randrange(queries)
            relevant = [f"item-{(query * RELEVANT + k) % items}" for k in range(RELEVANT)]
            shown = rng.sample(relevant, 3) + [f"item-{rng.randrange(items)}" for _ in range(7)]
            rng.shuffle(shown)
            kind = rng.random()
            session_id = f"s-{number}"
            session_rows.append(
                {
                    "session_id": session_id,
                    "batch_id": batch_id,
                    "session_number": number,
                    "search_query": vocabulary[query],
                    "search_results": [{"object_id": o, "rank": None, "meta": {}} for o in shown],
                    "search_meta": {},
                    "user_id": None,
                    "created_at": now,
                    "received_at": now,
                    "content_hash": "0" * 64,
                    "is_irrelevant": 0.80 <= kind < 0.85,
                    "irrelevant_post_release": False,
                }
            )
            if kind < 0.80:
                candidates = [i for i, oid in enumerate(shown) if oid in relevant]
                clicked = rng.sample(candidates, 2 if kind < 0.2 else 1)
                for n, position in enumerate(clicked):
                    event_rows.append(
                        {
                            "session_id": session_id,
                            "event_id": f"e{n}",
                            "object_id": shown[position],
                            "event_type": "purchase" if rng.random() < 0.1 else "click",
                            "created_at": now,
                            "received_at": now,
                            "meta": {},
                            "post_release": False,
                        }
                    )
                counts["with_events"] += 1
                counts["events"] += len(clicked)
            elif kind < 0.85:
                counts["irrelevant"] += 1
        with write_transaction(engine) as conn:
            conn.execute(insert(tables.sessions), session_rows)
            if event_rows:
                conn.execute(insert(tables.events), event_rows)
    with write_transaction(engine) as conn:
        conn.execute(
            tables.batches.update()
            .where(tables.batches.c.batch_id == batch_id)
            .values(
                status="released",
                released_at=time.time(),
                sessions=sessions,
                sessions_with_events=counts["with_events"],
                irrelevant_sessions=counts["irrelevant"],
                events=counts["events"],
            )
        )
    engine.dispose()
    return batch_id


def measure(database: Path, batch_id: str, mode: Literal["stream", "prepare"]) -> dict[str, Any]:
    """Run in a fresh process: stream or prepare the batch; time and memory."""
    from clicktune import DefaultFineTuningMethod, TaskSpec
    from clicktune.heap import freeze_startup_heap
    from clicktune.settings import Settings
    from clicktune.store.engine import make_engine
    from clicktune.worker.context import WorkerTaskContext

    freeze_startup_heap()  # as `clicktune worker` does once it has started

    settings = Settings(data_dir=database.parent, database_url=f"sqlite:///{database}")
    spec = TaskSpec(task_id="bench", fine_tuning_method="bench", batch_id=batch_id)
    # The worker's own context; prepare_data only reads through it (nothing is reported).
    context = WorkerTaskContext(spec, settings, make_engine(settings.effective_database_url), "b")
    before = _rss_mb()
    started = time.perf_counter()
    if mode == "stream":
        sessions = sum(1 for _ in context.iter_sessions())
        extra: dict[str, Any] = {}
    else:
        data = DefaultFineTuningMethod().prepare_data(context, context.work_dir)
        sessions = data.stats.sessions
        extra = {"stats": data.stats.as_dict(), "pool": len(data.texts)}
    seconds = time.perf_counter() - started
    shutil.rmtree(context.work_dir, ignore_errors=True)
    return {
        "mode": mode,
        "sessions": sessions,
        "seconds": seconds,
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": before,
        **extra,
    }


def _run_child(database: Path, batch_id: str, mode: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--measure", str(database), batch_id, mode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _table(rows: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> list[str]:
    lines = [
        "| sessions | stream only (sessions/s) | prepare (sessions/s) | prepare / stream | "
        "prepare time (s) | prepare peak RSS (MB) | of which preparing (MB) | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base_growth = None
    for size, stream, prepare in rows:
        stream_rate = stream["sessions"] / stream["seconds"]
        rate = prepare["sessions"] / prepare["seconds"]
        growth = prepare["peak_rss_mb"] - prepare["rss_before_mb"]
        base_growth = growth if base_growth is None else base_growth
        met = rate >= 20000 and growth <= 1.5 * base_growth + 50
        lines.append(
            f"| {size:,} | {stream_rate:,.0f} | {rate:,.0f} | {rate / stream_rate:.2f} | "
            f"{prepare['seconds']:.1f} | {prepare['peak_rss_mb']:.0f} | {growth:.0f} | "
            f"{'yes' if met else 'no'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=20_000, help="distinct queries")
    parser.add_argument("--items", type=int, default=50_000, help="catalog size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work" / "scale")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        database, batch_id, mode = args.measure
        print(json.dumps(measure(Path(database), batch_id, mode)))
        return

    rows = []
    for size in args.sizes:
        folder = args.work_dir / str(size)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        database = folder / "clicktune.db"
        started = time.perf_counter()
        batch_id = build_database(database, size, args.queries, args.items, args.seed)
        print(f"{size:,} sessions inserted in {time.perf_counter() - started:.0f} s", flush=True)
        stream = _run_child(database, batch_id, "stream")
        prepare = _run_child(database, batch_id, "prepare")
        print(json.dumps({"size": size, "stream": stream, "prepare": prepare}), flush=True)
        rows.append((size, stream, prepare))
        shutil.rmtree(folder, ignore_errors=True)
    table = _table(rows)
    print("\n".join(table))
    if args.no_record:
        return
    stats = rows[-1][2].get("stats", {})
    with RESULTS.open("a") as out:
        out.write(
            f"\n## Batch preparation at scale — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"- command: `{' '.join(['python', f'bench/{Path(__file__).name}', *sys.argv[1:]])}`\n"
            f"- commit: {git_commit()}\n"
            f"- machine: {machine()}, "
            f"load average {os.getloadavg()[0]:.1f} at the end\n"
            f"- data: SQLite; {args.queries:,} distinct queries ({RELEVANT} relevant items each), "
            f"{args.items:,} items, 10 results per session (3 relevant); 80 % of sessions clicked "
            "(20 % twice, 10 % of events purchases), 5 % irrelevant; largest batch: "
            f"{json.dumps(stats)}\n"
            "- prepare = `DefaultFineTuningMethod.prepare_data` in a fresh process (stream, label, "
            "item texts, split, examples file); stream only = `iter_batch_sessions` alone, same "
            'batch, fresh process. "Of which preparing" = peak RSS minus RSS after imports.\n\n'
            + "\n".join(table)
            + "\n"
        )
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
