"""What every step of one iteration works in: the method's hooks, the task, the work folder and
the reporting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

    from clicktune.tuning.config import EmbeddingMethodConfig
    from clicktune.tuning.hooks import IterationHooks
    from clicktune.tuning.plugin import TaskContext, TaskSpec
    from clicktune.tuning.progress import ProgressReporter


@dataclass(frozen=True)
class IterationScope:
    hooks: IterationHooks
    context: TaskContext
    progress: ProgressReporter
    root: Path
    """The iteration's temporary folder (data, the starting model, the runs)."""
    log: BoundLogger

    @property
    def task(self) -> TaskSpec:
        return self.context.task

    @property
    def config(self) -> EmbeddingMethodConfig:
        return self.hooks.config
