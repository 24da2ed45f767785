"""Collection loading, the benchmark's query split and simulated sessions."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.collection import Collection, load_collection
from clicktune.simulate.sessions import simulate_sessions


def write_collection(
    root: Path, *, splits: bool, gzip_corpus: bool = False, queries: int = 30
) -> Path:
    root.mkdir(parents=True)
    docs = [
        {"id": f"d{i}", "title": f"title {i}", "text": f"text {i}", "brand": "acme"}
        for i in range(40)
    ]
    corpus = "".join(json.dumps(d) + "\n" for d in docs)
    if gzip_corpus:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
            handle.write(corpus)
    else:
        (root / "corpus.jsonl").write_text(corpus)
    lines = []
    for q in range(queries):
        row = {"id": f"q{q}", "text": f"query {q}"}
        if splits:
            row["split"] = "train" if q % 3 else "test"
        lines.append(json.dumps(row))
    (root / "queries.jsonl").write_text("\n".join(lines) + "\n")
    qrels = ["query-id\tdoc-id\tgrade"] + [f"q{q}\td{q}\t{1 + q % 3}" for q in range(queries)]
    (root / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    return root


def test_load_reads_documents_queries_and_grades(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "tiny", splits=False))
    assert collection.name == "tiny"
    assert len(collection.documents) == 40
    first = collection.documents[0]
    assert (first.id, first.content, first.extra) == ("d0", "title 0\ntext 0", {"brand": "acme"})
    assert collection.qrels["q4"] == {"d4": 2}
    assert collection.max_grade == 3


def test_gzipped_corpus_loads_the_same(tmp_path: Path) -> None:
    plain = load_collection(write_collection(tmp_path / "a", splits=False))
    packed = load_collection(write_collection(tmp_path / "b", splits=False, gzip_corpus=True))
    assert packed.documents == plain.documents
    assert packed.fingerprint() == plain.fingerprint()


def test_graded_qrels_are_preferred_when_present(tmp_path: Path) -> None:
    root = write_collection(tmp_path / "graded", splits=True)
    (root / "qrels_graded.tsv").write_text("query-id\tdoc-id\tgrade\nq1\td1\t2\n")
    assert load_collection(root).qrels == {"q1": {"d1": 2}}
    assert load_collection(root, graded=False).qrels["q1"] == {"d1": 2}
    assert len(load_collection(root, graded=False).qrels) == 30


def test_split_keeps_the_collections_own_split(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "s", splits=True))
    train, test = collection.split(seed=123)
    assert set(test) == {f"q{q}" for q in range(0, 30, 3)}
    assert set(train) == {f"q{q}" for q in range(30) if q % 3}


def test_seeded_split_is_two_thirds_train_and_reproducible(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "r", splits=False))
    train, test = collection.split(seed=5)
    assert (len(train), len(test)) == (20, 10)
    assert not set(train) & set(test)
    assert collection.split(seed=5) == (train, test)
    assert collection.split(seed=6) != (train, test)


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "f", splits=False))
    before = collection.fingerprint()
    changed = Collection(
        collection.name, collection.documents[:-1], collection.queries, collection.qrels
    )
    assert changed.fingerprint() != before


def fixed_search(pages: dict[str, list[str]]):
    def search(texts: Sequence[str], k: int) -> list[list[str]]:
        return [pages[text][:k] for text in texts]

    return search


def test_simulated_sessions_are_seeded_and_carry_request_bodies(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "c", splits=False))
    pages = {
        q.text: [f"d{(i + n) % 40}" for n in range(10)]
        for i, q in enumerate(collection.queries.values())
    }
    model = PositionBasedClickModel(collection.max_grade)
    ids = list(collection.queries)

    def run(seed: int):
        return list(
            simulate_sessions(
                collection, ids, fixed_search(pages), model, sessions_per_query=4, seed=seed
            )
        )

    sessions = run(1)
    assert len(sessions) == 120
    assert sessions == run(1)
    assert [s.outcome for s in sessions] != [s.outcome for s in run(2)]
    assert len({s.session_id for s in sessions + run(2)}) == 240
    clicked = next(s for s in sessions if s.outcome.interactions)
    body = clicked.session_body()
    assert body["search_query"] == clicked.query
    assert [r["object_id"] for r in body["search_results"]] == list(clicked.shown)
    events = clicked.events_body()
    assert events is not None
    assert events["events"] == clicked.events_body()["events"]
    assert all(e["object_id"] in clicked.shown for e in events["events"])
    line = clicked.import_line()
    assert line == clicked.import_line()
    assert "created_at" not in line
    assert line["events"] == events["events"]
    assert line["is_irrelevant"] == clicked.outcome.irrelevant
    silent = next(s for s in sessions if not s.outcome.interactions)
    assert silent.events_body() is None


def test_subset_keeps_judged_documents_and_draws_distractors(tmp_path: Path) -> None:
    collection = load_collection(write_collection(tmp_path / "sub", splits=False))
    small = collection.subset(["q1", "q2"], distractors=5, seed=3)
    ids = {d.id for d in small.documents}
    assert {"d1", "d2"} <= ids
    assert len(ids) == 7
    assert list(small.queries) == ["q1", "q2"]
    assert small.qrels == {"q1": {"d1": 2}, "q2": {"d2": 3}}
    assert {d.id for d in collection.subset(["q1", "q2"], 5, seed=3).documents} == ids
