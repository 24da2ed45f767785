"""The demo's closing summary: each model on held-out queries beside what the task decided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from clicktune.settings import Settings
from clicktune.simulate.demo import print_summary

BEFORE = {"ndcg_at_10": 0.70, "recall_at_100": 0.90, "mrr_at_10": 0.80}
BETTER = {"ndcg_at_10": 0.72, "recall_at_100": 0.91, "mrr_at_10": 0.81}
JUDGED = {
    "main_metric": "ndcg_at_10",
    "evidence": "judged",
    "baseline": 0.61,
    "best": 0.64,
    "gain": 0.03,
    "gain_interval": [0.012, 0.049],
    "queries": 24,
    "promotion_reason": "Promoted run-1: on judged set 'demo' (24 queries) …",
}
BLIND = {
    "main_metric": "ndcg_at_10",
    "evidence": "none",
    "promotion_reason": "Not promoted: …",
    "online": {"decision": "promoted", "reason": "Challenger m/v1 is better online (…)."},
}


def summary(tmp_path: Path, promoted: bool, metrics: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    task = {
        "promoted": promoted,
        "metrics": metrics,
        "mlflow_experiment": "iteration / m / b",
        "best_model_url": "http://x/model",
    }
    measured = {"champion (base model)": BEFORE, "challenger (task 1)": BETTER}
    print_summary(console, task, measured, Settings(data_dir=tmp_path), 60.0)
    return console.export_text()


@pytest.mark.parametrize(("promoted", "metrics"), [(True, JUDGED), (False, BLIND)])
def test_the_decision_is_shown_with_its_evidence(
    tmp_path: Path, promoted: bool, metrics: dict[str, Any]
) -> None:
    text = summary(tmp_path, promoted, metrics)
    assert metrics["promotion_reason"] in text
    assert ("95 % interval [+0.0120, +0.0490] over 24 queries" in text) is promoted
    assert ("live traffic: promoted: Challenger m/v1 is better online" in text) is not promoted
    assert "0.7200 (+0.0200)" in text  # the held-out truth beside it
    assert "http://x/model" in text
