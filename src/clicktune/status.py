"""A fine-tuning task's vocabulary (API.md): its five statuses and its promotion policies, shared
by the store, the API, the methods and clients."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Every change between them is a compare-and-set in the store."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    CANCELED = "canceled"
    ERROR = "error"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.CANCELED, TaskStatus.ERROR})
RESTARTABLE_STATUSES = frozenset({TaskStatus.ERROR, TaskStatus.CANCELED})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})


class Promotion(StrEnum):
    """What may change the method's champion when a task ends (EVALUATION.md)."""

    AUTO = "auto"
    """Judged evidence decides; without a judged set the model becomes the challenger."""
    ALWAYS = "always"
    """The best run becomes champion, whatever the evidence says."""
    NEVER = "never"
    """Nothing changes the champion or the challenger; the model is only downloadable."""
