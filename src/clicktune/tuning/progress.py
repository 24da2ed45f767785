"""How far an iteration is: the task's `progress` (stage, runs, percent) and its stage events.

Opening the iteration takes the first `BEFORE_TRAINING` percent, the runs share the span up to
`AFTER_TRAINING`, completing takes the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

    from clicktune.tuning.plugin import TaskContext

BEFORE_TRAINING = 5.0
AFTER_TRAINING = 95.0


def training_percent(runs_done: int, runs_total: int, fraction: float = 0.0) -> float:
    """The percent of a task `runs_done` runs (and `fraction` of the current one) into its
    `runs_total` runs."""
    done = (runs_done + fraction) / max(runs_total, 1)
    return BEFORE_TRAINING + (AFTER_TRAINING - BEFORE_TRAINING) * min(done, 1.0)


class ProgressReporter:
    """Reports the task's progress; counts the runs planned and done."""

    def __init__(self, context: TaskContext, log: BoundLogger) -> None:
        self.context = context
        self.log = log
        self.runs_total = 1
        self.runs_done = 0

    def report(
        self,
        stage: str,
        current_run: int | None = None,
        fraction: float = 0.0,
        percent: float | None = None,
    ) -> None:
        """Replace the task's progress; without `percent`, the runs say how far it is."""
        if percent is None:
            percent = training_percent(self.runs_done, self.runs_total, fraction)
        self.context.report_progress(
            stage=stage,
            runs_total=self.runs_total,
            runs_done=self.runs_done,
            current_run=current_run,
            percent=round(percent, 1),
        )

    def stage(self, stage: str, message: str, percent: float | None = None, **data: Any) -> None:
        """Enter a stage: stop here when the task was canceled, else report it and log it."""
        self.context.raise_if_canceled()
        self.report(stage, percent=percent)
        self.context.add_event(message, stage=stage, **data)
        self.log.info("pipeline_stage", stage=stage, **data)
