"""Clickstream → examples: labels, skip-above negatives, the query-grouped split, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clicktune import TaskFailed
from clicktune.training.datasets import column_names, training_rows
from clicktune.training.examples import (
    LabelConfig,
    label_session,
    normalize_query,
    prepare_examples,
)

WEIGHTS = LabelConfig(event_weights={"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0})


def session(
    query: str,
    shown: list[str],
    events: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    irrelevant: bool = False,
) -> dict[str, Any]:
    return {
        "search_query": query,
        "search_results": [{"object_id": oid} for oid in shown],
        "events": [{"object_id": oid, "event_type": kind} for oid, kind in events],
        "is_irrelevant": irrelevant,
    }


def test_positive_weight_is_its_largest_event_weight() -> None:
    labels = label_session(
        session("q", ["a", "b"], [("a", "click"), ("a", "purchase"), ("a", "add_to_cart")]),
        WEIGHTS,
    )
    assert labels is not None
    [positive] = labels.positives
    assert (positive.object_id, positive.gain, positive.weight) == ("a", 3.0, 3.0)


def test_unknown_event_types_weigh_the_default() -> None:
    config = LabelConfig(event_weights={"click": 1.0}, default_event_weight=0.5)
    labels = label_session(session("q", ["a"], [("a", "share")]), config)
    assert labels is not None and labels.positives[0].gain == 0.5


def test_skip_above_negatives_nearest_first_and_nothing_below_the_last_click() -> None:
    labels = label_session(
        session("q", ["a", "b", "c", "d", "e", "f"], [("b", "click"), ("d", "click")]), WEIGHTS
    )
    assert labels is not None
    by_id = {p.object_id: p.negatives for p in labels.positives}
    assert by_id == {"b": ("a",), "d": ("c", "a")}


def test_irrelevant_session_gives_all_results_as_negatives() -> None:
    labels = label_session(session("q", ["a", "b"], [("a", "click")], irrelevant=True), WEIGHTS)
    assert labels is not None
    assert labels.positives == () and labels.irrelevant == ("a", "b")


def test_session_without_events_carries_no_label() -> None:
    assert label_session(session("q", ["a", "b"]), WEIGHTS) is None


def test_position_bias_correction_weights_by_inverse_propensity() -> None:
    config = LabelConfig(event_weights={"click": 1.0}, position_bias_eta=1.0)
    labels = label_session(session("q", ["a", "b", "c"], [("c", "click")]), config)
    assert labels is not None
    [positive] = labels.positives
    assert positive.gain == 1.0 and positive.weight == pytest.approx(3.0)


def test_normalize_query_lowercases_and_collapses_whitespace() -> None:
    assert normalize_query("  Red\tShoe   SIZE 9 ") == "red shoe size 9"


def catalog(count: int = 30) -> dict[str, str]:
    return {f"doc-{i}": f"text of document {i}" for i in range(count)}


def shop_sessions(queries: int, per_query: int = 2) -> list[dict[str, Any]]:
    lines = []
    for q in range(queries):
        for s in range(per_query):
            shown = [f"doc-{(q + k) % 30}" for k in range(5)]
            spelling = f"Query  {q}" if s % 2 else f"query {q}"
            lines.append(session(spelling, shown, [(shown[2], "click")]))
    return lines


def prepare(tmp_path: Path, sessions: list[dict[str, Any]], **overrides: Any) -> Any:
    texts = overrides.pop("texts", catalog())
    options: dict[str, Any] = {
        "label": lambda s: label_session(s, WEIGHTS),
        "load_items": lambda ids: {oid: texts[oid] for oid in ids if oid in texts},
        "out_dir": tmp_path / "data",
        "test_fraction": 0.2,
        "seed": 7,
        "min_labelled_queries": 10,
    }
    options.update(overrides)
    return prepare_examples(sessions, **options)


def test_judged_queries_are_never_trained_on(tmp_path: Path) -> None:
    data = prepare(tmp_path, shop_sessions(queries=20))
    train_keys = sorted({record[0] for record in data.iter_examples(test=False)})
    test_keys = set(data.test_queries)
    judged = [train_keys[0].upper(), f"  {train_keys[1]} ", next(iter(test_keys)), "never clicked"]
    assert data.hold_out(judged) == 2 * 2  # two training queries, two positives each
    kept = {record[0] for record in data.iter_examples(test=False)}
    assert kept == set(train_keys[2:])
    assert {record[0] for record in data.iter_examples(test=True)} == test_keys  # untouched


def test_split_holds_out_a_fifth_of_queries_by_normalized_query(tmp_path: Path) -> None:
    data = prepare(tmp_path, shop_sessions(queries=20))
    assert data.stats.labelled_queries == 20
    assert (data.stats.test_queries, data.stats.train_queries) == (4, 16)
    train_keys = {record[0] for record in data.iter_examples(test=False)}
    assert not train_keys & set(data.test_queries)
    # Both spellings of a query count as one query, on one side.
    assert data.stats.test_positives == 4 * 2
    assert all(len(qrels) == 1 for qrels in data.test_qrels.values())


def test_split_is_seeded(tmp_path: Path) -> None:
    sessions = shop_sessions(queries=20)
    first = prepare(tmp_path / "a", sessions)
    again = prepare(tmp_path / "b", sessions)
    other = prepare(tmp_path / "c", sessions, seed=8)
    assert set(first.test_queries) == set(again.test_queries)
    assert set(first.test_queries) != set(other.test_queries)


def test_objects_without_content_are_skipped_and_counted(tmp_path: Path) -> None:
    texts = {oid: text for oid, text in catalog().items() if oid not in {"doc-2", "doc-3"}}
    data = prepare(tmp_path, shop_sessions(queries=20), texts=texts)
    assert data.stats.objects_without_content == 2
    assert data.stats.skipped_positives == 4  # queries 0 and 1 clicked doc-2 and doc-3, twice
    assert data.stats.labelled_queries == 18
    assert "doc-2" not in data.texts and set(data.missing_examples) == {"doc-2", "doc-3"}
    for record in data.iter_examples(test=False):
        assert record[2] in data.texts and all(oid in data.texts for oid in record[5])


def test_no_training_data_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(TaskFailed) as failure:
        prepare(tmp_path, shop_sessions(queries=20), texts={})
    assert failure.value.code == "no_training_data"
    assert "no content" in failure.value.message and "/items/" in failure.value.message


def test_unlabelled_batch_is_no_training_data(tmp_path: Path) -> None:
    sessions = [session(f"q{i}", ["doc-1", "doc-2"]) for i in range(30)]
    with pytest.raises(TaskFailed) as failure:
        prepare(tmp_path, sessions)
    assert failure.value.code == "no_training_data"


def test_too_few_queries_says_how_many_are_needed(tmp_path: Path) -> None:
    with pytest.raises(TaskFailed) as failure:
        prepare(tmp_path, shop_sessions(queries=6, per_query=5))
    assert failure.value.code == "batch_too_small"
    assert "6 distinct queries" in failure.value.message
    assert "at least 10" in failure.value.message


def test_sessions_are_consumed_a_page_at_a_time(tmp_path: Path) -> None:
    """The input is streamed: the loader never sees more than a page of sessions' results."""
    requested: list[int] = []
    texts = catalog()

    def loader(ids: list[str]) -> dict[str, str]:
        requested.append(len(ids))
        return {oid: texts[oid] for oid in ids if oid in texts}

    def sessions() -> Iterator[dict[str, Any]]:
        yield from shop_sessions(queries=20, per_query=10)

    prepare(tmp_path, sessions(), load_items=loader, page_size=7)
    assert max(requested) <= 7 * 5


