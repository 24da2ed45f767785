"""The demo's closing summary: the before/after table and why a better model may stay unpromoted."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from clicktune.settings import Settings
from clicktune.simulate.demo import print_summary

BEFORE = {"ndcg_at_10": 0.70, "recall_at_100": 0.90, "mrr_at_10": 0.80}
BETTER = {"ndcg_at_10": 0.72, "recall_at_100": 0.91, "mrr_at_10": 0.81}
WORSE = {"ndcg_at_10": 0.68, "recall_at_100": 0.89, "mrr_at_10": 0.79}


def summary(tmp_path: Path, promoted: bool, after: dict[str, float]) -> str:
    console = Console(record=True, width=200)
    task = {
        "promoted": promoted,
        "metrics": {"main_metric": "ndcg_at_10", "baseline": 0.86, "best": 0.85},
        "mlflow_experiment": "iteration / m / b",
        "best_model_url": "http://x/model",
    }
    print_summary(console, task, BEFORE, after, Settings(data_dir=tmp_path), 60.0)
    return console.export_text()


@pytest.mark.parametrize(
    ("promoted", "after", "explained"),
    [(False, BETTER, True), (False, WORSE, False), (True, BETTER, False)],
)
def test_a_better_unpromoted_model_is_explained(
    tmp_path: Path, promoted: bool, after: dict[str, float], explained: bool
) -> None:
    text = summary(tmp_path, promoted, after)
    assert ("promoted" if promoted else "not promoted") in text
    assert ("held-out clicks only judge what the starting model showed" in text) is explained
    assert "http://x/model" in text
