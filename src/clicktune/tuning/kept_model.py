"""The iteration keeps one model: its best run's. A better run saves its model and removes the
one it replaces, so MLflow never holds more than two models of an iteration at a time."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clicktune.tracking.iterations import Iteration, RunRecord
    from clicktune.tuning.scores import Scored


class KeptModel:
    """The best run so far (`best`) of an iteration, whose model alone stays in MLflow."""

    def __init__(self, iteration: Iteration) -> None:
        self.iteration = iteration
        self.best: Scored | None = None

    def consider_earlier(self, scored: Scored) -> None:
        """A run an earlier attempt finished: its model, if it was the best, is already saved."""
        if scored.beats(self.best):
            self.best = scored

    def drop_others(self, records: Iterable[RunRecord]) -> None:
        """Remove the models earlier attempts saved for runs that are not the best."""
        for record in records:
            if record.has_model and (self.best is None or record.run_id != self.best.run_id):
                self.iteration.delete_model(record.run_id)

    def offer(self, scored: Scored, model_dir: Path) -> None:
        """Keep a new run's model when it beats the best, removing the best's."""
        if not scored.beats(self.best):
            return
        self.iteration.save_model(scored.run_id, model_dir)
        if self.best is not None:
            self.iteration.delete_model(self.best.run_id)
        self.best = scored