def test_training_rows_fill_hard_negatives_and_repeat_by_weight(tmp_path: Path) -> None:
    sessions = shop_sessions(queries=20)
    sessions.append(session("query 1", ["doc-20", "doc-21"], irrelevant=True))
    sessions.append(session("query 1", ["doc-5", "doc-6"], [("doc-6", "purchase")]))
    data = prepare(tmp_path, sessions, test_fraction=0.1)
    assert not data.is_test("query 1")  # with this seed
    rows = list(training_rows(data, num_hard_negatives=3, max_repeats=10, seed=1))
    assert all(len(row) == len(column_names(3)) for row in rows)
    q1 = [row for row in rows if row[0] in ("query 1", "Query  1")]
    clicked = [row for row in q1 if row[1] == data.texts["doc-3"]]
    # Skip-above first (nearest first), then the irrelevant session's results.
    assert clicked[0][2:] == [data.texts["doc-2"], data.texts["doc-1"], data.texts["doc-20"]]
    purchased = [row for row in q1 if row[1] == data.texts["doc-6"]]
    assert len(purchased) == 3  # weight 3: three times
    assert purchased[0][2] == data.texts["doc-5"]
    pairs = list(training_rows(data, num_hard_negatives=0, max_repeats=1, seed=1))
    assert all(len(row) == 2 for row in pairs)
    assert len(pairs) == data.stats.train_positives
